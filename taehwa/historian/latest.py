"""The last-value cache: the newest point of every tag, kept current on every write, so that "last value of
1,000 tags" is a dictionary lookup rather than a scan. Persisted beside the manifest and rebuilt on start."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from taehwa.historian.durable import publish
from taehwa.historian.files import parquet_source


class Last(NamedTuple):
    """A tag's newest point; (time, seq) orders candidates, so a rewrite of the newest point replaces it."""

    time_us: int
    value: float
    quality: int
    seq: int


_SNAPSHOT_SCHEMA = pa.schema([("tag_id", pa.int64()), ("time_us", pa.int64()), ("value", pa.float64()),
                              ("quality", pa.uint8()), ("seq", pa.int64())])


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

    def save(self, tenant: str, path: Path, manifest_version: int) -> None:
        """Persist atomically, recording which manifest version it reflects."""
        data = self.get(tenant)
        table = pa.table({
            "tag_id": pa.array(list(data), pa.int64()),
            "time_us": pa.array([v.time_us for v in data.values()], pa.int64()),
            "value": pa.array([v.value for v in data.values()], pa.float64()),
            "quality": pa.array([v.quality for v in data.values()], pa.uint8()),
            "seq": pa.array([v.seq for v in data.values()], pa.int64()),
        }, schema=_SNAPSHOT_SCHEMA.with_metadata({"manifest_version": str(manifest_version)}))
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        publish(tmp, path)

    def load(self, con: duckdb.DuckDBPyConnection, tenant: str, path: Path, tenant_dir: Path,
             files: list[tuple[str, int]]) -> None:
        """Load a snapshot, then fold in files added after it (files: (relative path, added version))."""
        version = -1
        try:
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            version = int(meta.get(b"manifest_version", b"-1"))
            self.merge(tenant, list(zip(*(table.column(c).to_pylist() for c in _SNAPSHOT_SCHEMA.names),
                                        strict=True)))
        except (FileNotFoundError, pa.ArrowInvalid):
            version = -1
        newer = [str(tenant_dir / p) for p, added in files if added > version]
        if newer:
            self.merge_source(con, tenant, parquet_source(newer), has_rn=False)
