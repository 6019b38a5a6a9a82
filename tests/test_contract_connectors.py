"""One contract, run over every connector kind in the connectors' registry (`taehwa.connectors.link.KINDS`): start,
bad input refused and reported, stop, restart on the same queue, and nothing lost or doubled on the way.

Each kind runs against the real server its own tests start (Mosquitto, the asyncua replay server, a pymodbus
device, a drop folder), through a small harness that makes the source send numbered points. A kind added to the
registry without a harness fails `test_every_kind_has_a_harness`, so no kind goes unchecked.

Event sources (MQTT, OPC UA, files) deliver every point sent exactly once, including those sent while the connector
was stopped (the broker's persistent session, the server's history, the files left in the folder). A polled source
(Modbus) sees values, not events: each value set is read, and every reading taken is stored once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

from taehwa.connectors.config import PROTOCOLS, parse_connectors
from taehwa.connectors.link import KINDS, Link, make_link
from taehwa.connectors.mosquitto import BINARY as MOSQUITTO
from taehwa.connectors.mosquitto import Mosquitto
from taehwa.core.errors import ValidationFailed
from taehwa.core.loopback import free_port
from taehwa.historian.store import Historian
from taehwa.replay.opcua_server import ReplayServer
from tests.test_connectors_modbus import Device, words
from tests.test_connectors_mqtt import publisher, wait_for

TAG = "c/seq"
BASE_S = int(time.time()) - 3600  # an hour ago: recent, as a live source is


class Harness:
    """A source of one connector kind, and how to make it send points `start` … `start+n-1` of TAG (value i at
    BASE_S + i seconds); `link` is the running connector, None while it is stopped."""

    exact = True  # every point sent arrives exactly once (False: a polled source)
    name = "contract"

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def ready(self, link: Link) -> bool:
        """Whether the connected link takes what is sent now."""
        return True

    def send(self, start: int, n: int, link: Link | None) -> None:
        raise NotImplementedError

    def send_bad(self, link: Link) -> None:
        """Input the connector must refuse, count and report, while good points go on."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the source's server."""


class MqttHarness(Harness):
    def __init__(self, folder: Path) -> None:
        if MOSQUITTO is None:
            pytest.skip("mosquitto is not installed (make test installs it as root)")
        (folder / "broker").mkdir()
        self.broker = Mosquitto(folder / "broker")
        self.broker.start()
        self.pub = publisher(self.broker.port, "contract-plc")

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": "mqtt",
            "port": self.broker.port,
            "items": [{"topic": "c/json", "format": "json", "tag": "c/{name}"}],
        }

    def send(self, start: int, n: int, link: Link | None) -> None:
        infos = []
        for k in range(start, start + n, 10):  # QoS 1: from the broker's acknowledgement on, it answers for them
            rows = [{"tag": "seq", "time": BASE_S + i, "value": i} for i in range(k, min(k + 10, start + n))]
            infos.append(self.pub.publish("c/json", orjson.dumps(rows), qos=1))
        for info in infos:
            info.wait_for_publish(timeout=20)

    def send_bad(self, link: Link) -> None:
        self.pub.publish("c/json", b"{not json", qos=1).wait_for_publish(timeout=20)

    def close(self) -> None:
        self.pub.disconnect()
        self.pub.loop_stop()
        self.broker.stop()


class OpcUaHarness(Harness):
    def __init__(self, folder: Path) -> None:
        self.server = ReplayServer(f"opc.tcp://127.0.0.1:{free_port()}/taehwa/", history_db=folder / "history.db")
        self.server.start([TAG])

    def spec(self) -> dict[str, Any]:
        return self.server.connector(self.name, publish_ms=50)

    def ready(self, link: Link) -> bool:
        return bool(link.status.detail.get("monitored"))  # subscribed: every change from now on is sent

    def _write(self, values: list[float], times: list[int]) -> None:
        self.server.write(
            pa.table(
                {
                    "tag": [TAG] * len(values),
                    "time": pa.array([t * 1_000_000 for t in times]).cast(pa.timestamp("us", tz="UTC")),
                    "value": values,
                }
            )
        )

    def send(self, start: int, n: int, link: Link | None) -> None:
        for k in range(start, start + n, 50):
            idx = list(range(k, min(k + 50, start + n)))
            self._write([float(i) for i in idx], [BASE_S + i for i in idx])

    def send_bad(self, link: Link) -> None:
        self._write([float("nan")], [BASE_S - 1])  # a value the historian does not store

    def close(self) -> None:
        self.server.stop()


