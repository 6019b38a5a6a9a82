"""Tenants: every stored record and every call is scoped to one (a company or a research group)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from taehwa.core.errors import Conflict, InvalidInput, NotFound
from taehwa.core.names import check_tenant
from taehwa.db import tenants
from taehwa.tenancy.access import check, check_platform_admin, current
from taehwa.tenancy.audit import AuditLog


@dataclass(frozen=True)
class Tenant:
    """A company or research group on the platform."""

    id: str
    name: str
    retention_days: int | None
    created_at: datetime


class TenantService:
    """Create, list and look up tenants; `require` is the gate every scoped call passes through."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self._engine = engine
        self._audit = audit
        self._known: set[str] = set()

    def create(self, tenant_id: str, name: str | None = None, retention_days: int | None = None) -> Tenant:
        """Add a tenant; its id is used in URLs, paths and the historian's partitions (platform admins only)."""
        check_platform_admin("create tenants")
        check_tenant(tenant_id)
        if retention_days is not None and not 0 < retention_days <= 36_500:
            raise InvalidInput("retention must be 1 to 36500 days", where="retention_days")
        row = Tenant(tenant_id, name or tenant_id, retention_days, datetime.now(UTC))
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(tenants).values(
                        id=row.id, name=row.name, retention_days=row.retention_days, created_at=row.created_at
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"tenant {tenant_id!r} already exists", where="tenant") from exc
        self._known.add(tenant_id)
        self._audit.append(
            "tenant.create",
            tenant=tenant_id,
            target=tenant_id,
            after={"name": row.name, "retention_days": retention_days},
        )
        return row

    def get(self, tenant_id: str) -> Tenant:
        """The tenant, or NotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(tenants).where(tenants.c.id == tenant_id)).first()
        if row is None:
            raise NotFound(f"unknown tenant {tenant_id!r}", where="tenant")
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        return Tenant(row.id, row.name, row.retention_days, created)

    def require(self, tenant_id: str, action: str = "read") -> str:
        """The gate every scoped call passes: may the caller do `action` here, and does the tenant exist?

        Access is checked first, so a caller without access learns nothing of which tenants exist.
        """
        check(tenant_id, action)
        if tenant_id not in self._known:
            self.get(tenant_id)
            self._known.add(tenant_id)
        return tenant_id

    def list(self) -> list[Tenant]:
        """The tenants the caller may read (all of them for platform admins and the local system), by id."""
        visible = current().tenants()
        with self._engine.connect() as conn:
            rows = conn.execute(select(tenants.c.id).order_by(tenants.c.id)).scalars().all()
        return [self.get(r) for r in rows if visible is None or r in visible]

    def rename(self, tenant_id: str, name: str) -> Tenant:
        """Give the tenant a new display name (its id, used in paths and URLs, never changes); tenant admins."""
        name = name.strip() if isinstance(name, str) else ""
        if not 0 < len(name) <= 255:
            raise InvalidInput("a tenant's name is 1-255 characters", where="name")
        self.require(tenant_id, "admin")
        before = self.get(tenant_id).name
        if before != name:
            with self._engine.begin() as conn:
                conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(name=name))
            self._audit.append(
                "tenant.rename", tenant=tenant_id, target=tenant_id, before={"name": before}, after={"name": name}
            )
        return self.get(tenant_id)

    def set_retention(self, tenant_id: str, retention_days: int | None) -> Tenant:
        """Keep this tenant's points for this many days (None: for ever)."""
        if retention_days is not None and not 0 < retention_days <= 36_500:
            raise InvalidInput("retention must be 1 to 36500 days", where="retention_days")
        self.require(tenant_id, "admin")
        before = self.get(tenant_id).retention_days
        with self._engine.begin() as conn:
            conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(retention_days=retention_days))
        self._audit.append(
            "tenant.retention",
            tenant=tenant_id,
            target=tenant_id,
            before={"retention_days": before},
            after={"retention_days": retention_days},
        )
        return self.get(tenant_id)
