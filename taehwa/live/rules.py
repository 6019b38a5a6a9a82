"""Alert rules: conditions on tags that people must act on. A rule names its scope (every asset of a type, inherited
by types extending it; one asset; or one tag), the signal it watches, and its condition:

- `threshold`: the value above (or below) a limit, cleared only past the limit minus `hysteresis`, and raised only
  once the condition has held for `min_duration_s` of data time;
- `rate`: the change per second between consecutive points above `rate_per_s`;
- `stale`: no new point for `stale_s` of wall-clock time;
- `score`: a model output over its limit; without a `value`, the calibrated alarm of the model that writes the
  output (its limit, hysteresis, on-delay and quiet period, set on training normal running to a false-alarm rate
  per week), so the alert is the model's event-level decision as the lab judged it; its alerts carry the model
  version that wrote the score.

Every kind raises and clears through the one alarm state machine of `taehwa.lab.alarms` (a `quiet_s` keeps an alarm
raised that long after its condition went off: a condition that returns within it is the same alarm).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import delete, insert, select

from taehwa.core.errors import Conflict, InvalidInput, NotFound, ValidationFailed
from taehwa.core.names import RULE_NAME_PATTERN
from taehwa.db import alert_rules
from taehwa.live.records import RuleRecord
from taehwa.tenancy.access import current

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService

SEVERITIES = ("warning", "alarm")


class RuleIn(BaseModel):
    """An alert rule as YAML, the CLI and HTTP give it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=RULE_NAME_PATTERN.pattern, description="Lower-case id, unique in the tenant")
    kind: Literal["threshold", "rate", "stale", "score"]
    asset_type: str | None = Field(None, description="Every asset of this type (and of types extending it)")
    asset: str | None = Field(None, description="One asset")
    tag: str | None = Field(None, description="One tag, with or without an asset")
    signal: str | None = Field(None, description="The signal watched on each asset (not with tag)")
    op: Literal[">", "<"] = ">"
    value: float | None = Field(None, description="The limit (threshold; score: default the model's calibrated alarm)")
    hysteresis: float = Field(0.0, ge=0, description="How far back past the limit the value must go to clear")
    min_duration_s: float = Field(0.0, ge=0, description="How long the condition must hold before an alert")
    quiet_s: float = Field(
        0.0,
        ge=0,
        le=7 * 86_400,
        description="How long an alert stays raised after its "
        "condition went off (a return within it is the same alert)",
    )
    rate_per_s: float | None = Field(None, gt=0, description="rate: the largest normal change per second")
    stale_s: float | None = Field(None, gt=0, description="stale: seconds without a new point")
    severity: Literal["warning", "alarm"] = "warning"
    auto_resolve: bool = Field(True, description="Resolve by itself when the condition clears")
    message: str | None = Field(None, max_length=500, description="What the alert says (default from the rule)")
    enabled: bool = True

    @model_validator(mode="after")
    def _complete(self) -> RuleIn:
        scopes = [k for k in ("asset_type", "asset", "tag") if getattr(self, k)]
        if not scopes or (len(scopes) > 1 and not (set(scopes) == {"asset", "tag"})):
            raise ValueError("name the scope: asset_type, asset, or tag (a tag may also name its asset)")
        if self.tag and self.signal:
            raise ValueError("give a tag or a signal, not both")
        if self.kind == "score":
            self.signal = self.signal or (None if self.tag else "anomaly_score")
        if not self.tag and not self.signal:
            raise ValueError("name the signal the rule watches on each asset")
        if self.kind == "threshold" and self.value is None:
            raise ValueError("a threshold rule needs a value")
        if self.kind == "rate" and self.rate_per_s is None:
            raise ValueError("a rate rule needs rate_per_s")
        if self.kind == "stale" and self.stale_s is None:
            raise ValueError("a stale rule needs stale_s")
        return self


@dataclass(frozen=True)
class Rule:
    """A stored rule."""

    tenant: str
    spec: RuleIn

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        s = self.spec
        what = s.tag or s.signal
        if s.message:
            return s.message
        if s.kind == "score" and s.value is None:
            return f"{what}: the model's calibrated alarm"
        if s.kind in ("threshold", "score"):
            return f"{what} {s.op} {s.value:g}" + (f" for {s.min_duration_s:g} s" if s.min_duration_s else "")
        if s.kind == "rate":
            return f"{what} changing faster than {s.rate_per_s:g}/s"
        return f"{what} has sent nothing for {s.stale_s:g} s"

    def message_key(self) -> dict[str, Any]:
        """What `describe` says as a message key and its parameters, for pages that say it in their language."""
        s = self.spec
        what = s.tag or s.signal
        if s.message:
            return {"key": "rule.custom", "params": {"text": s.message}}
        if s.kind == "score" and s.value is None:
            return {"key": "rule.score_alarm", "params": {"what": what}}
        if s.kind in ("threshold", "score"):
            return {
                "key": "rule.threshold_for" if s.min_duration_s else "rule.threshold",
                "params": {"what": what, "op": s.op, "value": s.value, "seconds": s.min_duration_s},
            }
        if s.kind == "rate":
            return {"key": "rule.rate", "params": {"what": what, "rate": s.rate_per_s}}
        return {"key": "rule.stale", "params": {"what": what, "seconds": s.stale_s}}

    def to_dict(self) -> RuleRecord:
        """The rule as the API shows it: `RuleIn`'s fields in order, unset options left out."""
        return cast(RuleRecord, self.spec.model_dump(exclude_none=True))


