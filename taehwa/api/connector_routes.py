"""HTTP routes of the connectors: define (one or a list, checked as a whole), list with status, inspect, remove.
Thin: access, validation and the runtime are the connector service's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query

from taehwa.api.responses import BoundedRoute
from taehwa.server.platform import Platform

CONNECTOR_BODY = Body(..., description="One connector definition ({name, protocol: opcua|mqtt|modbus|files, …, "
                                       "items}), a list of them, or {connectors: [...]}; the same document as "
                                       "`taehwa connectors add FILE` reads")


def add_connector_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the connector routes."""
    service = platform.connectors
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["connectors"])

    @router.get("/api/v1/{tenant}/connectors")
    def list_connectors(tenant: str) -> list[dict[str, Any]]:
        """Every connector with its status: state, last value time, points/s, backlog, last error with its time."""
        return service.list(tenant)

    @router.post("/api/v1/{tenant}/connectors", status_code=201)
    def add_connectors(tenant: str, doc: Any = CONNECTOR_BODY,
                       replace: bool = Query(False, description="Replace connectors of the same name")
                       ) -> dict[str, Any]:
        """Add connectors (tenant admins); the server starts them within seconds."""
        return {"added": service.add(tenant, doc, replace=replace, source="body")}

    @router.get("/api/v1/{tenant}/connectors/{name}")
    def get_connector(tenant: str, name: str) -> dict[str, Any]:
        """A connector's definition (passwords left out) and status."""
        return service.get(tenant, name)

    @router.delete("/api/v1/{tenant}/connectors/{name}", status_code=204)
    def remove_connector(tenant: str, name: str,
                         force: bool = Query(False, description="Remove even with points still queued (lost)")
                         ) -> None:
        """Stop and remove a connector; refused (409) while points wait in its queue, unless force."""
        service.remove(tenant, name, force=force)

    app.include_router(router)
