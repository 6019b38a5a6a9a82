"""The OPC UA connector against a real asyncua server (Taehwa's replay server): mapping by browse, source times and
deadband, and no value lost or doubled when the server restarts mid-stream (the connector reconnects, resubscribes
and fills the gap from the server's history)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pyarrow as pa

from taehwa.connectors.opcua import browse
from taehwa.core.loopback import free_port
from taehwa.replay.opcua_server import ReplayServer
from taehwa.server.platform import Platform
from tests.test_connectors_mqtt import wait_for

BASE_US = (int(time.time()) - 3600) * 1_000_000  # an hour ago: recent, as a live source is


def points(tag: str, start: int, n: int, step_us: int = 1000) -> pa.Table:
    return pa.table(
        {
            "tag": [tag] * n,
            "time": pa.array([BASE_US + i * step_us for i in range(start, start + n)]).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "value": [float(i) for i in range(start, start + n)],
        }
    )


def values(p: Platform, tag: str) -> list[float]:
    p.historian.flush()
    try:
        return [
            float(v) for v in p.historian.read("acme", [tag], "2000-01-01", "2100-01-01").column("value").to_pylist()
        ]
    except Exception:
        return []


def test_browse_mapping_source_times_and_deadband(platform: Platform) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/taehwa/"
    tags = ["opc/r1/pressure", "opc/r1/temperature"]
    with ReplayServer(endpoint) as server:
        server.start(tags)
        proposed = asyncio.run(browse(endpoint))
        assert {p["tag"]: p["node"] for p in proposed} == {t: server.node_id(t) for t in tags}
        spec = server.connector("reactor", publish_ms=50)
        spec["items"][1]["deadband"] = 0.5  # temperature: changes of 0.5 or less are not sent
        platform.connectors.add("acme", spec)
        platform.connectors.start(interval_s=0.2)
        assert wait_for(lambda: platform.connectors.status("acme", "reactor")["state"] == "connected")
        time.sleep(0.5)
        server.write(points("opc/r1/pressure", 0, 50))
        t = pa.table(
            {
                "tag": ["opc/r1/temperature"] * 4,
                "time": pa.array([BASE_US + k * 1000 for k in range(4)]).cast(pa.timestamp("us", tz="UTC")),
                "value": [20.0, 20.2, 20.4, 21.0],
            }
        )
        server.write(t)
        assert wait_for(lambda: len(values(platform, "opc/r1/pressure")) == 50)
        got = platform.historian.read("acme", ["opc/r1/pressure"], "2000-01-01", "2100-01-01")
        assert got.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist() == [
            BASE_US + i * 1000 for i in range(50)
        ]  # the server's source timestamps, not arrival times
        assert wait_for(lambda: values(platform, "opc/r1/temperature") == [20.0, 21.0])
        st = platform.connectors.status("acme", "reactor")
        assert st["points_total"] >= 52 and st["detail"]["monitored"] == 2 and st["last_value_time"]


def test_server_restart_mid_stream_loses_nothing(platform: Platform, tmp_path: Path) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/taehwa/"
    history = tmp_path / "server-history.db"  # the plant server's own history, kept across its restart
    tag = "opc/s1/seq"
    server = ReplayServer(endpoint, history_db=history)
    server.start([tag])
    platform.connectors.add("acme", server.connector("line-opc", publish_ms=50))
    platform.connectors.start(interval_s=0.2)
    assert wait_for(lambda: platform.connectors.status("acme", "line-opc")["state"] == "connected")
    time.sleep(0.5)
    for k in range(0, 600, 50):
        server.write(points(tag, k, 50))
        time.sleep(0.02)
    server.stop()  # mid-stream: the last changes never reach the connector before the server goes
    server = ReplayServer(endpoint, history_db=history)
    server.start([tag])
    try:
        server.write(points(tag, 600, 600))  # emitted while the connector is still reconnecting
        assert wait_for(lambda: len(values(platform, tag)) >= 1200, timeout=40)
        server.write(points(tag, 1200, 300))  # and live again after it resubscribed
        assert wait_for(lambda: len(values(platform, tag)) >= 1500, timeout=20)
        assert values(platform, tag) == [float(i) for i in range(1500)]  # each exactly once, in order
        st = platform.connectors.status("acme", "line-opc")
        assert st["state"] == "connected" and st["detail"]["history_recovered"] > 0
        assert "lost" in (st["last_error"] or "")  # the drop was reported, with its time
    finally:
        server.stop()
