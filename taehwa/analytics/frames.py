"""Event frames from conditions: the scan that opens and closes events over a series of rows, carrying its state from
one batch to the next (live) or one chunk to the next (backfill), and the statistics of a closed event.

Rules, as PI event frames and Seeq capsules have them: an event opens at the time its start condition became true,
once it has held for the template's `for` duration; it closes at the first row where its end condition holds (or, with
no end condition, where the start condition no longer does); it never lasts longer than its maximum duration (closed
then, with reason `max_duration`); a new event needs the start condition to become true again (a rising edge), so a
condition stuck true gives one bounded event, not a chain of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ScanState:
    """Where a template's scan stands on one asset."""

    armed: bool = True  # the start condition has been false since the last event closed
    true_since: int | None = None  # µs: the start condition has been true since then
    start: int | None = None  # µs: the open event's start


@dataclass(frozen=True)
class Change:
    """An event opened (end None) or closed."""

    start: int
    end: int | None = None
    reason: str | None = None  # end | max_duration


def _next(index: np.ndarray, i: int) -> int | None:
    k = int(np.searchsorted(index, i, "left"))
    return int(index[k]) if k < len(index) else None


def scan(
    state: ScanState, t: np.ndarray, start: np.ndarray, end: np.ndarray | None, held_us: int, max_us: int
) -> list[Change]:
    """Advance a scan over rows (times `t`, boolean conditions); returns the events opened and closed, in order.
    Loops over events, not rows: each step jumps with a binary search to the next change of condition."""
    n = len(t)
    trues = np.flatnonzero(start)
    falses = np.flatnonzero(~start)
    ends = np.flatnonzero(end) if end is not None else falses
    out: list[Change] = []
    i = 0
    while i < n:
        if state.start is None:
            if not state.armed:
                j = _next(falses, i)
                if j is None:
                    return out
                state.armed, state.true_since, i = True, None, j
                continue
            if state.true_since is None:
                j = _next(trues, i)
                if j is None:
                    return out
                state.true_since, i = int(t[j]), j
            k = _next(falses, i)  # the run of true ends here (None: it lasts to the end of these rows)
            x = max(i, int(np.searchsorted(t, state.true_since + held_us, "left")))
            if x >= n or (k is not None and x >= k):
                if k is None:
                    return out  # still holding: decided by later rows
                state.true_since, i = None, k
                continue
            state.start, state.armed = state.true_since, False
            out.append(Change(state.start))
            if state.start + max_us <= int(t[x]):  # held longer than the maximum before it could open
                out.append(Change(state.start, state.start + max_us, "max_duration"))
                state.start = state.true_since = None
            i = x + 1
            continue
        deadline = state.start + max_us
        y = _next(ends, i)
        if y is not None and int(t[y]) <= deadline:
            out.append(Change(state.start, int(t[y]), "end"))
            state.armed = not bool(start[y])
            state.start = state.true_since = None
            i = y + 1
            continue
        z = int(np.searchsorted(t, deadline, "left"))
        if z < n:
            out.append(Change(state.start, deadline, "max_duration"))
            state.start = state.true_since = None
            state.armed = False
            i = z
            continue
        return out
    return out


def statistics(t: np.ndarray, v: np.ndarray, start: int, end: int) -> dict[str, float | None]:
    """min, max, mean, time-weighted mean, integral (value·s, held as a step), values at start and end, of a
    signal's points over [start, end]; `t` may begin with the point before start (the value at start)."""
    if not len(t):
        return {"min": None, "max": None, "mean": None, "twa": None, "integral": None, "start": None, "end": None}
    a = int(np.searchsorted(t, start, "right")) - 1  # the point in force at start
    a = max(a, 0)
    b = int(np.searchsorted(t, end, "right"))
    tt, vv = t[a:b].astype(np.int64), v[a:b]
    if not len(tt):
        return {"min": None, "max": None, "mean": None, "twa": None, "integral": None, "start": None, "end": None}
    inside = vv[tt >= start] if (tt >= start).any() else vv[-1:]
    edges = np.clip(np.append(tt, end), start, end).astype(np.float64)
    area = float(np.sum(vv * np.diff(edges)) / 1e6)
    span = (end - start) / 1e6
    return {
        "min": float(inside.min()),
        "max": float(inside.max()),
        "mean": float(inside.mean()),
        "twa": area / span if span > 0 else float(vv[-1]),
        "integral": area,
        "start": float(vv[0]),
        "end": float(vv[-1]),
    }
