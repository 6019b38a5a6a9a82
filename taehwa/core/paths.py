"""Where the platform keeps its own files under the data directory, and whether a process holds the store: known
without opening the store, so a command that only talks to the running server starts at once."""

from __future__ import annotations

import fcntl
from pathlib import Path

from taehwa.core.settings import Settings

WRITER_LOCK = ".writer.lock"  # under the historian's root: held by the one process that writes the store


def historian_root(settings: Settings) -> Path:
    """This node's own historian files (write-ahead log, lock, staging, cache)."""
    return settings.data_dir / "historian"


def dev_token_path(settings: Settings) -> Path:
    """Where the development token is kept (readable only by its owner)."""
    return settings.data_dir / "dev-token"


def server_info_path(settings: Settings) -> Path:
    """Where a running server records its URL."""
    return settings.data_dir / "server.json"


def store_is_held(settings: Settings) -> bool:
    """Whether another process holds the store's writer lock now (a probe: the lock is released at once)."""
    path = historian_root(settings) / WRITER_LOCK
    try:
        fh = open(path)  # noqa: SIM115 - closed below
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        fh.close()
    return False
