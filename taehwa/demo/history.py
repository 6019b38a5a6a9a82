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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from taehwa.demo.plant import CMAPSS_ENGINES, CMAPSS_SIGNALS, TEP_COLUMNS, Source, _require, read_cmapss
from taehwa.lab.labels import LabelService
from taehwa.server.platform import Platform

HISTORY_START = pd.Timestamp("2026-01-05T00:00:00Z")
TEP_STEP = pd.Timedelta(minutes=3)
CMAPSS_STEP = pd.Timedelta(minutes=10)
REFINERY = "ulsan-refinery/reaction-unit"
FLEET = "engine-shop/fleet-fd001"
# the demo's models score once a second, not at every replayed write: the same rows and alerts, at a fraction of
# the work (scored at each write, they took a third of a core of `serve --demo` on two cores)
DEMO_SCORE_EVERY_S = 1.0
FAULT_START_TE = 160  # samples 1–160 of each dXX_te run are normal
LabelQuery = tuple[str, ...]


def tep_runs(shared: Path) -> list[tuple[str, np.ndarray, int | None, int]]:
    """(run, rows × 52, fault number or None, first faulty row) in the order the history lays them down."""
    root = shared / "tep"
    runs: list[tuple[str, np.ndarray, int | None, int]] = [("d00", np.loadtxt(_require(root / "d00.dat")).T, None, 0)]
    runs += [(f"d{k:02d}", np.loadtxt(_require(root / f"d{k:02d}.dat")), k, 0) for k in range(1, 22)]
    runs.append(("d00_te", np.loadtxt(_require(root / "d00_te.dat")), None, 0))
    runs += [(f"d{k:02d}_te", np.loadtxt(_require(root / f"d{k:02d}_te.dat")), k, FAULT_START_TE) for k in range(1, 22)]
    return runs


def _write_long(
    platform: Platform, tenant: str, tags: list[str], times: pd.DatetimeIndex, rows: np.ndarray, source: str
) -> int:
    ok = np.isfinite(rows)
    tag_grid = np.broadcast_to(np.asarray(tags, dtype=object), rows.shape)[ok]
    time_grid = np.broadcast_to(times.as_unit("us").asi8.reshape(-1, 1), rows.shape)[ok]
    table = pa.table(
        {
            "tag": pa.array(tag_grid, pa.string()),
            "time": pa.array(time_grid).cast(pa.timestamp("us", tz="UTC")),
            "value": pa.array(rows[ok], pa.float64()),
        }
    )
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
            labels.append(
                {
                    "asset": REFINERY,
                    "kind": f"idv{fault:02d}",
                    "start": times[first].isoformat(),
                    "end": (times[-1] + TEP_STEP).isoformat(),
                    "note": f"TEP {name}.dat, IDV({fault})",
                }
            )
        t = times[-1] + TEP_STEP
    return points, platform.labels.add(tenant, labels, source="tep")


def load_cmapss_history(
    platform: Platform, tenant: str, shared: Path, engines: int = CMAPSS_ENGINES
) -> tuple[int, int]:
    """Write each FD001 training engine's life (all from `HISTORY_START`) and label its failure; (points, labels)."""
    data = read_cmapss(shared / "cmapss" / "train_FD001.txt.gz")
    points, labels = 0, []
    for u in sorted({int(u) for u in data[:, 0]})[:engines]:
        life = data[data[:, 0] == u]
        times = pd.date_range(HISTORY_START, periods=len(life), freq=CMAPSS_STEP)
        tags = [f"cmapss/engine-{u:03d}/{s}" for s in CMAPSS_SIGNALS]
        points += _write_long(platform, tenant, tags, times, life[:, 2:], "C-MAPSS train_FD001")
        labels.append(
            {
                "asset": f"{FLEET}/engine-{u:03d}",
                "kind": "failure",
                "start": times[-1].isoformat(),
                "note": f"C-MAPSS FD001 unit {u} failed after {len(life)} cycles",
            }
        )
    return points, platform.labels.add(tenant, labels, source="cmapss")


PUMP_HISTORY_START = pd.Timestamp("2026-01-04T00:00:00Z")  # the live pump's own past (see plant.pump_history_rows)
PUMP_MODEL, PUMP_DEPLOYMENT, PUMP_RULE = "pump-station-live", "pump-station", "pump-anomaly"


