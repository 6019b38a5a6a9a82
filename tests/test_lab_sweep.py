"""Many small models at once: a hyperparameter sweep backtests every combination of a grid on one dataset, and gives
the same figures serially, over the local process pool and over a local Ray instance; bad grids are refused
before anything runs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from taehwa.core.errors import InvalidInput
from taehwa.lab import fanout
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as
from tests.test_lab_service import PLANT, SPEC, _pump_history

GRID = {"quantile": [0.99, 0.995], "explained_variance": [0.9, 1.0]}


@pytest.fixture
def lab(platform: Platform) -> Platform:
    platform.twin.load("acme", PLANT)
    _pump_history(platform)
    return platform


def _figures(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(repr(sorted(r["params"].items())), r["metrics"]) for r in doc["results"]]


def test_sweep_gives_the_same_figures_serially_over_the_pool_and_over_ray(lab: Platform) -> None:
    with acting_as(Principal("kim", roles={"acme": "engineer"})):
        serial = lab.lab.sweep("acme", SPEC, GRID, backend="serial")
    assert serial["combinations"] == 4 and serial["primary_metric"] == "f1"
    f1 = [r["metrics"]["f1"] for r in serial["results"]]
    assert f1 == sorted(f1, reverse=True) and serial["best"]["metrics"]["f1"] == max(f1)  # best first
    assert len({repr(r["params"]) for r in serial["results"]}) == 4
    pool = lab.lab.sweep("acme", SPEC, GRID, backend="pool", workers=2)
    assert _figures(pool) == _figures(serial)
    pytest.importorskip("ray")
    try:
        ray = lab.lab.sweep("acme", SPEC, GRID, backend="ray")
    finally:
        fanout.shutdown_ray()
    assert _figures(ray) == _figures(serial)
    sweeps = [e for e in lab.audit.entries("acme") if e["action"] == "lab.sweep"]
    assert [e["actor"] for e in sweeps] == ["kim"] and sweeps[0]["after"]["combinations"] == 4


def test_bad_grids_are_refused_before_anything_runs(lab: Platform) -> None:
    with pytest.raises(InvalidInput, match="no parameter 'depth'"):
        lab.lab.sweep("acme", SPEC, {"depth": [1, 2]}, backend="serial")
    with pytest.raises(InvalidInput, match="non-empty list"):
        lab.lab.sweep("acme", SPEC, {"quantile": 0.99}, backend="serial")
    with pytest.raises(InvalidInput, match="at most"):
        lab.lab.sweep(
            "acme", SPEC, {"quantile": list(range(100)), "explained_variance": list(range(100))}, backend="serial"
        )
    with pytest.raises(InvalidInput, match="backend"):
        fanout.run_all(len, [1, 2], None, backend="cluster")  # type: ignore[arg-type]


def test_sweep_over_http(lab: Platform, client: TestClient) -> None:
    r = client.post(
        "/api/v1/acme/lab/sweep", json={"spec": SPEC, "grid": {"quantile": [0.99, 0.995]}, "backend": "serial"}
    )
    assert r.status_code == 200 and r.json()["combinations"] == 2
    bad = client.post("/api/v1/acme/lab/sweep", json={"spec": SPEC, "grid": {"quantile": [0.99]}, "backend": "cluster"})
    assert bad.status_code == 422


def test_a_runs_backtest_folds_fan_out_with_the_same_result(lab: Platform) -> None:
    """Rolling-origin folds (and per-unit folds) are independent jobs: over the pool they give the same figures and
    the same out-of-sample rows as in one process."""
    from taehwa.lab.datasets import build_dataset
    from taehwa.lab.spec import parse_spec
    from taehwa.lab.validation import backtest

    spec = parse_spec(SPEC)
    data = build_dataset(spec, lab.lab, "acme")
    here = backtest(spec, data, "pca", spec.model.params)
    pooled = backtest(spec, data, "pca", spec.model.params, backend="pool")
    assert pooled.metrics == here.metrics and pooled.folds == here.folds
    assert pooled.rows.equals(here.rows)
    doc = lab.lab.run("acme", SPEC, mode="evaluate", backend="pool", track=False)
    assert doc["backend"] == "pool" and doc["metrics"]["f1"] == here.metrics["f1"]
