"""Connector benchmark: MQTT through Mosquitto into the historian beside a bare subscriber, OPC UA values/s from a
subscription of 5,000 monitored items, and points lost across a forced restart.

    python bench/connectors.py            # full: 1,000,000 MQTT points, OPC UA for 20 s
    python bench/connectors.py --quick    # small: 200,000 MQTT points, OPC UA for 6 s

MQTT: a publisher in its own process sends QoS 1 JSON messages of 100 points ({"tag", "time", "value"} each) to a
local Mosquitto (Debian's package; the MQTT figures are null without it). Taehwa's MQTT connector (persistent
session, acknowledging each message only after its points are in the durable queue) carries them into the
historian; the figure runs from the first publish to the last point readable in the historian. The publisher
makes its messages before the clock starts, and a warm-up of 1,000 points (which creates the 50 tags) goes first,
in both runs: the figures are the transport's steady rate. Baseline: the same
publisher, the same broker, a bare paho subscriber that only counts messages. Lost: the same stream again while the
platform is closed and reopened mid-stream (its connector goes away and comes back); the points missing from the
historian afterwards.

OPC UA: Taehwa's replay server in its own process (asyncua) serves 5,000 variables and changes every one of them
as fast as it can; the connector subscribes to all 5,000 (publishing interval 100 ms); the figure is the values/s
that reach the historian over the steady part of the run.

Prints a table, then as its last line {"bench": "connectors", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from taehwa.connectors.mosquitto import BINARY, Mosquitto
from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform

PER_MSG = 100
WARM_UP, WARM_START = 1_000, 50_000_000  # points sent before the clock starts (making the tags), and the first
# of their indices (times far from the timed run's)
T0 = 1_790_000_000  # 2026-09-21 (s)

PUBLISHER = r"""
import sys, time, orjson, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, start, n, per, topic = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub-%d" % start, clean_session=True)
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
payloads = [orjson.dumps([{"tag": "b%02d" % (i % 50), "time": %d + i * 1000, "value": i} for i in range(k, k + per)])
            for k in range(start, start + n, per)]  # made before the clock starts: the figure is the transport's
print("READY", flush=True)
sys.stdin.readline()
t = time.perf_counter()
infos = [c.publish(topic, payload, qos=1) for payload in payloads]
for info in infos:
    info.wait_for_publish(timeout=120)
print("DONE %.4f" % (time.perf_counter() - t), flush=True)
c.loop_stop(); c.disconnect()
""".replace("%d + i", str(T0 * 1_000_000) + " + i")


def publish(port: int, start: int, n: int, topic: str = "bench/line/json") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(port), str(start), str(n), str(PER_MSG), topic],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def bare_subscriber(port: int, n: int) -> float:
    """Points/s that a subscriber which only counts messages receives from the same publisher (after the same
    warm-up as Taehwa's run)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = [0]
    done_at = [0.0]
    target = [WARM_UP]

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        got[0] += PER_MSG
        if got[0] >= target[0]:
            done_at[0] = time.perf_counter()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=True)
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe("bench/bare/#", qos=1)
    c.loop_start()
    time.sleep(0.5)
    warm = publish(port, WARM_START, WARM_UP, "bench/bare/json")
    go(warm)
    warm.wait()
    deadline = time.monotonic() + 30
    while got[0] < WARM_UP and time.monotonic() < deadline:
        time.sleep(0.01)
    target[0] = WARM_UP + n
    pub = publish(port, 0, n, "bench/bare/json")
    t = time.perf_counter()
    go(pub)
    deadline = time.monotonic() + 300
    while got[0] < WARM_UP + n and time.monotonic() < deadline:
        time.sleep(0.01)
    pub.wait()
    c.loop_stop()
    c.disconnect()
    return n / (done_at[0] - t) if got[0] >= WARM_UP + n else 0.0


def historian_count(p: Platform, tags: list[str]) -> int:
    p.historian.flush()
    try:
        return int(p.historian.read("bench", tags, "2000-01-01", "2100-01-01").num_rows)
    except Exception:
        return 0


def connector_spec(port: int) -> dict[str, Any]:
    return {
        "name": "bench-mqtt",
        "protocol": "mqtt",
        "port": port,
        "keepalive_s": 30,
        "items": [{"topic": "bench/+/json", "format": "json", "tag": "mqtt/{1}/{name}"}],
    }


def mqtt_run(settings: Settings, port: int, n: int) -> float:
    p = Platform(settings, background=False)
    p.tenants.create("bench")
    p.connectors.add("bench", connector_spec(port))
    p.connectors.start(interval_s=0.2)
    tags = [f"mqtt/line/b{i:02d}" for i in range(50)]
    try:
        deadline = time.monotonic() + 30
        while p.connectors.status("bench", "bench-mqtt")["state"] != "connected" and time.monotonic() < deadline:
            time.sleep(0.05)
        for start, count in ((WARM_START, WARM_UP), (0, n)):  # the warm-up makes the tags; then the clock runs
            pub = publish(port, start, count)
            t = time.perf_counter()
            go(pub)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                st = p.connectors.status("bench", "bench-mqtt")
                if st["points_total"] >= WARM_UP + (n if start == 0 else 0) and st["backlog"] == 0:
                    break
                time.sleep(0.02)
            elapsed = time.perf_counter() - t
            pub.wait()
        stored = historian_count(p, tags)
        if stored != n + WARM_UP:
            print(f"MQTT run: {stored} of {n + WARM_UP} points stored", file=sys.stderr)
        return n / elapsed
    finally:
        p.close()


