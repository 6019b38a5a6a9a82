"""Nothing leaves the premises: the demo, run end to end (plant, replay, HTTP, change streams), opens sockets only
to loopback; `taehwa doctor` reports the security posture."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from taehwa.cli.main import app
from taehwa.core.settings import default_shared_data
from taehwa.demo.replay import start_demo
from taehwa.server.platform import Platform
from tests.conftest import TOKEN, serving

_seen: list[tuple[str, Any]] = []
_recording = [False]


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _recording[0] and event in ("socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg"):
        _seen.append((event, args))


sys.addaudithook(_hook)  # audit hooks cannot be removed; this one records only while a test asks it to


def _local(host: Any) -> bool:
    if host in (None, "localhost", b"localhost"):
        return True
    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host)).is_loopback
    except ValueError:
        return False


def test_demo_end_to_end_opens_only_loopback_sockets(platform: Platform) -> None:
    _seen.clear()
    _recording[0] = True
    try:
        replayer = start_demo(platform, default_shared_data(), speed=600, port=0)  # OPC UA on loopback
        try:
            with (
                serving(platform) as url,
                httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
            ):
                assert http.get("/healthz").status_code == 200
                assert http.get("/api/v1/demo/assets", params={"type": "TurbofanEngine"}).json()["total"] == 100
                with http.stream("GET", "/api/v1/demo/events", params={"kinds": "values"}) as resp:
                    for line in resp.iter_lines():
                        if line.startswith("event: values"):
                            break
                assert http.get("/api/v1/demo/assets/ulsan-refinery/reaction-unit/state").status_code == 200
                status = http.get("/api/v1/demo/connectors/demo-plant").json()["status"]
                assert status["state"] == "connected" and status["points_total"] > 0  # the data came over OPC UA
        finally:
            replayer.stop()
    finally:
        _recording[0] = False
    connects = [args for event, args in _seen if event == "socket.connect"]
    assert connects, "the test should have seen its own loopback connections"
    for event, args in _seen:
        if event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else address
            assert isinstance(host, str) and (host.startswith("/") or _local(host)), (event, args)
        elif event == "socket.getaddrinfo":
            assert _local(args[0]), (event, args)
        else:
            assert _local(args[1][0] if isinstance(args[1], tuple) else None), (event, args)


def test_doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    assert "development token" in r.output and "loopback only" in r.output
    monkeypatch.setenv("TAEHWA_HOST", "0.0.0.0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example.com")
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 8
    assert "TLS is off" in r.output and "MLFLOW_TRACKING_URI" in r.output
