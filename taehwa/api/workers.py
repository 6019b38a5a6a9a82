"""`taehwa serve --workers N`: several API processes behind one port.

The first process, the primary, holds everything that must have one owner: the historian's writer, the
connectors, live scoring and alerts, the twin's live state and its change streams. It listens on the public port
and on a Unix socket in the data directory (`api.sock`, private to the platform's user). The other N-1 processes,
the followers (`python -m taehwa.api.workers HOST PORT SOCKET`), listen on the same port (SO_REUSEPORT: the kernel
spreads new connections evenly over the processes' sockets, where one shared socket would hand most of them to
whichever process happens to wake first) and

- answer the heavy reads themselves: points (raw, downsampled, interpolated), tags and latest values, from a
  historian that follows the writer's log and manifests (`Historian(follow=True)`: at most 20 ms behind, and a
  write acknowledged by the primary is seen by the next read anywhere);
- pass everything else to the primary over the Unix socket, as it comes: writes, the web UI, the lab, live
  scoring's calls, and live streams (Server-Sent Events and WebSockets relayed frame by frame).

A reader node on another machine (`taehwa serve --follow URL`) is a follower whose primary is reached over
HTTP(S) instead of the Unix socket. It shares the store through object storage (`TAEHWA_HISTORIAN_URL`) and the
metadata database, not the writer's log, so it sees points once the writer has flushed them
(`TAEHWA_BUFFER_MAX_AGE_S`) and read the manifest again (at most a second later).

So a request is answered whichever process took it, nothing is scored or alerted twice (only the primary runs
deployments), and no live stream is lost. Each process has its own rate limiter (a caller's limit applies per
process), and answers carry `X-Taehwa-Worker` (the process id that produced them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from taehwa.core.lifeline import child_env, end_with_parent

if TYPE_CHECKING:
    from taehwa.core.settings import Settings
    from taehwa.server.platform import Platform

log = logging.getLogger(__name__)

LOCAL = re.compile(r"^/api/v1/([^/]+)/(points|tags)(/.*)?$|^/healthz$")  # what a follower answers itself
HOP = {
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"trailer",
    b"upgrade",
    b"proxy-authorization",
    b"proxy-authenticate",
    b"content-length",
}
CLIENT_HEADER = b"x-taehwa-client"  # the caller's address, from a follower to the primary (over the Unix socket)


class Relay:
    """Passes requests and WebSockets on to another Taehwa process, over its Unix socket (a process on the same
    machine) or to its URL (another machine), streaming both ways."""

    def __init__(self, target: str, *, tls: bool = False, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        self.url = target.rstrip("/") if target.startswith(("http://", "https://")) else None
        self.socket, self.scheme = target, "https" if tls else "http"
        self.extra = extra or []  # headers added to every request passed on
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(None, connect=10.0)
            if self.url:
                self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout)
            else:
                # the primary's certificate names the public host, not its socket: the socket is private to this
                # user
                transport = httpx.AsyncHTTPTransport(uds=self.socket, verify=False)
                self._client = httpx.AsyncClient(
                    transport=transport, base_url=f"{self.scheme}://primary", timeout=timeout
                )
        return self._client

    def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        client = scope.get("client")
        out = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in HOP and k.lower() != CLIENT_HEADER]
        if client:
            out.append((CLIENT_HEADER, f"{client[0]}:{client[1]}".encode()))
        return out + self.extra

    @staticmethod
    def _target(scope: Scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        return path.decode("latin-1") + (f"?{query}" if query else "")

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an HTTP request on and relay the answer as it comes (an event stream event by event)."""

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        client = self.client()
        request = client.build_request(
            scope["method"], self._target(scope), headers=self._headers(scope), content=body()
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as exc:
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")],
                }
            )
            await send(
                {
                    "type": "http.response.body",
                    "body": json.dumps(
                        {"error": "unavailable", "message": f"{self.describe()} does not answer: {exc}"[:300]}
                    ).encode(),
                }
            )
            return

        async def relay() -> None:
            async for chunk in response.aiter_raw():  # as it comes: an event stream is relayed event by event
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def gone() -> None:  # the client left: stop relaying (an event stream would go on for ever)
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP],
                }
            )
            relaying, watching = asyncio.ensure_future(relay()), asyncio.ensure_future(gone())
            try:
                await asyncio.wait([relaying, watching], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (relaying, watching):
                    task.cancel()
            if relaying.done() and not relaying.cancelled():
                relaying.result()  # an error of the relay itself is raised here
        finally:
            await response.aclose()

    def describe(self) -> str:
        return f"the Taehwa process at {self.url}" if self.url else "the primary API process"

    async def aclose(self) -> None:
        """Close the connections kept to the other process (at shut-down)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    async def _refused(scope: Scope, send: Send, status: int, content_type: str | None, body: bytes) -> None:
        """Pass on the other process's refusal of a WebSocket handshake as it was (status and body), where the
        server here can send an HTTP answer to a WebSocket request; else close with 1008 naming the status."""
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008, "reason": f"refused ({status})"})
            return
        headers = [(b"content-type", (content_type or "application/json").encode("latin-1"))]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body[:4096]})

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Accept a WebSocket once the other process has, then relay frames both ways until either closes."""
        from websockets.asyncio.client import connect, unix_connect
        from websockets.exceptions import InvalidStatus, WebSocketException

        await receive()  # websocket.connect
        keep = {b"authorization", b"cookie", b"origin", CLIENT_HEADER} | {k for k, _ in self.extra}
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._headers(scope) if k.lower() in keep]
        try:
            if self.url:
                upstream = await connect(
                    "ws" + self.url.removeprefix("http") + self._target(scope), additional_headers=headers
                )
            else:
                upstream = await unix_connect(
                    self.socket, f"ws://primary{self._target(scope)}", additional_headers=headers
                )
        except InvalidStatus as exc:  # refused there: the same HTTP answer here (401 for a revoked token)
            await self._refused(
                scope,
                send,
                exc.response.status_code,
                exc.response.headers.get("content-type"),
                bytes(exc.response.body or b""),
            )
            return
        except (OSError, WebSocketException):
            await send({"type": "websocket.close", "code": 1011, "reason": f"{self.describe()} does not answer"})
            return
        await send({"type": "websocket.accept"})

        async def up() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("text") if message.get("text") is not None else message.get("bytes")
                if data is not None:
                    await upstream.send(data)

        async def down() -> None:
            with contextlib.suppress(WebSocketException):
                async for data in upstream:
                    await send(
                        {"type": "websocket.send", **({"text": data} if isinstance(data, str) else {"bytes": data})}
                    )
            with contextlib.suppress(Exception):
                await send(
                    {
                        "type": "websocket.close",
                        "code": upstream.close_code or 1000,
                        "reason": upstream.close_reason or "",
                    }
                )

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await upstream.close()