def mqtt_restart(settings: Settings, port: int, n: int) -> int:
    """Stream n points; close the platform after the first third and reopen it; the points missing at the end."""
    p = Platform(settings, background=False)
    p.connectors.start(interval_s=0.2)
    tags = [f"mqtt/loss/b{i:02d}" for i in range(50)]
    pub = publish(port, 10_000_000, n, "bench/loss/json")
    go(pub)
    deadline = time.monotonic() + 60
    while p.connectors.status("bench", "bench-mqtt")["points_total"] < n // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.close()  # forced restart mid-stream: the broker holds what the connector has not acknowledged
    time.sleep(1.0)
    p = Platform(settings, background=False)
    p.connectors.start(interval_s=0.2)
    try:
        pub.wait()
        deadline = time.monotonic() + 120
        while historian_count(p, tags) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        return n - historian_count(p, tags)
    finally:
        p.close()


OPCUA_SERVER = r"""
import sys, time
import numpy as np, pyarrow as pa
from taehwa.replay.opcua_server import ReplayServer
endpoint, n_tags, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
tags = ["bench/g%02d/t%04d" % (i // 100, i) for i in range(n_tags)]
s = ReplayServer(endpoint)
s.start(tags)
print("READY", flush=True)
sys.stdin.readline()
t_end = time.time() + seconds
k = 0
tag_col = pa.array(tags)
while time.time() < t_end:
    now = int(time.time() * 1e6)
    s.write(pa.table({"tag": tag_col, "time": pa.array(np.full(n_tags, now)).cast(pa.timestamp("us", tz="UTC")),
                      "value": pa.array(np.full(n_tags, float(k)))}))
    k += 1
print("WROTE %d" % (k * n_tags), flush=True)
sys.stdin.readline()
s.stop()
"""


def opcua_run(settings: Settings, seconds: float, n_tags: int = 5000) -> tuple[float, int]:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/taehwa/"
    server = subprocess.Popen(
        [sys.executable, "-c", OPCUA_SERVER, endpoint, str(n_tags), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    assert server.stdout.readline().strip() == "READY"
    p = Platform(settings, background=False)
    try:
        p.tenants.create("bench")
        items = [
            {"node": f"ns=2;i={1000 + i}", "tag": f"bench/g{i // 100:02d}/t{i:04d}", "sampling_ms": 0}
            for i in range(n_tags)
        ]
        p.connectors.add(
            "bench",
            {
                "name": "bench-opcua",
                "protocol": "opcua",
                "endpoint": endpoint,
                "publish_ms": 100,
                "history_fill": False,
                "items": items,
            },
        )
        p.connectors.start(interval_s=0.2)
        deadline = time.monotonic() + 120
        while p.connectors.status("bench", "bench-opcua")["state"] != "connected" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        server.stdin.write("\n")
        server.stdin.flush()
        time.sleep(min(2.0, seconds / 4))  # past the start
        a, t_a = p.connectors.status("bench", "bench-opcua")["points_total"], time.perf_counter()
        time.sleep(seconds / 2)
        b, t_b = p.connectors.status("bench", "bench-opcua")["points_total"], time.perf_counter()
        line = server.stdout.readline().split()
        written = int(line[1]) if len(line) == 2 else 0
        time.sleep(2.0)
        return (b - a) / (t_b - t_a), written
    finally:
        server.stdin.write("\n")
        server.stdin.flush()
        server.wait(timeout=60)
        p.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 200_000 if args.quick else 1_000_000
    seconds = 6.0 if args.quick else 20.0
    figures: dict[str, Any] = {"mqtt_pts_s": None, "mqtt_bare_pts_s": None, "mqtt_ratio_vs_bare": None, "lost": None}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings(data_dir=folder / "data")
        if BINARY is not None:
            (folder / "broker").mkdir()
            broker = Mosquitto(folder / "broker")
            broker.start()
            try:
                ours = mqtt_run(settings, broker.port, n)
                bare = bare_subscriber(broker.port, n)
                lost = mqtt_restart(settings, broker.port, n // 2)
            finally:
                broker.stop()
            figures.update(
                mqtt_pts_s=round(ours),
                mqtt_bare_pts_s=round(bare),
                mqtt_ratio_vs_bare=round(ours / bare, 3) if bare else None,
                lost=lost,
            )
        else:
            print("mosquitto is not installed: MQTT figures skipped", file=sys.stderr)
        rate, written = opcua_run(Settings(data_dir=folder / "data-opcua"), seconds)
        figures.update(opcua_values_s=round(rate), opcua_server_changes=written)
    print(f"{'figure':<24}{'value':>14}")
    for key, value in figures.items():
        print(f"{key:<24}{value!s:>14}")
    print(json.dumps({"bench": "connectors", "quick": args.quick, "figures": figures}))


if __name__ == "__main__":
    main()