class ModbusHarness(Harness):
    exact = False
    ADDRESS = 40  # a float32 holding register the device's own tests leave free

    def __init__(self, folder: Path) -> None:
        from pymodbus.client import ModbusTcpClient

        self.device = Device()
        self.device.start()
        self.client = ModbusTcpClient("127.0.0.1", port=self.device.port, timeout=2, retries=0)
        assert self.client.connect()  # type: ignore[no-untyped-call]

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": "modbus",
            "port": self.device.port,
            "poll_ms": 20,
            "timeout_s": 1,
            "items": [{"address": self.ADDRESS, "type": "float32", "tag": TAG}],
        }

    def _set(self, value: float, link: Link) -> None:
        """Set the register (as a client on the plant network would) and wait until two polls have read it."""
        assert not self.client.write_registers(self.ADDRESS, words("f", value), device_id=1).isError()
        seen = link.status.points_total + link.status.rejected
        assert wait_for(lambda: link.status.points_total + link.status.rejected >= seen + 2)

    def send(self, start: int, n: int, link: Link | None) -> None:
        assert link is not None, "a polled source sends nothing while the connector is stopped"
        for i in range(start, start + n):
            self._set(float(i), link)

    def send_bad(self, link: Link) -> None:
        self._set(float("nan"), link)

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]
        self.device.stop()


class FilesHarness(Harness):
    def __init__(self, folder: Path) -> None:
        self.drop = folder / "drop"
        self.drop.mkdir()

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": "files", "folder": str(self.drop), "poll_s": 0.05, "tag_prefix": "c/"}

    def send(self, start: int, n: int, link: Link | None) -> None:
        rows = "".join(f"seq,{BASE_S + i},{i}\n" for i in range(start, start + n))
        tmp = self.drop.parent / f"part-{start}.csv"
        tmp.write_text("tag,time,value\n" + rows)
        tmp.replace(self.drop / tmp.name)  # whole, as a plant system drops a finished export

    def send_bad(self, link: Link) -> None:
        (self.drop / "bad.csv").write_text("tag,time,value\nseq,2026-01-01T00:00:00Z,oops\n")

    def close(self) -> None:
        pass


HARNESSES: dict[str, Callable[[Path], Harness]] = {
    "mqtt": MqttHarness,
    "opcua": OpcUaHarness,
    "modbus": ModbusHarness,
    "files": FilesHarness,
}


def test_every_kind_has_a_harness() -> None:
    assert set(KINDS) == set(PROTOCOLS), "the registry and the definitions name the same kinds"
    assert set(HARNESSES) == set(KINDS), f"kinds without a contract harness: {sorted(set(KINDS) - set(HARNESSES))}"


@pytest.fixture(params=sorted(KINDS))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    harness = HARNESSES[request.param](tmp_path)
    try:
        yield harness
    finally:
        harness.close()


def stored(hist: Historian) -> list[float]:
    try:
        t = hist.read("acme", TAG, "2000-01-01", "2100-01-01")
    except Exception:  # the tag does not exist yet
        return []
    return [float(v) for v in t.column("value").to_pylist()]


def run(link: Link, source: Harness) -> Link:
    link.start()
    assert wait_for(lambda: link.status.state == "connected" and source.ready(link)), link.status
    return link


def test_start_bad_input_stop_restart_and_nothing_lost(source: Harness, hist: Historian, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as bad:  # a bad definition is refused whole, naming the field
        parse_connectors({**source.spec(), "name": "Not A Name!"}, source="connector")
    assert [w for w, _ in bad.value.problems] == ["connector.name"]
    spec = parse_connectors(source.spec(), source="connector")[0]
    folder = tmp_path / "link"
    folder.mkdir()
    first = run(make_link("acme", spec, hist, folder), source)
    try:
        source.send(0, 10, first)
        source.send_bad(first)
        assert wait_for(lambda: first.status.rejected >= 1), first.status
        assert first.status.last_error and first.status.last_error_time
        source.send(10, 10, first)
        assert wait_for(lambda: set(range(20)) <= set(stored(hist)))
    finally:
        first.stop()
    assert first.status.state == "stopped" and first.status.backlog == 0
    readings = first.status.points_total
    if source.exact:
        assert stored(hist) == [float(i) for i in range(20)]  # each once, in order
        source.send(20, 10, None)  # while the connector is stopped: held by the source for it
    else:
        assert len(stored(hist)) == readings  # every reading taken is stored, once

    second = run(make_link("acme", spec, hist, folder), source)  # the same queue, as after a restart of the server
    try:
        source.send(30, 10, second)
        # an exact source also brings what was sent while stopped (OPC UA: a gap fill from the server's history,
        # which may finish after the new points arrive): wait for all of it before stopping
        want = set(range(20, 40)) if source.exact else set(range(30, 40))
        assert wait_for(lambda: want <= set(stored(hist)), timeout=40)
    finally:
        second.stop()
    assert second.status.state == "stopped" and second.status.backlog == 0
    if source.exact:
        assert stored(hist) == [float(i) for i in range(40)]
    else:
        assert len(stored(hist)) == readings + second.status.points_total
