"""Time-ordered validation: every model is judged only on rows later than those it learnt from (rolling origin,
holdout), on whole units it never saw (fleets), or on the rest of each unit after its first rows (SKAB's protocol).
A random split of time series is never offered: it would leak the future into training.

`Pipeline` is what gets trained and saved: per-condition normalisation, causal window features, then the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from taehwa.core.errors import InvalidInput
from taehwa.core.timeutil import parse_duration, to_us
from taehwa.lab import metrics as M
from taehwa.lab.alarms import AlarmPolicy, Calibration, alarm_flags, calibrate, out_of_fold
from taehwa.lab.datasets import CHANGEPOINT, TARGET, TIME, UNIT, Dataset, time_us
from taehwa.lab.features import ConditionNormalizer, SeasonalProfile, WindowFeatures
from taehwa.lab.models import build
from taehwa.lab.protocol import Model
from taehwa.lab.spec import AlarmSpec, FeatureSpec, Spec

Progress = Callable[[int, int], None]
REFERENCE_ROWS = 2000  # rows of training data kept with a model for drift checks


class Pipeline:
    """Normaliser → window features → model, fitted together and saved as one object; an anomaly model's decision
    is an event-level alarm (`alarm`, calibrated on its training normal running), the same one live rules raise."""

    def __init__(
        self,
        task: str,
        features: FeatureSpec,
        kind: str,
        params: dict[str, Any],
        signals: list[str],
        alarm: AlarmSpec | None = None,
    ) -> None:
        self.task, self.features_spec, self.kind, self.params = task, features, kind, dict(params)
        self.signals = list(signals)
        self.alarm_spec = alarm if alarm is not None else AlarmSpec()
        self.alarm: Calibration | None = None
        self.model: Model = build(kind, params, task=task)
        self.window = WindowFeatures(
            features.windows,
            features.stats,
            features.lags,
            features.ewm_alpha,
            features.spectrum_bands,
            features.include_raw,
            features.include_position,
        )

    def _normalised(self, frame: pd.DataFrame, fit: bool) -> pd.DataFrame:
        fs = self.features_spec
        if not fs.condition_columns and fs.conditions <= 1 and not fit:
            return frame
        if fit:
            self.normalizer = ConditionNormalizer(fs.condition_columns, fs.conditions).fit(frame, self.inputs)
        return self.normalizer.transform(frame) if hasattr(self, "normalizer") else frame

    def _deseasoned(self, frame: pd.DataFrame, fit: bool) -> pd.DataFrame:
        """The inputs less their seasonal part (`features.season`), the profile learnt when fitting."""
        season = self.features_spec.season
        if season is None:
            return frame
        t = time_us(frame[TIME])
        if fit:
            units = frame[UNIT].to_numpy() if UNIT in frame.columns else None
            profile = SeasonalProfile(parse_duration(season, field="features.season"), self.features_spec.season_bins)
            self.seasonal = profile.fit(t, frame[self.inputs].to_numpy(float), units)
        out = frame.copy()
        out[self.inputs] = self.seasonal.transform(t, frame[self.inputs].to_numpy(float))
        return out

    def features(self, frame: pd.DataFrame, *, fit: bool = False) -> np.ndarray:
        """Feature matrix of `frame` (rows in unit, time order; whole unit prefixes)."""
        if fit:
            present = [s for s in self.signals if s in frame.columns]
            flat = {
                s for s in present if self.features_spec.drop_flat and float(np.nanstd(frame[s].to_numpy(float))) < 1e-9
            }
            self.inputs = [s for s in present if s not in flat and s not in self.features_spec.condition_columns]
            if not self.inputs:
                raise InvalidInput("every signal is constant or missing in the training data", where="data")
        missing = [s for s in self.inputs if s not in frame.columns]
        if missing:
            raise InvalidInput(f"the data lacks signal {missing[0]!r} this model was trained on", where="data")
        norm = self._normalised(frame, fit) if self.features_spec.condition_columns else frame
        norm = self._deseasoned(norm, fit)
        feats = self.window.transform(norm, self.inputs, UNIT if UNIT in frame.columns else None)
        return np.asarray(np.nan_to_num(feats.to_numpy(float), nan=0.0))

    def fit(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> Pipeline:
        """Learn from `frame` (features use all its rows; the model learns from `rows` of them, e.g. the normal
        ones)."""
        X = self.features(frame, fit=True)
        y = frame[TARGET].to_numpy() if TARGET in frame.columns else None
        keep = np.ones(len(frame), dtype=bool) if rows is None else rows
        if y is not None and self.task in ("rul", "soft_sensor", "forecast"):
            keep = keep & np.isfinite(y.astype(float))
        groups = frame[UNIT].to_numpy()[keep] if UNIT in frame.columns else None
        if keep.sum() < 2:
            raise InvalidInput(f"only {int(keep.sum())} usable training rows", where="data")
        self.model.fit(X[keep], None if y is None or self.task == "anomaly" else y[keep], groups=groups)
        self.reference = self._reference(frame, X, keep, groups)
        if self.task == "anomaly" and self.alarm_spec.enabled:
            self.alarm = self._calibrate(frame, X, keep, groups)
        return self

    def _calibrate(
        self, frame: pd.DataFrame, X: np.ndarray, keep: np.ndarray, groups: np.ndarray | None
    ) -> Calibration:
        """The alarm's limit from the training normal rows: scored out of fold (each of 4 blocks of every unit by
        a model fitted on the other blocks) so the limit meets running the model never learnt from, or in-sample
        when the spec says so or the part is too short (under 200 rows)."""
        a = self.alarm_spec
        t = time_us(frame[TIME])[keep]
        steps = np.diff(t)
        step_s = float(np.median(steps[steps > 0])) / 1e6 if (steps > 0).any() else 1.0
        Xk = X[keep]
        if a.calibrate_on == "out_of_fold" and len(Xk) >= 200:

            def fit_score(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
                m = build(self.kind, self.params, task=self.task)
                m.fit(Xk[tr], None, groups=None if groups is None else groups[tr])
                return np.asarray(m.score(Xk[te], None if groups is None else groups[te]), dtype=float)

            scores = out_of_fold(fit_score, len(Xk), 4, groups)
            on = "out-of-fold scores of the training normal rows (4 blocks of each unit)"
        else:
            scores = np.asarray(self.model.score(Xk, groups), dtype=float)
            on = "in-sample scores of the training normal rows"
        cal = calibrate(
            t,
            scores,
            target_per_week=a.false_alarms_per_week,
            min_duration_s=a.min_duration_s if a.min_duration_s is not None else 3 * step_s,
            quiet_s=a.quiet_s if a.quiet_s is not None else 10 * step_s,
            hysteresis_share=a.hysteresis_share,
            groups=groups,
            on=on,
            max_share=a.max_alarm_share,
            floor=a.min_limit,
        )
        return cal

    @property
    def policy(self) -> AlarmPolicy | None:
        """The calibrated alarm of an anomaly model (None: row-by-row decisions, score over 1.0)."""
        cal = getattr(self, "alarm", None)
        return cal.policy if cal is not None else None

    def _reference(
        self, frame: pd.DataFrame, X: np.ndarray, keep: np.ndarray, groups: np.ndarray | None
    ) -> dict[str, Any]:
        """Samples of the inputs and of the score on the data it learnt from, kept with the model so live data
        can be compared with them (drift)."""
        rng = np.random.default_rng(0)
        rows = np.flatnonzero(keep)
        pick = np.sort(rng.choice(rows, size=min(REFERENCE_ROWS, len(rows)), replace=False))
        cols = [*self.inputs, *[c for c in self.features_spec.condition_columns if c not in self.inputs]]
        inputs = {c: np.sort(frame[c].to_numpy(float)[pick]).tolist() for c in cols if c in frame.columns}
        score = np.asarray(self.model.score(X[keep], groups), dtype=float)
        sample = score[np.sort(rng.choice(len(score), size=min(REFERENCE_ROWS, len(score)), replace=False))]
        return {"inputs": inputs, "score": np.sort(sample).tolist(), "rows": int(keep.sum())}

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(decision, score) for every row of `frame`."""
        X = self.features(frame)
        groups = frame[UNIT].to_numpy() if UNIT in frame.columns else None
        decision, score = self.model.decide(X, groups)
        policy = self.policy
        if self.task == "anomaly" and policy is not None:
            decision = alarm_flags(time_us(frame[TIME]), score, policy, groups).astype(int)
        return decision, score


