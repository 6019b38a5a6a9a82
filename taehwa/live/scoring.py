"""The live scorer: every enabled deployment's model scores its assets as points arrive, and writes its outputs back
to the historian as the assets' derived signals (`<asset>/anomaly_score`, `<asset>/rul`, …), so they show in the
twin's live state and change streams like any other value.

Points reach it through the historian's write listener (whatever path they came by) and are only queued there; one
background thread turns them into rows (`rows.UnitRows`), scores every ready row of all of a deployment's assets in
one batch, and writes the outputs in one write. The newest output time of each asset is its watermark: after a
restart the scorer reads what arrived since from the historian and scores it, in order, before going on live.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import TaehwaError
from taehwa.core.timeutil import from_us, parse_duration
from taehwa.historian.schema import STORE_SCHEMA
from taehwa.lab.alarms import AlarmPolicy, AlarmState, alarm_flags
from taehwa.lab.datasets import TIME, UNIT
from taehwa.lab.fanout import Backend, run_stream
from taehwa.lab.gaps import hold_us as gap_hold_us
from taehwa.lab.validation import Pipeline
from taehwa.live.deployments import OUTPUTS, Deployment, history_rows, required_columns, resolve_units
from taehwa.live.records import ModelRef, OutputOwner, ScorerStatus
from taehwa.live.rows import UnitRows, grid_between, grid_rows, phase_of, sorted_series
from taehwa.tenancy.access import SYSTEM, acting_as

if TYPE_CHECKING:
    from taehwa.historian.store import Historian
    from taehwa.lab.service import LabService
    from taehwa.live.deployments import DeploymentStore
    from taehwa.live.models import ModelCache
    from taehwa.twin.service import TwinService

log = logging.getLogger(__name__)
DRIFT_SAMPLE = 5000  # recent rows kept per deployment to compare with its validation data


def fault_classes(pipe: Pipeline) -> list[str]:
    """A fault model's classes in the order their codes are written (`fault_class` = index in this list)."""
    m = pipe.model
    classes = getattr(m, "classes_", None)
    return [str(c) for c in classes] if classes is not None else [str(getattr(m, "class_", "normal"))]


