"""HTTP routes of the city's twin: the map (and its live feed over SSE), the figures and their aggregates, a
company's consents and standing, the city's policy and quotas, the headquarters' view and its PDF report. Each
route is one call to the city service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from taehwa.api.caller import while_allowed
from taehwa.api.responses import BoundedRoute
from taehwa.api.twin_routes import ended_frame
from taehwa.city.live import follow_sites
from taehwa.city.records import (
    Aggregate,
    CityMap,
    CityPolicy,
    ComputeStatus,
    ConsentRecord,
    FigureInfo,
    HqView,
    PrivacyRecord,
    Standing,
)
from taehwa.city.report import report_pdf
from taehwa.core.errors import TaehwaError
from taehwa.server.platform import Platform


class ConsentIn(BaseModel):
    """What a site shares with the city office."""

    model_config = ConfigDict(extra="forbid")
    shares: list[str] = Field(
        default_factory=list, max_length=10, description="map, state, rate, power, models, alerts"
    )
    figures: list[str] = Field(default_factory=list, max_length=20, description="figures the site contributes to")


class PrivacyIn(BaseModel):
    """The city's privacy policy for aggregates."""

    model_config = ConfigDict(extra="forbid")
    k: int | None = Field(None, description="the fewest companies an aggregate comes from (2–100)")
    dp: bool | None = Field(None, description="differential-privacy noise on (with epsilon) or off")
    epsilon: float | None = Field(None, description="ε per release (0.01–10)")
    scope: str | None = Field(None, description="sensitive (default) or all figures")


class QuotaIn(BaseModel):
    """A company's monthly compute quota."""

    model_config = ConfigDict(extra="forbid")
    cpu_hours_month: float | None = Field(None, description="CPU hours a month; null lifts the quota")


def add_city_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the city's routes to the application."""
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["city"])
    city = platform.city

    @router.get("/api/v1/city/map")
    def city_map() -> CityMap:
        """The map: districts, complexes, infrastructure, and the sites companies share with what they share."""
        return city.map()

    @router.get(
        "/api/v1/city/map/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def city_events() -> StreamingResponse:
        """Server-Sent Events `site` with {tenant, site, state} as a shared site's rolled-up state changes."""
        visible = await run_in_threadpool(city.visible_sites)

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
            async for batch in while_allowed(follow_sites(platform.twin.hub, visible), city.city):
                if isinstance(batch, TaehwaError):
                    yield ended_frame(batch)
                    return
                yield (b"event: site\ndata: %s\n\n" % orjson.dumps(batch)) if batch else b": keep-alive\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    @router.get("/api/v1/city/figures")
    def figures() -> list[FigureInfo]:
        """The figures companies may contribute to."""
        return city.figures()

    @router.get("/api/v1/city/aggregates/{figure}")
    def aggregate(
        figure: str,
        by: str = Query("city", max_length=20, description="city, complex, industry or asset_type"),
        group: str | None = Query(None, max_length=100, description="the complex, industry or type"),
    ) -> Aggregate:
        """A figure's mean (with noise, median and quartiles) over the contributing companies (403 below k or when
        differencing)."""
        return city.aggregate(figure, by, group)

    @router.get("/api/v1/city/hq")
    def hq() -> HqView:
        """The headquarters' view: adoption, talent, compute against quotas, released aggregates."""
        return city.hq()

    @router.get(
        "/api/v1/city/report.pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}}
    )
    def report(lang: str = Query("ko", pattern="^(ko|en)$")) -> Response:
        """The headquarters' view as a printable PDF for the city council (made here, offline)."""
        pdf = report_pdf(city.hq(), city.map(), lang)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="taehwa-city-report-{lang}.pdf"'},
        )

    @router.get("/api/v1/city/policy")
    def policy() -> CityPolicy:
        """k, the privacy noise, and the quotas (city members)."""
        city.require_city()
        return {**city.policy.privacy().to_dict(), "quotas": city.policy.quotas()}

    @router.put("/api/v1/city/policy")
    def set_policy(body: PrivacyIn) -> PrivacyRecord:
        """Change k and the noise (city admins)."""
        eps: float | str | None = "keep"
        if body.dp is False:
            eps = None
        elif body.dp or body.epsilon is not None:
            eps = body.epsilon if body.epsilon is not None else 1.0
        return city.policy.set_privacy(k=body.k, epsilon=eps, scope=body.scope).to_dict()

    @router.put("/api/v1/city/quotas/{tenant}")
    def set_quota(tenant: str, body: QuotaIn) -> ComputeStatus:
        """Set or lift a company's monthly compute quota (city admins)."""
        city.policy.set_quota(tenant, body.cpu_hours_month)
        return city.quotas.status(tenant)

    @router.get("/api/v1/{tenant}/city/consents")
    def consents(tenant: str) -> list[ConsentRecord]:
        """What a company's sites share with the city office."""
        return [c.to_dict() for c in city.consents.get(tenant).values()]

    @router.put("/api/v1/{tenant}/city/consents/{site}")
    def set_consent(tenant: str, site: str, body: ConsentIn) -> ConsentRecord:
        """Replace what one site shares (the company's admins); empty lists withdraw it."""
        return city.consents.set(tenant, site, shares=body.shares, figures=body.figures).to_dict()

    @router.get("/api/v1/{tenant}/city/standing/{figure}")
    def standing(tenant: str, figure: str) -> Standing:
        """Where the company stands against the city's figure (mean, or noised median) on a figure it contributes to."""
        return city.standing(tenant, figure)

    @router.get("/api/v1/{tenant}/city/compute")
    def compute(tenant: str) -> ComputeStatus:
        """The company's compute this month against the city's quota."""
        platform.tenants.require(tenant)
        return city.quotas.status(tenant)

    app.include_router(router)
