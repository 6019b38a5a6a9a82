"""Which fitted pipeline a deployment or a predict call uses: the pinned version or the production one, loaded once
per training run and kept in memory.

Which version is in production is looked up in the registry at most once a second per model (a predict call should
not cost a database query), and at once after a registry change made through this process."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from taehwa.core.errors import Conflict
from taehwa.lab.validation import Pipeline
from taehwa.live.records import ModelRef
from taehwa.tenancy.access import SYSTEM, acting_as

if TYPE_CHECKING:
    from taehwa.lab.service import LabService
    from taehwa.tenancy.tenants import TenantService


RESOLVE_TTL_S = 1.0


class Pinned(Protocol):
    """A model named with an optional pinned version (a `Deployment`): named here so the deployments, which use
    this cache, and this cache do not import each other."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int | None: ...


class ModelCache:
    """Fitted pipelines by training run (a few dozen at most in memory)."""

    def __init__(self, *, tenants: TenantService, lab: LabService, capacity: int = 64) -> None:
        """Tenancy (who may read) and the lab (its registry and fitted models) are all it uses."""
        self.tenants, self.lab = tenants, lab
        self.capacity = capacity
        self._cache: OrderedDict[tuple[str, str], Pipeline] = OrderedDict()
        self._lock = threading.Lock()
        self._resolved: dict[tuple[str, str, int | None], tuple[float, int, ModelRef]] = {}

    def resolve(self, tenant: str, model: str, version: int | None) -> ModelRef:
        """{name, version, run_id, stage} of a pinned version, or of the production one."""
        self.tenants.require(tenant)
        key, generation, now = (tenant, model, version), self.lab.registry_generation, time.monotonic()
        hit = self._resolved.get(key)
        if hit is not None and hit[1] == generation and now - hit[0] < RESOLVE_TTL_S:
            return hit[2].copy()
        info = self._lookup(tenant, model, version)
        if len(self._resolved) > 10_000:
            self._resolved.clear()
        self._resolved[key] = (now, generation, info)
        return info.copy()

    def _lookup(self, tenant: str, model: str, version: int | None) -> ModelRef:
        versions = self.lab.versions(tenant, model)
        if version is None:
            found = [v for v in versions if v["stage"] == "production"]
            if not found:
                raise Conflict(f"model {model!r} has no production version", where="model")
        else:
            found = [v for v in versions if v["version"] == version]
            if not found:
                raise Conflict(f"model {model!r} has no version {version}", where="version")
        v = found[0]
        return {"name": model, "version": v["version"], "run_id": v["run_id"], "stage": v["stage"]}

    def load(self, tenant: str, run_id: str) -> Pipeline:
        key = (tenant, run_id)
        with self._lock:
            pipe = self._cache.get(key)
            if pipe is not None:
                self._cache.move_to_end(key)
                return pipe
        with acting_as(SYSTEM):
            pipe = self.lab.load_model(tenant, run_id)
        with self._lock:
            self._cache[key] = pipe
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return pipe

    def get(self, tenant: str, model: str, version: int | None) -> tuple[Pipeline, ModelRef]:
        info = self.resolve(tenant, model, version)
        return self.load(tenant, info["run_id"]), info

    def pipeline(self, tenant: str, dep: Pinned) -> tuple[Pipeline, ModelRef]:
        """The pipeline a deployment uses now, and which version that is."""
        return self.get(tenant, dep.model, dep.version)
