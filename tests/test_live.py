"""Live operation on a real platform: a model trained in the lab, promoted, deployed on every pump, scoring points as
they are written (outputs in the twin), the same rows as a backfill, catching up after a restart, on-demand predict,
drift; and the refusals of bad deployments and bad rows."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from fastapi.testclient import TestClient

from taehwa.api.app import create_app
from taehwa.core.errors import Conflict, InvalidInput, NotFound, ValidationFailed
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from tests.conftest import TOKEN

N_PUMPS = 4
T0 = pd.Timestamp("2026-11-01T00:00:00Z")
TRAIN_S = 600


def plant_yaml(n: int = N_PUMPS) -> str:
    """Pumps with a pressure and a flow sensor at 1 s, and a derived anomaly score."""
    return yaml.safe_dump(
        {
            "types": {
                "Pump": {
                    "sensors": {
                        "pressure": {"unit": "bar", "interval": "1s"},
                        "flow": {"unit": "m3/h", "interval": "1s"},
                    },
                    "derived": {
                        "anomaly_score": {"limits": {"high_warning": 0.7, "high_alarm": 1.0}},
                        "rul": {"unit": "h"},
                    },
                },
                "Valve": {"sensors": {"position": {"unit": "%"}}},
            },
            "assets": [
                {
                    "id": "site",
                    "type": "Site",
                    "children": [
                        *(
                            {"id": f"p{i}", "type": "Pump", "tags": {"pressure": f"P{i}/PT", "flow": f"P{i}/FT"}}
                            for i in range(n)
                        ),
                        {"id": "v1", "type": "Valve", "tags": {"position": "V1/ZT"}},
                    ],
                }
            ],
        }
    )


def pump_rows(
    k0: int, k1: int, *, n: int = N_PUMPS, seed: int = 0, broken: set[int] | None = None
) -> list[dict[str, Any]]:
    """Points of every pump for seconds k0..k1-1 after T0; pressure follows flow, 30 % lower on broken pumps."""
    rng = np.random.default_rng(seed + k0)
    rows = []
    for k in range(k0, k1):
        ts = T0 + pd.Timedelta(seconds=k)
        for i in range(n):
            flow = 100 + 5 * rng.standard_normal()
            pressure = (0.14 if broken and i in broken else 0.2) * flow + 0.2 * rng.standard_normal()
            rows += [{"tag": f"P{i}/PT", "time": ts, "value": pressure}, {"tag": f"P{i}/FT", "time": ts, "value": flow}]
    return rows


SPEC = {
    "name": "pump-pca",
    "task": "anomaly",
    "data": {
        "asset_type": "Pump",
        "start": T0.isoformat(),
        "end": (T0 + pd.Timedelta(seconds=TRAIN_S)).isoformat(),
        "step": "1s",
        "method": "previous",
    },
    "features": {"windows": [5], "stats": ["mean", "std"]},
    "model": {"kind": "pca", "params": {"explained_variance": 1}},
    "split": {"method": "holdout", "train_fraction": 0.5},
    "register_as": {"name": "pump-pca", "asset_type": "Pump"},
}


def trained(platform: Platform) -> Platform:
    platform.twin.load("acme", plant_yaml())
    platform.historian.write("acme", pump_rows(0, TRAIN_S))
    platform.historian.flush()
    platform.lab.run("acme", SPEC, track=False)
    platform.lab.promote("acme", "pump-pca", 1, "first model", force=True)
    return platform


@pytest.fixture
def live(platform: Platform) -> Platform:
    return trained(platform)


def outputs(platform: Platform, tag: str) -> pd.DataFrame:
    """A tag's points since T0 (none yet: empty)."""
    if tag not in platform.historian.catalog.ids("acme", refresh=True):
        return pd.DataFrame({"time": [], "value": []})
    frame: pd.DataFrame = platform.historian.read(
        "acme", [tag], T0.to_pydatetime(), (T0 + pd.Timedelta(days=1)).to_pydatetime()
    ).to_pandas()
    return frame


