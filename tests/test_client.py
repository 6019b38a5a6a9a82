"""taehwa.client against a real server on loopback (HTTP and Flight), and its routes against the OpenAPI document
the running app serves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from taehwa.client import ROUTES, Client
from taehwa.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from taehwa.server.platform import Platform
from tests.conftest import TOKEN, serving

T0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def servers(platform: Platform) -> Iterator[tuple[Platform, str, str]]:
    flight = platform.flight("127.0.0.1", 0)
    port = flight.start()
    with serving(platform) as url:
        yield platform, url, f"grpc://127.0.0.1:{port}"
    flight.close()


def test_routes_match_the_openapi_document(servers: tuple[Platform, str, str]) -> None:
    _, url, _ = servers
    doc = httpx.get(f"{url}/openapi.json", timeout=10).json()
    for name, route in ROUTES.items():
        op = doc["paths"].get(route.path, {}).get(route.method)
        assert op is not None, f"{name}: {route.method.upper()} {route.path} is not in the OpenAPI document"
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert route.params <= declared, (name, route.params - declared)
        path_params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert path_params == ({"tenant"} if "{tenant}" in route.path else set()), name


@pytest.mark.parametrize("via", ["http", "flight"])
def test_write_and_query_as_pandas_and_arrow(servers: tuple[Platform, str, str], via: str) -> None:
    platform, url, flight = servers
    frame = pd.DataFrame(
        {
            "time": pd.date_range(T0, periods=120, freq="30s"),
            "unit1/flow": [float(i) for i in range(120)],
            "unit1/temp": 20.0,
        }
    )
    with Client(url, TOKEN, flight=flight if via == "flight" else None) as c:
        assert c.write("acme", frame) == {"stored": 240, "tags": 2}
        raw = c.query("acme", ["unit1/flow", "unit1/temp"], T0, T0 + timedelta(hours=1))
        assert isinstance(raw, pd.DataFrame) and len(raw) == 240
        assert raw[raw.tag == "unit1/flow"].value.tolist() == [float(i) for i in range(120)]
        buckets = c.query("acme", "unit1/flow", T0, T0 + timedelta(hours=1), every="10m", agg="avg,max", output="arrow")
        assert isinstance(buckets, pa.Table)
        assert buckets.column("max").to_pylist() == [19.0, 39.0, 59.0, 79.0, 99.0, 119.0]
        wide = c.query("acme", ["unit1/flow", "unit1/temp"], T0, T0 + timedelta(minutes=2), step="1m", align=True)
        assert list(wide.columns) == ["time", "unit1/flow", "unit1/temp"] and wide["unit1/flow"].tolist() == [
            0.0,
            2.0,
            4.0,
        ]
        assert [t.name for t in c.tags("acme")] == ["unit1/flow", "unit1/temp"]
        latest = c.latest("acme", output="arrow")
        assert latest.column("value").to_pylist() == [119.0, 20.0]
        assert c.stats("acme")["rows_in_files"] + c.stats("acme")["buffered"] == 240
        assert {t["id"] for t in c.tenants()} >= {"acme", "rival"}
    with acting_as_system():
        assert platform.historian.read("acme", "unit1/flow", T0, T0 + timedelta(hours=1)).num_rows == 120


def acting_as_system() -> AbstractContextManager[None]:
    from taehwa.tenancy.access import SYSTEM, acting_as

    return acting_as(SYSTEM)


@pytest.mark.parametrize("via", ["http", "flight"])
def test_errors_are_taehwas_own(servers: tuple[Platform, str, str], via: str) -> None:
    platform, url, flight = servers
    platform.identity.create_user("kim")
    platform.identity.set_role("kim", "acme", "viewer")
    viewer, _ = platform.identity.create_token("kim", "notebook")
    loc = flight if via == "flight" else None
    with Client(url, "thw_bad_token", flight=loc) as c, pytest.raises(Unauthorized):
        c.query("acme", "x", T0, T0 + timedelta(hours=1))
    with Client(url, viewer, flight=loc) as c:
        with pytest.raises(Forbidden, match="viewer may not write"):
            c.write("acme", pa.table({"tag": ["a"], "time": [T0], "value": [1.0]}))
        with pytest.raises((Forbidden, NotFound)):
            c.query("rival", "x", T0, T0 + timedelta(hours=1))
    with Client(url, TOKEN, flight=loc) as c:
        c.write("acme", pa.table({"tag": ["a"], "time": [T0], "value": [1.0]}))
        with pytest.raises(InvalidInput, match="must be after start") as err:
            c.query("acme", "a", T0, T0 - timedelta(hours=1))
        assert err.value.where == "end"
        with pytest.raises(NotFound, match="unknown tag 'x'"):
            c.query("acme", "x", T0, T0 + timedelta(hours=1))
        with pytest.raises(InvalidInput, match="invalid tag"):
            c.write("acme", pa.table({"tag": ["bad tag!"], "time": [T0], "value": [1.0]}))
