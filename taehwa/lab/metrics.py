"""Metrics per task, as the benchmarks and plant engineers count them.

- anomalies: point-wise precision/recall/F1 with false- and missed-alarm rates (SKAB's "binary" scoring), event-wise
  precision/recall/F1 (an anomaly interval counts once, found or not), false alarms per week, detection delay, and the
  NAB score of changepoints in two conventions, each named where it is reported: SKAB's scorer (`nab_counts`: a
  60 s window to the right of each true changepoint, the first detection inside scored on a tanh curve, every
  detection outside a false positive) and the published NAB score (`nab_paper_counts`, Lavin & Ahmad 2015: centred
  windows sized from the data, scaled sigmoid). Detections are alarm on-edges (`changepoints`), never re-fired while
  an alarm stays on;
- faults: detection rate and false-alarm rate at a control limit set on normal training data
  (`detection_at_limit`), or at a fixed false-alarm rate of given normal scores (`detection_rate_at_far`), macro F1,
  the confusion matrix;
- remaining useful life: RMSE and the PHM08 score; regression: RMSE, MAE, R².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Higher is better unless named here; the gate and the baseline comparison use this.
LOWER_IS_BETTER = {
    "rmse",
    "mae",
    "phm08_score",
    "far_pct",
    "mar_pct",
    "false_alarms_per_week",
    "detection_delay_s",
    "false_alarm_rate",
}
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
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": tp / (tp + (fn + fp) / 2) if tp + fn + fp else 0.0,
        "far_pct": 100.0 * fp / (fp + tn) if fp + tn else 0.0,
        "mar_pct": 100.0 * fn / (fn + tp) if fn + tp else 0.0,
    }


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
    return {
        "events": len(truth),
        "events_found": found,
        "event_precision": precision,
        "event_recall": recall,
        "event_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "false_alarms": false,
        "false_alarms_per_week": false / (normal_s / 604800.0) if normal_s > 0 else 0.0,
        "detection_delay_s": float(np.mean(delays)) if delays else float("nan"),
    }


@dataclass(frozen=True)
class NabProfile:
    """NAB's weights: reward of a timely detection, cost of a false one, cost of a miss."""

    a_tp: float = 1.0
    a_fp: float = -0.11
    a_fn: float = -1.0


NAB_PROFILES = {"standard": NabProfile(), "low_fp": NabProfile(a_fp=-0.22), "low_fn": NabProfile(a_fn=-2.0)}


def nab_counts(
    true_cp_s: np.ndarray,
    detections_s: np.ndarray,
    window_s: float = 60.0,
    profile: NabProfile = NAB_PROFILES["standard"],
) -> tuple[float, float, float]:
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


def changepoints(
    flags: np.ndarray, score: np.ndarray | None = None, *, edges: str = "on", quiet: int = 0
) -> np.ndarray:
    """Alarm edges as changepoint detections: `edges="on"` (default) the rows where an alarm comes on, never again
    while it stays on; `edges="both"` also where it goes off (SKAB's notebooks: `abs(prediction.diff())`). An alarm
    on at the first row counts as coming on there, as in SKAB's code. `quiet` > 0 drops an on-edge that follows the
    previous alarm's end by fewer rows (one event, not two). `score` is ignored; it is kept for callers of the old
    signature, which re-fired on level shifts of the score while an alarm stayed on (issue 22: a scoring artefact)."""
    if edges not in ("on", "both"):
        raise ValueError("edges must be 'on' or 'both'")
    f = np.asarray(flags).astype(int)
    if not len(f):
        return np.zeros(0, dtype=int)
    d = np.diff(np.concatenate([[0], f]))
    on, off = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    if quiet > 0 and len(on) > 1:
        keep = [int(on[0])]
        for a in on[1:]:
            prev_off = off[off < a]
            if not len(prev_off) or a - int(prev_off[-1]) >= quiet:
                keep.append(int(a))
        on = np.asarray(keep, dtype=int)
    out = np.sort(np.concatenate([on, off])) if edges == "both" else on
    return np.asarray(out, dtype=int)


