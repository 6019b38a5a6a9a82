"""HTTP routes of the connectors: define (one or a list, checked as a whole), check without storing, browse an OPC UA
server, list with status, inspect, remove.
Thin: access, validation and the runtime are the connector service's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from taehwa.api.responses import BoundedRoute
from taehwa.connectors.records import ConnectorSummary, ConnectorView
from taehwa.server.platform import Platform


class BrowseIn(BaseModel):
    """Where to browse: an OPC UA endpoint, with its user when it asks for one."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(min_length=1, max_length=1000, description="opc.tcp://host:port/path")
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=1000)
    depth: int = Field(6, ge=1, le=10, description="How deep to walk below Objects")


CONNECTOR_BODY = Body(
    ...,
    description="One connector definition ({name, protocol: opcua|mqtt|modbus|files, …, "
    "items}), a list of them, or {connectors: [...]}; the same document as "
    "`taehwa connectors add FILE` reads",
)


def add_connector_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the connector routes."""
    service = platform.connectors
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["connectors"])

    @router.get("/api/v1/{tenant}/connectors")
    def list_connectors(tenant: str) -> list[ConnectorSummary]:
        """Every connector with its status: state, last value time, points/s, backlog, last error with its time."""
        return service.list(tenant)

    @router.post("/api/v1/{tenant}/connectors", status_code=201)
    def add_connectors(
        tenant: str,
        doc: Any = CONNECTOR_BODY,
        replace: bool = Query(False, description="Replace connectors of the same name"),
    ) -> dict[str, Any]:
        """Add connectors (tenant admins); the server starts them within seconds."""
        return {"added": service.add(tenant, doc, replace=replace, source="body")}

    @router.post("/api/v1/{tenant}/connectors/check")
    def check_connectors(tenant: str, doc: Any = CONNECTOR_BODY) -> dict[str, Any]:
        """Check definitions as adding would, storing nothing (tenant admins): every problem named by field."""
        return {"valid": service.check(tenant, doc, source="connector")}

    @router.post("/api/v1/{tenant}/connectors/browse")
    def browse_opcua(tenant: str, body: BrowseIn) -> dict[str, Any]:
        """An OPC UA server's numeric variables with proposed tags, to pick items from (tenant admins)."""
        return {
            "nodes": service.browse(
                tenant, body.endpoint, username=body.username, password=body.password, depth=body.depth
            )
        }

    @router.get("/api/v1/{tenant}/connectors/{name}")
    def get_connector(tenant: str, name: str) -> ConnectorView:
        """A connector's definition (passwords left out) and status."""
        return service.get(tenant, name)

    @router.delete("/api/v1/{tenant}/connectors/{name}", status_code=204)
    def remove_connector(
        tenant: str, name: str, force: bool = Query(False, description="Remove even with points still queued (lost)")
    ) -> None:
        """Stop and remove a connector; refused (409) while points wait in its queue, unless force."""
        service.remove(tenant, name, force=force)

    app.include_router(router)
