"""Alerts and their lifecycle: active → acknowledged → resolved (by itself when the condition clears, or by hand),
each step with who, when and a note; one that cleared by itself before anyone acknowledged it can still be
acknowledged once; raised again while open, an alert is folded (its count goes up) instead of
duplicated; shelving hides it and holds its notifications for a while. Every alert keeps the chain that raised it.

Each change is one transaction that also queues the webhook notifications (the outbox), so a notification is never
lost between the change and its delivery; it is announced as an `alert` event on the twin's change stream.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from taehwa.core.errors import Conflict, InvalidInput, NotFound
from taehwa.core.timeutil import parse_time
from taehwa.db import alert_events, alerts, outbox, webhooks
from taehwa.live.records import AlertDetail, AlertRecord
from taehwa.tenancy.access import current

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService

STATES = ("active", "acknowledged", "resolved")
OPEN = ("active", "acknowledged")
log = logging.getLogger(__name__)
ACTIONS = ("raised", "folded", "acknowledged", "shelved", "unshelved", "resolved")


def _iso(d: datetime | None) -> str | None:
    if d is None:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).isoformat()


def _at(d: datetime) -> str:
    """A time that is always set (an alert's raising, its last raising), ISO with its offset."""
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).isoformat()


def _aware(d: datetime | None) -> datetime | None:
    return None if d is None else d if d.tzinfo else d.replace(tzinfo=UTC)


def alert_dict(row: Any) -> AlertRecord:
    """JSON form of an alert row."""
    r = row._mapping  # (a Row's .count is the tuple method)
    now = datetime.now(UTC)
    shelved = _aware(r["shelved_until"])
    return {
        "id": r["id"],
        "rule": r["rule"],
        "asset": r["asset"],
        "tag": r["tag"],
        "severity": r["severity"],
        "state": r["state"],
        "message": r["message"],
        "value": r["value"],
        "count": r["count"],
        "raised_at": _at(r["raised_at"]),
        "last_at": _at(r["last_at"]),
        "resolved_at": _iso(r["resolved_at"]),
        "shelved_until": _iso(shelved) if shelved and shelved > now else None,
        "chain": r["chain"],
    }


class AlertFollower(Protocol):
    """What follows alerts (the analytics' event frames): told of each change, asked which events one belongs to."""

    def alert_changed(self, tenant: str, action: str, alert: Mapping[str, Any]) -> None: ...

    def events_of_alert(self, tenant: str, alert: Mapping[str, Any]) -> builtins.list[dict[str, Any]]: ...


