"""Deployments: which registered model watches which assets (one asset, every asset of a type, or a subtree), how
its outputs are named, and how rows are made. Kept in the metadata database; the scorer follows the changes.

A deployment names a model, not a file: without a pinned version it follows whatever version is in production, so
promoting or rolling back in the registry changes what scores the plant, with no redeploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import delete, insert, select, update

from taehwa.core.errors import Conflict, InvalidInput, NotFound, ValidationFailed
from taehwa.db import deployments
from taehwa.lab.validation import Pipeline
from taehwa.live.records import DeploymentRecord
from taehwa.tenancy.access import current
from taehwa.twin.targets import Target

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from taehwa.lab.service import LabService
    from taehwa.live.models import ModelCache
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService

NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
# what each task writes back, and the derived signal each output goes to unless renamed
OUTPUTS: dict[str, tuple[str, ...]] = {
    "anomaly": ("anomaly_score", "anomaly"),
    "fault": ("fault_class", "fault_score"),
    "rul": ("rul",),
    "soft_sensor": ("estimate",),
    "forecast": ("forecast",),
}
UNBOUNDED_HISTORY = 1000  # rows kept for features that look at a unit's whole past (ewm, cummean, position)


class DeploymentIn(BaseModel):
    """A deployment as the CLI, YAML and HTTP give it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME, description="Lower-case id, unique in the tenant")
    model: str = Field(min_length=1, max_length=255, description="A model name in the registry")
    version: int | None = Field(None, ge=1, description="Pin a version; by default the production one")
    asset: str | None = Field(None, description="Score one asset")
    asset_type: str | None = Field(None, description="Score every asset of this type (and of types extending it)")
    under: str | None = Field(None, description="Score every asset under this path that has the model's inputs")
    outputs: dict[str, str | None] = Field(
        default_factory=dict, description="Rename an output's signal, or null to not write it"
    )
    step: str | None = Field(None, description="Row spacing; by default the step the model was trained on")
    hold_s: float | None = Field(
        None, gt=0, description="How long a value holds when no newer one comes (default 5 steps)"
    )
    wait_s: float | None = Field(
        None, ge=0, description="How long past a row time to wait for slow inputs (default 2 steps)"
    )
    every_s: float | None = Field(
        None, gt=0, le=86_400, description="Score on a schedule instead of as data arrives (slow models)"
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> DeploymentIn:
        given = [k for k in ("asset", "asset_type", "under") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("name exactly one target: asset, asset_type or under")
        return self


@dataclass
class Deployment:
    """A stored deployment."""

    tenant: str
    name: str
    model: str
    version: int | None
    target: dict[str, str]
    params: dict[str, Any]
    enabled: bool
    created_by: str
    created_at: datetime

    def covers(self, plant: Any, path: str) -> bool:
        """Whether the target takes in the asset at `path` (before checking it has the model's inputs)."""
        return Target.of(self.target).covers(plant, path)

    def to_dict(self) -> DeploymentRecord:
        """The deployment as the API shows it, its row-making parameters among its fields (`DeploymentIn`'s
        outputs, step, hold_s, wait_s, every_s: the only keys `create` stores in `params`)."""
        return cast(
            DeploymentRecord,
            {
                "name": self.name,
                "model": self.model,
                "version": self.version,
                "target": self.target,
                **{k: v for k, v in self.params.items()},
                "enabled": self.enabled,
                "created_by": self.created_by,
                "created_at": self.created_at.isoformat(),
            },
        )


def parse_deployment(doc: Any, *, source: str = "deployment") -> DeploymentIn:
    """Check a deployment document; every problem named with where it is."""
    if not isinstance(doc, dict):
        raise InvalidInput("a deployment is a mapping of fields", where=source)
    try:
        return DeploymentIn.model_validate(doc)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, source, doc=doc) from None


def _row(r: Any) -> Deployment:
    return Deployment(
        r.tenant,
        r.name,
        r.model,
        r.version,
        dict(r.target),
        dict(r.params),
        bool(r.enabled),
        r.created_by,
        r.created_at,
    )


def required_columns(pipe: Pipeline) -> list[str]:
    """The columns a fitted pipeline reads: its inputs, and the operating-condition columns it normalises by."""
    cond = [c for c in pipe.features_spec.condition_columns if c not in pipe.inputs]
    return [*pipe.inputs, *cond]


def history_rows(pipe: Pipeline) -> int:
    """How many past rows a new row's features depend on (a cap, for features with unbounded memory)."""
    fs = pipe.features_spec
    memory = pipe.model.memory_rows()  # the model's own: lags, windows, or None (smoothing, online learning)
    n = max([1, *fs.windows]) + max([0, *fs.lags]) + (memory or 0)
    unbounded = ({"ewm", "cummean"} & set(fs.stats)) or fs.include_position or memory is None
    return max(n, UNBOUNDED_HISTORY) if unbounded else n


class DeploymentStore:
    """Create, list, change and remove deployments (access checked, audited)."""

    def __init__(
        self,
        *,
        engine: Engine,
        tenants: TenantService,
        audit: AuditLog,
        lab: LabService,
        models: ModelCache,
        twin: TwinService,
    ) -> None:
        """The metadata database, tenancy and audit; the lab (a model's versions), the model cache (its pipeline)
        and the twin (the assets it fits) to check a deployment before it is kept."""
        self.engine, self.tenants, self.audit = engine, tenants, audit
        self.lab, self.models, self.twin = lab, models, twin

    def create(self, tenant: str, doc: dict[str, Any] | DeploymentIn, *, replace: bool = False) -> Deployment:
        """Add a deployment after checking its model exists and fits at least one target asset."""
        self.tenants.require(tenant, "write")
        spec = doc if isinstance(doc, DeploymentIn) else parse_deployment(doc)
        versions = self.lab.versions(tenant, spec.model)  # NotFound when no such model
        if spec.version is not None and spec.version not in {v["version"] for v in versions}:
            raise NotFound(f"model {spec.model!r} has no version {spec.version}", where="version")
        if spec.version is None and not any(v["stage"] == "production" for v in versions):
            raise Conflict(
                f"model {spec.model!r} has no production version; promote one or pin a version", where="model"
            )
        target = {k: str(getattr(spec, k)) for k in ("asset", "asset_type", "under") if getattr(spec, k)}
        params = spec.model_dump(include={"outputs", "step", "hold_s", "wait_s", "every_s"})
        dep = Deployment(
            tenant, spec.name, spec.model, spec.version, target, params, spec.enabled, current().user, datetime.now(UTC)
        )
        pipe, _ = self.models.pipeline(tenant, dep)
        task = pipe.task
        bad = [k for k in spec.outputs if k not in OUTPUTS[task]]
        if bad:
            raise InvalidInput(
                f"a {task} model writes {', '.join(OUTPUTS[task])}; it has no output {bad[0]!r}", where="outputs"
            )
        units, skipped = resolve_units(self.twin, tenant, dep, required_columns(pipe))
        if not units:
            why = "; ".join(f"{a}: {r}" for a, r in list(skipped.items())[:3]) or "no asset matches the target"
            raise InvalidInput(f"the target has no asset with the model's inputs ({why})", where="target")
        with self.engine.begin() as c:
            exists = c.execute(
                select(deployments.c.name).where((deployments.c.tenant == tenant) & (deployments.c.name == spec.name))
            ).first()
            if exists and not replace:
                raise Conflict(f"deployment {spec.name!r} exists; remove it first or replace it", where="name")
            if exists:
                c.execute(
                    delete(deployments).where((deployments.c.tenant == tenant) & (deployments.c.name == spec.name))
                )
            c.execute(
                insert(deployments).values(
                    tenant=tenant,
                    name=spec.name,
                    model=spec.model,
                    version=spec.version,
                    target=target,
                    params=params,
                    enabled=spec.enabled,
                    created_by=dep.created_by,
                    created_at=dep.created_at,
                )
            )
        self.audit.append(
            "deployment.create",
            tenant=tenant,
            target=spec.name,
            after={"model": spec.model, "version": spec.version, "target": target, "assets": len(units)},
        )
        return dep

    def list(self, tenant: str | None = None) -> list[Deployment]:
        """Deployments of one tenant (all tenants when None, for the scorer)."""
        q = select(deployments)
        if tenant is not None:
            self.tenants.require(tenant)
            q = q.where(deployments.c.tenant == tenant)
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q.order_by(deployments.c.tenant, deployments.c.name))]

    def get(self, tenant: str, name: str) -> Deployment:
        self.tenants.require(tenant)
        with self.engine.connect() as c:
            r = c.execute(
                select(deployments).where((deployments.c.tenant == tenant) & (deployments.c.name == name))
            ).first()
        if r is None:
            raise NotFound(f"no deployment {name!r} in tenant {tenant!r}", where="deployment")
        return _row(r)

    def set_enabled(self, tenant: str, name: str, enabled: bool) -> Deployment:
        """Pause or resume a deployment (its outputs keep their history)."""
        self.tenants.require(tenant, "write")
        self.get(tenant, name)
        with self.engine.begin() as c:
            c.execute(
                update(deployments)
                .where((deployments.c.tenant == tenant) & (deployments.c.name == name))
                .values(enabled=enabled)
            )
        self.audit.append("deployment.enable" if enabled else "deployment.pause", tenant=tenant, target=name)
        return self.get(tenant, name)

    def remove(self, tenant: str, name: str) -> None:
        self.tenants.require(tenant, "write")
        self.get(tenant, name)
        with self.engine.begin() as c:
            c.execute(delete(deployments).where((deployments.c.tenant == tenant) & (deployments.c.name == name)))
        self.audit.append("deployment.remove", tenant=tenant, target=name)


def resolve_units(
    twin: TwinService, tenant: str, dep: Deployment, columns: list[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """({asset: input tags in column order}, {asset: why it was skipped}) for a deployment's target now.

    A model trained on assets knows its inputs by signal name; one trained on tags knows them by tag name, and fits
    an asset whose signals, or its parts' (a unit watched as a whole), are bound to exactly those tags."""
    plant = twin.plant(tenant)
    target = Target.of(dep.target)
    paths = twin.targets(tenant, asset=target.asset, asset_type=target.asset_type, under=target.under)
    units: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for path in paths:
        bound = plant.signal_tags(plant.assets[path])
        by_tag = set(bound.values())
        below: set[str] | None = None  # tags bound to the asset's parts, read only if a column is not its own
        tags = []
        for col in columns:
            tag = bound.get(col) or (col if col in by_tag else None)
            if tag is None and "/" in col:
                if below is None:
                    below = {t for p, a in plant.assets.items() if p.startswith(path + "/") for t in a.tags.values()}
                tag = col if col in below else None
            if tag is None:
                skipped[path] = f"no signal {col!r}"
                break
            tags.append(tag)
        else:
            units[path] = tags
    return units, skipped
