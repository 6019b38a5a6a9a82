"""What `taehwa replay` can serve: the demo data sets from ../shared/data by name (`demo` for all of them, or
`tep`, `skab`, `cmapss`), or any CSV/Parquet file in the formats `taehwa ingest` accepts (long or wide)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import InvalidInput
from taehwa.demo.plant import Source, build_demo_plant
from taehwa.historian.normalize import normalize
from taehwa.historian.readers import iter_file_tables

DATASETS = {"demo": "", "tep": "Tennessee", "skab": "SKAB", "cmapss": "C-MAPSS"}


def load_sources(dataset: str, shared: Path) -> list[Source]:
    """The sources for a data set name or a file path."""
    if dataset in DATASETS:
        _, sources = build_demo_plant(shared)
        return [s for s in sources if s.name.startswith(DATASETS[dataset])]
    path = Path(dataset)
    if not path.exists():
        raise InvalidInput(
            f"no data set {dataset!r}: use one of {', '.join(DATASETS)} or a CSV/Parquet file", where="dataset"
        )
    return [file_source(path)]


def file_source(path: Path) -> Source:
    """A file's points as one source: a row per distinct time, a column per tag (missing values NaN), played at
    the median spacing of its times."""
    tables = [t for t, _, _ in iter_file_tables(path)]
    table = normalize(
        pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({}), source=path.name
    )
    if table.num_rows == 0:
        raise InvalidInput("the file holds no points", where=str(path))
    times = table.column("time").cast(pa.int64()).to_numpy()
    tags = table.column("tag").to_pylist()
    names = sorted(set(tags))
    col = pc.index_in(table.column("tag"), pa.array(names)).to_numpy(zero_copy_only=False)
    stamps, row = np.unique(times, return_inverse=True)
    rows = np.full((len(stamps), len(names)), np.nan)
    rows[row, col] = table.column("value").to_numpy(zero_copy_only=False)
    interval = float(np.median(np.diff(stamps))) / 1e6 if len(stamps) > 1 else 1.0
    return Source(path.stem, max(interval, 1e-3), names, [(path.name, rows)])
