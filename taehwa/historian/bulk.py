"""Bulk raw reads straight from the day files, for Arrow answers (Flight, `format=arrow`): PyArrow reads only the
row groups whose tag ids meet the query, never decodes the file's tag strings (the tag column is built as a
dictionary from the tag ids: each name once), and puts each tag's runs in name order with one gather.

It applies when each day the range touches is one file and nothing is buffered for it (no duplicates to remove);
the query engine's DuckDB path answers every other case. The answer is the engine's raw answer, row for row."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taehwa.historian.manifest import DataFile
from taehwa.historian.schema import OUT_TIME

COLUMNS = ["tag_id", "time", "value", "quality"]


def answer_schema(tags: int) -> pa.Schema:
    """The answer's columns for this many tags: the tag column's dictionary indices as narrow as they fit (int8 up
    to 127 names, int16 up to 32,767: a day of 200 tags sends 14 % fewer bytes than with int32)."""
    index = pa.int8() if tags <= 127 else pa.int16() if tags <= 32_767 else pa.int32()
    return pa.schema(
        [
            ("tag", pa.dictionary(index, pa.string())),
            ("time", OUT_TIME),
            ("value", pa.float64()),
            ("quality", pa.uint8()),
        ]
    )


class _Wanted:
    """The tags asked for: their names in order (the answer's dictionary) and each tag id's rank among them."""

    def __init__(self, ids: dict[str, int]) -> None:
        self.names = sorted(ids)
        by_id = np.array([ids[n] for n in self.names], np.int64)
        order = np.argsort(by_id)
        self.ids, self.rank_of = by_id[order], order  # tag id self.ids[k] has rank self.rank_of[k]
        self.dictionary = pa.array(self.names, pa.string())
        self.id_order_is_name_order = bool(np.all(np.diff(order) > 0))
        self.schema = answer_schema(len(self.names))
        self.index = self.schema.field("tag").type.index_type.to_pandas_dtype()


def _groups(pf: pq.ParquetFile, wanted: _Wanted) -> list[int]:
    """The row groups whose tag-id range holds a wanted tag (all of them where a group has no statistics)."""
    md = pf.metadata
    col = pf.schema_arrow.get_field_index("tag_id")
    out = []
    for g in range(md.num_row_groups):
        stats = md.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            out.append(g)
            continue
        lo = np.searchsorted(wanted.ids, int(stats.min))
        if lo < len(wanted.ids) and wanted.ids[lo] <= int(stats.max):
            out.append(g)
    return out


def _read(
    pf: pq.ParquetFile, groups: list[int], f: DataFile, wanted: _Wanted, start_us: int, end_us: int
) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
    """These row groups (tag id, time, value as doubles, quality) and their wanted runs cut to [start, end): each
    run's rank, first row and end row."""
    return _runs(pf.read_row_groups(groups, columns=COLUMNS, use_threads=True), f, wanted, start_us, end_us)


def _runs(
    table: pa.Table, f: DataFile, wanted: _Wanted, start_us: int, end_us: int
) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of a day file (tag id, time, value, quality) with the values as doubles, and their wanted runs cut to
    [start, end): each run's rank, first row and end row."""
    value = table.column("value")
    if pa.types.is_decimal(value.type):  # exact decimals kept as DECIMAL(18, s)
        value = _doubles(value)
    columns = [table.column("tag_id"), table.column("time"), value, table.column("quality")]
    table = pa.table(dict(zip(COLUMNS, columns, strict=True)))  # one schema for every day (files differ in which
    tid = table.column("tag_id").to_numpy()  # columns they mark not null)
    if len(tid) == 0:
        nothing = np.empty(0, np.int64)
        return table, nothing, nothing, nothing
    starts = np.flatnonzero(np.concatenate(([True], tid[1:] != tid[:-1])))  # the file runs by (tag id, time)
    ends = np.append(starts[1:], len(tid))
    run_ids = tid[starts]
    at = np.minimum(np.searchsorted(wanted.ids, run_ids), len(wanted.ids) - 1)
    keep = wanted.ids[at] == run_ids
    starts, ends, ranks = starts[keep], ends[keep], wanted.rank_of[at[keep]]
    if start_us > f.min_time or end_us <= f.max_time:  # the range cuts this day: each run cut by its times
        times = table.column("time").cast(pa.int64()).to_numpy()
        for k in range(len(starts)):
            run = times[starts[k] : ends[k]]
            starts[k], ends[k] = starts[k] + np.searchsorted(run, start_us), starts[k] + np.searchsorted(run, end_us)
    cut = ends > starts
    return table, ranks[cut], starts[cut], ends[cut]


def _gather(table: pa.Table, rank: np.ndarray, lo: np.ndarray, hi: np.ndarray, wanted: _Wanted) -> pa.Table:
    """The runs [lo, hi) of `table`, in the order given, as the answer's columns (one gather, none when the runs
    are the whole table in its own order)."""
    lengths = hi - lo
    if not (len(lo) and lo[0] == 0 and hi[-1] == table.num_rows and np.array_equal(lo[1:], hi[:-1])):
        firsts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        table = table.take(pa.array(np.arange(int(lengths.sum()), dtype=np.int64) + firsts))
    tags = pa.DictionaryArray.from_arrays(pa.array(np.repeat(rank.astype(wanted.index), lengths)), wanted.dictionary)
    time = table.column("time").cast(pa.timestamp("us")).cast(OUT_TIME)
    return pa.Table.from_arrays([tags, time, table.column("value"), table.column("quality")], schema=wanted.schema)


def _held(pfs: list[pq.ParquetFile], wanted: _Wanted, max_rows: int) -> list[list[int]] | None:
    """Each file's row groups to read, or None when they hold more than `max_rows` points."""
    groups = [_groups(pf, wanted) for pf in pfs]
    held = sum(pf.metadata.row_group(g).num_rows for pf, gs in zip(pfs, groups, strict=True) for g in gs)
    return None if held > max_rows else groups


def read_runs(
    paths: list[str], files: list[DataFile], ids: dict[str, int], start_us: int, end_us: int, max_rows: int
) -> pa.Table | None:
    """Every point of the tags `ids` (name → tag id) in [start, end) from these day files (one per day, in day
    order), ordered by tag name and time, the tag column dictionary-encoded; None when the row groups to read
    hold more than `max_rows` points (the caller's path counts exactly and refuses)."""
    wanted = _Wanted(ids)
    pfs = [pq.ParquetFile(p, memory_map=True, pre_buffer=False) for p in paths]
    groups = _held(pfs, wanted, max_rows)
    if groups is None:
        return None
    parts: list[pa.Table] = []
    runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    offset = 0
    for pf, gs, f in zip(pfs, groups, files, strict=True):
        if gs:
            table, rank, lo, hi = _read(pf, gs, f, wanted, start_us, end_us)
            parts.append(table)
            runs.append((rank, lo + offset, hi + offset))
            offset += table.num_rows
    if not parts:
        return wanted.schema.empty_table()
    rank, lo, hi = (np.concatenate(r) for r in zip(*runs, strict=True))
    sequence = np.argsort(rank, kind="stable")  # by tag name; each tag's days stay in day order
    return _gather(pa.concat_tables(parts), rank[sequence], lo[sequence], hi[sequence], wanted)


def stream_runs(
    paths: list[str],
    files: list[DataFile],
    ids: dict[str, int],
    start_us: int,
    end_us: int,
    max_rows: int,
    batch_rows: int,
) -> Iterator[pa.RecordBatch] | None:
    """`read_runs` as record batches of at most `batch_rows`, each sent while the next is read where the files'
    order is the answer's (one day, or one tag, with tag ids in name order); None as `read_runs`."""
    wanted = _Wanted(ids)
    if not (len(files) == 1 or len(ids) == 1) or not wanted.id_order_is_name_order:
        table = read_runs(paths, files, ids, start_us, end_us, max_rows)
        return None if table is None else iter(table.to_batches(batch_rows))
    pfs = [pq.ParquetFile(p, memory_map=True, pre_buffer=False) for p in paths]
    groups = _held(pfs, wanted, max_rows)
    if groups is None:
        return None

    def batches() -> Iterator[pa.RecordBatch]:
        jobs = [(pf, g, f) for pf, gs, f in zip(pfs, groups, files, strict=True) for g in gs]
        with ThreadPoolExecutor(1, thread_name_prefix="bulk-read") as ahead:  # the next group read while this

            def job(k: int) -> Future[tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]]:  # one is sent
                pf, g, f = jobs[k]
                return ahead.submit(_read, pf, [g], f, wanted, start_us, end_us)

            coming = job(0) if jobs else None
            for k in range(len(jobs)):  # one row group at a time, in the file's order: the answer's order here
                assert coming is not None
                table, rank, lo, hi = coming.result()
                coming = job(k + 1) if k + 1 < len(jobs) else None
                if len(rank):
                    yield from _gather(table, rank, lo, hi, wanted).to_batches(batch_rows)

    return batches()


def _doubles(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """DECIMAL(18, s) values as doubles, each the unscaled integer divided by 10^s (correctly rounded, as DuckDB's
    cast gives; PyArrow's cast differs in the last bit for about one value in seven)."""
    scale = 10.0**column.type.scale
    out = []
    for chunk in column.chunks:
        if chunk.null_count:
            out.append(chunk.cast(pa.float64()))
            continue
        low = np.frombuffer(chunk.buffers()[1], np.int64)[2 * chunk.offset : 2 * (chunk.offset + len(chunk)) : 2]
        values = low.astype(np.float64)  # DECIMAL(18, s) fits the low 64 bits (little-endian), exactly in a double
        values /= scale
        out.append(pa.array(values, pa.float64()))
    return pa.chunked_array(out, pa.float64())
