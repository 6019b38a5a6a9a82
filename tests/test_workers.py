"""Several API processes behind one port: a historian that follows the writer (new points, flushes, compactions),
and `taehwa serve --workers 2` answering from both processes with every write seen by the next read anywhere,
event streams (SSE and WebSocket) relayed whichever process took them, and a killed worker replaced."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.historian.store import Historian

T = "2026-11-30T00:00:00Z"


def _points(k0: int, n: int) -> pa.Table:
    return pa.table(
        {
            "tag": [f"p{i % 3}/PT" for i in range(k0, k0 + n)],
            "time": pa.array([1_795_996_800_000_000 + i * 1_000_000 for i in range(k0, k0 + n)], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "value": [float(i) for i in range(k0, k0 + n)],
        }
    )


def _count(h: Historian) -> tuple[int, list[float]]:
    t = h.read("acme", ["p0/PT", "p1/PT", "p2/PT"], T, "2026-12-01")
    return t.num_rows, sorted(t.column("value").to_pylist())


def test_a_follower_sees_every_write_through_flushes_and_compactions(hist: Historian, settings: Settings) -> None:
    hist.write("acme", _points(0, 30))
    follower = Historian(settings, follow=True, background=False)
    try:
        assert _count(follower) == (30, [float(i) for i in range(30)])  # from the writer's log
        with pytest.raises(Exception, match="read-only"):
            follower.write("acme", _points(100, 1))
        hist.write("acme", _points(30, 30))
        time.sleep(0.03)
        assert _count(follower)[0] == 60
        hist.flush()  # into files: the log segments go, the manifest names the files
        time.sleep(0.03)
        assert _count(follower) == (60, [float(i) for i in range(60)])
        hist.write("acme", _points(30, 40))  # overwrites 30..59 with the same values, adds 60..69
        hist.flush()
        hist.compact("acme")
        hist.write("acme", _points(70, 5))
        time.sleep(0.03)
        assert _count(follower) == (75, [float(i) for i in range(75)])  # each point once
        latest = follower.latest("acme", ["p0/PT"])
        assert latest.column("value").to_pylist() == [72.0]  # the newest p0 point (72 = 3 × 24)
    finally:
        follower.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "TAEHWA_DATA_DIR": str(tmp_path / "data"),
        "TAEHWA_PORT": str(port),
        "TAEHWA_API_TOKEN": "tok",
        "TAEHWA_WORKERS": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert len(_workers(url, 2, 60)) == 2, "two API processes did not come up"
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


H = {"Authorization": "Bearer tok"}


def _workers(url: str, want: int, timeout: float) -> set[str]:
    """The processes that answer /healthz on fresh connections."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            seen.add(httpx.get(f"{url}/healthz").headers["x-taehwa-worker"])
        time.sleep(0.05)
    return seen


def test_two_workers_answer_and_every_write_is_read_back_anywhere(server: tuple[str, Any]) -> None:
    url, _ = server
    assert httpx.post(f"{url}/api/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=H).status_code == 201
    readers: set[str] = set()
    for k in range(30):
        with httpx.Client(headers=H) as c:  # a new connection each time: either process may take it
            r = c.post(
                f"{url}/api/v1/acme/points", json=[{"tag": "p/PT", "time": f"2026-11-30T00:00:{k:02d}Z", "value": k}]
            )
            assert r.status_code == 200, r.text
        with httpx.Client(headers=H) as c:
            r = c.get(f"{url}/api/v1/acme/points", params={"tags": "p/PT", "start": T, "end": "2026-12-01"})
            assert r.status_code == 200 and len(r.json()["points"]) == k + 1, r.text[:300]
            readers.add(r.headers["x-taehwa-worker"])
    for _ in range(300):  # the kernel hands connections to whichever process wakes first: ask until both answered
        if len(readers) == 2:
            break
        r = httpx.get(f"{url}/api/v1/acme/points", params={"tags": "p/PT", "start": T, "end": "2026-12-01"}, headers=H)
        assert len(r.json()["points"]) == 30
        readers.add(r.headers["x-taehwa-worker"])
    assert len(readers) == 2  # reads were answered by both processes
    bad = httpx.post(f"{url}/api/v1/acme/points", json=[{"tag": "p/PT", "time": "yesterday", "value": 1}], headers=H)
    assert bad.status_code == 422 and "time" in bad.text  # refusals pass back unchanged
    assert (
        httpx.get(f"{url}/api/v1/acme/points", params={"tags": "p/PT", "start": T, "end": "2026-12-01"}).status_code
        == 401
    )


def test_event_streams_are_relayed_whichever_process_took_them(server: tuple[str, Any]) -> None:
    from websockets.sync.client import connect

    url, _ = server
    httpx.post(f"{url}/api/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=H).raise_for_status()
    streams: list[list[str]] = [[] for _ in range(4)]

    def listen(i: int) -> None:
        with httpx.Client(headers=H, timeout=20) as c, c.stream("GET", f"{url}/api/v1/acme/events") as r:
            for line in r.iter_lines():
                streams[i].append(line)
                if "site-1" in line:
                    return

    threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    stack = contextlib.ExitStack()
    sockets = [
        stack.enter_context(connect(f"ws://{url.removeprefix('http://')}/api/v1/acme/events/ws", additional_headers=H))
        for _ in range(4)
    ]
    time.sleep(1.0)
    r = httpx.post(f"{url}/api/v1/acme/assets", json={"id": "site-1", "type": "Site"}, headers=H)
    assert r.status_code == 201, r.text
    for t in threads:
        t.join(15)
    assert all(any("site-1" in line for line in s) for s in streams), streams
    for ws in sockets:
        got = ""
        deadline = time.monotonic() + 15
        while "site-1" not in got and time.monotonic() < deadline:
            got += ws.recv(timeout=15, decode=True)
        assert "site-1" in got
    stack.close()
    with (
        pytest.raises(Exception) as refused,
        connect(f"ws://{url.removeprefix('http://')}/api/v1/acme/events/ws") as ws,
    ):  # no token
        ws.recv(timeout=10)
    assert "401" in str(refused.value)  # refused before the handshake by whichever process took it


def test_a_killed_worker_is_replaced(server: tuple[str, Any]) -> None:
    url, proc = server
    pids = _workers(url, 2, 10)
    follower = next(int(p) for p in pids if int(p) != proc.pid)
    os.kill(follower, signal.SIGKILL)
    time.sleep(0.5)
    for _ in range(10):  # the other process answers meanwhile
        assert httpx.get(f"{url}/healthz").status_code == 200
    now = _workers(url, 2, 30)
    assert len(now) == 2 and str(follower) not in now and str(proc.pid) in now