def load_pump_history(platform: Platform, tenant: str, shared: Path) -> int:
    """The live pump station's past normal running in its own tags (`skab/live/…`) at 1 s from 4 January 2026:
    the first 400 s of SKAB's valve tests 1-0 … 1-7, before each test began (none of the runs replayed live).
    Its ready spec `pump-station-live` learns normal operation from it, with no labels. Points written."""
    from taehwa.demo.plant import SKAB_COLUMNS, pump_history_rows

    rows = pump_history_rows(shared)
    tags = [f"skab/live/{sig}" for _, sig, _ in SKAB_COLUMNS.values()]
    times = pd.date_range(PUMP_HISTORY_START, periods=len(rows), freq="1s")
    return _write_long(platform, tenant, tags, times, rows, "skab-live-history")


@dataclass(frozen=True)
class DemoModel:
    """A ready spec the demo trains, promotes through the gate and deploys, with the alert rule on its output
    (`min_duration_s` in the data's own time: the replay shortens it by its speed)."""

    spec: str
    deployment: str
    target: dict[str, str]
    rule: dict[str, Any] | None = None


DEMO_MODELS = [
    DemoModel(
        PUMP_MODEL,
        PUMP_DEPLOYMENT,
        {"asset_type": "CentrifugalPump"},
        {
            "name": PUMP_RULE,
            "kind": "score",
            "asset_type": "CentrifugalPump",
            "min_duration_s": 10,
            "severity": "alarm",
        },
    ),
    DemoModel(
        "refinery-fault-detection",
        "reaction-unit",
        {"asset": REFINERY},
        {
            "name": "reaction-unit-fault",
            "kind": "score",
            "asset": REFINERY,
            "min_duration_s": 540,
            "severity": "alarm",
        },
    ),
    DemoModel("engine-shop-rul", "engine-rul", {"asset_type": "TurbofanEngine"}),
]


def live_step(trained_step: str, speed: float) -> str:
    """The row spacing of a demo deployment: the step its model learnt at, shortened by the replay's speed (the
    replay plays the data `speed` times faster, so a row of the data is a row of live scoring)."""
    from taehwa.core.timeutil import parse_duration

    return f"{max(1, round(parse_duration(trained_step) / speed))}us"


def _scaled_rule(rule: dict[str, Any], speed: float) -> dict[str, Any]:
    """An alert rule whose duration is in the data's time, in the replay's wall-clock time."""
    return {**rule, "min_duration_s": round(float(rule.get("min_duration_s", 0.0)) / speed, 6)}


