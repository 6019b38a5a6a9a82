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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Select,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    type_coerce,
    update,
)

from taehwa.analytics.records import EventFrame, EventSearch
from taehwa.core.errors import InvalidInput, NotFound
from taehwa.core.timeutil import from_us, parse_duration
from taehwa.db import analytics_events as ev

SCAN_LIMIT = 50_000
"""Most rows a statistic filter looks through."""
STAT_RE = re.compile(
    r"^\s*(?:(duration)|(min|max|mean|twa|integral|start|end)\(([A-Za-z][A-Za-z0-9_]{0,63})\))\s*"
    r"(>=|<=|>|<|==|!=)\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(ms|s|min|m|h|d)?\s*$"
)
_SQL_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    "==": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
}
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


def _rows(rs: list[Any]) -> list[EventFrame]:
    """Event rows (of `_COLUMNS`) as JSON-ready dicts (their JSON columns decoded by orjson)."""
    return [
        {
            "id": eid,
            "asset": asset,
            "template": template,
            "kind": kind,
            "start": from_us(start_us).isoformat(),
            "end": from_us(end_us).isoformat() if end_us else None,
            "start_us": start_us,
            "end_us": end_us,
            "duration_s": duration_s,
            "close_reason": reason,
            "state": "open" if end_us is None else "closed",
            "stats": _json(stats) or {},
            "info": _json(info) or {},
        }
        for eid, asset, template, kind, start_us, end_us, duration_s, reason, stats, info in rs
    ]


def _row(r: Any) -> EventFrame:
    return _rows([r])[0]


_FIELDS = ("id", "asset", "template", "kind", "start_us", "end_us", "duration_s", "close_reason", "stats", "info")
# what an event row shows, the JSON columns as their text: orjson decodes them (SQLAlchemy's JSON type goes
# through the json module)
_COLUMNS = [type_coerce(ev.c[n], Text).label(n) if n in ("stats", "info") else ev.c[n] for n in _FIELDS]


class _Shape(NamedTuple):
    """Which conditions a search has (its values are bound parameters): one statement built per shape."""

    postgresql: bool
    asset: bool
    template: bool
    kind: bool
    end: bool
    start: bool
    state: str | None
    durations: tuple[str, ...]
    fetch: int


@lru_cache(maxsize=256)
def _search_statement(shape: _Shape) -> Select[Any]:
    """The search's statement for a shape, on the indexes: (tenant, template, start, duration, end, asset) covers
    a search by template; an asset subtree is a range of paths (`p` and `p/…` sort between `p` and `p0`, in byte
    order: "C" on PostgreSQL), never LIKE."""
    conds = [ev.c.tenant == bindparam("tenant")]
    if shape.asset:
        path = ev.c.asset.collate("C") if shape.postgresql else ev.c.asset
        conds.append(
            or_(ev.c.asset == bindparam("asset"), and_(path > bindparam("asset_lo"), path < bindparam("asset_hi")))
        )
    if shape.template:
        conds.append(ev.c.template == bindparam("template"))
    if shape.kind:
        conds.append(ev.c.kind == bindparam("kind"))
    if shape.end:
        conds.append(ev.c.start_us < bindparam("end_us"))
    if shape.start:
        conds.append(or_(ev.c.end_us.is_(None), ev.c.end_us >= bindparam("start_us")))
    if shape.state == "open":
        conds.append(ev.c.end_us.is_(None))
    elif shape.state == "closed":
        conds.append(ev.c.end_us.is_not(None))
    for i, op in enumerate(shape.durations):
        conds.append(_SQL_OPS[op](ev.c.duration_s, bindparam(f"d{i}", type_=Float)))
    return select(*_COLUMNS).where(*conds).order_by(ev.c.start_us.desc()).limit(shape.fetch)


