"""Alert rules on a real platform: threshold with hysteresis and minimum duration, rate of change, stale data and
model score (with the model version in the chain); the lifecycle with who, when and notes; folding; shelving;
history per asset; webhooks on a loopback receiver that fails at first, retried until delivered, in order and
signed; and the refusals of bad rules and bad steps."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taehwa.api.app import create_app
from taehwa.core.errors import Conflict, InvalidInput, NotFound, ValidationFailed
from taehwa.server.platform import Platform
from tests.conftest import TOKEN
from tests.test_live import T0, TRAIN_S, plant_yaml, pump_rows, trained


@pytest.fixture
def plant(platform: Platform) -> Platform:
    platform.twin.load("acme", plant_yaml())
    return platform


def feed(p: Platform, tag: str, values: list[float], start_s: int = 0, step_s: float = 1.0) -> None:
    """Write values one second apart and let the rule engine see them."""
    p.historian.write(
        "acme",
        [
            {"tag": tag, "time": T0 + pd.Timedelta(seconds=start_s + k * step_s), "value": v}
            for k, v in enumerate(values)
        ],
    )
    p.live.engine.drain()


def test_threshold_with_hysteresis_and_minimum_duration(plant: Platform) -> None:
    plant.live.rules.put(
        "acme",
        {
            "name": "high-pressure",
            "kind": "threshold",
            "asset_type": "Pump",
            "signal": "pressure",
            "op": ">",
            "value": 30,
            "hysteresis": 2,
            "min_duration_s": 2,
            "severity": "alarm",
        },
    )
    plant.live.engine.refresh(force=True)
    feed(plant, "P0/PT", [25, 31, 32])  # over the limit for 1 s only: not yet
    assert plant.live.alerts.list("acme") == []
    feed(plant, "P0/PT", [33], start_s=3)  # 2 s over: raised
    [a] = plant.live.alerts.list("acme")
    assert (a["state"], a["severity"], a["asset"], a["tag"], a["value"]) == ("active", "alarm", "site/p0", "P0/PT", 33)
    assert a["chain"]["window"]["start"] == (T0 + pd.Timedelta(seconds=1)).isoformat()
    assert a["chain"]["rule"]["name"] == "high-pressure" and "model" not in a["chain"]
    feed(plant, "P0/PT", [29, 31, 28.5], start_s=4)  # back under the limit but not past the hysteresis: still on
    assert plant.live.alerts.list("acme", state="active")[0]["id"] == a["id"]
    feed(plant, "P0/PT", [27.9], start_s=7)  # past limit − hysteresis: resolved by itself
    resolved = plant.live.alerts.get("acme", a["id"])
    assert resolved["state"] == "resolved"
    assert [h["action"] for h in resolved["history"]] == ["raised", "resolved"]
    assert resolved["history"][-1]["actor"] == "system" and "cleared at 27.9" in (resolved["history"][-1]["note"] or "")
    # the other pump inherits the type's rule; the valve has no pressure
    feed(plant, "P1/PT", [40, 40, 40], start_s=10)
    assert [x["asset"] for x in plant.live.alerts.list("acme", state="open")] == ["site/p1"]
    assert plant.live.alerts.list("acme", asset="site/p0")[0]["id"] == a["id"]  # history per asset
    assert plant.live.alerts.list("acme", asset="site")[0]["asset"] == "site/p1"  # a subtree
    # cleared by itself before anyone saw it: still acknowledged once (who and why kept), and it stays resolved
    late = plant.live.alerts.acknowledge("acme", a["id"], "seen after it cleared")
    assert late["state"] == "resolved"
    assert [h["action"] for h in plant.live.alerts.get("acme", a["id"])["history"]] == [
        "raised",
        "resolved",
        "acknowledged",
    ]
    with pytest.raises(Conflict, match="already resolved"):
        plant.live.alerts.acknowledge("acme", a["id"])
    with pytest.raises(Conflict, match="already resolved"):
        plant.live.alerts.resolve("acme", a["id"])


def test_lifecycle_with_notes_folding_and_shelving(plant: Platform) -> None:
    plant.live.rules.put(
        "acme",
        {
            "name": "low-flow",
            "kind": "threshold",
            "asset": "site/p0",
            "signal": "flow",
            "op": "<",
            "value": 10,
            "auto_resolve": False,
        },
    )
    plant.live.engine.refresh(force=True)
    feed(plant, "P0/FT", [50, 5])
    [a] = plant.live.alerts.list("acme")
    acked = plant.live.alerts.acknowledge("acme", a["id"], "operator on the way")
    assert acked["state"] == "acknowledged"
    with pytest.raises(Conflict, match="already acknowledged"):
        plant.live.alerts.acknowledge("acme", a["id"])
    feed(plant, "P0/FT", [50, 4, 3], start_s=2)  # clears (no auto-resolve), comes back: folded, not duplicated
    [b] = plant.live.alerts.list("acme")
    assert b["id"] == a["id"] and b["count"] == 2 and b["state"] == "acknowledged"
    shelved = plant.live.alerts.shelve("acme", a["id"], 3600, "pump on maintenance")
    assert shelved["shelved_until"] is not None
    assert plant.live.alerts.list("acme", include_shelved=False) == []
    with pytest.raises(InvalidInput, match="7 days"):
        plant.live.alerts.shelve("acme", a["id"], 30 * 86_400)
    plant.live.alerts.unshelve("acme", a["id"], "maintenance done")
    done = plant.live.alerts.resolve("acme", a["id"], "valve reopened")
    assert done["state"] == "resolved" and done["resolved_at"]
    with pytest.raises(Conflict, match="already resolved"):
        plant.live.alerts.resolve("acme", a["id"])
    history = plant.live.alerts.get("acme", a["id"])["history"]
    assert [(h["action"], h["note"]) for h in history] == [
        ("raised", None),
        ("acknowledged", "operator on the way"),
        ("folded", None),
        ("shelved", "pump on maintenance"),
        ("unshelved", "maintenance done"),
        ("resolved", "valve reopened"),
    ]
    assert all(h["at"] for h in history)
    with pytest.raises(NotFound):
        plant.live.alerts.acknowledge("rival", a["id"])  # another tenant's id is not found, not touched


def test_rate_and_stale_rules(plant: Platform) -> None:
    plant.live.rules.put("acme", {"name": "flow-jump", "kind": "rate", "tag": "P2/FT", "rate_per_s": 10})
    plant.live.rules.put(
        "acme", {"name": "silent", "kind": "stale", "asset_type": "Pump", "signal": "flow", "stale_s": 30}
    )
    plant.live.engine.refresh(force=True)
    feed(plant, "P2/FT", [100, 105, 140])  # +35 in one second
    [a] = plant.live.alerts.list("acme", rule="flow-jump")
    assert a["value"] == pytest.approx(35) and a["tag"] == "P2/FT"
    feed(plant, "P2/FT", [141], start_s=3)
    assert plant.live.alerts.get("acme", a["id"])["state"] == "resolved"
    last = int((T0 + pd.Timedelta(seconds=3)).value // 1000)
    plant.live.engine.tick(now_us=last + 10_000_000)  # 10 s without data: fine
    assert plant.live.alerts.list("acme", rule="silent") == []
    plant.live.engine.tick(now_us=last + 31_000_000)
    [s] = plant.live.alerts.list("acme", rule="silent")
    assert s["asset"] == "site/p2" and s["value"] == pytest.approx(31)
    feed(plant, "P2/FT", [100], start_s=40)
    plant.live.engine.tick(now_us=last + 38_000_000)
    assert plant.live.alerts.get("acme", s["id"])["state"] == "resolved"


def test_score_rule_records_the_model_version_and_data_window(platform: Platform) -> None:
    trained(platform)
    platform.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "asset_type": "Pump"})
    platform.live.rules.put(
        "acme",
        {"name": "pump-anomaly", "kind": "score", "asset_type": "Pump", "severity": "alarm", "min_duration_s": 3},
    )  # a lone noisy row is no alert
    platform.live.scorer.refresh(force=True)
    platform.live.engine.refresh(force=True)
    platform.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 10))
    platform.live.scorer.drain()
    platform.live.engine.drain()
    assert platform.live.alerts.list("acme") == []
    platform.historian.write("acme", pump_rows(TRAIN_S + 10, TRAIN_S + 20, broken={3}))
    platform.live.scorer.drain()
    platform.live.engine.drain()
    [a] = platform.live.alerts.list("acme")
    assert a["asset"] == "site/p3" and a["tag"] == "site/p3/anomaly_score" and (a["value"] or 0) > 1.0
    chain = a["chain"]
    assert chain["model"]["name"] == "pump-pca" and chain["model"]["version"] == 1 and chain["model"]["run_id"]
    assert chain["model"]["deployment"] == "pumps"
    assert chain["model_inputs"]["end"] == chain["window"]["end"]


def test_bad_rules_are_refused_with_where(plant: Platform) -> None:
    with pytest.raises(ValidationFailed, match="needs a value"):
        plant.live.rules.put("acme", {"name": "x", "kind": "threshold", "asset_type": "Pump", "signal": "flow"})
    with pytest.raises(ValidationFailed, match="scope"):
        plant.live.rules.put("acme", {"name": "x", "kind": "threshold", "signal": "flow", "value": 1})
    with pytest.raises(ValidationFailed, match="rate_per_s"):
        plant.live.rules.put("acme", {"name": "x", "kind": "rate", "tag": "P0/FT"})
    with pytest.raises(ValidationFailed) as exc:
        plant.live.rules.put("acme", {"name": "x", "kind": "threshold", "tag": "P0/FT", "value": 1, "hysteresis": -1})
    assert "rule.hysteresis" in str(exc.value)
    with pytest.raises(ValidationFailed, match="kind"):
        plant.live.rules.put("acme", {"name": "x", "kind": "magic", "tag": "P0/FT"})
    with pytest.raises(InvalidInput, match="no signal 'speed'"):
        plant.live.rules.put(
            "acme", {"name": "x", "kind": "threshold", "asset_type": "Pump", "signal": "speed", "value": 1}
        )
    with pytest.raises(NotFound, match="no asset type"):
        plant.live.rules.put(
            "acme", {"name": "x", "kind": "stale", "asset_type": "Boiler", "signal": "t", "stale_s": 5}
        )
    assert plant.live.rules.list("acme") == []


class Receiver:
    """A webhook receiver on loopback that answers 500 to its first `fail` requests."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.got: list[tuple[dict[str, Any], dict[str, str], bytes]] = []
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls += 1
                if outer.calls <= outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.got.append((json.loads(body), dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.close()


def test_webhooks_are_retried_until_delivered_in_order_and_signed(plant: Platform, receiver: Receiver) -> None:
    plant.live.notifier.add(
        "acme",
        {"name": "ops", "url": receiver.url, "secret": "s3cret-key", "events": ["raised", "acknowledged", "resolved"]},
    )
    plant.live.rules.put("acme", {"name": "hot", "kind": "threshold", "tag": "P0/PT", "value": 30})
    plant.live.engine.refresh(force=True)
    feed(plant, "P0/PT", [35])
    [a] = plant.live.alerts.list("acme")
    plant.live.alerts.acknowledge("acme", a["id"], "seen")
    feed(plant, "P0/PT", [20], start_s=1)
    deadline = time.monotonic() + 20
    while len(receiver.got) < 3 and time.monotonic() < deadline:  # the first two attempts get HTTP 500
        plant.live.notifier.deliver_due()
        time.sleep(0.2)
    assert [m["action"] for m, _, _ in receiver.got] == ["raised", "acknowledged", "resolved"]
    assert receiver.calls == 5  # two refused, then three delivered
    payload, headers, body = receiver.got[1]
    assert payload["actor"] == "admin" or payload["actor"]  # who acknowledged
    assert payload["note"] == "seen" and payload["alert"]["id"] == a["id"]
    expected = "sha256=" + hmac.new(b"s3cret-key", body, hashlib.sha256).hexdigest()
    assert headers["X-Taehwa-Signature"] == expected
    assert plant.live.notifier.get("acme", "ops")["pending"] == 0


def test_undeliverable_webhook_keeps_its_messages(plant: Platform) -> None:
    plant.live.notifier.add("acme", {"name": "down", "url": "http://127.0.0.1:9/nothing-listens"})
    plant.live.rules.put("acme", {"name": "hot", "kind": "threshold", "tag": "P0/PT", "value": 30})
    plant.live.engine.refresh(force=True)
    feed(plant, "P0/PT", [35])
    assert plant.live.notifier.deliver_due() == 0
    hook = plant.live.notifier.get("acme", "down")
    assert hook["pending"] == 1 and hook["attempts"] == 1 and hook["last_error"]
    with pytest.raises(ValidationFailed, match="URL"):
        plant.live.notifier.add("acme", {"name": "bad", "url": "ftp://example"})
    with pytest.raises(ValidationFailed, match="events"):
        plant.live.notifier.add("acme", {"name": "bad", "url": "http://127.0.0.1:1/", "events": ["exploded"]})


def test_http_alert_lifecycle(plant: Platform) -> None:
    with TestClient(create_app(plant), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.post(
            "/api/v1/acme/alert-rules",
            json={"name": "hot", "kind": "threshold", "asset_type": "Pump", "signal": "pressure", "value": 30},
        )
        assert r.status_code == 201, r.text
        assert c.post("/api/v1/acme/alert-rules", json={"name": "bad", "kind": "threshold"}).status_code == 422
        plant.live.engine.refresh(force=True)
        feed(plant, "P1/PT", [35])
        [a] = c.get("/api/v1/acme/alerts", params={"state": "active"}).json()
        # the typed answers (live.records) are the routes' response models: each answer is the service's, whole
        assert [a] == plant.live.alerts.list("acme", state="active") and list(a) == list(
            plant.live.alerts.list("acme")[0]
        )
        assert c.get(f"/api/v1/acme/alerts/{a['id']}").json() == plant.live.alerts.get("acme", a["id"])
        got = c.get("/api/v1/acme/alert-rules/hot").json()
        assert got["conditions"][1]["on"] is True
        conditions = plant.live.engine.condition("acme", "hot")
        want = {**plant.live.rules.get("acme", "hot").to_dict(), "conditions": conditions}
        assert got == want and list(got) == list(want) and list(got["conditions"][1]) == list(conditions[1])
        assert c.get("/api/v1/acme/alert-rules").json() == [r.to_dict() for r in plant.live.rules.list("acme")]
        assert (
            c.post(f"/api/v1/acme/alerts/{a['id']}/acknowledge", json={"note": "on it"}).json()["state"]
            == "acknowledged"
        )
        assert c.post(f"/api/v1/acme/alerts/{a['id']}/shelve", json={"seconds": 0}).status_code == 422
        assert c.post(f"/api/v1/acme/alerts/{a['id']}/resolve", json={}).json()["state"] == "resolved"
        assert c.post(f"/api/v1/acme/alerts/{a['id']}/resolve", json={}).status_code == 409
        assert c.get("/api/v1/acme/alerts", params={"state": "bogus"}).status_code == 422
        assert c.get(f"/api/v1/rival/alerts/{a['id']}").status_code == 404
        assert c.get("/api/v1/rival/alerts").json() == []
        hook = c.post("/api/v1/acme/webhooks", json={"name": "ops", "url": "http://127.0.0.1:9/hook"})
        assert hook.status_code == 201 and hook.json() == plant.live.notifier.get("acme", "ops")
        assert c.get("/api/v1/acme/webhooks").json() == plant.live.notifier.list("acme")
