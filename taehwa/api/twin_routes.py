"""HTTP routes of the digital twin: the plant model, asset search and changes, live and past state, and change
streams over Server-Sent Events and WebSocket. Each route is one call to the twin service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from taehwa.api.caller import while_allowed
from taehwa.api.responses import BoundedRoute, read_bounded
from taehwa.core.errors import InvalidInput, TaehwaError, Unauthorized
from taehwa.core.yamlio import MAX_DOCUMENT_BYTES, dump_yaml
from taehwa.server.platform import Platform
from taehwa.twin.events import KINDS, EventHub
from taehwa.twin.records import AssetListing, AssetState, AssetTypeView, AssetView, SearchResult


class AssetIn(BaseModel):
    """A new asset: its id (the last path segment), its parent's path (none for a site) and its fields."""

    model_config = ConfigDict(extra="forbid")
    id: str
    parent: str | None = Field(None, description="path of the parent asset; leave out for a site")
    type: str
    name: str | None = None
    description: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict, description="signal name → historian tag")
    limits: dict[str, dict[str, float]] = Field(default_factory=dict, description="per-asset limit overrides")


class AssetPatch(BaseModel):
    """Fields to change; those left out stay."""

    model_config = ConfigDict(extra="forbid")
    type: str | None = None
    name: str | None = None
    description: str | None = None
    attributes: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    limits: dict[str, dict[str, float]] | None = None


class MoveIn(BaseModel):
    """Where to move an asset: a new parent (null: make it a site) and optionally a new id."""

    model_config = ConfigDict(extra="forbid")
    parent: str | None
    id: str | None = None


class RelationIn(BaseModel):
    """A relationship beside the hierarchy."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str = Field(alias="from")
    kind: str = Field(description="feeds, backs_up, powers, controls or recycles_to")
    target: str = Field(alias="to")


def parse_kinds(kinds: str | None) -> set[str]:
    """Event kinds from a comma-separated list (all when none)."""
    if not kinds:
        return set(KINDS)
    wanted = {k.strip() for k in kinds.split(",") if k.strip()}
    unknown = wanted - set(KINDS)
    if unknown:
        raise InvalidInput(f"unknown event kind {sorted(unknown)[0]!r}; use {', '.join(KINDS)}", where="kinds")
    return wanted


def sse_frame(hub: EventHub, events: list[Any]) -> bytes:
    """Events as Server-Sent Events messages."""
    return b"".join(
        b"id: %s-%d\nevent: %s\ndata: %s\n\n" % (hub.epoch.encode(), e.n, e.kind.encode(), e.body) for e in events
    )


def ended_frame(exc: TaehwaError) -> bytes:
    """The last message of an event stream its caller may no longer follow: an `ended` event with the status and
    reason (a client that reconnects gets the same status as an HTTP answer)."""
    body = orjson.dumps({**exc.to_dict(), "status": exc.http_status})
    return b"event: ended\ndata: %s\n\n" % body


async def refuse_websocket(websocket: WebSocket, exc: TaehwaError) -> None:
    """Refuse a WebSocket before its handshake with the HTTP status and JSON body of the error (401 for a missing,
    revoked or expired token); a server without that ASGI extension closes it with 1008 instead."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        await websocket.send_denial_response(JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers))
        return
    await websocket.close(code=1008, reason=f"{exc.http_status} {exc.message}"[:120])


