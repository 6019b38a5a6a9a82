"""The promotion gate judges each model by a criterion that fits it: a label-free anomaly detector by its false
alarms on held-out normal running (and the data-blind detectors must fail that target), a labelled one by the
figures a data-blind detector (always-on, never-on, a periodic clock) cannot match. Every run keeps its per-row
scores and decisions as Parquet; `fit_on: train` and a file's start/end narrow what a run learns from."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taehwa.core.errors import Conflict
from taehwa.lab.validation import BLIND, informative
from taehwa.server.platform import Platform
from tests.test_lab_service import ANOMALIES, FT, PLANT, PT, SPEC, _pump_history

START = pd.Timestamp("2024-05-01T00:00:00Z")


def _normal_history(platform: Platform, days: int = 3) -> None:
    """A pump running normally at 1 min for `days`: pressure follows flow; no anomaly was ever labelled."""
    rng = np.random.default_rng(11)
    t = pd.date_range(START, periods=days * 1440, freq="1min")
    flow = 100 + 5 * rng.standard_normal(len(t))
    pressure = 0.2 * flow + 0.2 * rng.standard_normal(len(t))
    platform.historian.write("acme", pd.DataFrame({"time": t, PT: pressure, FT: flow}), layout="wide")
    platform.historian.flush()


def _label_free(model: dict[str, Any], name: str = "quiet-pump") -> dict[str, Any]:
    """A label-free spec on the normal history: learn from the first 70 %, judge the rest."""
    return {
        "name": name,
        "task": "anomaly",
        "data": {"tags": [PT, FT], "start": "2024-05-01", "end": "2024-05-04", "step": "1m"},
        "features": {"windows": [5], "stats": ["mean"]},
        "model": model,
        "split": {"method": "holdout", "train_fraction": 0.7},
        "gate": {"false_alarms_per_day": 2, "min_alarm_s": 180},
        "register_as": {"name": name},
    }


@pytest.fixture
def normal(platform: Platform) -> Platform:
    platform.twin.load("acme", PLANT)
    _normal_history(platform)
    return platform


def test_a_calibrated_label_free_model_passes_on_its_false_alarms(normal: Platform) -> None:
    spec = _label_free({"kind": "pca", "params": {"explained_variance": 1, "quantile": 0.999, "limit_factor": 1.5}})
    doc = normal.lab.run("acme", spec, mode="train", track=False)
    assert doc["label_free"] and doc["gate"]["passed"], doc["gate"]
    m = doc["metrics"]
    assert m["alarm_episodes"] == 0 and m["false_alarms_per_day"] == 0.0
    assert m["normal_hours"] == pytest.approx(0.3 * 72, rel=0.02) and m["false_alarms_per_day_upper95"] < 4
    assert set(doc["blind"]) == set(BLIND)
    # always-on is one endless alarm (all the time in alarm); the clock alarms several times a day
    assert doc["blind"]["always_on"]["flagged_share"] == 1.0 and doc["blind"]["clock"]["false_alarms_per_day"] > 2
    assert "false alarms on held-out normal running" in doc["gate"]["criterion"]
    promoted = normal.lab.promote("acme", "quiet-pump", 1, "calibrated on normal running")  # no force
    assert promoted["gate"]["passed"] and not promoted["gate"]["forced"]
    assert "label-free" in promoted["gate"]["judged"]


def test_a_label_free_model_that_alarms_constantly_is_refused(normal: Platform) -> None:
    """Decided row by row (no calibrated alarm), a limit far too tight alarms nearly always and is refused; the
    same model with its alarm calibrated on the training normal running does not alarm constantly."""
    calibrated = normal.lab.run(
        "acme", _label_free({"kind": "zscore", "params": {"k": 0.05}}, name="tight-pump"), mode="evaluate", track=False
    )
    assert calibrated["metrics"]["flagged_share"] < 0.2
    spec = {**_label_free({"kind": "zscore", "params": {"k": 0.05}}, name="noisy-pump"), "alarm": {"enabled": False}}
    doc = normal.lab.run("acme", spec, mode="train", track=False)
    assert doc["label_free"] and not doc["gate"]["passed"]
    assert doc["metrics"]["flagged_share"] > 0.5
    with pytest.raises(Conflict, match=r"false alarms on held-out normal running.*over the target"):
        normal.lab.promote("acme", "noisy-pump", 1, "try")


def test_labelled_runs_carry_data_blind_baselines_and_skip_what_a_clock_beats(platform: Platform) -> None:
    platform.twin.load("acme", PLANT)
    _pump_history(platform)
    doc = platform.lab.run("acme", SPEC, mode="evaluate", track=False)
    assert not doc["label_free"] and set(doc["blind"]) == set(BLIND)
    assert doc["blind"]["always_on"]["recall"] == 1.0 and doc["blind"]["never_on"]["far_pct"] == 0.0
    info = doc["informative"]
    assert not info["far_pct"]["informative"] and info["far_pct"]["beaten_by"] == "never_on"
    assert info["f1"]["informative"] and doc["gate"]["metric"] == "f1" and doc["gate"]["passed"]
    # the same run's figures, where a clock scores a better F1: F1 is not counted, the gate judges by the next
    figures = {**doc["metrics"], "f1": 0.2}
    blind = {**doc["blind"], "clock": {**doc["blind"]["clock"], "f1": 0.5}}
    fake = {**doc, "metrics": figures, "blind": blind, "informative": informative(figures, blind)}
    assert fake["informative"]["f1"] == {"informative": False, "beaten_by": "clock", "value": 0.5}
    judged = platform.lab._judge(fake)
    assert judged["metric"] != "f1" and "f1 not informative here (a periodic clock" in judged["notes"][0]
    assert "not informative here" in platform.lab.report_html("acme", doc["run_id"])


def test_runs_keep_per_row_scores_and_decisions(platform: Platform, client: TestClient) -> None:
    platform.twin.load("acme", PLANT)
    _pump_history(platform)
    doc = platform.lab.run("acme", SPEC, mode="evaluate", track=False)
    path = platform.lab.run_dir("acme", doc["run_id"]) / "rows.parquet"
    rows = pd.read_parquet(path)
    assert {"time", "unit", "target", "pred", "score", "fold"} <= set(rows.columns)
    assert len(rows) == doc["rows"]["count"] == sum(f["test_rows"] for f in doc["folds"])
    assert rows["target"].sum() > 0 and set(rows["pred"].unique()) <= {0, 1}
    r = client.get(doc["rows"]["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.parquet"
    assert len(pd.read_parquet(io.BytesIO(r.content))) == len(rows)
    r = client.get(doc["rows"]["url"], params={"format": "json", "limit": 3})
    assert r.status_code == 200 and len(r.json()) == 3 and set(r.json()[0]) >= {"time", "score", "pred"}
    assert client.get("/api/v1/acme/lab/runs/ffffffffffffffff/rows").status_code == 404


def test_fit_on_train_learns_from_the_training_part_only(platform: Platform) -> None:
    platform.twin.load("acme", PLANT)
    _pump_history(platform)
    spec = {**SPEC, "register_as": None, "split": {"method": "holdout", "train_fraction": 0.5, "fit_on": "train"}}
    doc = platform.lab.run("acme", spec, mode="train", track=False)
    train_rows = doc["folds"][0]["train_rows"]
    half = pd.Timestamp("2024-03-02T12:00:00Z")  # 1.5 of the 3 days
    labelled = sum(
        int((pd.Timestamp(b) - pd.Timestamp(a)) / pd.Timedelta("1min")) for a, b in ANOMALIES if pd.Timestamp(b) <= half
    )  # normal-only: labelled anomalies of the training part are left out
    assert doc["fitted_on"] == {"part": "train", "rows": train_rows - labelled}
    everything = platform.lab.run(
        "acme", {**spec, "split": {**spec["split"], "fit_on": "all"}}, mode="train", track=False
    )
    assert everything["fitted_on"]["rows"] > doc["fitted_on"]["rows"]


def test_a_file_source_honours_start_and_end(platform: Platform, tmp_path: Path) -> None:
    t = pd.date_range("2024-01-01", periods=600, freq="1min", tz="UTC")
    rng = np.random.default_rng(2)
    path = tmp_path / "pump.csv"
    pd.DataFrame({"time": t, "flow": 100 + rng.standard_normal(600), "pressure": 20 + rng.standard_normal(600)}).to_csv(
        path, index=False
    )
    spec = {
        "name": "file-pump",
        "task": "anomaly",
        "data": {"source": "file", "file": str(path), "start": "2024-01-01T02:00:00Z", "end": "2024-01-01T07:00:00Z"},
        "model": {"kind": "pca"},
        "split": {"method": "holdout"},
    }
    doc = platform.lab.run("acme", spec, mode="evaluate", track=False)
    assert doc["lineage"]["rows"] == 300
    assert doc["lineage"]["time"] == ["2024-01-01T02:00:00+00:00", "2024-01-01T06:59:00+00:00"]
    whole = platform.lab.run(
        "acme", {**spec, "data": {"source": "file", "file": str(path)}}, mode="evaluate", track=False
    )
    assert whole["lineage"]["rows"] == 600 and whole["lineage"]["content_hash"] != doc["lineage"]["content_hash"]
