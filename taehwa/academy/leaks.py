"""The leak probe run on every challenge's cut before it is kept: can a column that should carry no information give
the hidden labels away?

A participant sees `time`, `unit`, the signals and the order of the rows, with labels on the training part only. For
each such public column alone (and for the row order), a shallow decision tree is fitted on the training part and
scored on the validation and the hidden test part with the challenge's own metric. Chance is the better of the best
constant prediction and the tree's mean score over 20 blind deals of the column (each predicted unit takes another
unit's values: the runs placed or named in another order; a row's place in its unit is shuffled over the rows).

The rule: `time`, its place in its part's span, `unit` (the name's rank among its part's units, and the number at
the end of the name) and the row order are not signals; when any of them beats chance by MARGIN of the room between
chance and a perfect score (for RMSE-like metrics: cuts MARGIN of chance's error) on either predicted part, the cut
is refused with the column named, unless one of the 20 blind deals does as well (a few runs lined up by chance). A row's
place in its unit (`position_in_unit`, what time order within a unit gives) is the same kind of column for anomaly and
fault tasks (a run's start is the experiment's protocol, not the plant's physics) but may be accepted by the
definition (`known_leaks`, with the reason the board shows) where a benchmark's protocol needs whole runs; for RUL
and soft sensors it is the unit's age, a legitimate input, and only recorded. Signals are expected to carry
information: their figures are recorded, never refused. The probe sees the files as they are written (the order
AcademyService._write_parts gives them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from taehwa.core.errors import InvalidInput
from taehwa.lab import metrics as M
from taehwa.lab.datasets import CHANGEPOINT, TARGET, TIME, UNIT

PART = "part"
SCORED = "scored"
MARGIN = 0.25  # share of the room between chance and a perfect score that a non-signal column may not win
SHUFFLES = 20  # blind deals of a column: its values given to the units in another order
LEAVES = 64  # one interval per class is enough to read a column that encodes up to 64 classes
NON_SIGNAL = ("time", "time_in_span", "unit", "unit_number", "row", "position_in_unit")
ACCEPTABLE = ("position_in_unit",)  # the only column a definition may accept as informative (known_leaks)
AGE_TASKS = ("rul", "soft_sensor")  # where a row's place in its unit is the unit's age: recorded, never refused
_META = {TIME, UNIT, TARGET, CHANGEPOINT, PART, SCORED, "cycle"}
_ORDER = {"train": 0, "validation": 1, "test": 2}


def public_view(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training file and the predicted rows (inputs with their hidden labels) in the order they are written."""
    f = frame.sort_values([PART, UNIT, TIME], key=lambda s: s.map(_ORDER) if s.name == PART else s, kind="stable")
    train = f[f[PART] == "train"].reset_index(drop=True)
    rest = f[f[PART] != "train"].reset_index(drop=True)
    return train, rest


def _relative(block: pd.DataFrame, origin: pd.Timestamp) -> dict[str, np.ndarray]:
    """A part's time, unit names and rows as places between 0 and 1 within that part (so a part that copies the
    training part's layout at another time or size still lines up with it)."""
    seconds = _seconds(block, origin)
    span = seconds.max() - seconds.min() if len(seconds) else 0.0
    names = block[UNIT].astype(str)
    ranks = names.map({n: i for i, n in enumerate(sorted(names.unique()))}).to_numpy(float)
    return {
        "time_in_span": (seconds - seconds.min()) / span if span > 0 else np.zeros(len(block)),
        "unit": ranks / max(len(set(names)) - 1, 1),
        "row": np.arange(len(block), dtype=float) / max(len(block) - 1, 1),
    }


