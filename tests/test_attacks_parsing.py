"""Issue 20, points 4 and 6: tiny hostile documents and bad parameters. Each case answers 4xx with a message naming
the field, stores nothing, and the hostile documents parse or are refused within a stated memory and time bound
(measured in a fresh subprocess, so nothing else in the test process counts)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from taehwa.server.platform import Platform

RANGE = {"tags": "p/1", "start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00Z"}
# the classic "billion laughs": nine levels of nine aliases, 454 bytes; expanded, 9^9 = 387 million strings
LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_YAML = "plant:\n  " + "{a: " * 100_000 + "1" + "}" * 100_000
MEMORY_BOUND_MB = 50  # peak Python allocation for parsing or refusing any hostile document below
TIME_BOUND_S = 1.0


@pytest.fixture
def app(platform: Platform, client: TestClient) -> TestClient:
    """The test platform with one point and a plant, so that a refusal is about the input, not a missing tenant."""
    platform.historian.write("acme", [("p/1", "2024-03-01T00:00:00Z", 1.0)])
    return client


def _refused(r: Any, field: str, status: tuple[int, ...] = (413, 422)) -> dict[str, Any]:
    assert r.status_code in status, (r.status_code, r.text[:300])
    body: dict[str, Any] = r.json()
    assert body["message"] and field in (body.get("where") or "") + " " + body["message"], body
    return body


def _points(platform: Platform) -> int:
    return int(platform.historian.read("acme", "p/1", "2000-01-01", "2100-01-01").num_rows)


# -- point 6: query parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, field",
    [
        ({"every": "1m", "agg": "avg,avg"}, "agg"),
        ({"every": "99999999999999d"}, "every"),
        ({"every": "1e22s"}, "every"),
        ({"every": "1e308s"}, "every"),
        ({"every": "-1e308s"}, "every"),
        ({"step": "1us"}, "step"),
        ({"step": "1e308s"}, "step"),
        ({"step": "200us", "method": "linear"}, "step"),
    ],
)
def test_bad_query_parameters_are_4xx(app: TestClient, params: dict[str, str], field: str) -> None:
    body = _refused(app.get("/api/v1/acme/points", params={**RANGE, **params}), field)
    if field == "step" and "us" in params["step"]:
        assert "max_query_points" in body["message"]  # the cap is named, so an operator knows what to raise


def test_grid_is_sized_before_it_is_built(platform: Platform) -> None:
    """A day at 200 µs is 432 million grid points: refused from range/step alone, allocating almost nothing."""
    import tracemalloc

    from taehwa.core.errors import InvalidInput

    platform.historian.write("acme", [("p/1", "2024-03-01T00:00:00Z", 1.0)])
    tracemalloc.start()
    with pytest.raises(InvalidInput, match="max_query_points"):
        platform.historian.query("acme", ["p/1"], RANGE["start"], RANGE["end"], step="200us", method="linear")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20, peak


# -- point 6: bodies of points ---------------------------------------------------------------------------------
def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


@pytest.mark.parametrize("us", [2**62, -(2**62), 2**63 - 1])
def test_arrow_times_out_of_range(app: TestClient, platform: Platform, us: int) -> None:
    table = pa.table({"tag": ["p/1"], "time": pa.array([us], pa.int64()).cast(pa.timestamp("us")), "value": [2.0]})
    r = app.post(
        "/api/v1/acme/points", content=_arrow(table), headers={"content-type": "application/vnd.apache.arrow.stream"}
    )
    _refused(r, "time")
    assert _points(platform) == 1


@pytest.mark.parametrize("time", [1e300, -1e300, 1e17])
def test_json_time_out_of_range(app: TestClient, platform: Platform, time: float) -> None:
    _refused(app.post("/api/v1/acme/points", json=[{"tag": "p/1", "time": time, "value": 2.0}]), "time")
    assert _points(platform) == 1


def test_malformed_arrow_bodies_are_4xx(app: TestClient, platform: Platform) -> None:
    """Mutated Arrow IPC streams (bits flipped, bytes replaced, cut short): each is stored whole or refused with
    a 4xx; a corrupt offset used to reach a compute kernel unchecked (a crash of the whole server)."""
    good = _arrow(
        pa.table(
            {
                "tag": ["p/2", "p/3"],
                "time": pa.array([1_709_251_200_000_000, 1_709_251_201_000_000], pa.int64()).cast(pa.timestamp("us")),
                "value": [1.0, 2.0],
            }
        )
    )
    rng = random.Random(20)
    statuses = set()
    for _ in range(150):
        body = bytearray(good)
        kind = rng.choice(["flip", "byte", "cut"])
        if kind == "cut":
            body = body[: rng.randrange(len(body))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        else:
            body[rng.randrange(len(body))] = rng.randrange(256)
        r = app.post(
            "/api/v1/acme/points", content=bytes(body), headers={"content-type": "application/vnd.apache.arrow.stream"}
        )
        statuses.add(r.status_code)
        assert r.status_code < 500, (r.status_code, r.text[:200])
    assert statuses & {413, 415, 422}


def test_wide_table_of_mixed_kinds(app: TestClient, platform: Platform) -> None:
    table = pa.table({"time": [1_709_251_200.0], "p/2": [1.0], "p/3": pa.array([[1.0]], pa.list_(pa.float64()))})
    r = app.post(
        "/api/v1/acme/points", content=_arrow(table), headers={"content-type": "application/vnd.apache.arrow.stream"}
    )
    assert 400 <= r.status_code < 500, r.text


# -- point 4 and 6: documents ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "doc, ctype",
    [
        (LAUGHS, "application/yaml"),
        (DEEP_YAML, "application/yaml"),
        (DEEP_JSON, "application/json"),
        ("a: &a [*a]\n", "application/yaml"),
        ("a: " + "1" * 5000 + "\n", "application/yaml"),
        ("a: 2024-13-45\n", "application/yaml"),
    ],
)
def test_hostile_plant_documents(app: TestClient, platform: Platform, doc: str, ctype: str) -> None:
    before = platform.twin.export("acme")
    body = _refused(app.put("/api/v1/acme/twin", content=doc, headers={"content-type": ctype}), "line")
    assert body["where"].startswith("body")
    assert platform.twin.export("acme") == before  # nothing stored


def test_plant_document_over_the_size_limit(app: TestClient) -> None:
    from taehwa.core.yamlio import MAX_DOCUMENT_BYTES

    r = app.put(
        "/api/v1/acme/twin", content=b"#" * (MAX_DOCUMENT_BYTES + 1), headers={"content-type": "application/yaml"}
    )
    _refused(r, "body", (413,))


@pytest.mark.parametrize(
    "path, method",
    [
        ("/api/v1/acme/types/Pump", "put"),
        ("/api/v1/acme/connectors", "post"),
        ("/api/v1/acme/lab/evaluate", "post"),
        ("/api/v1/acme/assets", "post"),
        ("/api/v1/tenants", "post"),
    ],
)
def test_deep_json_bodies(app: TestClient, platform: Platform, path: str, method: str) -> None:
    """100k-deep and 200-deep JSON to every kind of route that takes a document: 422 naming the depth, not a
    RecursionError (500) nor FastAPI's 400 "error parsing the body"."""
    for doc in (DEEP_JSON, '{"a":' * 200 + "1" + "}" * 200):
        r = getattr(app, method)(path, content=doc, headers={"content-type": "application/json"})
        body = _refused(r, "body", (422,))
        assert "deeper than" in body["message"]
    assert platform.connectors.list("acme") == []


