"""Turns event changes from the scan into stored event frames: an opened event is recorded open at once (so search
and the twin see it), a closed one gets its statistics (min, max, mean, time-weighted mean, integral, values at start
and end of each named signal, and its duration) from the historian, where the points of the same step already are."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from taehwa.analytics.frames import Change, statistics
from taehwa.analytics.program import Program, Template
from taehwa.analytics.series import EMPTY, merge, split
from taehwa.analytics.store import EventStore
from taehwa.core.errors import TaehwaError
from taehwa.core.timeutil import from_us

if TYPE_CHECKING:
    from taehwa.analytics.livecompare import LiveComparison
    from taehwa.historian.store import Historian

log = logging.getLogger(__name__)


class EventRecorder:
    """Records event changes of the live engine and computes statistics at close."""

    def __init__(self, historian: Historian, store: EventStore, comparison: LiveComparison | None = None) -> None:
        """The historian (statistics), the event store, and the live comparison told of each open and close."""
        self.historian, self.store, self.comparison = historian, store, comparison
        self._open: dict[tuple[str, str, str, int], str] = {}  # (tenant, asset, template, start) → event id

    def stats(self, tenant: str, prog: Program, asset: str, tp: Template, start: int, end: int) -> dict[str, Any]:
        """Statistics of the template's signals on an asset over [start, end]."""
        tags = {s: tag for s in tp.stats if (tag := prog.binder.tag(asset, s)) is not None}
        out: dict[str, Any] = {}
        if not tags:
            return out
        try:
            known = set(self.historian.catalog.ids(tenant))
            wanted = [t for t in tags.values() if t in known]
            if not wanted:
                return out
            before = self.historian.value_at(tenant, wanted, from_us(start))
            inside = self.historian.read(tenant, wanted, from_us(start), from_us(end + 1))
        except TaehwaError as exc:
            log.warning("event statistics of %s on %s: %s", tp.name, asset, exc)
            return out
        first, series = split(before), split(inside)
        for signal, tag in tags.items():
            got, _ = merge(first.get(tag, EMPTY), series.get(tag, EMPTY))
            out[signal] = statistics(got[0], got[1], start, end)
        return out

    def open(
        self, tenant: str, asset: str, template: str, start: int, *, kind: str = "template", info: dict[str, Any]
    ) -> str:
        """Record an open event (of any source) and tell the live comparison; returns its id."""
        eid = self.store.open(tenant, asset, template, start, kind=kind, info=info)
        if self.comparison is not None:
            self.comparison.opened(tenant, eid, asset, template, start)
        return eid

    def close(self, tenant: str, event_id: str, end: int, reason: str, stats: dict[str, Any]) -> None:
        """Close an event with its statistics and tell the live comparison."""
        self.store.close(tenant, event_id, end, reason, stats)
        if self.comparison is not None:
            self.comparison.closed(tenant, event_id, end)

    def record(
        self, tenant: str, prog: Program, type_of: dict[str, str], changes: list[tuple[str, str, Change]]
    ) -> list[dict[str, Any]]:
        """Store the changes of one live step; returns the closed events as stored."""
        closed = []
        for asset, name, ch in changes:
            tp = prog.templates.get((type_of.get(asset, ""), name))
            if tp is None:
                continue
            key = (tenant, asset, name, ch.start)
            if ch.end is None:
                self._open[key] = self.open(tenant, asset, name, ch.start, info={"version": tp.version})
                continue
            stats = self.stats(tenant, prog, asset, tp, ch.start, ch.end)
            eid = self._open.pop(key, None)
            if eid is None:
                eid = self.open(tenant, asset, name, ch.start, info={"version": tp.version})
            self.close(tenant, eid, ch.end, ch.reason or "end", stats)
            closed.append(
                {
                    "id": eid,
                    "asset": asset,
                    "template": name,
                    "start_us": ch.start,
                    "end_us": ch.end,
                    "reason": ch.reason,
                    "stats": stats,
                }
            )
        return closed
