"""The write-ahead log: small writes are appended to an Arrow IPC stream and fsynced before they are acknowledged.

A crash can only cut the last, unacknowledged batch short; recovery reads every complete batch and stops there.
Segments are removed once their points are in Parquet files named by the manifest.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

import pyarrow as pa

from taehwa.historian.durable import disk_full_is, fsync_dir

WAL_SCHEMA = pa.schema(
    [
        pa.field("tenant", pa.string(), nullable=False),
        pa.field("tag_id", pa.int64(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("quality", pa.uint8(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
    ]
)


def read_segment(path: Path, skip: int = 0) -> list[pa.RecordBatch]:
    """Every complete batch of a segment after the first `skip`, memory-mapped (no copy: a follower reads the
    writer's open segment again and again); a torn tail (a crash mid-append, or a batch still being written) and a
    segment removed meanwhile end the list."""
    batches: list[pa.RecordBatch] = []
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
        for i in itertools.count():
            batch = reader.read_next_batch()
            if i >= skip:
                batches.append(batch)
    except (StopIteration, pa.ArrowInvalid, OSError, EOFError):
        pass  # header or last batch cut short: nothing after it was acknowledged
    return batches


EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the Arrow IPC stream's end marker


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` at the file's position (a short write on a nearly full disk goes on, then fails)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class WriteAheadLog:
    """Segments `wal-NNNNNNNNNNNN.arrows` in one folder; one open segment is appended to at a time.

    Each append is one Arrow IPC message (the bytes `RecordBatchStreamWriter` would write) written with plain
    `os.write` calls, so that an append that fails part-way (a full disk) is cut off again: the segment ends at its
    last acknowledged batch, and the next append starts a new segment.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._size = 0  # bytes of the open segment up to its last acknowledged batch
        self._current: Path | None = None

    def segments(self) -> list[Path]:
        """Segment files in write order."""
        return sorted(self.directory.glob("wal-*.arrows"))

    def read_all(self) -> pa.Table:
        """All acknowledged points still in the log, in write order."""
        batches = [b for seg in self.segments() for b in read_segment(seg)]
        return pa.Table.from_batches(batches, schema=WAL_SCHEMA)

    def _next_path(self) -> Path:
        existing = self.segments()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        return self.directory / f"wal-{number:012d}.arrows"

    def _open(self) -> int:
        """Start a new segment with the stream's schema; on a full disk nothing of it is left."""
        path = self._next_path()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            header = WAL_SCHEMA.serialize().to_pybytes()
            _write_all(fd, header)
            fsync_dir(self.directory)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._current, self._size = fd, path, len(header)
        return fd

    def append(self, table: pa.Table) -> None:
        """Append and fsync; when this returns the points survive a crash. On a full disk (StorageFull) nothing of
        the batch stays in the log."""
        with disk_full_is("the historian's write-ahead log", self.directory):
            fd = self._fd if self._fd is not None else self._open()
            data = b"".join(b.serialize().to_pybytes() for b in table.cast(WAL_SCHEMA).combine_chunks().to_batches())
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except BaseException:
                self._cut()
                raise
            self._size += len(data)

    def _cut(self) -> None:
        """After a failed append: cut the open segment back to its last acknowledged batch and close it."""
        fd, self._fd, self._current = self._fd, None, None
        if fd is None:
            return
        with contextlib.suppress(OSError):  # if even this fails, the torn tail is what a reader stops at
            os.ftruncate(fd, self._size)
            os.fsync(fd)
        os.close(fd)

    def rotate(self) -> Path | None:
        """Close the open segment so its contents can be flushed; the next append starts a new one."""
        closed = self._current
        self.close()
        return closed

    def close(self) -> None:
        """Close the open segment (its contents stay on disk until removed); the end marker is written when the
        disk has room for it (readers do without it)."""
        fd, self._fd, self._current = self._fd, None, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                _write_all(fd, EOS)
        finally:
            os.close(fd)

    def remove(self, paths: list[Path]) -> None:
        """Delete segments whose points are now in Parquet files."""
        for path in paths:
            path.unlink(missing_ok=True)
        fsync_dir(self.directory)
