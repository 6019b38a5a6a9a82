"""MQTT payload decoding: the bulk path for the usual list of points gives exactly what the row-by-row path gives,
and hands anything unusual to it (which names the bad field)."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest

from taehwa.connectors.config import MqttItem
from taehwa.connectors.mqtt import _careful_rows, _fast_rows, decode, parse_time

NOW = 1_790_000_000_000_000
ITEM = MqttItem(topic="plant/+/json", format="json", tag="mqtt/{1}/{name}")


def random_rows(rng: np.random.Generator, n: int) -> list[dict[str, object]]:
    """Points keyed as real publishers key them: tag or name; time in s, ms, µs (int or float) or missing."""
    name_key = str(rng.choice(["tag", "name"]))
    time_key = rng.choice(["time", "ts", "timestamp", ""])
    unit = float(rng.choice([1.0, 1e3, 1e6]))
    rows: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {
            name_key: f"s{int(rng.integers(0, 7))}",
            "value": float(rng.normal()) if rng.random() < 0.7 else int(rng.integers(-5, 5)),
        }
        if time_key:
            t = 1_790_000_000 + i * 0.001 + float(rng.random())
            row[str(time_key)] = int(t * unit) if rng.random() < 0.5 else t * unit
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(20))
def test_bulk_path_equals_the_row_by_row_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    doc = orjson.loads(orjson.dumps(random_rows(rng, int(rng.integers(1, 60)))))  # as they arrive: parsed JSON
    fast = _fast_rows(doc, "mqtt/{1}/{name}", "plant/p1/json", ("p1",), NOW)
    assert fast is not None
    assert fast == _careful_rows(doc, "mqtt/{1}/{name}", "plant/p1/json", ("p1",), NOW)
    assert fast[0][0].startswith("mqtt/p1/s")


@pytest.mark.parametrize(
    "doc",
    [
        [{"tag": "a", "value": 1}, {"name": "b", "value": 2}],  # a row keyed otherwise
        [{"name": "a", "value": 1}, {"name": "b", "tag": "c", "value": 2}],  # "tag" wins over "name" in that row
        [{"tag": "a", "value": 1}, {"tag": "b", "value": 2, "time": 1_790_000_000}],  # only some rows carry a time
        [{"tag": "a", "ts": 1_790_000_000, "value": 1}, {"tag": "b", "ts": 1, "time": 5, "value": 2}],  # "time" first
        [{"tag": "a", "time": "2026-09-21T00:00:00Z", "value": 1}],  # ISO time: the careful path parses it
    ],
)
def test_unusual_lists_take_the_careful_path_with_the_same_result(doc: list[dict[str, object]]) -> None:
    assert _fast_rows(doc, "x/{name}", "t", (), NOW) is None
    tags, times, values = decode(MqttItem(topic="t", tag="x/{name}"), "t", [], orjson.dumps(doc), NOW)
    assert (tags, times, values) == _careful_rows(doc, "x/{name}", "t", (), NOW)


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ([{"tag": "a", "value": True}], "t[0].value"),
        ([{"tag": "a", "value": "7"}], "t[0].value"),
        ([{"tag": "a", "value": 1}, {"tag": "b", "value": None}], "t[1].value"),
        ([{"tag": "", "value": 1}], "t[0].tag"),
        ([{"tag": "a", "value": 1, "time": True}], "t[0].time"),
        ([{"tag": "a", "value": 1, "time": "yesterday"}], "t[0].time"),
        ([{"tag": "a", "value": 1}, 3], "t[1]"),
    ],
)
def test_bad_points_are_named_by_row_and_field(doc: list[object], where: str) -> None:
    with pytest.raises(ValueError, match="topic " + re.escape(where)):
        decode(MqttItem(topic="t", tag="x/{name}"), "t", [], orjson.dumps(doc), NOW)


def test_object_payloads_map_fields_to_tags() -> None:
    tags, times, values = decode(
        ITEM, "plant/p7/json", ["p7"], b'{"time": 1790000000.5, "values": {"a": 1, "b": 2.5}}', NOW
    )
    assert tags == ["mqtt/p7/a", "mqtt/p7/b"] and values == [1.0, 2.5] and times == [1_790_000_000_500_000] * 2
    with pytest.raises(ValueError, match=r"topic plant/p7/json\.b"):
        decode(ITEM, "plant/p7/json", ["p7"], b'{"a": 1, "b": "x"}', NOW)


@pytest.mark.parametrize(
    "stamps",
    [
        [1_790_000_000_000_000 + i for i in range(5)],  # integer µs: kept as they are
        [1_790_000_000_000 + i for i in range(5)],  # integer ms
        [100_000_000_000_000, 1_790_000_000_000],  # 1e14 itself is ms by parse_time's rule
        [100_000_000_001, 1_790_000_000_000_000],  # ms and µs in one message
        [1_790_000_000, 1_790_000_000_000],  # s and ms
        [2**62, 1_790_000_000_000_000],  # beyond exact floats: parse_time's float arithmetic
    ],
)
def test_integer_times_take_the_bulk_path_with_parse_times_result(stamps: list[int]) -> None:
    doc = [{"tag": f"s{i}", "time": t, "value": i} for i, t in enumerate(stamps)]
    fast = _fast_rows(doc, "x/{name}", "t", (), NOW)
    assert fast is not None and fast == _careful_rows(doc, "x/{name}", "t", (), NOW)
    assert fast[1] == [parse_time(t, "t") for t in stamps]
