"""The map's live feed: the rolled-up state of every site the caller may follow, merged from each company's twin
event stream and cut down to `{tenant, site, state}` — no asset below the site, no value, no signal name leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from taehwa.twin.events import EventHub

HEARTBEAT_S = 15.0
LIFETIME_S = 300.0  # a stream ends after this long; the browser reconnects and consents are read again


async def follow_sites(
    hub: EventHub, visible: dict[str, set[str]], *, lifetime_s: float = LIFETIME_S
) -> AsyncGenerator[list[dict[str, Any]] | None]:
    """Batches of site state changes as they happen (None as a heartbeat); `{"reset": true}` when a company's
    stream missed events (the page then reads the map again)."""
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(maxsize=1000)

    async def one(tenant: str, sites: set[str]) -> None:
        async for batch in hub.follow(tenant, under=None, kinds={"state"}, last_event_id=None, heartbeat_s=HEARTBEAT_S):
            if not batch:
                continue
            out: list[dict[str, Any]] = []
            for e in batch:
                if e.kind == "reset":
                    out.append({"reset": True, "tenant": tenant})
                elif e.kind == "state" and len(e.paths) == 1 and e.paths[0] in sites:
                    out.append({"tenant": tenant, "site": e.paths[0], "state": orjson.loads(e.body)["state"]})
            if out:
                with contextlib.suppress(asyncio.QueueFull):  # a client that does not read loses updates only
                    queue.put_nowait(out)

    tasks = [asyncio.create_task(one(t, s)) for t, s in visible.items() if s]
    loop = asyncio.get_running_loop()
    ends = loop.time() + lifetime_s
    try:
        while loop.time() < ends:
            try:
                yield await asyncio.wait_for(queue.get(), min(HEARTBEAT_S, max(0.01, ends - loop.time())))
            except TimeoutError:
                yield None
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
