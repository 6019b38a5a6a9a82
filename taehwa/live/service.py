"""The live service: one entry for the API, the CLI and the web UI to deploy models on assets, score on demand and
over past ranges, and run the alert rules, alerts, webhooks and drift checks. Background work (scoring, rules,
deliveries) starts with `start()`, which only the server calls."""

from __future__ import annotations

import builtins
import os
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taehwa.core.errors import InvalidInput, NotFound, ValidationFailed
from taehwa.core.timeutil import from_us, parse_duration, to_us
from taehwa.lab.fanout import BACKENDS, choose_backend
from taehwa.lab.gaps import hold_us as gap_hold_us
from taehwa.live import scoring
from taehwa.live.alerts import AlertBook, AlertFollower
from taehwa.live.conditions import RuleEngine
from taehwa.live.deployments import OUTPUTS, Deployment, DeploymentStore, history_rows, required_columns, resolve_units
from taehwa.live.drift import DriftMonitor
from taehwa.live.models import ModelCache
from taehwa.live.notify import Notifier
from taehwa.live.records import BackfillResult, DeploymentView, PredictResult
from taehwa.live.rules import RuleStore
from taehwa.live.scoring import Scorer, backfill_rows, fault_classes, model_outputs, output_points, predict_units

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from taehwa.historian.store import Historian
    from taehwa.lab.service import LabService
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService

MAX_PREDICT_ROWS = 10_000
M = TypeVar("M", bound=BaseModel)


class PredictIn(BaseModel):
    """Rows to score, in time order (window features see them as one sequence)."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, float | None]] = Field(
        min_length=1, max_length=MAX_PREDICT_ROWS, description="Each a mapping of the model's inputs to values"
    )
    version: int | None = Field(None, ge=1, le=10**9, description="A version; by default the production one")


FAN_OUT_MIN_CHUNKS = 8  # a backfill of at least this many chunks of assets fans out by default


class BackfillIn(BaseModel):
    """Score a past range as live scoring would have."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=255)
    version: int | None = Field(None, ge=1, le=10**9)
    asset: str | None = None
    asset_type: str | None = None
    under: str | None = None
    start: str
    end: str
    step: str | None = None
    write: Literal["none", "shadow", "outputs"] = "shadow"
    fan_out: Literal["serial", "pool", "ray"] | None = Field(
        None,
        description="Score chunks of assets here (serial), over the local process pool or over Ray; default: "
        "Ray when TAEHWA_RAY_ADDRESS is set, else the pool for a long backfill and here for a short one",
    )


