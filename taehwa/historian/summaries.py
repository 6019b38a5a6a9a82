"""Per-minute and per-hour summaries of day files, for downsampled queries over long ranges.

A day file never changes once written, so its summary (for each tag and each minute and hour: count, sum, min,
max, first and last with their times) is made once, the first time a long query needs it, and kept on this
process's local disk beside its other state. A long query with buckets of whole minutes (or hours) then reads the
summaries of the days it covers whole, and raw points only at its ragged ends and on days whose points are not in
one file alone (a day still being written, or not yet compacted). The answers are the same: every aggregate here
merges exactly (an average is the sum over the count).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from pathlib import Path

import duckdb

from taehwa.historian.files import parquet_source, quote
from taehwa.historian.manifest import DataFile

MINUTE_US, HOUR_US = 60_000_000, 3_600_000_000
MERGEABLE = frozenset({"avg", "min", "max", "sum", "count", "first", "last"})
PRUNE_EVERY_S = 600.0
MIN_RANGE_US = 2 * 86_400_000_000  # shorter ranges read their points: a summary saves little there
PARTIAL = (
    "tag_id, tag, {b} AS b, count(*)::BIGINT AS n, sum(value) AS s, min(value) AS lo, max(value) AS hi, "
    "min(time) AS ft, arg_min(value, time) AS fv, max(time) AS lt, arg_max(value, time) AS lv"
)


class Summaries:
    """Summary files of this process, one per day file, under `root` (made on demand, removed with their file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._pruned: dict[str, float] = {}  # tenant → when its summaries were last pruned

    def maybe_prune(self, tenant: str, files: tuple[DataFile, ...] | list[DataFile]) -> None:
        """Every `PRUNE_EVERY_S` at most: drop the summaries of files a snapshot no longer names."""
        now = time.monotonic()
        with self._lock:
            if now - self._pruned.get(tenant, -1e9) < PRUNE_EVERY_S:
                return
            self._pruned[tenant] = now
        self.prune(tenant, {f"{f.day}/{Path(f.path).name}" for f in files})

    def path(self, tenant: str, f: DataFile) -> Path:
        """Where the summary of a day file is kept."""
        return self.root / tenant / f.day / Path(f.path).name

    def ensure(self, con: duckdb.DuckDBPyConnection, tenant: str, files: list[DataFile], paths: list[str]) -> list[str]:
        """The summaries of these files (`paths`: their local copies), made now where missing."""
        out = []
        for f, src in zip(files, paths, strict=True):
            target = self.path(tenant, f)
            if not target.exists():
                self._make(con, src, target)
            out.append(str(target))
        return out

    def _make(self, con: duckdb.DuckDBPyConnection, source: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        grains = " UNION ALL ".join(
            f"SELECT {g}::BIGINT AS grain, "
            + PARTIAL.format(b=f"epoch_us(time) // {g} * {g}")
            + f" FROM {parquet_source([source])} GROUP BY ALL"
            for g in (MINUTE_US, HOUR_US)
        )
        try:
            con.execute(
                f"COPY (SELECT * FROM ({grains}) ORDER BY grain, tag_id, b) TO {quote(tmp)} "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            os.replace(tmp, target)  # readers see a whole summary or none
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def prune(self, tenant: str, live: set[str]) -> int:
        """Remove the summaries of files no longer in the tenant's manifest; returns how many."""
        removed = 0
        folder = self.root / tenant
        if not folder.is_dir():
            return 0
        for path in folder.glob("*/*.parquet"):
            if f"{path.parent.name}/{path.name}" not in live:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        return removed


def grain_for(every_us: int) -> int | None:
    """The summary grain that divides a bucket width (an hour when it can, else a minute), or None."""
    if every_us % HOUR_US == 0:
        return HOUR_US
    if every_us % MINUTE_US == 0:
        return MINUTE_US
    return None
