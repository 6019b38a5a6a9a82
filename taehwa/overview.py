"""The city's view of the cluster (통합 관제): every tenant at a glance — sites, assets, data rate, assets in warning
and alarm, active alerts, models in production with their latest validation figure. Only counts and model figures
leave a tenant here, never a tag, a value or an asset name, so the control tower can show all companies side by
side without exposing one company's data to another."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from taehwa.errors import TaehwaError
from taehwa.tenancy.access import SYSTEM, acting_as, check_platform_admin

if TYPE_CHECKING:
    from taehwa.platform import Platform

RATE_WINDOW_S = 10.0


class Overview:
    """Per-tenant aggregates for platform admins and the city office."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._writes: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        platform.historian.add_listener(self._count)

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
            return [self._tenant(t.id, t.name) for t in self.platform.tenants.list()]

    def _tenant(self, tenant: str, name: str) -> dict[str, Any]:
        plant = self.platform.twin.plant(tenant)
        states = self.platform.twin.state_counts(tenant)
        alerts = self.platform.live.alerts.list(tenant, state="active", include_shelved=False, limit=10_000)
        models = []
        for v in self.platform.lab.versions(tenant):
            if v["stage"] != "production":
                continue
            figure = None
            try:
                run = self.platform.lab.get_run(tenant, v["run_id"])
                metrics = run.get("metrics") or {}
                primary = run.get("primary_metric")
                if primary and primary in metrics:
                    figure = {"metric": primary, "value": metrics[primary]}
            except TaehwaError:
                pass
            models.append({"name": v["name"], "version": v["version"], "validation": figure})
        return {"tenant": tenant, "name": name, "sites": len(plant.children(None)), "assets": len(plant.assets),
                "points_s": round(self.rate(tenant), 1), "assets_by_state": states,
                "active_alerts": len(alerts), "alarm_alerts": sum(1 for a in alerts if a["severity"] == "alarm"),
                "models_in_production": models}