def test_deployed_model_scores_new_points_into_the_twin(live: Platform) -> None:
    d = live.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "asset_type": "Pump"})
    assert d["target"] == {"asset_type": "Pump"} and d["version"] is None
    live.live.scorer.refresh(force=True)
    status = live.live.scorer.status("acme", "pumps")
    assert status["running"] and status["assets"] == N_PUMPS and status["model"]["version"] == 1
    live.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 20))
    live.historian.write("acme", pump_rows(TRAIN_S + 20, TRAIN_S + 40, broken={2}))
    live.live.scorer.drain()
    healthy = outputs(live, "site/p0/anomaly_score")
    broken = outputs(live, "site/p2/anomaly_score")
    # one output per row, every second after the training data: the data already there was not re-scored
    assert len(healthy) == 40 and healthy["time"].is_unique
    assert healthy["time"].min() == T0 + pd.Timedelta(seconds=TRAIN_S)
    assert healthy["value"].max() < 1.0  # inside the control limit
    assert broken["value"].iloc[:20].max() < 1.0 and broken["value"].iloc[25:].min() > 1.0
    assert outputs(live, "site/p2/anomaly")["value"].iloc[25:].eq(1.0).all()
    # the twin shows the score as the pump's derived signal, and rolls the alarm up to the site
    state = live.twin.state("acme", "site/p2")
    assert state["signals"]["anomaly_score"]["value"] == pytest.approx(broken["value"].iloc[-1])
    assert state["signals"]["anomaly_score"]["limit_state"] == "alarm"
    assert live.twin.state("acme", "site")["state"] == "alarm"
    assert live.live.scorer.status("acme", "pumps")["rows_scored"] == 40 * N_PUMPS


def test_live_rows_equal_a_backfill_of_the_same_range(live: Platform) -> None:
    live.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "asset_type": "Pump"})
    live.live.scorer.refresh(force=True)
    for k in range(TRAIN_S, TRAIN_S + 60, 7):  # in uneven pieces, some arriving out of order within a piece
        rows = pump_rows(k, min(k + 7, TRAIN_S + 60), broken={1} if k > TRAIN_S + 30 else None)
        live.historian.write("acme", rows[::-1])
        live.live.scorer.drain()
    start = (T0 + pd.Timedelta(seconds=TRAIN_S)).isoformat()
    end = (T0 + pd.Timedelta(seconds=TRAIN_S + 59)).isoformat()
    doc = live.live.backfill("acme", model="pump-pca", asset_type="Pump", start=start, end=end, write="shadow")
    assert doc["rows"] == 60 * N_PUMPS and doc["written_points"] == 2 * 60 * N_PUMPS
    for i in range(N_PUMPS):
        a = outputs(live, f"site/p{i}/anomaly_score")
        b = outputs(live, f"site/p{i}/backfill/pump-pca/v1/anomaly_score")
        assert len(a) == len(b) == 60
        np.testing.assert_allclose(a["value"].to_numpy(), b["value"].to_numpy(), rtol=1e-9)
    assert doc["summary"]["anomaly"]["rows_flagged"] > 0


