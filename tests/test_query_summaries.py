"""Long downsampled queries from per-minute/hour summaries give the answers the points give: ragged range ends,
days in two files, buffered points, every mergeable aggregate; and summaries of replaced files are dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from taehwa.historian.store import Historian

T0 = datetime(2026, 2, 1, tzinfo=UTC)
AGGS = ["avg", "min", "max", "sum", "count", "first", "last"]


def _day(day: int, tags: int = 3, step_s: int = 10, offset: float = 0.0) -> pa.Table:
    n = 86_400 // step_s
    t0 = np.datetime64(T0.replace(tzinfo=None), "us") + np.timedelta64(day, "D")
    times = t0 + (np.arange(n) * step_s * 1_000_000).astype("timedelta64[us]")
    rng = np.random.default_rng(day)
    return pa.table(
        {
            "tag": np.repeat([f"s/t{i}" for i in range(tags)], n),
            "time": pa.array(np.tile(times, tags)),
            "value": rng.normal(10, 3, n * tags) + offset,
        }
    )


def _both(hist: Historian, tags: list[str], start: datetime, end: datetime, every: str) -> tuple[pa.Table, pa.Table]:
    fast = hist.downsample("acme", tags, start, end, every, AGGS)
    summaries, hist.queries.summaries = hist.queries.summaries, None
    try:
        slow = hist.downsample("acme", tags, start, end, every, AGGS)
    finally:
        hist.queries.summaries = summaries
    return fast, slow


def _same(fast: pa.Table, slow: pa.Table) -> None:
    assert fast.column_names == slow.column_names and fast.num_rows == slow.num_rows
    assert fast.column("tag").to_pylist() == slow.column("tag").to_pylist()
    assert fast.column("time").to_pylist() == slow.column("time").to_pylist()
    for agg in AGGS:
        assert fast.column(agg).to_pylist() == pytest.approx(slow.column(agg).to_pylist(), rel=1e-12), agg


def test_summaries_answer_as_the_points_do(hist: Historian) -> None:
    for day in range(6):
        hist.write("acme", _day(day))
    hist.flush()
    hist.compact(force=True)
    hist.write("acme", _day(2, tags=1, step_s=3600, offset=100.0))  # day 2 now in two files: read its points
    hist.flush()
    hist.write("acme", [("s/t1", T0 + timedelta(days=4, seconds=5), 999.0)])  # buffered: day 4 from points
    root = hist.queries.summaries.root if hist.queries.summaries else None
    assert root is not None
    start, end = T0 + timedelta(hours=1, minutes=7, seconds=13), T0 + timedelta(days=5, hours=20, seconds=7)
    for every in ("1h", "6h", "1d", "15m"):
        fast, slow = _both(hist, ["s/t0", "s/t1"], start, end, every)
        _same(fast, slow)
    made = sorted(p.parent.name for p in root.rglob("*.sum"))
    assert made == ["2026-02-01", "2026-02-02", "2026-02-04", "2026-02-06"]  # clean days only
    assert 999.0 in _both(hist, ["s/t1"], start, end, "1h")[0].column("max").to_pylist()


def test_short_ranges_and_odd_buckets_read_points(hist: Historian) -> None:
    for day in range(3):
        hist.write("acme", _day(day))
    hist.flush()
    root = hist.queries.summaries.root if hist.queries.summaries else None
    assert root is not None
    _same(*_both(hist, ["s/t0"], T0, T0 + timedelta(days=1), "1h"))  # under two days
    _same(*_both(hist, ["s/t0"], T0, T0 + timedelta(days=3), "17s"))  # not whole minutes
    _same(*_both(hist, ["s/t0"], T0, T0 + timedelta(days=3), "1h"))
    assert len(list(root.rglob("*.sum"))) == 3
    summaries = hist.queries.summaries
    assert summaries is not None
    hist.write("acme", _day(0, tags=1, step_s=7200))
    hist.flush()
    hist.compact(force=True)  # day 0's file replaced: its old summary goes at the next prune
    summaries._pruned.clear()
    _same(*_both(hist, ["s/t0"], T0, T0 + timedelta(days=3), "1h"))
    assert len(list(root.rglob("*.sum"))) == 3


def test_a_range_inside_one_grain_counts_its_points_once(hist: Historian) -> None:
    """A range that holds no whole summary grain (10:05–10:55 in hourly buckets, 10 s in one minute) is read from
    its points alone, once: its two ragged ends were once both the whole range, so sums and counts came back
    doubled (over HTTP and the SQL port alike) once the day's summaries existed."""
    for day in range(3):
        hist.write("acme", _day(day))
    hist.flush()
    hist.compact(force=True)
    hist.warm_summaries(budget=100, force=True)
    root = hist.queries.summaries.root if hist.queries.summaries else None
    assert root is not None and len(list(root.rglob("*.sum"))) == 3
    for start, end, every in (
        (T0 + timedelta(hours=10, minutes=5), T0 + timedelta(hours=10, minutes=55), "1h"),
        (T0 + timedelta(hours=10, seconds=10), T0 + timedelta(hours=10, seconds=50), "1m"),
        (T0 + timedelta(days=1, hours=23, minutes=1), T0 + timedelta(days=2, minutes=59), "1h"),  # across midnight
    ):
        fast, slow = _both(hist, ["s/t0", "s/t2"], start, end, every)
        _same(fast, slow)
        seconds = (end - start).total_seconds()
        assert sum(fast.column("count").to_pylist()) == 2 * seconds // 10, (start, end)