class EventSpan(NamedTuple):
    """An event as a label: its asset and span, its template's name as its kind (no value)."""

    asset: str
    start: int
    end: int
    kind: str
    value: None = None


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

    def annotate(self, tenant: str, event_id: str, key: str, value: Any) -> None:
        """Keep one more entry in an event's info (a live comparison's summary at close)."""
        with self.engine.begin() as c:
            r = c.execute(select(_COLUMNS[_FIELDS.index("info")]).where(ev.c.tenant == tenant, ev.c.id == event_id))
            row = r.first()
            if row is None:
                raise NotFound(f"no event {event_id!r}", where="id")
            info = {**(_json(row[0]) or {}), key: value}
            c.execute(update(ev).where(ev.c.tenant == tenant, ev.c.id == event_id).values(info=info))

    def delete_ids(self, tenant: str, ids: list[str]) -> int:
        """Remove events by id (those of a label that was deleted)."""
        if not ids:
            return 0
        with self.engine.begin() as c:
            return int(c.execute(delete(ev).where(ev.c.tenant == tenant, ev.c.id.in_(ids))).rowcount)

    def containing(self, tenant: str, assets: list[str], at_us: int, *, limit: int = 50) -> list[EventFrame]:
        """Events on any of these assets open at a time (start ≤ at ≤ end, or still open), newest first: the
        events an alert raised then belongs to."""
        q = (
            select(*_COLUMNS)
            .where(
                ev.c.tenant == tenant,
                ev.c.asset.in_(assets),
                ev.c.start_us <= at_us,
                or_(ev.c.end_us.is_(None), ev.c.end_us >= at_us),
            )
            .order_by(ev.c.start_us.desc())
            .limit(limit)
        )
        with self.engine.connect() as c:
            return _rows(list(c.execute(q).all()))

    def get(self, tenant: str, event_id: str) -> EventFrame:
        """One event."""
        with self.engine.connect() as c:
            r = c.execute(select(*_COLUMNS).where(ev.c.tenant == tenant, ev.c.id == event_id)).first()
        if r is None:
            raise NotFound(f"no event {event_id!r}", where="id")
        return _row(r)

    def _closed(
        self, tenant: str, templates: list[str], start_us: int | None, end_us: int | None, *columns: Any
    ) -> list[Any]:
        """Closed events of these templates overlapping [start, end) (either bound left open), oldest first, at
        most 100,000: asset, template, start and end, and `columns`."""
        q = select(ev.c.asset, ev.c.template, ev.c.start_us, ev.c.end_us, *columns).where(
            ev.c.tenant == tenant, ev.c.template.in_(templates), ev.c.end_us.is_not(None)
        )
        if end_us is not None:
            q = q.where(ev.c.start_us < end_us)
        if start_us is not None:
            q = q.where(ev.c.end_us > start_us)
        with self.engine.connect() as c:
            return list(c.execute(q.order_by(ev.c.start_us).limit(100_000)).all())

    def spans(self, tenant: str, templates: list[str], start_us: int | None, end_us: int | None) -> list[EventSpan]:
        """Closed events of these templates overlapping [start, end), as spans the lab takes as labels (the
        template's name as their kind)."""
        rows = self._closed(tenant, templates, start_us, end_us)
        return [EventSpan(r.asset, int(r.start_us), int(r.end_us), r.template) for r in rows]

    def closed_frames(self, tenant: str, template: str, start_us: int, end_us: int) -> list[dict[str, Any]]:
        """Closed events of a template overlapping [start, end), with their statistics (the lab's rows when a
        dataset is made of events), at most 100,000."""
        rows = self._closed(tenant, [template], start_us, end_us, type_coerce(ev.c.stats, Text).label("stats"))
        return [
            {"asset": r.asset, "start_us": int(r.start_us), "end_us": int(r.end_us), "stats": _json(r.stats) or {}}
            for r in rows
        ]

    def open_events(self, tenant: str) -> list[EventFrame]:
        """The tenant's open events."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(*_COLUMNS).where(ev.c.tenant == tenant, ev.c.duration_s.is_(None), ev.c.end_us.is_(None))
            ).all()  # an open event has no duration: the (tenant, duration) index finds them
        return _rows(list(rows))

    def open_of_kinds(self, tenant: str, kinds: tuple[str, ...]) -> list[EventFrame]:
        """A tenant's open events of these kinds (found through the (tenant, duration) index: an open event has
        no duration)."""
        q = select(*_COLUMNS).where(
            ev.c.tenant == tenant, ev.c.duration_s.is_(None), ev.c.end_us.is_(None), ev.c.kind.in_(kinds)
        )
        with self.engine.connect() as c:
            return _rows(list(c.execute(q.limit(100_000)).all()))

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
    ) -> EventSearch:
        """Events newest first: under an asset (its subtree), of a template, overlapping [start, end), passing the
        statistic filters. Returns {events, truncated, scanned_limit_hit}."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be between 1 and 10000", where="limit")
        filters = list(where or [])
        durations = [f for f in filters if f.field == "duration"]  # the indexed part
        stat_filters = [f for f in filters if f.field != "duration"]
        fetch = SCAN_LIMIT if stat_filters else limit + 1
        shape = _Shape(
            self.engine.dialect.name == "postgresql",
            bool(asset),
            bool(template),
            bool(kind),
            end_us is not None,
            start_us is not None,
            state if state in ("open", "closed") else None,
            tuple(f.op for f in durations),
            fetch,
        )
        given = {"template": template, "kind": kind, "start_us": start_us, "end_us": end_us}
        params: dict[str, Any] = {"tenant": tenant, **{k: v for k, v in given.items() if v is not None and v != ""}}
        if asset:
            params.update(asset=asset, asset_lo=asset + "/", asset_hi=asset + "0")
        params.update({f"d{i}": f.value for i, f in enumerate(durations)})
        q = _search_statement(shape)
        with self.engine.connect() as c:
            found = list(c.execute(q, params).all())
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