def test_scoring_catches_up_after_a_restart_without_gaps_or_repeats(settings: Settings) -> None:
    p = Platform(settings, background=False)
    p.tenants.create("acme")
    trained(p)
    p.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "under": "site"})
    p.live.start()
    p.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 10))
    deadline = time.monotonic() + 10
    while len(outputs(p, "site/p0/anomaly_score")) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    p.close()
    # the platform is down for scoring while 30 more seconds arrive (written by a platform that does not score)
    q = Platform(settings, background=False)
    q.historian.write("acme", pump_rows(TRAIN_S + 10, TRAIN_S + 40))
    q.close()
    r = Platform(settings, background=False)
    try:
        r.live.scorer.refresh(force=True)  # the restart: catch up from each asset's newest output
        r.historian.write("acme", pump_rows(TRAIN_S + 40, TRAIN_S + 45))
        r.live.scorer.drain()
        for i in range(N_PUMPS):
            got = outputs(r, f"site/p{i}/anomaly_score")
            expected = pd.date_range(T0 + pd.Timedelta(seconds=TRAIN_S), periods=45, freq="1s")
            assert got["time"].tolist() == list(expected)  # every second once, in order
        # and the outputs are what an uninterrupted run gives
        doc = r.live.backfill(
            "acme",
            model="pump-pca",
            under="site",
            start=expected[0].isoformat(),
            end=expected[-1].isoformat(),
            write="none",
        )
        assert doc["rows"] == 45 * N_PUMPS
    finally:
        r.close()


def test_promotion_switches_the_model_a_deployment_runs(live: Platform) -> None:
    live.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "asset": "site/p0"})
    live.live.scorer.refresh(force=True)
    assert live.live.scorer.status("acme", "pumps")["model"]["version"] == 1
    live.lab.run("acme", {**SPEC, "model": {"kind": "pca", "params": {"explained_variance": 0.9}}}, track=False)
    live.lab.promote("acme", "pump-pca", 2, "second", force=True)
    live.live.scorer.refresh()
    assert live.live.scorer.status("acme", "pumps")["model"]["version"] == 2


def test_bad_deployments_are_refused_with_where(live: Platform) -> None:
    with pytest.raises(NotFound, match="no model"):
        live.live.deploy("acme", {"name": "x", "model": "nope", "asset_type": "Pump"})
    with pytest.raises(ValidationFailed) as exc:
        live.live.deploy("acme", {"name": "x", "model": "pump-pca", "asset_type": "Pump", "asset": "site/p0"})
    assert "exactly one target" in str(exc.value)
    with pytest.raises(ValidationFailed, match="name"):
        live.live.deploy("acme", {"name": "Bad Name", "model": "pump-pca", "asset_type": "Pump"})
    with pytest.raises(InvalidInput, match="no asset with the model's inputs") as exc2:
        live.live.deploy("acme", {"name": "x", "model": "pump-pca", "asset": "site/v1"})
    assert exc2.value.where == "target"
    with pytest.raises(NotFound, match="no asset type"):
        live.live.deploy("acme", {"name": "x", "model": "pump-pca", "asset_type": "Compressor"})
    with pytest.raises(InvalidInput, match="no output 'rul'"):
        live.live.deploy("acme", {"name": "x", "model": "pump-pca", "asset_type": "Pump", "outputs": {"rul": "r"}})
    with pytest.raises(NotFound, match="no version 7"):
        live.live.deploy("acme", {"name": "x", "model": "pump-pca", "version": 7, "asset_type": "Pump"})
    live.live.deploy("acme", {"name": "x", "model": "pump-pca", "asset_type": "Pump"})
    with pytest.raises(Conflict, match="exists"):
        live.live.deploy("acme", {"name": "x", "model": "pump-pca", "asset_type": "Pump"})
    assert [d["name"] for d in live.live.list("acme")] == ["x"]


