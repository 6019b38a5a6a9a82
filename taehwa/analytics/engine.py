"""Live analytics: calculated signals and event frames computed as points arrive.

Points reach it through the historian's write listener (the one funnel every write passes, as for the twin and the
live scorer) and are only queued there; one background thread merges them into per-tag buffers and, for every asset
whose inputs moved, makes rows up to its watermark (the oldest newest-point of its inputs: a row is computed once
every input has reached it, so inputs written in separate writes give the same result as one write), evaluates each
group of calculated signals over all its assets in one pass, writes the points in one write, and advances the event
scans. A point older than what was computed from (late) has the range recomputed from the historian.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.analytics.backfill import BackfillReport, backfill_group
from taehwa.analytics.compute import EMPTY, Memo, Rows, Series, union_rows
from taehwa.analytics.frames import Change, ScanState
from taehwa.analytics.program import Program, ProgramCache
from taehwa.analytics.runner import run_rows
from taehwa.analytics.series import merge, split, trim
from taehwa.core.errors import TaehwaError
from taehwa.core.tagbatch import TagIndex
from taehwa.tenancy.access import SYSTEM, acting_as

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from taehwa.analytics.recorder import EventRecorder
    from taehwa.analytics.records import AnalyticsStatus
    from taehwa.historian.store import Historian
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.model import Plant
    from taehwa.twin.service import TwinService

log = logging.getLogger(__name__)


@dataclass
class TenantRun:
    """One tenant's program as the engine runs it."""

    prog: Program
    plant_id: int
    by_tag: dict[str, list[tuple[int, str]]]  # input tag → (group index, asset)
    tag_index: TagIndex
    type_of: dict[str, str]
    buffers: dict[str, Series] = field(default_factory=dict)
    done: dict[tuple[int, str], int | None] = field(default_factory=dict)
    states: dict[int, dict[tuple[str, str], ScanState]] = field(default_factory=dict)
    late: dict[tuple[int, str], int] = field(default_factory=dict)
    lineage_done: set[str] = field(default_factory=set)
    points_written: int = 0
    last_error: str | None = None


def make_run(prog: Program, plant_id: int, latest: dict[str, int]) -> TenantRun:
    """A run of a program; each asset's calculated signals resume after their newest written point."""
    by_tag: dict[str, list[tuple[int, str]]] = {}
    run_done: dict[tuple[int, str], int | None] = {}
    for gi, g in enumerate(prog.groups):
        for a in g.assets:
            for tag in g.inputs[a]:
                by_tag.setdefault(tag, []).append((gi, a))
            outs = [prog.binder.tag(a, c.signal) for c in g.calcs]
            times = [latest.get(t) for t in outs if t is not None]
            run_done[(gi, a)] = min(times) if times and all(x is not None for x in times) else None  # type: ignore[type-var]
    return TenantRun(
        prog,
        plant_id,
        by_tag,
        TagIndex(sorted(by_tag)),
        {p: a.type for p, a in prog.plant.assets.items()},
        done=run_done,
    )


def _memo_for(memos: list[tuple[Rows, Memo]], rows: Rows) -> Memo:
    """The values already computed on the same rows this step: groups of one type that read different inputs
    sampled together have the same rows, and each input is taken as of them once, not once per group."""
    for seen, memo in memos:
        if seen.assets == rows.assets and np.array_equal(seen.t, rows.t) and np.array_equal(seen.inst, rows.inst):
            return memo
    memo = {}
    memos.append((rows, memo))
    return memo