def add_twin_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the twin's routes to the application."""
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["twin"])
    twin = platform.twin
    hub = twin.hub
    max_body = platform.settings.max_body_bytes

    @router.put(
        "/api/v1/{tenant}/twin",
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/yaml": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
                "required": True,
            }
        },
    )
    async def load_plant(tenant: str, request: Request) -> dict[str, Any]:
        """Replace the plant model with a whole plant document (YAML or JSON): validated as a whole, all or
        nothing; the response counts what was added, changed and removed."""
        body = await read_bounded(request, min(max_body, MAX_DOCUMENT_BYTES))  # parsed by the bounded loader
        if not body.strip():
            raise InvalidInput("empty body; send a plant document", where="body")
        summary = await run_in_threadpool(twin.load, tenant, body, source="body")
        return summary.to_dict()

    @router.get("/api/v1/{tenant}/twin")
    def export_plant(
        tenant: str,
        at: str | None = Query(None, description="the model as it stood at this time"),
        format: str = Query("yaml", pattern="^(yaml|json)$"),
    ) -> Response:
        """The whole plant model as a plant document, now or at a past time."""
        doc = twin.export(tenant, at)
        if format == "json":
            return Response(orjson.dumps(doc), media_type="application/json")
        return Response(dump_yaml(doc), media_type="application/yaml")

    @router.get("/api/v1/{tenant}/twin/versions")
    def versions(tenant: str, limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        """Changes of the model, newest first."""
        return [v.to_dict() for v in twin.versions(tenant, limit)]

    @router.get("/api/v1/{tenant}/types")
    def list_types(tenant: str) -> list[AssetTypeView]:
        """Asset types with inherited attributes and signals merged in."""
        return twin.types(tenant)

    @router.put("/api/v1/{tenant}/types/{name}")
    def put_type(tenant: str, name: str, definition: dict[str, Any]) -> dict[str, Any]:
        """Add or replace an asset type (as in a plant file's `types` section); assets are re-validated."""
        return {"version": twin.put_type(tenant, name, definition), "name": name}

    @router.get("/api/v1/{tenant}/assets")
    def search(
        tenant: str,
        type: str | None = Query(None, description="a type; subtypes match too"),
        under: str | None = Query(None, description="path prefix, e.g. ulsan-refinery/cdu"),
        state: str | None = Query(None, description="unknown, normal, stale, warning or alarm (rolled up)"),
        attr: list[str] | None = Query(None, description="attribute filters name=value, repeatable"),
        q: str | None = Query(None, description="text in the path or name"),
        limit: int = Query(100, ge=1, le=10_000),
        offset: int = Query(0, ge=0),
    ) -> SearchResult:
        """Search assets; every filter given must hold."""
        attrs: dict[str, str] = {}
        for item in attr or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise InvalidInput(f"attribute filter {item!r} must be name=value", where="attr")
            attrs[key] = value
        return twin.search(
            tenant, type=type, under=under, state=state, attributes=attrs, text=q, limit=limit, offset=offset
        )

    @router.get("/api/v1/{tenant}/sites")
    def sites(tenant: str) -> list[AssetListing]:
        """The top of the hierarchy."""
        return twin.children(tenant, None)

    @router.post("/api/v1/{tenant}/assets", status_code=201)
    def create_asset(tenant: str, body: AssetIn) -> AssetView:
        """Add one asset; the whole model is validated with it."""
        fields = body.model_dump(exclude={"parent"}, exclude_none=True)
        return twin.create(tenant, fields, parent=body.parent)

    @router.get("/api/v1/{tenant}/assets/{path:path}/children")
    def children(tenant: str, path: str) -> list[AssetListing]:
        """Direct children with their rolled-up state."""
        return twin.children(tenant, path)

    @router.get("/api/v1/{tenant}/assets/{path:path}/state")
    def state(
        tenant: str,
        path: str,
        at: str | None = Query(None, description="rebuild the state at this time from the historian"),
    ) -> AssetState:
        """Live state (each signal's newest value, quality, time, limit state, staleness; health rolled up), or
        the state at a past time."""
        return twin.state(tenant, path, at)

    @router.post("/api/v1/{tenant}/assets/{path:path}/move")
    def move(tenant: str, path: str, body: MoveIn) -> AssetView:
        """Move a subtree under another parent, or rename it."""
        return twin.move(tenant, path, body.parent, new_id=body.id)

    @router.get("/api/v1/{tenant}/assets/{path:path}")
    def get_asset(tenant: str, path: str, at: str | None = Query(None)) -> AssetView:
        """One asset: fields, children, relations, bound signals and live state (or as it was at a time)."""
        return twin.get(tenant, path, at)

    @router.patch("/api/v1/{tenant}/assets/{path:path}")
    def update_asset(tenant: str, path: str, body: AssetPatch) -> AssetView:
        """Change an asset's fields; the whole model is validated with the change."""
        return twin.update(tenant, path, body.model_dump(exclude_unset=True))

    @router.delete("/api/v1/{tenant}/assets/{path:path}")
    def delete_asset(tenant: str, path: str, recursive: bool = False) -> dict[str, Any]:
        """Remove an asset (with recursive, its subtree too)."""
        return {"deleted": twin.delete(tenant, path, recursive=recursive)}

    @router.post("/api/v1/{tenant}/relations", status_code=201)
    def add_relation(tenant: str, body: RelationIn) -> dict[str, Any]:
        """Add a relation (cycles in feeds, backs_up and powers are refused)."""
        return {"version": twin.relate(tenant, body.source, body.kind, body.target)}

    @router.delete("/api/v1/{tenant}/relations")
    def remove_relation(
        tenant: str,
        source: str = Query(..., alias="from"),
        kind: str = Query(...),
        target: str = Query(..., alias="to"),
    ) -> dict[str, Any]:
        """Remove a relation."""
        return {"version": twin.relate(tenant, source, kind, target, remove=True)}

    @router.get(
        "/api/v1/{tenant}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def events(
        tenant: str,
        request: Request,
        under: str | None = Query(None, description="only this subtree"),
        kinds: str | None = Query(None, description="values,state,model,structure (default all)"),
        last_event_id: str | None = Query(None, description="resume after this event (or the Last-Event-ID header)"),
    ) -> StreamingResponse:
        """Server-Sent Events of the twin's changes, filtered by subtree and kind, resumable with Last-Event-ID."""
        twin.plant(tenant)
        wanted = parse_kinds(kinds)
        resume = request.headers.get("last-event-id") or last_event_id

        async def stream() -> AsyncIterator[bytes]:
            start = resume or hub.last_id(tenant)
            yield b"retry: 2000\nid: %s\nevent: hello\ndata: {}\n\n" % start.encode()
            follow = hub.follow(
                tenant, under=under.strip("/") if under else None, kinds=wanted, last_event_id=resume or start
            )
            async for batch in while_allowed(follow, tenant):
                if isinstance(batch, TaehwaError):  # revoked, or the role taken away: say why, then end
                    yield ended_frame(batch)
                    return
                yield sse_frame(hub, batch) if batch is not None else b": keep-alive\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    app.include_router(router)

    @app.websocket("/api/v1/{tenant}/events/ws")
    async def events_ws(
        websocket: WebSocket,
        tenant: str,
        under: str | None = None,
        kinds: str | None = None,
        last_event_id: str | None = None,
        access_token: str | None = None,
    ) -> None:
        """WebSocket twin events: each message is a JSON list of events (same filters and resume as SSE).
        The token comes in the Authorization header, or as `access_token` where a browser cannot set headers."""
        try:
            auth()
            await run_in_threadpool(twin.plant, tenant)
            wanted = parse_kinds(kinds)
        except TaehwaError as exc:  # refused before the handshake, with the status an HTTP request would get
            await refuse_websocket(websocket, exc)
            return
        await websocket.accept()
        follow = hub.follow(
            tenant, under=under.strip("/") if under else None, kinds=wanted, last_event_id=last_event_id
        )
        try:
            async for batch in while_allowed(follow, tenant):
                if isinstance(batch, TaehwaError):  # revoked, or the role taken away: 4401 or 4403, with why
                    await websocket.close(code=4000 + batch.http_status, reason=batch.message[:120])
                    return
                if batch:
                    await websocket.send_text((b"[" + b",".join(e.body for e in batch) + b"]").decode())
        except WebSocketDisconnect:
            return