def test_predict_endpoint_scores_rows_and_names_bad_ones(live: Platform) -> None:
    with TestClient(create_app(live), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        ok = c.post(
            "/api/v1/acme/models/pump-pca/predict",
            json={"rows": [{"pressure": 20.0, "flow": 100.0}, {"pressure": 40.0, "flow": 100.0}]},
        )
        assert ok.status_code == 200, ok.text
        rows = ok.json()["rows"]
        assert rows[0]["anomaly"] == 0.0 and rows[1]["anomaly"] == 1.0
        assert ok.json()["model"]["version"] == 1 and ok.json()["inputs"] == ["flow", "pressure"]
        bad = c.post("/api/v1/acme/models/pump-pca/predict", json={"rows": [{"pressure": 20.0, "speed": 3.0}]})
        assert bad.status_code == 422 and bad.json()["where"] == "rows[0].speed"
        missing = c.post("/api/v1/acme/models/pump-pca/predict", json={"rows": [{"pressure": 20.0}]})
        assert missing.status_code == 422 and "flow" in missing.json()["message"]
        assert c.post("/api/v1/acme/models/pump-pca/predict", json={"rows": []}).status_code == 422
        assert (
            c.post("/api/v1/acme/models/pump-pca/predict", json={"rows": [{"pressure": "high", "flow": 1}]}).status_code
            == 422
        )
        assert c.post("/api/v1/acme/models/nope/predict", json={"rows": [{"a": 1}]}).status_code == 404
        not_json = c.post(
            "/api/v1/acme/models/pump-pca/predict", content=b"{rows: [", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 422 and not_json.json()["where"] == "body"
        assert c.post("/api/v1/acme/models/pump-pca/predict", json=[1, 2]).status_code == 422
        # a promotion is seen by the next call (the production version is cached, but not past a registry change)
        live.lab.run("acme", {**SPEC, "model": {"kind": "pca", "params": {"explained_variance": 0.9}}}, track=False)
        live.lab.promote("acme", "pump-pca", 2, "second", force=True)
        again = c.post("/api/v1/acme/models/pump-pca/predict", json={"rows": [{"pressure": 20.0, "flow": 100.0}]})
        assert again.json()["model"]["version"] == 2
        # another tenant's caller sees nothing of this model
        assert (
            c.post("/api/v1/rival/models/pump-pca/predict", json={"rows": [{"pressure": 1.0, "flow": 1.0}]}).status_code
            == 404
        )


def test_backfill_refuses_bad_ranges_and_targets(live: Platform) -> None:
    with pytest.raises(InvalidInput, match="after start"):
        live.live.backfill("acme", model="pump-pca", asset_type="Pump", start="2026-11-02", end="2026-11-01")
    with pytest.raises(InvalidInput, match="exactly one target"):
        live.live.backfill("acme", model="pump-pca", start="2026-11-01", end="2026-11-02")
    with pytest.raises(InvalidInput, match="write is"):
        live.live.backfill(
            "acme", model="pump-pca", asset_type="Pump", start="2026-11-01", end="2026-11-02", write="everywhere"
        )
    with pytest.raises(InvalidInput):
        live.live.backfill("acme", model="pump-pca", asset_type="Pump", start="yesterday", end="2026-11-02")


def test_drift_is_measured_against_the_training_data(live: Platform) -> None:
    live.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "asset_type": "Pump"})
    live.live.scorer.refresh(force=True)
    live.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 100))
    live.live.scorer.drain()
    stable = live.live.drift.report("acme", "pumps")
    assert not stable["drifted"] and stable["live_rows"] == 100 * N_PUMPS
    assert {x["name"] for x in stable["inputs"]} == {"flow", "pressure"}
    assert all(x["psi"] is not None and x["psi"] < 0.25 for x in stable["inputs"])
    # the flow runs 20 % higher: the pumps left the range they were validated on
    shifted = pump_rows(TRAIN_S + 100, TRAIN_S + 400)
    for r in shifted:
        r["value"] *= 1.2
    live.historian.write("acme", shifted)
    live.live.scorer.drain()
    drifted = live.live.drift.report("acme", "pumps")
    assert drifted["drifted"]
    flow = next(x for x in drifted["inputs"] if x["name"] == "flow")
    assert flow["psi"] is not None and flow["p_value"] is not None
    assert flow["psi"] >= 0.25 and flow["p_value"] < 1e-6 and flow["status"] == "drift"
    live.live.drift.check_all()
    alerts = live.live.alerts.list("acme", state="active")
    assert len(alerts) == 1 and alerts[0]["rule"] == "drift/pumps"
    assert alerts[0]["chain"]["model"]["version"] == 1


