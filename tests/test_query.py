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


def _five_days(hist: Historian) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One tag at 1 s over five days, then twenty at 60 s on the first day: tag ids run against name order, and
    each day is one file (the first of several row groups, DuckDB scanning them on several threads)."""
    rng = np.random.default_rng(3)
    series = {}
    long = T0 + np.arange(5 * 86_400, dtype=np.int64) * 1_000_000
    minutes = T0 + np.arange(1440, dtype=np.int64) * 60_000_000
    for name, t in [("z/late", long)] + [(f"a/t{i:02d}", minutes) for i in range(20)]:
        v = rng.normal(50, 5, len(t)).round(3)  # three decimals: the day files keep them as exact DECIMAL(18, 3)
        hist.write("acme", pa.table({"tag": [name] * len(t), "time": t.astype("datetime64[us]"), "value": v}))
        series[name] = (t, v)
    hist.flush()
    hist.compact(force=True)
    return series


def _expected(
    series: dict[str, tuple[np.ndarray, np.ndarray]], lo: int, hi: int
) -> tuple[list[str], list[int], list[float]]:
    tags, times, values = [], [], []
    for name in sorted(series):
        t, v = series[name]
        keep = (t >= lo) & (t < hi)
        tags += [name] * int(keep.sum())
        times += t[keep].tolist()
        values += v[keep].tolist()
    return tags, times, values


def _rows(table: pa.Table) -> tuple[list[str], list[int], list[float]]:
    tag = table.column("tag")
    if pa.types.is_dictionary(tag.type):
        tag = tag.cast(pa.string())
    return tag.to_pylist(), table.column("time").cast(pa.int64()).to_pylist(), table.column("value").to_pylist()


def test_a_raw_range_over_several_days_comes_in_tag_then_time_order_on_every_path(hist: Historian) -> None:
    """A raw read is ordered by tag name, then time, whichever path answers it: straight from the day files
    (one file a day, nothing buffered), through DuckDB (with a limit, or with points still buffered), as a
    dictionary-encoded table or as a stream. (Reading several day files in file order once gave a tag's later
    days before its earlier ones.) Values kept as exact decimals come back as the same doubles on every path."""
    series = _five_days(hist)
    lo, hi = T0 + 3 * 3_600_000_000, T0 + (2 * 24 + 1) * 3_600_000_000  # cuts the first and the last day
    names = ["a/t07", "z/late", "a/t05", "a/t06", "a/t08"]
    want = _expected({n: series[n] for n in names}, lo, hi)
    start, end = pa.scalar(lo, pa.timestamp("us", "UTC")).as_py(), pa.scalar(hi, pa.timestamp("us", "UTC")).as_py()
    answers = {
        "files": hist.read("acme", names, start, end),
        "duckdb": hist.read("acme", names, start, end, limit=10**6),
        "dictionary": hist.read("acme", names, start, end, dictionary=True),
        "stream": hist.read_stream("acme", names, start, end, batch_rows=1000).read_all(),
        "one tag, streamed": hist.read_stream("acme", ["z/late"], start, end, batch_rows=1000).read_all(),
    }
    for path, table in answers.items():
        expected = _expected({"z/late": series["z/late"]}, lo, hi) if path == "one tag, streamed" else want
        assert _rows(table) == expected, path
    assert answers["files"].schema == answers["duckdb"].schema
    assert pa.types.is_dictionary(answers["stream"].schema.field("tag").type)

    # points still buffered for the middle day: DuckDB removes the duplicates, the newest value wins
    t_mid = T0 + 24 * 3_600_000_000
    hist.write("acme", pa.table({"tag": ["z/late"], "time": [np.datetime64(t_mid, "us")], "value": [-1.0]}))
    series["z/late"][1][86_400] = -1.0
    want = _expected({n: series[n] for n in names}, lo, hi)
    assert _rows(hist.read("acme", names, start, end)) == want
    assert _rows(hist.read_stream("acme", names, start, end).read_all()) == want


def test_a_stream_too_large_is_refused_before_its_first_batch(hist: Historian) -> None:
    _five_days(hist)
    hist.queries.max_points = 100_000
    with pytest.raises(InvalidInput, match="max_query_points"):
        hist.read_stream("acme", ["a/t01", "z/late"], "2024-03-01", "2024-03-04")
    with pytest.raises(InvalidInput, match="max_query_points"):
        hist.read("acme", ["z/late"], "2024-03-01", "2024-03-04", dictionary=True)
    assert (
        hist.read_stream("acme", ["z/late"], "2024-03-01T00:00:00Z", "2024-03-01T00:10:00Z").read_all().num_rows == 600
    )
