"""Small helpers that make a file durable before a write is acknowledged: fsync the file and its folder; and the
one test of a full disk (ENOSPC, a quota, SQLite's "database or disk is full", DuckDB's I/O errors that say so),
which every write path turns into `StorageFull` (507 with the reason) instead of a bare error."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from taehwa.core.errors import StorageFull

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
FULL_TEXTS = ("no space left on device", "disk quota exceeded", "database or disk is full", "quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error, or one it was raised from, says a disk is full (OSError with ENOSPC or EDQUOT, or a
    library's message that says so: DuckDB and SQLite report it in text)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, StorageFull) or (isinstance(e, OSError) and e.errno in FULL_ERRNOS):
            return True
        if any(text in str(e).lower() for text in FULL_TEXTS):
            return True
        orig = getattr(e, "orig", None)  # SQLAlchemy's wrapper of the driver's error
        todo += [e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None]
    return False


def full(what: str, path: Path | str | None = None) -> StorageFull:
    """The error that says the disk holding `what` is full (`path`: a folder on it, for the probe and the log)."""
    return StorageFull(
        f"the disk holding {what} is full: nothing of this call was stored (what was stored before "
        "is kept); writes resume once space is freed",
        where="disk",
        path=str(path) if path else None,
    )


@contextlib.contextmanager
def disk_full_is(what: str, path: Path | str | None = None) -> Iterator[None]:
    """Turn a full disk met inside the block into `StorageFull` naming `what`; other errors pass unchanged."""
    try:
        yield
    except StorageFull:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise full(what, path) from exc
        raise


def free_bytes(path: Path | str) -> int:
    """Bytes an unprivileged writer may still use on the disk that holds `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename or a new file) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file, never a mix; on a full disk
    the old file stays and the half-written new one is removed (StorageFull)."""
    tmp = path.with_name(path.name + ".tmp")
    with disk_full_is(f"the historian's {path.name}", path.parent):
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
        fsync_dir(path.parent)


def publish(tmp: Path, final: Path) -> None:
    """Make a finished temporary file durable and move it to its final name."""
    with disk_full_is("the historian's data files", final.parent):
        fsync_file(tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
