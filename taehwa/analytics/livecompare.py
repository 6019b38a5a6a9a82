"""Comparison to a reference, live: every open event of a template that declares `reference: {signal, output}` and
has a reference profile set (a golden event, or the median of chosen events, with a band) is scored as the points of
its signal arrive: at each point, its deviation from the profile's median at the same time since the event's start
is written to the asset's `output` tag, an ordinary tag the twin shows in its live state. At close the event keeps a
summary (steps scored, share outside the band, largest deviation) in its `info.reference`.

Points reach it through the historian's write listener (only queued there) and are scored in the live analytics
thread after each step (so the events that step opened are known); an event that opens catches up from the
historian from its start, and one that closes is finished from the historian up to its end. Past the profile's end
(an event longer than its reference) or where the profile has no value, the point is bad-quality, not a crash.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlalchemy import Engine, delete, insert, select

from taehwa.analytics.program import Program
from taehwa.analytics.records import ReferenceSummary, Scoring
from taehwa.analytics.reference import Profile
from taehwa.analytics.series import split
from taehwa.analytics.store import EventStore
from taehwa.core.errors import NotFound, TaehwaError
from taehwa.core.tagbatch import TagIndex
from taehwa.core.timeutil import from_us
from taehwa.db import analytics_references as refs
from taehwa.historian.schema import STORE_SCHEMA, Quality

if TYPE_CHECKING:
    from taehwa.historian.store import Historian

log = logging.getLogger(__name__)


class ReferenceStore:
    """Reference profiles of event templates, one per (tenant, type, template), in the metadata database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(
        self,
        tenant: str,
        type_name: str,
        template: str,
        signal: str,
        events: list[str],
        profile: Profile,
        band: float,
        actor: str,
    ) -> None:
        """Store (or replace) a template's reference."""
        row = {
            "tenant": tenant,
            "type": type_name,
            "template": template,
            "signal": signal,
            "events": events,
            "step_us": profile.step_us,
            "band": float(band),
            "profile": {k: _nums(getattr(profile, k)) for k in ("median", "low", "high")},
            "created_by": actor,
            "created_at": datetime.now(UTC),
        }
        with self.engine.begin() as c:
            c.execute(
                delete(refs).where(refs.c.tenant == tenant, refs.c.type == type_name, refs.c.template == template)
            )
            c.execute(insert(refs).values(**row))

    def get(self, tenant: str, type_name: str, template: str) -> dict[str, Any] | None:
        """A template's reference, its profile as arrays (None when none is set)."""
        with self.engine.connect() as c:
            r = c.execute(
                select(refs).where(refs.c.tenant == tenant, refs.c.type == type_name, refs.c.template == template)
            ).first()
        if r is None:
            return None
        m = r._mapping
        prof = m["profile"]
        arrays = {k: np.array([np.nan if x is None else x for x in prof[k]], np.float64) for k in prof}
        return {
            "type": m["type"],
            "template": m["template"],
            "signal": m["signal"],
            "events": list(m["events"]),
            "step_us": int(m["step_us"]),
            "band": float(m["band"]),
            "created_by": m["created_by"],
            "created_at": m["created_at"],
            "profile": Profile(int(m["step_us"]), arrays["median"], arrays["low"], arrays["high"], len(m["events"])),
        }

    def all(self, tenant: str) -> list[ReferenceSummary]:
        """The tenant's references, without their profiles."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(
                    refs.c.type,
                    refs.c.template,
                    refs.c.signal,
                    refs.c.events,
                    refs.c.step_us,
                    refs.c.band,
                    refs.c.created_by,
                )
                .where(refs.c.tenant == tenant)
                .order_by(refs.c.type, refs.c.template)
            ).all()
        return [
            {
                "type": r.type,
                "template": r.template,
                "signal": r.signal,
                "events": list(r.events),
                "step_s": r.step_us / 1e6,
                "band": r.band,
                "created_by": r.created_by,
            }
            for r in rows
        ]

    def tenants(self) -> list[str]:
        """The tenants that have a reference."""
        with self.engine.connect() as c:
            return list(c.execute(select(refs.c.tenant).distinct()).scalars())

    def delete(self, tenant: str, type_name: str, template: str) -> None:
        """Remove a template's reference (NotFound when it has none)."""
        with self.engine.begin() as c:
            n = c.execute(
                delete(refs).where(refs.c.tenant == tenant, refs.c.type == type_name, refs.c.template == template)
            ).rowcount
        if not n:
            raise NotFound(f"event template {type_name}.{template} has no reference", where="template")


