"""One alarm state machine for the lab and the live alert rules (taehwa.lab.alarms): its on-delay, hysteresis and
quiet period; the same series gives the same alarms as lab decisions and as live alerts raised and cleared by the
rule engine of a real platform; a limit calibrated on normal running to a false-alarm rate per week; and a deployed
anomaly model whose score rule takes the model's calibrated alarm, so its alerts are its event-level decisions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from taehwa.core.timeutil import parse_time
from taehwa.lab.alarms import AlarmPolicy, AlarmState, alarm_flags, calibrate, episodes, events
from taehwa.server.platform import Platform
from tests.test_live import T0, TRAIN_S, outputs, plant_yaml, pump_rows, trained


def _us(seconds: Any) -> np.ndarray:
    return (np.asarray(seconds, dtype=np.int64) * 1_000_000).astype(np.int64)


def test_on_delay_hysteresis_and_quiet_period() -> None:
    """Raised only after the condition held 2 s; not cleared inside the deadband; a return within the quiet period
    is the same alarm; cleared once quiet for 3 s."""
    p = AlarmPolicy(limit=10.0, hysteresis=2.0, min_duration_s=2.0, quiet_s=3.0)
    v = [5, 11, 12, 13, 9, 11, 7, 7, 7, 7, 7, 11, 5]
    flags = alarm_flags(_us(np.arange(len(v))), np.array(v, float), p)
    #          5  11 12 13 9  11 7  7  7  7  7  11 5
    assert flags.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert events(_us(np.arange(len(v))), np.array(v, float), p) == [(3_000_000, "raise"), (9_000_000, "clear")]
    # 9 is inside the deadband (limit 10 − hysteresis 2 = 8): the condition stays on, no quiet period begins
    st = AlarmState()
    for t, x in enumerate([11, 11, 11, 9, 9, 9, 9, 9]):
        st.value(t * 1_000_000, x, p)
    assert st.raised and st.on
    # a lone spike over the limit (shorter than the on-delay) raises nothing; a falling limit ("<") works alike
    assert alarm_flags(_us(np.arange(4)), np.array([20.0, 1, 1, 1]), p).sum() == 0
    low = AlarmPolicy(limit=1.0, op="<", min_duration_s=0.0)
    assert alarm_flags(_us(np.arange(3)), np.array([2.0, 0.5, 2.0]), low).tolist() == [0, 1, 0]
    # per unit: each unit's alarm starts afresh
    g = np.array(["a", "a", "b", "b"])
    assert alarm_flags(_us([0, 1, 0, 1]), np.array([20.0, 20, 1, 20]), AlarmPolicy(limit=10), g).tolist() == [
        1,
        1,
        0,
        1,
    ]


def feed(p: Platform, tag: str, values: np.ndarray) -> None:
    p.historian.write(
        "acme", [{"tag": tag, "time": T0 + pd.Timedelta(seconds=k), "value": float(v)} for k, v in enumerate(values)]
    )
    p.live.engine.drain()


def test_lab_decisions_and_live_alerts_agree_on_the_same_series(platform: Platform) -> None:
    """A noisy series with bursts, decided by the lab's state machine and by a live threshold rule with the same
    limit, hysteresis, on-delay and quiet period: the same alarms, raised and cleared at the same data times."""
    platform.twin.load("acme", plant_yaml())
    rng = np.random.default_rng(3)
    v = 20 + rng.standard_normal(400)
    for a, b in ((50, 58), (60, 63), (120, 121), (200, 240), (300, 304), (307, 330)):
        v[a:b] += 6 + rng.standard_normal(b - a)
    policy = AlarmPolicy(limit=24.0, hysteresis=1.5, min_duration_s=2.0, quiet_s=4.0)
    platform.live.rules.put(
        "acme",
        {
            "name": "pt-high",
            "kind": "threshold",
            "tag": "P0/PT",
            "value": 24.0,
            "hysteresis": 1.5,
            "min_duration_s": 2.0,
            "quiet_s": 4.0,
        },
    )
    platform.live.engine.refresh(force=True)
    for chunk in np.array_split(np.arange(len(v)), 7):  # in several batches, as points arrive
        platform.historian.write(
            "acme", [{"tag": "P0/PT", "time": T0 + pd.Timedelta(seconds=int(k)), "value": float(v[k])} for k in chunk]
        )
        platform.live.engine.drain()
    lab = events(_us(np.arange(len(v))), v, policy)
    raised = [t for t, e in lab if e == "raise"]
    cleared = [t for t, e in lab if e == "clear"]
    assert len(raised) >= 3 and len(raised) < 6  # flickers within the quiet period fold into one alarm
    alerts = sorted(platform.live.alerts.list("acme"), key=lambda a: a["id"])
    assert [
        int(parse_time(a["chain"]["window"]["end"]).timestamp() * 1e6) - int(T0.timestamp() * 1e6) for a in alerts
    ] == raised
    notes = [
        platform.live.alerts.get("acme", a["id"])["history"][-1]["note"] for a in alerts if a["state"] == "resolved"
    ]
    assert all(
        (T0 + pd.Timedelta(microseconds=t)).isoformat() in (n or "") for t, n in zip(cleared, notes, strict=True)
    )
    assert len(notes) == len(cleared)
    # the lab's flags are on exactly from each raise to its clear
    flags = alarm_flags(_us(np.arange(len(v))), v, policy)
    assert episodes(flags) == len(alerts)
    on = np.flatnonzero(np.diff(np.r_[0, flags]) == 1) * 1_000_000
    assert on.tolist() == raised


def test_calibration_meets_its_false_alarm_target_on_normal_running() -> None:
    """Four weeks of normal running at 1 min: at most 2 alarms a week means at most 8 on it; a stricter target
    raises the limit; and a longer on-delay lets the limit come down."""
    rng = np.random.default_rng(0)
    n = 4 * 7 * 1440
    t = _us(np.arange(n) * 60)
    s = np.abs(rng.standard_normal(n)) + 0.3 * np.sin(np.arange(n) / 500)
    loose = calibrate(t, s, target_per_week=2.0, min_duration_s=120, quiet_s=600)
    strict = calibrate(t, s, target_per_week=0.25, min_duration_s=120, quiet_s=600)
    assert loose.allowed == 8 and loose.episodes <= 8 and strict.allowed == 1 and strict.episodes <= 1
    assert strict.policy.limit > loose.policy.limit
    assert loose.normal_hours == pytest.approx(n / 60, rel=1e-3)
    quick = calibrate(t, s, target_per_week=2.0, min_duration_s=0, quiet_s=600)
    assert quick.policy.limit > loose.policy.limit
    # the limit is the lowest that meets the target: a little lower raises more than allowed
    lower = AlarmPolicy(
        limit=loose.policy.limit * 0.97, hysteresis=loose.policy.limit * 0.097, min_duration_s=120, quiet_s=600
    )
    assert episodes(alarm_flags(t, s, lower)) > 8


def test_score_rule_takes_the_models_calibrated_alarm(platform: Platform) -> None:
    """A deployed anomaly model's `anomaly` output is its event-level decision, and a score rule without a value
    raises exactly at its on-edges (the lab's state machine in both places)."""
    trained(platform)
    platform.live.deploy("acme", {"name": "pumps", "model": "pump-pca", "asset_type": "Pump"})
    pipe = platform.live.models.get("acme", "pump-pca", None)[0]
    assert pipe.alarm is not None and pipe.alarm.episodes <= pipe.alarm.allowed
    platform.live.rules.put("acme", {"name": "pump-anomaly", "kind": "score", "asset_type": "Pump"})
    platform.live.scorer.refresh(force=True)
    platform.live.engine.refresh(force=True)
    platform.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 30))
    platform.historian.write("acme", pump_rows(TRAIN_S + 30, TRAIN_S + 60, broken={3}))
    platform.historian.write("acme", pump_rows(TRAIN_S + 60, TRAIN_S + 90))
    platform.live.scorer.drain()
    platform.live.engine.drain()
    decided = outputs(platform, "site/p3/anomaly")
    flags = decided["value"].to_numpy().astype(int)
    assert flags.sum() > 0
    on = decided["time"].to_numpy()[np.flatnonzero(np.diff(np.r_[0, flags]) == 1)]
    alerts = [a for a in platform.live.alerts.list("acme") if a["asset"] == "site/p3"]
    assert [pd.Timestamp(a["chain"]["window"]["end"]) for a in sorted(alerts, key=lambda a: a["id"])] == [
        pd.Timestamp(x, tz="UTC") if pd.Timestamp(x).tzinfo is None else pd.Timestamp(x) for x in on
    ]
    assert all("calibrated alarm" in a["message"] for a in alerts)