def test_quiet_days_get_their_summaries_ahead_of_the_first_query(hist: Historian) -> None:
    for day in range(3):
        hist.write("acme", _day(day))
    hist.flush()
    assert hist.queries.summaries is not None
    root = hist.queries.summaries.root
    assert hist.warm_summaries(budget=2, force=True) == 2 and len(list(root.rglob("*.sum"))) == 2
    assert hist.warm_summaries(force=True) == 1 and hist.warm_summaries(force=True) == 0
    _same(*_both(hist, ["s/t2"], T0, T0 + timedelta(days=3), "1d"))


def test_warm_days_answer_from_summaries_alone_in_name_order(hist: Historian, monkeypatch: pytest.MonkeyPatch) -> None:
    later = _day(0, tags=2).set_column(0, "tag", pa.array(["a/b"] * 8640 + ["a/a"] * 8640))  # ids not in name order
    hist.write("acme", pa.concat_tables([_day(0, tags=2).set_column(0, "tag", pa.array(["z/z"] * 17280)), later]))
    hist.flush()
    tags, end = ["z/z", "a/b", "a/a"], T0 + timedelta(days=1)
    slow = {every: _both(hist, tags, T0, end, every)[1] for every in ("1m", "1h")}  # no summary yet: points
    assert hist.warm_summaries(force=True) == 1

    def no_points(*_: object) -> None:
        raise AssertionError("read points")

    with monkeypatch.context() as m:
        m.setattr(hist.queries, "_run", no_points)
        fast = {every: hist.downsample("acme", tags, T0, end, every, AGGS) for every in ("1m", "1h")}
    for every in ("1m", "1h"):
        _same(fast[every], slow[every])
    assert fast["1h"].column("tag").to_pylist()[::24] == ["a/a", "a/b", "z/z"]


def test_a_damaged_summary_is_made_again(hist: Historian) -> None:
    for day in range(2):
        hist.write("acme", _day(day))
    hist.flush()
    assert hist.warm_summaries(force=True) == 2 and hist.queries.summaries is not None
    start, end = T0 + timedelta(minutes=3), T0 + timedelta(days=2)
    good = _both(hist, ["s/t1"], start, end, "1h")[1]
    for damage in (b"THWSUM03" + b"\xff" * 8, b"not a summary"):
        for path in hist.queries.summaries.root.rglob("*.sum"):
            path.write_bytes(damage)
            hist.queries.summaries._drop_index(str(path))  # as a fresh process would find it
        _same(hist.downsample("acme", ["s/t1"], start, end, "1h", AGGS), good)  # from the points
        _same(hist.downsample("acme", ["s/t1"], start, end, "1h", AGGS), good)  # from summaries made again


def test_a_view_asked_again_reads_no_summary_file_and_a_replaced_day_is_not_served_stale(
    hist: Historian, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(3):
        hist.write("acme", _day(day))
    hist.flush()
    assert hist.warm_summaries(force=True) == 3 and hist.queries.summaries is not None
    summaries = hist.queries.summaries
    tags, end = ["s/t0", "s/t2"], T0 + timedelta(days=3)
    first = hist.downsample("acme", tags, T0, end, "1h", AGGS)
    with monkeypatch.context() as m:  # the blocks are held decoded: no file is opened for them again
        m.setattr(type(summaries), "_fetch", staticmethod(lambda *_: (_ for _ in ()).throw(AssertionError("read"))))
        again = hist.downsample("acme", tags, T0, end, "1h", AGGS)
    _same(again, first)
    # day 1 rewritten (a second file, then compacted into a new one): its new points, never the cached old blocks
    hist.write("acme", _day(1, step_s=3600, offset=50.0))
    hist.flush()
    hist.compact(force=True)
    assert hist.warm_summaries(force=True) >= 1
    fast, slow = _both(hist, tags, T0, end, "1h")
    _same(fast, slow)
    assert max(fast.column("max").to_pylist()) > 40  # the rewrite's offset shows
    assert summaries._block_bytes == sum(b.nbytes for b in summaries._blocks.values())