def _seconds(block: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
    """Seconds since `origin`: small numbers, as trees split in float32."""
    return ((pd.to_datetime(block[TIME], utc=True) - origin) / pd.Timedelta(seconds=1)).to_numpy(float)


def _columns(rows: pd.DataFrame, signals: list[str], origin: pd.Timestamp) -> dict[str, np.ndarray]:
    """Each probed column of one file as a number per row: what a model reading only that column would see. Places
    (in the span, among the units, among the rows) are taken within each part."""
    names = rows[UNIT].astype(str)
    cols = {
        "time": _seconds(rows, origin),
        "time_in_span": np.zeros(len(rows)),
        "unit": np.zeros(len(rows)),
        "unit_number": pd.to_numeric(names.str.extract(r"(\d+)\D*$")[0], errors="coerce").to_numpy(float),
        "row": np.zeros(len(rows)),
        "position_in_unit": names.groupby(names, sort=False).cumcount().to_numpy(float),
    }
    for _, idx in rows.groupby(PART, sort=False).indices.items():
        for k, v in _relative(rows.iloc[idx], origin).items():
            cols[k][idx] = v
    for s in signals:
        v = pd.to_numeric(rows[s], errors="coerce").to_numpy(float)
        cols[s] = np.where(np.isfinite(v), v, np.nan)
    return cols


def metric_value(task: str, y: np.ndarray, p: np.ndarray) -> float:
    """The challenge's primary metric (the figure scoring.score ranks by) on one part's scored rows; macro F1 is
    counted on integer codes, over the classes either side names (as the lab's metrics do), for speed."""
    if task == "anomaly":
        return float(M.pointwise(y.astype(int), p.astype(int))["f1"])
    if task == "fault":
        if not (np.issubdtype(y.dtype, np.integer) and np.issubdtype(p.dtype, np.integer)):
            _, codes = np.unique(np.concatenate([y.astype(str), p.astype(str)]), return_inverse=True)
            y, p = codes[: len(y)], codes[len(y) :]
        k = int(max(y.max(initial=0), p.max(initial=0))) + 1
        tp = np.bincount(y[y == p], minlength=k)
        both = np.bincount(y, minlength=k) + np.bincount(p, minlength=k)
        named = both > 0
        return float(np.mean(2 * tp[named] / both[named])) if named.any() else 0.0
    return float(np.sqrt(np.mean((p.astype(float) - y.astype(float)) ** 2)))


def _gain(task: str, score: float, chance: float) -> float:
    """How far a score beats chance, as a share of the room left between chance and a perfect score."""
    if M.PRIMARY[task] in M.LOWER_IS_BETTER:
        return (chance - score) / chance if chance > 0 else 0.0
    return (score - chance) / (1.0 - chance) if chance < 1 else 0.0


def _better(task: str, a: float, b: float) -> float:
    """The better of two figures of the task's metric."""
    return min(a, b) if M.PRIMARY[task] in M.LOWER_IS_BETTER else max(a, b)


def _model(task: str, n: int) -> Any:
    """A small decision tree grown best first: enough leaves to read a label off a column that encodes it (one
    interval per class), too few and too large to memorise noise."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    kind = DecisionTreeRegressor if task in ("rul", "soft_sensor") else DecisionTreeClassifier
    return kind(max_leaf_nodes=LEAVES, min_samples_leaf=max(5, n // 200), random_state=0)


def _targets(task: str, s: pd.Series, codes: dict[Any, int]) -> np.ndarray:
    """Labels as the metric reads them; classes as integer codes, shared across the parts through `codes`."""
    if task == "fault":
        return np.array([codes.setdefault(v, len(codes)) for v in s.astype(str)], dtype=np.int64)
    if task == "anomaly":
        return s.astype(int).to_numpy()
    return s.astype(float).to_numpy()


def probe(task: str, frame: pd.DataFrame, signals: list[str] | None = None) -> dict[str, Any]:
    """Fit a tree on each public column of the training part alone; score it on each predicted part against chance."""
    signals = [c for c in frame.columns if c not in _META] if signals is None else signals
    train, rest = public_view(frame)
    train = train[train[TARGET].notna()].reset_index(drop=True)
    origin = pd.to_datetime(train[TIME], utc=True).min()
    cols_train, cols_rest = _columns(train, signals, origin), _columns(rest, signals, origin)
    codes: dict[Any, int] = {}
    y_train = _targets(task, train[TARGET], codes)
    parts = {}
    for p in ("validation", "test"):
        m = ((rest[PART] == p) & rest[SCORED].astype(bool) & rest[TARGET].notna()).to_numpy()
        if m.any():
            parts[p] = m
    if task in ("rul", "soft_sensor"):
        constants: list[Any] = [float(np.mean(y_train)), float(np.median(y_train))]
    else:
        constants = sorted(set(y_train.tolist()) | ({0, 1} if task == "anomaly" else set()))
    y_parts = {p: _targets(task, rest.loc[m, TARGET], codes) for p, m in parts.items()}
    constant = {p: _best_constant(task, y, constants) for p, y in y_parts.items()}
    rng = np.random.default_rng(0)
    lower = M.PRIMARY[task] in M.LOWER_IS_BETTER
    in_part = {p: rest[PART].to_numpy() == p for p in parts}
    units = {
        p: [ix[in_part[p][ix]] for ix in rest.groupby(UNIT, sort=False).indices.values() if in_part[p][ix].any()]
        for p in parts
    }  # each unit's rows in the part, as positions in `rest`
    out: dict[str, Any] = {}
    for name, x in cols_train.items():
        model = _model(task, len(x)).fit(x.reshape(-1, 1), y_train)
        pred = model.predict(cols_rest[name].reshape(-1, 1))
        figures = {}
        for p, m in parts.items():
            y, q = y_parts[p], pred[m]
            score = metric_value(task, y, q)
            chance = constant[p]
            entry = {"score": round(score, 4)}
            if name in NON_SIGNAL:
                null = [
                    metric_value(task, y, q_) for q_ in _null_answers(model, name, cols_rest[name], m, units[p], rng)
                ]
                chance = _better(task, chance, float(np.mean(null)))
                entry["null_best"] = round(min(null) if lower else max(null), 4)
            figures[p] = {**entry, "chance": round(chance, 4), "gain": round(_gain(task, score, chance), 4)}
        out[name] = figures
    probed = [k for k in NON_SIGNAL if not (k == "position_in_unit" and task in AGE_TASKS)]
    result: dict[str, Any] = M.json_safe(
        {
            "metric": M.PRIMARY[task],
            "margin": MARGIN,
            "model": f"decision tree, {LEAVES} leaves",
            "columns": {k: out[k] for k in probed},
            "context": {k: out[k] for k in NON_SIGNAL if k not in probed},
            "signals": {k: v for k, v in out.items() if k not in NON_SIGNAL},
        }
    )
    return result


def _null_answers(
    model: Any, name: str, x: np.ndarray, scored: np.ndarray, units: list[np.ndarray], rng: np.random.Generator
) -> list[np.ndarray]:
    """The tree's answers on the scored rows had the column been dealt out blind to the labels: each unit takes
    another unit's values (stretched to its length), i.e. the runs placed or named in another order; a row's place
    in its unit is shuffled over the rows instead (it is the same in every unit)."""
    answers = []
    for _ in range(SHUFFLES):
        if name == "position_in_unit" or len(units) < 2:
            answers.append(rng.permutation(model.predict(x[scored].reshape(-1, 1))))
            continue
        dealt = x.copy()
        for dst, src in zip(units, rng.permutation(len(units)), strict=True):
            values = x[units[src]]
            dealt[dst] = values[(np.arange(len(dst)) * len(values)) // len(dst)]
        answers.append(model.predict(dealt[scored].reshape(-1, 1)))
    return answers


def _best_constant(task: str, y: np.ndarray, constants: list[Any]) -> float:
    """The best score a data-blind constant prediction reaches on these labels."""
    best = None
    for c in constants:
        v = metric_value(task, y, np.full(len(y), c, dtype=np.int64 if task == "fault" else float))
        best = v if best is None else _better(task, best, v)
    return float(best if best is not None else float("nan"))


def leaking(figures: dict[str, Any]) -> list[tuple[str, str, dict[str, float]]]:
    """The non-signal columns that beat chance by the margin and every blind deal of the column too (so a few runs
    lined up with the training ones by chance are not taken for a leak): (column, part, figures)."""
    lower = figures["metric"] in M.LOWER_IS_BETTER
    return [
        (name, p, f)
        for name, parts in figures["columns"].items()
        for p, f in parts.items()
        if f["gain"] >= figures["margin"] and (f["score"] < f["null_best"] if lower else f["score"] > f["null_best"])
    ]


_WHAT = {
    "time": "time",
    "time_in_span": "time (its place in the part's span)",
    "unit": "unit (its name's order)",
    "unit_number": "unit (the number in its name)",
    "row": "row order",
    "position_in_unit": "a row's place in its unit (time order within a unit)",
}


def check(
    task: str,
    frame: pd.DataFrame,
    signals: list[str] | None = None,
    *,
    accepted: Mapping[str, Any] | None = None,
    where: str = "source",
) -> dict[str, Any]:
    """Probe a cut and refuse it (InvalidInput naming the column) when time, unit or row order tells the labels;
    a column the definition accepts (known_leaks) is recorded with its reason instead."""
    accepted = accepted or {}
    if set(accepted) - set(ACCEPTABLE):
        raise InvalidInput(
            f"known_leaks may name only {', '.join(ACCEPTABLE)}: time, unit names and row order can "
            "always be cut so they say nothing",
            where="known_leaks",
        )
    figures = probe(task, frame, signals)
    found = [x for x in leaking(figures) if x[0] not in accepted]
    figures["accepted"] = {
        name: {"reason": accepted[name], "gain": max(f["gain"] for f in parts.values())}
        for name, parts in figures["columns"].items()
        if name in accepted
    }
    if found:
        name, p, f = max(found, key=lambda x: x[2]["gain"])
        raise InvalidInput(
            f"the cut gives its labels away through {_WHAT[name]}: a decision tree on column {name!r} alone, fitted "
            f"on the training part, scores {figures['metric']} {f['score']:.3f} on the {p} part where chance scores "
            f"{f['chance']:.3f} ({f['gain']:.0%} of the way to perfect; at most {MARGIN:.0%} is allowed). Place runs "
            "at times, under names and in an order that do not follow the label",
            where=where,
        )
    return figures
