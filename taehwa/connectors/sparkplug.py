"""Sparkplug B payloads on MQTT (Eclipse Sparkplug 3.0): edge nodes publish protobuf payloads on
`spBv1.0/<group>/<type>/<node>[/<device>]`.

A BIRTH (NBIRTH, DBIRTH) names every metric with its data type and, usually, a numeric alias, and carries its current
value; DATA messages (NDATA, DDATA) then often carry the alias alone. So the decoder keeps, per edge node and device,
the aliases and data types its births declared, in `sparkplug.json` beside the connector's queue: a restarted
connector still names the metrics of a node that was born before it. A DATA metric whose alias no birth declared
is refused with the reason, and (`sparkplug_rebirth`) the node is asked to be born again (an NCMD with "Node
Control/Rebirth"), at most once a minute. DEATH messages carry no values; the node is listed as offline until its next
birth. Gaps in a node's sequence numbers (0-255) are reported: messages were lost before the broker.

Numbers, booleans (1/0) and signed integers (two's complement in the unsigned fields) become points; strings, bytes,
data sets, templates and null values are counted as skipped. A metric's time is its own timestamp (ms), else the
payload's, else the time of arrival.

The payload is decoded by Google's protobuf runtime from a descriptor of Sparkplug's `Payload` built here (the
fields Taehwa reads; others are kept as unknown fields and ignored).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"
DATA_TYPES = {
    "Int8": 1,
    "Int16": 2,
    "Int32": 3,
    "Int64": 4,
    "UInt8": 5,
    "UInt16": 6,
    "UInt32": 7,
    "UInt64": 8,
    "Float": 9,
    "Double": 10,
    "Boolean": 11,
    "String": 12,
    "DateTime": 13,
    "Text": 14,
}
_SIGNED_BITS = {1: 8, 2: 16, 3: 32, 4: 64}
_VALUE_FIELDS = {"int_value", "long_value", "float_value", "double_value", "boolean_value"}
REBIRTH_EVERY_S = 60.0


def _build_payload_class() -> Any:
    """Sparkplug B's `Payload` (proto2) as a protobuf message class, in a private descriptor pool."""
    f = descriptor_pb2.FieldDescriptorProto
    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(
        name="taehwa/sparkplug_b.proto", package="org.eclipse.tahu.protobuf", syntax="proto2"
    )
    payload = file.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in (
        ("name", 1, f.TYPE_STRING),
        ("alias", 2, f.TYPE_UINT64),
        ("timestamp", 3, f.TYPE_UINT64),
        ("datatype", 4, f.TYPE_UINT32),
        ("is_historical", 5, f.TYPE_BOOL),
        ("is_transient", 6, f.TYPE_BOOL),
        ("is_null", 7, f.TYPE_BOOL),
    ):
        metric.field.add(name=name, number=number, type=kind, label=opt)
    for name, number, kind in (
        ("int_value", 10, f.TYPE_UINT32),
        ("long_value", 11, f.TYPE_UINT64),
        ("float_value", 12, f.TYPE_FLOAT),
        ("double_value", 13, f.TYPE_DOUBLE),
        ("boolean_value", 14, f.TYPE_BOOL),
        ("string_value", 15, f.TYPE_STRING),
        ("bytes_value", 16, f.TYPE_BYTES),
    ):
        metric.field.add(name=name, number=number, type=kind, label=opt, oneof_index=0)
    payload.field.add(name="timestamp", number=1, type=f.TYPE_UINT64, label=opt)
    payload.field.add(
        name="metrics", number=2, type=f.TYPE_MESSAGE, label=rep, type_name=".org.eclipse.tahu.protobuf.Payload.Metric"
    )
    payload.field.add(name="seq", number=3, type=f.TYPE_UINT64, label=opt)
    payload.field.add(name="uuid", number=4, type=f.TYPE_STRING, label=opt)
    payload.field.add(name="body", number=5, type=f.TYPE_BYTES, label=opt)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))


Payload = _build_payload_class()


