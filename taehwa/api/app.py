"""FastAPI application: routes translate HTTP to service calls and TaehwaError to status codes, nothing more."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from taehwa import __version__
from taehwa.api.academy_routes import add_academy_routes
from taehwa.api.admin_routes import add_admin_routes
from taehwa.api.analytics_routes import add_analytics_routes
from taehwa.api.caller import CallerMiddleware, RateLimiter
from taehwa.api.city_routes import add_city_routes
from taehwa.api.connector_routes import add_connector_routes
from taehwa.api.lab_routes import add_lab_routes
from taehwa.api.live_routes import add_live_routes
from taehwa.api.responses import BoundedRoute, split_tags, table_response
from taehwa.api.twin_routes import add_twin_routes
from taehwa.api.worker_header import WorkerHeader
from taehwa.core.errors import InvalidInput, PayloadTooLarge, TaehwaError, Unauthorized, ValidationFailed
from taehwa.historian.durable import full, is_disk_full
from taehwa.historian.readers import ARROW_STREAM, read_body
from taehwa.server.platform import Platform
from taehwa.tenancy.access import current


class TenantIn(BaseModel):
    """A new tenant."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Lower-case id used in URLs, e.g. ulsan-refinery")
    name: str | None = None
    retention_days: int | None = Field(None, gt=0, le=36_500)


class TenantRename(BaseModel):
    """A tenant's new display name (its id never changes)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)


class TagMetaIn(BaseModel):
    """Tag metadata; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")
    unit: str | None = None
    description: str | None = None
    eng_low: float | None = None
    eng_high: float | None = None
    interval_s: float | None = Field(None, gt=0)
    attributes: dict[str, Any] | None = None