def _nums(a: np.ndarray) -> list[float | None]:
    return [float(x) if np.isfinite(x) else None for x in a]


@dataclass
class Watch:
    """One open event being scored."""

    tenant: str
    event_id: str
    asset: str
    label: str  # Type.template
    start: int
    in_tag: str
    out_tag: str
    profile: Profile
    done: int  # µs: points up to here are scored
    end: int | None = None
    steps: int = 0
    outside: int = 0
    max_abs: float = 0.0

    def summary(self) -> Scoring:
        """Where the event stands against its reference."""
        return {
            "event": self.event_id,
            "asset": self.asset,
            "template": self.label,
            "output": self.out_tag,
            "steps": self.steps,
            "outside_share": round(self.outside / self.steps, 4) if self.steps else None,
            "max_abs_deviation": self.max_abs if self.steps else None,
            "profile_events": self.profile.events,
        }


class LiveComparison:
    """Scores open events against their template's reference as points arrive."""

    def __init__(
        self,
        *,
        historian: Historian,
        events: EventStore,
        references: ReferenceStore,
        program_of: Callable[[str], Program | None],
        listen: bool = True,
    ) -> None:
        """The historian (points in and out), the event store (summaries at close), the references, and each
        tenant's analytics program (which templates declare a reference, which tags an asset's signals are);
        `listen`: follow writes (a server), or only rescore past events when asked (a backfill without one)."""
        self.historian, self.events, self.references, self.program_of = historian, events, references, program_of
        self._pending: list[tuple[str, str, str, str, int | None, int | None]] = []  # tenant, id, asset, tp, s, e
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, pa.Table]] = queue.SimpleQueue()
        self._watches: dict[str, Watch] = {}  # event id → watch
        self._by_tag: dict[tuple[str, str], set[str]] = {}  # (tenant, input tag) → event ids
        self._tenants: dict[str, int] = {}  # tenant → watches
        self._started = False
        self._lineage_done: set[tuple[str, str]] = set()
        if listen:
            historian.add_listener(self._on_points)

    # -- what the other parts tell it ----------------------------------------------------------------------------
    def opened(self, tenant: str, event_id: str, asset: str, template: str, start_us: int) -> None:
        """An event opened (scored from its start if its template has a reference)."""
        with self._lock:
            self._pending.append((tenant, event_id, asset, template, int(start_us), None))

    def closed(self, tenant: str, event_id: str, end_us: int) -> None:
        """An event closed (scored up to its end, then summarised)."""
        with self._lock:
            self._pending.append((tenant, event_id, "", "", None, int(end_us)))

    def _on_points(self, tenant: str, points: pa.Table) -> None:
        if self._tenants.get(tenant):
            self._queue.put((tenant, points))

    # -- scoring --------------------------------------------------------------------------------------------------
    def resume(self, tenant: str) -> None:
        """Take up the tenant's open events (after a restart, or ones opened by another process)."""
        try:
            rows = self.events.open_events(tenant)
        except TaehwaError as exc:
            log.warning("tenant %s: open events not resumed for live comparison: %s", tenant, exc)
            return
        for r in rows:
            if r["id"] not in self._watches:
                self.opened(tenant, r["id"], r["asset"], r["template"], r["start_us"])

    def drain(self) -> int:
        """Score what came since the last call; returns the deviation points written."""
        with self._lock:
            pending, self._pending = self._pending, []
        batch = []
        try:
            while True:
                batch.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        out: dict[str, list[pa.Table]] = {}
        ends = {eid: end for _, eid, _, _, start, end in pending if start is None}
        for tenant, eid, asset, template, start, _ in pending:
            if start is not None and (w := self._watch(tenant, eid, asset, template, start)) is not None:
                w.end = ends.get(eid)
                self._catch_up(w, out)
        for eid, end in ends.items():
            if (w := self._watches.get(eid)) is not None:
                w.end = end
        watched: dict[str, TagIndex] = {}
        for tenant, table in batch:
            if tenant not in watched:
                watched[tenant] = TagIndex(tag for (t, tag) in self._by_tag if t == tenant)
            keep = watched[tenant].codes(table.column("tag")) >= 0
            if not keep.any():
                continue
            for tag, (t, v, q) in split(table.filter(pa.array(keep))).items():
                for eid in list(self._by_tag.get((tenant, tag), ())):
                    w = self._watches[eid]
                    if w.end is None:
                        self._score(w, t, v, q, out)
        for w in [w for w in self._watches.values() if w.end is not None]:
            self._catch_up(w, out)
            self._finish(w)
        return self._write(out)

    def rescore(self, tenant: str, rows: list[Any]) -> int:
        """Score closed events again from the historian and keep their summaries (a backfill: a reference set
        after they closed, points that came late, a profile changed); events being scored live are left to it.
        Returns the deviation points written."""
        out: dict[str, list[pa.Table]] = {}
        done: list[Watch] = []
        for r in rows:
            if r["end_us"] is None or r["id"] in self._watches:
                continue
            w = self._make_watch(tenant, r["id"], r["asset"], r["template"], int(r["start_us"]))
            if w is None:
                continue
            w.end = int(r["end_us"])
            self._catch_up(w, out)
            self._annotate(w)
            done.append(w)
        return self._write(out, done)

    def _make_watch(self, tenant: str, eid: str, asset: str, template: str, start: int) -> Watch | None:
        """A watch of an event whose template has a reference set (None otherwise), not yet followed."""
        prog = self.program_of(tenant)
        a = prog.plant.assets.get(asset) if prog is not None else None
        tp = prog.templates.get((a.type, template)) if prog is not None and a is not None else None
        if prog is None or a is None or tp is None or tp.reference is None:
            return None
        got = self.references.get(tenant, a.type, template)
        in_tag, out_tag = prog.binder.tag(asset, tp.reference.signal), prog.binder.tag(asset, tp.reference.output)
        if got is None or in_tag is None or out_tag is None:
            return None
        return Watch(tenant, eid, asset, f"{a.type}.{template}", start, in_tag, out_tag, got["profile"], start - 1)

    def _watch(self, tenant: str, eid: str, asset: str, template: str, start: int) -> Watch | None:
        if eid in self._watches:
            return None
        w = self._make_watch(tenant, eid, asset, template, start)
        if w is None:
            return None
        self._watches[eid] = w
        self._by_tag.setdefault((tenant, w.in_tag), set()).add(eid)
        self._tenants[tenant] = self._tenants.get(tenant, 0) + 1
        return w

    def _catch_up(self, w: Watch, out: dict[str, list[pa.Table]]) -> None:
        """Score what the historian holds after the watch's mark (up to its end when closed)."""
        hi = w.end if w.end is not None else 2**62
        try:
            if w.in_tag not in set(self.historian.catalog.ids(w.tenant)):
                return
            got = split(self.historian.read(w.tenant, [w.in_tag], from_us(w.done + 1), from_us(min(hi + 1, 2**52))))
        except (TaehwaError, OverflowError, ValueError) as exc:
            log.warning("tenant %s: reference comparison of %s not caught up: %s", w.tenant, w.event_id, exc)
            return
        if w.in_tag in got:
            t, v, q = got[w.in_tag]
            self._score(w, t, v, q, out)

    def _score(self, w: Watch, t: np.ndarray, v: np.ndarray, q: np.ndarray, out: dict[str, list[pa.Table]]) -> None:
        keep = (t > w.done) & (t >= w.start)
        if w.end is not None:
            keep &= t <= w.end
        if not keep.any():
            return
        t, v, q = t[keep], v[keep], q[keep]
        p = w.profile
        k = (t - w.start) // p.step_us
        inside = k < len(p.median)
        kk = np.where(inside, k, 0)
        med = np.where(inside, p.median[kk], np.nan)
        dev = v - med
        good = np.isfinite(dev) & (q < Quality.BAD)
        quality = np.where(good, q, Quality.BAD).astype(np.uint8)
        if good.any():
            d = dev[good]
            outside = (v[good] < p.low[kk][good]) | (v[good] > p.high[kk][good])
            w.steps += int(good.sum())
            w.outside += int(outside.sum())
            w.max_abs = max(w.max_abs, float(np.max(np.abs(d))))
        w.done = int(t[-1])
        out.setdefault(w.tenant, []).append(
            pa.table(
                {
                    "tag": pa.array([w.out_tag] * len(t), pa.string()),
                    "time": pa.array(t, pa.int64()).cast(pa.timestamp("us")),
                    "value": pa.array(np.where(good, dev, 0.0), pa.float64()),
                    "quality": pa.array(quality, pa.uint8()),
                },
                schema=STORE_SCHEMA,
            )
        )

    def _finish(self, w: Watch) -> None:
        self._watches.pop(w.event_id, None)
        ids = self._by_tag.get((w.tenant, w.in_tag))
        if ids is not None:
            ids.discard(w.event_id)
            if not ids:
                self._by_tag.pop((w.tenant, w.in_tag), None)
        self._tenants[w.tenant] = self._tenants.get(w.tenant, 1) - 1
        self._annotate(w)

    def _annotate(self, w: Watch) -> None:
        try:
            self.events.annotate(w.tenant, w.event_id, "reference", w.summary())
        except TaehwaError as exc:  # deleted meanwhile (a label removed): nothing to keep
            log.info("tenant %s: reference summary of %s not kept: %s", w.tenant, w.event_id, exc)

    def _write(self, out: dict[str, list[pa.Table]], watches: list[Watch] | None = None) -> int:
        written = 0
        for tenant, tables in out.items():
            table = pa.concat_tables(tables)
            try:
                self._lineage(tenant, [*self._watches.values(), *(watches or [])])
                self.historian.write_checked(tenant, table)
                written += table.num_rows
            except TaehwaError as exc:
                log.warning("tenant %s: reference deviations not written: %s", tenant, exc)
        return written

    def _lineage(self, tenant: str, watches: list[Watch]) -> None:
        """Each deviation tag says once what it is (in its tag metadata), like a calculated signal's lineage."""
        for w in watches:
            key = (tenant, w.out_tag)
            if w.tenant != tenant or key in self._lineage_done:
                continue
            self._lineage_done.add(key)
            lineage = {"calculated": True, "reference": w.label, "signal": w.in_tag, "inputs": [w.in_tag]}
            try:
                known = w.out_tag in self.historian.catalog.ids(tenant)
                attrs = self.historian.tag(tenant, w.out_tag).attributes if known else {}
                if attrs.get("lineage") != lineage:
                    self.historian.set_tag(
                        tenant,
                        w.out_tag,
                        {
                            "attributes": {**attrs, "lineage": lineage},
                            "description": f"deviation of {w.in_tag} from the reference of {w.label}"[:500],
                        },
                    )
            except TaehwaError as exc:
                log.warning("tenant %s: lineage of %s not recorded: %s", tenant, w.out_tag, exc)

    def watching(self, tenant: str) -> list[Scoring]:
        """The tenant's open events being scored, with where each stands."""
        return [w.summary() for w in list(self._watches.values()) if w.tenant == tenant]

    def tick(self) -> None:
        """The live analytics thread's call after each step: at the first, take up the open events of every tenant
        with a reference; then score what came."""
        if not self._started:
            self._started = True
            try:
                for tenant in self.references.tenants():
                    self.resume(tenant)
            except TaehwaError as exc:
                log.warning("open events not resumed for live comparison: %s", exc)
        self.drain()