def encode(metrics: list[dict[str, Any]], *, seq: int | None = None, timestamp_ms: int | None = None) -> bytes:
    """A Sparkplug B payload: metrics as {name?, alias?, timestamp?, datatype?, value?} (value by data type).
    For rebirth requests, the replay's publisher and tests."""
    p = Payload()
    if timestamp_ms is not None:
        p.timestamp = timestamp_ms
    if seq is not None:
        p.seq = seq
    for m in metrics:
        out = p.metrics.add()
        for key in ("name", "alias", "timestamp", "datatype"):
            if m.get(key) is not None:
                setattr(out, key, m[key])
        if "value" not in m:
            continue
        v, dt = m["value"], m.get("datatype") or DATA_TYPES["Double"]
        if v is None:
            out.is_null = True
        elif dt in (1, 2, 3, 5, 6, 7):
            out.int_value = int(v) & 0xFFFFFFFF
        elif dt in (4, 8, 13):
            out.long_value = int(v) & 0xFFFFFFFFFFFFFFFF
        elif dt == 9:
            out.float_value = float(v)
        elif dt == 11:
            out.boolean_value = bool(v)
        elif dt in (12, 14):
            out.string_value = str(v)
        else:
            out.double_value = float(v)
    return bytes(p.SerializeToString())


@dataclass
class Decoded:
    """The points of one message, and what it said besides."""

    names: list[str] = field(default_factory=list)  # tag names rendered from the item's template
    times: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # metrics refused, each with its reason
    notes: list[str] = field(default_factory=list)  # what the engineer should know (a gap in the sequence)
    skipped: int = 0  # metrics with no numeric value (text, bytes, null …)
    rebirth: tuple[str, str] | None = None  # (group, node) to ask for a new birth


def _number(metric: Any, datatype: int | None) -> float | None:
    """The numeric value of a metric by its data type (or by the field set when the type is unknown)."""
    kind = metric.WhichOneof("value")
    if kind not in _VALUE_FIELDS or metric.is_null:
        return None
    if datatype == 13:  # DateTime: a time, not a measurement
        return None
    raw = getattr(metric, kind)
    if kind == "boolean_value":
        return 1.0 if raw else 0.0
    bits = _SIGNED_BITS.get(datatype or 0)
    if bits is not None and kind in ("int_value", "long_value"):
        raw &= (1 << bits) - 1
        if raw >= 1 << (bits - 1):
            raw -= 1 << bits
    return float(raw)


