"""The lab end to end on a real platform: historian data and labels → spec → time-ordered backtest against the
baseline → model kept, tracked in MLflow, reported → registry with its gate, promotion and rollback; and the
refusals of bad specs, bad labels and callers without the right."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taehwa.core.errors import Conflict, Forbidden, InvalidInput, Location, ValidationFailed
from taehwa.lab.spec import load_spec, parse_spec
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as

PLANT = (Path(__file__).parent / "data" / "plant.yaml").read_text()
PT, FT = "ulsan/cdu/P-101A/PT", "ulsan/cdu/P-101A/FT"
START = pd.Timestamp("2024-03-01T00:00:00Z")
ANOMALIES = [("2024-03-02T06:00:00Z", "2024-03-02T08:00:00Z"), ("2024-03-03T12:00:00Z", "2024-03-03T13:30:00Z")]

SPEC: dict[str, Any] = {
    "name": "p101a-anomaly",
    "task": "anomaly",
    "data": {"tags": [PT, FT], "start": "2024-03-01", "end": "2024-03-04", "step": "1m"},
    "labels": {"kinds": ["anomaly"], "asset": "ulsan/cdu/p-101a"},
    "features": {"windows": [5], "stats": ["mean"]},
    "model": {"kind": "pca", "params": {"explained_variance": 1, "quantile": 0.995}},
    "split": {"method": "rolling", "folds": 2, "train_fraction": 0.34},
    "register_as": {"name": "pump-anomaly", "asset_type": "CentrifugalPump"},
}


def _pump_history(platform: Platform) -> None:
    """Three days of a pump at 1 min: pressure follows flow, except in the labelled anomalies, where the relation
    breaks while each signal stays inside its normal range (so only a multivariate model can see it)."""
    rng = np.random.default_rng(3)
    t = pd.date_range(START, periods=3 * 1440, freq="1min")
    flow = 100 + 5 * rng.standard_normal(len(t))
    pressure = 0.2 * flow + 0.2 * rng.standard_normal(len(t))
    for a, b in ANOMALIES:
        m = (t >= pd.Timestamp(a)) & (t < pd.Timestamp(b))
        pressure[m] = 0.2 * (200 - flow[m]) + 0.2 * rng.standard_normal(m.sum())
    frame = pd.DataFrame({"time": t, PT: pressure, FT: flow})
    platform.historian.write("acme", frame, layout="wide")
    platform.historian.flush()
    platform.labels.add(
        "acme", [{"asset": "ulsan/cdu/p-101a", "kind": "anomaly", "start": a, "end": b} for a, b in ANOMALIES]
    )


@pytest.fixture
def lab(platform: Platform) -> Platform:
    platform.twin.load("acme", PLANT)
    _pump_history(platform)
    return platform


def test_train_beats_the_baseline_and_keeps_everything(lab: Platform) -> None:
    doc = lab.lab.run("acme", SPEC, mode="train")
    m, base = doc["metrics"], doc["baseline"]["metrics"]
    assert doc["baseline"]["kind"] == "zscore"
    assert m["f1"] > 0.8 and m["event_recall"] == 1.0 and doc["beats_baseline"]
    assert base["f1"] < 0.3  # each signal stays in range: per-signal limits cannot see it
    assert len(doc["folds"]) == 2 and all(f["train_rows"] < f["train_rows"] + f["test_rows"] for f in doc["folds"])
    lineage = doc["lineage"]
    assert lineage["tags"] == sorted([PT, FT]) and len(lineage["content_hash"]) == 64
    folder = lab.lab.run_dir("acme", doc["run_id"])
    assert (folder / "model.pkl").exists() and "<svg" in (folder / "report.html").read_text()
    # tracked in MLflow, under the data directory
    run = lab.lab.tracker.client().get_run(doc["mlflow_run"])
    assert run.data.metrics["f1"] == pytest.approx(m["f1"]) and run.data.tags["taehwa.run"] == doc["run_id"]
    assert str(lab.settings.data_dir) in run.info.artifact_uri
    # the kept model scores new rows as the backtest did
    pipe = lab.lab.load_model("acme", doc["run_id"])
    frame = lab.lab.run("acme", {**SPEC, "register_as": None}, mode="evaluate", track=False)
    assert frame["lineage"]["content_hash"] == lineage["content_hash"]  # same data, same hash
    assert pipe.signals == sorted([PT, FT])
    assert [r["run_id"] for r in lab.lab.runs("acme")][1] == doc["run_id"]


def test_registry_gate_promotion_and_rollback(lab: Platform) -> None:
    with acting_as(Principal("lee", platform_admin=True)):  # a person, so the audit log records each step
        good = lab.lab.run("acme", SPEC, mode="train", track=False)
        assert good["registered"]["version"] == 1
        assert lab.lab.promote("acme", "pump-anomaly", 1, "first validated model")["stage"] == "production"
        bad_spec = copy.deepcopy(SPEC)
        bad_spec["model"]["params"]["limit_factor"] = 1000.0  # never alarms
        bad = lab.lab.run("acme", bad_spec, mode="train", track=False)
        assert bad["production"]["version"] == 1 and bad["production"]["metrics"]["f1"] > 0.8  # same data, re-run
        with pytest.raises(Conflict, match="does not beat"):
            lab.lab.promote("acme", "pump-anomaly", 2, "try")
        assert lab.lab.history("acme", "pump-anomaly")[-1]["action"] == "refused"
        with pytest.raises(InvalidInput, match="reason"):
            lab.lab.promote("acme", "pump-anomaly", 2, " ")
        # a tenant admin may force it past the gate (recorded), then roll back
        forced = lab.lab.promote("acme", "pump-anomaly", 2, "field trial of a quiet model", force=True)
        assert forced["previous"] == 1
        back = lab.lab.rollback("acme", "pump-anomaly", "too quiet in the field")
        assert back == {"name": "pump-anomaly", "version": 1, "stage": "production", "from": 2}
        stages = {v["version"]: v["stage"] for v in lab.lab.versions("acme", "pump-anomaly")}
        assert stages == {1: "production", 2: "archived"}
        with pytest.raises(Conflict, match="first in production"):
            lab.lab.rollback("acme", "pump-anomaly", "again")
        card = lab.lab.card("acme", "pump-anomaly", 1)
        assert card["asset_type"] == "CentrifugalPump"
        assert card["data"]["content_hash"] == good["lineage"]["content_hash"]
        assert [e["action"] for e in card["history"]] == ["register", "promote", "rollback"]
        actions = [e["action"] for e in lab.audit.entries("acme", limit=1000)]
        assert {"lab.train", "model.register", "model.promote", "model.rollback"} <= set(actions)


def test_an_engineer_may_not_force_the_gate(lab: Platform) -> None:
    lab.lab.run("acme", SPEC, mode="train", track=False)
    engineer = Principal("kim", roles={"acme": "engineer"})
    with acting_as(engineer), pytest.raises(Forbidden):
        lab.lab.promote("acme", "pump-anomaly", 1, "skip the gate", force=True)


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ({"bogus": 1}, "bogus", "Extra inputs"),
        ({"task": "rul"}, "", "does not do task 'rul'"),
        ({"data": {"tags": [PT], "start": "2024-03-01"}}, "data", "data.start and data.end"),
        ({"split": {"method": "random"}}, "split.method", "rolling"),
        ({"model": {"kind": "gpt"}}, "", "unknown"),
    ],
)
def test_bad_specs_say_what_and_where(change: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_spec({**SPEC, **change}, source="pump.yaml")
    assert any(where in w and message in m for w, m in info.value.problems), info.value.problems


def test_spec_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ntask: anomaly\n  bad: indent\n")
    with pytest.raises(InvalidInput, match="line"):
        load_spec(path)
    with pytest.raises(InvalidInput, match="no spec file"):
        load_spec(tmp_path / "missing.yaml")
    path.write_text("name: x\ntask: anomaly\nsplit:\n  method: random\n")  # a problem of the schema: its line
    with pytest.raises(ValidationFailed) as info:
        load_spec(path)
    found = next(p for p in info.value.details if p.path == ("split", "method"))
    assert found.where == "s.yaml:split.method" and found.location == Location("s.yaml", line=4, field="split.method")


def test_data_problems_are_named(lab: Platform) -> None:
    empty = {**SPEC, "data": {**SPEC["data"], "start": "2020-01-01", "end": "2020-01-02"}}
    with pytest.raises(InvalidInput, match="empty"):
        lab.lab.run("acme", empty, mode="evaluate", track=False)
    rul = {**SPEC, "task": "rul", "model": {"kind": "lgbm_regressor"}, "register_as": None}
    with pytest.raises(InvalidInput, match="'failure' labels"):
        lab.lab.run("acme", rul, mode="evaluate", track=False)
    assert lab.lab.runs("acme") == []  # nothing half-kept


def test_bad_labels_are_refused_whole(lab: Platform) -> None:
    before = len(lab.labels.list_labels("acme"))
    text = (
        "asset,kind,start,end\nulsan/cdu/p-101a,trip,2024-03-01,2024-03-02\n"
        "ulsan/cdu/p-101a,trip,2024-03-05,2024-03-04\n"
    )
    with pytest.raises(ValidationFailed) as info:
        lab.labels.import_csv("acme", text, source="trips.csv")
    assert info.value.problems[0][0] == "trips.csv:3.end"
    with pytest.raises(InvalidInput, match="header"):
        lab.labels.import_csv("acme", "a,b\n1,2\n")
    with pytest.raises(ValidationFailed):
        lab.labels.add("acme", [{"asset": "x", "kind": "bad kind!", "start": "2024-01-01"}])
    assert len(lab.labels.list_labels("acme")) == before
    assert lab.labels.import_csv("acme", text.rsplit("\n", 2)[0] + "\n") == 1


def test_rul_from_a_file_by_unit(tmp_path: Path, platform: Platform) -> None:
    """A fleet run to failure: a health signal that falls with age; LightGBM beats the mean, judged on units it
    never saw."""
    rng = np.random.default_rng(5)
    rows = []
    for unit in range(30):
        life = int(rng.integers(80, 160))
        for c in range(life):
            wear = c / life
            rows.append(
                {
                    "time": pd.Timestamp("2024-01-01") + pd.Timedelta(hours=c),
                    "engine": f"e{unit:02d}",
                    "temp": 500 + 40 * wear**2 + rng.normal(0, 2),
                    "vib": 1 + wear + rng.normal(0, 0.05),
                }
            )
    path = tmp_path / "fleet.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = {
        "name": "fleet-rul",
        "task": "rul",
        "data": {"source": "file", "file": str(path), "unit_column": "engine"},
        "features": {"windows": [5, 15], "stats": ["mean", "slope"], "include_position": True},
        "labels": {"rul_clip": 100},
        "model": {"kind": "lgbm_regressor", "params": {"n_estimators": 150, "learning_rate": 0.05}},
        "split": {"method": "by_unit", "folds": 3},
    }
    doc = platform.lab.run("acme", spec, mode="evaluate", track=False)
    assert doc["metrics"]["rmse"] < 0.6 * doc["baseline"]["metrics"]["rmse"]
    assert "phm08_score" in doc["metrics"] and doc["lineage"]["units"] == 30


def test_over_http(lab: Platform, client: TestClient) -> None:
    r = client.post(
        "/api/v1/acme/labels",
        content="asset,kind,start\nulsan/cdu/p-101a,lab_sample,2024-03-01\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 201 and r.json() == {"added": 1}
    r = client.post("/api/v1/acme/labels", json=[{"asset": "", "kind": "x", "start": "2024-01-01"}])
    assert r.status_code == 422 and r.json()["problems"][0]["where"] == "body[0].asset"
    r = client.post("/api/v1/acme/lab/train", json={**SPEC, "split": {"method": "sideways"}})
    assert r.status_code == 422 and "split.method" in r.json()["problems"][0]["where"]
    r = client.post("/api/v1/acme/lab/train", json=SPEC)
    assert r.status_code == 200, r.text
    run_id = r.json()["run_id"]
    assert client.get("/api/v1/acme/lab/runs").json()[0]["run_id"] == run_id
    report = client.get(f"/api/v1/acme/lab/runs/{run_id}/report")
    assert report.headers["content-type"].startswith("text/html") and "Validation report" in report.text
    r = client.post("/api/v1/acme/models/pump-anomaly/versions/1/promote", json={"reason": "validated"})
    assert r.status_code == 200 and r.json()["stage"] == "production"
    assert list(r.json()) == ["name", "version", "stage", "previous", "gate"] and r.json()["gate"]["passed"] is True
    card = client.get("/api/v1/acme/models/pump-anomaly/versions/1/card").json()
    assert card["stage"] == "production"
    # the typed answers (lab.records) are the routes' response models: each answer is the service's, whole, in order
    assert card == lab.lab.card("acme", "pump-anomaly", 1) and list(card) == list(
        lab.lab.card("acme", "pump-anomaly", 1)
    )
    runs = client.get("/api/v1/acme/lab/runs").json()
    assert runs == lab.lab.runs("acme") and list(runs[0]) == list(lab.lab.runs("acme")[0])
    assert client.get("/api/v1/acme/models").json() == lab.lab.versions("acme")
    model = client.get("/api/v1/acme/models/pump-anomaly").json()
    assert model == {
        "versions": lab.lab.versions("acme", "pump-anomaly"),
        "history": lab.lab.history("acme", "pump-anomaly"),
    }
    assert client.get("/api/v1/rival/lab/runs").json() == []  # another tenant sees none of it


def test_ready_pump_station_spec_on_demo_historian(settings: Any) -> None:
    """The ready spec a new user runs in one command: SKAB history and labels in the historian → trained model."""
    from taehwa.demo import DEMO_TENANT, label_skab, load_skab
    from taehwa.lab.spec import ready_specs

    assert "pump-station-anomaly" in ready_specs()
    p = Platform(settings, background=False)
    try:
        load_skab(p.historian)
        assert label_skab(p.labels) > 30 and label_skab(p.labels) == 0  # once
        p.historian.flush()
        doc = p.lab.run(DEMO_TENANT, load_spec(Path("pump-station-anomaly")), mode="train", track=False)
        assert doc["metrics"]["f1"] > 0.7 and doc["beats_baseline"]
        assert doc["registered"]["name"] == "pump-anomaly"
    finally:
        p.close()


def test_a_file_missing_its_unit_column_is_named(tmp_path: Path, platform: Platform) -> None:
    path = tmp_path / "f.csv"
    path.write_text("time,temp\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,2\n")
    spec = {
        "name": "f",
        "task": "rul",
        "data": {"source": "file", "file": str(path), "unit_column": "engine"},
        "model": {"kind": "mean"},
        "split": {"method": "by_unit"},
    }
    with pytest.raises(InvalidInput, match="no unit column 'engine'"):
        platform.lab.run("acme", spec, mode="evaluate", track=False)


def test_a_file_takes_imported_labels_within_its_start_and_end(tmp_path: Path, platform: Platform) -> None:
    """`source: file` without a target column: the labels imported for the tenant on `labels.asset` make the target,
    over the rows kept between data.start and data.end; without labels.asset no label is guessed onto it."""
    times = pd.date_range("2024-02-01", periods=600, freq="1min", tz="UTC")
    path = tmp_path / "pump.csv"
    pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "pt": np.arange(600.0), "ft": 1.0}).to_csv(
        path, index=False
    )
    added = platform.labels.import_csv(
        "acme",
        "asset,kind,start,end\nsite/p9,anomaly,2024-02-01T03:00:00Z,"
        "2024-02-01T03:30:00Z\nother/x,anomaly,2024-02-01T01:00:00Z,"
        "2024-02-01T02:00:00Z\n",
    )
    assert added == 2
    spec = parse_spec(
        {
            "name": "f",
            "task": "anomaly",
            "data": {
                "source": "file",
                "file": str(path),
                "start": "2024-02-01T02:00:00Z",
                "end": "2024-02-01T06:00:00Z",
            },
            "labels": {"asset": "site/p9"},
            "model": {"kind": "zscore"},
        }
    )
    data = platform.lab.dataset(spec, "acme")
    frame = data.frame
    assert len(frame) == 240 and frame["time"].min() == pd.Timestamp("2024-02-01T02:00:00Z")
    flagged = frame.loc[frame["target"] == 1, "time"]
    assert len(flagged) == 30 and flagged.min() == pd.Timestamp("2024-02-01T03:00:00Z")
    assert "imported labels" in data.lineage["labels"]
    blind = platform.lab.dataset(parse_spec({**spec.model_dump(), "labels": {}}), "acme")
    assert "target" not in blind.frame.columns


def test_training_rows_follow_the_serving_gap_rule(platform: Platform) -> None:
    """A plant silent for 3 hours: the lab's training rows leave the silence out as live scoring's rows do (a value
    holds for 5 steps, `taehwa.lab.gaps`), instead of carrying the last values across it; the rows are the same."""
    from taehwa.core.timeutil import to_us
    from taehwa.lab.datasets import time_us
    from taehwa.lab.gaps import HOLD_STEPS, hold_us
    from taehwa.live.scoring import history_blocks

    t0 = pd.Timestamp("2024-04-01T00:00:00Z")
    minutes = [*range(60), *range(240, 300)]
    platform.historian.write(
        "acme",
        [
            {"tag": tag, "time": t0 + pd.Timedelta(minutes=m), "value": float(m + k)}
            for m in minutes
            for k, tag in enumerate(("gap/A", "gap/B"))
        ],
    )
    platform.historian.flush()
    spec = parse_spec(
        {
            "name": "g",
            "task": "anomaly",
            "model": {"kind": "zscore"},
            "data": {
                "tags": ["gap/A", "gap/B"],
                "start": t0.isoformat(),
                "end": (t0 + pd.Timedelta(minutes=299)).isoformat(),
                "step": "1m",
                "method": "previous",
            },
        }
    )
    frame = platform.lab.dataset(spec, "acme").frame
    assert len(frame) == 120 + HOLD_STEPS - 1  # the values held 4 more minutes into the silence, then no rows
    step = 60_000_000
    [(_, times, _)] = history_blocks(
        platform.historian,
        "acme",
        {"all": ["gap/A", "gap/B"]},
        to_us(t0),
        to_us(t0 + pd.Timedelta(minutes=299)),
        step,
        hold_us(step),
        0,
    )
    served = times[times >= to_us(t0)]
    trained = time_us(frame["time"])
    np.testing.assert_array_equal(trained, served)


def test_event_frames_are_labels_for_anomaly_and_fault_specs(lab: Platform) -> None:
    """Closed event frames of the named templates become targets (anomaly: 1 inside; fault: the template's name),
    beside or instead of labels; open ones, other templates and other tenants' count nowhere."""
    asset = "ulsan/cdu/p-101a"
    an = lab.analytics
    trip = an.open_event("acme", asset, "trip", start="2024-03-01T10:00:00Z")
    an.close_event("acme", trip["id"], end="2024-03-01T10:30:00Z")
    an.open_event("acme", asset, "trip", start="2024-03-03T20:00:00Z")  # still open: not a label
    other = an.open_event("acme", asset, "startup", start="2024-03-02T01:00:00Z")
    an.close_event("acme", other["id"], end="2024-03-02T01:10:00Z")
    base = {**SPEC, "labels": {"kinds": [], "events": ["trip"], "asset": asset}}
    frame = lab.lab.dataset(parse_spec(base), "acme").frame
    t = pd.to_datetime(frame["time"], utc=True)
    inside = (t >= pd.Timestamp("2024-03-01T10:00:00Z")) & (t < pd.Timestamp("2024-03-01T10:30:00Z"))
    assert frame.loc[inside, "target"].eq(1).all() and int(frame["target"].sum()) == int(inside.sum()) == 30
    both = lab.lab.dataset(parse_spec({**base, "labels": {**base["labels"], "kinds": ["anomaly"]}}), "acme").frame
    assert int(both["target"].sum()) == 30 + 120 + 90  # the labels' 2 h and 1.5 h as well
    fault = {**base, "task": "fault", "labels": {"kinds": [], "events": ["trip", "startup"], "asset": asset}}
    fault["model"] = {"kind": "lgbm_classifier"}
    got = lab.lab.dataset(parse_spec(fault), "acme").frame["target"].value_counts().to_dict()
    assert got["trip"] == 30 and got["startup"] == 10 and set(got) == {"normal", "trip", "startup"}
    with pytest.raises(InvalidInput):
        parse_spec({**base, "labels": {"events": ["x" * 200]}})


def test_a_dataset_of_event_frames_has_one_row_per_event_with_its_statistics(platform: Platform) -> None:
    """`data.source: events`: each closed event of the template is a row (its start, its asset, its duration and
    the statistics its template keeps), its target from the labels overlapping it; refused for a task without one
    row per event, and where the range holds no event."""
    shift = "    events:\n      shift: {label: shift, stats: [flow, discharge_pressure]}\n"
    plant = PLANT.replace("    derived:\n      anomaly_score", shift + "    derived:\n      anomaly_score", 1)
    platform.twin.load("acme", plant)
    _pump_history(platform)
    asset, an = "ulsan/cdu/p-101a", platform.analytics
    spans = [
        ("2024-03-01T02:00", "2024-03-01T03:00"),
        ("2024-03-01T14:00", "2024-03-01T15:00"),
        ("2024-03-02T06:30", "2024-03-02T07:30"),  # inside the first labelled anomaly
        ("2024-03-02T20:00", "2024-03-02T21:00"),
        ("2024-03-03T12:15", "2024-03-03T13:00"),  # inside the second
        ("2024-03-03T18:00", "2024-03-03T19:30"),
    ]
    for a, b in spans:
        e = an.open_event("acme", asset, "shift", start=a + ":00Z")
        an.close_event("acme", e["id"], end=b + ":00Z")
    an.open_event("acme", asset, "shift", start="2024-03-03T20:00:00Z")  # open: no row
    spec = {
        **SPEC,
        "data": {"source": "events", "template": "shift", "start": "2024-03-01", "end": "2024-03-04"},
        "features": {"windows": [1], "stats": ["mean"]},
        "register_as": None,
    }
    data = platform.lab.dataset(parse_spec(spec), "acme")
    frame = data.frame
    assert len(frame) == 6 and set(frame["unit"]) == {asset}
    assert frame["target"].tolist() == [0, 0, 1, 0, 1, 0]
    assert frame["duration_s"].tolist() == [3600.0, 3600.0, 3600.0, 3600.0, 2700.0, 5400.0]
    assert {"flow.max", "flow.mean", "discharge_pressure.min"} <= set(data.signals)
    points = platform.historian.read("acme", [FT], "2024-03-01T02:00:00Z", "2024-03-01T03:00:01Z")  # over [start, end]
    assert frame["flow.max"].iloc[0] == pytest.approx(max(points.column("value").to_pylist()))
    assert data.lineage["source"] == "events" and data.lineage["events"] == 6
    with pytest.raises(InvalidInput, match="one row per event") as err:
        platform.lab.dataset(parse_spec({**spec, "task": "rul", "model": {"kind": "lgbm_regressor"}}), "acme")
    assert err.value.where == "task"
    empty = {**spec, "data": {**spec["data"], "start": "2025-01-01", "end": "2025-02-01"}}
    with pytest.raises(InvalidInput, match="no closed event of template 'shift'"):
        platform.lab.dataset(parse_spec(empty), "acme")
    with pytest.raises(InvalidInput, match=r"data\.template"):
        parse_spec({**spec, "data": {"source": "events", "start": "2024-03-01", "end": "2024-03-04"}})