class AlertBook:
    """The alerts of every tenant, in the metadata database."""

    def __init__(
        self,
        *,
        engine: Engine,
        tenants: TenantService,
        audit: AuditLog,
        twin: TwinService,
        follower: AlertFollower | None = None,
    ) -> None:
        """The metadata database, tenancy and audit, the twin (its event hub tells watchers of a change), and what
        follows alerts (events opened by an alert, the events an alert belongs to)."""
        self.engine, self.tenants, self.audit, self.twin = engine, tenants, audit, twin
        self.follower = follower
        self.wake_notifier = threading.Event()
        self._lock = threading.Lock()

    # -- raised by the rule engine (as the system) ------------------------------------------------------------------
    def open_alert(self, tenant: str, rule: str, asset: str | None, tag: str | None) -> Any:
        with self.engine.connect() as c:
            return c.execute(
                select(alerts)
                .where(
                    (alerts.c.tenant == tenant)
                    & (alerts.c.rule == rule)
                    & (alerts.c.state.in_(OPEN))
                    & (alerts.c.asset == asset if asset is not None else alerts.c.asset.is_(None))
                    & (alerts.c.tag == tag if tag is not None else alerts.c.tag.is_(None))
                )
                .order_by(alerts.c.id.desc())
            ).first()

    def raise_alert(
        self,
        tenant: str,
        *,
        rule: str,
        asset: str | None,
        tag: str | None,
        severity: str,
        message: str,
        value: float | None,
        chain: dict[str, Any],
    ) -> AlertRecord:
        """A new alert, or the open one for the same rule and asset folded (count + 1)."""
        now = datetime.now(UTC)
        with self._lock, self.engine.begin() as c:
            existing = c.execute(
                select(alerts)
                .where(
                    (alerts.c.tenant == tenant)
                    & (alerts.c.rule == rule)
                    & (alerts.c.state.in_(OPEN))
                    & (alerts.c.asset == asset if asset is not None else alerts.c.asset.is_(None))
                    & (alerts.c.tag == tag if tag is not None else alerts.c.tag.is_(None))
                )
                .order_by(alerts.c.id.desc())
            ).first()
            if existing is not None:
                c.execute(
                    update(alerts)
                    .where(alerts.c.id == existing.id)
                    .values(count=existing._mapping["count"] + 1, last_at=now, value=value)
                )
                self._event(c, existing.id, "folded", "system", None, now)
                row = c.execute(select(alerts).where(alerts.c.id == existing.id)).one()
                shelved = _aware(row.shelved_until)
                if not (shelved and shelved > now):
                    self._queue(c, tenant, "folded", row)
            else:
                key = c.execute(
                    insert(alerts).values(
                        tenant=tenant,
                        rule=rule,
                        asset=asset,
                        tag=tag,
                        severity=severity,
                        state="active",
                        message=message,
                        value=value,
                        chain=chain,
                        count=1,
                        raised_at=now,
                        last_at=now,
                    )
                ).inserted_primary_key
                assert key is not None
                aid = int(key[0])
                self._event(c, aid, "raised", "system", None, now)
                row = c.execute(select(alerts).where(alerts.c.id == aid)).one()
                self._queue(c, tenant, "raised", row)
        doc = alert_dict(row)
        self._announce(tenant, "folded" if existing is not None else "raised", doc)
        return doc

    def clear(self, tenant: str, alert_id: int, note: str) -> AlertRecord | None:
        """The condition cleared: resolve the alert by itself (when it is still open)."""
        return self._change(tenant, alert_id, "resolved", "system", note, system=True)

    # -- people -------------------------------------------------------------------------------------------------
    def acknowledge(self, tenant: str, alert_id: int, note: str | None = None) -> AlertRecord:
        self.tenants.require(tenant, "write")
        out = self._change(tenant, alert_id, "acknowledged", current().user, note)
        assert out is not None
        return out

    def resolve(self, tenant: str, alert_id: int, note: str | None = None) -> AlertRecord:
        self.tenants.require(tenant, "write")
        out = self._change(tenant, alert_id, "resolved", current().user, note)
        assert out is not None
        return out

    def shelve(self, tenant: str, alert_id: int, seconds: float, note: str | None = None) -> AlertRecord:
        """Hide an open alert and hold its notifications for `seconds` (at most 7 days)."""
        self.tenants.require(tenant, "write")
        if not 0 < seconds <= 7 * 86_400:
            raise InvalidInput("shelve for more than 0 s and at most 7 days", where="seconds")
        out = self._change(tenant, alert_id, "shelved", current().user, note, shelve_s=seconds)
        assert out is not None
        return out

    def unshelve(self, tenant: str, alert_id: int, note: str | None = None) -> AlertRecord:
        self.tenants.require(tenant, "write")
        out = self._change(tenant, alert_id, "unshelved", current().user, note)
        assert out is not None
        return out

    def _change(
        self,
        tenant: str,
        alert_id: int,
        action: str,
        actor: str,
        note: str | None,
        *,
        system: bool = False,
        shelve_s: float | None = None,
    ) -> AlertRecord | None:
        now = datetime.now(UTC)
        with self._lock, self.engine.begin() as c:
            row = c.execute(select(alerts).where((alerts.c.tenant == tenant) & (alerts.c.id == alert_id))).first()
            if row is None:
                raise NotFound(f"no alert {alert_id} in tenant {tenant!r}", where="alert")
            values: dict[str, Any] = {}
            if row.state == "resolved":
                if system:
                    return None
                if action != "acknowledged" or not self._cleared_unacknowledged(c, alert_id):
                    raise Conflict(f"alert {alert_id} is already resolved", where="alert")
                # cleared by itself before anyone saw it: the acknowledgement is still owed and recorded (ISA-18.2's
                # "returned to normal, unacknowledged"); the alert stays resolved
            elif action == "acknowledged":
                if row.state == "acknowledged":
                    raise Conflict(f"alert {alert_id} is already acknowledged", where="alert")
                values["state"] = "acknowledged"
            elif action == "resolved":
                values.update(state="resolved", resolved_at=now, shelved_until=None)
            elif action == "shelved":
                values["shelved_until"] = now + timedelta(seconds=float(shelve_s or 0))
            elif action == "unshelved":
                shelved = _aware(row.shelved_until)
                if not (shelved and shelved > now):
                    raise Conflict(f"alert {alert_id} is not shelved", where="alert")
                values["shelved_until"] = None
            if values:
                c.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))
            self._event(c, alert_id, action, actor, note, now)
            row = c.execute(select(alerts).where(alerts.c.id == alert_id)).one()
            self._queue(c, tenant, action, row, actor=actor, note=note)
        doc = alert_dict(row)
        if not system:
            self.audit.append(
                f"alert.{action}", tenant=tenant, target=f"alert {alert_id}", after={"note": note} if note else None
            )
        self._announce(tenant, action, doc)
        return doc

    @staticmethod
    def _cleared_unacknowledged(c: Connection, alert_id: int) -> bool:
        """Whether the alert was resolved by the system (its condition cleared) and nobody has acknowledged it."""
        events = c.execute(
            select(alert_events.c.action, alert_events.c.actor)
            .where(alert_events.c.alert_id == alert_id)
            .order_by(alert_events.c.id)
        ).all()
        acked = any(e.action == "acknowledged" for e in events)
        resolved_by = [e.actor for e in events if e.action == "resolved"]
        return not acked and bool(resolved_by) and resolved_by[-1] == "system"

    @staticmethod
    def _event(c: Connection, alert_id: int, action: str, actor: str, note: str | None, at: datetime) -> None:
        c.execute(insert(alert_events).values(alert_id=alert_id, action=action, actor=actor, note=note, at=at))

    def _queue(
        self, c: Connection, tenant: str, action: str, row: Any, *, actor: str = "system", note: str | None = None
    ) -> None:
        """Queue the notification of every webhook that wants this action (in the change's transaction)."""
        hooks = c.execute(select(webhooks).where(webhooks.c.tenant == tenant)).all()
        payload = {"tenant": tenant, "action": action, "actor": actor, "note": note, "alert": alert_dict(row)}
        for h in hooks:
            if action in h.events:
                c.execute(
                    insert(outbox).values(
                        tenant=tenant, webhook=h.name, payload=payload, attempts=0, next_at=datetime.now(UTC)
                    )
                )
        if hooks:
            self.wake_notifier.set()

    def _announce(self, tenant: str, action: str, doc: AlertRecord) -> None:
        asset = doc["asset"]
        paths = (asset,) if asset else ()
        self.twin.hub.publish(tenant, [("alert", paths, {"action": action, "alert": doc})])
        if self.follower is not None:
            try:
                self.follower.alert_changed(tenant, action, doc)
            except Exception:  # the alert stands whatever its follower makes of it
                log.exception("tenant %s: alert %s %s not followed", tenant, doc.get("id"), action)

    # -- reading ------------------------------------------------------------------------------------------------
    def list(
        self,
        tenant: str,
        *,
        state: str | None = None,
        asset: str | None = None,
        severity: str | None = None,
        rule: str | None = None,
        since: str | None = None,
        include_shelved: bool = True,
        limit: int = 1000,
    ) -> builtins.list[AlertRecord]:
        """Alerts newest first: by state (or `open`), under an asset, of a severity or rule, raised since a time."""
        self.tenants.require(tenant)
        q = select(alerts).where(alerts.c.tenant == tenant)
        if state is not None:
            if state not in (*STATES, "open"):
                raise InvalidInput(f"state is one of {', '.join((*STATES, 'open'))}", where="state")
            q = q.where(alerts.c.state.in_(OPEN) if state == "open" else alerts.c.state == state)
        if asset is not None:
            q = q.where((alerts.c.asset == asset) | alerts.c.asset.startswith(asset + "/", autoescape=True))
        if severity is not None:
            q = q.where(alerts.c.severity == severity)
        if rule is not None:
            q = q.where(alerts.c.rule == rule)
        if since is not None:
            q = q.where(alerts.c.raised_at >= parse_time(since, field="since"))
        if not 1 <= limit <= 100_000:
            raise InvalidInput("limit is 1–100000", where="limit")
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(alerts.c.id.desc()).limit(limit)).all()
        docs = [alert_dict(r) for r in rows]
        return docs if include_shelved else [d for d in docs if not d["shelved_until"]]

    def get(self, tenant: str, alert_id: int) -> AlertDetail:
        """One alert with its history (who did what, when, with which note)."""
        self.tenants.require(tenant)
        with self.engine.connect() as c:
            row = c.execute(select(alerts).where((alerts.c.tenant == tenant) & (alerts.c.id == alert_id))).first()
            if row is None:
                raise NotFound(f"no alert {alert_id} in tenant {tenant!r}", where="alert")
            events = c.execute(
                select(alert_events).where(alert_events.c.alert_id == alert_id).order_by(alert_events.c.id)
            ).all()
        doc = alert_dict(row)
        return {
            **doc,
            "history": [{"action": e.action, "actor": e.actor, "note": e.note, "at": _iso(e.at)} for e in events],
            "events": self.follower.events_of_alert(tenant, doc) if self.follower is not None else [],
        }

    def open_alerts(self) -> builtins.list[Any]:
        """Every open alert of every tenant (the rule engine's state after a restart)."""
        with self.engine.connect() as c:
            return list(c.execute(select(alerts).where(alerts.c.state.in_(OPEN))).all())
