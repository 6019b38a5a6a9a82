"""The city's view of the cluster (통합 관제): every tenant at a glance — sites, assets, data rate, assets in warning
and alarm, the measured signals by the state of their newest point (data quality), active alerts, models in
production with their latest validation figure. Only counts and model figures leave a tenant here, never a tag, a
value or an asset name, so the control tower can show all companies side by side without exposing one company's
data to another."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taehwa.core.errors import TaehwaError
from taehwa.tenancy.access import SYSTEM, acting_as, check_platform_admin

if TYPE_CHECKING:
    from taehwa.historian.store import Historian
    from taehwa.lab.service import LabService
    from taehwa.live.alerts import AlertBook
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService

RATE_WINDOW_S = 10.0


class Overview:
    """Per-tenant aggregates for platform admins and the city office."""

    def __init__(
        self, *, historian: Historian, tenants: TenantService, twin: TwinService, alerts: AlertBook, lab: LabService
    ) -> None:
        """Each collaborator named: the historian (whose writes it counts), tenancy, the twin, the alert book and
        the lab (models in production)."""
        self._tenants, self._twin, self._alerts, self._lab = tenants, twin, alerts, lab
        self._writes: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        historian.add_listener(self._count)

    def _count(self, tenant: str, points: pa.Table) -> None:
        now = time.monotonic()
        with self._lock:
            q = self._writes.setdefault(tenant, deque())
            q.append((now, points.num_rows))
            while q and now - q[0][0] > RATE_WINDOW_S:
                q.popleft()

    def rate(self, tenant: str) -> float:
        """Points written per second over the last ten seconds."""
        now = time.monotonic()
        with self._lock:
            q = self._writes.get(tenant, deque())
            return sum(n for t, n in q if now - t <= RATE_WINDOW_S) / RATE_WINDOW_S

    def tenants(self) -> list[dict[str, Any]]:
        """One row of figures per tenant (platform admins only)."""
        check_platform_admin("see every tenant's figures")
        with acting_as(SYSTEM):
            return [self._tenant(t.id, t.name) for t in self._tenants.list()]

    def _tenant(self, tenant: str, name: str) -> dict[str, Any]:
        plant = self._twin.plant(tenant)
        states = self._twin.state_counts(tenant)
        alerts = self._alerts.list(tenant, state="active", include_shelved=False, limit=10_000)
        models = []
        for v in self._lab.versions(tenant):
            if v["stage"] != "production":
                continue
            figure = None
            try:
                run = self._lab.get_run(tenant, v["run_id"])
                metrics = run.get("metrics") or {}
                primary = run.get("primary_metric")
                if primary and primary in metrics:
                    figure = {"metric": primary, "value": metrics[primary]}
            except TaehwaError:
                pass
            models.append({"name": v["name"], "version": v["version"], "validation": figure})
        return {
            "tenant": tenant,
            "name": name,
            "sites": len(plant.children(None)),
            "assets": len(plant.assets),
            "points_s": round(self.rate(tenant), 1),
            "assets_by_state": states,
            "signals": self._twin.signal_counts(tenant),
            "active_alerts": len(alerts),
            "alarm_alerts": sum(1 for a in alerts if a["severity"] == "alarm"),
            "models_in_production": models,
        }
