"""Writers partitioned by tenant (`TAEHWA_WRITER_TENANTS`): a request about a tenant this process does not write
goes on to the process that does, at the URL its lease names, so a client may call any node with the same API.

Only the primary of a node routes (its followers and reader nodes pass their non-local requests to it). A routed
request carries `X-Taehwa-Routed` and is never routed again, so two nodes that disagree for a moment about a
tenant's writer answer it rather than pass it back and forth. A tenant whose writer has not said where it is is
answered here: reads from the shared store, writes refused with 409 naming the rule.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from taehwa.api.workers import Relay

if TYPE_CHECKING:
    from taehwa.server.platform import Platform

ROUTED = b"x-taehwa-routed"
TENANT_PATH = re.compile(r"^/api/v1/([a-z0-9][a-z0-9-]*)(/|$)")


class TenantRouter:
    """Pass each request about another writer's tenant to that writer; answer the rest here."""

    def __init__(self, app: Any, platform: Platform) -> None:
        self.app: ASGIApp = app
        self.leases = platform.historian.leases
        # the first path segments under /api/v1/ that are not tenants (users, tokens, academy, …)
        segments = (str(getattr(r, "path", "")).split("/") for r in getattr(app, "routes", []))
        self.reserved = {s[3] for s in segments if len(s) > 3 and s[1:3] == ["api", "v1"] and not s[3].startswith("{")}
        self._relays: dict[str, Relay] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            found = TENANT_PATH.match(scope["path"])
            if found and found.group(1) not in self.reserved and all(k != ROUTED for k, _ in scope["headers"]):
                url = await asyncio.to_thread(self.leases.owner_url, found.group(1))  # may read the store
                if url:
                    relay = self._relays.get(url)
                    if relay is None:
                        relay = self._relays[url] = Relay(url, extra=[(ROUTED, b"1")])
                    if scope["type"] == "http":
                        await relay.http(scope, receive, send)
                    else:
                        await relay.websocket(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def routed(app: Any, platform: Platform) -> Any:
    """The app behind a tenant router when this process is one of several writers by tenant, else the app."""
    return TenantRouter(app, platform) if platform.historian.leases.tenants is not None else app