def model_outputs(pipe: Pipeline, decision: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """What a model's predictions are written as, per output name (numbers: fault classes by code)."""
    if pipe.task == "anomaly":
        return {"anomaly_score": np.asarray(score, float), "anomaly": np.asarray(decision, float)}
    if pipe.task == "fault":
        index = {c: i for i, c in enumerate(fault_classes(pipe))}
        codes = np.array([index.get(str(d), -1) for d in decision], dtype=float)
        return {"fault_class": codes, "fault_score": np.asarray(score, float)}
    return {OUTPUTS[pipe.task][0]: np.asarray(decision, float)}


def rows_frame(columns: list[str], blocks: list[tuple[str, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """The frame a pipeline predicts on from blocks of (unit, times, values[row, column]) rows in time order; gaps
    inside a unit are filled forward, as the training data was."""
    n = sum(len(t) for _, t, _ in blocks)
    unit_idx = np.repeat(np.arange(len(blocks)), [len(t) for _, t, _ in blocks])
    values = np.concatenate([v for _, _, v in blocks]) if blocks else np.empty((0, len(columns)))
    frame = pd.DataFrame(values, columns=columns)
    frame.insert(0, UNIT, unit_idx)
    frame.insert(0, TIME, pd.to_datetime(np.concatenate([t for _, t, _ in blocks]) if n else [], unit="us", utc=True))
    if np.isnan(values).any():
        frame[columns] = frame.groupby(UNIT, sort=False)[columns].ffill()
    return frame


def predict_units(
    pipe: Pipeline, columns: list[str], blocks: list[tuple[str, np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit index per row, decision, score) for blocks of (unit, times, values[row, column]) rows in time order."""
    frame = rows_frame(columns, blocks)
    decision, score = pipe.predict(frame)
    return frame[UNIT].to_numpy(), np.asarray(decision), np.asarray(score, dtype=float)


@dataclass
class Unit:
    """One asset under one deployment: its input tags, rows being made, and the recent rows features need."""

    asset: str
    tags: list[str]
    rows: UnitRows
    hist_t: np.ndarray
    hist_v: np.ndarray
    new_t: list[np.ndarray] = field(default_factory=list)
    new_v: list[np.ndarray] = field(default_factory=list)
    alarm: AlarmState = field(default_factory=AlarmState)  # the model's event-level alarm, carried over batches


@dataclass
class Running:
    """A deployment as the scorer runs it."""

    dep: Deployment
    key: tuple[Any, ...]  # what it was started from: a change of any part restarts it
    pipe: Pipeline
    info: ModelRef  # the model version in use
    columns: list[str]
    outputs: dict[str, str]  # output → signal name
    step_us: int
    hold_us: int
    wait_us: int
    need: int
    units: dict[str, Unit]
    skipped: dict[str, str]
    by_tag: dict[str, list[tuple[Unit, int]]]
    rows_scored: int = 0
    last_row_us: int | None = None
    last_scored_at: float | None = None
    last_error: str | None = None
    error_at: float | None = None
    next_due: float = 0.0
    dirty: set[str] = field(default_factory=set)  # assets with points not yet turned into rows
    recent_in: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=DRIFT_SAMPLE))
    recent_score: deque[float] = field(default_factory=lambda: deque(maxlen=DRIFT_SAMPLE))
    alarm: AlarmPolicy | None = None  # an anomaly model's calibrated alarm, its durations in this deployment's step

    def output_tag(self, asset: str, output: str) -> str:
        return f"{asset}/{self.outputs[output]}"


Block = tuple[str, np.ndarray, np.ndarray]  # (asset, times, rows): history then new rows, as the model reads them
New = tuple[Unit, int, np.ndarray, np.ndarray]  # (unit, rows of history before the new ones, new times, new rows)


def _gather(run: Running, dirty: set[str], *, force: bool) -> tuple[list[Block], list[New]]:
    """The units with new ready rows (of those that got points, or all when forced), in the deployment's order:
    each one's block (its history, then the new rows) and what is new in it."""
    blocks: list[Block] = []
    news: list[New] = []
    for unit in (u for a, u in run.units.items() if force or a in dirty):
        times, rows = unit.rows.take()
        if len(times):
            unit.new_t.append(times)
            unit.new_v.append(rows)
        if not unit.new_t:
            continue
        nt, nv = np.concatenate(unit.new_t), np.concatenate(unit.new_v)
        unit.new_t, unit.new_v = [], []
        blocks.append((unit.asset, np.concatenate([unit.hist_t, nt]), np.concatenate([unit.hist_v, nv])))
        news.append((unit, len(unit.hist_t), nt, nv))
    return blocks, news


def _new_rows(news: list[New], blocks: list[Block]) -> Iterator[tuple[New, slice]]:
    """Each unit's new rows and where they are among the predicted rows (after its history)."""
    start = 0
    for new, (_, bt, _) in zip(news, blocks, strict=True):
        yield new, slice(start + new[1], start + len(bt))
        start += len(bt)


def _outputs(
    run: Running, news: list[New], blocks: list[Block], outs: dict[str, np.ndarray]
) -> tuple[pa.Table, np.ndarray]:
    """The output points of the new rows (the alarm carried on from each unit's last batch), as one table in the
    store's schema, and their times."""
    policy = run.alarm
    tags: list[str] = []
    times_out: list[np.ndarray] = []
    values: dict[str, list[np.ndarray]] = {o: [] for o in run.outputs}
    for (unit, _, nt, _), sl in _new_rows(news, blocks):
        if policy is not None:  # the alarm goes on from where this unit's last batch left it
            outs["anomaly"][sl] = alarm_flags(nt, outs["anomaly_score"][sl], policy, state=unit.alarm)
        for o in run.outputs:
            values[o].append(outs[o][sl])
        times_out.append(nt)
        tags.extend([unit.asset] * len(nt))
    all_t = np.concatenate(times_out)
    return output_points(tags, all_t, [(run.outputs[o], np.concatenate(values[o])) for o in run.outputs]), all_t


def output_points(assets: list[str], times_us: np.ndarray, outputs: list[tuple[str, np.ndarray]]) -> pa.Table:
    """Model outputs as good points in the store's schema: for each (tag suffix, one value per row), the row's
    asset's tag `<asset>/<suffix>`; rows whose value is not finite are left out (live scoring and backfill)."""
    parts = []
    for suffix, vals in outputs:
        ok = np.isfinite(vals)
        parts.append(
            pa.table(
                {
                    "tag": pa.array([f"{a}/{suffix}" for a, keep in zip(assets, ok, strict=True) if keep], pa.string()),
                    "time": pa.array(times_us[ok], pa.int64()).cast(pa.timestamp("us")),
                    "value": pa.array(vals[ok], pa.float64()),
                    "quality": pa.array(np.zeros(int(ok.sum()), np.uint8), pa.uint8()),
                },
                schema=STORE_SCHEMA,
            )
        )
    return pa.concat_tables(parts)


def _keep(run: Running, news: list[New], blocks: list[Block], outs: dict[str, np.ndarray], n: int) -> None:
    """After a batch: each unit's history (the rows a next score needs), and the drift samples (recent inputs and
    primary scores of the new rows)."""
    mask = np.zeros(n, dtype=bool)
    for (unit, _, nt, nv), sl in _new_rows(news, blocks):
        unit.hist_t = np.concatenate([unit.hist_t, nt])[-run.need :]
        unit.hist_v = np.concatenate([unit.hist_v, nv])[-run.need :]
        for row in nv[-DRIFT_SAMPLE:]:
            run.recent_in.append(row)
        mask[sl] = True
    primary = outs[OUTPUTS[run.pipe.task][0]] if run.pipe.task != "fault" else outs["fault_score"]
    run.recent_score.extend(np.asarray(primary)[mask][-DRIFT_SAMPLE:].tolist())


class Scorer:
    """Runs every enabled deployment of every tenant in one background thread."""

    def __init__(
        self,
        *,
        historian: Historian,
        deployments: DeploymentStore,
        models: ModelCache,
        twin: TwinService,
        lab: LabService,
        refresh_s: float = 2.0,
    ) -> None:
        """The historian (points in, outputs out), the deployments it runs, the model cache, the twin (each
        deployment's assets) and the lab (the step a model was trained on)."""
        self.historian, self.deployments, self.models, self.twin, self.lab = historian, deployments, models, twin, lab
        self.refresh_s = refresh_s
        self._queue: queue.SimpleQueue[tuple[str, pa.Table]] = queue.SimpleQueue()
        self._running: dict[tuple[str, str], Running] = {}
        self._tags: dict[str, pa.Array] = {}  # tenant → input tags of its deployments
        self._owners: dict[tuple[str, str], Running] = {}  # (tenant, output tag) → deployment
        self._fingerprint: Any = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.on_scored: list[Any] = []  # callbacks(tenant, running, table of outputs), for tests and drift
        self.historian.add_listener(self._on_points)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self.refresh(force=True)
            self._thread = threading.Thread(target=self._loop, name="live-scorer", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _on_points(self, tenant: str, points: pa.Table) -> None:
        if tenant in self._tags:
            self._queue.put((tenant, points))

    def _loop(self) -> None:
        last_refresh = time.monotonic()
        while not self._stop.is_set():
            try:
                tenant, table = self._queue.get(timeout=0.05)
                batch = [(tenant, table)]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            except queue.Empty:
                batch = []
            try:
                with acting_as(SYSTEM):
                    if time.monotonic() - last_refresh > self.refresh_s:
                        last_refresh = time.monotonic()
                        self.refresh()
                    self.step(batch)
            except Exception:
                log.exception("live scoring failed")

    def drain(self) -> None:
        """Process what is queued now, in the caller's thread (tests, and callers that need outputs at once)."""
        batch = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        with acting_as(SYSTEM):
            self.step(batch, scheduled=False)

    # -- deployments ----------------------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Follow changes of deployments, the registry (promotions, rollbacks) and the twin (new assets)."""
        with acting_as(SYSTEM):
            active = self.historian.leases.active  # writers by tenant: each scores its own tenants
            deps = [d for d in self.deployments.list() if d.enabled and active(d.tenant)]
            state = []
            for d in deps:
                try:
                    run_id: str | None = self.models.resolve(d.tenant, d.model, d.version)["run_id"]
                except TaehwaError:
                    run_id = None
                state.append(
                    (
                        d.tenant,
                        d.name,
                        d.model,
                        d.version,
                        repr(d.target),
                        repr(d.params),
                        run_id,
                        id(self.twin.plant(d.tenant)),
                    )
                )
            if not force and state == self._fingerprint:
                return
            with self._lock:
                keep: dict[tuple[str, str], Running] = {}
                for d, key in zip(deps, state, strict=True):
                    old = self._running.get((d.tenant, d.name))
                    if old is not None and old.key == key:
                        keep[(d.tenant, d.name)] = old
                        continue
                    try:
                        keep[(d.tenant, d.name)] = self._start(d, old, key)
                    except TaehwaError as exc:
                        log.warning("deployment %s/%s cannot run: %s", d.tenant, d.name, exc)
                self._running = keep
                self._index()
                self._fingerprint = state

    def _index(self) -> None:
        tags: dict[str, set[str]] = {}
        self._owners = {}
        for (tenant, _), run in self._running.items():
            tags.setdefault(tenant, set()).update(run.by_tag)
            for asset in run.units:
                for out in run.outputs:
                    self._owners[(tenant, run.output_tag(asset, out))] = run
        self._tags = {t: pa.array(sorted(v), pa.string()) for t, v in tags.items()}

    def _start(self, dep: Deployment, old: Running | None, key: tuple[Any, ...]) -> Running:
        pipe, info = self.models.pipeline(dep.tenant, dep)
        columns = required_columns(pipe)
        units_tags, skipped = resolve_units(self.twin, dep.tenant, dep, columns)
        p = dep.params
        step_us = parse_duration(p.get("step") or self._trained_step(dep.tenant, info["run_id"]), field="step")
        hold_us = gap_hold_us(step_us, p.get("hold_s"))
        wait_us = int(p["wait_s"] * 1e6) if p.get("wait_s") is not None else 2 * step_us
        outputs = {o: (p.get("outputs") or {}).get(o, o) for o in OUTPUTS[pipe.task]}
        outputs = {o: s for o, s in outputs.items() if s}
        run = Running(
            dep, key, pipe, info, columns, outputs, step_us, hold_us, wait_us, history_rows(pipe), {}, skipped, {}
        )
        if old is not None:
            run.rows_scored, run.recent_in, run.recent_score = old.rows_scored, old.recent_in, old.recent_score
        policy = pipe.policy if pipe.task == "anomaly" else None
        if policy is not None:  # durations were calibrated in the training data's steps: the same steps here
            trained = parse_duration(self._trained_step(dep.tenant, info["run_id"]), field="step")
            scale = step_us / trained if trained > 0 else 1.0
            run.alarm = dataclasses.replace(
                policy, min_duration_s=policy.min_duration_s * scale, quiet_s=policy.quiet_s * scale
            )
        for asset, tags in units_tags.items():
            unit = Unit(
                asset,
                tags,
                UnitRows(len(tags), step_us, hold_us, wait_us),
                np.empty(0, np.int64),
                np.empty((0, len(columns))),
            )
            run.units[asset] = unit
            for j, tag in enumerate(tags):
                run.by_tag.setdefault(tag, []).append((unit, j))
        if not self.historian.readonly:  # the output tags exist from the start, not from their first row
            self.historian.catalog.ensure(dep.tenant, [run.output_tag(a, o) for a in run.units for o in run.outputs])
        self._catch_up(run)
        return run

    def _trained_step(self, tenant: str, run_id: str) -> str:
        spec = self.lab.get_run(tenant, run_id)["spec"]
        return str(spec["data"].get("step") or "1m")

    def _catch_up(self, run: Running) -> None:
        """Seed every unit from the historian: the rows before its watermark (the newest output written, else the
        newest input) feed its features; rows after it are scored now, in order."""
        tenant = run.dep.tenant
        first_out = next(iter(run.outputs))
        out_tags = [run.output_tag(a, first_out) for a in run.units]
        in_tags = sorted({t for u in run.units.values() for t in u.tags})
        known = self.historian.catalog.ids(tenant, refresh=True)
        marks: dict[str, int] = {}
        present = [t for t in out_tags if t in known]
        if present:
            latest = self.historian.latest(tenant, present)
            for tag, t in zip(
                latest.column("tag").to_pylist(), latest.column("time").cast(pa.int64()).to_pylist(), strict=True
            ):
                marks[tag.rsplit("/", 1)[0]] = t
        inputs_present = [t for t in in_tags if t in known]
        if not inputs_present:
            return
        newest_in = self.historian.latest(tenant, inputs_present)
        newest = dict(
            zip(newest_in.column("tag").to_pylist(), newest_in.column("time").cast(pa.int64()).to_pylist(), strict=True)
        )
        for asset, unit in run.units.items():
            seen = [newest[t] for t in unit.tags if t in newest]
            if asset not in marks and seen:  # never scored: start after the data already there
                marks[asset] = max(seen)  # rows up to the newest point there (on whatever phase) are history
        if not marks:
            return
        lo = min(marks.values()) - (run.need + 1) * run.step_us - run.hold_us
        until = from_us(time.time_ns() // 1000 + 86_400_000_000)  # everything, future stamps included
        table = self.historian.read(tenant, inputs_present, from_us(lo), until)
        per_tag: dict[str, tuple[list[int], list[float]]] = {}
        for tag, t, v in zip(
            table.column("tag").to_pylist(),
            table.column("time").cast(pa.int64()).to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        ):
            entry = per_tag.setdefault(tag, ([], []))
            entry[0].append(t)
            entry[1].append(v)
        for asset, unit in run.units.items():
            mark = marks.get(asset)
            if mark is None:
                continue
            for j, tag in enumerate(unit.tags):
                ts, vs = per_tag.get(tag, ([], []))
                for t, v in zip(ts, vs, strict=True):
                    unit.rows.add(j, t, v)
            times, rows = unit.rows.take()
            old = times <= mark
            unit.hist_t, unit.hist_v = times[old][-run.need :], rows[old][-run.need :]
            if (~old).any():
                unit.new_t.append(times[~old])
                unit.new_v.append(rows[~old])
            if unit.rows.last_row is None or unit.rows.last_row < mark:
                unit.rows.last_row = mark
        self._score(run, force=True)

    # -- scoring --------------------------------------------------------------------------------------------------
    def step(self, batch: list[tuple[str, pa.Table]], *, scheduled: bool = True) -> None:
        """Route queued points to their units, then score what is ready (a deployment on a schedule, `every_s`,
        when it is due; every one at once when not `scheduled`: a caller that needs the outputs now)."""
        with self._lock:
            for tenant, table in batch:
                tag_set = self._tags.get(tenant)
                if tag_set is None:
                    continue
                mine = table.filter(pc.is_in(table.column("tag"), value_set=tag_set))
                if mine.num_rows == 0:
                    continue
                runs = [r for (t, _), r in self._running.items() if t == tenant]
                for tag, t, v in zip(
                    mine.column("tag").to_pylist(),
                    mine.column("time").cast(pa.int64()).to_pylist(),
                    mine.column("value").to_pylist(),
                    strict=True,
                ):
                    for run in runs:
                        for unit, j in run.by_tag.get(tag, ()):
                            unit.rows.add(j, t, v)
                            run.dirty.add(unit.asset)
            now = time.monotonic()
            for run in self._running.values():
                every = run.dep.params.get("every_s") if scheduled else None
                if every and now < run.next_due:
                    continue
                if every:
                    run.next_due = now + float(every)
                self._score(run)

    def _score(self, run: Running, *, force: bool = False) -> None:
        """Score the ready rows of the assets that got points (of every asset when forced: the catch-up): gather
        each unit's new rows, predict, make the outputs, keep history and drift samples, write."""
        if not force and not run.dirty:
            return
        dirty, run.dirty = run.dirty, set()
        blocks, news = _gather(run, dirty, force=force)
        if not blocks:
            return
        try:
            unit_idx, decision, score = predict_units(run.pipe, run.columns, blocks)
        except Exception as exc:  # a model that fails on live data must not stop the other deployments
            run.last_error, run.error_at = f"{type(exc).__name__}: {exc}", time.time()
            log.warning("deployment %s/%s failed to score: %s", run.dep.tenant, run.dep.name, exc)
            return
        outs = model_outputs(run.pipe, decision, score)
        table, all_t = _outputs(run, news, blocks, outs)
        _keep(run, news, blocks, outs, len(unit_idx))
        self._write(run, table, all_t)

    def _write(self, run: Running, table: pa.Table, all_t: np.ndarray) -> None:
        """Write a batch's outputs, count it and tell the listeners; a refused write is the deployment's error."""
        try:
            self.historian.write_checked(run.dep.tenant, table)
        except TaehwaError as exc:
            run.last_error, run.error_at = f"cannot write outputs: {exc}", time.time()
            log.warning("deployment %s/%s cannot write outputs: %s", run.dep.tenant, run.dep.name, exc)
            return
        run.rows_scored += len(all_t)
        run.last_row_us = int(all_t.max()) if len(all_t) else run.last_row_us
        run.last_scored_at = time.time()
        for cb in self.on_scored:
            cb(run.dep.tenant, run, table)

    # -- what others ask ------------------------------------------------------------------------------------------
    def owner(self, tenant: str, tag: str) -> OutputOwner | None:
        """The deployment and model version whose output a tag is (for alert chains), or None."""
        run = self._owners.get((tenant, tag))
        if run is None:
            return None
        return {"deployment": run.dep.name, **run.info, "step_s": run.step_us / 1e6, "history_rows": run.need}

    def alarm_policy(self, tenant: str, tag: str) -> AlarmPolicy | None:
        """The calibrated alarm of the anomaly model whose score a tag is (for score rules without a value)."""
        run = self._owners.get((tenant, tag))
        if run is None or run.pipe.task != "anomaly" or not tag.endswith("/" + run.outputs.get("anomaly_score", "")):
            return None
        return run.alarm

    def runs(self) -> dict[tuple[str, str], Running]:
        with self._lock:
            return dict(self._running)

    def running(self, tenant: str, name: str) -> Running | None:
        return self._running.get((tenant, name))

    def status(self, tenant: str, name: str) -> ScorerStatus:
        """How a deployment is doing: assets scored and skipped, rows, the newest row, late points, last error."""
        run = self._running.get((tenant, name))
        if run is None:
            return {"running": False}
        return {
            "running": True,
            "model": run.info,
            "task": run.pipe.task,
            "assets": len(run.units),
            "skipped": run.skipped,
            "outputs": run.outputs,
            "step_s": run.step_us / 1e6,
            "rows_scored": run.rows_scored,
            "history_rows": run.need,
            "last_row": from_us(run.last_row_us).isoformat() if run.last_row_us is not None else None,
            "late_points": sum(u.rows.late for u in run.units.values()),
            "last_error": run.last_error,
            "error_at": from_us(int(run.error_at * 1e6)).isoformat() if run.error_at else None,
        }


def split_by_tag(table: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{tag: (times µs, values)} of a read, each in the order read (the historian reads in tag, time order)."""
    if table.num_rows == 0:
        return {}
    tags = table.column("tag").combine_chunks().dictionary_encode()
    codes = tags.indices.to_numpy(zero_copy_only=False)
    times = table.column("time").cast(pa.int64()).to_numpy()
    values = table.column("value").to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(tags.dictionary) + 1))
    return {
        str(tag): (times[order[bounds[k] : bounds[k + 1]]], values[order[bounds[k] : bounds[k + 1]]])
        for k, tag in enumerate(tags.dictionary.to_pylist())
    }


def history_blocks(
    historian: Historian,
    tenant: str,
    units: dict[str, list[str]],
    start_us: int,
    end_us: int,
    step_us: int,
    hold_us: int,
    need: int,
    known: set[str] | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Rows (asset, grid times, values[row, input]) of each asset over a past range, made exactly as live scoring
    makes them, beginning `need` rows before `start` (they feed the features of the first rows). `known`: the
    tenant's tags (those of `units` that never had data are left out)."""
    if known is None:
        known = set(historian.catalog.ids(tenant, refresh=True))
    all_tags = sorted({t for tags in units.values() for t in tags if t in known})
    lo = start_us - need * step_us - hold_us
    per_tag = split_by_tag(historian.read(tenant, all_tags, from_us(lo), from_us(end_us + 1))) if all_tags else {}
    empty = (np.empty(0, np.int64), np.empty(0))
    blocks = []
    for asset, tags in units.items():
        series = [sorted_series(*per_tag.get(tag, empty)) for tag in tags]
        grid = grid_between(
            start_us - need * step_us - step_us, end_us, step_us, phase_of([t for t, _ in series], step_us)
        )  # on the asset's own times
        times, rows = grid_rows(series, grid, hold_us)
        if len(times):
            blocks.append((asset, times, rows))
    return blocks


BACKFILL_CHUNK_ROWS = 50_000  # rows of one read-and-score step of a backfill


def score_chunk(
    shared: tuple[Pipeline, list[str], int], blocks: list[tuple[str, np.ndarray, np.ndarray]]
) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """One chunk of a backfill: (asset per row, times, outputs) of the rows at or after the range's start. A pure
    function of the model and the rows, so it runs in this process, a pool worker or a Ray task alike."""
    pipe, columns, start_us = shared
    _, decision, score = predict_units(pipe, columns, blocks)
    t = np.concatenate([t for _, t, _ in blocks])
    keep = t >= start_us
    a = np.repeat(np.array([a for a, _, _ in blocks], dtype=object), [len(t) for _, t, _ in blocks])
    return a[keep].tolist(), t[keep], {o: v[keep] for o, v in model_outputs(pipe, decision, score).items()}


def backfill_rows(
    historian: Historian,
    tenant: str,
    pipe: Pipeline,
    units: dict[str, list[str]],
    start_us: int,
    end_us: int,
    step_us: int,
    hold_us: int,
    need: int,
    *,
    backend: Backend = "serial",
) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """(asset per row, times, outputs) of a model over a past range, rows made exactly as live scoring makes them.

    Assets go in chunks of about `BACKFILL_CHUNK_ROWS` rows. In this process (`backend` serial) the next chunk is
    read from the historian while the model scores this one (DuckDB and the model's native code both let go of the
    GIL); over the process pool or Ray (`pool`, `ray`) this process reads chunks while the workers score them, the
    model shipped once per worker. Features are per asset, so chunking changes no output, nor does the backend."""
    columns = required_columns(pipe)
    known = set(historian.catalog.ids(tenant, refresh=True))
    per_asset = (end_us - start_us) // step_us + need + 2
    size = max(1, BACKFILL_CHUNK_ROWS // per_asset)
    names = list(units)
    chunks = [{a: units[a] for a in names[i : i + size]} for i in range(0, len(names), size)]
    shared = (pipe, columns, start_us)
    assets: list[str] = []
    times: list[np.ndarray] = []
    outs: dict[str, list[np.ndarray]] = {}

    def keep(part: tuple[list[str], np.ndarray, dict[str, np.ndarray]]) -> None:
        assets.extend(part[0])
        times.append(part[1])
        for o, v in part[2].items():
            outs.setdefault(o, []).append(v)

    def blocks_of(chunk: dict[str, list[str]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return history_blocks(historian, tenant, chunk, start_us, end_us, step_us, hold_us, need, known)

    if backend != "serial":
        read = (b for b in map(blocks_of, chunks) if b)
        for part in run_stream(score_chunk, read, shared, backend=backend):
            keep(part)
    else:
        with ThreadPoolExecutor(1, thread_name_prefix="backfill-read") as pool:

            def ahead(chunk: dict[str, list[str]]) -> Future[list[tuple[str, np.ndarray, np.ndarray]]]:
                return pool.submit(contextvars.copy_context().run, blocks_of, chunk)

            pending = ahead(chunks[0]) if chunks else None
            for k in range(len(chunks)):
                assert pending is not None
                blocks = pending.result()
                pending = ahead(chunks[k + 1]) if k + 1 < len(chunks) else None
                if blocks:
                    keep(score_chunk(shared, blocks))
    if not times:
        return [], np.empty(0, np.int64), {}
    return assets, np.concatenate(times), {o: np.concatenate(v) for o, v in outs.items()}
