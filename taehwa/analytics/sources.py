"""Event frames opened by an alert or a label, as PI opens event frames from notifications and Seeq makes capsules
from annotations: a template with `alert: <rule>` opens an event when an alert of that rule is raised on an asset of
its type (closed when the alert resolves), one with `label: <kind>` gives an event over each label of that kind on
such an asset (a point label: an event of no duration; a span that ends later: open until then). Their statistics
are computed at close, and the clock bounds them by the template's maximum duration.

The alert book and the label service tell of their changes (they are built after analytics and handed these
callbacks by the composition root); a backfill makes the events of a range again from the alerts and labels stored
then (those that predate the template, or a template changed). Alert and label times are wall-clock times.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from taehwa.analytics.program import Program, Template
from taehwa.analytics.recorder import EventRecorder
from taehwa.analytics.records import EventFrame
from taehwa.analytics.store import EventStore
from taehwa.core.errors import InvalidInput
from taehwa.core.timeutil import from_us, to_us
from taehwa.db import alert_rules, alerts, labels

if TYPE_CHECKING:
    from datetime import datetime

KINDS = ("alert", "label")


def _us(d: datetime | None) -> int | None:
    """A stored time (naive on SQLite: UTC) in µs."""
    if d is None:
        return None
    from datetime import UTC

    return to_us(d if d.tzinfo else d.replace(tzinfo=UTC), field="time")


class SourcedEvents:
    """Events of alert and label templates: opened, closed and bounded as alerts and labels change."""

    def __init__(
        self,
        *,
        engine: Engine,
        events: EventStore,
        recorder: EventRecorder,
        program_of: Callable[[str], Program | None],
        tenant_ids: Callable[[], list[str]],
    ) -> None:
        """The metadata database (alerts, rules and labels as stored), the event store, the recorder (statistics,
        and the live comparison told of each open and close), each tenant's analytics program, and the tenants."""
        self.engine, self.events, self.recorder, self.program_of = engine, events, recorder, program_of
        self.tenant_ids = tenant_ids

    # -- which templates ------------------------------------------------------------------------------------------
    @staticmethod
    def templates(prog: Program, asset: str, opener: str, source: str) -> list[Template]:
        """The templates of an asset's type that an alert rule (or a label kind) opens."""
        a = prog.plant.assets.get(asset)
        if a is None:
            return []
        return [
            tp
            for (type_name, _), tp in prog.templates.items()
            if type_name == a.type and tp.opener == opener and tp.source == source
        ]

    def known(self, tenant: str, opener: str) -> set[str]:
        """The alert rules (or label kinds) the tenant has: a template naming another waits for one."""
        col = alert_rules.c.name if opener == "alert" else labels.c.kind
        with self.engine.connect() as c:
            return set(c.execute(select(col).where(col.table.c.tenant == tenant).distinct()).scalars())

    # -- alerts ---------------------------------------------------------------------------------------------------
    def alert_changed(self, tenant: str, action: str, alert: Mapping[str, Any]) -> None:
        """An alert was raised or resolved (the alert book tells): open an event of every template of its asset's
        type that its rule opens, from the time it was raised; close it when the alert resolves."""
        asset, rule = alert.get("asset"), alert.get("rule")
        if action not in ("raised", "resolved") or not asset or not rule:
            return
        prog = self.program_of(tenant)
        tps = self.templates(prog, asset, "alert", rule) if prog is not None else []
        if prog is None or not tps:
            return
        if action == "raised":
            start = to_us(alert["raised_at"], field="raised_at")
            for tp in tps:
                info = {"alert": alert["id"], "rule": rule, "version": tp.version}
                self.recorder.open(tenant, asset, tp.name, start, kind="alert", info=info)
            return
        end = to_us(alert.get("resolved_at") or from_us(time.time_ns() // 1000), field="resolved_at")
        names = {tp.name: tp for tp in tps}
        for ev in self.events.search(tenant, asset=asset, state="open", kind="alert", limit=1000)["events"]:
            match = names.get(ev["template"])
            if match is None or ev["asset"] != asset or ev["info"].get("alert") != alert["id"]:
                continue
            self._close(tenant, prog, ev, match, end, "resolved")

    def events_of_alert(self, tenant: str, alert: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The events an alert belongs to: those on its asset or any asset above it that were open when it was
        raised (an event its rule opened among them)."""
        asset = alert.get("asset")
        if not asset:
            return []
        parts = str(asset).split("/")
        assets = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        at = to_us(alert["raised_at"], field="raised_at")
        keep = ("id", "asset", "template", "kind", "start", "end", "state", "close_reason")
        found: list[Mapping[str, Any]] = list(self.events.containing(tenant, assets, at))
        return [{k: e[k] for k in keep} for e in found]

    # -- labels ---------------------------------------------------------------------------------------------------
    def labels_changed(self, tenant: str, action: str, rows: list[dict[str, Any]]) -> None:
        """Labels were added or deleted (the label service tells): each label of a kind a template of its asset's
        type names gives an event over its span; a deleted label takes its events with it."""
        prog = self.program_of(tenant)
        if prog is None:
            return
        if action == "deleted":
            for r in rows:
                if self.templates(prog, r["asset"], "label", r["kind"]):
                    found = self.events.search(tenant, asset=r["asset"], kind="label", limit=10_000)["events"]
                    self.events.delete_ids(tenant, [e["id"] for e in found if e["info"].get("label") == r["id"]])
            return
        self.events.add_many(tenant, self._label_events(tenant, prog, rows, time.time_ns() // 1000))

    def _label_events(
        self, tenant: str, prog: Program, rows: list[dict[str, Any]], now: int, *, record_open: bool = True
    ) -> list[dict[str, Any]]:
        """The closed events of labels whose span is over (to be stored together); a running span's event is
        opened at once (scored live if its template has a reference), or returned open when `record_open` is off."""
        done: list[dict[str, Any]] = []
        for r in rows:
            start = int(r["start"])
            until = int(r["end"]) if r.get("end") is not None else start
            for tp in self.templates(prog, r["asset"], "label", r["kind"]):
                info = {"label": r["id"], "until_us": until, "version": tp.version}
                end, reason = (until, "label") if until - start <= tp.max_us else (start + tp.max_us, "max_duration")
                row = {"asset": r["asset"], "template": tp.name, "kind": "label", "start_us": start, "info": info}
                if end > now:  # running: open until its span ends
                    if record_open:
                        self.recorder.open(tenant, r["asset"], tp.name, start, kind="label", info=info)
                    else:
                        done.append(row)
                    continue
                stats = self.recorder.stats(tenant, prog, r["asset"], tp, start, end)
                done.append({**row, "end_us": end, "reason": reason, "stats": stats})
        return done

    # -- closing by the clock, and a range made again ---------------------------------------------------------------
    def _close(self, tenant: str, prog: Program, ev: EventFrame, tp: Template, end: int, reason: str) -> None:
        if end - ev["start_us"] > tp.max_us:
            end, reason = ev["start_us"] + tp.max_us, "max_duration"
        stats = self.recorder.stats(tenant, prog, ev["asset"], tp, ev["start_us"], max(end, ev["start_us"]))
        with contextlib.suppress(InvalidInput):  # closed meanwhile (by a call, or the other path): nothing to do
            self.recorder.close(tenant, ev["id"], end, reason, stats)

    def close_due(self, now_us: int) -> int:
        """Close every open alert or label event whose label span has ended or whose maximum duration has passed
        by the clock (an alert that never clears must not keep its event open forever); returns how many."""
        closed = 0
        for tenant in self.tenant_ids():
            prog = self.program_of(tenant)
            if prog is not None and any(tp.opener != "condition" for tp in prog.templates.values()):
                closed += self._close_due(tenant, prog, now_us)
        return closed

    def _close_due(self, tenant: str, prog: Program, now_us: int) -> int:
        closed = 0
        for ev in self.events.open_of_kinds(tenant, KINDS):
            a = prog.plant.assets.get(ev["asset"])
            tp = prog.templates.get((a.type, ev["template"])) if a is not None else None
            if tp is None:
                continue
            until = ev["info"].get("until_us") if ev["kind"] == "label" else None
            if isinstance(until, int) and until <= now_us:
                self._close(tenant, prog, ev, tp, until, "label")
                closed += 1
            elif now_us - ev["start_us"] >= tp.max_us:
                self._close(tenant, prog, ev, tp, ev["start_us"] + tp.max_us, "max_duration")
                closed += 1
        return closed

    def backfill(self, tenant: str, prog: Program, tps: list[Template], assets: list[str], s: int, e: int) -> int:
        """Make the events of alert and label templates starting in [s, e) on these assets again from the alerts
        and labels stored (their old ones replaced); returns how many."""
        if not tps or not assets:
            return 0
        now = time.time_ns() // 1000
        rows: list[dict[str, Any]] = []
        by_rule = {tp.source for tp in tps if tp.opener == "alert"}
        by_kind = {tp.source for tp in tps if tp.opener == "label"}
        wanted = {tp.name for tp in tps}
        with self.engine.connect() as c:
            for k in range(0, len(assets), 500):
                part = assets[k : k + 500]
                if by_kind:
                    q = select(labels.c.id, labels.c.asset, labels.c.kind, labels.c.start, labels.c.end).where(
                        labels.c.tenant == tenant,
                        labels.c.kind.in_(by_kind),
                        labels.c.asset.in_(part),
                        labels.c.start >= s,
                        labels.c.start < e,
                    )
                    found = [dict(r._mapping) for r in c.execute(q)]
                    rows += [r for r in self._label_events(tenant, prog, found, now, record_open=False)]
                if by_rule:
                    q = select(alerts.c.id, alerts.c.asset, alerts.c.rule, alerts.c.raised_at, alerts.c.resolved_at)
                    q = q.where(
                        alerts.c.tenant == tenant,
                        alerts.c.rule.in_(by_rule),
                        alerts.c.asset.in_(part),
                        alerts.c.raised_at >= from_us(s),
                        alerts.c.raised_at < from_us(e),
                    )
                    for r in c.execute(q).all():
                        rows += self._alert_events(tenant, prog, r, now)
        rows = [r for r in rows if r["template"] in wanted]
        return self.events.replace(tenant, assets, sorted(wanted), s, e, rows)

    def _alert_events(self, tenant: str, prog: Program, r: Any, now: int) -> list[dict[str, Any]]:
        start, resolved = _us(r.raised_at), _us(r.resolved_at)
        assert start is not None
        out = []
        for tp in self.templates(prog, r.asset, "alert", r.rule):
            row: dict[str, Any] = {
                "asset": r.asset,
                "template": tp.name,
                "kind": "alert",
                "start_us": start,
                "info": {"alert": r.id, "rule": r.rule, "version": tp.version},
            }
            end, reason = (resolved, "resolved") if resolved is not None else (None, None)
            if (end is None and now - start >= tp.max_us) or (end is not None and end - start > tp.max_us):
                end, reason = start + tp.max_us, "max_duration"
            if end is not None:
                row.update(end_us=end, reason=reason, stats=self.recorder.stats(tenant, prog, r.asset, tp, start, end))
            out.append(row)
        return out