@dataclass
class Backtest:
    """Out-of-sample predictions of every fold, and the figures computed from them."""

    rows: pd.DataFrame  # time, unit, target, pred, score, fold
    metrics: dict[str, Any]
    folds: list[dict[str, Any]]
    label_free: bool = False  # an anomaly run judged without labelled anomalies (on held-out normal running)


BLIND = ("always_on", "never_on", "clock")  # the data-blind detectors every anomaly run is compared with
# the figures a data-blind detector is checked against (counts and NAB's raw parts are not judged)
JUDGED = (
    "f1",
    "precision",
    "recall",
    "far_pct",
    "mar_pct",
    "balanced_accuracy",
    "event_f1",
    "event_precision",
    "event_recall",
    "false_alarms_per_week",
    "detection_delay_s",
    "nab_standard",
    "false_alarms_per_day",
    "flagged_share",
)
LABEL_FREE_LOWER = {"false_alarms_per_day", "flagged_share"}  # lower is better, beside metrics.LOWER_IS_BETTER


def is_label_free(spec: Spec, frame: pd.DataFrame) -> bool:
    """Whether an anomaly run is judged without labels: the spec says so, or its data holds no labelled anomaly
    (a target of zeros only is no label: nothing in it was ever marked abnormal)."""
    if spec.task != "anomaly" or spec.gate.criterion == "labelled":
        return False
    if spec.gate.criterion == "false_alarms" or TARGET not in frame.columns:
        return True
    return not bool(np.nan_to_num(frame[TARGET].to_numpy(dtype=float)).astype(bool).any())


