"""Every answer says which API process produced it (`X-Taehwa-Worker: <pid>`): the tests and an operator see how
`serve --workers N` spreads requests."""

from __future__ import annotations

import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WORKER_HEADER = b"x-taehwa-worker"


class WorkerHeader:
    """Every answer says which process produced it (`X-Taehwa-Worker: <pid>`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != WORKER_HEADER]
                message = {**message, "headers": [*headers, (WORKER_HEADER, self.pid)]}
            await send(message)

        await self.app(scope, receive, stamped)
