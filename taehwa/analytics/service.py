"""The analytics service: one entry for the API, the CLI and Python to check expressions, list a plant's calculated
signals and event templates, try an expression on an asset, backfill a range, search and open/close event frames,
and run the data-quality checks. Every call checks the caller's permission on the tenant first."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine

from taehwa.analytics.backfill import DAY_US, BackfillReport, backfill_group, read_inputs
from taehwa.analytics.compute import EMPTY, Rows, evaluate, union_times
from taehwa.analytics.engine import LiveAnalytics
from taehwa.analytics.livecompare import LiveComparison, ReferenceStore
from taehwa.analytics.plan import Resolver, history_us
from taehwa.analytics.program import PlantBinder, Program, ProgramCache, Template, build, check_plant
from taehwa.analytics.quality import ArrivalWatch, Thresholds, check_series, figure, finding_dict
from taehwa.analytics.recorder import EventRecorder
from taehwa.analytics.records import (
    AnalyticsStatus,
    AssetQuality,
    BackfillResult,
    Calculation,
    ConditionTemplate,
    EvalResult,
    EventComparison,
    EventFrame,
    EventSearch,
    Lineage,
    PlantCheck,
    QualityReport,
    ReferenceSummary,
    ReferenceView,
    RefSpec,
    Scoring,
    SourcedTemplate,
    TagQuality,
)
from taehwa.analytics.reference import MAX_STEPS, build_profile, compare, on_grid
from taehwa.analytics.sources import SourcedEvents
from taehwa.analytics.store import EventStore, parse_filter
from taehwa.core.errors import InvalidInput, NotFound, TaehwaError, ValidationFailed
from taehwa.core.timeutil import from_us, parse_duration, to_us
from taehwa.core.yamlio import load_yaml
from taehwa.tenancy.access import current
from taehwa.twin.model import Plant, parse_document

if TYPE_CHECKING:
    from taehwa.historian.store import Historian
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService

MAX_RANGE_US = 400 * DAY_US
"""Longest backfill or quality range in one call."""
MAX_EVAL_POINTS = 100_000
"""Most points an ad hoc evaluation returns."""


class AnalyticsService:
    """Calculated signals, event frames and data quality of every tenant."""

    def __init__(
        self,
        *,
        engine: Engine,
        historian: Historian,
        twin: TwinService,
        tenants: TenantService,
        audit: AuditLog,
        live: bool = True,
        lineage: bool = True,
    ) -> None:
        """The metadata engine (events), the historian, the twin (plants), tenancy and the audit log; `live`:
        follow writes (a server), or only answer calls (a CLI reader)."""
        self.historian, self.twin, self.tenants, self.audit = historian, twin, tenants, audit
        self.events = EventStore(engine)
        self.references = ReferenceStore(engine)
        self.arrivals = ArrivalWatch()
        self.programs = ProgramCache()
        self._last_sweep = 0.0
        self.comparison: LiveComparison | None = None
        self.live: LiveAnalytics | None = None
        if live:
            self.comparison = LiveComparison(
                historian=historian, events=self.events, references=self.references, program_of=self._program_of
            )
        # a backfill rescores past events against their references, with the live comparison or, without one,
        # a comparison that only answers that
        self.rescorer = self.comparison or LiveComparison(
            historian=historian,
            events=self.events,
            references=self.references,
            program_of=self._program_of,
            listen=False,
        )
        self.recorder = EventRecorder(historian, self.events, self.comparison)
        self.sources = SourcedEvents(
            engine=engine,
            events=self.events,
            recorder=self.recorder,
            program_of=self._program_of,
            tenant_ids=lambda: [t.id for t in tenants.list()],
        )
        if live:
            self.live = LiveAnalytics(
                historian=historian,
                twin=twin,
                tenants=tenants,
                recorder=self.recorder,
                programs=self.programs,
                lineage=lineage,
                after_step=(self._tick,),
            )
            historian.add_listener(self.arrivals.feed)

    def start(self) -> None:
        """Start live computation (the server calls this)."""
        if self.live is not None:
            self.live.start()

    def close(self) -> None:
        """Stop live computation."""
        if self.live is not None:
            self.live.close()

    # -- programs -----------------------------------------------------------------------------------------------
    def program(self, tenant: str) -> Program:
        """The tenant's analytics as built from its current plant."""
        self.tenants.require(tenant)
        prog = self._program_of(tenant)
        return prog if prog is not None else build(self.twin.plant(tenant))

    def _program_of(self, tenant: str) -> Program | None:
        """The tenant's program, kept until its plant changes (None when the plant cannot be read or built); no
        permission check: for the parts that act as the system (alerts, labels, the live comparison)."""
        try:
            plant = self.twin.plant(tenant)
        except TaehwaError:
            return None
        return self.programs.get(tenant, plant)[0]

    def _tick(self) -> None:
        """After each live step: score running events against their references; every 2 s, close the alert and
        label events whose span or maximum duration has passed."""
        if self.comparison is not None:
            self.comparison.tick()
        if time.monotonic() - self._last_sweep >= 2.0:
            self._last_sweep = time.monotonic()
            self.sources.close_due(time.time_ns() // 1000)

    def check(self, text: str | bytes, *, source: str = "plant.yaml") -> PlantCheck:
        """Check a plant file's analytics without loading it: every problem with its file and line."""
        try:
            plant = parse_document(load_yaml(text, source=source), source=source)
        except ValidationFailed as exc:
            return {"ok": False, "problems": [{"where": w, "problem": p} for w, p in exc.problems]}
        problems = check_plant(plant)
        prog = None if problems else build(plant)
        return {
            "ok": not problems,
            "problems": [{"where": w, "problem": p} for w, p in problems],
            "calculated_signals": 0 if prog is None else len(prog.outputs),
            "templates": 0 if prog is None else len(prog.templates),
        }

    def calculations(self, tenant: str) -> list[Calculation]:
        """Every calculated signal and event template of the tenant's plant, with how many assets run it."""
        prog = self.program(tenant)
        out: list[Calculation] = []
        for g in prog.groups:
            for c in g.calcs:
                out.append(
                    {
                        "kind": "signal",
                        "type": c.type,
                        "name": c.signal,
                        "expr": c.expr,
                        "unit": c.unit,
                        "version": c.version,
                        "window_s": c.history_us / 1e6,
                        "assets": len(g.assets),
                    }
                )
            for tp in g.templates:
                held: ConditionTemplate = {
                    "kind": "event",
                    "type": tp.type,
                    "name": tp.name,
                    "version": tp.version,
                    "held_s": tp.held_us / 1e6,
                    "max_duration_s": tp.max_us / 1e6,
                    "stats": list(tp.stats),
                    "assets": len(g.assets),
                }
                if (ref := self._ref_of(tp)) is not None:
                    held["reference"] = ref
                out.append(held)
        known: dict[str, set[str]] = {}  # alert rules and label kinds the tenant has, read once if needed
        for (type_name, _), tp in sorted(prog.templates.items()):
            if tp.opener == "condition":
                continue
            assert tp.source is not None  # an alert or label template names its rule or kind (the plant's check)
            row: SourcedTemplate = {
                "kind": "event",
                "type": type_name,
                "name": tp.name,
                "version": tp.version,
                "opened_by": {tp.opener: tp.source},
                "max_duration_s": tp.max_us / 1e6,
                "stats": list(tp.stats),
                "assets": sum(1 for a in prog.plant.assets.values() if a.type == type_name),
            }
            if (ref := self._ref_of(tp)) is not None:
                row["reference"] = ref
            if tp.opener not in known:
                known[tp.opener] = self.sources.known(tenant, tp.opener)
            if tp.source not in known[tp.opener]:
                what = f"alert rule {tp.source!r}" if tp.opener == "alert" else f"label of kind {tp.source!r}"
                row["problem"] = f"no {what} in this tenant: its events open once there is one"
            out.append(row)
        return out

    @staticmethod
    def _ref_of(tp: Template) -> RefSpec | None:
        """A template's declared reference as the listing shows it (None when it declares none)."""
        r = tp.reference
        if r is None:
            return None
        return {"signal": r.signal, "output": r.output, "band": r.band, "step_s": r.step_us / 1e6}

    def lineage(self, tenant: str, tag: str) -> Lineage:
        """Where a calculated tag's points come from: expression, version, inputs."""
        prog = self.program(tenant)
        got = prog.outputs.get(tag)
        if got is None:
            raise NotFound(f"tag {tag!r} is not a calculated signal of this plant", where="tag")
        asset, calc = got
        inputs = sorted({t for g in prog.groups if calc in g.calcs for t in g.inputs.get(asset, [])})
        return {"tag": tag, "asset": asset, **calc.lineage(inputs)}

    def status(self, tenant: str) -> AnalyticsStatus:
        """What live computation runs for the tenant."""
        self.tenants.require(tenant)
        if self.live is None:
            return {"running": False, "reason": "not a server process"}
        scored = len(self.comparison.watching(tenant)) if self.comparison is not None else 0
        return {**self.live.status(tenant), "events_scored_live": scored}

    # -- trying and backfilling -----------------------------------------------------------------------------------
    def _asset(self, plant: Plant, path: str) -> Any:
        asset = plant.assets.get(path)
        if asset is None:
            raise NotFound(f"no asset {path!r}", where="asset")
        return asset

    @staticmethod
    def _range(start: Any, end: Any) -> tuple[int, int]:
        s, e = to_us(start, field="start"), to_us(end, field="end")
        if e <= s:
            raise InvalidInput("end must be after start", where="end")
        if e - s > MAX_RANGE_US:
            raise InvalidInput("the range is longer than 400 days; split it", where="end")
        return s, e

    def evaluate(self, tenant: str, asset_path: str, expr: str, start: Any, end: Any) -> EvalResult:
        """An expression (or condition) tried on one asset over a range, nothing written: its points."""
        self.tenants.require(tenant)
        s, e = self._range(start, end)
        plant = self.twin.plant(tenant)
        asset = self._asset(plant, asset_path)
        t = plant.types[asset.type]
        r = Resolver(plant.types)
        res = r.condition(t, expr, "expr")
        if res is None or r.problems:
            raise ValidationFailed(r.problems or [("expr", "not a valid expression")])
        binder = PlantBinder(plant)
        tags = binder.input_tags(asset.path, [res.plan])
        hist = history_us(res.plan)
        data = read_inputs(self.historian, tenant, tags, s - 1 - hist, e - 1)
        times = union_times([data.get(tag, EMPTY) for tag in tags], s - 1 - hist, e - 1)
        rows = Rows.of([asset.path], [times])
        v, q = evaluate(res.plan, rows, binder, lambda tag: data.get(tag, EMPTY))
        keep = np.flatnonzero(times >= s)[:MAX_EVAL_POINTS]
        return {
            "asset": asset.path,
            "expr": expr,
            "inputs": tags,
            "truncated": len(times[times >= s]) > len(keep),
            "points": [
                {
                    "time": from_us(int(times[k])).isoformat(),
                    "value": float(v[k]) if q[k] < 2 else None,
                    "quality": int(q[k]),
                }
                for k in keep
            ],
        }

    def backfill(
        self,
        tenant: str,
        start: Any,
        end: Any,
        *,
        asset: str | None = None,
        signals: list[str] | None = None,
        events: bool = True,
    ) -> BackfillResult:
        """Recompute calculated signals (and event frames) for a range, under an asset or for the whole plant."""
        self.tenants.require(tenant, "write")
        s, e = self._range(start, end)
        prog = self.program(tenant)
        if asset is not None:
            self._asset(prog.plant, asset)
        t0 = time.perf_counter()
        report = BackfillReport()
        for g in prog.groups:
            calcs = [c for c in g.calcs if signals is None or c.signal in signals]
            templates = [tp for tp in g.templates if signals is None or tp.name in signals] if events else []
            if not calcs and not templates:
                continue
            assets = [a for a in g.assets if asset is None or a == asset or a.startswith(asset + "/")]
            if not assets:
                continue
            sub = type(g)(g.type, calcs, templates, assets, g.inputs, g.history_us)
            found = backfill_group(
                self.historian,
                tenant,
                prog,
                sub,
                assets,
                s,
                e,
                report=report,
                recorder=self.recorder,
                templates=bool(templates),
            )
            if templates:
                report.events += self.events.replace(tenant, assets, [tp.name for tp in templates], s, e, found)
            report.signals += sorted({f"{g.type}.{c.signal}" for c in calcs} - set(report.signals))
            report.templates += sorted({f"{g.type}.{tp.name}" for tp in templates} - set(report.templates))
        if events:  # events of templates with a reference set: their deviations written again, summaries kept
            report.reference_points += self._rescore(tenant, prog, s, e, asset, signals)
        if events:  # alert and label templates: their events made again from the alerts and labels stored
            for type_name in sorted({t for t, _ in prog.templates}):
                tps = [
                    tp
                    for (t, _), tp in prog.templates.items()
                    if t == type_name and tp.opener != "condition" and (signals is None or tp.name in signals)
                ]
                under = [
                    a.path
                    for a in prog.plant.assets.values()
                    if a.type == type_name and (asset is None or a.path == asset or a.path.startswith(asset + "/"))
                ]
                if tps and under:
                    report.events += self.sources.backfill(tenant, prog, tps, under, s, e)
                    report.templates += [f"{type_name}.{tp.name}" for tp in tps]
        out: BackfillResult = {
            **report.to_dict(),
            "seconds": round(time.perf_counter() - t0, 3),
            "start": from_us(s).isoformat(),
            "end": from_us(e).isoformat(),
        }
        self.audit.append("analytics.backfill", tenant=tenant, target=asset or "(plant)", after=out)
        return out

    def _rescore(self, tenant: str, prog: Program, s: int, e: int, asset: str | None, signals: list[str] | None) -> int:
        """Deviation points of the range's closed events scored again against their templates' references."""
        written = 0
        for ref in self.references.all(tenant):
            tp = prog.templates.get((ref["type"], ref["template"]))
            if tp is None or tp.reference is None or (signals is not None and tp.name not in signals):
                continue
            found = self.events.search(
                tenant, asset=asset, template=ref["template"], start_us=s, end_us=e, state="closed", limit=10_000
            )["events"]
            of_type = {path for path, a in prog.plant.assets.items() if a.type == ref["type"]}
            rows = [r for r in found if r["asset"] in of_type]
            written += self.rescorer.rescore(tenant, rows)
        return written

    # -- events ---------------------------------------------------------------------------------------------------
    def search(
        self,
        tenant: str,
        *,
        asset: str | None = None,
        template: str | None = None,
        start: Any = None,
        end: Any = None,
        where: list[str] | None = None,
        state: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> EventSearch:
        """Event frames by asset subtree, template, time, statistic (`duration > 30m`, `max(flow) > 5`)."""
        self.tenants.require(tenant)
        if state not in (None, "open", "closed"):
            raise InvalidInput("state is open or closed", where="state")
        return self.events.search(
            tenant,
            asset=asset,
            template=template,
            start_us=None if start is None else to_us(start, field="start"),
            end_us=None if end is None else to_us(end, field="end"),
            where=[parse_filter(w) for w in where or []],
            state=state,
            kind=kind,
            limit=limit,
        )

    def event(self, tenant: str, event_id: str) -> EventFrame:
        """One event frame."""
        self.tenants.require(tenant)
        return self.events.get(tenant, event_id)

    def open_event(
        self, tenant: str, asset: str, template: str, *, start: Any = None, note: str | None = None
    ) -> EventFrame:
        """Open an event by hand (an operator's or a program's call): of a template of the asset's type or of
        any name; it is closed with `close_event`."""
        self.tenants.require(tenant, "write")
        plant = self.twin.plant(tenant)
        self._asset(plant, asset)
        if not isinstance(template, str) or not 0 < len(template) <= 127:
            raise InvalidInput("template must be a name of 1 to 127 characters", where="template")
        start_us = to_us(start, field="start") if start is not None else time.time_ns() // 1000
        info = {"note": note[:1000]} if note else {}
        eid = self.recorder.open(tenant, asset, template, start_us, kind="manual", info=info)
        self.audit.append("analytics.event_open", tenant=tenant, target=f"{asset} {template}", after={"id": eid})
        return self.events.get(tenant, eid)

    def close_event(self, tenant: str, event_id: str, *, end: Any = None) -> EventFrame:
        """Close an open event, with the statistics of its template's signals if it has a template."""
        self.tenants.require(tenant, "write")
        row = self.events.get(tenant, event_id)
        end_us = to_us(end, field="end") if end is not None else time.time_ns() // 1000
        if end_us < row["start_us"]:
            raise InvalidInput("end is before the event's start", where="end")
        stats: dict[str, Any] = {}
        prog = self.program(tenant)
        asset = prog.plant.assets.get(row["asset"])
        tp = prog.templates.get((asset.type, row["template"])) if asset is not None else None
        if tp is not None:
            stats = self.recorder.stats(tenant, prog, row["asset"], tp, row["start_us"], end_us)
        self.recorder.close(tenant, event_id, end_us, "api", stats)
        self.audit.append("analytics.event_close", tenant=tenant, target=event_id, after={"end_us": end_us})
        return self.events.get(tenant, event_id)

    # -- reference profiles -----------------------------------------------------------------------------------
    def _event_curve(self, tenant: str, prog: Program, event: EventFrame, signal: str, step_us: int) -> np.ndarray:
        tag = prog.binder.tag(event["asset"], signal)
        if tag is None:
            raise InvalidInput(f"asset {event['asset']!r} has no signal {signal!r}", where="signal")
        end = event["end_us"] if event["end_us"] is not None else time.time_ns() // 1000
        if (end - event["start_us"]) // step_us > MAX_STEPS:
            raise InvalidInput(
                f"the event is longer than {MAX_STEPS} steps of {step_us / 1e6:g} s; take a longer step", where="step"
            )
        data = read_inputs(self.historian, tenant, [tag], event["start_us"] - 1, end)
        return on_grid(data.get(tag, EMPTY), event["start_us"], end, step_us)

    def compare_events(
        self, tenant: str, event_id: str, reference: list[str], signal: str, *, step: Any = "1s", band: float = 3.0
    ) -> EventComparison:
        """An event against a reference profile made of other events (one golden event, or the median of
        several): the profile, the event's deviation at each step from its start, the share outside the band."""
        self.tenants.require(tenant)
        if not 1 <= len(reference) <= 100:
            raise InvalidInput("name 1 to 100 reference events", where="reference")
        if not 0 < band <= 100:
            raise InvalidInput("band must be above 0 and at most 100", where="band")
        step_us = parse_duration(step, field="step")
        prog = self.program(tenant)
        event = self.events.get(tenant, event_id)
        curves = [self._event_curve(tenant, prog, self.events.get(tenant, r), signal, step_us) for r in reference]
        profile = build_profile(curves, step_us, band)
        against = compare(profile, self._event_curve(tenant, prog, event, signal, step_us))
        return {
            "event": event_id,
            "signal": signal,
            "reference": reference,
            "profile": profile.to_dict(),
            "steps": against["steps"],
            "outside_share": against["outside_share"],
            "max_abs_deviation": against["max_abs_deviation"],
            "deviation": against["deviation"],
        }

    # -- live comparison to a reference ------------------------------------------------------------------------
    def _ref_template(self, prog: Program, name: str) -> Template:
        type_name, _, template = name.partition(".")
        tp = prog.templates.get((type_name, template))
        if tp is None:
            raise NotFound(f"no event template {name[:200]!r} (write Type.template)", where="template")
        if tp.reference is None:
            raise InvalidInput(
                f"event template {name} declares no reference; add reference: {{signal, output}} to it in the "
                "plant file",
                where="template",
            )
        return tp

    def set_reference(self, tenant: str, template: str, events: list[str]) -> ReferenceView:
        """Make a template's reference profile from chosen closed events of it (one golden event, or the median
        of several, with the template's band); the events of it that open from then on are scored against it live."""
        self.tenants.require(tenant, "write")
        if not isinstance(events, list) or not 1 <= len(events) <= 100:
            raise InvalidInput("name 1 to 100 reference events", where="events")
        prog = self.program(tenant)
        tp = self._ref_template(prog, template)
        assert tp.reference is not None
        ref = tp.reference
        curves = []
        for i, eid in enumerate(events):
            ev = self.events.get(tenant, str(eid)[:64])
            a = prog.plant.assets.get(ev["asset"])
            if ev["template"] != tp.name or a is None or a.type != tp.type:
                raise InvalidInput(f"event {eid} is not an event of {template}", where=f"events[{i}]")
            if ev["end_us"] is None:
                raise InvalidInput(
                    f"event {eid} is still open: a reference is made of closed events", where=f"events[{i}]"
                )
            curves.append(self._event_curve(tenant, prog, ev, ref.signal, ref.step_us))
        profile = build_profile(curves, ref.step_us, ref.band)
        if not np.isfinite(profile.median).any():
            raise InvalidInput(f"the events have no points of {ref.signal}: no profile to compare with", where="events")
        self.references.put(
            tenant, tp.type, tp.name, ref.signal, [str(e) for e in events], profile, ref.band, current().user
        )
        self.audit.append("analytics.reference_set", tenant=tenant, target=template, after={"events": events})
        return self.reference(tenant, template)

    def reference(self, tenant: str, template: str, *, profile: bool = True) -> ReferenceView:
        """A template's reference: the events it was made of, its profile (median and band per step), and the
        running events being scored against it."""
        self.tenants.require(tenant)
        prog = self.program(tenant)
        tp = self._ref_template(prog, template)
        got = self.references.get(tenant, tp.type, tp.name)
        if got is None:
            raise NotFound(
                f"event template {template} has no reference yet (set one from chosen events)", where="template"
            )
        assert tp.reference is not None
        prof = got["profile"]
        out: ReferenceView = {
            "template": template,
            "signal": got["signal"],
            "output": tp.reference.output,
            "events": got["events"],
            "band": got["band"],
            "step_s": got["step_us"] / 1e6,
            "steps": len(prof.median),
            "created_by": got["created_by"],
            "scoring": [w for w in self.scoring(tenant) if w["template"] == template],
        }
        if profile:
            out["profile"] = prof.to_dict()
        return out

    def references_of(self, tenant: str) -> list[ReferenceSummary]:
        """Every reference of the tenant's templates (without profiles)."""
        self.tenants.require(tenant)
        return self.references.all(tenant)

    def delete_reference(self, tenant: str, template: str) -> None:
        """Remove a template's reference (running events scored against it are scored to their end)."""
        self.tenants.require(tenant, "write")
        type_name, _, name = template.partition(".")
        self.references.delete(tenant, type_name, name)
        self.audit.append("analytics.reference_delete", tenant=tenant, target=template)

    def scoring(self, tenant: str) -> list[Scoring]:
        """The running events scored live against a reference, with where each stands."""
        self.tenants.require(tenant)
        return [] if self.comparison is None else self.comparison.watching(tenant)

    # -- data quality -----------------------------------------------------------------------------------------
    def quality(
        self,
        tenant: str,
        start: Any,
        end: Any,
        *,
        asset: str | None = None,
        subtree: bool = True,
        write_events: bool = False,
        thresholds: Thresholds = Thresholds(),
    ) -> QualityReport:
        """The quality checks of every measured tag under an asset (or the whole plant) over a range: findings and
        a figure per tag, a figure per asset; `subtree=False`: the asset's own tags alone (its page); `write_events`
        stores the findings as events `quality.<check>`."""
        self.tenants.require(tenant, "write" if write_events else "read")
        s, e = self._range(start, end)
        plant = self.twin.plant(tenant)
        if asset:
            self._asset(plant, asset)
            assets = plant.subtree(asset) if subtree else [plant.assets[asset]]
        else:
            assets = list(plant.assets.values())
        now = time.time_ns() // 1000
        known = set(self.historian.catalog.ids(tenant))
        per_asset: dict[str, AssetQuality] = {}
        rows: list[dict[str, Any]] = []
        for a in assets:
            t = plant.types.get(a.type)
            if t is None:
                continue
            tags = {sig: tag for sig, tag in a.tags.items() if tag in known}
            if not tags:
                continue
            data = read_inputs(self.historian, tenant, list(tags.values()), s - 1, e - 1)
            figures: dict[str, TagQuality] = {}
            for sig, tag in sorted(tags.items()):
                spec = t.signals.get(sig)
                interval = spec.interval_s if spec else None
                found = check_series(
                    data.get(tag, EMPTY),
                    s,
                    e,
                    interval_s=interval,
                    low=spec.low if spec else None,
                    high=spec.high if spec else None,
                    now_us=now,
                    th=thresholds,
                )
                found += [f for f in self.arrivals.findings(tenant, tag) if s <= f.start_us < e]
                fig = figure(found, s, e, interval * 1e6 if interval else None)
                figures[sig] = {
                    "tag": tag,
                    "quality": fig,
                    "findings": [finding_dict(f) for f in found[:200]],
                    "count": len(found),
                }
                rows += [
                    {
                        "asset": a.path,
                        "template": f"quality.{f.check}",
                        "kind": "quality",
                        "start_us": f.start_us,
                        "end_us": f.end_us,
                        "reason": "end",
                        "info": {"tag": tag, "signal": sig, "points": f.points, "detail": f.detail},
                    }
                    for f in found
                ]
            values = [f["quality"] for f in figures.values()]
            per_asset[a.path] = {"quality": round(float(np.mean(values)), 2), "worst": min(values), "tags": figures}
        written = 0
        if write_events:
            templates = [
                f"quality.{c}"
                for c in (
                    "gap",
                    "stuck",
                    "flat",
                    "out_of_range",
                    "spike",
                    "bad_quality",
                    "future_time",
                    "repeated_time",
                    "clock_jump",
                )
            ]
            written = self.events.replace(tenant, list(per_asset), templates, s, e, rows)
        return {
            "start": from_us(s).isoformat(),
            "end": from_us(e).isoformat(),
            "assets": per_asset,
            "findings": len(rows),
            "events_written": written,
        }
