"""The one gap rule for training and serving: a signal's value holds for `HOLD_STEPS` steps of the model's grid after
its point and is unknown past that; a row at which every input is unknown is no row (a silent plant leaves none).
The lab builds training rows from the historian with it and the live scorer, its catch-up and backfills build
theirs with it (`taehwa.live.rows`), so a model is trained and served on the same rows."""

from __future__ import annotations

import numpy as np

HOLD_STEPS = 5  # a value is held for this many steps after its point


def hold_us(step_us: int, hold_s: float | None = None) -> int:
    """How long a value holds (µs): `hold_s` when a deployment names it, else `HOLD_STEPS` steps."""
    return int(hold_s * 1e6) if hold_s else HOLD_STEPS * int(step_us)


def newest_known(point_times: np.ndarray, grid: np.ndarray, hold: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the newest point at or before each grid time, whether it still holds there)."""
    t = np.asarray(point_times, dtype=np.int64)
    if len(t) == 0:
        return np.full(len(grid), -1), np.zeros(len(grid), dtype=bool)
    idx = np.searchsorted(t, grid, side="right") - 1
    ok = idx >= 0
    ok[ok] = (grid[ok] - t[idx[ok]]) < hold
    return idx, ok
