"""The demo's live pump model is believable: trained on the pump's past normal running only, it passes the gate on
its own merits (false alarms on held-out normal running; never forced), and scoring the live replay as the running
demo does keeps normal running under its control limit while SKAB's valve anomalies cross it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from taehwa.core.settings import default_shared_data
from taehwa.demo import DEMO_TENANT
from taehwa.demo.history import (
    PUMP_DEPLOYMENT,
    PUMP_MODEL,
    deploy_demo_models,
    live_step,
    load_demo_plant,
    load_pump_history,
)
from taehwa.demo.plant import PUMP_HISTORY_RUNS, PUMP_LIVE_RUNS, PUMP_NORMAL_ROWS
from taehwa.replay.player import Replayer, historian_sink
from taehwa.server.platform import Platform

PUMP = "ulsan-water/pump-station/circulation/pump-1"
SPEED = 60.0


@pytest.fixture(scope="module")
def pump(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo plant in the twin with only the pump's history, its model trained, promoted and deployed."""
    from taehwa.core.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("demo-models") / "data")
    p = Platform(settings, background=False)
    shared = default_shared_data()
    sources = load_demo_plant(p, shared, DEMO_TENANT)
    load_pump_history(p, DEMO_TENANT, shared)
    p.historian.flush()
    done = deploy_demo_models(p, DEMO_TENANT, speed=SPEED, only=[PUMP_MODEL])
    yield p, done, next(s for s in sources if s.name.startswith("SKAB"))
    p.close()


def test_the_pump_history_and_the_live_replay_do_not_overlap() -> None:
    assert not set(PUMP_HISTORY_RUNS) & set(PUMP_LIVE_RUNS)


def test_the_pump_model_passes_the_gate_without_force(pump: Any) -> None:
    p, done, _ = pump
    assert len(done) == 1 and done[0]["deployment"] == PUMP_DEPLOYMENT and "refused" not in done[0]
    assert done[0]["gate"]["passed"] and not done[0]["gate"]["forced"]
    assert "label-free" in done[0]["criterion"] or "held-out normal running" in done[0]["criterion"]
    promoted = [e for e in p.lab.history(DEMO_TENANT, PUMP_MODEL) if e["action"] == "promote"]
    assert len(promoted) == 1 and promoted[0]["detail"]["forced"] is False and promoted[0]["detail"]["gate"] == "passed"
    run = p.lab.get_run(DEMO_TENANT, done[0]["run_id"])
    assert run["label_free"] and run["metrics"]["alarm_episodes"] == 0
    assert run["fitted_on"] == {"part": "train", "rows": run["folds"][0]["train_rows"]}
    dep = p.live.deployments.get(DEMO_TENANT, PUMP_DEPLOYMENT)
    assert dep.params["step"] == live_step("1s", SPEED) == "16667us"  # a row per replayed row at 60×
    rule = p.live.rules.get(DEMO_TENANT, "pump-anomaly")
    assert rule.spec.min_duration_s == pytest.approx(10 / SPEED, rel=1e-3)


def _replay(p: Platform, source: Any, rows: int) -> np.ndarray:
    """Replay the pump's first `rows` rows as the running demo does (at 60×, stamped now) and score them; the
    scores written."""
    first = source.runs[0]
    one = type(source)(source.name, source.interval_s, source.tags, [first])
    player = Replayer([one], SPEED, historian_sink(p.historian, DEMO_TENANT), max_catch_up=10_000)
    p.live.scorer.refresh(force=True)  # the scorer listens to the deployment's input tags from now on
    t0 = time.time() - rows / SPEED - 1
    player.step(t0)
    player.step(t0 + (rows - 1) / SPEED)
    p.live.scorer.drain()
    table = p.historian.read(
        DEMO_TENANT,
        [f"{PUMP}/anomaly_score"],
        pd.Timestamp(t0 - 1, unit="s", tz="UTC"),
        pd.Timestamp(t0 + rows / SPEED + 5, unit="s", tz="UTC"),
    ).to_pandas()
    return np.asarray(table["value"].to_numpy(float))


def test_normal_replay_stays_under_the_limit_and_the_anomaly_crosses_it(pump: Any) -> None:
    p, _, source = pump
    run = source.runs[0][1]
    labels = np.flatnonzero(np.diff(_anomaly_flags(PUMP_LIVE_RUNS[0])) == 1)
    start = int(labels[0]) + 1  # the first labelled anomaly of the first live run
    rows = start + 150
    scores = _replay(p, source, rows)
    assert len(scores) >= rows - 30, len(scores)  # a row of live scoring per replayed row
    assert start > PUMP_NORMAL_ROWS and len(run) > rows
    normal = scores[25 : start - 5]
    assert normal.max() < 1.0, normal.max()
    assert np.mean(scores[start + 20 : rows] > 1.0) > 0.5, scores[start:rows]
    state = p.twin.state(DEMO_TENANT, PUMP)
    assert state["signals"]["anomaly_score"]["limit_state"] in ("warning", "alarm")


def _anomaly_flags(run: str) -> np.ndarray:
    """SKAB's anomaly column of one run."""
    import pyarrow.csv as pacsv

    from taehwa.demo import skab_files

    path = dict(skab_files(default_shared_data()))[run]
    table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=";"))
    labels: np.ndarray = np.nan_to_num(table.column("anomaly").to_numpy(zero_copy_only=False).astype(float))
    return labels.astype(int)


def test_every_metered_demo_site_shows_its_power_demand_on_the_city_map(pump: Any) -> None:
    """A site's power demand on the city's map is a calculated signal of its own meters: the refinery's recycle
    compressor work (TEP), the water works' and the two other companies' pump motors (SKAB's voltage × current);
    the engine shop, whose C-MAPSS data has no electrical meter, shows none."""
    from taehwa.demo import skab_files
    from taehwa.demo.city import COMPANIES
    from taehwa.demo.plant import SKAB_COLUMNS, skab_rows
    from taehwa.tenancy.access import Principal, acting_as

    p, _, _ = pump
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    p.analytics.live.refresh(force=True)  # the live analytics follows the demo plant (a server does every 2 s)
    meters = [("tep/compressor/work", 341.4), ("skab/live/voltage", 229.0), ("skab/live/current", 1.5)]
    p.historian.write(DEMO_TENANT, [(tag, now, v) for tag, v in meters])
    p.analytics.live.drain()
    with acting_as(Principal("officer", roles={"city": "viewer"})):
        power = {s["site"]: s.get("power_kw") for s in p.city.map()["sites"]}
    assert power["ulsan-refinery"] == pytest.approx(341.4)
    assert power["ulsan-water"] == pytest.approx(229.0 * 1.5 / 1000)
    files = dict(skab_files(default_shared_data()))
    col = {sig: i for i, (_, sig, _) in enumerate(SKAB_COLUMNS.values())}
    for _, site, _, _, runs in COMPANIES.values():  # written once at load: the last row of each pump's run
        last = [skab_rows(files[run])[-1] for run in runs]
        assert power[site] == pytest.approx(sum(r[col["voltage"]] * r[col["current"]] / 1000 for r in last))
    assert power["engine-shop"] is None