class Forward:
    """A follower's front: local reads to its own app, everything else to the primary, over its Unix socket (a
    follower on the same machine) or over HTTP(S) to its URL (a reader node on another machine)."""

    def __init__(self, app: ASGIApp, primary: str, *, tls: bool = False, tenants: frozenset[str] | None = None) -> None:
        self.app = app
        self.relay = Relay(primary, tls=tls)
        # beside a writer by tenant, reads of other writers' tenants go on too (the primary routes them to their
        # writer, whose log has the newest points)
        self.tenants = tenants

    def _local(self, scope: Scope) -> bool:
        found = LOCAL.match(scope["path"]) if scope["method"] in ("GET", "HEAD") else None
        return found is not None and (self.tenants is None or found.group(1) is None or found.group(1) in self.tenants)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._local(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self.relay.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.relay.websocket(scope, receive, send)
        else:  # lifespan
            await self.app(scope, receive, send)


def tls_files(settings: Settings) -> tuple[str | None, str | None]:
    """uvicorn's certificate and key files: HTTPS when both TAEHWA_TLS_CERT and TAEHWA_TLS_KEY are set."""
    if settings.tls_cert and settings.tls_key:
        return str(settings.tls_cert), str(settings.tls_key)
    return None, None


def public_socket(host: str, port: int) -> socket.socket:
    """A listening socket on the public port that every API process binds for itself (SO_REUSEPORT; the kernel
    lets only processes of the same user share the port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def primary_socket(path: Path) -> socket.socket:
    """The primary's Unix socket for what followers pass on; only the platform's user may connect."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(2048)
    return sock


class Followers:
    """The follower processes: started, started again when one dies (after a second), stopped with the server."""

    def __init__(self, count: int, host: str, port: int, primary: Path) -> None:
        self.count, self.host, self.port, self.primary = count, host, port, primary
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="api-followers", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        """One follower, which ends with this process (`lifeline`): started from the main thread or the watch
        thread only, both of which outlive it (the kernel's parent-death signal follows the starting thread)."""
        return subprocess.Popen(
            [sys.executable, "-m", "taehwa.api.workers", self.host, str(self.port), str(self.primary)], env=child_env()
        )

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.count)]
        self._thread.start()

    def _watch(self) -> None:
        """Thread body: start a follower again when one dies; never ends before `stop` (its followers would go)."""
        while not self._stop.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stop.is_set():
                    log.warning("API worker %d ended (exit code %s); starting another", proc.pid, proc.returncode)
                    try:
                        self.procs[i] = self._spawn()
                    except OSError as exc:  # out of processes or memory for now: try again in a second
                        log.error("API worker could not be started again: %s", exc)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None]

    def stop(self) -> None:
        """End every follower and wait for each (SIGTERM, then SIGKILL after 15 s)."""
        self._stop.set()
        if self._thread.is_alive():  # no follower is started again behind our back
            self._thread.join(timeout=5)
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serve_primary(
    platform: Platform, app: Any, host: str, port: int, count: int, announce: Callable[[list[int]], None] | None = None
) -> None:
    """This process as the primary of `count` API processes on one port, until the server is told to stop."""
    import uvicorn

    settings = platform.settings
    public = public_socket(host, port)
    private_path = settings.data_dir / "api.sock"
    private = primary_socket(private_path)
    followers = Followers(count - 1, host, public.getsockname()[1], private_path)
    followers.start()
    if announce:
        announce(followers.pids())
    # open event streams pass through the followers: waiting on them would wait forever
    cert, key = tls_files(settings)
    config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5, ssl_certfile=cert, ssl_keyfile=key)
    stopped_by: int | None = None
    try:
        with _signal_after_cleanup(signal.SIGTERM):
            uvicorn.Server(config).run(sockets=[public, private])
    except _Stopped as stopped:
        stopped_by = stopped.signum
    finally:
        followers.stop()
        private.close()
        public.close()
        with contextlib.suppress(FileNotFoundError):
            private_path.unlink()
    if stopped_by is not None:  # end by the signal as before, now that the followers are gone
        signal.raise_signal(stopped_by)


