"""Queries over a consistent snapshot of the store: raw range, downsample, interpolation, aligned wide tables.

The sources are the day files the manifest names plus the in-memory buffer. Files of different days never
overlap, so duplicates are removed (newest seq wins) only when a query touches two sources of one day.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import InvalidInput
from taehwa.core.timeutil import from_us
from taehwa.historian.bulk import answer_schema, read_runs, stream_runs
from taehwa.historian.files import DAY_US, parquet_source
from taehwa.historian.manifest import DataFile
from taehwa.historian.schema import OUT_TIME
from taehwa.historian.storage import Storage
from taehwa.historian.summaries import COLUMNS, MERGEABLE, MIN_RANGE_US, PARTIAL, BadSummary, Summaries, grain_for

AGGREGATES = ("avg", "min", "max", "sum", "count", "first", "last", "stddev", "twa")
METHODS = ("previous", "linear")
_SQL_AGG = {
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    "count": "count(*)::DOUBLE",
    "first": "arg_min(value, time)",
    "last": "arg_max(value, time)",
    "stddev": "stddev_samp(value)",
}


@dataclass(frozen=True)
class Snapshot:
    """What one query sees: a tenant's files and buffered points at one instant."""

    storage: Storage
    tenant: str
    files: tuple[DataFile, ...]
    buffer: pa.Table | None  # tag_id, tag, time, value, quality, seq, rn
    spans: np.ndarray | None = None
    """Per buffered batch, in the buffer's order: first row, end row, min and max time (µs), min and max tag id;
    a query scans only the batches whose spans meet its range and tags (a backfill's reads beside its growing
    output in the buffer scanned all of it per day)."""


def _buffer_rows(snap: Snapshot, tag_ids: list[int], start_us: int | None, end_us: int | None) -> pa.Table | None:
    """The buffered points of these tags in [start, end), or None when there are none."""
    buffer = snap.buffer
    if buffer is None or buffer.num_rows == 0 or not tag_ids:
        return None
    spans = snap.spans
    if spans is not None and len(spans):
        meet = (spans[:, 4] <= max(tag_ids)) & (spans[:, 5] >= min(tag_ids))
        if start_us is not None:
            meet &= spans[:, 3] >= start_us
        if end_us is not None:
            meet &= spans[:, 2] < end_us
        if not meet.any():
            return None
        if not meet.all():
            buffer = pa.concat_tables([buffer.slice(lo, hi - lo) for lo, hi in spans[meet, :2].tolist()])
    mask = pc.is_in(buffer.column("tag_id"), value_set=pa.array(tag_ids, buffer.schema.field("tag_id").type))
    times = buffer.column("time").cast(pa.int64())
    if start_us is not None:
        mask = pc.and_(mask, pc.greater_equal(times, start_us))
    if end_us is not None:
        mask = pc.and_(mask, pc.less(times, end_us))
    rows = buffer.filter(mask)
    return rows if rows.num_rows else None


