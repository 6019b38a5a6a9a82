"""Reference profiles (Seeq's reference profiles, PI's golden batch): a signal over chosen events laid on a common
time axis from each event's start, their median as the reference and a band around it; another event compared with
it step by step (its deviation, and the share of its steps outside the band).

A profile is made from one golden event (band: ± `band` × the signal's spread over the event) or the median of
several (band: ± `band` × the median absolute deviation between them at each step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taehwa.analytics.compute import Series
from taehwa.analytics.records import CurveComparison, ProfileCurve

MAX_STEPS = 100_000
"""Most steps a profile has."""


@dataclass(frozen=True)
class Profile:
    """A reference over time since the start of an event."""

    step_us: int
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    events: int

    def to_dict(self) -> ProfileCurve:
        """JSON form (offsets in seconds)."""
        return {
            "step_s": self.step_us / 1e6,
            "events": self.events,
            "offset_s": (np.arange(len(self.median)) * self.step_us / 1e6).tolist(),
            "median": _nums(self.median),
            "low": _nums(self.low),
            "high": _nums(self.high),
        }


def _nums(a: np.ndarray) -> list[float | None]:
    return [float(x) if np.isfinite(x) else None for x in a]


def on_grid(s: Series, start_us: int, end_us: int, step_us: int) -> np.ndarray:
    """A signal's value in force at start, start + step, … ≤ end (NaN before its first point)."""
    t, v, _ = s
    n = min(int((end_us - start_us) // step_us) + 1, MAX_STEPS)
    grid = start_us + np.arange(n, dtype=np.int64) * step_us
    idx = np.searchsorted(t, grid, "right") - 1
    return np.where(idx >= 0, v[np.maximum(idx, 0)], np.nan) if len(t) else np.full(n, np.nan)


def build_profile(curves: list[np.ndarray], step_us: int, band: float = 3.0) -> Profile:
    """The median of some events' curves (each from its start, on the same step) with a band."""
    if not curves:
        raise ValueError("a profile needs at least one event")
    n = max(len(c) for c in curves)
    stack = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        stack[i, : len(c)] = c
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # steps no event reaches are all-NaN: NaN out
            median = np.nanmedian(stack, axis=0)
            if len(curves) == 1:
                spread = np.full(n, np.nanstd(stack[0]) or 0.0)
            else:
                spread = 1.4826 * np.nanmedian(np.abs(stack - median), axis=0)
    return Profile(step_us, median, median - band * spread, median + band * spread, len(curves))


def compare(profile: Profile, curve: np.ndarray) -> CurveComparison:
    """An event's curve against a profile: its deviation from the median at each step, the share of steps outside
    the band, the largest deviation."""
    n = min(len(curve), len(profile.median))
    c, m = curve[:n], profile.median[:n]
    ok = np.isfinite(c) & np.isfinite(m)
    dev = np.where(ok, c - m, np.nan)
    outside = ok & ((c < profile.low[:n]) | (c > profile.high[:n]))
    counted = int(ok.sum())
    return {
        "steps": counted,
        "outside_share": round(float(outside.sum()) / counted, 4) if counted else None,
        "max_abs_deviation": float(np.nanmax(np.abs(dev))) if counted else None,
        "deviation": _nums(dev),
    }
