"""Writing the historian's Parquet files with DuckDB: sorted by (tag id, time), one file per day, no duplicates.

Inside one source, the point written last wins: rows are ordered by (seq, rn), where seq numbers the write batch
and rn the row within it, and only the last row of each (tag, time) is kept.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from taehwa.historian.durable import disk_full_is
from taehwa.historian.manifest import DataFile
from taehwa.historian.storage import Storage

log = logging.getLogger(__name__)

DAY_US = 86_400_000_000
FILE_COLUMNS = "tag_id, tag, time, value, quality, seq"


def quote(path: Path | str) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


# decimals as DELTA_BINARY_PACKED integers (Parquet v2), no dictionaries: 1.3 bytes a point for a 1 Hz trend, 2.0
# for noisy 10 s data, against 5.4 and 3.3 as doubles; times delta-packed too. Doubles keep the v1 defaults
# (dictionaries, plain): byte-stream-split made them larger here.
_ENCODING = {
    "double": "COMPRESSION zstd",
    "decimal": "COMPRESSION zstd, PARQUET_VERSION V2, DICTIONARY_SIZE_LIMIT 1",
}
SCALES = tuple(range(10))  # decimal places a day's values may be stored with, exactly
EXACT_BELOW = 9.007e15  # |value| × 10^scale under 2^53: any reader's decimal → double is one exact division


def parquet_source(paths: list[str]) -> str:
    """SQL that scans these Parquet files as one table, the value column as DOUBLE whichever way each file
    stores it (DECIMAL(18, k) converts exactly: the files hold only values that do)."""
    files = "[" + ", ".join(quote(p) for p in paths) + "]"
    return f"(SELECT * REPLACE (CAST(value AS DOUBLE) AS value) FROM read_parquet({files}, union_by_name = true))"


def _scales(con: duckdb.DuckDBPyConnection, source: str) -> dict[int, int]:
    """Per day number, the fewest decimal places that hold every value of the day exactly (a DECIMAL(18, k) read
    back as DOUBLE is the same double), or -1 when none up to 9 does; one pass over the source for all its days.
    Plant data is mostly a few decimals, which DELTA encoding packs into a byte or two a point where a double's
    noisy low bits do not compress."""
    checks = ", ".join(
        f"bool_and(coalesce(abs(value) * 1e{k} < {EXACT_BELOW} AND "
        f"TRY_CAST(TRY_CAST(value AS DECIMAL(18, {k})) AS DOUBLE) = value, false))"
        for k in SCALES
    )
    rows = con.execute(f"SELECT epoch_us(time) // {DAY_US} AS d, {checks} FROM {source} GROUP BY d").fetchall()
    return {int(r[0]): next((k for k, ok in zip(SCALES, r[1:], strict=True) if ok), -1) for r in rows}


SCALE_SAMPLE = 4096  # rows of a day a scale is guessed from before one pass over all of them checks it


def _exact_at(values: np.ndarray, k: int) -> np.ndarray:
    """Per value, whether DECIMAL(18, k) holds it exactly: DuckDB's cast of a double (× 10^k, rounded half to even)
    read back (÷ 10^k) is the same double, as `_scales` asks DuckDB."""
    p = 10.0**k
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray((np.abs(values) * p < EXACT_BELOW) & (np.round(values * p) / p == values), bool)


def day_scale(values: np.ndarray) -> int | None:
    """`_scales`' answer for one day's values, from NumPy without a pass per scale: the scale of a sample (the
    most any sampled value needs: each k below it fails on that value, so the day's scale is no less), then
    one pass that checks every value at it. -1 when a sampled value fits no scale; None when some value needs
    more than the sample did (then ask `_scales`)."""
    if not len(values):
        return None
    step = max(1, len(values) // SCALE_SAMPLE)
    sample = values[::step]
    need = 0
    pending = sample
    for k in SCALES:
        pending = pending[~_exact_at(pending, k)]
        if not len(pending):
            need = k
            break
    else:
        return -1
    return need if bool(_exact_at(values, need).all()) else None


def _has_duplicates(con: duckdb.DuckDBPyConnection, source: str) -> bool:
    """Whether any (tag, time) occurs twice in a source."""
    row = con.execute(f"SELECT EXISTS (SELECT 1 FROM {source} GROUP BY tag_id, time HAVING count(*) > 1)").fetchone()
    return bool(row and row[0])


def write_day_files(
    con: duckdb.DuckDBPyConnection,
    source: str,
    storage: Storage,
    tenant: str,
    version: int,
    *,
    dedup: str = "rn",
    stats: list[tuple[int, int, int, int, int, int]] | None = None,
    presorted: bool = False,
    values: pa.Array | pa.ChunkedArray | None = None,
) -> list[DataFile]:
    """Write `source` (SQL with tag_id, tag, time, value, quality, seq and, for dedup='rn', rn) as day files.

    dedup: 'rn' keeps the last row of each (tag, time) by (seq, rn); 'seq' by seq alone (sources that are
    themselves duplicate-free files); 'none' trusts the source to be unique.
    Each file is written on local disk, then published to the storage (fsynced and renamed, or uploaded), but
    not yet put in the manifest: the caller commits them.
    stats: (day number, min time, max time, min tag id, max tag id, max seq) per day, when the caller knows them.
    presorted: the source's rows already run by (tag id, time) without repeats: written in the order they come
    (DuckDB keeps insertion order), not sorted again.
    values: the source's value column, when it is one day's: its decimal scale is found by NumPy (`day_scale`),
    not by a DuckDB pass that tries every scale.
    """
    stats = (
        stats
        or con.execute(
            f"SELECT epoch_us(time) // {DAY_US} AS d, min(epoch_us(time)), max(epoch_us(time)), min(tag_id), "
            f"max(tag_id), max(seq) FROM {source} GROUP BY d ORDER BY d"
        ).fetchall()
    )
    if dedup == "rn" and not _has_duplicates(con, source):
        dedup = "none"  # a fresh batch rarely repeats a point: a hash check is cheaper than a dedup window
    order = {"rn": "time, seq, rn", "seq": "time, seq", "none": ""}[dedup]
    qualify = (
        f"QUALIFY lead(time) OVER (PARTITION BY tag_id ORDER BY {order}) IS DISTINCT FROM time"
        if dedup != "none"
        else ""
    )
    sort = "" if presorted and dedup == "none" else " ORDER BY tag_id, time"
    scale_of_day = day_scale(np.asarray(values, np.float64)) if values is not None and len(stats) == 1 else None
    scales = {int(stats[0][0]): scale_of_day} if scale_of_day is not None else _scales(con, source)
    out: list[DataFile] = []
    tmp: Path | None = None
    with disk_full_is("the historian's data files", storage.local_root):
        tmp_dir = storage.staging(tenant)
        try:
            for day_number, min_t, max_t, min_tag, max_tag, max_seq in stats:
                day = (date(1970, 1, 1) + timedelta(days=int(day_number))).isoformat()
                lo = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(day_number))
                where = (
                    (
                        f"WHERE time >= TIMESTAMP '{lo:%Y-%m-%d %H:%M:%S}' "
                        f"AND time < TIMESTAMP '{lo + timedelta(days=1):%Y-%m-%d %H:%M:%S}'"
                    )
                    if len(stats) > 1
                    else ""
                )
                name = f"{max_seq:012d}-{uuid.uuid4().hex[:12]}.parquet"
                tmp = tmp_dir / name
                scale = scales.get(int(day_number), -1)
                columns = (
                    FILE_COLUMNS
                    if scale < 0
                    else FILE_COLUMNS.replace("value", f"CAST(value AS DECIMAL(18, {scale})) AS value")
                )
                rows = con.execute(
                    f"COPY (SELECT {columns} FROM {source} {where} {qualify}{sort}) "
                    f"TO {quote(tmp)} (FORMAT parquet, {_ENCODING['double' if scale < 0 else 'decimal']})"
                ).fetchone()
                rel = f"day={day}/{name}"
                size = storage.put(tmp, f"{tenant}/{rel}")
                tmp = None
                out.append(
                    DataFile(
                        path=rel,
                        day=day,
                        rows=int(rows[0]) if rows else 0,
                        min_time=int(min_t),
                        max_time=int(max_t),
                        min_tag=int(min_tag),
                        max_tag=int(max_tag),
                        max_seq=int(max_seq),
                        added=version,
                        bytes=size,
                        scale=scale,
                    )
                )
        except BaseException:
            _discard(storage, tenant, tmp, out)
            raise
    return out


def discard_files(storage: Storage, tenant: str, written: list[DataFile]) -> None:
    """Remove files published but not yet committed (a write that failed part way)."""
    _discard(storage, tenant, None, written)


def _discard(storage: Storage, tenant: str, tmp: Path | None, written: list[DataFile]) -> None:
    """After a failed write (a full disk, say): remove the half-written file and the ones already published but
    not committed, so a failure does not keep the space it took (the manifest never named them)."""
    with contextlib.suppress(OSError):
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    for f in written:
        try:
            storage.delete(f"{tenant}/{f.path}")
        except Exception:  # a store that is down keeps them; they are unnamed, so no reader sees them
            log.warning("could not remove the uncommitted file %s/%s", tenant, f.path, exc_info=True)
