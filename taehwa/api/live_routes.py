"""HTTP routes of live operation: deployments and their drift, on-demand prediction, backfills, alert rules, alerts
and their lifecycle, webhooks. Thin: every decision is the live service's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from taehwa.api.responses import BoundedRoute
from taehwa.core.errors import InvalidInput
from taehwa.live.deployments import DeploymentIn
from taehwa.live.notify import WebhookIn
from taehwa.live.records import (
    AlertDetail,
    AlertRecord,
    BackfillResult,
    DeploymentRecord,
    DeploymentView,
    DriftReport,
    RuleDetail,
    RuleRecord,
    WebhookRecord,
)
from taehwa.live.rules import RuleIn
from taehwa.live.service import BackfillIn, PredictIn
from taehwa.server.platform import Platform

ALERT_ID = Path(ge=1, le=2**62, description="the alert's id")
ANY_BODY = Body(...)


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """Document a body the service checks itself (after the caller's rights, so a stranger learns nothing)."""
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}}


class NoteIn(BaseModel):
    """A note recorded with the step."""

    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=2000)


class ShelveIn(NoteIn):
    """How long to shelve (at most 7 days)."""

    seconds: float = Field(description="Seconds, more than 0 and at most 7 days")


def add_live_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the live routes."""
    live = platform.live
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["live"])

    @router.get("/api/v1/{tenant}/deployments")
    def deployments(tenant: str) -> list[DeploymentView]:
        """Every deployment of the tenant with its status (assets, rows scored, newest row, last error)."""
        return live.list(tenant)

    @router.post("/api/v1/{tenant}/deployments", status_code=201, openapi_extra=_body(DeploymentIn))
    def deploy(tenant: str, body: dict[str, Any] = ANY_BODY, replace: bool = False) -> DeploymentView:
        """Deploy a registered model on one asset, every asset of a type, or a subtree."""
        return live.deploy(tenant, body, replace=replace)

    @router.get("/api/v1/{tenant}/deployments/{name}")
    def deployment(tenant: str, name: str) -> DeploymentView:
        return live.describe(tenant, name)

    @router.delete("/api/v1/{tenant}/deployments/{name}", status_code=204)
    def undeploy(tenant: str, name: str) -> None:
        """Stop and remove a deployment (its outputs stay in the historian)."""
        live.deployments.remove(tenant, name)

    @router.post("/api/v1/{tenant}/deployments/{name}/pause")
    def pause(tenant: str, name: str) -> DeploymentRecord:
        return live.deployments.set_enabled(tenant, name, False).to_dict()

    @router.post("/api/v1/{tenant}/deployments/{name}/resume")
    def resume(tenant: str, name: str) -> DeploymentRecord:
        """Score again; what arrived while paused is scored first."""
        return live.deployments.set_enabled(tenant, name, True).to_dict()

    @router.get("/api/v1/{tenant}/deployments/{name}/drift")
    def drift(tenant: str, name: str) -> DriftReport:
        """PSI and Kolmogorov–Smirnov of the live inputs and score against the model's training data."""
        return live.drift.report(tenant, name)

    @router.post("/api/v1/{tenant}/models/{name}/predict", openapi_extra=_body(PredictIn), response_class=Response)
    async def predict(tenant: str, name: str, request: Request) -> Response:
        """Score rows on demand with the production version (or the one named). Other systems call this per
        reading, so the body is parsed and the answer written with orjson, in one trip to a worker thread."""
        raw = await request.body()

        def work() -> bytes:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"the body is not JSON: {exc}", where="body") from None
            return orjson.dumps(live.predict_request(tenant, name, body))

        return Response(await run_in_threadpool(work), media_type="application/json")

    @router.post("/api/v1/{tenant}/backfill", openapi_extra=_body(BackfillIn))
    def backfill(tenant: str, body: dict[str, Any] = ANY_BODY) -> BackfillResult:
        """Score a past range with a model, as live scoring would have; write shadow tags, the outputs, or
        nothing."""
        return live.backfill_request(tenant, body)

    @router.get("/api/v1/{tenant}/alert-rules")
    def rules(tenant: str) -> list[RuleRecord]:
        return [r.to_dict() for r in live.rules.list(tenant)]

    @router.post("/api/v1/{tenant}/alert-rules", status_code=201, openapi_extra=_body(RuleIn))
    def put_rule(tenant: str, body: dict[str, Any] = ANY_BODY, replace: bool = False) -> RuleRecord:
        """Add a rule (threshold, rate, stale, score) for an asset type, an asset or a tag."""
        return live.rules.put(tenant, body, replace=replace).to_dict()

    @router.get("/api/v1/{tenant}/alert-rules/{name}")
    def rule(tenant: str, name: str) -> RuleDetail:
        """A rule and where its condition stands on each tag it watches."""
        return {**live.rules.get(tenant, name).to_dict(), "conditions": live.engine.condition(tenant, name)}

    @router.delete("/api/v1/{tenant}/alert-rules/{name}", status_code=204)
    def remove_rule(tenant: str, name: str) -> None:
        live.rules.remove(tenant, name)

    @router.get("/api/v1/{tenant}/alerts")
    def alerts(
        tenant: str,
        state: str | None = Query(None, description="active, acknowledged, resolved or open"),
        asset: str | None = Query(None, description="this asset and everything under it"),
        severity: Literal["warning", "alarm"] | None = None,
        rule: str | None = None,
        since: str | None = None,
        include_shelved: bool = True,
        limit: int = Query(1000, ge=1, le=100_000),
    ) -> list[AlertRecord]:
        """Alerts, newest first."""
        return live.alerts.list(
            tenant,
            state=state,
            asset=asset,
            severity=severity,
            rule=rule,
            since=since,
            include_shelved=include_shelved,
            limit=limit,
        )

    @router.get("/api/v1/{tenant}/alerts/{alert_id}")
    def alert(tenant: str, alert_id: int = ALERT_ID) -> AlertDetail:
        """One alert with its chain and its history."""
        return live.alerts.get(tenant, alert_id)

    @router.post("/api/v1/{tenant}/alerts/{alert_id}/acknowledge")
    def acknowledge(tenant: str, body: NoteIn, alert_id: int = ALERT_ID) -> AlertRecord:
        return live.alerts.acknowledge(tenant, alert_id, body.note)

    @router.post("/api/v1/{tenant}/alerts/{alert_id}/resolve")
    def resolve(tenant: str, body: NoteIn, alert_id: int = ALERT_ID) -> AlertRecord:
        return live.alerts.resolve(tenant, alert_id, body.note)

    @router.post("/api/v1/{tenant}/alerts/{alert_id}/shelve")
    def shelve(tenant: str, body: ShelveIn, alert_id: int = ALERT_ID) -> AlertRecord:
        return live.alerts.shelve(tenant, alert_id, body.seconds, body.note)

    @router.post("/api/v1/{tenant}/alerts/{alert_id}/unshelve")
    def unshelve(tenant: str, body: NoteIn, alert_id: int = ALERT_ID) -> AlertRecord:
        return live.alerts.unshelve(tenant, alert_id, body.note)

    @router.get("/api/v1/{tenant}/webhooks")
    def hooks(tenant: str) -> list[WebhookRecord]:
        """Webhooks with their undelivered messages and last delivery error."""
        return live.notifier.list(tenant)

    @router.post("/api/v1/{tenant}/webhooks", status_code=201, openapi_extra=_body(WebhookIn))
    def add_hook(tenant: str, body: dict[str, Any] = ANY_BODY) -> WebhookRecord:
        return live.notifier.add(tenant, body)

    @router.delete("/api/v1/{tenant}/webhooks/{name}", status_code=204)
    def remove_hook(tenant: str, name: str) -> None:
        live.notifier.remove(tenant, name)

    app.include_router(router)
