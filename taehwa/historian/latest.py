"""The last-value cache: the newest point of every tag, kept current on every write, so that "last value of
1,000 tags" is a lookup rather than a scan. Stored beside the manifest and rebuilt on start.

Per tenant the cache is five arrays kept in tag-id order (tag id, time, value, quality, seq). A write finds each
tag's newest point of its batch by one stable sort (or none, when the batch holds each tag once in id order) and
folds it in by one vectorised comparison: no Python step per point or per tag.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class Last(NamedTuple):
    """A tag's newest point; (time, seq) orders candidates, so a rewrite of the newest point replaces it."""

    time_us: int
    value: float
    quality: int
    seq: int


_SNAPSHOT_SCHEMA = pa.schema(
    [
        ("tag_id", pa.int64()),
        ("time_us", pa.int64()),
        ("value", pa.float64()),
        ("quality", pa.uint8()),
        ("seq", pa.int64()),
    ]
)


class Points(NamedTuple):
    """Points as arrays of equal length: tag id, time (µs since the epoch), value, quality, seq."""

    tag_id: np.ndarray
    time_us: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    seq: np.ndarray

    @staticmethod
    def empty() -> Points:
        i64 = np.empty(0, np.int64)
        return Points(i64, i64, np.empty(0, np.float64), np.empty(0, np.uint8), i64)

    def take(self, rows: np.ndarray) -> Points:
        return Points(*(a[rows] for a in self))


def _np(column: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype)


