"""The city office's policy for cross-company figures and shared compute: k (the fewest companies an aggregate may
come from, default 3, never below 2), differential privacy (off, or on with an ε per release for the sensitive
figures or for all), and each company's monthly compute quota. Only the city's admins change it; every change is
written to the city's audit log."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select

from taehwa.city.records import PrivacyRecord
from taehwa.core.errors import InvalidInput
from taehwa.db import city_policy
from taehwa.tenancy.access import SYSTEM, acting_as, current

if TYPE_CHECKING:
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService

DEFAULT_K = 3
MIN_K = 2
MAX_K = 100
DP_SCOPES = ("sensitive", "all")


@dataclass(frozen=True)
class Privacy:
    """How a figure is released: k, and the noise (ε per release; None without noise)."""

    k: int
    epsilon: float | None
    scope: str = "sensitive"

    def for_figure(self, sensitive: bool) -> float | None:
        """The ε a figure is released with (None: no noise)."""
        if self.epsilon is None or (self.scope == "sensitive" and not sensitive):
            return None
        return self.epsilon

    def to_dict(self) -> PrivacyRecord:
        """JSON form."""
        return {"k": self.k, "dp": self.epsilon is not None, "epsilon": self.epsilon, "dp_scope": self.scope}


class PolicyBook:
    """The city's policy, kept in the metadata database."""

    def __init__(self, engine: Engine, tenants: TenantService, audit: AuditLog, city: str) -> None:
        """`city`: the city office's tenant (its admins set the policy)."""
        self._engine, self._tenants, self._audit, self.city = engine, tenants, audit, city

    def _read(self, key: str) -> Any:
        with self._engine.connect() as c:
            row = c.execute(select(city_policy.c.value).where(city_policy.c.key == key)).first()
        return None if row is None else row[0]

    def _write(self, key: str, value: Any) -> None:
        self._tenants.require(self.city, "admin")
        before = self._read(key)
        with self._engine.begin() as c:
            c.execute(delete(city_policy).where(city_policy.c.key == key))
            if value is not None:
                c.execute(
                    insert(city_policy).values(key=key, value=value, set_by=current().user, set_at=datetime.now(UTC))
                )
        self._audit.append(
            "city.policy", tenant=self.city, target=key, before={"value": before}, after={"value": value}
        )

    def privacy(self) -> Privacy:
        """k and the noise in force."""
        k = self._read("k")
        dp = self._read("dp") or {}
        return Privacy(int(k) if isinstance(k, int) else DEFAULT_K, dp.get("epsilon"), dp.get("scope", "sensitive"))

    def set_privacy(
        self, *, k: int | None = None, epsilon: float | str | None = "keep", scope: str | None = None
    ) -> Privacy:
        """Change k and/or the noise (`epsilon=None` turns noise off; 'keep' leaves it); city admins only, checked
        first (even a change that changes nothing is refused to others)."""
        self._tenants.require(self.city, "admin")
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or not MIN_K <= k <= MAX_K:
                raise InvalidInput(
                    f"k is a whole number from {MIN_K} to {MAX_K} (one company alone is never an aggregate)", where="k"
                )
            self._write("k", k)
        if epsilon != "keep" or scope is not None:
            now = self.privacy()
            eps = now.epsilon if epsilon == "keep" else epsilon
            if eps is not None and (
                isinstance(eps, bool)
                or not isinstance(eps, int | float)
                or not math.isfinite(eps)
                or not 0.01 <= eps <= 10
            ):
                raise InvalidInput("ε (epsilon) is a number from 0.01 to 10 per release", where="epsilon")
            if scope is not None and scope not in DP_SCOPES:
                raise InvalidInput(f"the noise applies to {' or '.join(DP_SCOPES)} figures", where="scope")
            self._write("dp", None if eps is None else {"epsilon": float(eps), "scope": scope or now.scope})
        return self.privacy()

    def quota(self, tenant: str) -> float | None:
        """A company's compute quota in CPU hours per calendar month (None: no quota)."""
        value = self._read(f"quota:{tenant}")
        return None if value is None else float(value["cpu_hours_month"])

    def quotas(self) -> dict[str, float]:
        """Every quota the city has set."""
        with self._engine.connect() as c:
            rows = c.execute(select(city_policy).where(city_policy.c.key.startswith("quota:"))).all()
        return {r.key.split(":", 1)[1]: float(r.value["cpu_hours_month"]) for r in rows}

    def set_quota(self, tenant: str, cpu_hours_month: float | None) -> float | None:
        """Set (or with None, lift) a company's monthly compute quota (city admins; checked before anything is
        looked up, so a stranger learns nothing of which companies exist)."""
        self._tenants.require(self.city, "admin")
        with acting_as(SYSTEM):
            self._tenants.get(tenant)  # the company must exist
        if cpu_hours_month is not None and (
            isinstance(cpu_hours_month, bool)
            or not isinstance(cpu_hours_month, int | float)
            or not math.isfinite(cpu_hours_month)
            or not 0 <= cpu_hours_month <= 1e6
        ):
            raise InvalidInput("a quota is 0 to 1,000,000 CPU hours a month", where="cpu_hours_month")
        self._write(f"quota:{tenant}", None if cpu_hours_month is None else {"cpu_hours_month": float(cpu_hours_month)})
        return self.quota(tenant)
