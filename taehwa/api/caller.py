"""Who is calling: an ASGI middleware that turns each request's credentials into the caller the services check.

It runs before any route, for HTTP and WebSocket alike, so no endpoint can skip it. A request with no or bad
credentials still reaches the routes as an anonymous caller that every check refuses, with the reason; public
routes (health, OpenAPI) make no check. Each caller is also held to a request rate (a token bucket per user, or per
client address for anonymous callers): over it, 429 with Retry-After.

An open stream (Server-Sent Events, WebSocket) asks again, every `RECHECK_S`, whether its credentials still stand
and still allow it (`while_allowed`): a revoked or expired token, a disabled user or a role taken away ends it
within a few seconds. The answers are kept for `CACHE_S` and shared by every stream of one token, so a thousand
open streams cost a database look-up per token every second or two, never a password hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import TypeVar
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from taehwa.core.errors import TaehwaError, TooManyRequests, Unauthorized
from taehwa.tenancy.access import Principal, acting_as, anonymous, check

T = TypeVar("T")
RECHECK_S = 2.0  # how often an open stream asks whether its caller may still follow it
CACHE_S = 1.0  # how long one answer about a token is reused by every stream that holds it


class CallerMiddleware:
    """Sets the caller (`taehwa.tenancy.access.current()`) for the length of each request."""

    def __init__(
        self, app: ASGIApp, authenticate: Callable[[str, str | None], Principal], limiter: RateLimiter | None = None
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.limiter = limiter
        self.answers = CallerCache(authenticate)

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
        held = _credential.set((self.answers, token, source) if token and caller.problem is None else None)
        try:
            with acting_as(caller):
                await self.app(scope, receive, send)
        finally:
            _credential.reset(held)

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


class CallerCache:
    """Who a token stands for, asked again at most every `ttl` seconds: what open streams re-check against.

    Keyed by a SHA-256 of the token (the token itself is not kept as a key); an invalid token is kept as its
    anonymous caller with the reason, so a revoked token is not looked up again by every stream that held it.
    """

    def __init__(self, authenticate: Callable[[str, str | None], Principal], ttl: float = CACHE_S) -> None:
        self.authenticate = authenticate
        self.ttl = ttl
        self._answers: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> bytes:
        """The cache key of a token (a digest, so the table holds no usable secret)."""
        return hashlib.sha256(token.encode()).digest()

    def cached(self, token: str) -> Principal | None:
        """The kept answer for a token while it is fresh, else None (ask `caller`)."""
        with self._lock:
            hit = self._answers.get(self._key(token))
        return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl else None

    def caller(self, token: str, source: str | None) -> Principal:
        """The caller a token stands for now (a kept answer when fresh); an invalid token is an anonymous caller
        whose problem says why. Blocking: it may query the metadata database."""
        fresh = self.cached(token)
        if fresh is not None:
            return fresh
        now = time.monotonic()
        try:
            principal = self.authenticate(token, source)
        except Unauthorized as exc:
            principal = anonymous(exc.message, source)
        with self._lock:
            self._answers[self._key(token)] = (now, principal)
            if len(self._answers) > 10_000:  # forget tokens no stream asked about lately
                self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.ttl}
        return principal


# the credentials of the running request, for streams that re-check them: (answers, token, client address)
_credential: ContextVar[tuple[CallerCache, str, str | None] | None] = ContextVar("taehwa_credential", default=None)


async def recheck(tenant: str, action: str = "read") -> TaehwaError | None:
    """Why the running request's caller may no longer `action` in `tenant` (Unauthorized: the token was revoked,
    expired or its user disabled; Forbidden: the role was taken away), or None while it still may. Requests
    without credentials of their own (in-process calls) have nothing to re-check."""
    held = _credential.get()
    if held is None:
        return None
    answers, token, source = held
    principal = answers.cached(token)
    if principal is None:
        principal = await run_in_threadpool(answers.caller, token, source)
    try:
        with acting_as(principal):
            check(tenant, action)
    except TaehwaError as exc:
        return exc
    return None


async def while_allowed(
    items: AsyncIterator[T], tenant: str, *, action: str = "read", every: float | None = None
) -> AsyncIterator[T | TaehwaError]:
    """The items of a stream for as long as its caller may still `action` in `tenant`, asked again every `every`
    seconds (`RECHECK_S`) whether or not items come; when it may not, the refusal is the last item and the
    stream ends (its source is closed)."""
    period = RECHECK_S if every is None else every
    source = aiter(items)
    pending: asyncio.Future[T] | None = None
    due = time.monotonic() + period
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, due - time.monotonic()))
            if time.monotonic() >= due:  # before anything more is sent
                refused = await recheck(tenant, action)
                if refused is not None:
                    yield refused
                    return
                due = time.monotonic() + period
            if done:
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
