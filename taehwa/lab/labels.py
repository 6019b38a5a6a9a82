"""Labels: what people know about the plant's past, kept as time intervals or points on assets.

An interval (start, end) marks a fault, a maintenance or an anomaly; a point (end empty) carries a value, such as a
lab measurement, or marks an event, such as a failure from which remaining useful life is derived. Labels come from
the API or a CSV file (`asset,kind,start,end,value,note`); a file with any bad row is refused as a whole.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from taehwa.core.errors import InvalidInput, NotFound, ValidationFailed
from taehwa.core.names import MAX_LABEL_KIND, label_kind_ok
from taehwa.core.timeutil import from_us, to_us
from taehwa.db import labels
from taehwa.tenancy.access import current
from taehwa.tenancy.audit import AuditLog
from taehwa.tenancy.tenants import TenantService

MAX_KIND = MAX_LABEL_KIND
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Label:
    id: int
    asset: str
    kind: str
    start: str
    end: str | None
    value: float | None
    note: str | None
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(row: dict[str, Any], where: str) -> dict[str, Any]:
    """One label's fields, checked; raises InvalidInput naming the field."""
    asset = str(row.get("asset") or "").strip().strip("/")
    kind = str(row.get("kind") or "").strip()
    if not asset:
        raise InvalidInput("a label needs an asset path", where=f"{where}.asset")
    if not label_kind_ok(kind):
        raise InvalidInput(
            f"label kind must be 1 to {MAX_KIND} letters, digits, '-', '_' or '.', got {kind!r}", where=f"{where}.kind"
        )
    if row.get("start") in (None, ""):
        raise InvalidInput("a label needs a start time", where=f"{where}.start")
    start = to_us(row["start"], field=f"{where}.start")
    end = None if row.get("end") in (None, "") else to_us(row["end"], field=f"{where}.end")
    if end is not None and end <= start:
        raise InvalidInput("a label's end must be after its start", where=f"{where}.end")
    value = row.get("value")
    if value in (None, ""):
        value = None
    else:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"label value must be a number, got {value!r}", where=f"{where}.value") from None
        if not math.isfinite(value):
            raise InvalidInput("label value must be finite", where=f"{where}.value")
    note = row.get("note")
    return {
        "asset": asset,
        "kind": kind,
        "start": start,
        "end": end,
        "value": value,
        "note": None if note in (None, "") else str(note)[:2000],
    }


