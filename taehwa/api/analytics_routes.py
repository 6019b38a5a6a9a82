"""HTTP routes of analytics: the plant's calculated signals and event templates, checking a plant file, trying an
expression, backfilling a range, lineage of a calculated tag, data quality, and event frames (search, one, open and
close by call). Thin: every decision is the analytics service's, which checks the caller's rights on the tenant first;
bodies are read after that check, so a stranger learns nothing from their shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from taehwa.analytics.records import (
    AnalyticsStatus,
    BackfillResult,
    Calculation,
    EvalResult,
    EventComparison,
    EventFrame,
    EventSearch,
    Lineage,
    PlantCheck,
    QualityReport,
    ReferenceSummary,
    ReferenceView,
    Scoring,
)
from taehwa.api.responses import BoundedRoute, read_bounded
from taehwa.core.errors import InvalidInput, ValidationFailed
from taehwa.core.yamlio import MAX_DOCUMENT_BYTES
from taehwa.server.platform import Platform

ANY_BODY = Body(...)
M = TypeVar("M", bound=BaseModel)


class BackfillIn(BaseModel):
    """A range to recompute, under an asset or for the whole plant."""

    model_config = ConfigDict(extra="forbid")
    start: str = Field(max_length=64)
    end: str = Field(max_length=64)
    asset: str | None = Field(None, max_length=1024)
    signals: list[str] | None = Field(None, max_length=1000, description="calculated signals or templates")
    events: bool = True


class EvalIn(BaseModel):
    """An expression to try on one asset over a range (nothing is written)."""

    model_config = ConfigDict(extra="forbid")
    asset: str = Field(max_length=1024)
    expr: str = Field(max_length=4000)
    start: str = Field(max_length=64)
    end: str = Field(max_length=64)


class EventOpenIn(BaseModel):
    """An event opened by call."""

    model_config = ConfigDict(extra="forbid")
    asset: str = Field(max_length=1024)
    template: str = Field(min_length=1, max_length=127)
    start: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=1000)


class ReferenceIn(BaseModel):
    """The events a template's reference profile is made of: one golden event, or several (their median)."""

    model_config = ConfigDict(extra="forbid")
    events: list[str] = Field(max_length=100, description="ids of closed events of the template")


class EventCloseIn(BaseModel):
    """When an open event ends (now when left out)."""

    model_config = ConfigDict(extra="forbid")
    end: str | None = Field(None, max_length=64)


def _checked(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "body") from None


def _doc(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}}


