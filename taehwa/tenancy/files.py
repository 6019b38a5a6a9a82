"""The one rule for files and folders a caller names (a lab spec's data file, a drop-folder connector's folder):
they resolve, symlinks followed, inside a folder the operator gave that tenant, and never inside the platform's own
files. Checked before anything is opened, so a refusal says nothing of what the path holds or whether it exists.

Each tenant has `<data_dir>/tenants/<tenant>/files`; `TAEHWA_FILE_ROOTS` adds folders for every tenant or for one.
The operator at this machine's shell (the CLI without a server, acting as the local system) may also name files
elsewhere on the machine, which it can read anyway; nobody may name the data directory's other contents, the
historian's folder or a file the settings name (keys, certificates).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from taehwa.core.errors import InvalidInput
from taehwa.core.names import check_tenant
from taehwa.core.settings import Settings
from taehwa.tenancy.access import current

MAX_NAME = 4096  # longest path accepted, in characters


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class FileRoots:
    """Where each tenant may name files, and the check that every caller-named path goes through."""

    def __init__(self, settings: Settings) -> None:
        self.data_dir = Path(os.path.realpath(settings.data_dir))
        self._shared: list[Path] = []
        self._own: dict[str, list[Path]] = {}
        for entry in (e.strip() for e in (settings.file_roots or "").split(",") if e.strip()):
            tenant, _, folder = entry.rpartition("=")
            root = Path(os.path.realpath(folder))
            (self._own.setdefault(tenant, []) if tenant else self._shared).append(root)
        self._protected = [self.data_dir]
        for name in type(settings).model_fields:  # keys, certificates and other files the operator configured
            value = getattr(settings, name)
            if isinstance(value, Path) and name != "data_dir":
                self._protected.append(Path(os.path.realpath(value)))
        url = settings.historian_url
        if url and "://" not in url:
            self._protected.append(Path(os.path.realpath(url)))
        elif url and url.startswith("file://"):
            self._protected.append(Path(os.path.realpath(url.removeprefix("file://").split("?")[0])))

    def folder(self, tenant: str) -> Path:
        """The tenant's own files folder (made when first asked for), where its relative names resolve."""
        path = self.data_dir / "tenants" / check_tenant(tenant) / "files"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def roots(self, tenant: str) -> list[Path]:
        """Every folder `tenant` may name files in, its own first."""
        return [self.data_dir / "tenants" / check_tenant(tenant) / "files", *self._own.get(tenant, []), *self._shared]

    def resolve(self, tenant: str, name: str, *, where: str, folder: bool = False) -> Path:
        """The real path `name` stands for, or InvalidInput (at `where`) when the caller may not name it.
        A relative name is taken from the tenant's own files folder."""
        if not isinstance(name, str) or not name.strip() or "\x00" in name or len(name) > MAX_NAME:
            raise InvalidInput(f"name a {'folder' if folder else 'file'} (at most {MAX_NAME} characters)", where=where)
        path = Path(name)
        if not path.is_absolute():
            path = self.folder(tenant) / path
        real = Path(os.path.realpath(path))
        own = self.roots(tenant)[0]
        if _under(real, own):
            return real
        if any(_under(real, p) or _under(p, real) for p in self._protected):
            raise InvalidInput(
                f"{name} is among the platform's own files, which no caller may name; use the "
                f"tenant's files folder ({own})",
                where=where,
            )
        if current().local or any(_under(real, r) for r in self.roots(tenant)[1:]):
            return real
        raise InvalidInput(
            f"{name} lies outside the folders tenant {tenant!r} may use: {', '.join(map(str, self.roots(tenant)))}",
            where=where,
        )

    @contextmanager
    def open(self, tenant: str, name: str, *, where: str) -> Iterator[IO[bytes]]:
        """Open a named file for reading, checked again on the opened descriptor (a link swapped in between the
        check and the open is refused), and only when it is a regular file."""
        path = self.resolve(tenant, name, where=where)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise InvalidInput(f"no file at {name}", where=where) from None
        except OSError as exc:
            raise InvalidInput(f"cannot open {name}: {os.strerror(exc.errno or 0)}", where=where) from None
        fh = os.fdopen(fd, "rb")
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidInput(f"{name} is not a regular file", where=where)
            opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else str(path)
            if Path(opened) != path:
                self.resolve(tenant, opened, where=where)
            yield fh
        finally:
            fh.close()
