"""The demo data: the real SKAB pump test-bed runs from ../shared/data, loaded into tenant `demo`.

The historical runs give the lab real labelled data; the live demo plant (`plant.py`, `replay.py`) replays
the same data sets as if the plant were running now.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import NotFound
from taehwa.core.settings import default_shared_data
from taehwa.historian.readers import read_csv
from taehwa.historian.store import Historian
from taehwa.lab.labels import LabelService

DEMO_TENANT = "demo"
# named for what it holds (GLOSSARY: site 사업장); Korean after the English, as the rest of the interface pairs them
DEMO_NAME = (
    "Demo: Ulsan industrial plants (refinery, pump station, engine shop) · "
    "데모: 울산 산업 현장 (정유 공장, 펌프장, 엔진 정비소)"
)


# names earlier versions gave the demo tenant: a data directory made by one of them is renamed for what it holds now
FORMER_DEMO_NAMES = frozenset({"Demo: SKAB water-pump test bed", DEMO_TENANT})


def ensure_demo_tenant(tenants: Any, tenant: str = DEMO_TENANT) -> None:
    """Create the demo tenant, named for what it holds; one that a former version made keeps its data and takes
    the new name (a name somebody chose is left as it is)."""
    try:
        current = tenants.get(tenant)
    except NotFound:
        tenants.create(tenant, DEMO_NAME)
        return
    if tenant == DEMO_TENANT and current.name in FORMER_DEMO_NAMES:
        tenants.rename(tenant, DEMO_NAME)


_UNITS = {
    "accelerometer1_rms": "g",
    "accelerometer2_rms": "g",
    "current": "A",
    "pressure": "bar",
    "temperature": "degC",
    "thermocouple": "degC",
    "voltage": "V",
    "volume_flow_rate_rms": "L/min",
}


def _snake(name: str) -> str:
    name = name.replace("RMS", "_rms").replace("Rate", "_rate_")
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def skab_files(shared: Path) -> list[tuple[str, Path]]:
    """(run name, path) of every SKAB run, e.g. ('valve1-3', …/valve1/3.csv)."""
    root = shared / "skab" / "data"
    if not root.is_dir():
        raise NotFound("SKAB data not found; expected ../shared/data/skab/data", where=str(root))
    runs = []
    for group in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(group.glob("*.csv"), key=lambda p: (len(p.stem), p.stem)):
            name = group.name if group.name == "anomaly-free" else f"{group.name}-{f.stem}"
            runs.append((name, f))
    return runs


def label_skab(labels: LabelService, shared: Path | None = None, tenant: str = DEMO_TENANT) -> int:
    """The SKAB runs' anomaly intervals as labels on assets `skab/<run>` (kind `anomaly`), once."""
    if labels.rows(tenant, asset="skab", kinds=["anomaly"], limit=1):
        return 0
    rows: list[dict[str, Any]] = []
    for run, path in skab_files(shared or default_shared_data()):
        table = read_csv(path, source=path.name)
        if "anomaly" not in table.column_names:
            continue
        flags = np.nan_to_num(table.column("anomaly").to_numpy(zero_copy_only=False).astype(float)).astype(int)
        times = table.column("datetime").cast(pa.timestamp("us", tz="UTC")).to_numpy(zero_copy_only=False)
        edges = np.diff(np.concatenate([[0], flags, [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            end = times[b] if b < len(times) else times[-1] + np.timedelta64(1, "s")
            rows.append(
                {
                    "asset": f"skab/{run}",
                    "kind": "anomaly",
                    "start": str(times[a]) + "Z",
                    "end": str(end) + "Z",
                    "note": f"SKAB {path.parent.name}/{path.name}",
                }
            )
    return labels.add(tenant, rows, source="skab") if rows else 0


def load_skab(
    hist: Historian,
    shared: Path | None = None,
    tenant: str = DEMO_TENANT,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Load every SKAB run as tags `skab/<run>/<sensor>` (plus `…/anomaly`, `…/changepoint` labels)."""
    ensure_demo_tenant(hist.tenants, tenant)
    runs = skab_files(shared or default_shared_data())
    stored = 0
    for i, (run, path) in enumerate(runs):
        table = read_csv(path, source=path.name)
        time_col = table.column("datetime")
        parts = []
        for col in table.column_names:
            if col == "datetime":
                continue
            values = table.column(col).cast(pa.float64())
            tag = f"skab/{run}/{_snake(col)}"
            part = pa.table({"tag": pa.array([tag] * table.num_rows), "time": time_col, "value": values})
            parts.append(part.filter(pc.is_valid(values)))
        result = hist.write(tenant, pa.concat_tables(parts), source=path.name, layout="long")
        stored += result.points
        if progress:
            progress(i + 1, len(runs))
    for info in hist.catalog.list(tenant, "skab/"):
        sensor = info.name.rsplit("/", 1)[1]
        if sensor in _UNITS and info.unit is None:
            hist.catalog.set_metadata(tenant, info.name, {"unit": _UNITS[sensor], "interval_s": 1.0}, create=False)
    return stored
