"""A drop folder: CSV/Parquet files in the formats `taehwa ingest` accepts are read once their size has settled,
queued, then moved to `done/`; a file that cannot be read goes to `failed/` with one `<file>.error.txt` saying why.

Only regular files directly in the folder are taken (links, sub-folders and error notes are left alone), and nothing
is moved outside it: the folder was resolved to its real path when the connector was stored, and a folder that has
since become a link, or a `done/`/`failed/` that is one, is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa

from taehwa.connectors.config import FilesConnector
from taehwa.connectors.link import Link
from taehwa.core.errors import TaehwaError
from taehwa.historian.readers import iter_file_tables


class FilesLink(Link):
    spec: FilesConnector

    def run_source(self) -> None:
        folder = Path(self.spec.folder)
        sizes: dict[Path, int] = {}
        self.status.detail.update(files_done=0, files_failed=0)
        while not self.stopping.is_set():
            if not folder.is_dir():
                self.set_state("disconnected")
                self.error(f"drop folder {folder} does not exist")
            elif Path(os.path.realpath(folder)) != folder:
                self.set_state("disconnected")
                self.error(f"drop folder {folder} is now a link to another place; add the connector again")
            else:
                self.set_state("connected", folder=str(folder))
                for path in sorted(folder.glob(self.spec.pattern)):
                    size = _regular_size(path)
                    if size is None or path.name.endswith(NOTE) or path.parent != folder:
                        continue
                    if sizes.get(path) != size:  # still being written: wait for one more poll
                        sizes[path] = size
                        continue
                    sizes.pop(path, None)
                    self._take(folder, path)
            self.stopping.wait(self.spec.poll_s)

    def _take(self, folder: Path, path: Path) -> None:
        try:
            parts = [t for t, _, _ in iter_file_tables(path)]
            table = self.checker.normalize(
                pa.concat_tables(parts) if len(parts) > 1 else parts[0], source=path.name, layout=self.spec.layout
            )
        except TaehwaError as exc:
            dest = _subfolder(folder, "failed")
            if dest is None:
                self.error(f"{folder / 'failed'} is not a plain folder; {path.name} stays where it is")
                return
            path.replace(dest / path.name)
            (dest / f"{path.name}{NOTE}").write_text(f"{exc}\n")
            self.status.detail["files_failed"] += 1
            self.reject(f"{path.name}: {exc}")
            return
        table = table.select(["tag", "time", "value"])
        if self.spec.tag_prefix:
            table = table.set_column(
                0, "tag", pa.array([self.spec.tag_prefix + t for t in table.column("tag").to_pylist()], pa.string())
            )
        done = _subfolder(folder, "done")
        if done is None:
            self.error(f"{folder / 'done'} is not a plain folder; {path.name} stays where it is")
            return
        self.stage(
            table.column("tag").to_pylist(),
            table.column("time").cast(pa.int64()).to_pylist(),
            table.column("value").to_pylist(),
            ack=lambda: _move(path, done),
        )
        self.commit()
        self.status.detail["files_done"] += 1


NOTE = ".error.txt"


def _regular_size(path: Path) -> int | None:
    """The size of a regular file (not followed through a link), or None for anything else."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _subfolder(folder: Path, name: str) -> Path | None:
    """`folder/name`, made when missing; None when it is a link or not a folder (nothing is moved through it)."""
    path = folder / name
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        return path if stat.S_ISDIR(os.lstat(path).st_mode) else None
    except OSError:
        return None


def _move(path: Path, folder: Path) -> None:
    path.replace(folder / path.name)