@pytest.fixture
def running(settings: Settings) -> Iterator[Platform]:
    p = Platform(settings, background=False)
    p.tenants.create("acme")
    trained(p)
    yield p
    p.close()


def test_scorer_thread_follows_new_deployments(running: Platform) -> None:
    running.live.start()
    running.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "asset_type": "Pump"})
    running.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 5))
    deadline = time.monotonic() + 10
    while len(outputs(running, "site/p3/anomaly_score")) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(outputs(running, "site/p3/anomaly_score")) == 5


def test_http_deployments_round_trip(live: Platform) -> None:
    with TestClient(create_app(live), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.post("/api/v1/acme/deployments", json={"name": "pumps", "model": "pump-pca", "asset_type": "Pump"})
        assert r.status_code == 201, r.text
        assert (
            c.post(
                "/api/v1/acme/deployments", json={"name": "pumps", "model": "pump-pca", "asset_type": "Pump"}
            ).status_code
            == 409
        )
        bad = c.post("/api/v1/acme/deployments", json={"name": "p2", "model": "pump-pca"})
        assert bad.status_code == 422
        # the typed answers (live.records) are the routes' response models: each answer is the service's, whole and
        # in its order (a running deployment's status with every field, its parameters among its own fields)
        live.live.scorer.refresh(force=True)
        want = live.live.describe("acme", "pumps")
        got = c.get("/api/v1/acme/deployments/pumps").json()
        assert got == want and list(got) == list(want) and list(got["status"]) == list(want["status"])
        assert want["status"]["running"] and "hold_s" in got and "model" in got["status"]
        assert c.get("/api/v1/acme/deployments").json() == live.live.list("acme")
        drift = c.get("/api/v1/acme/deployments/pumps/drift").json()
        assert {**drift, "checked_at": ""} == {**live.live.drift.report("acme", "pumps"), "checked_at": ""}
        paused = c.post("/api/v1/acme/deployments/pumps/pause").json()
        assert paused == live.live.deployments.get("acme", "pumps").to_dict() and paused["enabled"] is False
        assert c.get("/api/v1/acme/deployments").json()[0]["name"] == "pumps"
        assert c.get("/api/v1/rival/deployments").json() == []
        assert c.delete("/api/v1/acme/deployments/pumps").status_code == 204
        assert c.get("/api/v1/acme/deployments/pumps").status_code == 404


def test_outputs_table_is_in_the_store_schema(live: Platform) -> None:
    seen: list[pa.Table] = []
    live.live.deploy(
        "acme",
        {
            "name": "pumps",
            "model": "pump-pca",
            "asset": "site/p1",
            "outputs": {"anomaly": None, "anomaly_score": "anomaly_score"},
        },
    )
    live.live.scorer.refresh(force=True)
    live.live.scorer.on_scored.append(lambda tenant, run, table: seen.append(table))
    live.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 3))
    live.live.scorer.drain()
    assert seen and set(seen[0].column("tag").to_pylist()) == {"site/p1/anomaly_score"}  # 'anomaly' not written
    assert outputs(live, "site/p1/anomaly").empty


