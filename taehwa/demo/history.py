"""The demo plant's past: labelled history in the plant's own tags, so the ready lab specs train on historian data.

- Refinery (`ulsan-refinery/reaction-unit`, tags `tep/…`): the Tennessee Eastman runs one after another at their
  3-minute interval — the normal training run, the 21 fault training runs, then the normal and 21 fault test runs —
  with each fault's interval labelled `idv01` … `idv21` on the reaction unit (as an operator's shift log would).
- Engine shop (`engine-shop/fleet-fd001`, tags `cmapss/…`): each FD001 training engine's life to failure at 10
  minutes a cycle, with a `failure` point label on the engine at its last cycle (RUL is derived from it).

The history lies at fixed dates (from `HISTORY_START`), well before any live replay, so a ready spec names a fixed
range and two loads give the same data and the same content hash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from taehwa.demo.plant import CMAPSS_ENGINES, CMAPSS_SIGNALS, TEP_COLUMNS, _require, read_cmapss
from taehwa.lab.labels import LabelService
from taehwa.platform import Platform

HISTORY_START = pd.Timestamp("2026-01-05T00:00:00Z")
TEP_STEP = pd.Timedelta(minutes=3)
CMAPSS_STEP = pd.Timedelta(minutes=10)
REFINERY = "ulsan-refinery/reaction-unit"
FLEET = "engine-shop/fleet-fd001"
FAULT_START_TE = 160  # samples 1–160 of each dXX_te run are normal
LabelQuery = tuple[str, ...]


def tep_runs(shared: Path) -> list[tuple[str, np.ndarray, int | None, int]]:
    """(run, rows × 52, fault number or None, first faulty row) in the order the history lays them down."""
    root = shared / "tep"
    runs: list[tuple[str, np.ndarray, int | None, int]] = [("d00", np.loadtxt(_require(root / "d00.dat")).T, None, 0)]
    runs += [(f"d{k:02d}", np.loadtxt(_require(root / f"d{k:02d}.dat")), k, 0) for k in range(1, 22)]
    runs.append(("d00_te", np.loadtxt(_require(root / "d00_te.dat")), None, 0))
    runs += [(f"d{k:02d}_te", np.loadtxt(_require(root / f"d{k:02d}_te.dat")), k, FAULT_START_TE)
             for k in range(1, 22)]
    return runs


def _write_long(platform: Platform, tenant: str, tags: list[str], times: pd.DatetimeIndex, rows: np.ndarray,
                source: str) -> int:
    ok = np.isfinite(rows)
    tag_grid = np.broadcast_to(np.asarray(tags, dtype=object), rows.shape)[ok]
    time_grid = np.broadcast_to(times.as_unit("us").asi8.reshape(-1, 1), rows.shape)[ok]
    table = pa.table({"tag": pa.array(tag_grid, pa.string()),
                      "time": pa.array(time_grid).cast(pa.timestamp("us", tz="UTC")),
                      "value": pa.array(rows[ok], pa.float64())})
    return platform.historian.write(tenant, table, source=source, layout="long").points


def load_tep_history(platform: Platform, tenant: str, shared: Path) -> tuple[int, int]:
    """Write the TEP runs into the refinery's tags and label every fault interval; (points, labels)."""
    tags = [f"tep/{asset}/{sig}" for asset, sig, _, _ in TEP_COLUMNS]
    t = HISTORY_START
    points, labels = 0, []
    for name, rows, fault, first in tep_runs(shared):
        times = pd.date_range(t, periods=len(rows), freq=TEP_STEP)
        points += _write_long(platform, tenant, tags, times, rows, f"TEP {name}.dat")
        if fault is not None:
            labels.append({"asset": REFINERY, "kind": f"idv{fault:02d}", "start": times[first].isoformat(),
                           "end": (times[-1] + TEP_STEP).isoformat(), "note": f"TEP {name}.dat, IDV({fault})"})
        t = times[-1] + TEP_STEP
    return points, platform.labels.add(tenant, labels, source="tep")


def load_cmapss_history(platform: Platform, tenant: str, shared: Path, engines: int = CMAPSS_ENGINES
                        ) -> tuple[int, int]:
    """Write each FD001 training engine's life (all from `HISTORY_START`) and label its failure; (points, labels)."""
    data = read_cmapss(shared / "cmapss" / "train_FD001.txt.gz")
    points, labels = 0, []
    for u in sorted({int(u) for u in data[:, 0]})[:engines]:
        life = data[data[:, 0] == u]
        times = pd.date_range(HISTORY_START, periods=len(life), freq=CMAPSS_STEP)
        tags = [f"cmapss/engine-{u:03d}/{s}" for s in CMAPSS_SIGNALS]
        points += _write_long(platform, tenant, tags, times, life[:, 2:], "C-MAPSS train_FD001")
        labels.append({"asset": f"{FLEET}/engine-{u:03d}", "kind": "failure", "start": times[-1].isoformat(),
                       "note": f"C-MAPSS FD001 unit {u} failed after {len(life)} cycles"})
    return points, platform.labels.add(tenant, labels, source="cmapss")


