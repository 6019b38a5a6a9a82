"""Change events of the twin, kept in a bounded in-memory log per tenant so that SSE and WebSocket clients can
follow it and, after a reconnect, resume from the last event they saw (Last-Event-ID) without missing any.

An event id is `<epoch>-<n>`: n counts a tenant's events within one server run; the epoch changes at every start.
A client that resumes from another epoch, or from an event older than the log keeps, first gets a `reset`
event: it must re-read the state it shows (the values themselves are in the historian, nothing is lost there).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

KINDS = ("values", "state", "model", "structure", "alert")


class Event(NamedTuple):
    """One change: its kind, the assets it concerns, and its JSON body (serialized once, sent to every client).

    The log keeps each as a plain tuple of a number, strings and bytes, which the garbage collector stops tracking
    (it untracks exact tuples of such only): its 200,000 events are not walked by every full collection."""

    n: int
    kind: str
    paths: tuple[str, ...]  # () means the whole plant
    body: bytes

    def concerns(self, under: str | None) -> bool:
        """Whether the event touches the subtree at `under` (everything for None)."""
        if under is None or not self.paths:
            return True
        prefix = under + "/"
        return any(p == under or p.startswith(prefix) for p in self.paths)


@dataclass
class _TenantLog:
    events: deque[tuple[int, str, tuple[str, ...], bytes]]  # `Event`s as plain tuples
    n: int = 0
    waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set)


class EventHub:
    """Per-tenant event logs; `publish` may be called from any thread, `follow` runs on an asyncio loop."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.epoch = secrets.token_hex(4)
        self._capacity = capacity
        self._logs: dict[str, _TenantLog] = {}
        self._lock = threading.Lock()

    def _log(self, tenant: str) -> _TenantLog:
        log = self._logs.get(tenant)
        if log is None:
            log = self._logs.setdefault(tenant, _TenantLog(deque(maxlen=self._capacity)))
        return log

    def publish(self, tenant: str, items: Iterable[tuple[str, tuple[str, ...], dict[str, object]]]) -> int:
        """Append events (kind, paths, data) and wake the followers; returns the last event number."""
        with self._lock:
            log = self._log(tenant)
            for kind, paths, data in items:
                log.n += 1
                body = orjson.dumps({"id": f"{self.epoch}-{log.n}", "kind": kind, **data})
                log.events.append((log.n, kind, paths, body))
            waiters = list(log.waiters)
            last = log.n
        for loop, ev in waiters:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # the loop has closed: its follower is gone
                with self._lock:
                    log.waiters.discard((loop, ev))
        return last

    def last_id(self, tenant: str) -> str:
        """The id of a tenant's newest event (what a client that starts now would resume from)."""
        with self._lock:
            return f"{self.epoch}-{self._log(tenant).n}"

    def _after(self, tenant: str, n: int) -> tuple[list[Event], bool]:
        """Events after number n, and whether some after n were already dropped from the log."""
        with self._lock:
            events = self._log(tenant).events
            if not events or events[-1][0] <= n:
                return [], False
            first = events[0][0]
            if first > n + 1:
                return [Event._make(e) for e in events], True
            return [Event._make(events[i]) for i in range(n + 1 - first, len(events))], False

    def resume_point(self, tenant: str, last_event_id: str | None) -> tuple[int, bool]:
        """Where a follower starts: (event number, whether it must reset because it missed events)."""
        with self._lock:
            current = self._log(tenant).n
        if not last_event_id:
            return current, False
        epoch, _, number = last_event_id.rpartition("-")
        if epoch != self.epoch or not number.isdigit() or int(number) > current:
            return current, True
        return int(number), False

    async def follow(
        self, tenant: str, *, under: str | None, kinds: set[str], last_event_id: str | None, heartbeat_s: float = 15.0
    ) -> AsyncIterator[list[Event] | None]:
        """Batches of matching events as they come (None now and then as a heartbeat); starts with a `reset`
        event when the client missed events that can no longer be replayed."""
        n, reset = self.resume_point(tenant, last_event_id)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        with self._lock:
            self._log(tenant).waiters.add((loop, wake))
        try:
            if reset:
                yield [
                    Event(
                        n,
                        "reset",
                        (),
                        orjson.dumps(
                            {
                                "id": f"{self.epoch}-{n}",
                                "kind": "reset",
                                "reason": "events were missed; re-read the state",
                            }
                        ),
                    )
                ]
            while True:
                wake.clear()
                events, gap = self._after(tenant, n)
                if gap:
                    n = events[0].n - 1
                    yield [
                        Event(
                            n,
                            "reset",
                            (),
                            orjson.dumps(
                                {
                                    "id": f"{self.epoch}-{n}",
                                    "kind": "reset",
                                    "reason": "the client fell behind the event log",
                                }
                            ),
                        )
                    ]
                if events:
                    n = events[-1].n
                    matching = [e for e in events if e.kind in kinds and e.concerns(under)]
                    if matching:
                        yield matching
                    continue
                try:
                    await asyncio.wait_for(wake.wait(), heartbeat_s)
                except TimeoutError:
                    yield None
        finally:
            with self._lock:
                self._log(tenant).waiters.discard((loop, wake))
