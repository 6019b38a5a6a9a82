"""The write-ahead log: small writes are appended to an Arrow IPC stream and fsynced before they are acknowledged.

A crash can only cut the last, unacknowledged batch short; recovery reads every complete batch and stops there.
Segments are removed once their points are in Parquet files named by the manifest.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from taehwa.historian.durable import fsync_dir

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


class WriteAheadLog:
    """Segments `wal-NNNNNNNNNNNN.arrows` in one folder; one open segment is appended to at a time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
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

    def append(self, table: pa.Table) -> None:
        """Append and fsync; when this returns the points survive a crash."""
        if self._writer is None:
            self._current = self._next_path()
            self._file = open(self._current, "wb")  # noqa: SIM115 - kept open across appends
            self._writer = pa.ipc.new_stream(self._file, WAL_SCHEMA)
            fsync_dir(self.directory)
        assert self._file is not None
        self._writer.write_table(table.cast(WAL_SCHEMA))
        self._file.flush()
        os.fsync(self._file.fileno())

    def rotate(self) -> Path | None:
        """Close the open segment so its contents can be flushed; the next append starts a new one."""
        closed = self._current
        self.close()
        return closed

    def close(self) -> None:
        """Close the open segment (its contents stay on disk until removed)."""
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()
        self._writer = None
        self._file = None
        self._current = None

    def remove(self, paths: list[Path]) -> None:
        """Delete segments whose points are now in Parquet files."""
        for path in paths:
            path.unlink(missing_ok=True)
        fsync_dir(self.directory)
