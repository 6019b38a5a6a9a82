"""A full disk: while one a write needs is full, the historian refuses writes at once (StorageFull, 507) and asks
now and then whether space has come back; reads go on."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taehwa.core.errors import StorageFull
from taehwa.historian.durable import free_bytes, full, is_disk_full

log = logging.getLogger(__name__)
FULL_PROBE_S = 1.0  # while a disk is full, how often a write asks whether space has come back
MIN_FREE_BYTES = 1 << 20  # free space on the full disk at which writes are tried again


class FullDisk:
    """Whether writes are refused for a full disk, and the guard every write runs under.

    `root`: the historian's own folder (its data files and log); `metadata_dir`: where the metadata database
    lives (named when its disk is the full one)."""

    def __init__(self, root: Path, metadata_dir: Path) -> None:
        self.root = root
        self.metadata_dir = metadata_dir
        self.error: StorageFull | None = None  # set while a disk a write needs is full: writes are refused
        self._probed = 0.0

    @property
    def reason(self) -> str | None:
        """Why writes are refused now, or None: what health checks show."""
        err = self.error
        return err.message if err is not None else None

    def mark(self, err: StorageFull) -> None:
        """Refuse writes until space returns (logged once, with the folder, for the operator)."""
        first = self.error is None
        self.error, self._probed = err, time.monotonic()
        if first:
            log.warning("read-only until space is freed on the disk holding %s: %s", err.path or self.root, err.message)

    def space_back(self) -> None:
        """Take writes again (space has been freed)."""
        if self.error is not None:
            self.error = None
            log.warning("space freed: the historian takes writes again")

    def check_at_start(self) -> None:
        """A writer starting on a disk with less than `MIN_FREE_BYTES` free starts read-only."""
        if self.error is not None:
            return
        try:
            room = free_bytes(self.root)
        except OSError:
            room = MIN_FREE_BYTES
        if room < MIN_FREE_BYTES:
            self.mark(full("the historian's store", self.root))
            log.warning("starting read-only: only %d bytes are free on the disk holding %s", room, self.root)

    def refuse_while_full(self) -> None:
        """While a disk is known to be full, refuse at once, asking again every `FULL_PROBE_S` whether the disk
        has `MIN_FREE_BYTES` free again (then writes are tried)."""
        err = self.error
        if err is None:
            return
        now = time.monotonic()
        if now - self._probed >= FULL_PROBE_S:
            self._probed = now
            try:
                free = free_bytes(err.path or self.root)
            except OSError:
                free = 0
            if free >= MIN_FREE_BYTES:
                self.space_back()
                return
        raise StorageFull(err.message, where=err.where, path=err.path)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run a write: refused at once while a disk is full; a full disk met on the way (whatever raised it: the
        log, DuckDB, the metadata database) is answered as StorageFull and makes the historian refuse writes
        until space returns."""
        self.refuse_while_full()
        try:
            yield
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            if isinstance(exc, StorageFull):
                self.mark(exc)
                raise
            from sqlalchemy.exc import DBAPIError

            err = (
                full("the metadata database", self.metadata_dir)
                if isinstance(exc, DBAPIError)
                else full("the historian's data files", self.root)
            )
            self.mark(err)
            raise err from exc
