"""Sparkplug B on MQTT: births name metrics and aliases, data by alias, signed and boolean values, what is skipped
or refused and why, rebirth requests, sequence gaps, death and birth, aliases kept across a restart; and the whole
path through a real Mosquitto broker into the historian."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taehwa.connectors.config import parse_connectors
from taehwa.connectors.mosquitto import BINARY, Mosquitto
from taehwa.connectors.sparkplug import DATA_TYPES, Payload, SparkplugState, encode
from taehwa.core.errors import ValidationFailed
from taehwa.server.platform import Platform

NOW = 1_790_000_000_000_000
T_MS = 1_790_000_100_000
TEMPLATE = "sp/{group}/{node}/{device}/{name}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, body: bytes) -> bytes:
    return _varint(number << 3 | wire) + body


def test_a_payload_encoded_by_hand_on_the_wire_is_read() -> None:
    """Protobuf wire format written here byte by byte (not by the encoder under test): NBIRTH with one Double."""
    metric = (
        _field(1, 2, _varint(8) + b"Pressure")
        + _field(2, 0, _varint(1))
        + _field(4, 0, _varint(10))
        + _field(13, 1, struct.pack("<d", 4.5))
    )
    payload = _field(1, 0, _varint(T_MS)) + _field(2, 2, _varint(len(metric)) + metric) + _field(3, 0, _varint(0))
    got = SparkplugState().decode("spBv1.0/refinery/NBIRTH/cdu-gw", payload, NOW, TEMPLATE)
    assert got.names == ["sp/refinery/cdu-gw/Pressure"] and got.values == [4.5] and got.times == [T_MS * 1000]
    assert encode([{"name": "Pressure", "alias": 1, "datatype": 10, "value": 4.5}], seq=0, timestamp_ms=T_MS) == payload


def test_birth_then_data_by_alias_with_signed_boolean_and_skipped_values(tmp_path: Path) -> None:
    state = SparkplugState(tmp_path / "sparkplug.json")
    birth = encode(
        [
            {"name": "Inlet/Temp", "alias": 1, "datatype": DATA_TYPES["Float"], "value": 81.5},
            {"name": "Offset", "alias": 2, "datatype": DATA_TYPES["Int16"], "value": -5},
            {"name": "Running", "alias": 3, "datatype": DATA_TYPES["Boolean"], "value": True},
            {"name": "Mode", "alias": 4, "datatype": DATA_TYPES["String"], "value": "AUTO"},
            {"name": "Count", "alias": 5, "datatype": DATA_TYPES["Int64"], "value": -(2**40)},
        ],
        seq=1,
        timestamp_ms=T_MS,
    )
    got = state.decode("spBv1.0/refinery/DBIRTH/cdu-gw/pump-7", birth, NOW, TEMPLATE)
    assert got.names == [f"sp/refinery/cdu-gw/pump-7/{n}" for n in ("Inlet/Temp", "Offset", "Running", "Count")]
    assert got.values == [81.5, -5.0, 1.0, float(-(2**40))] and got.skipped == 1 and not got.problems
    # data names metrics by alias alone and without data types: the birth's are used (Int16 -5 again)
    data = encode(
        [
            {"alias": 2, "datatype": DATA_TYPES["UInt16"], "value": 65531, "timestamp": T_MS + 500},
            {"alias": 3, "value": False, "datatype": DATA_TYPES["Boolean"]},
            {"alias": 1, "value": None},
        ],
        seq=2,
        timestamp_ms=T_MS + 1000,
    )
    got = state.decode("spBv1.0/refinery/DDATA/cdu-gw/pump-7", data, NOW, TEMPLATE)
    assert got.names == ["sp/refinery/cdu-gw/pump-7/Offset", "sp/refinery/cdu-gw/pump-7/Running"]
    assert got.values == [65531.0, 0.0]  # this message's own data type (UInt16) wins over the birth's
    assert got.times == [(T_MS + 500) * 1000, (T_MS + 1000) * 1000] and got.skipped == 1
    bare = Payload.FromString(encode([{"alias": 2, "value": 65531, "datatype": DATA_TYPES["UInt16"]}], seq=3))
    bare.metrics[0].ClearField("datatype")  # as Sparkplug's data messages usually come: no data type
    data = bare.SerializeToString()
    raw = state.decode("spBv1.0/refinery/DDATA/cdu-gw/pump-7", data, NOW, TEMPLATE)
    assert raw.values == [-5.0] and raw.times == [NOW]  # the birth's Int16; no timestamps: the time of arrival
    # a restarted connector still knows the aliases
    again = SparkplugState(tmp_path / "sparkplug.json").decode(
        "spBv1.0/refinery/DDATA/cdu-gw/pump-7", encode([{"alias": 1, "value": 80.0}]), NOW, TEMPLATE
    )
    assert again.names == ["sp/refinery/cdu-gw/pump-7/Inlet/Temp"] and again.values == [80.0]


def test_unknown_alias_is_refused_and_a_rebirth_asked_once() -> None:
    state = SparkplugState()
    data = encode([{"alias": 9, "value": 1.0}, {"name": "Named", "value": 2.0}], seq=5)
    got = state.decode("spBv1.0/yard/NDATA/crane-2", data, NOW, "{group}/{node}/{name}", rebirth=True)
    assert got.names == ["yard/crane-2/Named"] and got.values == [2.0]
    assert len(got.problems) == 1 and "alias 9" in got.problems[0] and "yard/crane-2" in got.problems[0]
    assert got.rebirth == ("yard", "crane-2")
    assert (
        state.decode("spBv1.0/yard/NDATA/crane-2", data, NOW, "{group}/{node}/{name}", rebirth=True).rebirth is None
    )  # not again within the minute


def test_sequence_gaps_death_and_birth() -> None:
    state = SparkplugState()
    state.decode("spBv1.0/g/NBIRTH/n", encode([{"name": "a", "alias": 1, "value": 1.0}], seq=0), NOW, TEMPLATE)
    assert not state.decode("spBv1.0/g/NDATA/n", encode([{"alias": 1, "value": 2.0}], seq=1), NOW, TEMPLATE).notes
    gap = state.decode("spBv1.0/g/NDATA/n", encode([{"alias": 1, "value": 3.0}], seq=4), NOW, TEMPLATE)
    assert gap.values == [3.0] and "expected 2" in gap.notes[0]
    assert not state.decode("spBv1.0/g/NDATA/n", encode([{"alias": 1, "value": 4.0}], seq=5), NOW, TEMPLATE).notes
    state.decode("spBv1.0/g/NDEATH/n", encode([{"name": "bdSeq", "value": 0}]), NOW, TEMPLATE)
    assert state.offline == {"g/n"}
    reborn = state.decode("spBv1.0/g/NBIRTH/n", encode([{"name": "b", "alias": 1, "value": 5.0}], seq=0), NOW, TEMPLATE)
    assert state.offline == set() and reborn.names == ["sp/g/n/b"]  # node metrics: no device level in the tag
    after = state.decode("spBv1.0/g/NDATA/n", encode([{"alias": 1, "value": 6.0}], seq=1), NOW, TEMPLATE)
    assert after.names == ["sp/g/n/b"]  # alias 1 is now metric b: the new birth's


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("plant/x", b"", "not a Sparkplug B topic"),
        ("spBv1.0/g/NDATA", b"", "not a Sparkplug B topic"),
        ("spBv1.0/g/XDATA/n", b"", "unknown Sparkplug message type 'XDATA'"),
        ("spBv1.0/g/DDATA/n", b"", "DDATA has no device level"),
        ("spBv1.0/g/NDATA/n", b"\xff\xff\xff", "not a Sparkplug B protobuf"),
    ],
)
def test_bad_topics_and_payloads_are_named(topic: str, payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        SparkplugState().decode(topic, payload, NOW, TEMPLATE)
    assert topic in str(exc.value)


def test_a_birth_must_name_its_metrics_and_commands_carry_no_points() -> None:
    state = SparkplugState()
    got = state.decode("spBv1.0/g/NBIRTH/n", encode([{"alias": 1, "value": 1.0}]), NOW, TEMPLATE)
    assert got.names == [] and "has no name" in got.problems[0]
    assert (
        state.decode(
            "spBv1.0/g/NCMD/n", encode([{"name": "Node Control/Rebirth", "datatype": 11, "value": True}]), NOW, TEMPLATE
        ).names
        == []
    )


def test_a_sparkplug_item_needs_the_sparkplug_namespace() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_connectors({"name": "sp", "protocol": "mqtt", "items": [{"topic": "plant/#", "format": "sparkplug"}]})
    assert exc.value.problems[0][0] == "connectors.items[0]"
    spec = parse_connectors(
        {"name": "sp", "protocol": "mqtt", "items": [{"topic": "spBv1.0/#", "format": "sparkplug"}]}
    )[0]
    assert spec.items[0].template() == "{group}/{node}/{device}/{name}"  # type: ignore[union-attr]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if BINARY is None:
        pytest.skip("mosquitto is not installed (make test installs it as root)")
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


def test_sparkplug_through_mosquitto_into_the_historian(platform: Platform, broker: Mosquitto) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    platform.connectors.add(
        "acme",
        {
            "name": "edge",
            "protocol": "mqtt",
            "port": broker.port,
            "sparkplug_rebirth": True,
            "items": [{"topic": "spBv1.0/shipyard/#", "format": "sparkplug"}],
        },
    )
    platform.connectors.start(interval_s=0.2)
    commands: list[str] = []
    node = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="edge-node-1")
    node.on_message = lambda _c, _u, msg: commands.append(msg.topic)
    node.connect("127.0.0.1", broker.port)
    node.subscribe("spBv1.0/shipyard/NCMD/welder-gw", qos=1)
    node.loop_start()
    deadline = time.monotonic() + 20
    while platform.connectors.status("acme", "edge")["state"] != "connected" and time.monotonic() < deadline:
        time.sleep(0.1)
    # data before any birth: refused, and the node is asked to be born again
    node.publish(
        "spBv1.0/shipyard/DDATA/welder-gw/robot-3", encode([{"alias": 1, "value": 1.0}], seq=0), qos=1
    ).wait_for_publish()
    node.publish(
        "spBv1.0/shipyard/DBIRTH/welder-gw/robot-3",
        encode(
            [{"name": "Arc/Current", "alias": 1, "datatype": DATA_TYPES["Double"], "value": 212.5, "timestamp": T_MS}],
            seq=1,
        ),
        qos=1,
    ).wait_for_publish()
    for k in range(5):
        node.publish(
            "spBv1.0/shipyard/DDATA/welder-gw/robot-3",
            encode([{"alias": 1, "value": 213.0 + k, "timestamp": T_MS + 1000 * (k + 1)}], seq=2 + k),
            qos=1,
        ).wait_for_publish()

    def stored() -> Any:
        platform.historian.flush()
        try:
            return platform.historian.read(
                "acme", ["shipyard/welder-gw/robot-3/Arc/Current"], "2026-01-01", "2027-01-01"
            )
        except Exception:
            return None

    deadline = time.monotonic() + 20
    while ((t := stored()) is None or t.num_rows < 6) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert t is not None and t.column("value").to_pylist() == [212.5, 213.0, 214.0, 215.0, 216.0, 217.0]
    st = platform.connectors.status("acme", "edge")
    assert st["rejected"] == 1 and commands == ["spBv1.0/shipyard/NCMD/welder-gw"]
    node.loop_stop()
    node.disconnect()