def parse_rule(doc: Any, *, source: str = "rule") -> RuleIn:
    """Check a rule document; every problem named with where it is."""
    if not isinstance(doc, dict):
        raise InvalidInput("a rule is a mapping of fields", where=source)
    try:
        return RuleIn.model_validate(doc)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, source, doc=doc) from None


class RuleStore:
    """Create, list and remove rules (access checked, audited)."""

    def __init__(self, *, engine: Engine, tenants: TenantService, audit: AuditLog, twin: TwinService) -> None:
        """The metadata database, tenancy and audit, and the twin a rule's target is checked against."""
        self.engine, self.tenants, self.audit, self.twin = engine, tenants, audit, twin

    def put(self, tenant: str, doc: dict[str, Any] | RuleIn, *, replace: bool = False) -> Rule:
        self.tenants.require(tenant, "write")
        spec = doc if isinstance(doc, RuleIn) else parse_rule(doc)
        plant = self.twin.plant(tenant)
        if spec.asset_type and spec.asset_type not in plant.types:
            raise NotFound(f"no asset type {spec.asset_type!r}", where="asset_type")
        if spec.asset and spec.asset not in plant.assets:
            raise NotFound(f"no asset {spec.asset!r}", where="asset")
        if spec.asset_type and spec.signal:
            t = plant.types[spec.asset_type]
            if spec.signal not in t.signals:
                raise InvalidInput(
                    f"type {spec.asset_type!r} has no signal {spec.signal!r} (it has "
                    f"{', '.join(sorted(t.signals)) or 'none'})",
                    where="signal",
                )
        with self.engine.begin() as c:
            exists = c.execute(
                select(alert_rules.c.name).where((alert_rules.c.tenant == tenant) & (alert_rules.c.name == spec.name))
            ).first()
            if exists and not replace:
                raise Conflict(f"rule {spec.name!r} exists; remove it first or replace it", where="name")
            if exists:
                c.execute(
                    delete(alert_rules).where((alert_rules.c.tenant == tenant) & (alert_rules.c.name == spec.name))
                )
            c.execute(
                insert(alert_rules).values(
                    tenant=tenant,
                    name=spec.name,
                    spec=spec.model_dump(),
                    created_by=current().user,
                    updated_at=datetime.now(UTC),
                )
            )
        self.audit.append("alert_rule.put", tenant=tenant, target=spec.name, after=spec.model_dump(exclude_none=True))
        return Rule(tenant, spec)

    def list(self, tenant: str | None = None) -> list[Rule]:
        q = select(alert_rules)
        if tenant is not None:
            self.tenants.require(tenant)
            q = q.where(alert_rules.c.tenant == tenant)
        with self.engine.connect() as c:
            return [
                Rule(r.tenant, RuleIn.model_validate(r.spec))
                for r in c.execute(q.order_by(alert_rules.c.tenant, alert_rules.c.name))
            ]

    def get(self, tenant: str, name: str) -> Rule:
        found = [r for r in self.list(tenant) if r.name == name]
        if not found:
            raise NotFound(f"no alert rule {name!r} in tenant {tenant!r}", where="rule")
        return found[0]

    def remove(self, tenant: str, name: str) -> None:
        self.tenants.require(tenant, "write")
        self.get(tenant, name)
        with self.engine.begin() as c:
            c.execute(delete(alert_rules).where((alert_rules.c.tenant == tenant) & (alert_rules.c.name == name)))
        self.audit.append("alert_rule.remove", tenant=tenant, target=name)


def rule_targets(twin: TwinService, rule: Rule) -> list[tuple[str | None, str, str]]:
    """(asset, signal or tag, tag) that a rule watches in the plant as it is now."""
    s = rule.spec
    if s.tag:
        return [(s.asset, s.tag, s.tag)]
    plant = twin.plant(rule.tenant)
    try:
        paths = twin.targets(rule.tenant, asset=s.asset, asset_type=s.asset_type)
    except NotFound:  # its asset or type is no longer in the plant: it watches nothing until it is back
        paths = []
    out: list[tuple[str | None, str, str]] = []
    for path in paths:
        tag = plant.signal_tags(plant.assets[path]).get(str(s.signal))
        if tag is not None:
            out.append((path, str(s.signal), tag))
    return out