def training_part(spec: Spec, frame: pd.DataFrame) -> np.ndarray:
    """The rows of the split's training part (`fit_on: train`): rows no fold judges; for splits whose folds judge
    every row (by_unit over several folds), the last fold's training rows."""
    folds = _folds(spec, frame)
    tested = np.zeros(len(frame), dtype=bool)
    for _, te in folds:
        tested |= te
    train = ~tested
    return train if train.any() else folds[-1][0]


def _folds(spec: Spec, frame: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train mask, test mask) pairs, time-ordered."""
    s = spec.split
    t = time_us(frame[TIME])
    units = frame[UNIT].to_numpy()
    if s.method == "per_unit":
        pos = frame.groupby(UNIT, sort=False).cumcount().to_numpy()
        return [(pos < s.train_rows, pos >= s.train_rows)]
    if s.method == "by_unit":
        order = frame.groupby(UNIT, sort=False)[TIME].min().sort_values(kind="stable").index.to_list()
        if len(order) < 2:
            raise InvalidInput("split by_unit needs at least two units", where="split.method")
        # one fold: hold out the later half of the units; more: each contiguous group of units in turn
        chunks = np.array_split(np.array(order, dtype=object), max(2, min(s.folds, len(order))))
        tested = chunks if s.folds > 1 else chunks[-1:]
        return [(~np.isin(units, list(c)), np.isin(units, list(c))) for c in tested]
    lo, hi = int(t.min()), int(t.max()) + 1
    if s.method == "holdout":
        cut = to_us(s.at, field="split.at") if s.at else lo + int((hi - lo) * s.train_fraction)
        if not lo < cut < hi:
            raise InvalidInput(f"split.at {s.at!r} leaves nothing to learn from or nothing to judge", where="split.at")
        return [(t < cut, t >= cut)]
    edges = np.linspace(lo + (hi - lo) * s.train_fraction, hi, s.folds + 1).astype(np.int64)
    return [(t < edges[i], (t >= edges[i]) & (t < edges[i + 1])) for i in range(s.folds)]


def backtest(
    spec: Spec,
    data: Dataset,
    kind: str,
    params: dict[str, Any],
    *,
    progress: Progress | None = None,
    backend: str = "serial",
) -> Backtest:
    """Fit on each fold's past, predict its future; concatenate and score. The folds (and, for per-unit splits,
    each unit within them) are independent jobs: `backend` runs them in this process (serial), over the local
    process pool (pool) or over Ray (ray), with the same result."""
    from taehwa.lab.fanout import run_all

    frame = data.frame
    if spec.task != "anomaly" and TARGET not in frame.columns:
        raise InvalidInput(f"task {spec.task!r} needs a target (labels, or data.target_column)", where="labels")
    folds = _folds(spec, frame)
    jobs: list[tuple[int, np.ndarray, np.ndarray]] = []
    fold_info = []
    for i, (train, test) in enumerate(folds):
        if not train.any() or not test.any():
            raise InvalidInput(
                f"fold {i + 1} has no {'training' if not train.any() else 'test'} rows; widen the "
                f"range or use fewer folds",
                where="split",
            )
        groups = (
            [frame[UNIT].to_numpy() == u for u in frame[UNIT].unique()]
            if spec.split.method == "per_unit"
            else [np.ones(len(frame), dtype=bool)]
        )
        jobs.extend((i, train & g, test & g) for g in groups if (test & g).any())
        fold_info.append({"fold": i + 1, "train_rows": int(train.sum()), "test_rows": int(test.sum())})
    parts = run_all(
        fold_job,
        jobs,
        (spec, data, kind, params),
        backend=backend,  # type: ignore[arg-type]
        progress=progress,
    )
    rows = pd.concat(parts, ignore_index=True)
    free = is_label_free(spec, frame)
    return Backtest(
        rows,
        task_metrics(spec.task, rows, spec.labels.normal_class, label_free=free, min_alarm_s=spec.gate.min_alarm_s),
        fold_info,
        free,
    )


def blind_rows(rows: pd.DataFrame, kind: str, min_alarm_s: float = 0.0) -> pd.DataFrame:
    """The backtest's rows as a data-blind detector would have decided them: always on, never on, or a clock that
    fires (for `min_alarm_s`, at least one row) once in every `period` rows — the median labelled anomaly's length
    in rows (so it lands in nearly every anomaly), or, without labels, an hour's rows or a quarter of the shortest
    held-out block if shorter (so it fires on the held-out running at all)."""
    out = rows.copy()
    n = len(out)
    if kind == "always_on":
        pred = np.ones(n, dtype=int)
    elif kind == "never_on":
        pred = np.zeros(n, dtype=int)
    else:
        period = _clock_period(rows)
        t = time_us(rows[TIME]) / 1e6 if len(rows) > 1 else np.array([0.0, 1.0])
        step = float(np.median(np.diff(t))) if len(t) > 1 and np.median(np.diff(t)) > 0 else 1.0
        width = min(period - 1, max(1, int(np.ceil(min_alarm_s / step))))
        pos = out.groupby([UNIT, "fold"], sort=False).cumcount().to_numpy()
        pred = (pos % period >= period - width).astype(int)
    out["pred"], out["score"] = pred, pred * 2.0
    return out


def _clock_period(rows: pd.DataFrame) -> int:
    """Rows between the clock's alarms (see `blind_rows`)."""
    lengths: list[int] = []
    if TARGET in rows.columns:
        for _, block in rows.groupby([UNIT, "fold"], sort=False):
            flags = np.nan_to_num(block[TARGET].to_numpy(dtype=float)).astype(int)
            d = np.diff(np.concatenate([[0], flags, [0]]))
            lengths += (np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).tolist()
    if lengths:
        return max(2, int(np.median(lengths)))
    t = time_us(rows[TIME]) / 1e6 if len(rows) > 1 else np.array([0.0, 1.0])
    step = float(np.median(np.diff(t))) if len(t) > 1 and np.median(np.diff(t)) > 0 else 1.0
    shortest = int(rows.groupby([UNIT, "fold"], sort=False).size().min()) if len(rows) else 8
    return max(2, min(round(3600.0 / step), shortest // 4))


def blind_baselines(spec: Spec, result: Backtest) -> dict[str, dict[str, Any]]:
    """The figures of the data-blind detectors on the same out-of-sample rows, scored exactly as the model is."""
    return {
        kind: task_metrics(
            spec.task,
            blind_rows(result.rows, kind, spec.gate.min_alarm_s),
            spec.labels.normal_class,
            label_free=result.label_free,
            min_alarm_s=spec.gate.min_alarm_s,
        )
        for kind in BLIND
    }


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is the better one."""
    return metric in M.LOWER_IS_BETTER or metric in LABEL_FREE_LOWER


def informative(metrics: dict[str, Any], blind: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each judged figure: informative only when the model does strictly better than every data-blind
    detector; otherwise which detector matched or beat it and with what (the gate does not count that figure)."""
    out: dict[str, dict[str, Any]] = {}
    for m in JUDGED:
        ours = metrics.get(m)
        if not isinstance(ours, int | float) or isinstance(ours, bool) or not np.isfinite(ours):
            continue
        entry: dict[str, Any] = {"informative": True}
        for kind, figures in blind.items():
            theirs = figures.get(m)
            if not isinstance(theirs, int | float) or not np.isfinite(theirs):
                continue
            better = theirs < ours if lower_is_better(m) else theirs > ours
            if better or theirs == ours:
                entry = {"informative": False, "beaten_by": kind, "value": float(theirs)}
                break
        out[m] = entry
    return out


def fold_job(
    shared: tuple[Spec, Dataset, str, dict[str, Any]], job: tuple[int, np.ndarray, np.ndarray]
) -> pd.DataFrame:
    """One fold (of one unit): fit on its training rows, predict its test rows (a pure function of its inputs)."""
    spec, data, kind, params = shared
    i, tr, te = job
    frame = data.frame
    pipe = Pipeline(spec.task, spec.features, kind, params, data.signals, spec.alarm)
    sub_train = frame[tr].reset_index(drop=True)
    normal = np.ones(tr.sum(), dtype=bool)
    if (
        spec.task == "anomaly"
        and spec.split.normal_only
        and TARGET in frame.columns
        and spec.split.method != "per_unit"
    ):
        normal = sub_train[TARGET].to_numpy().astype(float) == 0
    pipe.fit(sub_train, normal)
    group = tr | te  # the unit's rows for per-unit splits, all rows otherwise
    upto = frame[group].reset_index(drop=True)  # features of test rows see their own past
    pred, score = pipe.predict(upto)
    mask = te[group]
    part: pd.DataFrame = upto.loc[mask, [TIME, UNIT]].copy()
    for col in (TARGET, CHANGEPOINT):
        if col in upto.columns:
            part[col] = upto.loc[mask, col].to_numpy()
    part["pred"], part["score"], part["fold"] = pred[mask], score[mask], i
    return part


def false_alarm_figures(rows: pd.DataFrame, min_alarm_s: float = 0.0) -> dict[str, Any]:
    """Alarm episodes on normal running (rows not labelled anomalous): each run of flagged rows that lasts
    `min_alarm_s` counts once, per unit and fold; with the hours of normal running they were counted over."""
    episodes, normal_s, flagged, n = 0, 0.0, 0, 0
    for _, block in rows.groupby([UNIT, "fold"], sort=False):
        t = time_us(block[TIME]) / 1e6
        normal = (
            ~np.nan_to_num(block[TARGET].to_numpy(dtype=float)).astype(bool)
            if TARGET in block.columns
            else np.ones(len(block), dtype=bool)
        )
        p = block["pred"].to_numpy().astype(int).astype(bool) & normal
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        normal_s += float(normal.sum()) * step
        flagged += int(p.sum())
        n += int(normal.sum())
        d = np.diff(np.concatenate([[0], p.astype(int), [0]]))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
            if (t[b - 1] - t[a]) + step >= min_alarm_s:
                episodes += 1
    days = normal_s / 86400.0
    from scipy.stats import chi2

    # the one-sided 95 % Poisson upper bound of the rate (about 3 episodes over the span when none were seen)
    upper = float(chi2.ppf(0.95, 2 * (episodes + 1)) / 2) / days if days > 0 else float("inf")
    return {
        "alarm_episodes": episodes,
        "normal_hours": normal_s / 3600.0,
        "false_alarms_per_day": episodes / days if days > 0 else 0.0,
        "false_alarms_per_day_upper95": float(upper),
        "flagged_share": flagged / n if n else 0.0,
    }


def task_metrics(
    task: str, rows: pd.DataFrame, normal_class: str = "normal", *, label_free: bool = False, min_alarm_s: float = 0.0
) -> dict[str, Any]:
    """The figures of one task from out-of-sample rows; a label-free anomaly run gets its false alarms on the
    held-out normal running (every row of it, or the rows not labelled anomalous)."""
    if task == "anomaly":
        if label_free or TARGET not in rows.columns:
            return {
                **false_alarm_figures(rows, min_alarm_s),
                "note": "no labelled anomalies: judged by false alarms on held-out normal running",
            }
        out: dict[str, Any] = {}
        y, p = rows[TARGET].to_numpy().astype(int), rows["pred"].to_numpy().astype(int)
        out.update(M.pointwise(y, p))
        tn, fp = out["tn"], out["fp"]
        out["balanced_accuracy"] = (out["recall"] + (tn / (tn + fp) if tn + fp else 0.0)) / 2
        ev_parts, nab = [], [0.0, 0.0, 0.0]
        for _, block in rows.groupby([UNIT, "fold"], sort=False):
            t = time_us(block[TIME]) / 1e6
            yt, yp = block[TARGET].to_numpy().astype(int), block["pred"].to_numpy().astype(int)
            cp = np.flatnonzero(block[CHANGEPOINT].to_numpy().astype(int)) if CHANGEPOINT in block.columns else None
            fig = M.anomaly_metrics(yt, yp, t, block["score"].to_numpy(float), cp)
            ev_parts.append(fig)
            nab = [nab[0] + fig["nab_score"], nab[1] + fig["nab_null"], nab[2] + fig["nab_perfect"]]
        events = sum(f["events"] for f in ev_parts)
        found = sum(f["events_found"] for f in ev_parts)
        false = sum(f["false_alarms"] for f in ev_parts)
        alarms = found + false
        prec = (alarms - false) / alarms if alarms else 0.0
        rec = found / events if events else 0.0
        normal_s = sum(
            f["false_alarms"] / f["false_alarms_per_week"] * 604800.0
            for f in ev_parts
            if f["false_alarms_per_week"] > 0
        )
        delays = [f["detection_delay_s"] for f in ev_parts if np.isfinite(f["detection_delay_s"])]
        out.update(
            {
                "events": events,
                "events_found": found,
                "event_recall": rec,
                "event_precision": prec,
                "event_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                "false_alarms": false,
                "false_alarms_per_week": false / (normal_s / 604800.0) if normal_s > 0 else 0.0,
                "detection_delay_s": float(np.mean(delays)) if delays else float("nan"),
                "nab_standard": M.nab_normalise(*nab),
            }
        )
        out.update({k: v for k, v in false_alarm_figures(rows, min_alarm_s).items() if k != "flagged_share"})
        return out
    if task == "fault":
        y, p = rows[TARGET].astype(str).to_numpy(), rows["pred"].astype(str).to_numpy()
        out = M.classification_metrics(y, p)
        normal = y == normal_class
        out.update(
            {
                f"at_far5_{k}": v
                for k, v in M.detection_rate_at_far(
                    rows["score"].to_numpy(float)[normal], rows["score"].to_numpy(float)[~normal]
                ).items()
            }
        )
        return out
    ok = np.isfinite(rows[TARGET].to_numpy(float))
    y, p = rows[TARGET].to_numpy(float)[ok], rows["pred"].to_numpy(float)[ok]
    return M.rul_metrics(y, p) if task == "rul" else M.regression_metrics(y, p)
