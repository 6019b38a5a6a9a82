"""The historian's storage: durable, idempotent, all-or-nothing writes; flush, compaction, restart, retention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taehwa.core.errors import Conflict, InvalidInput, NotFound
from taehwa.core.settings import Settings
from taehwa.core.timeutil import from_us, to_us
from taehwa.historian.store import Historian

T0 = "2024-03-01T00:00:00Z"


def series(tag: str, n: int, start: str = T0, step_s: float = 1.0, offset: float = 0.0) -> pa.Table:
    t0 = to_us(start)
    times = (t0 + (np.arange(n) * step_s * 1e6).astype(np.int64)).astype("datetime64[us]")
    return pa.table({"tag": [tag] * n, "time": times, "value": np.arange(n, dtype=float) + offset})


def values(h: Historian, tag: str, tenant: str = "acme") -> list[float]:
    got: list[float] = h.read(tenant, tag, "2024-01-01", "2025-01-01").column("value").to_pylist()
    return got


def test_write_read_roundtrip_in_all_states(hist: Historian) -> None:
    hist.write("acme", series("p/1", 100))
    assert values(hist, "p/1") == list(map(float, range(100)))  # from the buffer
    hist.flush()
    assert values(hist, "p/1") == list(map(float, range(100)))  # from a file
    hist.write("acme", series("p/1", 10, "2024-03-01T00:01:40Z", offset=100))
    hist.compact("acme")
    assert values(hist, "p/1") == list(map(float, range(110)))  # after compaction
    assert hist.stats("acme")["files"] == 1


def test_rewrites_replace_and_never_duplicate(hist: Historian) -> None:
    hist.write("acme", series("p/1", 10))
    hist.flush()
    hist.write("acme", series("p/1", 5, offset=100))  # rewrite the first five points, in the buffer
    got = values(hist, "p/1")
    assert len(got) == 10 and got[:5] == [100.0, 101.0, 102.0, 103.0, 104.0] and got[5] == 5.0
    hist.flush()
    hist.write("acme", series("p/1", 1, offset=7))  # and again, a third source
    assert values(hist, "p/1")[:2] == [7.0, 101.0]
    hist.compact("acme")
    assert values(hist, "p/1")[:2] == [7.0, 101.0] and len(values(hist, "p/1")) == 10
    # within one batch, the last row of a (tag, time) wins
    hist.write("acme", [("p/2", T0, 1.0), ("p/2", T0, 2.0)])
    assert values(hist, "p/2") == [2.0]


def test_late_and_out_of_order_data(hist: Historian) -> None:
    hist.write("acme", series("p/1", 5, "2024-03-02T00:00:00Z"))
    hist.flush()
    hist.write("acme", [("p/1", "2024-03-01T12:00:00Z", -1.0), ("p/1", "2024-03-02T00:00:02.5Z", 9.0)])
    got = hist.read("acme", "p/1", "2024-03-01", "2024-03-03")
    assert got.column("value").to_pylist() == [-1.0, 0.0, 1.0, 2.0, 9.0, 3.0, 4.0]
    assert hist.latest("acme", ["p/1"]).column("value").to_pylist() == [4.0]


def test_bad_batch_stores_nothing(hist: Historian) -> None:
    with pytest.raises(InvalidInput):
        hist.write("acme", [("p/1", T0, 1.0), ("p/new", "2024-03-01T00:00:01Z", "x")])
    with pytest.raises(NotFound):
        hist.read("acme", "p/1", "2024-01-01", "2025-01-01")
    assert hist.catalog.list("acme") == []
    assert hist.wal.read_all().num_rows == 0


def test_unknown_tenant_and_tag(hist: Historian) -> None:
    with pytest.raises(NotFound, match="unknown tenant"):
        hist.write("nobody", [("p/1", T0, 1.0)])
    with pytest.raises(NotFound, match="unknown tag"):
        hist.read("acme", "never/written", "2024-01-01", "2025-01-01")
    hist.write("acme", [("p/1", T0, 1.0)])
    with pytest.raises(InvalidInput, match="must be after start"):
        hist.read("acme", "p/1", "2025-01-01", "2024-01-01")


def test_tenants_are_isolated(hist: Historian) -> None:
    hist.write("acme", [("shared/name", T0, 1.0)])
    hist.write("rival", [("shared/name", T0, 99.0)])
    hist.flush()
    assert values(hist, "shared/name", "acme") == [1.0]
    assert values(hist, "shared/name", "rival") == [99.0]
    assert hist.latest("acme").column("value").to_pylist() == [1.0]
    hist.write("rival", [("rival/only", T0, 5.0)])
    with pytest.raises(NotFound):
        hist.read("acme", "rival/only", "2024-01-01", "2025-01-01")


def test_restart_replays_log_and_keeps_latest(settings: Settings) -> None:
    h = Historian(settings, background=False)
    h.tenants.create("acme")
    h.write("acme", series("p/1", 50))
    h.wal.close()  # simulate a crash: no flush, no close
    h._lock_fh.close()
    h.engine.dispose()  # (a dead process's database connections go with it)
    h2 = Historian(settings, background=False)
    assert values(h2, "p/1") == list(map(float, range(50)))
    assert h2.latest("acme").column("value").to_pylist() == [49.0]
    assert h2.wal.read_all().num_rows == 0  # replayed into files
    h2.close()


def test_torn_log_tail_is_ignored(settings: Settings) -> None:
    h = Historian(settings, background=False)
    h.tenants.create("acme")
    h.write("acme", series("p/1", 3))
    seg = h.wal.segments()[-1]
    h.wal.close()
    h._lock_fh.close()
    h.engine.dispose()
    with open(seg, "ab") as fh:
        fh.write(b"\xff\xff\xff\xff\x10\x00\x00\x00partial")  # a crash mid-append
    h2 = Historian(settings, background=False)
    assert values(h2, "p/1") == [0.0, 1.0, 2.0]
    h2.close()


def test_single_writer_lock_and_readers(settings: Settings) -> None:
    h = Historian(settings, background=False)
    h.tenants.create("acme")
    with pytest.raises(Conflict, match="held by"):
        Historian(settings, background=False)
    h.write("acme", series("p/1", 5))
    h.flush()
    h.write("acme", series("p/1", 2, "2024-03-01T00:00:05Z", offset=5))  # only in the log
    reader = Historian(settings, readonly=True)
    assert values(reader, "p/1") == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    with pytest.raises(Conflict, match="read-only"):
        reader.write("acme", series("p/1", 1))
    reader.close()
    h.close()


def test_large_writes_go_straight_to_files(settings: Settings) -> None:
    h = Historian(replace_settings(settings, buffer_max_points=1000), background=False)
    h.tenants.create("acme")
    big = pa.concat_tables([series("p/1", 3000, "2024-03-01T23:30:00Z"), series("p/2", 1500)])
    h.write("acme", big)
    assert h.wal.read_all().num_rows == 0
    stats = h.stats("acme")
    assert stats["rows_in_files"] == 4500 and stats["days"] == 2
    assert values(h, "p/1") == list(map(float, range(3000)))
    assert h.latest("acme", ["p/1", "p/2"]).column("value").to_pylist() == [2999.0, 1499.0]
    h.close()


def test_a_days_decimal_scale_from_numpy_is_the_one_duckdb_finds() -> None:
    """The bulk path's NumPy scale agrees with DuckDB's check on values that are hard to get right: halves that
    doubles cannot hold (0.285), values too large for an exact decimal, -0.0, NaN, inf, subnormals, and a day
    whose one odd value the sample misses (then DuckDB is asked)."""
    import duckdb

    from taehwa.historian.files import _scales, day_scale

    rng = np.random.default_rng(3)
    cases = [np.round(rng.normal(0, 1e3, 5000), k) for k in range(11)]
    cases += [
        np.array([0.285, 1.005, 2.675] * 100),
        np.array([1e15 + 0.5, 3.0]),
        np.array([-0.0, 0.0, 1.0]),
        np.array([np.nan, 1.0]),
        np.array([np.inf, 1.0]),
        np.array([5e-324, 1.0]),
        np.round(rng.normal(size=10_000), 2) * 1e6,
        np.r_[np.round(rng.normal(size=10_001), 1), 0.123456789],  # one value the sample steps over
    ]
    con = duckdb.connect()
    answered = 0
    for v in cases:
        con.register(
            "t",
            pa.table({"time": pa.array(np.full(len(v), 86_400_000_000 * 20_000)).cast(pa.timestamp("us")), "value": v}),
        )
        want = _scales(con, "(SELECT * FROM t)")[20_000]
        got = day_scale(v)
        assert got in (None, want), (v[:3], got, want)
        answered += got is not None
    assert answered >= len(cases) - 1 and day_scale(cases[-1]) is None


def test_a_large_write_keeps_every_value_exact_whichever_way_its_scale_is_found(settings: Settings) -> None:
    h = Historian(replace_settings(settings, buffer_max_points=1000), background=False)
    h.tenants.create("acme")
    rng = np.random.default_rng(9)
    n = 20_000
    times = (to_us("2024-03-01T00:00:00Z") + np.arange(n, dtype=np.int64) * 1_000_000).astype("datetime64[us]")
    two = np.round(rng.normal(50, 5, n), 2)
    odd = two.copy()
    odd[12_345] = 50.123456789  # not in the sample: the day's scale comes from DuckDB, 9
    h.write("acme", pa.table({"tag": ["two"] * n, "time": times, "value": two}))
    h.write("acme", pa.table({"tag": ["odd"] * n, "time": times + np.timedelta64(1, "D"), "value": odd}))
    assert {f.day: f.scale for f in h.state.manifest("acme").files} == {"2024-03-01": 2, "2024-03-02": 9}
    assert values(h, "two") == two.tolist() and values(h, "odd") == odd.tolist()
    h.close()


@pytest.mark.parametrize("order", ["time-major", "tag-major", "shuffled-with-repeats"])
def test_large_writes_keep_the_last_of_repeated_points(settings: Settings, order: str) -> None:
    """Large batches skip the dedup pass only when their order proves no point repeats."""
    h = Historian(replace_settings(settings, buffer_max_points=100), background=False)
    h.tenants.create("acme")
    tags = np.array(["a", "b", "c"])
    times = np.datetime64("2024-03-01T00:00:00", "us") + np.arange(100).astype("timedelta64[s]")
    if order == "time-major":
        tag_col, time_col = np.tile(tags, 100), np.repeat(times, 3)
    else:
        tag_col, time_col = np.repeat(tags, 100), np.tile(times, 3)
    values_col = np.arange(300, dtype=float)
    if order == "shuffled-with-repeats":
        perm = np.random.default_rng(3).permutation(300)
        # every point twice: the second copy (written later in the batch) carries value + 1000
        tag_col = np.concatenate([tag_col[perm], tag_col[perm]])
        time_col = np.concatenate([time_col[perm], time_col[perm]])
        values_col = np.concatenate([values_col[perm], values_col[perm] + 1000])
    h.write("acme", pa.table({"tag": tag_col, "time": time_col, "value": values_col}))
    assert h.stats("acme")["rows_in_files"] == 300
    got = values(h, "b")
    expected = [float(v) for v in range(100, 200)] if order != "time-major" else [float(1 + 3 * i) for i in range(100)]
    if order == "shuffled-with-repeats":
        expected = [v + 1000 for v in expected]
    assert got == expected
    h.close()


def test_files_are_plain_sorted_parquet(hist: Historian) -> None:
    hist.write("acme", [("b", T0, 2.0), ("a", "2024-03-01T00:00:01Z", 1.0), ("a", T0, 0.0)])
    hist.flush()
    f = hist.stats("acme")
    assert f["files"] == 1
    path = next((hist.root / "acme").glob("day=2024-03-01/*.parquet"))
    table = pq.read_table(path)
    assert table.column_names == ["tag_id", "tag", "time", "value", "quality", "seq"]
    ids = table.column("tag_id").to_pylist()
    assert ids == sorted(ids)


def test_retention_drops_old_days(hist: Historian) -> None:
    hist.tenants.set_retention("acme", 30)
    hist.write("acme", series("old", 3, "2020-01-01T00:00:00Z"))
    recent = to_us("now") - 3_600_000_000
    hist.write("acme", [("new", recent / 1e6, 1.0)])
    hist.flush()
    assert hist.apply_retention() == 1
    assert values(hist, "old") == []
    assert hist.read("acme", "new", "2024-01-01", "now").num_rows == 1
    with pytest.raises(InvalidInput):
        hist.tenants.set_retention("acme", 0)


def test_ingest_file_rows_counted_from_file_start(hist: Historian, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("tag,time,value\np/1,2024-03-01T00:00:00Z,1\np/1,2024-03-01T00:00:01Z,oops\n")
    with pytest.raises(InvalidInput) as info:
        hist.ingest_file("acme", csv)
    assert info.value.where == "bad.csv, row 2, column 'value'"
    wide = tmp_path / "wide.csv"
    wide.write_text("time;p/1;p/2\n2024-03-01 00:00:00;1.5;2.5\n2024-03-01 00:00:01;1.6;\n")
    assert hist.ingest_file("acme", wide).points == 3


def replace_settings(settings: Settings, **changes: object) -> Settings:
    return Settings(**{**settings.model_dump(), **changes})


def test_rewrites_are_resolved_per_day_whatever_else_is_buffered(hist: Historian) -> None:
    """Only days that may hold a point twice (several files, or buffered points of the tags asked) are filtered for
    duplicates; the answer is the same as filtering everything."""
    day = 86_400 * 10**6
    t0 = to_us("2026-03-01T00:00:00Z")
    rows = [("p/1", from_us(t0 + d * day + k * 10**6), float(d * 100 + k)) for d in range(3) for k in range(5)]
    hist.write("acme", rows)
    hist.flush()  # one file per day
    hist.write("acme", [("p/1", from_us(t0 + day + 2 * 10**6), -1.0)])  # day 2 rewritten, in the buffer
    hist.write("acme", [("other/tag", from_us(t0 + 5 * day), 9.0)])  # buffered points of another tag and day
    got = hist.read("acme", ["p/1"], from_us(t0), from_us(t0 + 3 * day))
    assert got.num_rows == 15
    assert got.column("value").to_pylist() == [
        0.0,
        1.0,
        2.0,
        3.0,
        4.0,
        100.0,
        101.0,
        -1.0,
        103.0,
        104.0,
        200.0,
        201.0,
        202.0,
        203.0,
        204.0,
    ]
    hist.flush()  # day 2 now has two files
    again = hist.query("acme", ["p/1"], from_us(t0), from_us(t0 + 3 * day), every="1d", agg="count")
    assert again.column("count").to_pylist() == [5, 5, 5]
    assert hist.query("acme", ["p/1"], from_us(t0 + day), from_us(t0 + 2 * day), every="1d", agg="min").column(
        "min"
    ).to_pylist() == [-1.0]


def test_values_with_few_decimals_are_stored_as_exact_decimals(hist: Historian) -> None:
    """A day whose values all have a few decimals is written as DECIMAL(18, k) (DELTA-packed: smaller), read
    back as the very same doubles; a day with one value that no decimal up to 9 places holds stays DOUBLE,
    and so do values too large for an exact decimal; compaction of the two kinds keeps every value exact."""
    rng = np.random.default_rng(5)
    n = 3000
    times = (to_us(T0) + np.arange(n, dtype=np.int64) * 1_000_000).astype("datetime64[us]")
    decimals = rng.normal(50, 5, n).round(3)
    day2 = (to_us("2024-03-02T00:00:00Z") + np.arange(n, dtype=np.int64) * 1_000_000).astype("datetime64[us]")
    odd = rng.normal(50, 5, n)
    big = np.r_[1e17, decimals[1:]]
    day3 = (to_us("2024-03-03T00:00:00Z") + np.arange(n, dtype=np.int64) * 1_000_000).astype("datetime64[us]")
    hist.write("acme", pa.table({"tag": ["d"] * n, "time": times, "value": decimals}))
    hist.write("acme", pa.table({"tag": ["o"] * n, "time": day2, "value": odd}))
    hist.write("acme", pa.table({"tag": ["b"] * n, "time": day3, "value": big}))
    hist.flush()
    scales = {f.day: f.scale for f in hist.state.manifest("acme").files}
    assert scales == {"2024-03-01": 3, "2024-03-02": -1, "2024-03-03": -1}
    path = next((hist.root / "acme").glob("day=2024-03-01/*.parquet"))
    assert pq.read_schema(path).field("value").type == pa.decimal128(18, 3)
    assert values(hist, "d") == decimals.tolist() and values(hist, "o") == odd.tolist()
    assert values(hist, "b") == big.tolist()
    hist.write("acme", pa.table({"tag": ["o"], "time": times[:1], "value": [np.pi]}))  # day 1 now mixed
    hist.flush()
    assert hist.compact("acme") == 1
    after = {f.day: f.scale for f in hist.state.manifest("acme").files}
    assert after == {"2024-03-01": -1, "2024-03-02": -1, "2024-03-03": -1}
    assert values(hist, "d") == decimals.tolist() and values(hist, "o") == [np.pi, *odd.tolist()]
    assert hist.downsample("acme", "d", T0, "2024-03-02", "1h", "sum").column("sum").to_pylist() == pytest.approx(
        [decimals[i : i + 3600].sum() for i in range(0, n, 3600)], rel=1e-12
    )


def test_the_whole_tag_listing_is_kept_until_a_tag_changes_or_its_time_passes(hist: Historian) -> None:
    hist.write("acme", series("p/1", 3))
    first = hist.tags("acme", None, 100_000)
    version = hist.catalog.listing_version("acme")
    assert hist.tags("acme", None, 100_000) == first and hist.catalog.listing_version("acme") == version  # kept
    hist.set_tag("acme", "p/1", {"unit": "bar"})  # a change in this process: read afresh at once
    assert [t.unit for t in hist.tags("acme", None, 100_000)] == ["bar"]
    hist.write("acme", series("p/2", 3))  # a new tag: too
    assert [t.name for t in hist.tags("acme", None, 100_000)] == ["p/1", "p/2"]
    from taehwa.historian.catalog import TagCatalog

    other = TagCatalog(hist.catalog._engine)  # another process's catalog changes a unit: seen once the time passes
    other.set_metadata("acme", "p/2", {"unit": "m3/h"})
    assert [t.unit for t in hist.tags("acme", None, 100_000)] == ["bar", None]
    hist.catalog.LISTING_TTL_S = 0.0
    assert [t.unit for t in hist.tags("acme", None, 100_000)] == ["bar", "m3/h"]
    assert hist.catalog.listing_version("acme") > version


@pytest.mark.parametrize("path", ["buffered", "direct"])
def test_a_history_write_is_stored_whole_and_heard_as_each_tags_newest_point(settings: Settings, path: str) -> None:
    """A backfill's points are history: every one is stored, but the write listeners (the twin's live state, live
    analytics and scoring) hear each tag's newest point alone, not the range again (a month of one calculated tag
    was once a 2.6-million-point change event). A plain write is heard whole."""
    h = Historian(settings.model_copy(update={"buffer_max_points": 100 if path == "direct" else 10_000}))
    h.tenants.create("acme")
    heard: list[pa.Table] = []
    h.add_listener(lambda tenant, points: heard.append(points))
    try:
        table = pa.concat_tables([series("a/x", 300), series("a/y", 200, offset=1000.0)])
        rows = np.random.default_rng(0).permutation(table.num_rows)  # written in no particular order
        h.write_checked("acme", h.normalize(table.take(pa.array(rows))), history=True)
        h.flush()
        assert values(h, "a/x") == [float(v) for v in range(300)] and len(values(h, "a/y")) == 200
        got = {r["tag"]: r["value"] for t in heard for r in t.to_pylist()}
        assert sum(t.num_rows for t in heard) == 2 and got == {"a/x": 299.0, "a/y": 1199.0}
        heard.clear()
        h.write_checked("acme", h.normalize(series("a/x", 150, start="2024-03-02T00:00:00Z")))
        assert sum(t.num_rows for t in heard) == 150
    finally:
        h.close()


def test_a_restart_without_the_last_values_snapshot_takes_them_from_the_files(settings: Settings) -> None:
    """A crash between a manifest's commit and the last-values snapshot leaves files newer than the snapshot: the
    next start takes their newest point per tag from the files themselves (it once did so through a DuckDB call
    that warns of an extra copy, which a SIGKILL test hit only when its kill fell in that gap)."""
    h = Historian(settings, background=False)
    h.tenants.create("acme")
    h.write("acme", series("a/x", 100))
    h.flush()
    h.close()
    (settings.data_dir / "historian" / "acme" / "latest.parquet").unlink()
    h = Historian(settings, background=False)
    try:
        latest = h.latest("acme")
        assert latest.column("tag").to_pylist() == ["a/x"] and latest.column("value").to_pylist() == [99.0]
    finally:
        h.close()