class LabelService:
    """Add, import, list and delete labels of one tenant (engineers write, viewers read)."""

    def __init__(
        self,
        engine: Engine,
        tenants: TenantService,
        audit: AuditLog,
        listeners: Sequence[Callable[[str, str, list[dict[str, Any]]], None]] = (),
    ) -> None:
        """The metadata database, tenancy, audit, and what is told of labels added or deleted as
        (tenant, "added" | "deleted", rows with id, asset, kind, start and end in µs): the analytics' events."""
        self._engine, self._tenants, self._audit = engine, tenants, audit
        self._listeners = tuple(listeners)

    def _tell(self, tenant: str, action: str, rows: list[dict[str, Any]]) -> None:
        for listener in self._listeners:
            try:
                listener(tenant, action, rows)
            except Exception:  # the labels stand whatever a listener makes of them
                log.exception("tenant %s: labels %s not followed", tenant, action)

    def add(self, tenant: str, rows: list[dict[str, Any]], *, source: str = "labels") -> int:
        """Store labels (all or none): every row is checked before any is written."""
        self._tenants.require(tenant, "write")
        if not isinstance(rows, list) or not rows:
            raise InvalidInput("give at least one label", where=source)
        problems, clean = [], []
        for i, row in enumerate(rows):
            try:
                if not isinstance(row, dict):
                    raise InvalidInput("a label is an object with asset, kind, start", where=f"{source}[{i}]")
                clean.append(_check(row, f"{source}[{i}]"))
            except InvalidInput as exc:
                problems.append((exc.where or source, exc.message))
        if problems:
            raise ValidationFailed(problems)
        return self._store(tenant, clean, source)

    def _store(self, tenant: str, clean: list[dict[str, Any]], source: str) -> int:
        actor, now = current().user, datetime.now(UTC)
        with self._engine.begin() as c:
            ids = c.execute(
                insert(labels).returning(labels.c.id, sort_by_parameter_order=True),
                [{**r, "tenant": tenant, "created_by": actor, "created_at": now} for r in clean],
            ).scalars()
            added = [{**r, "id": i} for r, i in zip(clean, ids, strict=True)]
        kinds = sorted({r["kind"] for r in clean})
        self._audit.append("labels.add", tenant=tenant, target=source, after={"count": len(clean), "kinds": kinds})
        self._tell(tenant, "added", added)
        return len(clean)

    def import_csv(self, tenant: str, text: str, *, source: str = "labels.csv") -> int:
        """Labels from CSV with a header naming asset, kind, start and optionally end, value, note."""
        self._tenants.require(tenant, "write")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            fields = reader.fieldnames
            need = {"asset", "kind", "start"}
            if fields is None or not need <= set(fields):
                have = ", ".join(fields or []) or "nothing"
                raise InvalidInput(f"the header must name asset, kind and start (it has {have})", where=f"{source}:1")
            rows = list(reader)
        except csv.Error as exc:
            raise InvalidInput(f"not readable as CSV: {exc}", where=f"{source}:{reader.line_num}") from None
        problems, clean = [], []
        for i, row in enumerate(rows):
            try:
                clean.append(_check(row, f"{source}:{i + 2}"))
            except InvalidInput as exc:
                problems.append((exc.where or source, exc.message))
        if problems:
            raise ValidationFailed(problems)
        if not clean:
            raise InvalidInput("the file has a header but no labels", where=source)
        return self._store(tenant, clean, source)

    def list_labels(
        self,
        tenant: str,
        *,
        asset: str | None = None,
        kind: str | None = None,
        start: Any = None,
        end: Any = None,
        limit: int = 10_000,
    ) -> list[Label]:
        """Labels of the tenant, optionally under one asset, of one kind, overlapping [start, end)."""
        return [
            _label(r)
            for r in self.rows(tenant, asset=asset, kinds=[kind] if kind else None, start=start, end=end, limit=limit)
        ]

    def rows(
        self,
        tenant: str,
        *,
        asset: str | None = None,
        kinds: list[str] | None = None,
        start: Any = None,
        end: Any = None,
        limit: int | None = None,
    ) -> list[Any]:
        """Raw label rows (times in µs), for building targets."""
        self._tenants.require(tenant)
        q = select(labels).where(labels.c.tenant == tenant)
        if asset:
            a = asset.strip("/")
            q = q.where((labels.c.asset == a) | labels.c.asset.startswith(a + "/"))
        if kinds:
            q = q.where(labels.c.kind.in_(kinds))
        if end is not None:
            q = q.where(labels.c.start < to_us(end, field="end"))
        if start is not None:
            s = to_us(start, field="start")
            q = q.where((labels.c.end.is_(None) & (labels.c.start >= s)) | (labels.c.end > s))
        q = q.order_by(labels.c.start, labels.c.id)
        if limit:
            q = q.limit(limit)
        with self._engine.connect() as c:
            return list(c.execute(q))

    def delete(self, tenant: str, label_id: int) -> None:
        self._tenants.require(tenant, "write")
        which = (labels.c.tenant == tenant) & (labels.c.id == label_id)
        with self._engine.begin() as c:
            row = c.execute(
                select(labels.c.id, labels.c.asset, labels.c.kind, labels.c.start, labels.c.end).where(which)
            ).first()
            n = c.execute(delete(labels).where(which)).rowcount
        if not n or row is None:
            raise NotFound(f"no label {label_id} in tenant {tenant!r}", where="label")
        self._audit.append("labels.delete", tenant=tenant, target=str(label_id))
        self._tell(tenant, "deleted", [dict(row._mapping)])


def _label(r: Any) -> Label:
    return Label(
        r.id,
        r.asset,
        r.kind,
        from_us(r.start).isoformat(),
        None if r.end is None else from_us(r.end).isoformat(),
        r.value,
        r.note,
        r.created_by,
    )
