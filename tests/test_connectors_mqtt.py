"""The MQTT connector against a real Mosquitto broker (Debian's package, started here on a free loopback port):
mapping of JSON and plain payloads, refusal of bad messages, and no point lost or doubled when the broker restarts
mid-stream or the platform is stopped and restarted (the broker keeps the persistent session's messages)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from taehwa.connectors.mosquitto import BINARY, Mosquitto
from taehwa.core.errors import ValidationFailed
from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform

MOSQUITTO = BINARY
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (make test installs it as root)")
Broker = Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


def publisher(port: int, client_id: str = "plc-1") -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho's hint says int; the delay is seconds, a float
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def connector(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": "line-1",
        "protocol": "mqtt",
        "port": port,
        "items": [
            {"topic": "plant/+/json", "format": "json", "tag": "mqtt/{1}/{name}"},
            {"topic": "plant/+/plain/#", "format": "plain", "tag": "mqtt/{1}/{2}"},
        ],
        **extra,
    }


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    return check()


def count(p: Platform, tags: list[str]) -> int:
    p.historian.flush()
    try:
        t = p.historian.read("acme", tags, "2000-01-01", "2100-01-01")
    except Exception:
        return 0
    return int(t.num_rows)


def test_json_and_plain_payloads_become_points(platform: Platform, broker: Broker) -> None:
    platform.connectors.add("acme", connector(broker.port))
    platform.connectors.start(interval_s=0.2)
    wait_for(lambda: platform.connectors.status("acme", "line-1")["state"] == "connected")
    pub = publisher(broker.port)
    pub.publish(
        "plant/p101/json", orjson.dumps({"time": "2026-11-25T01:00:00Z", "values": {"pt": 4.5, "ft": 101}}), qos=1
    ).wait_for_publish()
    pub.publish(
        "plant/p101/json", orjson.dumps([{"tag": "tt", "time": 1795568400.5, "value": 71.25}]), qos=1
    ).wait_for_publish()
    pub.publish("plant/p102/plain/vibration", b" 0.75\n", qos=1).wait_for_publish()
    pub.publish("plant/p102/json", b"{not json", qos=1).wait_for_publish()  # refused, reported
    pub.publish("plant/p102/json", orjson.dumps({"pt": "high"}), qos=1).wait_for_publish()
    tags = ["mqtt/p101/pt", "mqtt/p101/ft", "mqtt/p101/tt", "mqtt/p102/vibration"]
    assert wait_for(lambda: count(platform, tags) == 4)
    pt = platform.historian.read("acme", ["mqtt/p101/pt"], "2026-11-25T00:00:00Z", "2026-11-26")
    assert pt.column("value").to_pylist() == [4.5]
    st = wait_for(lambda: (s := platform.connectors.status("acme", "line-1"))["rejected"] == 2 and s)
    assert st["rejected"] == 2 and "mqtt/p102/pt" not in platform.historian.catalog.ids("acme", refresh=True)
    assert "is not a number" in st["last_error"] and st["last_error_time"] and st["backlog"] == 0
    assert st["points_total"] == 4 and st["last_value_time"]
    pub.disconnect()


def test_bad_definitions_are_refused_whole(platform: Platform, broker: Broker) -> None:
    with pytest.raises(ValidationFailed) as exc:
        platform.connectors.add(
            "acme",
            [
                connector(broker.port),
                {**connector(broker.port), "name": "b", "port": 70000, "items": [{"topic": "a/#/b"}]},
            ],
        )
    wheres = [w for w, _ in exc.value.problems]
    assert "connectors[1].port" in wheres and "connectors[1].items[0].topic" in wheres
    assert platform.connectors.list("acme") == []  # nothing stored


def _stream(pub: Any, start: int, n: int, per_msg: int = 10) -> None:
    """Publish points start … start+n-1 as QoS 1 JSON messages and wait until the broker has acknowledged each
    (from then on the broker answers for them, as it would for a plant gateway)."""
    infos = []
    for k in range(start, start + n, per_msg):
        rows = [{"tag": "seq", "time": 1_700_000_000 + i, "value": i} for i in range(k, min(k + per_msg, start + n))]
        infos.append(pub.publish("plant/s1/json", orjson.dumps(rows), qos=1))
    for info in infos:
        info.wait_for_publish(timeout=20)


def test_broker_restart_mid_stream_loses_nothing(platform: Platform, broker: Broker) -> None:
    platform.connectors.add("acme", connector(broker.port))
    platform.connectors.start(interval_s=0.2)
    wait_for(lambda: platform.connectors.status("acme", "line-1")["state"] == "connected")
    pub = publisher(broker.port)
    _stream(pub, 0, 5000)
    broker.stop()  # at once: part of the stream is still on its way to the connector (kept by the broker)
    pub.disconnect()
    time.sleep(1.0)
    restarted = time.time()
    broker.start()
    wait_for(
        lambda: (
            (s := platform.connectors.status("acme", "line-1"))["state"] == "connected"
            and (s["since"] or "") > datetime.fromtimestamp(restarted, UTC).isoformat()
        )
    )
    pub = publisher(broker.port, "plc-1b")
    _stream(pub, 5000, 1000)
    assert wait_for(lambda: count(platform, ["mqtt/s1/seq"]) >= 6000, timeout=40)
    t = platform.historian.read("acme", ["mqtt/s1/seq"], "2000-01-01", "2100-01-01")
    assert sorted(t.column("value").to_pylist()) == [float(i) for i in range(6000)]  # each once
    pub.disconnect()


def test_the_connectors_own_process_killed_mid_stream_is_restarted_and_loses_nothing(
    platform: Platform, broker: Broker
) -> None:
    """By default the MQTT client runs in a process of its own; SIGKILL it mid-stream and the server starts another
    that takes up the persistent session: every point once."""
    platform.connectors.add("acme", connector(broker.port))
    platform.connectors.start(interval_s=0.2)
    st = wait_for(lambda: (s := platform.connectors.status("acme", "line-1"))["state"] == "connected" and s)
    pid = st["detail"]["pid"]
    assert pid != os.getpid()
    pub = publisher(broker.port)
    _stream(pub, 0, 3000)
    os.kill(pid, signal.SIGKILL)  # whatever it held unacknowledged, the broker sends again to the next one
    _stream(pub, 3000, 2000)
    st = wait_for(
        lambda: (
            (s := platform.connectors.status("acme", "line-1"))["state"] == "connected"
            and s["detail"]["pid"] != pid
            and s
        ),
        timeout=30,
    )
    assert st and "process ended" in (st["last_error"] or "")
    assert wait_for(lambda: count(platform, ["mqtt/s1/seq"]) >= 5000, timeout=40)
    t = platform.historian.read("acme", ["mqtt/s1/seq"], "2000-01-01", "2100-01-01")
    assert sorted(t.column("value").to_pylist()) == [float(i) for i in range(5000)]
    pub.disconnect()


def test_own_process_off_runs_the_client_in_the_server(platform: Platform, broker: Broker) -> None:
    platform.connectors.add("acme", connector(broker.port, own_process=False))
    platform.connectors.start(interval_s=0.2)
    st = wait_for(lambda: (s := platform.connectors.status("acme", "line-1"))["state"] == "connected" and s)
    assert st["detail"]["pid"] == os.getpid()
    pub = publisher(broker.port)
    _stream(pub, 0, 500)
    assert wait_for(lambda: count(platform, ["mqtt/s1/seq"]) == 500)
    pub.disconnect()


def test_platform_restart_mid_stream_loses_nothing(settings: Settings, broker: Broker) -> None:
    first = Platform(settings, background=False)
    first.tenants.create("acme")
    first.connectors.add("acme", connector(broker.port))
    first.connectors.start(interval_s=0.2)
    wait_for(lambda: first.connectors.status("acme", "line-1")["state"] == "connected")
    pub = publisher(broker.port)
    _stream(pub, 0, 2000)
    first.close()  # the platform goes away mid-stream
    _stream(pub, 2000, 2000)  # held by the broker for the persistent session

    second = Platform(settings, background=False)
    second.connectors.start(interval_s=0.2)
    _stream(pub, 4000, 1000)
    try:
        assert wait_for(lambda: count(second, ["mqtt/s1/seq"]) >= 5000, timeout=40)
        t = second.historian.read("acme", ["mqtt/s1/seq"], "2000-01-01", "2100-01-01")
        assert sorted(t.column("value").to_pylist()) == [float(i) for i in range(5000)]
    finally:
        pub.disconnect()
        second.close()


def test_drop_folder_takes_good_files_and_sets_bad_ones_aside(platform: Platform, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    platform.connectors.add(
        "acme", {"name": "lims", "protocol": "files", "folder": str(drop), "poll_s": 0.05, "tag_prefix": "lab/"}
    )
    platform.connectors.start(interval_s=0.2)
    (drop / "good.csv").write_text(
        "time,tag,value\n2026-11-25T00:00:00Z,sulfur_ppm,12.5\n2026-11-25T01:00:00Z,sulfur_ppm,13.0\n"
    )
    (drop / "bad.csv").write_text("time,tag,value\n2026-11-25T00:00:00Z,sulfur_ppm,abc\n")
    assert wait_for(lambda: (drop / "done" / "good.csv").exists() and (drop / "failed" / "bad.csv").exists())
    # moved aside once safe in the queue; in the historian once the forwarder has written it
    assert wait_for(lambda: count(platform, ["lab/sulfur_ppm"]) == 2)
    reason = (drop / "failed" / "bad.csv.error.txt").read_text()
    assert "not a number" in reason and "row 1" in reason
    st = platform.connectors.status("acme", "lims")
    assert st["detail"]["files_done"] == 1 and st["detail"]["files_failed"] == 1


def test_sigkill_of_the_server_mid_stream_loses_nothing(tmp_path: Path, broker: Broker) -> None:
    """`taehwa serve` killed with SIGKILL while points stream in: what it had acknowledged to the broker is in its
    durable queue, what it had not the broker resends, and after a restart every point is stored exactly once."""
    import json
    import os
    import signal
    import sys

    data = tmp_path / "data"
    p = Platform(Settings(data_dir=data), background=False)
    p.tenants.create("acme")
    p.connectors.add("acme", connector(broker.port))
    status_file = p.connectors.folder("acme", "line-1") / "status.json"
    p.close()
    env = {**os.environ, "TAEHWA_DATA_DIR": str(data), "TAEHWA_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}

    def serve() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def status() -> dict[str, Any]:
        try:
            return dict(json.loads(status_file.read_text()))
        except (OSError, ValueError):
            return {}

    server = serve()
    try:
        assert wait_for(lambda: status().get("state") == "connected", timeout=60)
        pub = publisher(broker.port)
        _stream(pub, 0, 2000)
        assert wait_for(lambda: status().get("points_total", 0) > 0)
        os.kill(server.pid, signal.SIGKILL)  # mid-stream: some points queued, some in flight, some at the broker
        server.wait()
        _stream(pub, 2000, 1000)  # the broker holds these for the persistent session
        status_file.unlink()
        server = serve()
        _stream(pub, 3000, 1000)
        last = datetime.fromtimestamp(1_700_000_000 + 3999, UTC).isoformat()
        assert wait_for(lambda: (s := status()).get("last_value_time") == last and s.get("backlog") == 0, timeout=60)
        pub.disconnect()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    p = Platform(Settings(data_dir=data), background=False)
    try:
        got = p.historian.read("acme", ["mqtt/s1/seq"], "2000-01-01", "2100-01-01").column("value").to_pylist()
        assert sorted(got) == [float(i) for i in range(4000)]  # none lost, none twice
    finally:
        p.close()


def test_a_new_connector_runs_once_when_start_and_the_runtime_race(platform: Platform, tmp_path: Path) -> None:
    """`add` wakes the runtime while a caller also runs `start` (as the demo does): one link, not two."""
    import threading

    platform.connectors.start(interval_s=0.05)
    for k in range(20):
        name = f"drop-{k}"
        (tmp_path / name).mkdir()
        platform.connectors.add(
            "acme", {"name": name, "protocol": "files", "folder": str(tmp_path / name), "poll_s": 0.05}
        )
        gate = threading.Barrier(6)

        def racer(gate: threading.Barrier = gate) -> None:
            gate.wait()
            platform.connectors.start()

        racers = [threading.Thread(target=racer) for _ in range(6)]
        for r in racers:
            r.start()
        for r in racers:
            r.join()
        time.sleep(0.1)
        sources = [t for t in threading.enumerate() if t.name == f"connector-{name}-source"]
        assert len(sources) == 1, f"{name}: {len(sources)} links run"
