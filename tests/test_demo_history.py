"""The demo plant's labelled history and the ready lab specs that train on it (real TEP and C-MAPSS data in the
plant's own tags), loaded once however often `demo load` runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taehwa.core.errors import InvalidInput
from taehwa.core.settings import default_shared_data
from taehwa.demo import DEMO_TENANT
from taehwa.demo.history import FLEET, REFINERY, load_plant_history
from taehwa.lab.spec import load_spec, ready_specs
from taehwa.server.platform import Platform

ENGINES = 12


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from taehwa.core.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("demo") / "data")
    p = Platform(settings, background=False)
    first = load_plant_history(p, default_shared_data(), DEMO_TENANT, engines=ENGINES)
    yield p, first
    p.close()


def test_history_and_labels_land_once(demo: Any) -> None:
    p, first = demo
    # 52 TEP tags × 31,700 samples, and 24 signals of each engine's life
    assert first["labels"] == 42 + ENGINES and first["points"] > 52 * 31_700
    again = load_plant_history(p, default_shared_data(), DEMO_TENANT, engines=ENGINES)
    assert again == {"points": 0, "labels": 0}
    faults = p.labels.rows(DEMO_TENANT, asset=REFINERY)
    assert sorted({r.kind for r in faults}) == [f"idv{k:02d}" for k in range(1, 22)]
    failures = p.labels.rows(DEMO_TENANT, kinds=["failure"])
    assert len(failures) == ENGINES and all(r.asset.startswith(FLEET + "/engine-") for r in failures)
    assert {"refinery-fault-detection", "refinery-fault-diagnosis", "engine-shop-rul"} <= set(ready_specs())


def test_the_refinery_and_engine_models_pass_the_gate_and_score_live(demo: Any) -> None:
    """`demo load` trains the refinery's fault detector and the engines' RUL model on the history, promotes each
    through the gate on its own merits (never forced) and deploys it, so every site shows model outputs."""
    from taehwa.demo.history import deploy_demo_models

    p, _ = demo
    done = deploy_demo_models(p, DEMO_TENANT, speed=60.0, only=["refinery-fault-detection", "engine-shop-rul"])
    assert [e["deployment"] for e in done] == ["reaction-unit", "engine-rul"], done
    assert all(e["gate"]["passed"] and not e["gate"]["forced"] for e in done)
    tep = p.lab.get_run(DEMO_TENANT, done[0]["run_id"])
    m = tep["metrics"]
    assert m["events"] == 21 and m["event_recall"] == 1.0  # the 21 test faults, none of the training runs
    assert tep["lineage"]["rows"] == 31_700 and len(tep["lineage"]["tags"]) == 52
    # most test rows are faulty: always-on matches point F1 and event F1, so the gate judges balanced accuracy
    assert not tep["informative"]["f1"]["informative"] and tep["informative"]["f1"]["beaten_by"] == "always_on"
    assert (
        tep["gate"]["metric"] == "balanced_accuracy"
        and m["balanced_accuracy"] > 0.8 > tep["blind"]["clock"]["balanced_accuracy"]
    )
    assert m["far_pct"] < 5  # limits from the normal training run d00 only, checked on unseen normal samples
    rul = p.lab.get_run(DEMO_TENANT, done[1]["run_id"])
    assert rul["lineage"]["units"] == ENGINES and rul["metrics"]["rmse"] < 0.6 * rul["baseline"]["metrics"]["rmse"]
    p.live.scorer.refresh(force=True)
    status = p.live.scorer.status(DEMO_TENANT, "reaction-unit")
    assert status["running"] and status["assets"] == 1 and status["step_s"] == 3.0
    assert p.live.scorer.status(DEMO_TENANT, "engine-rul")["assets"] == 100  # every engine of the fleet


def test_refinery_fault_diagnosis_spec_names_the_faults(demo: Any) -> None:
    p, _ = demo
    spec = load_spec(Path("refinery-fault-diagnosis"))
    quick = spec.model_copy(update={"model": spec.model.model_copy(update={"params": {"n_estimators": 15}})})
    doc = p.lab.run(DEMO_TENANT, quick, mode="train", track=False)
    assert doc["metrics"]["macro_f1"] > 0.4 > doc["baseline"]["metrics"]["macro_f1"]


def test_a_holdout_time_outside_the_data_is_refused(demo: Any) -> None:
    p, _ = demo
    spec = load_spec(Path("refinery-fault-detection"))
    bad = spec.model_copy(update={"split": spec.split.model_copy(update={"at": "2030-01-01T00:00:00Z"})})
    with pytest.raises(InvalidInput, match=r"split\.at"):
        p.lab.run(DEMO_TENANT, bad, mode="evaluate", track=False)


def test_the_live_pump_station_is_scored_by_its_deployed_model(demo: Any) -> None:
    """`demo load` trains the pump station's detector on its own normal running, promotes it through the gate and
    deploys it: live points of the pump are scored into its anomaly_score, low while it runs as in its history,
    high when it does not."""
    import pandas as pd

    from taehwa.demo.history import PUMP_HISTORY_START, deploy_pump_model

    p, _ = demo
    deployed = deploy_pump_model(p, DEMO_TENANT)
    assert deployed is not None and deployed["version"] == 1 and not deployed["gate"]["forced"]
    assert deploy_pump_model(p, DEMO_TENANT) is None  # once
    p.live.scorer.refresh(force=True)
    status = p.live.scorer.status(DEMO_TENANT, "pump-station")
    assert status["running"] and status["assets"] == 1 and not status["skipped"]
    signals = ["vibration_de", "vibration_nde", "discharge_pressure", "flow"]
    past = p.historian.read(
        DEMO_TENANT,
        [f"skab/live/{s}" for s in signals],
        PUMP_HISTORY_START.to_pydatetime(),
        (PUMP_HISTORY_START + pd.Timedelta(seconds=120)).to_pydatetime(),
    ).to_pandas()
    normal = past.pivot(index="time", columns="tag", values="value")
    t0 = pd.Timestamp("2026-11-30T08:00:00Z")
    step = pd.Timedelta(seconds=1 / 60)  # replayed at 60×, as the deployment's rows are spaced
    rows = []
    for k, (_, r) in enumerate(normal.iterrows()):
        broken = k >= 60  # the second minute: flow collapses and vibration doubles (a cavitating pump)
        for s in signals:
            v = float(r[f"skab/live/{s}"])
            v = v * 0.3 if broken and s == "flow" else v * 2 if broken and s.startswith("vibration") else v
            rows.append({"tag": f"skab/live/{s}", "time": (t0 + k * step).isoformat(), "value": v})
    p.historian.write(DEMO_TENANT, rows)
    p.live.scorer.drain()
    tag = "ulsan-water/pump-station/circulation/pump-1/anomaly_score"
    scores = (
        p.historian.read(DEMO_TENANT, [tag], t0.to_pydatetime(), (t0 + pd.Timedelta(minutes=3)).to_pydatetime())
        .to_pandas()["value"]
        .to_numpy()
    )
    assert len(scores) >= 115
    assert scores[25:55].max() < 1.0 < scores[-30:].min()
    state = p.twin.state(DEMO_TENANT, "ulsan-water/pump-station/circulation/pump-1")
    assert state["signals"]["anomaly_score"]["limit_state"] == "alarm"
