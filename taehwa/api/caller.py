"""Who is calling: an ASGI middleware that turns each request's credentials into the caller the services check.

It runs before any route, for HTTP and WebSocket alike, so no endpoint can skip it. A request with no or bad
credentials still reaches the routes as an anonymous caller that every check refuses, with the reason; public
routes (health, OpenAPI) make no check.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from taehwa.errors import Unauthorized
from taehwa.tenancy.access import Principal, acting_as, anonymous


class CallerMiddleware:
    """Sets the caller (`taehwa.tenancy.access.current()`) for the length of each request."""

    def __init__(self, app: ASGIApp, authenticate: Callable[[str, str | None], Principal]) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        source = f"{client[0]}:{client[1]}" if client else None
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token and scope["type"] == "websocket":  # browsers cannot set headers on a WebSocket
            token = parse_qs(scope.get("query_string", b"").decode()).get("access_token", [""])[0]
        if not token:
            caller = anonymous("missing bearer token; send 'Authorization: Bearer <token>'", source)
        else:
            try:
                caller = await run_in_threadpool(self.authenticate, token, source)
            except Unauthorized as exc:
                caller = anonymous(exc.message, source)
        with acting_as(caller):
            await self.app(scope, receive, send)