def create_app(platform: Platform) -> FastAPI:
    """The HTTP application over one platform."""
    app = FastAPI(
        title="Taehwa (태화)",
        version=__version__,
        description="Sovereign industrial AI platform: historian (points, tags, tenants) and digital twin "
        "(plant model, assets, live state, change streams).",
    )
    app.router.route_class = BoundedRoute  # JSON documents in bodies: bounded size and depth
    hist = platform.historian
    max_body = platform.settings.max_body_bytes

    @app.exception_handler(TaehwaError)
    async def _taehwa_error(_: Request, exc: TaehwaError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(
            {"error": kinds.get(exc.status_code, "error"), "message": message, "where": "path"},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DataError)
    async def _data_error(_: Request, exc: DataError) -> JSONResponse:
        """A value the metadata database cannot store (PostgreSQL refuses NUL characters in text and text longer
        than its column; SQLite takes both): the caller's input, refused with the database's reason, nothing kept
        (the statement's transaction is rolled back)."""
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        return JSONResponse(
            {"error": "invalid_input", "message": f"a value the database cannot store: {reason}", "where": "input"},
            status_code=422,
        )

    @app.exception_handler(OperationalError)
    async def _database_error(_: Request, exc: OperationalError) -> JSONResponse:
        """A full disk under the metadata database answers 507 with the reason (the statement's transaction is
        rolled back: nothing of the call was kept); any other database error stays a 500."""
        if not is_disk_full(exc):
            raise exc
        err = full("the metadata database")
        return JSONResponse(err.to_dict(), status_code=err.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = ValidationFailed.from_pydantic(exc, "").details[0]  # the first, as FastAPI's own
        return JSONResponse({"error": "invalid_input", **first.to_dict()}, status_code=422)

    app.add_middleware(
        CallerMiddleware,
        authenticate=platform.authenticate,
        limiter=RateLimiter(platform.settings.rate_limit_per_s, platform.settings.rate_limit_burst),
    )

    def auth() -> None:
        """Authentication at the edge (401 before anything else); authorisation is the services' own check."""
        caller = current()
        if caller.problem is not None:
            raise Unauthorized(caller.problem, where="Authorization")

    authed = [Depends(auth)]
    fmt_q = Query("json", pattern="^(json|csv|arrow)$", description="json, csv or arrow (IPC stream)")

    @app.get("/healthz", tags=["platform"])
    def healthz() -> dict[str, Any]:
        """Liveness: the service answers; `read_only` (with the reason) while a full disk keeps writes out."""
        reason = hist.full_reason
        return {
            "status": "ok",
            "version": __version__,
            "read_only": reason is not None,
            **({"reason": reason} if reason else {}),
        }

    @app.get("/api/v1/tenants", dependencies=authed, tags=["tenants"])
    def list_tenants() -> list[dict[str, Any]]:
        """All tenants."""
        return [
            {"id": t.id, "name": t.name, "retention_days": t.retention_days, "created_at": t.created_at.isoformat()}
            for t in platform.tenants.list()
        ]

    @app.post("/api/v1/tenants", dependencies=authed, tags=["tenants"], status_code=201)
    def create_tenant(body: TenantIn) -> dict[str, Any]:
        """Add a tenant (a company or research group)."""
        t = platform.tenants.create(body.id, body.name, body.retention_days)
        return {"id": t.id, "name": t.name, "retention_days": t.retention_days}

    @app.patch("/api/v1/tenants/{tenant}", dependencies=authed, tags=["tenants"])
    def rename_tenant(tenant: str, body: TenantRename) -> dict[str, Any]:
        """Rename a tenant (tenant admins); audited."""
        t = platform.tenants.rename(tenant, body.name)
        return {"id": t.id, "name": t.name, "retention_days": t.retention_days}

    @app.post(
        "/api/v1/{tenant}/points",
        dependencies=authed,
        tags=["points"],
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/csv": {"schema": {"type": "string"}},
                    ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
                },
                "required": True,
            }
        },
    )
    async def write_points(
        tenant: str, request: Request, layout: str = Query("auto", pattern="^(auto|long|wide)$")
    ) -> dict[str, Any]:
        """Store points. Bodies: JSON (a list of {tag, time, value, quality?}, {"points": [...]}, or columns),
        CSV (long tag,time,value[,quality] or wide time,tag1,tag2…) or an Arrow IPC stream. All or nothing."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body:
            raise PayloadTooLarge(f"body of {length} bytes is over the limit of {max_body}", where="body")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise PayloadTooLarge(f"body is over the limit of {max_body} bytes", where="body")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body:
            raise InvalidInput("empty body; send points", where="body")
        content_type = request.headers.get("content-type", "")

        def work() -> dict[str, Any]:
            hist.tenants.require(tenant, "write")
            data = read_body(body, content_type, max_bytes=max_body)
            result = hist.write(tenant, data, source="body", layout=layout)
            return {"stored": result.points, "tags": result.tags}

        return await run_in_threadpool(work)

    @app.get("/api/v1/{tenant}/points", dependencies=authed, tags=["points"])
    def read_points(
        tenant: str,
        tags: Annotated[list[str], Query(description="tag names, repeated or comma-separated")],
        start: str = Query(..., description="ISO 8601 (UTC if no offset) or 'now'"),
        end: str = Query(..., description="ISO 8601 (exclusive)"),
        every: str | None = Query(None, description="downsample into buckets of this width, e.g. 1m"),
        agg: str = Query("avg", description="avg,min,max,sum,count,first,last,stddev,twa"),
        step: str | None = Query(None, description="interpolate onto a grid of this step, e.g. 1s"),
        method: str = Query("previous", pattern="^(previous|linear)$"),
        align: bool = Query(False, description="with step: one column per tag"),
        limit: int | None = Query(None, gt=0),
        format: str = fmt_q,
    ) -> Response:
        """Raw points, downsampled buckets (every, agg) or interpolated values (step, method, align)."""
        table = hist.query(
            tenant,
            split_tags(tags),
            start,
            end,
            every=every,
            agg=agg,
            step=step,
            method=method,
            align=align,
            limit=limit,
        )
        if align and format == "json":
            cols = {c: table.column(c).to_pylist() for c in table.column_names}
            return Response(orjson.dumps({"count": table.num_rows, "columns": cols}), media_type="application/json")
        return table_response(table, format)

    @app.get("/api/v1/{tenant}/tags/latest", dependencies=authed, tags=["tags"])
    def latest(tenant: str, tags: Annotated[list[str] | None, Query()] = None, format: str = fmt_q) -> Response:
        """Newest point of each named tag (or every tag), from the last-value cache."""
        return table_response(hist.latest(tenant, split_tags(tags) if tags else None), format)

    @app.get("/api/v1/{tenant}/tags", dependencies=authed, tags=["tags"])
    def list_tags(
        tenant: str, prefix: str | None = None, limit: int = Query(10_000, gt=0, le=100_000)
    ) -> dict[str, Any]:
        """Tags of the tenant with their metadata, optionally under a path prefix."""
        items = [t.to_dict() for t in hist.tags(tenant, prefix, limit)]
        return {"count": len(items), "tags": items}

    @app.get("/api/v1/{tenant}/tags/{tag:path}", dependencies=authed, tags=["tags"])
    def get_tag(tenant: str, tag: str) -> dict[str, Any]:
        """One tag's metadata."""
        return hist.tag(tenant, tag).to_dict()

    @app.patch("/api/v1/{tenant}/tags/{tag:path}", dependencies=authed, tags=["tags"])
    def set_tag(tenant: str, tag: str, body: TagMetaIn) -> dict[str, Any]:
        """Set or change a tag's metadata (creates the tag if it has no points yet)."""
        return hist.set_tag(tenant, tag, body.model_dump(exclude_unset=True)).to_dict()

    @app.get("/api/v1/{tenant}/stats", dependencies=authed, tags=["points"])
    def stats(tenant: str) -> dict[str, Any]:
        """Files, rows and bytes of the tenant's store."""
        return dict(hist.stats(tenant))

    add_twin_routes(app, platform, auth)
    add_admin_routes(app, platform, auth)
    add_lab_routes(app, platform, auth)
    add_connector_routes(app, platform, auth)
    add_live_routes(app, platform, auth)
    add_analytics_routes(app, platform, auth)
    add_academy_routes(app, platform, auth)
    add_city_routes(app, platform, auth)
    from taehwa.web.city import add_city_pages
    from taehwa.web.pages import add_web_routes

    add_web_routes(app, platform)
    add_city_pages(app, platform)
    app.add_middleware(WorkerHeader)
    return app
