"""Model input rows from raw points: one row per grid time (every step, on the data's own times: the grid's phase
within a step is that of the unit's points, `phase_of`, so points at :00.5 make rows at :00.5), each
input's newest point at or before that time, unless that point is older than `hold` (then unknown: the one gap rule
of `taehwa.lab.gaps`, which the lab's training rows follow too). Rows where
every input is unknown are dropped, so a plant that was silent leaves no rows.

The live scorer, the catch-up after a restart and `taehwa live backfill` all build rows with `grid_rows`, so a model
sees the same rows whichever way the points reached it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from taehwa.lab.gaps import newest_known

Series = tuple[np.ndarray, np.ndarray]  # times (µs, sorted) and values of one input


def grid_rows(series: list[Series], grid: np.ndarray, hold_us: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept grid times, values [row, input]) of every grid time where some input is known."""
    values = np.full((len(grid), len(series)), np.nan)
    for j, (t, v) in enumerate(series):
        if len(t) == 0:
            continue
        idx, ok = newest_known(t, grid, hold_us)
        values[ok, j] = v[idx[ok]]
    keep = ~np.all(np.isnan(values), axis=1)
    return grid[keep], values[keep]


def phase_of(times: list[np.ndarray] | list[list[int]], step_us: int) -> int:
    """Where in a step a unit's points fall (µs, 0 ≤ phase < step): the circular mean of their times modulo the step,
    so jitter either side of a whole step does not average to half a step; 0 without points."""
    t = np.concatenate([np.asarray(x, dtype=np.int64) for x in times]) if times else np.empty(0, np.int64)
    if not len(t):
        return 0
    angle = (t % step_us).astype(float) / step_us * 2 * np.pi
    mean = float(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean()))
    return round(mean / (2 * np.pi) * step_us) % step_us


def aligned(t_us: int, step_us: int, phase_us: int) -> int:
    """The newest grid time at or before `t_us`."""
    return (t_us - phase_us) // step_us * step_us + phase_us


def known_grid(
    times: list[np.ndarray], lo_us: int, hi_us: int, step_us: int, hold_us: int, phase_us: int = 0
) -> np.ndarray:
    """The grid times g (lo < g ≤ hi) at which some input is known (within `hold` after one of its points): the
    same rows `grid_rows` keeps from `grid_between(lo, hi)`, without walking the silences between (a replay months
    after the history it follows)."""
    pts = np.unique(np.concatenate(times)) if times else np.empty(0, np.int64)
    if not len(pts):
        return np.empty(0, np.int64)
    breaks = np.flatnonzero(np.diff(pts) >= hold_us) + 1
    starts, ends = pts[np.r_[0, breaks]], pts[np.r_[breaks - 1, len(pts) - 1]] + hold_us  # [start, end) runs
    parts = [
        grid_between(max(lo_us, int(a) - 1), min(hi_us, int(b) - 1), step_us, phase_us)
        for a, b in zip(starts, ends, strict=True)
        if b > lo_us and a <= hi_us
    ]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def grid_between(lo_us: int, hi_us: int, step_us: int, phase_us: int = 0) -> np.ndarray:
    """Grid times g with lo < g ≤ hi (g ≡ phase modulo the step)."""
    first = aligned(lo_us, step_us, phase_us) + step_us
    if first > hi_us:
        return np.empty(0, np.int64)
    return np.arange(first, hi_us + 1, step_us, dtype=np.int64)


def sorted_series(times: list[int] | np.ndarray, values: list[float] | np.ndarray) -> Series:
    """Points in time order, one per time (the last one given wins, as in the historian)."""
    t = np.asarray(times, dtype=np.int64)
    v = np.asarray(values, dtype=float)
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        last = np.r_[t[1:] != t[:-1], True]
        t, v = t[last], v[last]
    return t, v


