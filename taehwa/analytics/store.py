"""Event frames in the metadata database (table `analytics_events`): opened, closed with their statistics, searched
by asset subtree, template, time and statistic, replaced for a range by a backfill.

Search goes through the indexes on (tenant, start), (tenant, template, start), (tenant, asset, start) and
(tenant, duration); an asset subtree is a range of paths (`p` and `p/…` sort between `p` and `p0`), never LIKE.
A filter on a statistic (`max(flow) > 5`) is applied to the rows the indexed part found, at most `SCAN_LIMIT` of
them, and says so when it stopped there.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine, Text, and_, delete, insert, or_, select, type_coerce, update

from taehwa.core.errors import InvalidInput, NotFound
from taehwa.core.timeutil import from_us, parse_duration
from taehwa.db import analytics_events as ev

SCAN_LIMIT = 50_000
"""Most rows a statistic filter looks through."""
STAT_RE = re.compile(
    r"^\s*(?:(duration)|(min|max|mean|twa|integral|start|end)\(([A-Za-z][A-Za-z0-9_]{0,63})\))\s*"
    r"(>=|<=|>|<|==|!=)\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(ms|s|min|m|h|d)?\s*$"
)
OPS = {
    ">": float.__gt__,
    ">=": float.__ge__,
    "<": float.__lt__,
    "<=": float.__le__,
    "==": float.__eq__,
    "!=": float.__ne__,
}


@dataclass(frozen=True)
class StatFilter:
    """`duration > 30m` or `max(flow) >= 5`."""

    field: str  # duration, or a statistic name
    signal: str | None
    op: str
    value: float

    def test(self, row: dict[str, Any]) -> bool:
        """Whether an event row passes."""
        if self.field == "duration":
            got = row.get("duration_s")
        else:
            got = ((row.get("stats") or {}).get(self.signal) or {}).get(self.field)
        return isinstance(got, int | float) and OPS[self.op](float(got), self.value)


def parse_filter(text: str) -> StatFilter:
    """A statistic filter from its text; durations take a unit (30m, 2h)."""
    if not isinstance(text, str) or len(text) > 200:
        raise InvalidInput("a filter is a short text like 'duration > 30m' or 'max(flow) > 5'", where="where")
    m = STAT_RE.match(text)
    if m is None:
        raise InvalidInput(
            f"cannot read filter {text[:60]!r}: write 'duration > 30m' or 'max(flow) > 5' "
            "(statistics: min max mean twa integral start end)",
            where="where",
        )
    is_duration, stat, signal, op, number, unit = m.groups()
    value = float(number)
    if is_duration:
        if unit is not None:
            value = parse_duration(f"{number}{'m' if unit == 'min' else unit}", field="where") / 1e6
        return StatFilter("duration", None, op, value)
    if unit is not None:
        raise InvalidInput("only duration takes a unit", where="where")
    return StatFilter(stat, signal, op, value)


def _json(value: Any) -> Any:
    """A JSON column read as text (decoded here, by orjson) or already decoded by the driver."""
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value


def _rows(rs: list[Any]) -> list[dict[str, Any]]:
    """Event rows as JSON-ready dicts (their JSON columns decoded by orjson)."""
    return [
        {
            "id": r.id,
            "asset": r.asset,
            "template": r.template,
            "kind": r.kind,
            "start": from_us(r.start_us).isoformat(),
            "end": from_us(r.end_us).isoformat() if r.end_us else None,
            "start_us": r.start_us,
            "end_us": r.end_us,
            "duration_s": r.duration_s,
            "close_reason": r.close_reason,
            "state": "open" if r.end_us is None else "closed",
            "stats": _json(r.stats) or {},
            "info": _json(r.info) or {},
        }
        for r in rs
    ]


def _row(r: Any) -> dict[str, Any]:
    return _rows([r])[0]


# every column, the JSON ones as their text: orjson decodes them (SQLAlchemy's JSON type uses the json module)
_COLUMNS = [type_coerce(c, Text).label(c.name) if c.name in ("stats", "info") else c for c in ev.c]


class EventStore:
    """Event frames of every tenant."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(
        self,
        tenant: str,
        asset: str,
        template: str,
        start_us: int,
        *,
        kind: str = "template",
        info: dict[str, Any] | None = None,
    ) -> str:
        """Record an open event; returns its id."""
        eid = uuid.uuid4().hex
        with self.engine.begin() as c:
            c.execute(
                insert(ev).values(
                    id=eid,
                    tenant=tenant,
                    asset=asset,
                    template=template,
                    kind=kind,
                    start_us=int(start_us),
                    end_us=None,
                    duration_s=None,
                    close_reason=None,
                    stats={},
                    info=info or {},
                    created_at=datetime.now(UTC),
                )
            )
        return eid

    def add_many(self, tenant: str, rows: list[dict[str, Any]]) -> int:
        """Record closed (or open) events in one transaction: asset, template, kind, start_us, end_us, reason,
        stats, info."""
        if not rows:
            return 0
        now = datetime.now(UTC)
        values = [
            {
                "id": uuid.uuid4().hex,
                "tenant": tenant,
                "asset": r["asset"],
                "template": r["template"],
                "kind": r.get("kind", "template"),
                "start_us": int(r["start_us"]),
                "end_us": None if r.get("end_us") is None else int(r["end_us"]),
                "duration_s": None if r.get("end_us") is None else (int(r["end_us"]) - int(r["start_us"])) / 1e6,
                "close_reason": r.get("reason"),
                "stats": r.get("stats") or {},
                "info": r.get("info") or {},
                "created_at": now,
            }
            for r in rows
        ]
        with self.engine.begin() as c:
            for k in range(0, len(values), 5_000):
                c.execute(insert(ev), values[k : k + 5_000])
        return len(values)

    def close(self, tenant: str, event_id: str, end_us: int, reason: str, stats: dict[str, Any]) -> None:
        """Close an open event with its statistics."""
        with self.engine.begin() as c:
            row = c.execute(
                select(ev.c.start_us, ev.c.end_us).where(ev.c.tenant == tenant, ev.c.id == event_id)
            ).first()
            if row is None:
                raise NotFound(f"no event {event_id!r}", where="id")
            if row.end_us is not None:
                raise InvalidInput(f"event {event_id!r} is already closed", where="id")
            end_us = max(int(end_us), int(row.start_us))
            c.execute(
                update(ev)
                .where(ev.c.id == event_id)
                .values(end_us=end_us, duration_s=(end_us - row.start_us) / 1e6, close_reason=reason, stats=stats)
            )

    def get(self, tenant: str, event_id: str) -> dict[str, Any]:
        """One event."""
        with self.engine.connect() as c:
            r = c.execute(select(*_COLUMNS).where(ev.c.tenant == tenant, ev.c.id == event_id)).first()
        if r is None:
            raise NotFound(f"no event {event_id!r}", where="id")
        return _row(r)

    def open_events(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's open events."""
        with self.engine.connect() as c:
            rows = c.execute(select(*_COLUMNS).where(ev.c.tenant == tenant, ev.c.end_us.is_(None))).all()
        return _rows(list(rows))

    def replace(
        self,
        tenant: str,
        assets: list[str],
        templates: list[str],
        start_us: int,
        end_us: int,
        rows: list[dict[str, Any]],
    ) -> int:
        """Delete the events of these assets and templates that start in [start, end) and record `rows` in their
        place, in one transaction (a backfill run twice gives the same events once)."""
        now = datetime.now(UTC)
        with self.engine.begin() as c:
            for k in range(0, len(assets), 500):
                c.execute(
                    delete(ev).where(
                        ev.c.tenant == tenant,
                        ev.c.asset.in_(assets[k : k + 500]),
                        ev.c.template.in_(templates),
                        ev.c.start_us >= start_us,
                        ev.c.start_us < end_us,
                    )
                )
            values = [
                {
                    "id": uuid.uuid4().hex,
                    "tenant": tenant,
                    "asset": r["asset"],
                    "template": r["template"],
                    "kind": r.get("kind", "template"),
                    "start_us": int(r["start_us"]),
                    "end_us": r.get("end_us"),
                    "duration_s": None if r.get("end_us") is None else (r["end_us"] - r["start_us"]) / 1e6,
                    "close_reason": r.get("reason"),
                    "stats": r.get("stats") or {},
                    "info": r.get("info") or {},
                    "created_at": now,
                }
                for r in rows
            ]
            for k in range(0, len(values), 5_000):
                c.execute(insert(ev), values[k : k + 5_000])
        return len(rows)

    def search(
        self,
        tenant: str,
        *,
        asset: str | None = None,
        template: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        where: list[StatFilter] | None = None,
        state: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Events newest first: under an asset (its subtree), of a template, overlapping [start, end), passing the
        statistic filters. Returns {events, truncated, scanned_limit_hit}."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", where="limit")
        conds = [ev.c.tenant == tenant]
        if asset:  # the asset and its subtree: paths between "p/" and "p0" in byte order ("C" on PostgreSQL)
            path = ev.c.asset.collate("C") if self.engine.dialect.name == "postgresql" else ev.c.asset
            conds.append(or_(ev.c.asset == asset, and_(path > asset + "/", path < asset + "0")))
        if template:
            conds.append(ev.c.template == template)
        if kind:
            conds.append(ev.c.kind == kind)
        if end_us is not None:
            conds.append(ev.c.start_us < end_us)
        if start_us is not None:
            conds.append(or_(ev.c.end_us.is_(None), ev.c.end_us >= start_us))
        if state == "open":
            conds.append(ev.c.end_us.is_(None))
        elif state == "closed":
            conds.append(ev.c.end_us.is_not(None))
        filters = list(where or [])
        for f in filters:
            if f.field == "duration":  # the indexed part
                col = ev.c.duration_s
                conds.append(
                    {
                        ">": col > f.value,
                        ">=": col >= f.value,
                        "<": col < f.value,
                        "<=": col <= f.value,
                        "==": col == f.value,
                        "!=": col != f.value,
                    }[f.op]
                )
        stat_filters = [f for f in filters if f.field != "duration"]
        fetch = SCAN_LIMIT if stat_filters else limit + 1
        q = select(*_COLUMNS).where(*conds).order_by(ev.c.start_us.desc()).limit(fetch)
        with self.engine.connect() as c:
            found = list(c.execute(q).all())
        hit = bool(stat_filters) and len(found) == SCAN_LIMIT
        if stat_filters:  # only the statistics are read to filter; a row is made whole once it passes
            passing = []
            for r in found:
                probe = {"stats": _json(r.stats) or {}}
                if all(f.test(probe) for f in stat_filters):
                    passing.append(r)
                    if len(passing) > limit:
                        break
            found = passing
        rows = _rows(found[: limit + 1])
        return {"events": rows[:limit], "truncated": len(rows) > limit, "scan_limit_hit": hit}