class LiveAnalytics:
    """Runs every tenant's analytics in one background thread."""

    def __init__(
        self,
        *,
        historian: Historian,
        twin: TwinService,
        tenants: TenantService,
        recorder: EventRecorder,
        programs: ProgramCache | None = None,
        lineage: bool = True,
        refresh_s: float = 2.0,
        after_step: Sequence[Callable[[], None]] = (),
    ) -> None:
        """The historian (points in, points out), the twin (each tenant's plant), the tenant book (whose programs
        run), the event recorder, the programs (shared with the service; its own when not given); `lineage`:
        record each calculated tag's expression, version and inputs in its tag metadata; `after_step`: calls made
        in this thread after each step (the live comparison to references scores then)."""
        self.after_step = tuple(after_step)
        self.historian, self.twin, self.tenants, self.recorder = historian, twin, tenants, recorder
        self.lineage, self.refresh_s = lineage, refresh_s
        self.programs = programs if programs is not None else ProgramCache()
        self._queue: queue.SimpleQueue[tuple[str, pa.Table]] = queue.SimpleQueue()
        self._runs: dict[str, TenantRun] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_refresh = 0.0
        self.on_written: list[Callable[[str, pa.Table], None]] = []  # callbacks(tenant, points), for tests
        self.max_step_points = 5_000
        """A step takes queued writes up to this many points: an engine that fell behind catches up by steps whose
        outputs stay small writes (buffered, their tags' answers cached), not one that goes straight to day files."""
        historian.add_listener(self._on_points)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background thread."""
        if self._thread is None:
            self.refresh(force=True)
            self._thread = threading.Thread(target=self._loop, name="analytics", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _on_points(self, tenant: str, points: pa.Table) -> None:
        if tenant in self._runs:
            self._queue.put((tenant, points))

    def _loop(self) -> None:
        while not self._stop.is_set():
            batch = []
            try:
                batch.append(self._queue.get(timeout=0.05))
                taken = batch[0][1].num_rows
                while taken < self.max_step_points:
                    batch.append(self._queue.get_nowait())
                    taken += batch[-1][1].num_rows
            except queue.Empty:
                pass
            try:
                with acting_as(SYSTEM):
                    if time.monotonic() - self._last_refresh > self.refresh_s:
                        self.refresh()
                        self.close_overdue(time.time_ns() // 1000)
                    self.step(batch)
                    self._after_step()
            except Exception:
                log.exception("live analytics failed")

    def _after_step(self) -> None:
        for call in self.after_step:
            try:
                call()
            except Exception:
                log.exception("live analytics: %s failed after a step", getattr(call, "__qualname__", call))

    def drain(self) -> None:
        """Process what is queued now, in the caller's thread (tests, and callers that need outputs at once)."""
        batch = []
        try:
            while True:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        with acting_as(SYSTEM):
            self.step(batch)
            self._after_step()

    # -- programs -----------------------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Follow the tenants' plant models (a new model rebuilds the tenant's program)."""
        self._last_refresh = time.monotonic()
        with acting_as(SYSTEM):
            active = self.historian.leases.active
            for tenant in self.tenants.list():
                if not active(tenant.id):
                    continue
                try:
                    plant = self.twin.plant(tenant.id)
                except TaehwaError:
                    continue
                run = self._runs.get(tenant.id)
                if run is not None and run.plant_id == id(plant) and not force:
                    continue
                self.install(tenant.id, plant)

    def install(self, tenant: str, plant: Plant) -> TenantRun | None:
        """(Re)build a tenant's program from its plant (None when it has no analytics)."""
        prog, err = self.programs.get(tenant, plant)
        if prog is None:
            log.warning("tenant %s: analytics not run: %s", tenant, err)
            with self._lock:
                self._runs.pop(tenant, None)
            return None
        if not prog.groups:
            with self._lock:
                self._runs.pop(tenant, None)
            return None
        with acting_as(SYSTEM):
            latest = self.historian.latest(tenant)
        times = latest.column("time").cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
        last = dict(zip(latest.column("tag").to_pylist(), times, strict=True))
        run = make_run(prog, id(plant), {t: last[t] for t in prog.outputs if t in last})
        with self._lock:
            self._runs[tenant] = run
        return run

    def run_of(self, tenant: str) -> TenantRun | None:
        """The tenant's run, if its plant has analytics."""
        return self._runs.get(tenant)

    # -- computing ------------------------------------------------------------------------------------------------
    def step(self, batch: list[tuple[str, pa.Table]]) -> None:
        """Take in a batch of writes and compute what they make computable."""
        dirty: dict[str, set[tuple[int, str]]] = {}
        for tenant, table in batch:
            run = self._runs.get(tenant)
            if run is None:
                continue
            mine = run.tag_index.codes(table.column("tag")) >= 0
            if not mine.any():
                continue
            if not mine.all():
                table = table.filter(pa.array(mine))
            marks = dirty.setdefault(tenant, set())
            for tag, new in split(table).items():
                merged, late = merge(run.buffers.get(tag, EMPTY), new)
                run.buffers[tag] = merged
                keys = run.by_tag.get(tag, ())
                marks.update(keys)
                if late is None:  # in order (the common case): nothing to recompute
                    continue
                for key in keys:
                    done = run.done.get(key)
                    if done is not None and late <= done:
                        run.late[key] = min(run.late.get(key, late), late)
        for tenant, marks in dirty.items():
            run = self._runs.get(tenant)
            if run is not None:
                try:
                    self._compute(tenant, run, marks)
                    run.last_error = None
                except TaehwaError as exc:
                    run.last_error = str(exc)
                    log.warning("tenant %s: analytics step failed: %s", tenant, exc)

    def _compute(self, tenant: str, run: TenantRun, marks: set[tuple[int, str]]) -> None:
        prog = run.prog
        by_group: dict[int, list[str]] = {}
        for gi, a in marks:
            by_group.setdefault(gi, []).append(a)
        tables: list[pa.Table] = []
        changes: list[tuple[str, str, Change]] = []
        memos: list[tuple[Rows, Memo]] = []
        read: set[str] = set()  # the input tags of the rows computed, trimmed once all groups are done
        for gi, assets in sorted(by_group.items()):
            g = prog.groups[gi]
            sel, inputs, lows, after, until = [], [], [], [], []
            buffers, run_done = run.buffers, run.done
            for a in sorted(assets):
                series = [buffers.get(t, EMPTY) for t in g.inputs[a]]
                lasts = [s[0][-1] for s in series if len(s[0])]
                if not lasts:
                    continue
                wm = int(min(lasts))
                done = run_done.get((gi, a))
                if done is not None and wm <= done:
                    continue
                sel.append(a)
                inputs.append(series)
                lows.append(None if done is None else done - g.history_us)
                after.append(done)
                until.append(wm)
            if not sel:
                continue
            rows = union_rows(sel, inputs, lows, until)
            res = run_rows(
                g,
                rows,
                after,
                prog.binder,
                lambda tag: run.buffers.get(tag, EMPTY),
                run.states.setdefault(gi, {}),
                until=until,
                memo=_memo_for(memos, rows),
            )
            tables.extend(res.points)
            changes.extend(res.changes)
            for a, wm in zip(sel, until, strict=True):
                run.done[(gi, a)] = wm
            read.update(t for a in sel for t in g.inputs[a])
        self._trim(run, read)
        table = pa.concat_tables(tables).combine_chunks() if tables else None  # one chunk for every listener
        if table is not None and table.num_rows:
            if self.lineage:
                self._record_lineage(tenant, run, table)
            self.historian.write_checked(tenant, table)
            run.points_written += table.num_rows
            for cb in self.on_written:
                cb(tenant, table)
        if changes:
            self.recorder.record(tenant, prog, run.type_of, changes)
        if run.late:
            self._recompute_late(tenant, run)

    def _trim(self, run: TenantRun, tags: set[str]) -> None:
        """Drop from the tags' buffers the points no group of theirs still needs (once a buffer has 64 or more)."""
        for tag in tags:
            s = run.buffers.get(tag)
            if s is None or len(s[0]) < 64:
                continue
            keep = min(
                ((run.done.get(k) or 0) - run.prog.groups[k[0]].history_us for k in run.by_tag.get(tag, ())),
                default=0,
            )
            run.buffers[tag] = trim(s, keep)

    def _recompute_late(self, tenant: str, run: TenantRun) -> None:
        late, run.late = run.late, {}
        report = BackfillReport()
        by_group: dict[int, list[tuple[str, int]]] = {}
        for (gi, a), t in late.items():
            by_group.setdefault(gi, []).append((a, t))
        for gi, items in by_group.items():
            g = run.prog.groups[gi]
            start = min(t for _, t in items)
            end = max(run.done.get((gi, a)) or t for a, t in items) + 1
            backfill_group(
                self.historian, tenant, run.prog, g, [a for a, _ in items], start, end, report=report, templates=False
            )
        log.info("tenant %s: %d points recomputed after late inputs", tenant, report.points)

    def _record_lineage(self, tenant: str, run: TenantRun, table: pa.Table) -> None:
        names = pc.unique(table.column("tag")).to_pylist()
        for tag in names:
            if tag in run.lineage_done:
                continue
            run.lineage_done.add(tag)
            got = run.prog.outputs.get(tag)
            if got is None:
                continue
            asset, calc = got
            want = calc.lineage(
                [t for gi, g in enumerate(run.prog.groups) if calc in g.calcs for t in g.inputs.get(asset, [])]
            )
            try:
                if tag in self.historian.catalog.ids(tenant):
                    info = self.historian.tag(tenant, tag)
                    if info.attributes.get("lineage") == want:
                        continue
                    attrs = {**info.attributes, "lineage": want}
                else:
                    attrs = {"lineage": want}
                changes: dict[str, Any] = {"attributes": attrs, "description": f"calculated: {calc.expr}"[:500]}
                if calc.unit is not None:
                    changes["unit"] = calc.unit
                self.historian.set_tag(tenant, tag, changes)
            except TaehwaError as exc:
                log.warning("tenant %s: lineage of %s not recorded: %s", tenant, tag, exc)

    def close_overdue(self, now_us: int) -> int:
        """Close, at start + max_duration, every open event whose maximum duration has passed by the clock while no
        data came to close it (a dead input must not keep an event open forever); returns how many."""
        closed = 0
        for tenant, run in list(self._runs.items()):
            changes: list[tuple[str, str, Change]] = []
            for gi, states in run.states.items():
                g = run.prog.groups[gi]
                for (asset, name), st in states.items():
                    tp = next((t for t in g.templates if t.name == name), None)
                    if tp is None or st.start is None or now_us - st.start < tp.max_us:
                        continue
                    changes.append((asset, name, Change(st.start, st.start + tp.max_us, "max_duration")))
                    st.start = st.true_since = None
                    st.armed = False
            if changes:
                self.recorder.record(tenant, run.prog, run.type_of, changes)
                closed += len(changes)
        return closed

    def status(self, tenant: str) -> AnalyticsStatus:
        """What the engine runs for a tenant."""
        run = self._runs.get(tenant)
        if run is None:
            return {"running": False, "groups": 0, "calculated_tags": 0, "templates": 0}
        return {
            "running": True,
            "groups": len(run.prog.groups),
            "calculated_tags": len(run.prog.outputs),
            "templates": len(run.prog.templates),
            "inputs": len(run.by_tag),
            "points_written": run.points_written,
            "last_error": run.last_error,
            "buffered_points": int(sum(len(s[0]) for s in run.buffers.values())),
            "queued": self._queue.qsize(),
            "at": None if not run.done else int(np.max([d for d in run.done.values() if d is not None] or [0])),
        }
