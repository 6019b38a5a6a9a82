"""Metrics per task, as the benchmarks and plant engineers count them.

- anomalies: point-wise precision/recall/F1 with false- and missed-alarm rates (SKAB's "binary" scoring), event-wise
  precision/recall/F1 (an anomaly interval counts once, found or not), false alarms per week, detection delay, and the
  NAB score of changepoints (Numenta's scoring as SKAB applies it: a window to the right of each true changepoint,
  the first detection inside scored on a tanh curve, every detection outside a false positive);
- faults: detection rate at a fixed false-alarm rate, macro F1, the confusion matrix;
- remaining useful life: RMSE and the PHM08 score; regression: RMSE, MAE, R².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Higher is better unless named here; the gate and the baseline comparison use this.
LOWER_IS_BETTER = {"rmse", "mae", "phm08_score", "far_pct", "mar_pct", "false_alarms_per_week",
                   "detection_delay_s", "false_alarm_rate"}
PRIMARY = {"anomaly": "f1", "fault": "macro_f1", "rul": "rmse", "soft_sensor": "rmse", "forecast": "rmse"}


def json_safe(v: Any) -> Any:
    """Figures as JSON can hold them: NaN and infinities → None, numpy scalars → Python, keys → strings."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def better(metric: str, a: float, b: float) -> bool:
    """Whether value `a` of `metric` is strictly better than `b`."""
    return a < b if metric in LOWER_IS_BETTER else a > b


def _intervals(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of each run of 1s."""
    f = np.asarray(flags).astype(int)
    d = np.diff(np.concatenate([[0], f, [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def pointwise(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Row-by-row confusion with F1 (SKAB rounds none here), FAR and MAR in %."""
    t, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    tp, fp = int((t & p).sum()), int((~t & p).sum())
    fn, tn = int((t & ~p).sum()), int((~t & ~p).sum())
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": tp / (tp + (fn + fp) / 2) if tp + fn + fp else 0.0,
            "far_pct": 100.0 * fp / (fp + tn) if fp + tn else 0.0,
            "mar_pct": 100.0 * fn / (fn + tp) if fn + tp else 0.0}


def eventwise(y_true: np.ndarray, y_pred: np.ndarray, times_s: np.ndarray) -> dict[str, float]:
    """An anomaly interval is found when any alarm falls in it; an alarm interval that touches no anomaly is a
    false alarm. Delay is from each found interval's start to its first alarm."""
    truth, alarms = _intervals(y_true), _intervals(y_pred)
    found, delays = 0, []
    for a, b in truth:
        hit = np.flatnonzero(np.asarray(y_pred)[a:b])
        if len(hit):
            found += 1
            delays.append(float(times_s[a + hit[0]] - times_s[a]))
    t = np.asarray(y_true).astype(bool)
    false = sum(1 for a, b in alarms if not t[a:b].any())
    true_alarms = len(alarms) - false
    precision = true_alarms / len(alarms) if alarms else 0.0
    recall = found / len(truth) if truth else 0.0
    span_s = float(times_s[-1] - times_s[0]) if len(times_s) > 1 else 0.0
    normal_s = span_s * (1 - t.mean()) if len(t) else 0.0
    return {"events": len(truth), "events_found": found, "event_precision": precision, "event_recall": recall,
            "event_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "false_alarms": false,
            "false_alarms_per_week": false / (normal_s / 604800.0) if normal_s > 0 else 0.0,
            "detection_delay_s": float(np.mean(delays)) if delays else float("nan")}


@dataclass(frozen=True)
class NabProfile:
    """NAB's weights: reward of a timely detection, cost of a false one, cost of a miss."""

    a_tp: float = 1.0
    a_fp: float = -0.11
    a_fn: float = -1.0


NAB_PROFILES = {"standard": NabProfile(), "low_fp": NabProfile(a_fp=-0.22), "low_fn": NabProfile(a_fn=-2.0)}