class _Stopped(BaseException):
    """uvicorn's stop signal, raised again once the server has stopped (see `_signal_after_cleanup`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signal_after_cleanup(signum: int) -> Iterator[None]:
    """While the server runs, turn `signum` into `_Stopped`: uvicorn raises the signal that stopped it again as it
    returns, which for SIGTERM (default action) ended this process before its `finally` stopped the followers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(sig: int, _frame: Any) -> None:
        raise _Stopped(sig)

    previous = signal.signal(signum, stop)
    try:
        yield
    finally:
        signal.signal(signum, previous)


def follower_main(host: str, port: int, primary: str) -> int:
    """A follower process: a following platform, its app behind `Forward`, served on its own socket of the
    public port. `primary`: the primary's Unix socket, or (a reader node on another machine) its URL."""
    from taehwa.core.settings import load_settings
    from taehwa.server.platform import Platform

    end_with_parent()  # SIGTERM (uvicorn's graceful stop) when the primary is gone, even killed
    settings = load_settings()
    serve_follower(Platform(settings, follow=True, background=False), host, port, primary)
    return 0


def serve_follower(platform: Platform, host: str, port: int, primary: str) -> None:
    """Serve a following platform: its own reads, the rest passed on to the primary; closes the platform."""
    import uvicorn

    from taehwa.api.app import create_app

    settings = platform.settings
    cert, key = tls_files(settings)
    app: Any = Forward(create_app(platform), primary, tls=cert is not None, tenants=settings.writer_tenant_set)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, ssl_certfile=cert, ssl_keyfile=key)
    try:
        uvicorn.Server(config).run(sockets=[public_socket(host, port)])
    finally:
        platform.close()


if __name__ == "__main__":
    sys.exit(follower_main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