def deploy_demo_models(
    platform: Platform,
    tenant: str,
    speed: float | None = None,
    progress: Callable[[str], None] | None = None,
    only: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Train each demo model on the plant's history, promote it through the gate (never forced: one the gate
    refuses is not deployed, and the answer says why) and deploy it with its alert rule, rows spaced for the
    replay's `speed`. Once: a model whose deployment exists is left as it is; `only`: these specs. What happened,
    per model."""
    from taehwa.core.errors import Conflict
    from taehwa.lab.spec import READY, load_spec

    speed = speed or platform.settings.demo_speed
    have = {d.name for d in platform.live.deployments.list(tenant)}
    out: list[dict[str, Any]] = []
    for m in DEMO_MODELS:
        if m.deployment in have or (only is not None and m.spec not in only):
            continue
        if progress:
            progress(m.spec)
        spec = load_spec(READY / f"{m.spec}.yaml")
        run = platform.lab.run(tenant, spec, track=False)
        reg = run.get("registered") or {}
        entry: dict[str, Any] = {
            "spec": m.spec,
            "model": reg.get("name"),
            "version": reg.get("version"),
            "run_id": run["run_id"],
            "criterion": run["gate"]["criterion"],
            "judged": run["verdict"],
            "deployment": None,
        }
        try:
            gate = platform.lab.promote(
                tenant, reg["name"], reg["version"], f"demo: trained on the plant's history ({run['gate']['text']})"
            )["gate"]
        except Conflict as exc:
            entry["refused"] = str(exc)
            out.append(entry)
            continue
        entry["gate"] = gate
        step = live_step(spec.data.step, speed)
        platform.live.deploy(
            tenant,
            {"name": m.deployment, "model": reg["name"], **m.target, "step": step, "every_s": DEMO_SCORE_EVERY_S},
        )
        if m.rule:
            platform.live.rules.put(tenant, _scaled_rule(m.rule, speed), replace=True)
        entry["deployment"] = m.deployment
        out.append(entry)
    return out


def demo_model_lines(done: list[dict[str, Any]]) -> list[str]:
    """What `demo load` says of each model it trained: promoted and deployed by which criterion, or refused."""
    lines = []
    for e in done:
        if e.get("refused"):
            lines.append(f"live scoring: {e['model']} v{e['version']} not deployed: {e['refused']}")
        else:
            lines.append(
                f"live scoring: {e['model']} v{e['version']} passed the gate ({e['criterion']}: "
                f"{e['gate']['judged']}), promoted and deployed as '{e['deployment']}'"
            )
    return lines


def match_replay_speed(platform: Platform, tenant: str, speed: float) -> list[str]:
    """Re-space the demo's deployments (and their rules' durations) for a replay at `speed`, when the demo was
    loaded at another one; the deployments changed."""
    from taehwa.lab.spec import READY, load_spec

    changed = []
    deps = {d.name: d for d in platform.live.deployments.list(tenant)}
    for m in DEMO_MODELS:
        dep = deps.get(m.deployment)
        if dep is None:
            continue
        step = live_step(load_spec(READY / f"{m.spec}.yaml").data.step, speed)
        if dep.params.get("step") == step:
            continue
        platform.live.deploy(
            tenant,
            {
                "name": dep.name,
                "model": dep.model,
                "version": dep.version,
                **dep.target,
                **{k: v for k, v in dep.params.items() if v is not None},
                "step": step,
                "enabled": dep.enabled,
            },
            replace=True,
        )
        if m.rule:
            platform.live.rules.put(tenant, _scaled_rule(m.rule, speed), replace=True)
        changed.append(dep.name)
    return changed


def deploy_pump_model(platform: Platform, tenant: str) -> dict[str, Any] | None:
    """The live pump station's detector alone, trained, promoted through the gate and deployed (see
    `deploy_demo_models`); None when its deployment exists already or the gate refused it."""
    done = deploy_demo_models(platform, tenant, only=[PUMP_MODEL])
    entry = done[0] if done else None
    if entry is None or entry["deployment"] is None:
        return None
    return entry


def load_demo_plant(platform: Platform, shared: Path, tenant: str = "demo") -> list[Source]:
    """Create the demo tenant if needed and load (or refresh) the demo plant into its twin; the replay sources."""
    from taehwa.core.yamlio import dump_yaml
    from taehwa.demo import ensure_demo_tenant
    from taehwa.demo.plant import build_demo_plant

    ensure_demo_tenant(platform.tenants, tenant)
    doc, sources = build_demo_plant(shared)
    platform.twin.load(tenant, dump_yaml(doc), source="demo-plant.yaml", actor="demo")
    from taehwa.demo.city import load_demo_city

    load_demo_city(platform, shared, tenant)  # the city office and two more companies (taehwa/demo/city.py)
    return sources


def load_plant_history(
    platform: Platform,
    shared: Path,
    tenant: str = "demo",
    *,
    engines: int = CMAPSS_ENGINES,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The demo plant in the twin plus its labelled history (once: skipped when the labels are there)."""
    load_demo_plant(platform, shared, tenant)
    done: dict[str, Any] = {"points": 0, "labels": 0}
    steps: list[tuple[LabelQuery, Callable[[], tuple[int, int]]]] = [
        (("idv01",), lambda: load_tep_history(platform, tenant, shared)),
        (("failure",), lambda: load_cmapss_history(platform, tenant, shared, engines)),
    ]
    if (
        "skab/live/flow" not in platform.historian.catalog.ids(tenant, refresh=True)
        or not platform.historian.read(
            tenant,
            ["skab/live/flow"],
            PUMP_HISTORY_START.to_pydatetime(),
            (PUMP_HISTORY_START + pd.Timedelta(days=1)).to_pydatetime(),
            limit=1,
        ).num_rows
    ):
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
