"""Rows from raw points: the plain-Python walk that live scoring uses for a few new points gives exactly the rows of
the NumPy grid (`grid_rows`) that catch-up and backfill use, whatever order, gaps and duplicates the points come in."""

from __future__ import annotations

import numpy as np
import pytest

from taehwa.live import rows as rows_mod
from taehwa.live.rows import UnitRows

STEP = 1_000_000


def feed(seed: int, small_grid: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Three inputs, points in random pieces (out of order, duplicated, NaN, silences), rows taken after each."""
    monkeypatch.setattr(rows_mod, "SMALL_GRID", small_grid)
    rng = np.random.default_rng(seed)
    unit = UnitRows(3, STEP, 5 * STEP, 2 * STEP)
    got_t, got_v = [], []
    t = 10 * STEP
    for _ in range(200):
        t += int(rng.integers(0, 4)) * STEP + int(rng.integers(0, 2)) * STEP // 3
        if rng.random() < 0.05:
            t += 20 * STEP  # a silence longer than the hold
        piece = []
        for j in range(3):
            if rng.random() < (0.85, 0.85, 0.3)[j]:  # the third input is sparse: its values are held, then lost
                piece.append((j, t - int(rng.integers(0, 3)) * STEP // 2, float(rng.normal())))
        if rng.random() < 0.1:
            piece.append((0, t, float("nan")))
        if piece and rng.random() < 0.2:
            piece.append(piece[0])  # the same point twice
        rng.shuffle(piece)
        for j, pt, v in piece:
            unit.add(j, pt, v)
        times, values = unit.take()
        got_t.append(times)
        got_v.append(values)
    return got_t, got_v


@pytest.mark.parametrize("seed", range(8))
def test_python_rows_equal_numpy_rows(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    py_t, py_v = feed(seed, 10**9, monkeypatch)
    np_t, np_v = feed(seed, 0, monkeypatch)
    assert sum(len(t) for t in py_t) > 50  # rows were made
    for a, b in zip(py_t, np_t, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(py_v, np_v, strict=True):
        np.testing.assert_array_equal(a, b)  # NaN in the same places
