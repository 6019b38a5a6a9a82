"""Sharing by consent: a tenant grants another tenant (a company, a research group) read access to a dataset —
some tags over a time range — for a limited time, revocably, and optionally pseudonymised (tag names replaced,
values affinely scaled). Every read under a grant is written to the granting tenant's audit log.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, insert, or_, select, update

from taehwa.core.errors import Forbidden, InvalidInput, NotFound
from taehwa.core.timeutil import from_us, to_us
from taehwa.db import grants
from taehwa.historian.store import Historian
from taehwa.tenancy.access import SYSTEM, acting_as, current
from taehwa.tenancy.audit import AuditLog
from taehwa.tenancy.tenants import TenantService

LINEAR_AGGS = {"avg", "min", "max", "first", "last", "twa"}


@dataclass(frozen=True)
class Grant:
    """Read access to tags × a time range, from one tenant to another."""

    id: str
    owner: str
    grantee: str
    tags: list[str]
    start_us: int
    end_us: int
    pseudonymise: bool
    scale: tuple[float, float] | None
    salt: str
    purpose: str | None
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None

    def active(self, now: datetime | None = None) -> bool:
        """Neither revoked nor expired."""
        now = now or datetime.now(UTC)
        return self.revoked_at is None and self.expires_at > now

    def to_dict(self, *, for_owner: bool) -> dict[str, Any]:
        """JSON form; the scaling stays with the owner."""
        out: dict[str, Any] = {
            "id": self.id,
            "owner": self.owner,
            "grantee": self.grantee,
            "start": from_us(self.start_us).isoformat(),
            "end": from_us(self.end_us).isoformat(),
            "pseudonymised": self.pseudonymise,
            "purpose": self.purpose,
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.active(),
        }
        if for_owner or not self.pseudonymise:
            out["tags"] = list(self.tags)
        if for_owner:
            out["created_by"] = self.created_by
            out["scale"] = {"a": self.scale[0], "b": self.scale[1]} if self.scale else None
        return out

    def alias(self, tag: str) -> str:
        """The name a tag has under this grant."""
        if not self.pseudonymise:
            return tag
        return f"shared/{self.id}/s{hashlib.sha256((self.salt + tag).encode()).hexdigest()[:12]}"

    def covers(self, tag: str) -> bool:
        """Whether the grant includes a tag."""
        return any(tag == t or (t.endswith("/*") and tag.startswith(t[:-1])) for t in self.tags)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value if value.tzinfo else value.replace(tzinfo=UTC)


class SharingService:
    """Grants, and reads made under them."""

    def __init__(self, engine: Engine, historian: Historian, tenants: TenantService, audit: AuditLog) -> None:
        """The metadata engine (grants), the historian (the points read under a grant), the tenant book (owner
        and grantee must exist, the owner's admin) and the audit log."""
        self._engine = engine
        self.historian, self.tenants = historian, tenants
        self._audit = audit

    def create(
        self,
        owner: str,
        grantee: str,
        tags: list[str],
        start: Any,
        end: Any,
        *,
        days: float,
        pseudonymise: bool = False,
        purpose: str | None = None,
    ) -> Grant:
        """Grant `grantee` read access to `tags` (names, or prefixes as 'unit/*') in [start, end) for `days`."""
        self.tenants.require(owner, "admin")
        if grantee == owner:
            raise InvalidInput("a tenant needs no grant to read its own data", where="grantee")
        with acting_as(SYSTEM):
            self.tenants.require(grantee)  # the grantee must exist
        if not tags or not all(isinstance(t, str) and t for t in tags):
            raise InvalidInput("name at least one tag (or a prefix such as 'cdu/*')", where="tags")
        if not 0 < days <= 3650:
            raise InvalidInput("a grant lasts between a moment and 10 years (days)", where="days")
        s, e = to_us(start, field="start"), to_us(end, field="end")
        if e <= s:
            raise InvalidInput("end must be after start", where="end")
        rng = np.random.default_rng(secrets.randbits(64))
        scale = (float(rng.uniform(0.5, 2.0)), float(rng.uniform(-100, 100))) if pseudonymise else None
        now = datetime.now(UTC)
        grant = Grant(
            secrets.token_hex(6),
            owner,
            grantee,
            list(tags),
            s,
            e,
            pseudonymise,
            scale,
            secrets.token_hex(16),
            purpose,
            current().user,
            now + timedelta(days=days),
            None,
        )
        with self._engine.begin() as c:
            c.execute(
                insert(grants).values(
                    id=grant.id,
                    owner=owner,
                    grantee=grantee,
                    tags=grant.tags,
                    start_us=s,
                    end_us=e,
                    pseudonymise=pseudonymise,
                    scale={"a": scale[0], "b": scale[1]} if scale else None,
                    salt=grant.salt,
                    purpose=purpose,
                    created_by=grant.created_by,
                    created_at=now,
                    expires_at=grant.expires_at,
                )
            )
        self._audit.append("grant.create", tenant=owner, target=grant.id, after=grant.to_dict(for_owner=True))
        return grant

    def _get(self, grant_id: str) -> Grant:
        with self._engine.connect() as c:
            r = c.execute(select(grants).where(grants.c.id == grant_id)).first()
        if r is None:
            raise NotFound(f"no grant {grant_id!r}", where="grant")
        scale = (float(r.scale["a"]), float(r.scale["b"])) if r.scale else None
        return Grant(
            r.id,
            r.owner,
            r.grantee,
            list(r.tags),
            r.start_us,
            r.end_us,
            bool(r.pseudonymise),
            scale,
            r.salt,
            r.purpose,
            r.created_by,
            _utc(r.expires_at) or datetime.now(UTC),
            _utc(r.revoked_at),
        )

    def overview(self, tenant: str) -> dict[str, list[dict[str, Any]]]:
        """Grants a tenant has given (its admins) and received (its readers)."""
        self.tenants.require(tenant)
        with self._engine.connect() as c:
            rows = (
                c.execute(
                    select(grants.c.id)
                    .where(or_(grants.c.owner == tenant, grants.c.grantee == tenant))
                    .order_by(grants.c.created_at)
                )
                .scalars()
                .all()
            )
        given, received = [], []
        admin = current().may(tenant, "admin")
        for gid in rows:
            g = self._get(gid)
            if g.owner == tenant and admin:
                given.append(g.to_dict(for_owner=True))
            elif g.grantee == tenant:
                received.append(g.to_dict(for_owner=False))
        return {"given": given, "received": received}

    def revoke(self, owner: str, grant_id: str) -> None:
        """End a grant at once."""
        self.tenants.require(owner, "admin")
        g = self._get(grant_id)
        if g.owner != owner:
            raise NotFound(f"no grant {grant_id!r}", where="grant")
        with self._engine.begin() as c:
            c.execute(update(grants).where(grants.c.id == grant_id).values(revoked_at=datetime.now(UTC)))
        self._audit.append("grant.revoke", tenant=owner, target=grant_id)

    def _usable(self, grantee: str, grant_id: str) -> Grant:
        self.tenants.require(grantee)
        g = self._get(grant_id)
        if g.grantee != grantee:
            raise NotFound(f"no grant {grant_id!r}", where="grant")
        if g.revoked_at is not None:
            raise Forbidden(f"grant {grant_id} was revoked", where="grant")
        if not g.active():
            raise Forbidden(f"grant {grant_id} expired at {g.expires_at.isoformat(timespec='seconds')}", where="grant")
        return g

    def tags(self, grantee: str, grant_id: str) -> list[str]:
        """The tags a grant lets the grantee read, by the names it sees."""
        g = self._usable(grantee, grant_id)
        with acting_as(SYSTEM):
            names = sorted(self.historian.catalog.ids(g.owner))
        return sorted(g.alias(t) for t in names if g.covers(t))

    def read(
        self, grantee: str, grant_id: str, tags: list[str], start: Any, end: Any, *, every: Any = None, agg: str = "avg"
    ) -> pa.Table:
        """Points under a grant (raw, or downsampled), clipped to its time range; audited for the owner."""
        g = self._usable(grantee, grant_id)
        with acting_as(SYSTEM):
            owned = sorted(self.historian.catalog.ids(g.owner))
        by_alias = {g.alias(t): t for t in owned if g.covers(t)}
        unknown = [t for t in tags if t not in by_alias]
        if unknown:
            raise NotFound(f"tag {unknown[0]!r} is not shared under grant {grant_id}", where="tags")
        s = max(to_us(start, field="start"), g.start_us)
        e = min(to_us(end, field="end"), g.end_us)
        if e <= s:
            raise InvalidInput(
                f"the range asked for lies outside grant {grant_id}, which covers "
                f"{from_us(g.start_us).isoformat()} to {from_us(g.end_us).isoformat()}",
                where="start",
            )
        real = [by_alias[t] for t in tags]
        aggs = [a.strip() for a in agg.split(",")]
        if g.pseudonymise and every and any(a not in LINEAR_AGGS | {"count", "stddev"} for a in aggs):
            raise InvalidInput(
                f"under a pseudonymised grant, aggregate with {', '.join(sorted(LINEAR_AGGS))}, count or stddev",
                where="agg",
            )
        with acting_as(SYSTEM):
            if every:
                table = self.historian.downsample(g.owner, real, from_us(s), from_us(e), every, aggs)
            else:
                table = self.historian.read(g.owner, real, from_us(s), from_us(e))
        table = self._disguise(g, table)
        self._audit.append(
            "grant.read",
            tenant=g.owner,
            target=grant_id,
            after={
                "grantee": grantee,
                "by": current().user,
                "tags": len(real),
                "rows": table.num_rows,
                "start": from_us(s).isoformat(),
                "end": from_us(e).isoformat(),
            },
        )
        return table

    @staticmethod
    def _disguise(g: Grant, table: pa.Table) -> pa.Table:
        if not g.pseudonymise or g.scale is None:
            return table
        a, b = g.scale
        names = table.column("tag").to_pylist()
        table = table.set_column(
            table.column_names.index("tag"), "tag", pa.array([g.alias(n) for n in names], pa.string())
        )
        for i, name in enumerate(table.column_names):
            if name in LINEAR_AGGS or name == "value":
                table = table.set_column(i, name, pc.add(pc.multiply(table.column(name), a), b))
            elif name == "stddev":
                table = table.set_column(i, name, pc.multiply(table.column(name), a))
        return table