def nab_counts(true_cp_s: np.ndarray, detections_s: np.ndarray, window_s: float = 60.0,
               profile: NabProfile = NAB_PROFILES["standard"]) -> tuple[float, float, float]:
    """(score, null score, perfect score) of one series; add them over series, then `nab_normalise`.
    Windows start at each true changepoint and reach `window_s` to the right; overlaps are cut from the right
    window; the first detection inside a window scores on a tanh curve from a_tp (at once) to a_fp (at its end)."""
    bounds = [[float(t), float(t) + window_s] for t in sorted(np.asarray(true_cp_s, float))]
    for i in range(len(bounds) - 1):
        if bounds[i][1] >= bounds[i + 1][0]:
            bounds[i + 1][0] = bounds[i][1]
    det = np.sort(np.asarray(detections_s, float))
    x = np.linspace(-np.pi / 2, np.pi / 2, 1000)
    half = (profile.a_tp - profile.a_fp) / 2
    curve = half * -np.tanh(x) / np.tanh(np.pi / 2) + half + profile.a_fp
    inside = np.zeros(len(det), dtype=bool)
    score = 0.0
    for lo, hi in bounds:
        m = (det >= lo) & (det <= hi)
        if m.any():
            inside |= m
            first = det[m][0]
            pos = int((first - lo) / (hi - lo) * 1000) if hi > lo else 0
            score += float(curve[min(pos, 999)])
        else:
            score += profile.a_fn
    score += profile.a_fp * int((~inside).sum())
    return score, len(bounds) * profile.a_fn, len(bounds) * profile.a_tp


def nab_normalise(score: float, null: float, perfect: float) -> float:
    """100 for a perfect detector, 0 for one that never fires."""
    return 100.0 * (score - null) / (perfect - null) if perfect != null else 0.0


def changepoints(flags: np.ndarray, score: np.ndarray | None = None, *, min_gap: int = 30,
                 level_shift: float = 0.5) -> np.ndarray:
    """Indices where the alarm state changes, plus (while in alarm) where the log anomaly score has moved by more
    than `level_shift` since the last change and at least `min_gap` rows have passed: a fault's course has
    changed (a valve closing further, a transient ending)."""
    f = np.asarray(flags).astype(int)
    ls = np.log(np.maximum(np.asarray(score, float), 1e-9)) if score is not None else None
    out: list[int] = []
    ref, last = 0.0, -(10 ** 9)
    for i in range(1, len(f)):
        if f[i] != f[i - 1]:
            out.append(i)
            last = i
            ref = float(ls[i]) if ls is not None else 0.0
        elif ls is not None and f[i] == 1 and level_shift > 0 and i - last >= min_gap and \
                abs(float(ls[i]) - ref) > level_shift:
            out.append(i)
            last = i
            ref = float(ls[i])
    return np.asarray(out, dtype=int)


def anomaly_metrics(y_true: np.ndarray, y_pred: np.ndarray, times_s: np.ndarray,
                    score: np.ndarray | None = None, true_cp: np.ndarray | None = None) -> dict[str, Any]:
    """Every anomaly figure for one series (or several concatenated, when the caller sums the NAB parts)."""
    out: dict[str, Any] = {**pointwise(y_true, y_pred), **eventwise(y_true, y_pred, times_s)}
    cps = true_cp if true_cp is not None else np.asarray(
        [a for a, _ in _intervals(y_true)] + [b for _, b in _intervals(y_true) if b < len(y_true)], dtype=int)
    det = changepoints(y_pred, score)
    s, n, p = nab_counts(times_s[np.asarray(cps, int)], times_s[det] if len(det) else np.array([]))
    out.update({"nab_score": s, "nab_null": n, "nab_perfect": p, "nab_standard": nab_normalise(s, n, p)})
    return out


def detection_rate_at_far(normal_score: np.ndarray, fault_score: np.ndarray, far: float = 0.05
                          ) -> dict[str, float]:
    """The limit that lets `far` of normal rows alarm, and the share of faulty rows over it."""
    limit = float(np.quantile(normal_score, 1 - far)) if len(normal_score) else float("inf")
    return {"limit": limit, "false_alarm_rate": float(np.mean(normal_score > limit)) if len(normal_score) else 0.0,
            "detection_rate": float(np.mean(fault_score > limit)) if len(fault_score) else 0.0}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix (labels in sorted order)."""
    from sklearn.metrics import confusion_matrix, f1_score

    t, p = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    labels = sorted(set(t) | set(p))
    return {"accuracy": float(np.mean(t == p)) if len(t) else 0.0,
            "macro_f1": float(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
            "labels": labels, "confusion": confusion_matrix(t, p, labels=labels).tolist()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    err = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum()) if len(t) else 0.0
    return {"rmse": float(np.sqrt(np.mean(err ** 2))) if len(t) else float("nan"),
            "mae": float(np.mean(np.abs(err))) if len(t) else float("nan"),
            "r2": 1.0 - float((err ** 2).sum()) / ss_tot if ss_tot > 0 else 0.0}


def phm08_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """PHM08's asymmetric score: late predictions (d > 0) cost exp(d/10) − 1, early ones exp(−d/13) − 1."""
    d = np.asarray(y_pred, float) - np.asarray(y_true, float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1, np.exp(d / 10.0) - 1)))


def rul_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {**regression_metrics(y_true, y_pred), "phm08_score": phm08_score(y_true, y_pred)}
