"""A drop folder: CSV/Parquet files in the formats `taehwa ingest` accepts are read once their size has settled,
queued, then moved to `done/`; a file that cannot be read goes to `failed/` with `<file>.error.txt` saying why."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from taehwa.connectors.config import FilesConnector
from taehwa.connectors.link import Link
from taehwa.errors import TaehwaError
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
            else:
                self.set_state("connected", folder=str(folder))
                for path in sorted(folder.glob(self.spec.pattern)):
                    if not path.is_file():
                        continue
                    size = path.stat().st_size
                    if sizes.get(path) != size:  # still being written: wait for one more poll
                        sizes[path] = size
                        continue
                    sizes.pop(path, None)
                    self._take(folder, path)
            self.stopping.wait(self.spec.poll_s)

    def _take(self, folder: Path, path: Path) -> None:
        try:
            parts = [t for t, _, _ in iter_file_tables(path)]
            table = self.checker.normalize(pa.concat_tables(parts) if len(parts) > 1 else parts[0],
                                             source=path.name, layout=self.spec.layout)
        except TaehwaError as exc:
            dest = folder / "failed"
            dest.mkdir(exist_ok=True)
            path.replace(dest / path.name)
            (dest / f"{path.name}.error.txt").write_text(f"{exc}\n")
            self.status.detail["files_failed"] += 1
            self.reject(f"{path.name}: {exc}")
            return
        table = table.select(["tag", "time", "value"])
        if self.spec.tag_prefix:
            table = table.set_column(0, "tag", pa.array([self.spec.tag_prefix + t for t in
                                                         table.column("tag").to_pylist()], pa.string()))
        done = folder / "done"
        done.mkdir(exist_ok=True)
        self.stage(table.column("tag").to_pylist(), table.column("time").cast(pa.int64()).to_pylist(),
                   table.column("value").to_pylist(), ack=lambda: _move(path, done))
        self.commit()
        self.status.detail["files_done"] += 1


def _move(path: Path, folder: Path) -> None:
    path.replace(folder / path.name)