class QueryEngine:
    """Runs queries with one DuckDB connection per thread (DuckDB connections are not shared across threads)."""

    def __init__(self, threads: int = 0, max_points: int = 50_000_000, summaries: Summaries | None = None) -> None:
        self._threads = threads
        self._local = threading.local()
        self.max_points = max_points
        self.summaries = summaries

    def connection(self) -> duckdb.DuckDBPyConnection:
        """This thread's DuckDB connection, set up for local, offline use."""
        con: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        if con is None:
            config: dict[str, str | bool | int | float | list[str]] = {
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            }
            if self._threads:
                config["threads"] = self._threads
            con = duckdb.connect(config=config)
            con.execute("SET parquet_metadata_cache = true")
            with contextlib.suppress(duckdb.InvalidInputException):  # Jupyter without ipywidgets refuses the change
                con.execute("SET enable_progress_bar = false")
            self._local.con = con
        return con

    # -- sources ---------------------------------------------------------------------------------------------
    def _source(
        self,
        con: duckdb.DuckDBPyConnection,
        stack: contextlib.ExitStack,
        snap: Snapshot,
        tag_ids: list[int],
        start_us: int | None,
        end_us: int | None,
    ) -> tuple[str, bool, str | None]:
        """SQL for the relevant points, whether duplicates must be removed, and the buffer view name.

        A point can be stored twice only within its own day (in two files of that day, or in a file and the
        buffer), so only the days with more than one file, or with buffered points of these tags in the range,
        go through the duplicate filter; every other day is read as it is. (A running plant always has points
        in the buffer: filtering every query over all of them made a year's trend eight times slower.)"""
        files = [f for f in snap.files if f.overlaps(start_us, end_us, tag_ids)]
        preds = [
            f"tag_id IN ({', '.join(str(int(t)) for t in tag_ids)})"
            if len(tag_ids) != 1
            else f"tag_id = {int(tag_ids[0])}"
        ]
        if start_us is not None:
            preds.append(f"time >= make_timestamp({int(start_us)})")
        if end_us is not None:
            preds.append(f"time < make_timestamp({int(end_us)})")
        where = " AND ".join(preds)
        buffered = _buffer_rows(snap, tag_ids, start_us, end_us)
        per_day = Counter(f.day for f in files)
        mixed = {d for d, n in per_day.items() if n > 1}
        if buffered is not None:
            days = np.unique(buffered.column("time").cast(pa.int64()).to_numpy() // DAY_US)
            mixed |= {from_us(int(d) * DAY_US).date().isoformat() for d in days}

        def select(group: list[DataFile]) -> str:
            # local copies stay (from eviction) until the query is done
            paths = stack.enter_context(snap.storage.local_paths([f"{snap.tenant}/{f.path}" for f in group]))
            return (
                f"SELECT tag_id, tag, time, value, quality, seq, 0::BIGINT AS rn "
                f"FROM {parquet_source(paths)} WHERE {where}"
            )

        clean = sorted((f for f in files if f.day not in mixed), key=lambda f: f.min_time)  # day order
        dirty = [f for f in files if f.day in mixed]
        parts = [select(clean)] if clean else []
        dirty_parts = [select(dirty)] if dirty else []
        view = None
        if buffered is not None:
            view = f"buf_{threading.get_ident()}"
            con.register(view, buffered)
            dirty_parts.append(f"SELECT tag_id, tag, time, value, quality, seq, rn FROM {view}")
        if dirty_parts:
            parts.append(
                f"SELECT * FROM ({' UNION ALL '.join(dirty_parts)}) QUALIFY row_number() OVER "
                f"(PARTITION BY tag_id, time ORDER BY seq DESC, rn DESC) = 1"
            )
        if not parts:
            return (
                "(SELECT NULL::BIGINT AS tag_id, NULL::VARCHAR AS tag, NULL::TIMESTAMP AS time, "
                "NULL::DOUBLE AS value, NULL::UTINYINT AS quality, NULL::BIGINT AS seq, "
                "NULL::BIGINT AS rn WHERE false)",
                False,
                None,
            )
        return f"({' UNION ALL '.join(parts)})", bool(dirty_parts), view

    def _run(
        self, snap: Snapshot, tag_ids: list[int], start_us: int | None, end_us: int | None, sql_template: str
    ) -> pa.Table:
        con = self.connection()
        with contextlib.ExitStack() as stack:
            source, _, view = self._source(con, stack, snap, tag_ids, start_us, end_us)
            try:
                return con.sql(sql_template.format(src=source)).to_arrow_table()
            finally:
                if view:
                    con.unregister(view)

    def _check_size(self, per_tag: int, tags: int, what: str, field: str, advice: str) -> None:
        """Refuse a grid or a bucket table over max_query_points from its size alone, before anything is built
        (a day at step=200us is 432 million points: 3.4 GB allocated before the old check refused it)."""
        if per_tag * tags > self.max_points:
            total, plural = per_tag * tags, "s" if tags != 1 else ""
            raise InvalidInput(
                f"too many points: the answer would have {total} ({per_tag} {what} × {tags} "
                f"tag{plural}), over max_query_points = {self.max_points}; use {advice} or a "
                "shorter range",
                where=field,
            )

    # -- queries ---------------------------------------------------------------------------------------------
    def value_at(self, snap: Snapshot, tag_ids: list[int], at_us: int, lookback_us: int) -> pa.Table:
        """Each tag's newest point at or before a time (within the lookback): what it read then."""
        table = self._run(
            snap,
            tag_ids,
            at_us - lookback_us,
            at_us + 1,
            "SELECT tag, r.time AS time, r.value AS value, r.quality AS quality FROM (SELECT tag, "
            "arg_max({{time: time, value: value, quality: quality}}, time) AS r FROM {src} GROUP BY tag) "
            "ORDER BY tag",
        )
        return _utc(table)

    def raw(
        self,
        snap: Snapshot,
        ids: dict[str, int],
        start_us: int,
        end_us: int,
        limit: int | None = None,
        *,
        dictionary: bool = False,
    ) -> pa.Table:
        """Every point of these tags (name → tag id) in [start, end), ordered by tag and time; `dictionary`: the tag
        column dictionary-encoded (each name once: a categorical in pandas).

        Where each day the range touches is one file and nothing is buffered for it, the points are read straight
        from the files (`bulk.read_runs`: 2.5× DuckDB's scan over a day of 200 tags, which decodes every row's tag
        name); every other range through DuckDB, sorted."""
        tag_ids = list(ids.values())
        files = self._one_file_a_day(snap, tag_ids, start_us, end_us) if limit is None else None
        if files is not None:
            with snap.storage.local_paths([f"{snap.tenant}/{f.path}" for f in files]) as paths:
                bulk = read_runs(paths, files, ids, start_us, end_us, self.max_points)
            if bulk is not None:
                if bulk.num_rows > self.max_points:
                    raise self._too_many()
                return bulk if dictionary else bulk.set_column(0, "tag", bulk.column("tag").cast(pa.string()))
        cap = min(limit, self.max_points) if limit else self.max_points
        table = self._run(
            snap,
            tag_ids,
            start_us,
            end_us,
            "SELECT tag, time, value, quality FROM {src} ORDER BY tag, time LIMIT " + str(cap + 1),
        )
        if table.num_rows > cap:
            if limit and limit <= self.max_points:
                table = table.slice(0, limit)
            else:
                raise self._too_many()
        table = _utc(table)
        if not dictionary:
            return table
        return table.set_column(0, "tag", table.column("tag").cast(answer_schema(len(ids)).field("tag").type))

    def raw_stream(
        self, snap: Snapshot, ids: dict[str, int], start_us: int, end_us: int, batch_rows: int
    ) -> pa.RecordBatchReader:
        """`raw(dictionary=True)` as a stream of record batches of at most `batch_rows` (for Arrow Flight): on a
        local store, where the files' order is the answer's, each batch is sent while the next is read; every
        check (the size among them) is made before the first batch."""
        tag_ids = list(ids.values())
        batches: Iterator[pa.RecordBatch] | None = None
        files = None if snap.storage.remote else self._one_file_a_day(snap, tag_ids, start_us, end_us)
        if files is not None:
            with snap.storage.local_paths([f"{snap.tenant}/{f.path}" for f in files]) as paths:
                batches = stream_runs(paths, files, ids, start_us, end_us, self.max_points, batch_rows)
        if batches is None:
            batches = iter(self.raw(snap, ids, start_us, end_us, dictionary=True).to_batches(batch_rows))
        return pa.RecordBatchReader.from_batches(answer_schema(len(ids)), batches)

    def _too_many(self) -> InvalidInput:
        return InvalidInput(
            f"the query would return more than max_query_points = {self.max_points} points; narrow the range or "
            "downsample",
            where="query",
        )

    @staticmethod
    def _one_file_a_day(snap: Snapshot, tag_ids: list[int], start_us: int, end_us: int) -> list[DataFile] | None:
        """The files this range touches, in day order, when they are one per day with nothing buffered for it (their
        points are then read as they are, `bulk`); None otherwise."""
        files = sorted((f for f in snap.files if f.overlaps(start_us, end_us, tag_ids)), key=lambda f: f.day)
        if len({f.day for f in files}) != len(files) or _buffer_rows(snap, tag_ids, start_us, end_us) is not None:
            return None
        return files

    def downsample(
        self,
        snap: Snapshot,
        tag_ids: list[int],
        start_us: int,
        end_us: int,
        every_us: int,
        aggs: list[str],
        names: list[str] | None = None,
    ) -> pa.Table:
        """One row per (tag, bucket) with the asked aggregates; buckets align to the epoch (UTC). `names`: the
        tags' names in `tag_ids`' order, which lets the answer come from the summaries."""
        if not aggs:
            raise InvalidInput("name at least one aggregate", where="agg")
        for agg in aggs:
            if agg not in AGGREGATES:
                raise InvalidInput(f"unknown aggregate {agg[:40]!r}; use {', '.join(AGGREGATES)}", where="agg")
        twice = sorted({a for a in aggs if aggs.count(a) > 1})
        if twice:
            raise InvalidInput(f"aggregate {twice[0]!r} is named twice; name each once", where="agg")
        buckets = (end_us - start_us) // every_us + 1
        self._check_size(buckets, len(tag_ids), "buckets", "every", "a longer interval")
        grain = grain_for(every_us)
        if (
            self.summaries is not None
            and names is not None
            and grain is not None
            and set(aggs) <= MERGEABLE
            and start_us >= 0  # buckets of times before 1970 are DuckDB's (truncating) division: read the points
        ):
            names_by_id = dict(zip(tag_ids, names, strict=True))
            summarized = self._downsample_summarized(snap, names_by_id, start_us, end_us, every_us, aggs, grain)
            if summarized is not None:
                return _utc(summarized)
        sql_aggs = [a for a in aggs if a != "twa"]
        cols = ", ".join(f"{_SQL_AGG[a]} AS {a}" for a in sql_aggs)
        bucket = f"make_timestamp(epoch_us(time) // {every_us} * {every_us})"
        table = self._run(
            snap,
            tag_ids,
            start_us,
            end_us,
            f"SELECT tag, {bucket} AS time{', ' + cols if cols else ''} FROM {{src}} "
            f"GROUP BY tag, 2 ORDER BY tag, time",
        )
        if "twa" in aggs:
            table = self._add_twa(snap, tag_ids, start_us, end_us, every_us, table)
        return _utc(table.select(["tag", "time", *aggs]))

    def _downsample_summarized(
        self,
        snap: Snapshot,
        names: dict[int, str],
        start_us: int,
        end_us: int,
        every_us: int,
        aggs: list[str],
        grain: int,
    ) -> pa.Table | None:
        """`downsample` from the summaries of the days whose points are in one file alone, plus raw points at the
        range's ragged ends and on the other days, merged with NumPy; None when no day qualifies, or when the
        range is short and a summary it needs is not made yet (then the points are read)."""
        summaries = self.summaries
        assert summaries is not None
        tag_ids = list(names)
        files = [f for f in snap.files if f.overlaps(start_us, end_us, tag_ids)]
        per_day = Counter(f.day for f in files)
        buffered = _buffer_rows(snap, tag_ids, start_us, end_us)
        busy: set[str] = set()
        if buffered is not None:
            days = np.unique(buffered.column("time").cast(pa.int64()).to_numpy() // DAY_US)
            busy = {from_us(int(d) * DAY_US).date().isoformat() for d in days}
        clean = [f for f in files if per_day[f.day] == 1 and f.day not in busy]
        if not clean:
            return None
        missing = [f for f in clean if not summaries.has(snap.tenant, f)]
        if missing and end_us - start_us < MIN_RANGE_US:
            return None  # a short range reads its points sooner than a day's summary is made
        dirty = tuple(f for f in files if f.day in busy or per_day[f.day] > 1)
        lo_g, hi_g = -(-start_us // grain) * grain, end_us // grain * grain
        if lo_g > hi_g:  # the range lies inside one grain: no summary row is whole in it, and its two ragged ends
            return None  # would be the same points twice
        partial = f"SELECT {PARTIAL.format(b=f'epoch_us(time) // {every_us} * {every_us}')} FROM {{src}} GROUP BY 1, 2"
        parts: list[pa.Table] = []
        clean_snap = Snapshot(snap.storage, snap.tenant, tuple(clean), None)
        for lo, hi in ((start_us, min(lo_g, end_us)), (max(hi_g, start_us), end_us)):
            if hi > lo:
                parts.append(self._run(clean_snap, tag_ids, lo, hi, partial))
        if dirty or buffered is not None:
            parts.append(
                self._run(
                    Snapshot(snap.storage, snap.tenant, dirty, snap.buffer, snap.spans),
                    tag_ids,
                    start_us,
                    end_us,
                    partial,
                )
            )
        summaries.maybe_prune(snap.tenant, snap.files)
        if missing:
            with snap.storage.local_paths([f"{snap.tenant}/{f.path}" for f in missing]) as paths:
                summaries.ensure(self.connection(), snap.tenant, missing, paths)
        ids = np.unique(np.array(tag_ids, np.int64))
        tid: list[np.ndarray] = []
        cols: list[list[np.ndarray]] = [[] for _ in COLUMNS]
        for f in clean:
            target = summaries.path(snap.tenant, f)
            try:
                got_ids, got = summaries.read(target, ids, grain)
            except (BadSummary, OSError):
                summaries.forget(target)  # made again by the next query that needs it
                return None
            if f.min_time < lo_g or f.max_time >= hi_g:  # a day at the range's ends: its whole grains inside
                keep = (got[0] >= lo_g) & (got[0] < hi_g)
                got_ids, got = got_ids[keep], [c[keep] for c in got]
            tid.append(got_ids)
            for acc, c in zip(cols, got, strict=True):
                acc.append(c)
        for part in parts:
            tid.append(part.column("tag_id").to_numpy().astype(np.int64))
            for acc, name in zip(cols, COLUMNS, strict=True):
                acc.append(part.column(name).to_numpy())
        return _merge_partials(
            names,
            np.concatenate(tid),
            [np.concatenate(c) for c in cols],
            start_us,
            every_us,
            aggs,
        )

    def _add_twa(
        self, snap: Snapshot, tag_ids: list[int], start_us: int, end_us: int, every_us: int, table: pa.Table
    ) -> pa.Table:
        """Time-weighted average: each value holds until the next point (from the last point before the bucket)."""
        series = self._series(snap, tag_ids, start_us, end_us, with_next=False)
        twa = np.full(table.num_rows, np.nan)
        tags = table.column("tag").to_pylist()
        times = table.column("time").cast(pa.int64()).to_numpy()
        for i, (tag, b0) in enumerate(zip(tags, times, strict=True)):
            t, v, _ = series.get(tag, (np.empty(0, np.int64), np.empty(0), np.empty(0)))
            lo, hi = max(int(b0), start_us), min(int(b0) + every_us, end_us)
            twa[i] = _step_mean(t, v, lo, hi)
        return table.append_column("twa", pa.array(twa, pa.float64(), from_pandas=True))

    def _series(
        self,
        snap: Snapshot,
        tag_ids: list[int],
        start_us: int,
        end_us: int,
        *,
        with_next: bool,
        lookback_us: int = 7 * 86_400_000_000,
    ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per tag: times, values, qualities in [start, end] plus the point before (and after) the range."""
        body = self._run(
            snap,
            tag_ids,
            start_us,
            end_us + 1,
            "SELECT tag, epoch_us(time) AS t, value, quality FROM {src} ORDER BY tag, t",
        )
        before = self._run(
            snap,
            tag_ids,
            start_us - lookback_us,
            start_us,
            "SELECT tag, max(epoch_us(time)) AS t, arg_max(value, time) AS value, "
            "arg_max(quality, time) AS quality FROM {src} GROUP BY tag",
        )
        parts = [before, body]
        if with_next:
            parts.append(
                self._run(
                    snap,
                    tag_ids,
                    end_us + 1,
                    end_us + lookback_us,
                    "SELECT tag, min(epoch_us(time)) AS t, arg_min(value, time) AS value, "
                    "arg_min(quality, time) AS quality FROM {src} GROUP BY tag",
                )
            )
        merged = pa.concat_tables([p.cast(parts[1].schema) for p in parts]).sort_by(
            [("tag", "ascending"), ("t", "ascending")]
        )
        out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if merged.num_rows == 0:
            return out
        tags = merged.column("tag").to_numpy(zero_copy_only=False)
        t = merged.column("t").to_numpy()
        v = merged.column("value").to_numpy()
        q = merged.column("quality").to_numpy()
        bounds = np.flatnonzero(tags[1:] != tags[:-1]) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(tags)], strict=True):
            out[str(tags[lo])] = (t[lo:hi], v[lo:hi], q[lo:hi])
        return out

    def interpolate(
        self,
        snap: Snapshot,
        tags: dict[str, int],
        start_us: int,
        end_us: int,
        step_us: int,
        method: str,
        lookback_us: int,
    ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Values of each tag at start, start+step, … ≤ end; null where no value is known."""
        if method not in METHODS:
            raise InvalidInput(f"unknown interpolation {method!r}; use previous or linear", where="method")
        self._check_size((end_us - start_us) // step_us + 1, len(tags), "steps", "step", "a longer step")
        grid = np.arange(start_us, end_us + 1, step_us, dtype=np.int64)  # sized (and refused) before it is built
        series = self._series(
            snap, list(tags.values()), start_us, end_us, with_next=method == "linear", lookback_us=lookback_us
        )
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in tags:
            t, v, q = series.get(name, (np.empty(0, np.int64), np.empty(0), np.empty(0, np.uint8)))
            out[name] = _interp(t, v, q, grid, method)
        return grid, out


def _step_mean(t: np.ndarray, v: np.ndarray, lo: int, hi: int) -> float:
    """Mean over [lo, hi) of the step function that holds v[i] from t[i] until t[i+1].

    Known only from the first point to the last: the last value is not stretched past the last point.
    """
    if len(t) == 0 or int(t[0]) >= hi or int(t[-1]) < lo:
        return float("nan")
    a, b = max(lo, int(t[0])), min(hi, int(t[-1]))
    if b <= a:  # the bucket's only known instant is the last point
        return float(v[int(np.searchsorted(t, a, side="right")) - 1])
    first = int(np.searchsorted(t, a, side="right")) - 1
    last = int(np.searchsorted(t, b, side="left"))
    edges = np.clip(np.r_[t[first:last], b].astype(np.int64), a, b)
    widths = np.diff(edges)
    return float(np.dot(v[first:last], widths) / widths.sum())


def _interp(
    t: np.ndarray, v: np.ndarray, q: np.ndarray, grid: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    values = np.full(len(grid), np.nan)
    quality = np.full(len(grid), 255, dtype=np.uint8)
    if len(t) == 0:
        return values, quality
    idx = np.searchsorted(t, grid, side="right") - 1
    has_prev = idx >= 0
    if method == "previous":
        values[has_prev] = v[idx[has_prev]]
        quality[has_prev] = q[idx[has_prev]]
        return values, quality
    nxt = np.clip(idx + 1, 0, len(t) - 1)
    exact = has_prev & (t[np.clip(idx, 0, None)] == grid)
    inside = has_prev & (idx + 1 < len(t))
    i0, i1 = idx[inside], nxt[inside]
    frac = (grid[inside] - t[i0]) / (t[i1] - t[i0])
    values[inside] = v[i0] + frac * (v[i1] - v[i0])
    quality[inside] = np.maximum(q[i0], q[i1])
    values[exact] = v[idx[exact]]
    quality[exact] = q[idx[exact]]
    return values, quality


def _merge_partials(
    names: dict[int, str],
    tid: np.ndarray,
    cols: list[np.ndarray],
    start_us: int,
    every_us: int,
    aggs: list[str],
) -> pa.Table:
    """Merge partial aggregates (`summaries.COLUMNS` per row, rows of one (tag, bucket) over disjoint spans of
    time) into one row per (tag, bucket), ordered by tag name and time: the table `downsample` answers."""
    b, n, s, lo, hi, ft, fv, _, lv = cols
    ordered = sorted(names.items(), key=lambda kv: kv[1])
    ids = np.array([i for i, _ in ordered], np.int64)
    by_id = np.argsort(ids, kind="stable")
    rank = by_id[np.searchsorted(ids[by_id], tid)]  # each row's tag, by its place in name order
    first_bucket = start_us // every_us
    bucket = b // every_us - first_bucket
    key = rank * (int(bucket.max(initial=0)) + 1) + bucket
    steps = np.diff(key)
    if len(key) > 1 and not (steps > 0).all():
        if (steps < 0).any() or (np.diff(ft)[steps == 0] <= 0).any():
            order = np.lexsort((ft, key))  # by (tag, bucket), and within one by time: first and last are ends
            key, n, s, lo, hi, fv, lv, rank, bucket = (a[order] for a in (key, n, s, lo, hi, fv, lv, rank, bucket))
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        ends = np.r_[starts[1:], len(key)] - 1
        n, s = np.add.reduceat(n, starts), np.add.reduceat(s, starts)
        lo, hi = np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)
        fv, lv, rank, bucket = fv[starts], lv[ends], rank[starts], bucket[starts]

    def value(agg: str) -> np.ndarray:
        if agg == "avg":
            return np.asarray(s / n)
        if agg == "count":
            return n.astype(np.float64)
        return {"min": lo, "max": hi, "sum": s, "first": fv, "last": lv}[agg]

    columns: dict[str, pa.Array] = {
        "tag": pa.array([name for _, name in ordered], pa.string()).take(pa.array(rank)),
        "time": pa.array((bucket + first_bucket) * every_us, pa.int64()).cast(pa.timestamp("us")),
    }
    for agg in aggs:
        columns[agg] = pa.array(value(agg), pa.float64())
    return pa.table(columns)


def _utc(table: pa.Table) -> pa.Table:
    """Mark the time column as UTC for callers."""
    if "time" in table.column_names:
        i = table.column_names.index("time")
        table = table.set_column(i, "time", pc.cast(table.column("time"), pa.timestamp("us")).cast(OUT_TIME))
    return table
