"""Webhook notifications of alert changes: each change queues one message per webhook in the outbox, in the same
transaction as the change; a delivery thread posts them in order and retries with growing pauses (up to a minute)
until the receiver answers 2xx. Messages are signed (HMAC-SHA256 of the body in `X-Taehwa-Signature`) when the
webhook has a secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, func, insert, select, update

from taehwa.core.errors import Conflict, NotFound, ValidationFailed
from taehwa.db import outbox, webhooks
from taehwa.live.alerts import ACTIONS
from taehwa.live.records import WebhookRecord
from taehwa.tenancy.access import current

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from taehwa.historian.store import Historian
    from taehwa.live.alerts import AlertBook
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService

log = logging.getLogger(__name__)
MAX_PAUSE_S = 60.0


class WebhookIn(BaseModel):
    """A receiver of alert notifications."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    url: str = Field(max_length=2048, description="http(s) URL the JSON messages are POSTed to")
    events: list[str] = Field(
        default_factory=lambda: ["raised", "acknowledged", "resolved"],
        description=f"Which alert actions it receives: {', '.join(ACTIONS)}",
    )
    secret: str | None = Field(None, min_length=8, max_length=255, description="Key of the HMAC signature")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("an http:// or https:// URL with a host")
        return v

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if e not in ACTIONS]
        if bad or not v:
            raise ValueError(f"events are some of {', '.join(ACTIONS)}")
        return v


class Notifier:
    """Webhooks per tenant and the thread that delivers their queued messages."""

    def __init__(
        self, *, engine: Engine, tenants: TenantService, audit: AuditLog, historian: Historian, alerts: AlertBook
    ) -> None:
        """The metadata database, tenancy and audit; the historian (whose leases say which tenants are this
        node's) and the alert book (which wakes the delivery thread)."""
        self.engine, self.tenants, self.audit, self.historian = engine, tenants, audit, historian
        self.wake = alerts.wake_notifier
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- webhooks -------------------------------------------------------------------------------------------------
    def add(self, tenant: str, doc: dict[str, Any] | WebhookIn) -> WebhookRecord:
        self.tenants.require(tenant, "admin")
        try:
            hook = doc if isinstance(doc, WebhookIn) else WebhookIn.model_validate(doc)
        except ValidationError as exc:
            raise ValidationFailed.from_pydantic(exc, "webhook") from None
        with self.engine.begin() as c:
            if c.execute(
                select(webhooks.c.name).where((webhooks.c.tenant == tenant) & (webhooks.c.name == hook.name))
            ).first():
                raise Conflict(f"webhook {hook.name!r} exists", where="name")
            c.execute(
                insert(webhooks).values(
                    tenant=tenant,
                    name=hook.name,
                    url=hook.url,
                    events=hook.events,
                    secret=hook.secret,
                    created_by=current().user,
                    created_at=datetime.now(UTC),
                )
            )
        self.audit.append(
            "webhook.add", tenant=tenant, target=hook.name, after={"url": hook.url, "events": hook.events}
        )
        return self.get(tenant, hook.name)

    def list(self, tenant: str) -> list[WebhookRecord]:
        self.tenants.require(tenant)
        with self.engine.connect() as c:
            hooks = c.execute(select(webhooks).where(webhooks.c.tenant == tenant).order_by(webhooks.c.name)).all()
            pending: dict[str, int] = dict(
                c.execute(
                    select(outbox.c.webhook, func.count())
                    .where((outbox.c.tenant == tenant) & outbox.c.delivered_at.is_(None))
                    .group_by(outbox.c.webhook)
                ).all()
            )
            errors = {
                r.webhook: (r.last_error, r.attempts)
                for r in c.execute(
                    select(outbox)
                    .where(
                        (outbox.c.tenant == tenant) & outbox.c.delivered_at.is_(None) & outbox.c.last_error.is_not(None)
                    )
                    .order_by(outbox.c.id)
                ).all()
            }
        return [
            {
                "name": h.name,
                "url": h.url,
                "events": h.events,
                "signed": bool(h.secret),
                "pending": int(pending.get(h.name, 0)),
                "last_error": errors.get(h.name, (None, 0))[0],
                "attempts": errors.get(h.name, (None, 0))[1],
            }
            for h in hooks
        ]

    def get(self, tenant: str, name: str) -> WebhookRecord:
        found = [h for h in self.list(tenant) if h["name"] == name]
        if not found:
            raise NotFound(f"no webhook {name!r} in tenant {tenant!r}", where="webhook")
        return found[0]

    def remove(self, tenant: str, name: str) -> None:
        self.tenants.require(tenant, "admin")
        self.get(tenant, name)
        with self.engine.begin() as c:
            c.execute(delete(webhooks).where((webhooks.c.tenant == tenant) & (webhooks.c.name == name)))
            c.execute(
                delete(outbox).where(
                    (outbox.c.tenant == tenant) & (outbox.c.webhook == name) & outbox.c.delivered_at.is_(None)
                )
            )
        self.audit.append("webhook.remove", tenant=tenant, target=name)

    # -- delivery -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="live-webhooks", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(0.5)
            self.wake.clear()
            try:
                self.deliver_due()
            except Exception:
                log.exception("webhook delivery failed")

    def deliver_due(self) -> int:
        """Post every message that is due, in order per webhook; returns how many were delivered."""
        now = datetime.now(UTC)
        q = (
            select(outbox, webhooks.c.url, webhooks.c.secret)
            .join(webhooks, (webhooks.c.tenant == outbox.c.tenant) & (webhooks.c.name == outbox.c.webhook))
            .where(outbox.c.delivered_at.is_(None))
        )
        own = self.historian.leases.active_tenants()
        if own is not None:  # writers by tenant: each delivers its own tenants' messages, so none goes twice
            q = q.where(outbox.c.tenant.in_(sorted(own)))
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(outbox.c.id).limit(500)).all()
        blocked: set[tuple[str, str]] = set()
        done = 0
        for r in rows:
            key = (r.tenant, r.webhook)
            next_at = r.next_at if r.next_at.tzinfo else r.next_at.replace(tzinfo=UTC)
            if key in blocked or next_at > now:
                blocked.add(key)  # keep the order: nothing after a message that waits
                continue
            body = json.dumps(r.payload).encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "taehwa-webhook",
                "X-Taehwa-Delivery": str(r.id),
                "X-Taehwa-Event": r.payload.get("action", ""),
            }
            if r.secret:
                headers["X-Taehwa-Signature"] = (
                    "sha256=" + hmac.new(r.secret.encode(), body, hashlib.sha256).hexdigest()
                )
            error = None
            try:
                req = urllib.request.Request(r.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if not 200 <= resp.status < 300:
                        error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                error = str(getattr(exc, "reason", exc))
            with self.engine.begin() as c:
                if error is None:
                    c.execute(
                        update(outbox)
                        .where(outbox.c.id == r.id)
                        .values(delivered_at=datetime.now(UTC), attempts=r.attempts + 1, last_error=None)
                    )
                    done += 1
                else:
                    pause = min(MAX_PAUSE_S, 0.5 * 2**r.attempts)
                    c.execute(
                        update(outbox)
                        .where(outbox.c.id == r.id)
                        .values(
                            attempts=r.attempts + 1,
                            last_error=error,
                            next_at=datetime.now(UTC) + timedelta(seconds=pause),
                        )
                    )
                    blocked.add(key)
        return done
