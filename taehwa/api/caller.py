"""Who is calling: an ASGI middleware that turns each request's credentials into the caller the services check.

It runs before any route, for HTTP and WebSocket alike, so no endpoint can skip it. A request with no or bad
credentials still reaches the routes as an anonymous caller that every check refuses, with the reason; public
routes (health, OpenAPI) make no check. Each caller is also held to a request rate (a token bucket per user, or per
client address for anonymous callers): over it, 429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from taehwa.errors import TooManyRequests, Unauthorized
from taehwa.tenancy.access import Principal, acting_as, anonymous


class CallerMiddleware:
    """Sets the caller (`taehwa.tenancy.access.current()`) for the length of each request."""

    def __init__(self, app: ASGIApp, authenticate: Callable[[str, str | None], Principal],
                 limiter: RateLimiter | None = None) -> None:
        self.app = app
        self.authenticate = authenticate
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        source = f"{client[0]}:{client[1]}" if client else None
        headers = dict(scope.get("headers") or [])
        if client is None and b"x-taehwa-client" in headers:  # passed on by an API worker over the private socket
            source = headers[b"x-taehwa-client"].decode("latin-1")[:100]
            host, _, port = source.rpartition(":")
            client = (host, int(port)) if port.isdigit() else None
        header = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        csrf_problem = None
        if not token:  # a browser: the session cookie, with the CSRF header on every change
            cookies = _cookies(headers.get(b"cookie", b"").decode("latin-1"))
            token = cookies.get(SESSION_COOKIE, "")
            unsafe = scope["type"] == "http" and scope.get("method") not in ("GET", "HEAD", "OPTIONS")
            if token and unsafe and not csrf_ok(token, headers.get(b"x-csrf-token", b"").decode("latin-1")):
                csrf_problem = "missing or wrong X-CSRF-Token header (copy it from the taehwa_csrf cookie)"
        if not token and scope["type"] == "websocket":  # browsers cannot set headers on a WebSocket
            token = parse_qs(scope.get("query_string", b"").decode()).get("access_token", [""])[0]
        if csrf_problem:
            caller = anonymous(csrf_problem, source)
        elif not token:
            caller = anonymous("missing bearer token; send 'Authorization: Bearer <token>'", source)
        else:
            try:
                caller = await run_in_threadpool(self.authenticate, token, source)
            except Unauthorized as exc:
                caller = anonymous(exc.message, source)
        if self.limiter is not None:
            key = caller.user if caller.problem is None else f"anonymous@{client[0] if client else '?'}"
            wait = self.limiter.take(key)
            if wait > 0:
                await self._refuse(scope, receive, send, wait)
                return
        with acting_as(caller):
            await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, wait: float) -> None:
        exc = TooManyRequests(f"too many requests; retry in {wait:.1f} s", where="rate limit")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013, "reason": exc.message})
            return
        response = JSONResponse(exc.to_dict(), status_code=429, headers={"Retry-After": str(max(1, round(wait)))})
        await response(scope, receive, send)


SESSION_COOKIE = "taehwa_session"
CSRF_COOKIE = "taehwa_csrf"


def csrf_token(session: str) -> str:
    """The CSRF token that goes with a session (double submit: a page script copies it into a header, which a
    cross-site form cannot)."""
    return hashlib.sha256(b"taehwa-csrf:" + session.encode()).hexdigest()[:32]


def csrf_ok(session: str, header: str) -> bool:
    """Whether a request's CSRF header matches its session."""
    return bool(header) and hmac.compare_digest(header, csrf_token(session))


def _cookies(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out


class RateLimiter:
    """A token bucket per caller: `rate` requests a second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, last time)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one request; returns 0, or the seconds to wait when the bucket is empty."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # forget idle callers
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            return 0.0