def _checked(model: type[M], body: Any) -> M:
    """A request body checked against its model; problems named with where they are."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "body") from None


class LiveService:
    """Deployments, scoring, rules, alerts, notifications and drift of one platform."""

    def __init__(
        self,
        *,
        engine: Engine,
        historian: Historian,
        tenants: TenantService,
        audit: AuditLog,
        twin: TwinService,
        lab: LabService,
        alert_follower: AlertFollower | None = None,
    ) -> None:
        """Each collaborator named (the metadata database, the historian, tenancy, audit, the twin, the lab, and
        what follows alerts: the analytics' event frames); the parts are built here in the order they need each
        other, each handed the ones it uses."""
        self.historian, self.tenants, self.audit, self.twin, self.lab = historian, tenants, audit, twin, lab
        self.models = ModelCache(tenants=tenants, lab=lab)
        self.deployments = DeploymentStore(
            engine=engine, tenants=tenants, audit=audit, lab=lab, models=self.models, twin=twin
        )
        self.rules = RuleStore(engine=engine, tenants=tenants, audit=audit, twin=twin)
        self.alerts = AlertBook(engine=engine, tenants=tenants, audit=audit, twin=twin, follower=alert_follower)
        self.notifier = Notifier(engine=engine, tenants=tenants, audit=audit, historian=historian, alerts=self.alerts)
        self.scorer = Scorer(historian=historian, deployments=self.deployments, models=self.models, twin=twin, lab=lab)
        self.drift = DriftMonitor(tenants=tenants, deployments=self.deployments, scorer=self.scorer, alerts=self.alerts)
        self.engine = RuleEngine(
            historian=historian, twin=twin, rules=self.rules, alerts=self.alerts, scorer=self.scorer, drift=self.drift
        )
        self._started = False

    def start(self) -> None:
        """Score, evaluate rules and deliver notifications in the background (the server calls this)."""
        if not self._started:
            self._started = True
            self.scorer.start()
            self.engine.start()
            self.notifier.start()

    def close(self) -> None:
        self.scorer.close()
        self.engine.close()
        self.notifier.close()

    # -- deployments ----------------------------------------------------------------------------------------------
    def deploy(self, tenant: str, doc: dict[str, Any], *, replace: bool = False) -> DeploymentView:
        dep = self.deployments.create(tenant, doc, replace=replace)
        if self._started:
            self.scorer.refresh(force=True)
        return self.describe(tenant, dep.name)

    def describe(self, tenant: str, name: str) -> DeploymentView:
        """A deployment with how it is doing."""
        dep = self.deployments.get(tenant, name)
        return {**dep.to_dict(), "status": self.scorer.status(tenant, name)}

    def list(self, tenant: str) -> list[DeploymentView]:
        return [{**d.to_dict(), "status": self.scorer.status(tenant, d.name)} for d in self.deployments.list(tenant)]

    def deployed_on(self, tenant: str, path: str) -> builtins.list[DeploymentView]:
        """The deployments whose target takes in an asset, with how they are doing."""
        plant = self.twin.plant(tenant)
        return [
            {**d.to_dict(), "status": self.scorer.status(tenant, d.name)}
            for d in self.deployments.list(tenant)
            if d.covers(plant, path)
        ]

    # -- on demand ------------------------------------------------------------------------------------------------
    def predict_request(self, tenant: str, model: str, body: Any) -> PredictResult:
        """`predict` from an HTTP body (checked after the caller's rights: scoring takes the platform's compute,
        so like every POST it needs the write right — engineers, tenant admins, tokens with the write scope)."""
        self.tenants.require(tenant, "write")
        req = _checked(PredictIn, body)
        return self.predict(tenant, model, req.rows, version=req.version)

    def backfill_request(self, tenant: str, body: Any) -> BackfillResult:
        """`backfill` from an HTTP body (checked after the caller's rights)."""
        self.tenants.require(tenant, "write")
        return self.backfill(tenant, **_checked(BackfillIn, body).model_dump())

    def predict(self, tenant: str, model: str, rows: Any, *, version: int | None = None) -> PredictResult:
        """Score rows given by another system: each a mapping of the model's inputs to values, in time order (they
        are one sequence for window features)."""
        self.tenants.require(tenant)
        if not isinstance(rows, list) or not rows:
            raise InvalidInput("give rows: a non-empty list of {input: value}", where="rows")
        if len(rows) > MAX_PREDICT_ROWS:
            raise InvalidInput(f"at most {MAX_PREDICT_ROWS} rows per call", where="rows")
        pipe, info = self.models.get(tenant, model, version)
        columns = required_columns(pipe)
        values = np.full((len(rows), len(columns)), np.nan)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InvalidInput("each row is a mapping of input name to value", where=f"rows[{i}]")
            unknown = [k for k in row if k not in columns]
            if unknown:
                raise InvalidInput(
                    f"the model has no input {unknown[0]!r}; its inputs are {', '.join(columns)}",
                    where=f"rows[{i}].{unknown[0]}",
                )
            for j, col in enumerate(columns):
                v = row.get(col)
                if v is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                    raise InvalidInput(f"{col} must be a finite number, got {v!r}", where=f"rows[{i}].{col}")
                values[i, j] = float(v)
        missing = [c for j, c in enumerate(columns) if np.isnan(values[:, j]).all()]
        if missing:
            raise InvalidInput(f"no row gives input {missing[0]!r}; the model needs {', '.join(columns)}", where="rows")
        times = np.arange(len(rows), dtype=np.int64)
        _, decision, score = predict_units(pipe, columns, [("request", times, values)])
        policy = pipe.policy if pipe.task == "anomaly" else None
        if policy is not None:  # rows without times: each judged by the alarm's condition (its limit), not in time
            decision = np.array([policy.condition(float(x))[0] for x in score], dtype=int)
        outs = model_outputs(pipe, decision, score)
        result: builtins.list[dict[str, Any]] = [
            {k: (None if not np.isfinite(v[i]) else float(v[i])) for k, v in outs.items()} for i in range(len(rows))
        ]
        if pipe.task == "fault":
            for r, d in zip(result, decision, strict=True):
                r["fault"] = str(d)
        return {"model": info, "task": pipe.task, "inputs": columns, "rows": result}

    def backfill(
        self,
        tenant: str,
        *,
        model: str,
        start: Any,
        end: Any,
        version: int | None = None,
        asset: str | None = None,
        asset_type: str | None = None,
        under: str | None = None,
        step: str | None = None,
        write: str = "shadow",
        fan_out: str | None = None,
    ) -> BackfillResult:
        """Score a past range as live scoring would have: rows made the same way, the same model. Written to
        `shadow` tags (`<asset>/backfill/<model>/v<version>/<output>`, to compare with what ran), to the live
        output tags (`outputs`, e.g. to fill a gap), or not at all (`none`: only the summary). Chunks of assets are
        scored here or fan out (`fan_out`: serial, pool or ray; see `BackfillIn.fan_out` for the default)."""
        self.tenants.require(tenant, "read" if write == "none" else "write")
        if write not in ("none", "shadow", "outputs"):
            raise InvalidInput("write is none, shadow or outputs", where="write")
        if fan_out not in (None, *BACKENDS):
            raise InvalidInput(f"fan_out is one of {', '.join(BACKENDS)}", where="fan_out")
        s, e = to_us(start, field="start"), to_us(end, field="end")
        if e <= s:
            raise InvalidInput("end must be after start", where="end")
        target = {k: v for k, v in (("asset", asset), ("asset_type", asset_type), ("under", under)) if v}
        if len(target) != 1:
            raise InvalidInput("name exactly one target: asset, asset_type or under", where="target")
        pipe, info = self.models.get(tenant, model, version)
        probe = Deployment(tenant, "backfill", model, info["version"], target, {}, True, "", from_us(0))
        units, skipped = resolve_units(self.twin, tenant, probe, required_columns(pipe))
        if not units:
            raise InvalidInput("the target has no asset with the model's inputs", where="target")
        spec_step = step or str(self.lab.get_run(tenant, info["run_id"])["spec"]["data"].get("step") or "1m")
        step_us = parse_duration(spec_step, field="step")
        if (e - s) // step_us * len(units) > 50_000_000:
            raise InvalidInput(
                "that is more than 50 million rows; backfill a shorter range or fewer assets", where="end"
            )
        # by default a long backfill fans out (Ray when a cluster is named), a short one stays here: starting the
        # pool's workers costs about as much as scoring a few chunks
        long = (e - s) // step_us * len(units) >= FAN_OUT_MIN_CHUNKS * scoring.BACKFILL_CHUNK_ROWS
        backend = choose_backend(
            fan_out, settings=self.historian.settings, small=not (long and (os.cpu_count() or 1) > 1)
        )
        started = time.perf_counter()
        assets, times, outs = backfill_rows(
            self.historian,
            tenant,
            pipe,
            units,
            s,
            e,
            step_us,
            gap_hold_us(step_us),
            history_rows(pipe),
            backend=backend,
        )
        seconds = time.perf_counter() - started
        written = 0
        prefix = "" if write == "outputs" else f"backfill/{model}/v{info['version']}/"
        if write != "none" and len(times):
            points = output_points(assets, times, [(f"{prefix}{o}", vals) for o, vals in outs.items()])
            written = self.historian.write_checked(tenant, points).points
        summary: dict[str, Any] = {
            o: {"mean": float(np.nanmean(v)), "max": float(np.nanmax(v)), "min": float(np.nanmin(v))} if len(v) else {}
            for o, v in outs.items()
        }
        if pipe.task == "anomaly" and len(times):
            summary["anomaly"]["rows_flagged"] = int(np.nansum(outs["anomaly"]))
        if pipe.task == "fault":
            summary["classes"] = fault_classes(pipe)
        self.audit.append(
            "live.backfill",
            tenant=tenant,
            target=f"{model} v{info['version']}",
            after={"rows": len(times), "written": written, "write": write, "backend": backend},
        )
        return {
            "model": info,
            "task": pipe.task,
            "assets": len(units),
            "skipped": skipped,
            "rows": len(times),
            "seconds": round(seconds, 3),
            "rows_per_s": round(len(times) / seconds) if seconds > 0 else None,
            "written_points": written,
            "write": write,
            "backend": backend,
            "outputs": list(OUTPUTS[pipe.task]),
            "tags": f"<asset>/{prefix if write != 'none' else ''}<output>",
            "summary": summary,
        }

    def outputs_of(self, tenant: str, name: str) -> dict[str, str]:
        run = self.scorer.running(tenant, name)
        if run is None:
            raise NotFound(f"deployment {name!r} is not running", where="deployment")
        return run.outputs
