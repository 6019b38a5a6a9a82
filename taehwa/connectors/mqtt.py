"""MQTT (paho-mqtt): topic filters with wildcards, JSON, plain and Sparkplug B payloads (`sparkplug`), many points
per message, QoS 1 with a persistent session, TLS and credentials, reconnect.

A QoS 1 message is acknowledged to the broker only after its points are committed to the durable queue; the session
is persistent (fixed client id, clean session off), so messages published while Taehwa is down or restarting wait at
the broker and arrive afterwards. For high rates raise the broker's `max_inflight_messages` (Mosquitto's default, 20,
caps how many unacknowledged messages it sends).

JSON payloads: `{"time": T, "values": {"name": v, …}}`, `{"name": v, …, "time": T}`, a list of
`{"tag"|"name": n, "time": T, "value": v}`, or a bare number. T is ISO 8601 or epoch seconds/ms/µs; absent, the
time of arrival. The tag of each value is the item's template with {topic}, {1}… (wildcard levels) and {name}.
"""

from __future__ import annotations

import os
import ssl
import time
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from taehwa.connectors.config import MqttConnector, MqttItem, render_tag, topic_matches
from taehwa.connectors.link import Link

TIME_KEYS = ("time", "ts", "timestamp")


def parse_time(value: Any, where: str) -> int:
    """µs since the epoch from ISO 8601 text or an epoch number in s, ms or µs (told apart by size)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: time must be ISO 8601 text or an epoch number")
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e14:
            return int(v)  # µs
        if v > 1e11:
            return int(v * 1e3)  # ms
        return int(v * 1e6)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{where}: time {value!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            raise ValueError(f"{where}: time {value!r} has no time zone")
        return int(dt.timestamp() * 1e6)
    raise ValueError(f"{where}: time must be ISO 8601 text or an epoch number")


_TAGS: dict[tuple[str, str, tuple[str, ...]], dict[str, str]] = {}  # (template, topic, levels) → name → tag


def _tags(template: str, topic: str, caught: tuple[str, ...], names: list[str]) -> list[str]:
    """render_tag for many names, remembered: the same topics and names come back in every message."""
    key = (template, topic, caught)
    known = _TAGS.get(key)
    if known is None:
        if len(_TAGS) > 65_536:
            _TAGS.clear()
        known = _TAGS[key] = {}
    try:
        return list(map(known.__getitem__, names))  # the common case: every name seen before, looked up in C
    except KeyError:
        pass
    out = []
    for name in names:
        tag = known.get(name)
        if tag is None:
            tag = known[name] = render_tag(template, topic, list(caught), name)
        out.append(tag)
    return out


_NUMBER_TYPES = {int, float}
_EXACT = 2**53  # integers below this survive the float arithmetic of `parse_time` unchanged


def _times(raw: list[Any]) -> list[int] | None:
    """`parse_time` of many epoch numbers at once, with the same results; None if any is not a finite number.

    Integer µs and ms (the usual forms at high rates) are converted without floats; anything else goes through
    NumPy with `parse_time`'s float arithmetic."""
    kinds = set(map(type, raw))
    if kinds == {int}:
        lo, hi = min(raw), max(raw)
        if lo > 1e14 and hi < _EXACT:
            return raw  # µs already
        if lo > 1e11 and hi <= 1e14 and hi * 1000 < _EXACT:
            return [v * 1000 for v in raw]  # ms
    if not kinds <= _NUMBER_TYPES:
        return None
    try:
        v = np.array(raw, dtype=np.float64)
    except OverflowError:
        return None
    if not np.isfinite(v).all():
        return None
    us = np.where(v > 1e14, v, np.where(v > 1e11, v * 1e3, v * 1e6))
    return list(us.astype(np.int64).tolist())


