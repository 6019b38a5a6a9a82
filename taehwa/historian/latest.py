"""The last-value cache: the newest point of every tag, kept current on every write, so that "last value of
1,000 tags" is a dictionary lookup rather than a scan. Stored beside the manifest and rebuilt on start."""

from __future__ import annotations

import threading
from typing import NamedTuple

import duckdb
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


class LatestCache:
    """Per tenant: tag id to its newest point."""

    def __init__(self) -> None:
        self._data: dict[str, dict[int, Last]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str) -> dict[int, Last]:
        """A copy of the tenant's newest points."""
        with self._lock:
            return dict(self._data.get(tenant, {}))

    def merge(self, tenant: str, rows: list[tuple[int, int, float, int, int]]) -> None:
        """Fold in candidates (tag_id, time_us, value, quality, seq); newer (time, seq) wins."""
        with self._lock:
            cache = self._data.setdefault(tenant, {})
            for tag_id, t, v, q, s in rows:
                old = cache.get(tag_id)
                if old is None or (t, s) >= (old.time_us, old.seq):
                    cache[tag_id] = Last(int(t), float(v), int(q), int(s))

    def merge_source(self, con: duckdb.DuckDBPyConnection, tenant: str, source: str, *, has_rn: bool) -> None:
        """Fold in the newest point per tag of a SQL source: one batch (has_rn) or duplicate-free files."""
        # one batch (constant seq): time, then row; several: time, then seq (rows of a source are unique)
        key = "epoch_us(time)::HUGEINT * 4294967296 + rn" if has_rn else "{t: time, s: seq}"
        rows = con.execute(
            f"SELECT tag_id, r.t, r.v, r.q, r.s FROM (SELECT tag_id, "
            f"arg_max({{t: epoch_us(time), v: value, q: quality, s: seq}}, {key}) AS r "
            f"FROM {source} GROUP BY tag_id)"
        ).fetchall()
        self.merge(tenant, rows)

    def drop_before(self, tenant: str, cutoff_us: int) -> None:
        """Forget points older than a retention cutoff."""
        with self._lock:
            cache = self._data.get(tenant, {})
            for tag_id in [k for k, v in cache.items() if v.time_us < cutoff_us]:
                del cache[tag_id]

    def snapshot_bytes(self, tenant: str, manifest_version: int) -> bytes:
        """The tenant's newest points as a Parquet file, recording which manifest version it reflects."""
        data = self.get(tenant)
        table = pa.table(
            {
                "tag_id": pa.array(list(data), pa.int64()),
                "time_us": pa.array([v.time_us for v in data.values()], pa.int64()),
                "value": pa.array([v.value for v in data.values()], pa.float64()),
                "quality": pa.array([v.quality for v in data.values()], pa.uint8()),
                "seq": pa.array([v.seq for v in data.values()], pa.int64()),
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
        self.merge(tenant, list(zip(*(table.column(c).to_pylist() for c in _SNAPSHOT_SCHEMA.names), strict=True)))
        return int(meta.get(b"manifest_version", b"-1"))