class SparkplugState:
    """One connector's view of its edge nodes: aliases and data types from their births, sequence numbers, and
    which are offline. Kept in `path` (JSON) across restarts."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.aliases: dict[str, dict[int, tuple[str, int | None]]] = {}  # "group/node[/device]" → alias → name, type
        self.types: dict[str, dict[str, int]] = {}  # "group/node[/device]" → metric name → data type
        self.seq: dict[str, int] = {}  # "group/node" → the last sequence number
        self.offline: set[str] = set()
        self._asked: dict[str, float] = {}
        if path is not None and path.exists():
            try:
                doc = json.loads(path.read_text())
                self.aliases = {k: {int(a): (n, t) for a, (n, t) in v.items()} for k, v in doc["aliases"].items()}
                self.types = doc["types"]
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("sparkplug: %s is unreadable (%s); births will be learnt again", path, exc)

    def _save(self) -> None:
        if self.path is None:
            return
        doc = {
            "aliases": {k: {str(a): list(nt) for a, nt in v.items()} for k, v in self.aliases.items()},
            "types": self.types,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.path)

    def decode(self, topic: str, payload: bytes, now_us: int, template: str, *, rebirth: bool = False) -> Decoded:
        """The points of one Sparkplug message; ValueError (naming the topic) for a topic or payload that is not
        Sparkplug B."""
        levels = topic.split("/")
        if len(levels) < 3 or levels[0] != NAMESPACE:
            raise ValueError(f"topic {topic}: not a Sparkplug B topic ({NAMESPACE}/group/type/node[/device])")
        out = Decoded()
        if levels[1] == "STATE" or levels[2] in ("NCMD", "DCMD", "STATE"):
            return out  # a host's state or commands to a node: no measurements
        if len(levels) not in (4, 5):
            raise ValueError(f"topic {topic}: not a Sparkplug B topic ({NAMESPACE}/group/type/node[/device])")
        group, kind, node = levels[1], levels[2], levels[3]
        device = levels[4] if len(levels) == 5 else None
        if kind not in ("NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDEATH", "DDEATH"):
            raise ValueError(f"topic {topic}: unknown Sparkplug message type {kind!r}")
        if (device is None) != kind.startswith("N"):
            raise ValueError(f"topic {topic}: {kind} {'has no' if device is None else 'takes no'} device level")
        try:
            p = Payload.FromString(payload)
        except DecodeError as exc:
            raise ValueError(f"topic {topic}: payload is not a Sparkplug B protobuf ({exc})") from None
        node_key = f"{group}/{node}"
        key = node_key if device is None else f"{node_key}/{device}"
        if kind.endswith("DEATH"):
            self.offline.add(key)
            return out
        self.offline.discard(key)
        if kind == "NBIRTH":
            self.offline = {k for k in self.offline if not k.startswith(node_key + "/")}
            for k in [k for k in self.aliases if k == node_key or k.startswith(node_key + "/")]:
                del self.aliases[k]  # a new session of the node: its old aliases are void
        if p.HasField("seq") and kind != "NBIRTH":
            expected = (self.seq.get(node_key, -1) + 1) % 256
            if node_key in self.seq and p.seq != expected:
                out.notes.append(
                    f"topic {topic}: sequence number {p.seq}, expected {expected}: messages from "
                    f"{node_key} were lost before the broker"
                )
        if p.HasField("seq"):
            self.seq[node_key] = p.seq
        born = kind.endswith("BIRTH")
        if born:
            self.aliases[key] = {}  # a birth declares the whole set anew
        aliases = self.aliases.get(key, {})
        types = self.types.setdefault(key, {})
        base_us = p.timestamp * 1000 if p.HasField("timestamp") else now_us
        at_device = template if device is not None else template.replace("/{device}", "")
        at_device = at_device.replace("{group}", group).replace("{node}", node).replace("{device}", device or "")
        for i, m in enumerate(p.metrics):
            name = m.name if m.HasField("name") else None
            datatype = m.datatype if m.HasField("datatype") else None
            if born:
                if name is None:
                    out.problems.append(f"topic {topic}: metrics[{i}] has no name (a birth must name each metric)")
                    continue
                if datatype is not None:
                    types[name] = datatype
                if m.HasField("alias"):
                    aliases[m.alias] = (name, datatype)
            elif name is None:
                known = aliases.get(m.alias) if m.HasField("alias") else None
                if known is None:
                    out.problems.append(
                        f"topic {topic}: metrics[{i}] has alias {m.alias} that no birth of {key} declared"
                    )
                    if rebirth and time.monotonic() - self._asked.get(node_key, -1e9) >= REBIRTH_EVERY_S:
                        self._asked[node_key] = time.monotonic()
                        out.rebirth = (group, node)
                    continue
                name, datatype = known[0], datatype if datatype is not None else known[1]
            if datatype is None:
                datatype = types.get(name)
            value = _number(m, datatype)
            if value is None:
                out.skipped += 1
                continue
            out.names.append(at_device.replace("{name}", name))
            out.times.append(m.timestamp * 1000 if m.HasField("timestamp") else base_us)
            out.values.append(value)
        if born:
            self._save()
        return out


def rebirth_request(group: str, node: str) -> tuple[str, bytes]:
    """The NCMD topic and payload that ask an edge node to publish its births again."""
    return (
        f"{NAMESPACE}/{group}/NCMD/{node}",
        encode(
            [{"name": "Node Control/Rebirth", "datatype": DATA_TYPES["Boolean"], "value": True}],
            timestamp_ms=int(time.time() * 1000),
        ),
    )
