"""The Modbus TCP connector against a real pymodbus server: 16/32/64-bit integers and floats in either byte and word
order, scaling, holding and input registers; and polling that resumes by itself after the device restarts."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taehwa.connectors.config import ModbusItem
from taehwa.connectors.modbus import decode_registers
from taehwa.core.loopback import free_port
from taehwa.server.platform import Platform
from tests.test_connectors_mqtt import wait_for


def words(fmt: str, value: float, *, word_order: str = "big", byte_order: str = "big") -> list[int]:
    raw = struct.pack(">" + fmt, value)
    if byte_order == "little":
        raw = b"".join(raw[i : i + 2][::-1] for i in range(0, len(raw), 2))
    out = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return out[::-1] if word_order == "little" else out


HOLDING = {
    0: words("h", -5),
    1: words("f", 12.5),
    3: words("I", 70000, word_order="little"),
    20: words("d", -1234.5678, byte_order="little"),
}
INPUT = {10: words("H", 1234)}


class Device:
    """A pymodbus TCP server (unit 1) on loopback, in its own thread; stop and start it again at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
        from pymodbus.server import ModbusTcpServer

        def block(regs: dict[int, list[int]]) -> Any:
            values = [0] * 64
            for address, ws in regs.items():
                values[address : address + len(ws)] = ws
            return ModbusSequentialDataBlock(1, values)  # type: ignore[no-untyped-call]  # pymodbus addresses registers from 1 internally

        ctx = ModbusServerContext(devices={1: ModbusDeviceContext(hr=block(HOLDING), ir=block(INPUT))}, single=False)
        ready = threading.Event()

        async def serve() -> None:
            self.server = ModbusTcpServer(ctx, address=("127.0.0.1", self.port))
            asyncio.get_running_loop().call_soon(ready.set)
            await self.server.serve_forever()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(serve())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        time.sleep(0.3)

    def stop(self) -> None:
        if self.loop is not None and self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(10)
        if self.thread is not None:
            self.thread.join(10)


@pytest.fixture
def device() -> Iterator[Device]:
    d = Device()
    d.start()
    yield d
    d.stop()


SPEC: dict[str, Any] = {
    "name": "skid-7",
    "protocol": "modbus",
    "host": "127.0.0.1",
    "poll_ms": 100,
    "timeout_s": 1,
    "items": [
        {"address": 0, "type": "int16", "scale": 0.1, "tag": "skid7/pressure"},
        {"address": 1, "type": "float32", "tag": "skid7/flow"},
        {"address": 3, "type": "uint32", "word_order": "little", "tag": "skid7/counter"},
        {"address": 20, "type": "float64", "byte_order": "little", "tag": "skid7/level"},
        {"address": 10, "kind": "input", "type": "uint16", "scale": 0.01, "offset": 1, "tag": "skid7/temp"},
    ],
}


def latest(p: Platform) -> dict[str, float]:
    p.historian.flush()
    try:
        t = p.historian.latest("acme", [i["tag"] for i in SPEC["items"]])
    except Exception:
        return {}
    return dict(zip(t.column("tag").to_pylist(), t.column("value").to_pylist(), strict=True))


def test_registers_decode_scale_and_map_to_tags(platform: Platform, device: Device) -> None:
    platform.connectors.add("acme", {**SPEC, "port": device.port})
    platform.connectors.start(interval_s=0.2)
    got = wait_for(lambda: (v := latest(platform)) and len(v) == 5 and v)
    assert got["skid7/pressure"] == pytest.approx(-0.5)
    assert got["skid7/flow"] == 12.5
    assert got["skid7/counter"] == 70000
    assert got["skid7/level"] == pytest.approx(-1234.5678)
    assert got["skid7/temp"] == pytest.approx(13.34)
    assert platform.connectors.status("acme", "skid-7")["state"] == "connected"


def test_polling_resumes_after_the_device_restarts(platform: Platform, device: Device) -> None:
    platform.connectors.add("acme", {**SPEC, "port": device.port})
    platform.connectors.start(interval_s=0.2)
    assert wait_for(lambda: platform.connectors.status("acme", "skid-7")["state"] == "connected")
    device.stop()
    st = wait_for(lambda: (s := platform.connectors.status("acme", "skid-7"))["state"] == "disconnected" and s)
    assert st and "Modbus poll failed" in st["last_error"] and st["last_error_time"]
    device.start()
    before = platform.connectors.status("acme", "skid-7")["points_total"]
    assert wait_for(
        lambda: (
            (s := platform.connectors.status("acme", "skid-7"))["state"] == "connected" and s["points_total"] > before
        ),
        timeout=40,
    )


def test_decode_refuses_nothing_silently() -> None:
    item = ModbusItem(address=0, type="float32", word_order="little", tag="x")
    assert decode_registers(item, words("f", 3.25, word_order="little")) == 3.25
    with pytest.raises(struct.error):
        decode_registers(item, [1])  # a short reply is an error, never a made-up value
