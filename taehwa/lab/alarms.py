"""Event-level alarms: the one state machine that turns a series of values (a model's score, a tag) into alarms, used
by the lab's anomaly decisions and by the live alert rules alike, so a model judged in the lab alarms live exactly as
it was judged.

An alarm's condition comes on when the value passes its limit and goes off only once it is back past the limit by
the hysteresis (a deadband); the alarm is raised once the condition has held for `min_duration_s` of data time (an
on-delay), and after the condition goes off it stays raised for a quiet period of `quiet_s` (an off-delay, ISA-18.2):
a condition that returns within it continues the same alarm, so no new alarm is raised in the quiet period.

`calibrate` sets the limit on training normal running (scores the model never learnt from, where it can) so that
the alarms raised there stay within a target number of false alarms per week.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

WEEK_S = 604_800.0
Event = Literal["raise", "clear"] | None


@dataclass(frozen=True)
class AlarmPolicy:
    """Where an alarm's condition lies and how it is raised and cleared."""

    limit: float = 1.0
    op: Literal[">", "<"] = ">"
    hysteresis: float = 0.0  # how far back past the limit the value must go for the condition to go off
    min_duration_s: float = 0.0  # how long the condition must hold before the alarm is raised
    quiet_s: float = 0.0  # how long an alarm stays raised after its condition went off (one alarm, not two)

    def condition(self, value: float) -> tuple[bool, bool]:
        """(over, clear) of one value: over the limit, and back past it by the hysteresis."""
        if value != value:  # NaN: neither (the condition stays where it is)
            return False, False
        if self.op == ">":
            return value > self.limit, value <= self.limit - self.hysteresis
        return value < self.limit, value >= self.limit + self.hysteresis

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON (a run's record, a rule's fields)."""
        return asdict(self)


@dataclass
class AlarmState:
    """One alarm's state as values arrive in data time (µs); `step` says when it is raised and when it clears."""

    on: bool = False  # the condition is on
    since: int | None = None  # data time the condition came on
    raised: bool = False  # the alarm is raised
    off_since: int | None = None  # data time the condition went off while the alarm stayed raised (quiet period)
    last_t: int | None = None

    def step(self, t: int, over: bool, clear: bool, policy: AlarmPolicy) -> Event:
        """Advance to data time `t` with the condition's (over, clear); the event it causes, if any."""
        self.last_t = t
        if not self.on and over:
            self.on, self.since, self.off_since = True, t, None
        elif self.on and clear:
            self.on, self.since = False, None
            if not self.raised:
                return None
            self.off_since = t
        if self.raised and not self.on:
            if self.off_since is None:
                self.off_since = t
            if t - self.off_since >= policy.quiet_s * 1e6:
                self.raised, self.off_since = False, None
                return "clear"
            return None
        if self.on and not self.raised and self.since is not None and t - self.since >= policy.min_duration_s * 1e6:
            self.raised, self.off_since = True, None
            return "raise"
        return None

    def value(self, t: int, value: float, policy: AlarmPolicy) -> Event:
        """`step` with the condition of one value under `policy`."""
        over, clear = policy.condition(value)
        return self.step(t, over, clear, policy)


def segments(n: int, groups: np.ndarray | None) -> list[slice]:
    """Contiguous runs of the same group (each unit's alarm starts afresh)."""
    if groups is None or n == 0:
        return [slice(0, n)]
    g = np.asarray(groups)
    cuts = np.flatnonzero(g[1:] != g[:-1]) + 1
    edges = [0, *cuts.tolist(), n]
    return [slice(a, b) for a, b in itertools.pairwise(edges)]


def alarm_flags(
    times_us: np.ndarray,
    values: np.ndarray,
    policy: AlarmPolicy,
    groups: np.ndarray | None = None,
    state: AlarmState | None = None,
) -> np.ndarray:
    """1 on every row while the alarm is raised (from the row that raises it to the row before the one that clears
    it), per unit of `groups`; `state` carries one unit's alarm over calls (live scoring), and is advanced."""
    t = np.asarray(times_us, dtype=np.int64)
    v = np.asarray(values, dtype=float)
    out = np.zeros(len(v), dtype=np.int8)
    for seg in segments(len(v), groups) if state is None else [slice(0, len(v))]:
        st = state if state is not None else AlarmState()
        step = st.value
        for i in range(seg.start, seg.stop):
            if st.last_t is not None and int(t[i]) <= st.last_t:
                out[i] = st.raised
                continue
            step(int(t[i]), float(v[i]), policy)
            out[i] = st.raised
    return out


def events(times_us: np.ndarray, values: np.ndarray, policy: AlarmPolicy) -> list[tuple[int, str]]:
    """(data time, 'raise' or 'clear') of one unit's series, as the live rule engine raises and clears alerts."""
    st, out = AlarmState(), list[tuple[int, str]]()
    for t, v in zip(np.asarray(times_us, dtype=np.int64).tolist(), np.asarray(values, float).tolist(), strict=True):
        ev = st.value(t, v, policy)
        if ev is not None:
            out.append((t, ev))
    return out