def test_lab_spec_with_no_features(app: TestClient) -> None:
    spec = {
        "name": "x",
        "task": "anomaly",
        "model": {"kind": "zscore"},
        "features": {"windows": [], "stats": []},
        "data": {"tags": ["p/1"], "start": RANGE["start"], "end": RANGE["end"]},
    }
    body = _refused(app.post("/api/v1/acme/lab/evaluate", json=spec), "features")
    assert "no feature" in body["message"]
    for features, field in (
        ({"windows": [10**9]}, "features.windows"),
        ({"spectrum_bands": 10**6}, "spectrum_bands"),
        ({"ewm_alpha": 0}, "ewm_alpha"),
    ):
        _refused(app.post("/api/v1/acme/lab/evaluate", json={**spec, "features": features}), field)
    assert app.get("/api/v1/acme/lab/runs").json() == []


def test_the_loader_keeps_what_plant_files_use() -> None:
    """Merge keys and a few aliases stay (they expand to little); lines are still known."""
    from taehwa.core.yamlio import line_of, load_yaml

    doc = load_yaml("base: &b {unit: bar}\nx: {<<: *b, range: [0, 1]}\ny: *b\n", source="t.yaml")
    assert doc["x"] == {"unit": "bar", "range": [0, 1]} and doc["y"] == {"unit": "bar"}
    assert line_of(doc, "y") == 3


# -- the memory and time bound ----------------------------------------------------------------------------------
_MEASURE = r"""
import json, sys, time, tracemalloc
from taehwa.core.errors import TaehwaError
from taehwa.core.yamlio import load_json, load_yaml
kind, doc = sys.argv[1], sys.stdin.read()
tracemalloc.start()
t0 = time.perf_counter()
try:
    (load_json if kind == "json" else load_yaml)(doc, source="doc")
    outcome = "parsed"
except TaehwaError as exc:
    outcome = exc.message
seconds = time.perf_counter() - t0
print(json.dumps({"outcome": outcome, "seconds": seconds, "peak": tracemalloc.get_traced_memory()[1]}))
"""


@pytest.mark.parametrize(
    "name, kind, doc",
    [
        ("billion laughs", "yaml", LAUGHS),
        ("100k-deep YAML", "yaml", DEEP_YAML),
        ("100k-deep flow YAML", "yaml", DEEP_JSON),
        ("100k-deep JSON", "json", DEEP_JSON),
    ],
)
def test_hostile_documents_within_the_bound(name: str, kind: str, doc: str) -> None:
    """Each hostile document is refused within MEMORY_BOUND_MB of peak allocation and TIME_BOUND_S, in a fresh
    interpreter (before, the laughs took 118 s and 11.4 GB once walked, the deep ones a RecursionError)."""
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, kind], input=doc, capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["outcome"] != "parsed", name
    assert result["peak"] < MEMORY_BOUND_MB * 2**20, (name, result)
    assert result["seconds"] < TIME_BOUND_S, (name, result)


def test_grid_refusal_within_the_bound(platform: Platform, app: TestClient) -> None:
    """The viewer's 200us grid over a day, over HTTP: refused in well under a second (it allocated 3.4 GB)."""
    import time

    t0 = time.perf_counter()
    _refused(app.get("/api/v1/acme/points", params={**RANGE, "step": "200us", "method": "linear"}), "step")
    assert time.perf_counter() - t0 < TIME_BOUND_S
