"""Per-minute and per-hour summaries of day files, for downsampled queries answered without reading points.

A day file never changes once written, so its summary (for each tag and each minute and hour: count, sum, min,
max, first and last with their times) is made once, the first time a long query needs it or when maintenance
warms a quiet day, and kept on this process's local disk beside its other state. A query with buckets of whole
minutes (or hours) then reads the summaries of the days it covers whole, and raw points only at its ragged ends
and on days whose points are not in one file alone (a day still being written, or not yet compacted). The answers
are the same: every aggregate here merges exactly (an average is the sum over the count).

A summary file is this module's own format, read with NumPy and no SQL (a DuckDB scan of a summary cost more
than 10 ms of planning and scanning for a tag-day's 1,440 rows): a header, an index of (tag id → where its minute
and hour blocks are), and per tag and grain one zstd block of nine columns (bucket start, count, sum, min, max,
first time, first value, last time, last value). A query reads the blocks of its tags alone, one `pread` per run
of neighbouring tags.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from taehwa.historian.files import parquet_source
from taehwa.historian.manifest import DataFile

MINUTE_US, HOUR_US = 60_000_000, 3_600_000_000
GRAINS = (MINUTE_US, HOUR_US)
MERGEABLE = frozenset({"avg", "min", "max", "sum", "count", "first", "last"})
PRUNE_EVERY_S = 600.0
MIN_RANGE_US = 2 * 86_400_000_000  # shorter ranges use summaries only where they exist already (none is made)
MAGIC = b"THWSUM03"
SUFFIX = ".sum"
COLUMNS = ("b", "n", "s", "lo", "hi", "ft", "fv", "lt", "lv")  # b, n, ft, lt: int64; the others float64
FLOATS = (2, 3, 4, 6, 8)
# per tag: its id, then per grain the block's byte offset, compressed length and rows
INDEX = np.dtype(
    [("id", "<i8"), ("ms", "<i8"), ("ml", "<i8"), ("mr", "<i8"), ("hs", "<i8"), ("hl", "<i8"), ("hr", "<i8")]
)
INDEX_CACHE_BYTES = 64 << 20  # summary indexes kept in memory (56 bytes a tag each), least recently used out
# decoded blocks kept in memory (a tag's day: 1.7 KB of hours, 104 KB of minutes), least recently used out: a long
# view asked again (a year of one tag is 365 hour blocks, 0.6 MB) reads no file and decompresses nothing
BLOCK_CACHE_BYTES = 64 << 20
_CODEC = pa.Codec("zstd", compression_level=3)
PARTIAL = (
    "tag_id, {b} AS b, count(*)::BIGINT AS n, sum(value) AS s, min(value) AS lo, max(value) AS hi, "
    "epoch_us(min(time)) AS ft, arg_min(value, time) AS fv, epoch_us(max(time)) AS lt, arg_max(value, time) AS lv"
)


class BadSummary(Exception):
    """A summary file that is not one (cut short, or from another version): it is removed and made again."""


class Summaries:
    """Summary files of this process, one per day file, under `root` (made on demand, removed with their file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._pruned: dict[str, float] = {}  # tenant → when its summaries were last pruned
        self._index: OrderedDict[str, np.ndarray] = OrderedDict()  # summary path → its index (LRU)
        self._index_bytes = 0
        self._blocks: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()  # (path, grain, id) → block
        self._blocks_of: dict[str, set[tuple[str, int, int]]] = {}  # summary path → its cached blocks' keys
        self._block_bytes = 0
        self._paths: dict[tuple[str, str, str], Path] = {}  # (tenant, day, file) → its summary's path

    def maybe_prune(self, tenant: str, files: tuple[DataFile, ...] | list[DataFile]) -> None:
        """Every `PRUNE_EVERY_S` at most: drop the summaries of files a snapshot no longer names."""
        now = time.monotonic()
        with self._lock:
            if now - self._pruned.get(tenant, -1e9) < PRUNE_EVERY_S:
                return
            self._pruned[tenant] = now
        self.prune(tenant, {f"{f.day}/{Path(f.path).stem}{SUFFIX}" for f in files})

    def path(self, tenant: str, f: DataFile) -> Path:
        """Where the summary of a day file is kept (remembered: a year's view asks for 365 of them)."""
        key = (tenant, f.day, f.path)
        found = self._paths.get(key)
        if found is None:
            found = self.root / tenant / f.day / (Path(f.path).stem + SUFFIX)
            with self._lock:
                if len(self._paths) >= 1 << 18:  # a bound, not an expected size: forget all and start again
                    self._paths.clear()
                self._paths[key] = found
        return found

    def has(self, tenant: str, f: DataFile) -> bool:
        """Whether the summary of a day file is made."""
        target = self.path(tenant, f)
        with self._lock:
            if str(target) in self._index:
                return True
        return target.exists()

    def ensure(
        self, con: duckdb.DuckDBPyConnection, tenant: str, files: list[DataFile], paths: list[str]
    ) -> list[Path]:
        """The summaries of these files (`paths`: their local copies), made now where missing."""
        out = []
        for f, src in zip(files, paths, strict=True):
            target = self.path(tenant, f)
            if not target.exists():
                self._make(con, src, target)
            out.append(target)
        return out

    def _make(self, con: duckdb.DuckDBPyConnection, source: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        grains = " UNION ALL ".join(
            f"SELECT {g}::BIGINT AS grain, "
            + PARTIAL.format(b=f"epoch_us(time) // {g} * {g}")
            + f" FROM {parquet_source([source])} GROUP BY ALL"
            for g in GRAINS
        )
        table = con.sql(
            f"SELECT grain, {', '.join(('tag_id', *COLUMNS))} FROM ({grains}) ORDER BY grain, tag_id, b"
        ).to_arrow_table()
        try:
            with open(tmp, "wb") as fh:
                fh.write(_encode(table))
            os.replace(tmp, target)  # readers see a whole summary or none
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _load_index(self, target: Path) -> np.ndarray:
        key = str(target)
        with self._lock:
            index = self._index.get(key)
            if index is not None:
                self._index.move_to_end(key)
                return index
        with open(target, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(16)
            if len(head) != 16 or head[:8] != MAGIC:
                raise BadSummary(key)
            k = int(np.frombuffer(head, "<i8", 1, 8)[0])
            if not 0 <= k <= (size - 16) // INDEX.itemsize:
                raise BadSummary(key)
            raw = fh.read(k * INDEX.itemsize)
        index = np.frombuffer(raw, INDEX)
        body = 16 + k * INDEX.itemsize
        for g, (s, ln, r) in zip(GRAINS, (("ms", "ml", "mr"), ("hs", "hl", "hr")), strict=True):
            used = index[r] > 0
            if (
                len(raw) != k * INDEX.itemsize
                or (index[r] < 0).any()
                or (index[r] > 86_400_000_000 // g + 1).any()  # a day file's tag has at most a day of grains
                or (index[s][used] < body).any()
                or (index[ln][used] <= 0).any()
                or (index[s][used] + index[ln][used] > size).any()
            ):
                raise BadSummary(key)
        if k > 1 and (np.diff(index["id"]) <= 0).any():
            raise BadSummary(key)
        with self._lock:
            if key not in self._index:
                self._index[key] = index
                self._index_bytes += index.nbytes
            while self._index_bytes > INDEX_CACHE_BYTES and len(self._index) > 1:
                self._index_bytes -= self._index.popitem(last=False)[1].nbytes
        return index

    def read(self, target: Path, ids: np.ndarray, grain: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The summary rows of these tag ids (sorted, unique) at one grain: the tag id of each row, and the nine
        columns (`COLUMNS`; float columns as float64) in (tag id, bucket) order. A damaged file is BadSummary."""
        index = self._load_index(target)
        pos = np.minimum(np.searchsorted(index["id"], ids), max(len(index) - 1, 0))
        hit = index[pos][index["id"][pos] == ids] if len(index) else index[:0]
        s, ln, r = ("ms", "ml", "mr") if grain == MINUTE_US else ("hs", "hl", "hr")
        hit = hit[hit[r] > 0]
        if not len(hit):
            return np.empty(0, np.int64), [np.empty(0, np.float64 if i in FLOATS else np.int64) for i in range(9)]
        key = str(target)
        blocks: list[np.ndarray | None] = [None] * len(hit)
        with self._lock:
            for j, tag in enumerate(hit["id"].tolist()):
                block = self._blocks.get((key, grain, tag))
                if block is not None:
                    self._blocks.move_to_end((key, grain, tag))
                    blocks[j] = block
        todo = [j for j, b in enumerate(blocks) if b is None]
        if todo:
            fetched = self._fetch(target, hit[todo], s, ln, r)
            with self._lock:
                for j, block in zip(todo, fetched, strict=True):
                    blocks[j] = block
                    self._keep((key, grain, int(hit["id"][j])), block)
        ready = [b for b in blocks if b is not None]
        merged = ready[0] if len(ready) == 1 else np.concatenate(ready, axis=1)
        columns = [merged[i].view(np.float64) if i in FLOATS else merged[i] for i in range(9)]
        return np.repeat(hit["id"], hit[r]), columns

    @staticmethod
    def _fetch(target: Path, hit: np.ndarray, s: str, ln: str, r: str) -> list[np.ndarray]:
        """The decoded blocks of these index rows, read by runs of neighbouring blocks (one `pread` each: a block
        follows the previous tag's block of its grain)."""
        starts, lengths, rows = hit[s], hit[ln], hit[r]
        blocks: list[np.ndarray] = []
        fd = os.open(target, os.O_RDONLY)
        try:
            breaks = np.flatnonzero(starts[1:] != starts[:-1] + lengths[:-1]) + 1
            for lo, hi in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(hit)].tolist(), strict=True):
                first = int(starts[lo])
                size = int(starts[hi - 1] + lengths[hi - 1]) - first
                data = os.pread(fd, size, first)
                if len(data) != size:
                    raise BadSummary(str(target))
                for j in range(lo, hi):
                    at, n = int(starts[j]) - first, int(rows[j])
                    try:
                        plain = _CODEC.decompress(data[at : at + int(lengths[j])], decompressed_size=72 * n)
                    except (pa.ArrowException, ValueError):
                        raise BadSummary(str(target)) from None
                    blocks.append(_unpack(plain, n))
        finally:
            os.close(fd)
        return blocks

    def _keep(self, key: tuple[str, int, int], block: np.ndarray) -> None:
        """Cache a decoded block (under the lock), the least recently used out past `BLOCK_CACHE_BYTES`."""
        if key in self._blocks:
            return
        block.setflags(write=False)  # shared between queries: nobody may change it
        self._blocks[key] = block
        self._blocks_of.setdefault(key[0], set()).add(key)
        self._block_bytes += block.nbytes
        while self._block_bytes > BLOCK_CACHE_BYTES and len(self._blocks) > 1:
            old, gone = self._blocks.popitem(last=False)
            self._block_bytes -= gone.nbytes
            keys = self._blocks_of.get(old[0])
            if keys is not None:
                keys.discard(old)
                if not keys:
                    del self._blocks_of[old[0]]

    def _drop_index(self, key: str) -> None:
        with self._lock:
            gone = self._index.pop(key, None)
            if gone is not None:
                self._index_bytes -= gone.nbytes
            for k in self._blocks_of.pop(key, set()):
                block = self._blocks.pop(k, None)
                if block is not None:
                    self._block_bytes -= block.nbytes

    def forget(self, target: Path) -> None:
        """Remove a damaged summary (the next query that needs it makes it again)."""
        self._drop_index(str(target))
        with contextlib.suppress(OSError):
            target.unlink()

    def prune(self, tenant: str, live: set[str]) -> int:
        """Remove the summaries of files no longer in the tenant's manifest (and summaries of an older format);
        returns how many."""
        removed = 0
        folder = self.root / tenant
        if not folder.is_dir():
            return 0
        for path in folder.glob("*/*"):
            if path.is_file() and f"{path.parent.name}/{path.name}" not in live:
                self._drop_index(str(path))
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        return removed


def _encode(table: pa.Table) -> bytes:
    """A summary file's bytes from the summary rows (grain, tag_id, COLUMNS), ordered by grain, tag id, bucket."""
    grain = table.column("grain").to_numpy()
    tag = table.column("tag_id").to_numpy().astype(np.int64)
    cols = np.stack(
        [
            table.column(c).to_numpy().astype(np.float64).view(np.int64)
            if i in FLOATS
            else table.column(c).to_numpy().astype(np.int64)
            for i, c in enumerate(COLUMNS)
        ]
    )
    ids = np.unique(tag)
    index = np.zeros(len(ids), INDEX)
    index["id"] = ids
    header = 16 + len(ids) * INDEX.itemsize
    chunks: list[bytes] = []
    at = header
    for g, (s, ln, r) in zip(GRAINS, (("ms", "ml", "mr"), ("hs", "hl", "hr")), strict=True):
        rows = np.flatnonzero(grain == g)
        if not len(rows):
            continue
        lo_row, hi_row = int(rows[0]), int(rows[-1]) + 1  # the rows of one grain are together (ordered by grain)
        part = tag[lo_row:hi_row]
        bounds = np.flatnonzero(part[1:] != part[:-1]) + 1
        for a, b in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(part)].tolist(), strict=True):
            packed = _CODEC.compress(_pack(cols[:, lo_row + a : lo_row + b]), asbytes=True)
            k = int(np.searchsorted(ids, part[a]))
            index[s][k], index[ln][k], index[r][k] = at, len(packed), b - a
            chunks.append(packed)
            at += len(packed)
    return MAGIC + np.int64(len(ids)).tobytes() + index.tobytes() + b"".join(chunks)


def _pack(block: np.ndarray) -> bytes:
    """A block's nine columns as the bytes zstd compresses best: bucket starts as steps from the one before,
    first and last times as offsets into their bucket (a third smaller than as they are; splitting the values'
    bytes by position made them larger)."""
    out = block.copy()
    out[5] -= block[0]
    out[7] -= block[0]
    out[0, 1:] = np.diff(block[0])
    return np.ascontiguousarray(out).tobytes()


def _unpack(plain: bytes | pa.Buffer, rows: int) -> np.ndarray:
    """`_pack` undone: the nine int64 columns of a block (floats as their bits)."""
    block = np.frombuffer(plain, np.int64).reshape(9, rows).copy()
    block[0] = np.cumsum(block[0])
    block[5] += block[0]
    block[7] += block[0]
    return block


def grain_for(every_us: int) -> int | None:
    """The summary grain that divides a bucket width (an hour when it can, else a minute), or None."""
    if every_us % HOUR_US == 0:
        return HOUR_US
    if every_us % MINUTE_US == 0:
        return MINUTE_US
    return None