def _fast_rows(
    doc: list[Any], template: str, topic: str, caught: tuple[str, ...], now_us: int
) -> tuple[list[str], list[int], list[float]] | None:
    """The common list payload in bulk: every row an object keyed like the first, names text, values and times
    numbers. None for anything else, and the careful path then names what is wrong, row by row. The columns are
    pulled out and type-checked by C loops (map, itemgetter, set of types): this is the MQTT connector's hot path."""
    first = doc[0]
    if type(first) is not dict:
        return None
    name_key = "tag" if "tag" in first else "name" if "name" in first else None
    time_key = next((k for k in TIME_KEYS if k in first), None)
    if name_key is None:
        return None
    try:
        names = list(map(itemgetter(name_key), doc))
        values = list(map(itemgetter("value"), doc))
        stamps = list(map(itemgetter(time_key), doc)) if time_key else None
    except (KeyError, TypeError, IndexError):
        return None
    if set(map(type, names)) != {str} or "" in names or not set(map(type, values)) <= _NUMBER_TYPES:
        return None
    if name_key == "name" and any("tag" in r for r in doc):
        return None  # some row names its tag with "tag", which wins there
    if stamps is None:
        if any(k in r for r in doc for k in TIME_KEYS):
            return None
        times = [now_us] * len(doc)
    else:
        if time_key != TIME_KEYS[0] and any(k in r for r in doc for k in TIME_KEYS[: TIME_KEYS.index(time_key)]):
            return None  # some row has a time key that comes first
        parsed = _times(stamps)
        if parsed is None:
            return None
        times = parsed
    return _tags(template, topic, caught, names), times, list(map(float, values))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: value {value!r} is not a number")
    return float(value)


def _careful_rows(
    doc: list[Any], template: str, topic: str, caught: tuple[str, ...], now_us: int
) -> tuple[list[str], list[int], list[float]]:
    """A list payload row by row, each row's own keys; the first bad field is named with its row."""
    tags: list[str] = []
    times: list[int] = []
    values: list[float] = []
    for i, row in enumerate(doc):
        if not isinstance(row, dict):
            raise ValueError(f"topic {topic}[{i}]: each point is an object with tag and value")
        name = row.get("tag", row.get("name"))
        if not isinstance(name, str) or not name:
            raise ValueError(f"topic {topic}[{i}].tag: missing")
        key = next((k for k in TIME_KEYS if k in row), None)
        times.append(parse_time(row[key], f"topic {topic}[{i}].{key}") if key else now_us)
        tags.append(_tags(template, topic, caught, [name])[0])
        values.append(_number(row.get("value"), f"topic {topic}[{i}].value"))
    return tags, times, values


def decode(
    item: MqttItem, topic: str, caught: list[str], payload: bytes, now_us: int, prefix: str = ""
) -> tuple[list[str], list[int], list[float]]:
    """The points in one message; raises ValueError naming the topic and the field that is wrong."""
    template = prefix + item.template()
    if item.format == "plain":
        text = payload.decode("utf-8", "replace").strip()
        try:
            return [render_tag(template, topic, caught)], [now_us], [float(text)]
        except ValueError:
            raise ValueError(f"topic {topic}: payload {text[:40]!r} is not a number") from None
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"topic {topic}: payload is not JSON ({exc})") from None
    key_caught = tuple(caught)
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        return [render_tag(template.replace("/{name}", ""), topic, caught)], [now_us], [float(doc)]
    if isinstance(doc, dict):
        key = next((k for k in TIME_KEYS if k in doc), None)
        t = parse_time(doc[key], f"topic {topic}.{key}") if key else now_us
        inner = doc.get("values")
        fields = inner if isinstance(inner, dict) else {k: v for k, v in doc.items() if k not in TIME_KEYS}
        values = [_number(v, f"topic {topic}.{name}") for name, v in fields.items()]
        return _tags(template, topic, key_caught, list(fields)), [t] * len(values), values
    if isinstance(doc, list):
        fast = _fast_rows(doc, template, topic, key_caught, now_us) if doc else None
        return fast if fast is not None else _careful_rows(doc, template, topic, key_caught, now_us)
    raise ValueError(f"topic {topic}: JSON payload must be an object, a list or a number")