def add_analytics_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the analytics and event routes."""
    an = platform.analytics
    tenants = platform.tenants

    def tenant_access(request: Request) -> None:
        """Who may touch the tenant is decided before the parameters are read (a stranger learns nothing from a
        422): reads for GET, writes for every change."""
        tenant = request.path_params.get("tenant")
        if tenant is not None:
            tenants.require(str(tenant), "read" if request.method == "GET" else "write")

    router = APIRouter(
        dependencies=[Depends(auth), Depends(tenant_access)], route_class=BoundedRoute, tags=["analytics"]
    )

    @router.get("/api/v1/{tenant}/analytics")
    def calculations(tenant: str) -> list[Calculation]:
        """Every calculated signal and event template of the plant, with how many assets run it."""
        return an.calculations(tenant)

    @router.get("/api/v1/{tenant}/analytics/status")
    def status(tenant: str) -> AnalyticsStatus:
        """What live computation runs for the tenant."""
        return an.status(tenant)

    @router.post(
        "/api/v1/{tenant}/analytics/check",
        openapi_extra={
            "requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}, "required": True}
        },
    )
    async def check(tenant: str, request: Request) -> PlantCheck:
        """Check a plant file's calculated signals and event templates without loading it."""
        tenants.require(tenant, "write")  # a step of changing the plant file: for those who may change it
        body = await read_bounded(request, MAX_DOCUMENT_BYTES)
        if not body.strip():
            raise InvalidInput("empty body; send a plant document", where="body")
        return await run_in_threadpool(an.check, body, source="body")

    @router.post("/api/v1/{tenant}/analytics/eval", openapi_extra=_doc(EvalIn))
    def evaluate(tenant: str, body: dict[str, Any] = ANY_BODY) -> EvalResult:
        """Try an expression or condition on one asset over a range; nothing is written."""
        tenants.require(tenant, "write")  # engineering work (it reads ranges and computes): not for viewers
        b = _checked(EvalIn, body)
        return an.evaluate(tenant, b.asset, b.expr, b.start, b.end)

    @router.post("/api/v1/{tenant}/analytics/backfill", openapi_extra=_doc(BackfillIn))
    def backfill(tenant: str, body: dict[str, Any] = ANY_BODY) -> BackfillResult:
        """Recompute calculated signals and event frames for a range."""
        tenants.require(tenant, "write")
        b = _checked(BackfillIn, body)
        return an.backfill(tenant, b.start, b.end, asset=b.asset, signals=b.signals, events=b.events)

    @router.get("/api/v1/{tenant}/analytics/lineage")
    def lineage(tenant: str, tag: str = Query(max_length=255)) -> Lineage:
        """Where a calculated tag's points come from: expression, version, inputs."""
        return an.lineage(tenant, tag)

    @router.get("/api/v1/{tenant}/analytics/quality")
    def quality(
        tenant: str,
        start: str = Query(max_length=64),
        end: str = Query(max_length=64),
        asset: str | None = Query(None, max_length=1024),
        subtree: bool = Query(True, description="false: the asset's own tags alone"),
    ) -> QualityReport:
        """Data-quality findings and figures per tag and per asset over a range."""
        return an.quality(tenant, start, end, asset=asset, subtree=subtree)

    @router.post("/api/v1/{tenant}/analytics/quality/events")
    def quality_events(
        tenant: str,
        start: str = Query(max_length=64),
        end: str = Query(max_length=64),
        asset: str | None = Query(None, max_length=1024),
    ) -> QualityReport:
        """The quality checks of a range, their findings stored as events `quality.<check>`."""
        return an.quality(tenant, start, end, asset=asset, write_events=True)

    @router.get("/api/v1/{tenant}/event-frames")
    def search(
        tenant: str,
        asset: str | None = Query(None, max_length=1024, description="an asset subtree"),
        template: str | None = Query(None, max_length=127),
        start: str | None = Query(None, max_length=64),
        end: str | None = Query(None, max_length=64),
        where: list[str] | None = Query(None, max_length=20, description="e.g. duration > 30m, max(flow) > 5"),
        state: Literal["open", "closed"] | None = None,
        kind: Literal["template", "quality", "manual", "alert", "label"] | None = None,
        limit: int = Query(100, ge=1, le=10_000),
    ) -> EventSearch:
        """Event frames, newest first, by asset subtree, template, time overlap and statistic."""
        return an.search(
            tenant,
            asset=asset,
            template=template,
            start=start,
            end=end,
            where=where,
            state=state,
            kind=kind,
            limit=limit,
        )

    @router.get("/api/v1/{tenant}/event-frames/{event_id}")
    def event(tenant: str, event_id: str) -> EventFrame:
        """One event frame with its statistics."""
        return an.event(tenant, event_id[:64])

    @router.get("/api/v1/{tenant}/event-frames/{event_id}/compare")
    def compare(
        tenant: str,
        event_id: str,
        to: list[str] = Query(max_length=100, description="reference events"),
        signal: str = Query(max_length=64),
        step: str = Query("1s", max_length=16),
        band: float = Query(3.0, gt=0, le=100),
    ) -> EventComparison:
        """An event against a reference profile (one golden event, or the median of several) with a band."""
        return an.compare_events(tenant, event_id[:64], [t[:64] for t in to], signal, step=step, band=band)

    @router.post("/api/v1/{tenant}/event-frames", status_code=201, openapi_extra=_doc(EventOpenIn))
    def open_event(tenant: str, body: dict[str, Any] = ANY_BODY) -> EventFrame:
        """Open an event on an asset by call (closed by POST …/event-frames/{id}/close)."""
        tenants.require(tenant, "write")
        b = _checked(EventOpenIn, body)
        return an.open_event(tenant, b.asset, b.template, start=b.start, note=b.note)

    @router.post("/api/v1/{tenant}/event-frames/{event_id}/close", openapi_extra=_doc(EventCloseIn))
    def close_event(tenant: str, event_id: str, body: dict[str, Any] = ANY_BODY) -> EventFrame:
        """Close an open event; a template's statistics are computed then."""
        tenants.require(tenant, "write")
        b = _checked(EventCloseIn, body)
        return an.close_event(tenant, event_id[:64], end=b.end)

    @router.get("/api/v1/{tenant}/event-references")
    def references(tenant: str) -> list[ReferenceSummary]:
        """Every template's reference profile (without the profile itself)."""
        return an.references_of(tenant)

    @router.get("/api/v1/{tenant}/event-references/{template}")
    def reference(tenant: str, template: str, profile: bool = True) -> ReferenceView:
        """A template's reference (Type.template): its events, profile and band, and the running events scored
        against it live."""
        return an.reference(tenant, template[:255], profile=profile)

    @router.put("/api/v1/{tenant}/event-references/{template}", openapi_extra=_doc(ReferenceIn))
    def set_reference(tenant: str, template: str, body: dict[str, Any] = ANY_BODY) -> ReferenceView:
        """Make a template's reference from chosen closed events of it (a golden event or their median)."""
        tenants.require(tenant, "write")
        b = _checked(ReferenceIn, body)
        return an.set_reference(tenant, template[:255], [e[:64] for e in b.events])

    @router.delete("/api/v1/{tenant}/event-references/{template}", status_code=204)
    def delete_reference(tenant: str, template: str) -> None:
        """Remove a template's reference."""
        an.delete_reference(tenant, template[:255])

    @router.get("/api/v1/{tenant}/analytics/scoring")
    def scoring(tenant: str) -> list[Scoring]:
        """The running events scored live against their template's reference, with where each stands."""
        return an.scoring(tenant)

    app.include_router(router)