@dataclass
class UnitRows:
    """One asset's inputs as they arrive: raw points not yet turned into rows, and how far each input has got.

    A row at grid time g is made once every input has a point at or after g, or once any input is `wait` past g
    (a slow or dead input does not hold the others back for longer than that). Points at or before the last row
    made are late: they are counted and left out (a backfill would include them).
    """

    n_inputs: int
    step_us: int
    hold_us: int
    wait_us: int
    last_row: int | None = None
    phase_us: int | None = None  # where in a step the rows fall: that of the first points seen
    late: int = 0
    times: list[list[int]] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    reached: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.times = [[] for _ in range(self.n_inputs)]
        self.values = [[] for _ in range(self.n_inputs)]
        self.reached = [-(2**62)] * self.n_inputs

    def add(self, j: int, t: int, v: float) -> None:
        """One point of input j."""
        if self.last_row is not None and t <= self.last_row:
            self.late += 1
            return
        self.times[j].append(t)
        self.values[j].append(v)
        if t > self.reached[j]:
            self.reached[j] = t

    def frontier(self) -> int | None:
        """The newest grid time whose row may be made now (None: nothing yet)."""
        newest = max(self.reached)
        if newest < -(2**61):
            return None
        until = max(min(self.reached), newest - self.wait_us)
        if self.phase_us is None:
            self.phase_us = phase_of(self.times, self.step_us)
        return aligned(until, self.step_us, self.phase_us)

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows that are ready, (grid times, values); their points are consumed (the newest of each input is
        kept, to be held into later rows).

        Live, a unit usually has one or two new points per input: plain Python on lists is several times faster
        than NumPy on arrays that small, so the grid is walked in Python up to `SMALL_GRID` rows and handed to
        `grid_rows` beyond (a catch-up)."""
        until = self.frontier()
        empty = (np.empty(0, np.int64), np.empty((0, self.n_inputs)))
        if until is None or (self.last_row is not None and until <= self.last_row):
            return empty
        series = [_sorted_lists(t, v) for t, v in zip(self.times, self.values, strict=True)]
        firsts = [t[0] for t, _ in series if t]
        if not firsts:
            return empty
        step = self.step_us
        phase = self.phase_us or 0
        lo = self.last_row if self.last_row is not None else aligned(min(firsts) - 1, step, phase)
        # after a silence longer than `hold` nothing is known until the next point: start the grid there
        pending, held = [], []
        for t, _ in series:
            if t:
                k = bisect_right(t, lo)
                if t[-1] > lo:
                    pending.append(t[k])
                if k > 0:
                    held.append(t[k - 1])
        if pending and (not held or max(held) + self.hold_us <= lo + step):
            lo = max(lo, aligned(min(pending) - 1, step, phase))
        first = aligned(lo, step, phase) + step
        n_grid = (until - first) // step + 1 if first <= until else 0
        if n_grid > SMALL_GRID:
            arrays = [(np.asarray(t, np.int64), np.asarray(v, float)) for t, v in series]
            times, rows = grid_rows(
                arrays, known_grid([t for t, _ in arrays], lo, until, step, self.hold_us, phase), self.hold_us
            )
        else:
            out_t, out_v = [], []
            for g in range(first, until + 1, step):
                row = []
                for t, v in series:
                    k = bisect_right(t, g) - 1
                    row.append(v[k] if k >= 0 and g - t[k] < self.hold_us else math.nan)
                if not all(math.isnan(x) for x in row):
                    out_t.append(g)
                    out_v.append(row)
            times = np.array(out_t, dtype=np.int64)
            rows = np.array(out_v, dtype=float).reshape(len(out_t), self.n_inputs)
        return self._taken(series, until, times, rows)

    def _taken(
        self, series: list[tuple[list[int], list[float]]], until: int, times: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mark rows up to `until` made, consume their points (the newest of each input is kept) and hand them on."""
        self.last_row = until
        for j, (t, v) in enumerate(series):  # keep the newest point at or before `until`, and any after it
            cut = max(bisect_right(t, until) - 1, 0)
            self.times[j], self.values[j] = t[cut:], v[cut:]
        return times, rows


SMALL_GRID = 32  # rows a take makes in plain Python; more go through NumPy


def _sorted_lists(times: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    """`sorted_series` on lists: points in time order, one per time (the last one given wins)."""
    if all(a < b for a, b in pairwise(times)):
        return times, values
    last = dict(zip(times, values, strict=True))
    ordered = sorted(last)
    return ordered, [last[t] for t in ordered]