PUMP_HISTORY_START = pd.Timestamp("2026-01-04T00:00:00Z")  # the live pump's own past: SKAB's anomaly-free run
PUMP_MODEL, PUMP_DEPLOYMENT, PUMP_RULE = "pump-station-live", "pump-station", "pump-anomaly"


def load_pump_history(platform: Platform, tenant: str, shared: Path) -> int:
    """SKAB's anomaly-free run in the live pump station's own tags (`skab/live/…`) at 1 s from 4 January 2026:
    the history its ready spec `pump-station-live` learns normal operation from. Points written."""
    import pyarrow.csv as pacsv

    from taehwa.demo import skab_files
    from taehwa.demo.plant import SKAB_COLUMNS

    path = next((p for name, p in skab_files(shared) if name == "anomaly-free"), None)
    if path is None:
        return 0
    table = pacsv.read_csv(_require(path), parse_options=pacsv.ParseOptions(delimiter=";"))
    rows = np.column_stack([table.column(c).to_numpy().astype(float) for c in SKAB_COLUMNS])
    tags = [f"skab/live/{sig}" for _, sig, _ in SKAB_COLUMNS.values()]
    times = pd.date_range(PUMP_HISTORY_START, periods=len(rows), freq="1s")
    return _write_long(platform, tenant, tags, times, rows, "skab-live-history")


def deploy_pump_model(platform: Platform, tenant: str) -> dict[str, Any] | None:
    """Train the live pump station's detector on its history, promote it and deploy it on every CentrifugalPump,
    with an alert rule on its score (once: None when the deployment exists already)."""
    from taehwa.lab.spec import READY, load_spec

    if any(d.name == PUMP_DEPLOYMENT for d in platform.live.deployments.list(tenant)):
        return None
    run = platform.lab.run(tenant, load_spec(READY / f"{PUMP_MODEL}.yaml"), track=False)
    version = run["registered"]["version"] if run.get("registered") else None
    if version is None:
        return None
    platform.lab.promote(tenant, PUMP_MODEL, version, "demo: trained on the pump's anomaly-free history", force=True)
    platform.live.deploy(tenant, {"name": PUMP_DEPLOYMENT, "model": PUMP_MODEL, "asset_type": "CentrifugalPump"})
    platform.live.rules.put(tenant, {"name": PUMP_RULE, "kind": "score", "asset_type": "CentrifugalPump",
                                     "min_duration_s": 5, "severity": "alarm",
                                     "message": "pump anomaly score over its control limit"}, replace=True)
    return {"model": PUMP_MODEL, "version": version, "f1": run.get("metrics", {}).get("f1")}


def load_plant_history(platform: Platform, shared: Path, tenant: str = "demo", *, engines: int = CMAPSS_ENGINES,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The demo plant in the twin plus its labelled history (once: skipped when the labels are there)."""
    from taehwa.demo.replay import load_demo_plant

    load_demo_plant(platform, shared, tenant)
    done: dict[str, Any] = {"points": 0, "labels": 0}
    steps: list[tuple[LabelQuery, Callable[[], tuple[int, int]]]] = [
        (("idv01",), lambda: load_tep_history(platform, tenant, shared)),
        (("failure",), lambda: load_cmapss_history(platform, tenant, shared, engines))]
    if "skab/live/flow" not in platform.historian.catalog.ids(tenant, refresh=True) or not \
            platform.historian.read(tenant, ["skab/live/flow"], PUMP_HISTORY_START.to_pydatetime(),
                                    (PUMP_HISTORY_START + pd.Timedelta(days=1)).to_pydatetime(), limit=1).num_rows:
        done["points"] += load_pump_history(platform, tenant, shared)
    for i, (kinds, load) in enumerate(steps):
        if not _labelled(platform.labels, tenant, kinds):
            pts, n = load()
            done["points"] += pts
            done["labels"] += n
        if progress:
            progress(i + 1, len(steps))
    platform.historian.flush()
    return done


def _labelled(labels: LabelService, tenant: str, kinds: LabelQuery) -> bool:
    return bool(labels.rows(tenant, kinds=list(kinds), limit=1))
