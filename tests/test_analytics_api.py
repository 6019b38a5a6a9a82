"""Analytics over HTTP and the CLI: the plant's calculations, checking a file, trying an expression, backfill, lineage,
quality, event search and events opened and closed by call; another tenant's user is refused, a bad body is a 422
that names the field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from taehwa.server.platform import Platform
from tests.test_analytics import PLANT, T0, data, points

P1 = "site/line/p1"
START, END = "2026-01-01T00:00:00Z", "2026-01-01T00:02:00Z"


@pytest.fixture
def loaded(platform: Platform, client: TestClient) -> TestClient:
    platform.twin.load("acme", PLANT)
    for tag, (t, v) in data().items():
        platform.historian.write_checked("acme", points(tag, t, v))
    return client


def test_http(loaded: TestClient, platform: Platform) -> None:
    items = loaded.get("/api/v1/acme/analytics").json()
    assert {i["name"] for i in items} >= {"efficiency", "throughput", "running", "surge"}
    listing = platform.analytics.calculations("acme")  # its response model keeps each row whole, in its order
    assert items == listing and [list(i) for i in items] == [list(i) for i in listing]
    r = loaded.post("/api/v1/acme/analytics/backfill", json={"start": START, "end": END})
    assert r.status_code == 200, r.text
    assert r.json()["points"] > 0 and r.json()["events"] >= 1
    again = platform.analytics.backfill("acme", START, END)  # the same range again: the same answer but its time
    assert {**r.json(), "seconds": 0} == {**again, "seconds": 0} and list(r.json()) == list(again)
    got = platform.historian.read("acme", f"{P1}/efficiency", START, END)
    assert got.num_rows == 120 and int(np.count_nonzero(got.column("quality").to_numpy() == 2)) == 1
    lin = loaded.get("/api/v1/acme/analytics/lineage", params={"tag": f"{P1}/efficiency"}).json()
    assert lin["expr"].startswith("flow * head") and "raw/p1/power" in lin["inputs"]
    # the typed answers (analytics.records) are the routes' response models: each answer is the service's, whole
    want = platform.analytics.lineage("acme", f"{P1}/efficiency")
    assert lin == want and list(lin) == list(want)
    r = loaded.post(
        "/api/v1/acme/analytics/eval", json={"asset": P1, "expr": "flow > 5 for 3s", "start": START, "end": END}
    )
    assert r.status_code == 200 and len(r.json()["points"]) == 120
    assert r.json() == platform.analytics.evaluate("acme", P1, "flow > 5 for 3s", START, END)
    status = loaded.get("/api/v1/acme/analytics/status").json()
    assert status == platform.analytics.status("acme") and list(status) == list(platform.analytics.status("acme"))
    events = loaded.get("/api/v1/acme/event-frames", params={"template": "running", "where": "duration > 10s"}).json()
    assert events["events"] and all(e["duration_s"] > 10 for e in events["events"])
    want = json.loads(json.dumps(platform.analytics.search("acme", template="running", where=["duration > 10s"])))
    assert events == want and list(events) == list(want)  # the response model keeps the service's whole answer
    one = loaded.get(f"/api/v1/acme/event-frames/{events['events'][0]['id']}").json()
    assert one["stats"]["flow"]["mean"] > 5
    want_one = platform.analytics.event("acme", one["id"])
    assert one == want_one and list(one) == list(want_one)
    two = loaded.get("/api/v1/acme/event-frames", params={"template": "running"}).json()["events"][:2]
    cmp = loaded.get(
        f"/api/v1/acme/event-frames/{two[0]['id']}/compare", params={"to": two[1]["id"], "signal": "flow"}
    ).json()
    assert cmp["steps"] > 0 and cmp["profile"]["events"] == 1
    want_cmp = json.loads(json.dumps(platform.analytics.compare_events("acme", two[0]["id"], [two[1]["id"]], "flow")))
    assert cmp == want_cmp and list(cmp) == list(want_cmp)
    r = loaded.post("/api/v1/acme/event-frames", json={"asset": P1, "template": "inspection", "start": START})
    assert r.status_code == 201
    assert list(r.json()) == list(one) and r.json()["state"] == "open" and r.json()["end"] is None
    closed = loaded.post(f"/api/v1/acme/event-frames/{r.json()['id']}/close", json={"end": END}).json()
    assert closed["duration_s"] == 120.0 and closed["kind"] == "manual"
    want_closed = platform.analytics.event("acme", closed["id"])
    assert closed == want_closed and list(closed) == list(want_closed)
    q = loaded.get("/api/v1/acme/analytics/quality", params={"start": START, "end": END}).json()
    assert q["assets"][P1]["tags"]["flow"]["quality"] <= 100
    want_q = json.loads(json.dumps(platform.analytics.quality("acme", START, END)))
    assert q == want_q and list(q["assets"][P1]["tags"]["flow"]) == list(want_q["assets"][P1]["tags"]["flow"])
    check = loaded.post(
        "/api/v1/acme/analytics/check",
        content=PLANT.replace("head * 9.81", "hed * 9.81"),
        headers={"Content-Type": "application/yaml"},
    ).json()
    assert not check["ok"] and "line 9" in check["problems"][0]["where"]
    assert check == platform.analytics.check(PLANT.replace("head * 9.81", "hed * 9.81"), source="body")
    good = loaded.post("/api/v1/acme/analytics/check", content=PLANT, headers={"Content-Type": "application/yaml"})
    assert good.json() == platform.analytics.check(PLANT, source="body") and good.json()["calculated_signals"] > 0


def test_http_refusals(loaded: TestClient, platform: Platform) -> None:
    r = loaded.post("/api/v1/acme/analytics/backfill", json={"start": START, "end": END, "nonsense": 1})
    assert r.status_code == 422 and "nonsense" in r.text
    r = loaded.post(
        "/api/v1/acme/analytics/eval", json={"asset": P1, "expr": "flow / (" * 5, "start": START, "end": END}
    )
    assert r.status_code == 422 and "ends too soon" in r.text
    r = loaded.get("/api/v1/acme/event-frames", params={"where": "drop table events"})
    assert r.status_code == 422
    assert loaded.get("/api/v1/nobody/event-frames").status_code == 404
    ref = "/api/v1/acme/event-references/Pump.running"
    r = loaded.put(ref, json={"events": []})
    assert r.status_code == 422 and "name 1 to 100" in r.json()["message"]
    r = loaded.put(ref, json={"events": ["x"], "band": 3})
    assert r.status_code == 422 and "band" in r.text
    r = loaded.put(ref, json={"events": ["x"]})
    assert r.status_code == 422 and "declares no reference" in r.json()["message"]  # its plant gives it none
    assert loaded.get("/api/v1/acme/event-references").json() == []
    assert loaded.get("/api/v1/acme/analytics/scoring").json() == []
    assert loaded.get("/api/v1/acme/event-frames", params={"kind": "label"}).json()["events"] == []
    platform.identity.create_user("eve", password="correct horse battery staple")
    platform.identity.set_role("eve", "rival", "tenant_admin")
    token, _ = platform.identity.create_token("eve", "t")
    eve = {"Authorization": f"Bearer {token}"}
    assert loaded.get("/api/v1/acme/event-frames", headers=eve).status_code in (403, 404)
    assert loaded.get("/api/v1/acme/analytics", headers=eve).status_code in (403, 404)
    r = loaded.post("/api/v1/acme/analytics/backfill", json={"start": START, "end": END}, headers=eve)
    assert r.status_code in (403, 404)
    r = loaded.post("/api/v1/acme/event-frames", json={"bad": "body"}, headers=eve)
    assert r.status_code in (403, 404)  # rights first: the body's shape is not judged for a stranger
    assert loaded.get("/api/v1/rival/event-frames", headers=eve).json()["events"] == []
    assert loaded.put(ref, json={"bad": "body"}, headers=eve).status_code in (403, 404)  # rights before the body
    assert loaded.get("/api/v1/acme/event-references", headers=eve).status_code in (403, 404)
    assert loaded.delete(ref, headers=eve).status_code in (403, 404)


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from taehwa.cli.main import app
    from taehwa.core.settings import Settings

    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT)
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLANT.replace('"power / rated_power"', '"power + flow"'))
    assert runner.invoke(app, ["analytics", "check", str(plant)]).exit_code == 0
    r = runner.invoke(app, ["analytics", "check", str(bad)])
    assert r.exit_code == 2 and "bad.yaml, line 11" in r.stdout and "adds kW and m^3/h" in r.stdout
    p = Platform(Settings(data_dir=tmp_path / "data"), background=False)
    try:
        p.tenants.create("acme")
        p.twin.load("acme", PLANT)
        for tag, (t, v) in data().items():
            p.historian.write_checked("acme", points(tag, t, v))
    finally:
        p.close()
    r = runner.invoke(app, ["analytics", "backfill", "-t", "acme", "--start", START, "--end", END, "--json"])
    assert r.exit_code == 0, r.output
    assert '"points"' in r.stdout
    r = runner.invoke(app, ["events", "search", "-t", "acme", "--template", "running", "--json"])
    assert r.exit_code == 0 and '"running"' in r.stdout
    r = runner.invoke(app, ["events", "search", "-t", "acme", "--where", "duration >"])
    assert r.exit_code != 0 and "cannot read filter" in r.output
    r = runner.invoke(app, ["analytics", "eval", P1, "flow * 2", "-t", "acme", "--start", START, "--end", END])
    assert r.exit_code == 0 and "120 points" in r.stdout
    r = runner.invoke(app, ["analytics", "list", "-t", "acme", "--json"])
    assert r.exit_code == 0 and "throughput" in r.stdout
    r = runner.invoke(app, ["events", "open", P1, "inspection", "-t", "acme", "--start", START])
    assert r.exit_code == 0
    eid = r.stdout.strip()
    r = runner.invoke(app, ["events", "close", eid, "-t", "acme", "--end", END])
    assert r.exit_code == 0 and "120 s" in r.stdout
    r = runner.invoke(app, ["analytics", "quality", "-t", "acme", "--start", START, "--end", END])
    assert r.exit_code == 0 and "findings" in r.stdout
    r = runner.invoke(app, ["events", "reference", "set", "Pump.running", "-t", "acme", "--event", eid])
    assert r.exit_code != 0 and "declares no reference" in r.output  # its plant gives the template none
    r = runner.invoke(app, ["events", "reference", "list", "-t", "acme", "--json"])
    assert r.exit_code == 0 and r.stdout.strip() == "[]"
    assert T0  # the same made-up data as tests/test_analytics.py
    assert isinstance(pa.__version__, str)