def episodes(flags: np.ndarray, groups: np.ndarray | None = None) -> int:
    """How many alarms were raised (on-edges per unit)."""
    f = np.asarray(flags).astype(int)
    return sum(int((np.diff(np.concatenate([[0], f[seg]])) == 1).sum()) for seg in segments(len(f), groups))


@dataclass(frozen=True)
class Calibration:
    """A policy calibrated on normal running, with what it was calibrated on."""

    policy: AlarmPolicy
    target_per_week: float
    normal_hours: float
    episodes: int
    allowed: int
    on: str = "training normal rows"
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_dict(),
            "target_false_alarms_per_week": self.target_per_week,
            "normal_hours": round(self.normal_hours, 3),
            "episodes_on_calibration": self.episodes,
            "allowed_episodes": self.allowed,
            "calibrated_on": self.on,
            **self.info,
        }


def _span_s(times_us: np.ndarray, groups: np.ndarray | None) -> float:
    """Seconds of running the rows cover (per unit: its rows times its median step)."""
    t = np.asarray(times_us, dtype=np.int64)
    total = 0.0
    for seg in segments(len(t), groups):
        tt = t[seg]
        if len(tt) > 1:
            total += float(len(tt)) * float(np.median(np.diff(tt))) / 1e6
    return total


def calibrate(
    times_us: np.ndarray,
    scores: np.ndarray,
    *,
    target_per_week: float = 1.0,
    min_duration_s: float = 0.0,
    quiet_s: float = 0.0,
    hysteresis_share: float = 0.1,
    groups: np.ndarray | None = None,
    op: Literal[">", "<"] = ">",
    on: str = "training normal rows",
    floor: float | None = None,
    max_share: float = 0.01,
) -> Calibration:
    """The lowest limit (op '>') at which the alarm, with this on-delay, quiet period and a hysteresis of
    `hysteresis_share` of the limit, raises at most `target_per_week` × (weeks of normal running) alarms on the given
    normal scores (rounded down: on a few hours of running that is none) and is raised on at most `max_share` of
    them (an alarm that never clears is one episode, and no calibration). `floor` keeps the limit at or above a
    value (a model's own control limit). The search is over the scores' own values, bisected."""
    t = np.asarray(times_us, dtype=np.int64)
    s = np.asarray(scores, dtype=float)
    weeks = _span_s(t, groups) / WEEK_S
    allowed = int(np.floor(target_per_week * weeks + 1e-9))
    sign = 1.0 if op == ">" else -1.0
    finite = np.unique(s[np.isfinite(s)] * sign)
    if not len(finite):
        pol = AlarmPolicy(limit=1.0 if floor is None else floor, op=op, min_duration_s=min_duration_s, quiet_s=quiet_s)
        return Calibration(pol, target_per_week, weeks * 168.0, 0, allowed, on)

    def policy(level: float) -> AlarmPolicy:
        limit = level * sign
        return AlarmPolicy(
            limit=limit, op=op, hysteresis=abs(limit) * hysteresis_share, min_duration_s=min_duration_s, quiet_s=quiet_s
        )

    def count(level: float) -> int:
        """Episodes at this level, or one more than allowed when the alarm holds too much of the running."""
        flags = alarm_flags(t, s, policy(level), groups)
        return episodes(flags, groups) if flags.mean() <= max_share else allowed + 1

    lo_level = (floor * sign) if floor is not None else -np.inf
    candidates = finite[finite >= lo_level] if floor is not None else finite
    # the highest score can never be passed (strictly): at most no alarm at all
    lo, hi = 0, len(candidates) - 1
    if len(candidates) == 0 or count(float(candidates[0])) <= allowed:
        level = float(candidates[0]) if len(candidates) else float(lo_level)
    else:
        while hi - lo > 1:  # count(candidates[lo]) > allowed, count(candidates[hi]) ≤ allowed (the maximum)
            mid = (lo + hi) // 2
            if count(float(candidates[mid])) <= allowed:
                hi = mid
            else:
                lo = mid
        level = float(candidates[hi])
    pol = policy(level)
    return Calibration(
        pol, target_per_week, weeks * 168.0, episodes(alarm_flags(t, s, pol, groups), groups), allowed, on
    )


def out_of_fold(
    fit_score: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int, folds: int = 4, groups: np.ndarray | None = None
) -> np.ndarray:
    """Scores of `n` training rows, each contiguous block (of each unit) scored by a model fitted on the other
    blocks: normal running the model did not learn from, to calibrate a limit on. `fit_score(train_idx, test_idx)`
    fits on one set of row indices and scores the other."""
    out = np.full(n, np.nan)
    blocks: list[np.ndarray] = [np.zeros(0, dtype=int) for _ in range(folds)]
    for seg in segments(n, groups):
        idx = np.arange(seg.start, seg.stop)
        for k, part in enumerate(np.array_split(idx, folds)):
            blocks[k] = np.concatenate([blocks[k], part])
    everything = np.arange(n)
    for part in blocks:
        if not len(part):
            continue
        rest = np.setdiff1d(everything, part, assume_unique=True)
        if len(rest) < 2:
            continue
        out[part] = fit_score(rest, part)
    return out


def merge(flags: Iterable[np.ndarray]) -> np.ndarray:
    """Concatenate per-unit flag arrays (helper for callers that decide unit by unit)."""
    parts = list(flags)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)