def test_backfill_in_chunks_gives_the_same_outputs(live: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long backfill reads the next assets while the model scores the last ones; the outputs do not change."""
    from taehwa.live import scoring

    live.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 120, broken={3}))
    kw: dict[str, Any] = {
        "model": "pump-pca",
        "asset_type": "Pump",
        "start": (T0 + pd.Timedelta(seconds=TRAIN_S)).isoformat(),
        "end": (T0 + pd.Timedelta(seconds=TRAIN_S + 119)).isoformat(),
        "write": "none",
    }
    whole = live.live.backfill("acme", **kw)
    monkeypatch.setattr(scoring, "BACKFILL_CHUNK_ROWS", 10)  # one asset per chunk
    chunked = live.live.backfill("acme", **kw)
    assert whole["rows"] == chunked["rows"] == 120 * N_PUMPS
    assert whole["summary"]["anomaly"] == chunked["summary"]["anomaly"] and whole["summary"]["anomaly"]["rows_flagged"]
    for k, v in whole["summary"]["anomaly_score"].items():  # the same up to the matrix products' rounding
        assert chunked["summary"]["anomaly_score"][k] == pytest.approx(v, rel=1e-9)
    # and the outputs themselves, point for point
    pipe, _ = live.live.models.get("acme", "pump-pca", None)
    units = {f"site/p{i}": [f"P{i}/FT", f"P{i}/PT"] for i in range(N_PUMPS)}
    s, e = int(T0.value // 1000) + TRAIN_S * 1_000_000, int(T0.value // 1000) + (TRAIN_S + 119) * 1_000_000
    args = (live.historian, "acme", pipe, units, s, e, 1_000_000, 5_000_000, 5)
    a_chunked, t_chunked, o_chunked = scoring.backfill_rows(*args)
    monkeypatch.setattr(scoring, "BACKFILL_CHUNK_ROWS", 10**9)
    a_whole, t_whole, o_whole = scoring.backfill_rows(*args)
    assert a_chunked == a_whole and len(set(a_whole)) == N_PUMPS
    np.testing.assert_array_equal(t_chunked, t_whole)
    np.testing.assert_allclose(o_chunked["anomaly_score"], o_whole["anomaly_score"], rtol=1e-9)
    np.testing.assert_array_equal(o_chunked["anomaly"], o_whole["anomaly"])


def test_backfill_over_the_pool_and_ray_gives_the_same_outputs(live: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of assets scored by pool workers or Ray tasks (the model shipped once) give what this process gives,
    row for row, in the same order; the backend is reported."""
    from taehwa.lab import fanout
    from taehwa.live import scoring

    live.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 60, broken={2}))
    monkeypatch.setattr(scoring, "BACKFILL_CHUNK_ROWS", 10)  # one asset per chunk: several jobs
    pipe, _ = live.live.models.get("acme", "pump-pca", None)
    units = {f"site/p{i}": [f"P{i}/FT", f"P{i}/PT"] for i in range(N_PUMPS)}
    s, e = int(T0.value // 1000) + TRAIN_S * 1_000_000, int(T0.value // 1000) + (TRAIN_S + 59) * 1_000_000
    args = (live.historian, "acme", pipe, units, s, e, 1_000_000, 5_000_000, 5)
    here = scoring.backfill_rows(*args)
    runs = {"pool": scoring.backfill_rows(*args, backend="pool")}
    if importlib.util.find_spec("ray") is not None:
        try:
            runs["ray"] = scoring.backfill_rows(*args, backend="ray")
        finally:
            fanout.shutdown_ray()
    for backend, (assets, times, outs) in runs.items():
        assert assets == here[0] and len(set(assets)) == N_PUMPS, backend
        np.testing.assert_array_equal(times, here[1])
        assert set(outs) == set(here[2])
        for o, v in outs.items():
            np.testing.assert_array_equal(v, here[2][o])
    kw: dict[str, Any] = {
        "model": "pump-pca",
        "asset_type": "Pump",
        "start": (T0 + pd.Timedelta(seconds=TRAIN_S)).isoformat(),
        "end": (T0 + pd.Timedelta(seconds=TRAIN_S + 59)).isoformat(),
        "write": "none",
    }
    assert live.live.backfill("acme", **kw)["backend"] == "pool"  # many chunks: fanned out by default
    assert live.live.backfill("acme", **kw, fan_out="serial")["backend"] == "serial"
    with pytest.raises(InvalidInput, match="fan_out"):
        live.live.backfill("acme", **kw, fan_out="gpu")
