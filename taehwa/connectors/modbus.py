"""Modbus TCP (pymodbus): polls holding and input registers, decodes 16/32/64-bit integers and floats in either
byte and word order, and scales them (value × scale + offset)."""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence

from taehwa.connectors.config import ModbusConnector, ModbusItem
from taehwa.connectors.link import Link

FORMATS = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def decode_registers(item: ModbusItem, registers: Sequence[int]) -> float:
    """One item's value from its registers (each a 16-bit word as the device sent it)."""
    words = list(registers[: item.words()])
    if item.word_order == "little":
        words.reverse()
    raw = b"".join(struct.pack(">H", w & 0xFFFF) for w in words)
    if item.byte_order == "little":  # bytes swapped inside each word
        raw = b"".join(raw[i : i + 2][::-1] for i in range(0, len(raw), 2))
    value = struct.unpack(">" + FORMATS[item.type], raw)[0]
    return float(value) * item.scale + item.offset


def _blocks(items: list[ModbusItem], kind: str, max_span: int = 120) -> list[tuple[int, int, list[ModbusItem]]]:
    """Contiguous register ranges to read at once: (start, count, items)."""
    chosen = sorted((i for i in items if i.kind == kind), key=lambda i: i.address)
    out: list[tuple[int, int, list[ModbusItem]]] = []
    for item in chosen:
        end = item.address + item.words()
        if out and end - out[-1][0] <= max_span:
            start, count, members = out[-1]
            out[-1] = (start, max(count, end - start), [*members, item])
        else:
            out.append((item.address, item.words(), [item]))
    return out


class ModbusLink(Link):
    spec: ModbusConnector

    def run_source(self) -> None:
        from pymodbus.client import ModbusTcpClient

        s = self.spec
        client = ModbusTcpClient(s.host, port=s.port, timeout=s.timeout_s, retries=0)
        self._client = client
        blocks = [(kind, b) for kind in ("holding", "input") for b in _blocks(s.items, kind)]
        backoff = 1.0
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                if not client.connected and not client.connect():  # type: ignore[no-untyped-call]
                    raise ConnectionError(f"cannot reach {s.host}:{s.port}")
                now = int(time.time() * 1e6)
                tags, values = [], []
                for kind, (start, count, members) in blocks:
                    read = client.read_holding_registers if kind == "holding" else client.read_input_registers
                    reply = read(start, count=count, device_id=s.unit)
                    if reply.isError():
                        raise ConnectionError(f"{kind} registers {start}–{start + count - 1}: {reply}")
                    for item in members:
                        off = item.address - start
                        tags.append(s.tag_prefix + item.tag)
                        values.append(decode_registers(item, reply.registers[off : off + item.words()]))
                self.stage(tags, [now] * len(tags), values)
                self.set_state("connected", device=f"{s.host}:{s.port}/{s.unit}")
                backoff = 1.0
            except Exception as exc:
                self.set_state("disconnected")
                self.error(f"Modbus poll failed: {exc}")
                client.close()  # type: ignore[no-untyped-call]
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self.stopping.wait(max(0.0, s.poll_ms / 1000 - (time.monotonic() - t0)))
        client.close()  # type: ignore[no-untyped-call]