class MqttLink(Link):
    spec: MqttConnector

    def run_source(self) -> None:
        import paho.mqtt.client as mqtt

        s = self.spec
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"taehwa-{self.tenant}-{s.name}",
            clean_session=False,
            manual_ack=True,
        )
        self._client = client
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)

        def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            if reason.is_failure:
                self.error(f"broker refused the connection: {reason}")
                return
            c.subscribe([(i.topic, i.qos) for i in s.items])
            self.set_state("connected", broker=f"{s.host}:{s.port}", pid=os.getpid())

        def on_disconnect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            if not self.stopping.is_set():
                self.set_state("disconnected")
                self.error(f"disconnected from the broker ({reason}); reconnecting")

        routes: dict[str, tuple[MqttItem, list[str]] | None] = {}  # topic → its item and wildcard levels

        def route(topic: str) -> tuple[MqttItem, list[str]] | None:
            """The first item whose filter matches (remembered: a plant's topics are few and come back)."""
            if topic not in routes:
                if len(routes) > 100_000:
                    routes.clear()
                routes[topic] = next(
                    ((i, caught) for i in s.items if (caught := topic_matches(i.topic, topic)) is not None), None
                )
            return routes[topic]

        def on_message(c: Any, _u: Any, msg: Any) -> None:
            now = int(time.time() * 1e6)
            ack = (lambda m=msg.mid, q=msg.qos: c.ack(m, q)) if msg.qos else None
            topic = msg.topic
            found = route(topic)
            if found is None:
                if ack:
                    ack()
                return
            try:
                if found[0].format == "sparkplug":
                    tags, times, values = self._sparkplug(c, found[0], topic, msg.payload, now)
                else:
                    tags, times, values = decode(found[0], topic, found[1], msg.payload, now, s.tag_prefix)
            except ValueError as exc:
                self.reject(str(exc))
                tags, times, values = [], [], []
            self.stage(tags, times, values, ack)

        client.on_connect, client.on_disconnect, client.on_message = on_connect, on_disconnect, on_message
        while not self.stopping.is_set():
            try:
                client.connect(s.host, s.port, keepalive=s.keepalive_s)
                break
            except OSError as exc:
                self.set_state("disconnected")
                self.error(f"cannot reach the broker at {s.host}:{s.port}: {exc}")
                self.stopping.wait(2.0)
        while not self.stopping.is_set():
            client.loop_forever(retry_first_connection=True)  # returns on disconnect(); reconnects itself otherwise

    def _sparkplug(
        self, client: Any, item: MqttItem, topic: str, payload: bytes, now: int
    ) -> tuple[list[str], list[int], list[float]]:
        """A Sparkplug B message: its points; refused metrics, sequence gaps and offline nodes in the status."""
        from taehwa.connectors.sparkplug import SparkplugState, rebirth_request

        state = getattr(self, "_sparkplug_state", None)
        if state is None:
            state = self._sparkplug_state = SparkplugState(self.folder / "sparkplug.json")
        got = state.decode(
            topic, payload, now, self.spec.tag_prefix + item.template(), rebirth=self.spec.sparkplug_rebirth
        )
        for problem in got.problems:
            self.reject(problem)
        for note in got.notes:
            self.error(note)
        if got.rebirth is not None:
            client.publish(*rebirth_request(*got.rebirth), qos=0)
        detail = self.status.detail
        detail["sparkplug_offline"] = sorted(state.offline)[:50]
        detail["sparkplug_skipped"] = int(detail.get("sparkplug_skipped", 0)) + got.skipped
        return got.names, got.times, got.values

    def stop_source(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            self.commit()  # acknowledge what is already safe before leaving
            client.disconnect()