def newest_per_tag(points: Points, order: np.ndarray | None = None) -> Points:
    """Each tag's newest point: the highest (time, seq), and of equal (time, seq) the last in `order` (the row
    numbers in the order written; the rows' own order when None). One row per tag, in tag-id order."""
    ids = points.tag_id
    n = len(ids)
    if n == 0:
        return points
    if n == 1 or bool(np.all(ids[1:] > ids[:-1])):
        return points  # each tag once, in id order: every row is its tag's newest
    if n > 4096 and int(ids.min()) >= 0 and int(ids.max()) < 4 * n:
        # only rows at their tag's newest time can win: found in one pass (tag ids are small and dense), and
        # the full tie-break below runs on those few rows alone, not on the whole batch
        newest = np.full(int(ids.max()) + 1, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(newest, ids, points.time_us)
        rows = np.flatnonzero(points.time_us == newest[ids])
        return _last_by_time_seq(points.take(rows), rows if order is None else order[rows])
    return _last_by_time_seq(points, order)


def _last_by_time_seq(points: Points, order: np.ndarray | None) -> Points:
    """`newest_per_tag` by one stable sort of every row given."""
    ids = points.tag_id
    # lexsort is stable and sorts by its last key first: tag, then time, then seq, then (given) row order
    keys: list[np.ndarray] = [] if order is None else [order]
    seqs = points.seq
    if seqs[0] != seqs[-1] or not bool(np.all(seqs == seqs[0])):
        keys.append(seqs)
    keys += [points.time_us, ids]
    by = np.lexsort(keys)
    sorted_ids = ids[by]
    last = np.flatnonzero(np.append(sorted_ids[1:] != sorted_ids[:-1], True))
    return points.take(by[last])


class _Tenant:
    """One tenant's newest points, sorted by tag id."""

    __slots__ = ("points",)

    def __init__(self) -> None:
        self.points = Points.empty()

    def fold(self, new: Points) -> None:
        """Fold in candidates (one per tag, in tag-id order); a candidate wins when its (time, seq) is not older."""
        old = self.points
        if not len(new.tag_id):
            return
        pos = np.searchsorted(old.tag_id, new.tag_id)
        inside = pos < len(old.tag_id)
        known = np.zeros(len(new.tag_id), bool)
        known[inside] = old.tag_id[pos[inside]] == new.tag_id[inside]
        if known.all():
            t_old, s_old = old.time_us[pos], old.seq[pos]
            win = (new.time_us > t_old) | ((new.time_us == t_old) & (new.seq >= s_old))
            if win.all():
                for a, b in zip(old, new, strict=True):
                    a[pos] = b
            elif win.any():
                hit = pos[win]
                for a, b in zip(old, new, strict=True):
                    a[hit] = b[win]
            return
        # tags not in the cache yet: merge the two sorted id lists, then fold the known ones
        fresh = new.take(np.flatnonzero(~known))
        ids = np.concatenate([old.tag_id, fresh.tag_id])
        by = np.argsort(ids, kind="stable")
        merged = Points(*(np.concatenate([a, b])[by] for a, b in zip(old, fresh, strict=True)))
        self.points = merged
        self.fold(new.take(np.flatnonzero(known)))

    def drop_before(self, cutoff_us: int) -> None:
        keep = self.points.time_us >= cutoff_us
        if not keep.all():
            self.points = self.points.take(np.flatnonzero(keep))


class LatestCache:
    """Per tenant: each tag id's newest point."""

    def __init__(self) -> None:
        self._data: dict[str, _Tenant] = {}
        self._lock = threading.Lock()

    def points(self, tenant: str) -> Points:
        """A copy of the tenant's newest points, one per tag in tag-id order."""
        with self._lock:
            got = self._data.get(tenant)
            return Points(*(a.copy() for a in got.points)) if got is not None else Points.empty()

    def lookup(self, tenant: str, tag_ids: np.ndarray | list[int]) -> tuple[np.ndarray, Points]:
        """For tag ids: which have a newest point (a mask over `tag_ids`) and those points, in `tag_ids`' order."""
        wanted = np.asarray(tag_ids, np.int64)
        with self._lock:  # the arrays change in place on writes: take (a copy) under the lock
            got = self._data.get(tenant)
            points = got.points if got is not None else Points.empty()
            pos = np.searchsorted(points.tag_id, wanted)
            inside = pos < len(points.tag_id)
            found = np.zeros(len(wanted), bool)
            found[inside] = points.tag_id[pos[inside]] == wanted[inside]
            return found, points.take(pos[found])

    def get(self, tenant: str) -> dict[int, Last]:
        """A copy of the tenant's newest points as a dict (for callers that want one; `points` is cheaper)."""
        p = self.points(tenant)
        return {
            i: Last(t, v, q, s)
            for i, t, v, q, s in zip(
                p.tag_id.tolist(), p.time_us.tolist(), p.value.tolist(), p.quality.tolist(), p.seq.tolist(), strict=True
            )
        }

    def merge_points(self, tenant: str, points: Points, order: np.ndarray | None = None) -> None:
        """Fold in points of one or more writes; see `newest_per_tag` for which of a tag's points is its newest."""
        best = newest_per_tag(points, order)
        with self._lock:
            self._data.setdefault(tenant, _Tenant()).fold(best)

    def merge_table(self, tenant: str, table: pa.Table, *, seq: int | None = None) -> None:
        """Fold in a table with tag_id, time, value, quality and seq columns (or one `seq` for all rows), and an
        optional `rn` column giving the order the rows were written in (the rows' own order without it)."""
        n = table.num_rows
        if n == 0:
            return
        seqs = np.full(n, seq, np.int64) if seq is not None else _np(table.column("seq"), np.int64)
        points = Points(
            _np(table.column("tag_id"), np.int64),
            _np(table.column("time"), np.int64),
            _np(table.column("value"), np.float64),
            _np(table.column("quality"), np.uint8),
            seqs,
        )
        order = _np(table.column("rn"), np.int64) if "rn" in table.column_names else None
        self.merge_points(tenant, points, order)

    def merge(self, tenant: str, rows: list[tuple[int, int, float, int, int]]) -> None:
        """Fold in candidates (tag_id, time_us, value, quality, seq); newer (time, seq) wins."""
        if not rows:
            return
        ids, times, values, quality, seqs = zip(*rows, strict=True)
        self.merge_points(
            tenant,
            Points(
                np.array(ids, np.int64),
                np.array(times, np.int64),
                np.array(values, np.float64),
                np.array(quality, np.uint8),
                np.array(seqs, np.int64),
            ),
        )

    def merge_source(self, con: duckdb.DuckDBPyConnection, tenant: str, source: str, *, has_rn: bool) -> None:
        """Fold in the newest point per tag of a SQL source: one batch (has_rn) or duplicate-free files."""
        # one batch (constant seq): time, then row; several: time, then seq (rows of a source are unique)
        key = "epoch_us(time)::HUGEINT * 4294967296 + rn" if has_rn else "{t: time, s: seq}"
        table = (
            con.sql(  # a relation, not a DB-API result: DuckDB copies the rows of the latter once more (and says so)
                f"SELECT tag_id, r.t AS time, r.v AS value, r.q AS quality, r.s AS seq FROM (SELECT tag_id, "
                f"arg_max({{t: epoch_us(time), v: value, q: quality, s: seq}}, {key}) AS r "
                f"FROM {source} GROUP BY tag_id)"
            ).to_arrow_table()
        )
        self.merge_table(tenant, table)

    def drop_before(self, tenant: str, cutoff_us: int) -> None:
        """Forget points older than a retention cutoff."""
        with self._lock:
            got = self._data.get(tenant)
            if got is not None:
                got.drop_before(cutoff_us)

    def snapshot_bytes(self, tenant: str, manifest_version: int) -> bytes:
        """The tenant's newest points as a Parquet file, recording which manifest version it reflects."""
        p = self.points(tenant)
        table = pa.table(
            {
                "tag_id": pa.array(p.tag_id, pa.int64()),
                "time_us": pa.array(p.time_us, pa.int64()),
                "value": pa.array(p.value, pa.float64()),
                "quality": pa.array(p.quality, pa.uint8()),
                "seq": pa.array(p.seq, pa.int64()),
            },
            schema=_SNAPSHOT_SCHEMA.with_metadata({"manifest_version": str(manifest_version)}),
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return bytes(sink.getvalue().to_pybytes())

    def load_snapshot(self, tenant: str, data: bytes | None) -> int:
        """Fold in a stored snapshot; returns the manifest version it reflects (-1: none, so every file counts)."""
        if data is None:
            return -1
        try:
            table = pq.read_table(pa.BufferReader(data))
        except pa.ArrowInvalid:
            return -1
        meta = table.schema.metadata or {}
        self.merge_points(
            tenant,
            Points(
                _np(table.column("tag_id"), np.int64),
                _np(table.column("time_us"), np.int64),
                _np(table.column("value"), np.float64),
                _np(table.column("quality"), np.uint8),
                _np(table.column("seq"), np.int64),
            ),
        )
        return int(meta.get(b"manifest_version", b"-1"))
