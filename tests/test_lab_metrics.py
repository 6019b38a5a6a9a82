"""The metrics against figures worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from taehwa.lab import metrics as M


def test_pointwise_and_eventwise() -> None:
    y = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0])
    p = np.array([0, 1, 0, 1, 1, 0, 0, 0, 0, 0])
    pw = M.pointwise(y, p)
    assert (pw["tp"], pw["fp"], pw["fn"], pw["tn"]) == (2, 1, 3, 4)
    assert pw["f1"] == pytest.approx(2 / (2 + 2))
    ev = M.eventwise(y, p, np.arange(10.0) * 60)
    assert ev["events"] == 2 and ev["events_found"] == 1
    assert ev["false_alarms"] == 1  # the alarm at row 1 touches no anomaly
    assert ev["detection_delay_s"] == 60.0


def test_nab_perfect_null_and_late() -> None:
    cps = np.array([100.0, 1000.0])
    assert M.nab_normalise(*M.nab_counts(cps, cps)) == pytest.approx(100.0, abs=0.2)
    assert M.nab_normalise(*M.nab_counts(cps, np.array([]))) == 0.0
    late = M.nab_normalise(*M.nab_counts(cps, cps + 55))
    early = M.nab_normalise(*M.nab_counts(cps, cps + 5))
    assert 0 < late < early < 100
    # a detection outside every window costs a_fp
    s, null, perfect = M.nab_counts(cps, np.array([500.0]))
    assert (null, perfect) == (-2.0, 2.0)
    assert s == pytest.approx(-1 - 1 - 0.11)


def test_changepoints_from_alarm_edges_and_level_shifts() -> None:
    flags = np.array([0] * 10 + [1] * 100 + [0] * 10)
    score = np.r_[np.full(10, 0.5), np.full(50, 2.0), np.full(50, 10.0), np.full(10, 0.5)]
    cps = M.changepoints(flags, score, min_gap=30, level_shift=0.5)
    assert cps.tolist() == [10, 60, 110]


def test_rul_and_regression() -> None:
    t, p = np.array([10.0, 20.0]), np.array([13.0, 18.0])
    assert M.phm08_score(t, p) == pytest.approx((np.exp(0.3) - 1) + (np.exp(2 / 13) - 1))
    r = M.rul_metrics(t, p)
    assert r["rmse"] == pytest.approx(np.sqrt((9 + 4) / 2))
    assert M.regression_metrics(t, t)["r2"] == 1.0
    assert M.better("rmse", 1.0, 2.0) and M.better("f1", 0.8, 0.7) and not M.better("f1", 0.7, 0.7)


def test_classification_and_detection_rate() -> None:
    c = M.classification_metrics(np.array(["a", "b", "b"]), np.array(["a", "b", "a"]))
    assert c["confusion"] == [[1, 0], [1, 1]] and c["accuracy"] == pytest.approx(2 / 3)
    d = M.detection_rate_at_far(np.arange(100.0), np.array([98.5, 200.0, 10.0]), far=0.05)
    assert d["false_alarm_rate"] <= 0.05 and d["detection_rate"] == pytest.approx(2 / 3)