def test_rows_fall_on_the_datas_own_times() -> None:
    """Points half a second past each second make rows half a second past each second, live (UnitRows) and in a
    backfill's grid alike; jitter either side of whole seconds keeps the phase at 0, not half a step."""
    from taehwa.live.rows import UnitRows, grid_between, phase_of

    step = 1_000_000
    t = np.arange(100, dtype=np.int64) * step + 500_000
    unit = UnitRows(1, step, 5 * step, 2 * step)
    for x in t.tolist():
        unit.add(0, x, 1.0)
    times, _ = unit.take()
    assert len(times) >= 95 and set((times % step).tolist()) == {500_000}
    assert phase_of([t], step) == 500_000
    assert set((grid_between(int(t[0]) - 1, int(t[-1]), step, phase_of([t], step)) % step).tolist()) == {500_000}
    jitter = np.arange(100, dtype=np.int64) * step + np.where(np.arange(100) % 2, 2_000, -2_000)
    assert min(phase_of([jitter], step), step - phase_of([jitter], step)) < 10


def test_a_score_rule_on_the_calibrated_alarm_is_said_in_the_pages_language() -> None:
    """A score rule without a value (the model's calibrated alarm) carries its own message key, so a Korean page
    says it in Korean; a rule's own message stays as written."""
    from taehwa.live.rules import Rule, parse_rule
    from taehwa.web.i18n import say

    rule = Rule(
        "t", parse_rule({"name": "pump", "kind": "score", "asset_type": "CentrifugalPump", "min_duration_s": 10})
    )
    key = rule.message_key()
    assert key == {"key": "rule.score_alarm", "params": {"what": "anomaly_score"}}
    alert = {"message": rule.describe(), "chain": {"message": key}}
    assert say(alert, "en") == "anomaly_score: the model's calibrated alarm"
    assert say(alert, "ko") == "anomaly_score: 모델의 보정된 경보"
    # an alert raised before keys were kept: its chain's rule says it the same way
    assert say({"message": rule.describe(), "chain": {"rule": rule.to_dict()}}, "ko") == say(alert, "ko")
    hot = Rule("t", parse_rule({"name": "hot", "kind": "threshold", "tag": "p/T", "value": 50, "min_duration_s": 5}))
    assert say({"message": hot.describe(), "chain": {"rule": hot.to_dict()}}, "en") == "p/T > 50 for 5 s"
    assert say({"message": "as stored", "chain": {"rule": {"kind": "threshold"}}}, "ko") == "as stored"
    own = Rule("t", parse_rule({"name": "p", "kind": "score", "asset_type": "X", "message": "pump trip"}))
    assert say({"message": "pump trip", "chain": {"message": own.message_key()}}, "ko") == "pump trip"
