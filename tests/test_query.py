"""Queries checked against numpy on the same synthetic series: downsample, time-weighted average, interpolation."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from taehwa.core.errors import InvalidInput
from taehwa.core.timeutil import to_us
from taehwa.historian.store import Historian

T0 = to_us("2024-03-01T00:00:00Z")


@pytest.fixture
def filled(hist: Historian) -> tuple[Historian, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    t = T0 + np.sort(rng.choice(600_000_000, 500, replace=False)).astype(np.int64)  # irregular, 10 minutes
    v = rng.normal(50, 5, 500)
    hist.write("acme", pa.table({"tag": ["p/1"] * 500, "time": t.astype("datetime64[us]"), "value": v}))
    hist.flush()
    return hist, t, v


def test_downsample_matches_numpy(filled: tuple[Historian, np.ndarray, np.ndarray]) -> None:
    hist, t, v = filled
    out = hist.downsample(
        "acme",
        "p/1",
        "2024-03-01T00:00:00Z",
        "2024-03-01T00:10:00Z",
        "1m",
        ["avg", "min", "max", "sum", "count", "first", "last", "stddev"],
    )
    assert out.num_rows == 10
    bucket = (t - T0) // 60_000_000
    for row in out.to_pylist():
        b = (to_us(row["time"]) - T0) // 60_000_000
        sel = v[bucket == b]
        assert row["avg"] == pytest.approx(sel.mean())
        assert row["min"] == sel.min() and row["max"] == sel.max()
        assert row["sum"] == pytest.approx(sel.sum()) and row["count"] == len(sel)
        assert row["first"] == sel[0] and row["last"] == sel[-1]
        assert row["stddev"] == pytest.approx(sel.std(ddof=1))


def test_time_weighted_average(hist: Historian) -> None:
    # 0 for 10 s, then 10 for 50 s: the mean of the two samples is 5, the time-weighted mean 8.33
    hist.write(
        "acme",
        [
            ("p/1", "2024-03-01T00:00:00Z", 0.0),
            ("p/1", "2024-03-01T00:00:10Z", 10.0),
            ("p/1", "2024-03-01T00:01:00Z", 10.0),
        ],
    )
    out = hist.downsample("acme", "p/1", "2024-03-01T00:00:00Z", "2024-03-01T00:02:00Z", "1m", "avg,twa")
    first = out.to_pylist()[0]
    assert first["avg"] == pytest.approx(5.0)
    assert first["twa"] == pytest.approx((0 * 10 + 10 * 50) / 60)
    assert out.to_pylist()[1]["twa"] == 10.0  # last point: not stretched beyond itself


def test_interpolation_previous_and_linear(hist: Historian) -> None:
    hist.write("acme", [("p/1", "2024-03-01T00:00:00Z", 0.0), ("p/1", "2024-03-01T00:00:10Z", 10.0)])
    prev = hist.interpolate("acme", "p/1", "2024-02-29T23:59:59Z", "2024-03-01T00:00:12Z", "3s", "previous")
    assert prev.column("value").to_pylist() == [None, 0.0, 0.0, 0.0, 10.0]  # at -1, 2, 5, 8, 11 s
    lin = hist.interpolate("acme", "p/1", "2024-03-01T00:00:00Z", "2024-03-01T00:00:10Z", "2500ms", "linear")
    assert lin.column("value").to_pylist() == [0.0, 2.5, 5.0, 7.5, 10.0]
    with pytest.raises(InvalidInput, match="unknown interpolation"):
        hist.interpolate("acme", "p/1", "2024-03-01", "2024-03-02", "1s", "cubic")


def test_previous_value_comes_from_before_the_range(hist: Historian) -> None:
    hist.write("acme", [("p/1", "2024-02-28T00:00:00Z", 4.0)])
    hist.flush()
    out = hist.interpolate("acme", "p/1", "2024-03-01T00:00:00Z", "2024-03-01T00:00:01Z", "1s")
    assert out.column("value").to_pylist() == [4.0, 4.0]


def test_align_wide_table(filled: tuple[Historian, np.ndarray, np.ndarray]) -> None:
    hist, t, v = filled
    hist.write("acme", [("p/2", "2024-03-01T00:00:00Z", 1.0)])
    wide = hist.align("acme", ["p/1", "p/2"], "2024-03-01T00:01:00Z", "2024-03-01T00:02:00Z", "1s")
    assert wide.column_names == ["time", "p/1", "p/2"] and wide.num_rows == 61
    grid = to_us("2024-03-01T00:01:00Z") + np.arange(61) * 1_000_000
    expected = v[np.searchsorted(t, grid, side="right") - 1]
    assert wide.column("p/1").to_pylist() == expected.tolist()
    assert set(wide.column("p/2").to_pylist()) == {1.0}


def test_limits_and_bad_arguments(filled: tuple[Historian, np.ndarray, np.ndarray]) -> None:
    hist, _, _ = filled
    assert hist.read("acme", "p/1", "2024-03-01", "2024-03-02", limit=7).num_rows == 7
    with pytest.raises(InvalidInput, match="unknown aggregate"):
        hist.downsample("acme", "p/1", "2024-03-01", "2024-03-02", "1m", "median")
    with pytest.raises(InvalidInput, match="too many"):
        hist.downsample("acme", "p/1", "2000-01-01", "2024-03-02", "1us", "avg")
    with pytest.raises(InvalidInput, match="cannot parse time"):
        hist.read("acme", "p/1", "last tuesday", "2024-03-02")
