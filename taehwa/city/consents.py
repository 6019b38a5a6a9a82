"""What each company shares with the city office, per site and decided by the company's admins: which details of
the site the city's map shows (its placement, live state, data rate, power demand, models in production, open
alerts) and which cross-company figures the site contributes to. Nothing is shared until an admin says so; every
change is written to the company's audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete, insert, select

from taehwa.city.records import ConsentRecord
from taehwa.core.errors import InvalidInput, NotFound
from taehwa.db import city_consents
from taehwa.tenancy.access import current

if TYPE_CHECKING:
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService

SHARES = ("map", "state", "rate", "power", "models", "alerts")
"""map: the site's name and placement; the rest need map too."""


@dataclass(frozen=True)
class Consent:
    """One site's consent to the city."""

    tenant: str
    site: str
    shares: frozenset[str]
    figures: frozenset[str]
    set_by: str
    set_at: datetime

    def to_dict(self) -> ConsentRecord:
        """JSON form."""
        return {
            "tenant": self.tenant,
            "site": self.site,
            "shares": sorted(self.shares),
            "figures": sorted(self.figures),
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat(),
        }


class ConsentBook:
    """Consents per company and site, kept in the metadata database."""

    def __init__(
        self, engine: Engine, tenants: TenantService, audit: AuditLog, twin: TwinService, figures: tuple[str, ...]
    ) -> None:
        """`figures`: the names of the figures a site may contribute to (from `taehwa.city.figures`)."""
        self._engine, self._tenants, self._audit, self._twin = engine, tenants, audit, twin
        self._figures = figures

    def set(self, tenant: str, site: str, *, shares: list[str], figures: list[str]) -> Consent:
        """Replace a site's consent (the company's admins only); an empty consent withdraws it."""
        self._tenants.require(tenant, "admin")
        plant = self._twin.plant(tenant)
        if site not in plant.assets or plant.assets[site].parent is not None:
            raise NotFound(f"no site {site!r} in tenant {tenant!r}", where="site")
        bad = [s for s in shares if s not in SHARES]
        if bad:
            raise InvalidInput(f"cannot share {bad[0]!r}; share any of {', '.join(SHARES)}", where="shares")
        if shares and "map" not in shares:
            raise InvalidInput(
                "share 'map' (the site's name and placement) for the other details to be shown", where="shares"
            )
        unknown = [f for f in figures if f not in self._figures]
        if unknown:
            raise InvalidInput(f"no figure {unknown[0]!r}; the figures are {', '.join(self._figures)}", where="figures")
        before = self.get(tenant).get(site)
        consent = Consent(tenant, site, frozenset(shares), frozenset(figures), current().user, datetime.now(UTC))
        with self._engine.begin() as c:
            c.execute(delete(city_consents).where((city_consents.c.tenant == tenant) & (city_consents.c.site == site)))
            if shares or figures:
                c.execute(
                    insert(city_consents).values(
                        tenant=tenant,
                        site=site,
                        shares=sorted(shares),
                        figures=sorted(figures),
                        set_by=consent.set_by,
                        set_at=consent.set_at,
                    )
                )
        self._audit.append(
            "city.consent",
            tenant=tenant,
            target=site,
            before=before.to_dict() if before else None,
            after=consent.to_dict(),
        )
        return consent

    def get(self, tenant: str) -> dict[str, Consent]:
        """A company's consents by site (its own members read them)."""
        self._tenants.require(tenant)
        return {c.site: c for c in self._rows(tenant)}

    def everyone(self) -> list[Consent]:
        """Every company's consents (for the city's services, which show only what they allow)."""
        return self._rows(None)

    def _rows(self, tenant: str | None) -> list[Consent]:
        q = select(city_consents)
        if tenant is not None:
            q = q.where(city_consents.c.tenant == tenant)
        with self._engine.connect() as c:
            rows = c.execute(q.order_by(city_consents.c.tenant, city_consents.c.site)).all()
        return [
            Consent(
                r.tenant,
                r.site,
                frozenset(r.shares or ()),
                frozenset(r.figures or ()),
                r.set_by,
                r.set_at if r.set_at.tzinfo else r.set_at.replace(tzinfo=UTC),
            )
            for r in rows
        ]