def _scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid (Lavin & Ahmad 2015, eq. 1): 2/(1+e^{5y}) − 1, −1 from 3 window widths past a window."""
    return -1.0 if position >= 3.0 else float(2.0 / (1.0 + np.exp(5.0 * position)) - 1.0)


def nab_windows(n_rows: int, anomalies: np.ndarray, window_share: float = 0.10) -> list[tuple[int, int]]:
    """NAB's anomaly windows in rows: each centred on a labelled anomaly, of total width `window_share` (10 %) of the
    series length divided by the number of anomalies (the paper's rule), clipped to the series, overlaps merged."""
    a = np.sort(np.unique(np.asarray(anomalies, dtype=int)))
    if not len(a) or n_rows <= 0:
        return []
    half = int(window_share * n_rows / len(a)) // 2
    out: list[tuple[int, int]] = []
    for i in a.tolist():
        lo, hi = max(i - half, 0), min(i + half, n_rows - 1)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def nab_paper_counts(
    n_rows: int,
    anomalies: np.ndarray,
    detections: np.ndarray,
    profile: NabProfile = NAB_PROFILES["standard"],
    *,
    window_share: float = 0.10,
    probation: float = 0.15,
) -> tuple[float, float, float]:
    """(score, null score, perfect score) of one series by the published NAB score (Lavin & Ahmad 2015, and
    numenta/NAB's sweeper): windows from `nab_windows`; the earliest detection in a window scores
    A_TP·σ(y)/σ(−1) with y = −(right − i + 1)/width; a window without one costs A_FN; a detection outside every
    window costs |A_FP|·σ(y), y its distance past the previous window in that window's widths (y = 3, the full
    cost, before the first window); detections in the probationary part (the first min(15 %, 750) rows) are not
    scored, nor windows wholly inside it. Add the parts over series, then `nab_normalise`. Rows, not seconds."""
    prob = min(int(np.floor(probation * n_rows)), probation * 5000)
    wins = [w for w in nab_windows(n_rows, anomalies, window_share) if w[1] >= prob]
    det = np.sort(np.unique(np.asarray(detections, dtype=int)))
    det = det[(det >= prob) & (det < n_rows)]
    max_tp = _scaled_sigmoid(-1.0)
    score, used = 0.0, np.zeros(len(det), dtype=bool)
    for lo, hi in wins:
        m = (det >= lo) & (det <= hi)
        used |= m
        if m.any():
            width = float(hi - lo + 1)
            score += profile.a_tp * _scaled_sigmoid(-(hi - int(det[m][0]) + 1) / width) / max_tp
        else:
            score += profile.a_fn
    for i in det[~used].tolist():
        before = [w for w in wins if w[1] < i]
        if before:
            lo, hi = before[-1]
            pos = abs(i - hi) / float(max(hi - lo, 1))
        else:
            pos = 3.0
        score += abs(profile.a_fp) * _scaled_sigmoid(pos)
    return score, len(wins) * profile.a_fn, len(wins) * profile.a_tp


def anomaly_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    times_s: np.ndarray,
    score: np.ndarray | None = None,
    true_cp: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every anomaly figure for one series (or several concatenated, when the caller sums the NAB parts)."""
    out: dict[str, Any] = {**pointwise(y_true, y_pred), **eventwise(y_true, y_pred, times_s)}
    cps = (
        true_cp
        if true_cp is not None
        else np.asarray(
            [a for a, _ in _intervals(y_true)] + [b for _, b in _intervals(y_true) if b < len(y_true)], dtype=int
        )
    )
    det = changepoints(y_pred)
    s, n, p = nab_counts(times_s[np.asarray(cps, int)], times_s[det] if len(det) else np.array([]))
    out.update(
        {
            "nab_score": s,
            "nab_null": n,
            "nab_perfect": p,
            "nab_standard": nab_normalise(s, n, p),
            "nab_convention": "SKAB's scorer: 60 s window right of each changepoint, alarm on-edges",
        }
    )
    ps, pn, pp = nab_paper_counts(len(y_true), np.asarray(cps, int), det)
    out.update(
        {
            "nab_paper_score": ps,
            "nab_paper_null": pn,
            "nab_paper_perfect": pp,
            "nab_paper_standard": nab_normalise(ps, pn, pp),
        }
    )
    return out


def detection_at_limit(limit: float, normal_score: np.ndarray, fault_score: np.ndarray) -> dict[str, float]:
    """False-alarm rate on (unseen) normal rows and detection rate on faulty rows at a limit set beforehand on
    normal training data: the limit never comes from the rows it is scored on."""
    n, f = np.asarray(normal_score, float), np.asarray(fault_score, float)
    return {
        "limit": float(limit),
        "false_alarm_rate": float(np.mean(n > limit)) if len(n) else 0.0,
        "detection_rate": float(np.mean(f > limit)) if len(f) else 0.0,
    }


def detection_delay(fault_flags: np.ndarray, run: int = 1) -> float:
    """Rows from a fault's start to the first of `run` consecutive alarms (NaN when never): the delay as TEP papers
    count it, in samples."""
    f = np.asarray(fault_flags).astype(int)
    if run > 1:
        f = (np.convolve(f, np.ones(run, dtype=int), "full")[: len(f)] >= run).astype(int)
        hits = np.flatnonzero(f)
        return float(hits[0] - run + 1) if len(hits) else float("nan")
    hits = np.flatnonzero(f)
    return float(hits[0]) if len(hits) else float("nan")


def detection_rate_at_far(normal_score: np.ndarray, fault_score: np.ndarray, far: float = 0.05) -> dict[str, float]:
    """The limit that lets `far` of the given normal rows alarm, and the share of faulty rows over it. The false-alarm
    rate holds by construction on the rows the limit came from: pass normal *training* scores here and count false
    alarms on unseen normal rows with `detection_at_limit` (issue 22)."""
    limit = float(np.quantile(normal_score, 1 - far)) if len(normal_score) else float("inf")
    return {
        "limit": limit,
        "false_alarm_rate": float(np.mean(normal_score > limit)) if len(normal_score) else 0.0,
        "detection_rate": float(np.mean(fault_score > limit)) if len(fault_score) else 0.0,
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro F1 and the confusion matrix (labels in sorted order)."""
    from sklearn.metrics import confusion_matrix, f1_score

    t, p = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    labels = sorted(set(t) | set(p))
    return {
        "accuracy": float(np.mean(t == p)) if len(t) else 0.0,
        "macro_f1": float(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
        "labels": labels,
        "confusion": confusion_matrix(t, p, labels=labels).tolist(),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    t, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    err = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum()) if len(t) else 0.0
    return {
        "rmse": float(np.sqrt(np.mean(err**2))) if len(t) else float("nan"),
        "mae": float(np.mean(np.abs(err))) if len(t) else float("nan"),
        "r2": 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else 0.0,
    }


def phm08_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """PHM08's asymmetric score: late predictions (d > 0) cost exp(d/10) − 1, early ones exp(−d/13) − 1."""
    d = np.asarray(y_pred, float) - np.asarray(y_true, float)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1, np.exp(d / 10.0) - 1)))


def rul_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {**regression_metrics(y_true, y_pred), "phm08_score": phm08_score(y_true, y_pred)}
