"""Arrow Flight: bulk reads of a range of tags, writes through the checked write path (tenant, role, audit), and
token auth; a stream of record batches at the speed of reading the same Parquet files locally."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.parquet as pq
import pytest

from taehwa.server.platform import Platform
from taehwa.tenancy.access import SYSTEM, acting_as
from tests.conftest import TOKEN

T0 = datetime(2026, 4, 1, tzinfo=UTC)
AUTH = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])


def _points(tags: int, n: int, step_s: float = 1.0) -> pa.Table:
    times = np.datetime64("2026-04-01T00:00:00", "us") + (np.arange(n) * step_s * 1e6).astype("timedelta64[us]")
    return pa.table(
        {
            "tag": np.repeat([f"line/t{i:02d}" for i in range(tags)], n),
            "time": pa.array(np.tile(times, tags)).cast(pa.timestamp("us", "UTC")),
            "value": np.random.default_rng(1).normal(size=tags * n),
        }
    )


@pytest.fixture
def flight(platform: Platform) -> Iterator[tuple[Platform, fl.FlightClient]]:
    service = platform.flight("127.0.0.1", 0)
    port = service.start()
    client = fl.FlightClient(f"grpc://127.0.0.1:{port}")
    yield platform, client
    client.close()
    service.close()


def _ticket(**doc: object) -> fl.Ticket:
    return fl.Ticket(orjson.dumps(doc))


def test_put_then_get_a_range_of_tags(flight: tuple[Platform, fl.FlightClient]) -> None:
    platform, client = flight
    table = _points(4, 3600)
    writer, reader = client.do_put(
        fl.FlightDescriptor.for_command(orjson.dumps({"tenant": "acme"})), table.schema, options=AUTH
    )
    writer.write_table(table, max_chunksize=5000)
    writer.done_writing()
    assert orjson.loads(reader.read().to_pybytes()) == {"stored": 4 * 3600, "tags": 4}
    writer.close()
    got = client.do_get(
        _ticket(
            tenant="acme",
            tags=["line/t01", "line/t02"],
            start=T0.isoformat(),
            end=(T0 + timedelta(hours=1)).isoformat(),
        ),
        options=AUTH,
    ).read_all()
    want = platform.historian.read("acme", ["line/t01", "line/t02"], T0, T0 + timedelta(hours=1))
    assert pa.types.is_dictionary(got.schema.field("tag").type)
    assert got.set_column(0, "tag", got.column("tag").cast(pa.string())).equals(want) and got.num_rows == 7200
    buckets = client.do_get(
        _ticket(
            tenant="acme",
            tags=["line/t00"],
            start=T0.isoformat(),
            end=(T0 + timedelta(hours=1)).isoformat(),
            every="10m",
            agg="avg,max",
        ),
        options=AUTH,
    ).read_all()
    assert buckets.column_names == ["tag", "time", "avg", "max"] and buckets.num_rows == 6
    with acting_as(SYSTEM):
        audited = [e for e in platform.audit.entries("acme", limit=5) if e["action"] == "points.write"]
    assert audited and audited[0]["target"] == "14400 points in 4 tags"


def test_tokens_tenants_and_roles(flight: tuple[Platform, fl.FlightClient]) -> None:
    platform, client = flight
    platform.historian.write("rival", _points(1, 10))
    ident = platform.identity
    ident.create_user("kim")
    ident.set_role("kim", "acme", "viewer")
    viewer, _ = ident.create_token("kim", "notebook")
    as_viewer = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {viewer}".encode())])
    read = _ticket(tenant="rival", tags=["line/t00"], start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())
    assert client.do_get(read, options=AUTH).read_all().num_rows == 10  # the platform admin sees every tenant
    with pytest.raises(fl.FlightUnauthorizedError, match="no access to tenant 'rival'"):
        client.do_get(read, options=as_viewer).read_all()
    with pytest.raises(fl.FlightUnauthenticatedError, match="missing bearer token"):
        client.do_get(read).read_all()
    with pytest.raises(fl.FlightUnauthenticatedError, match="invalid token"):
        client.do_get(read, options=fl.FlightCallOptions(headers=[(b"authorization", b"Bearer thw_x_y")])).read_all()
    table = _points(1, 10)
    writer, reader = client.do_put(
        fl.FlightDescriptor.for_command(orjson.dumps({"tenant": "acme"})), table.schema, options=as_viewer
    )
    with pytest.raises(fl.FlightUnauthorizedError, match="a viewer may not write"):
        writer.write_table(table)
        writer.done_writing()
        reader.read()
        writer.close()
    assert platform.historian.tags("acme") == []
    for bad, problem in [
        (b"not json", "not JSON"),
        (b'{"tags": []}', '"tenant"'),
        (
            b'{"tenant": "acme", "tags": ["x"], "start": "2026-01-01", "end": "2026-01-02", "path": "/etc/passwd"}',
            "unknown key 'path'",
        ),
        (b'{"tenant": "../x", "tags": ["x"], "start": "2026-01-01", "end": "2026-01-02"}', "unknown tenant"),
    ]:
        with pytest.raises(fl.FlightServerError, match=problem) as err:
            client.do_get(fl.Ticket(bad), options=AUTH).read_all()
        assert "Traceback" not in str(err.value) and err.value.extra_info in (b"invalid_input", b"not_found")


def test_a_broken_put_stores_nothing(flight: tuple[Platform, fl.FlightClient]) -> None:
    platform, client = flight
    bad = pa.table(
        {
            "tag": ["a/ok", "a/ok", "bad tag!"],
            "time": pa.array([0, 1, 2], pa.timestamp("s", "UTC")),
            "value": [1.0, 2.0, 3.0],
        }
    )
    writer, reader = client.do_put(
        fl.FlightDescriptor.for_command(orjson.dumps({"tenant": "acme"})), bad.schema, options=AUTH
    )
    with pytest.raises(fl.FlightServerError, match="invalid tag"):
        writer.write_table(bad)
        writer.done_writing()
        reader.read()
        writer.close()
    assert platform.historian.tags("acme") == []


def test_bulk_read_keeps_up_with_reading_the_parquet_files(flight: tuple[Platform, fl.FlightClient]) -> None:
    """A day of 10 tags at 1 s (864,000 points) over Flight, against pyarrow reading the same day files locally."""
    platform, client = flight
    hist = platform.historian
    hist.write("acme", _points(10, 86_400))
    hist.flush()
    files = sorted((platform.settings.data_dir / "historian" / "acme").glob("day=*/*.parquet"))
    ticket = _ticket(
        tenant="acme",
        tags=[f"line/t{i:02d}" for i in range(10)],
        start=T0.isoformat(),
        end=(T0 + timedelta(days=1)).isoformat(),
    )

    def best(fn: object, rounds: int = 2) -> float:
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return min(times)

    local = best(lambda: pq.read_table(files, columns=["tag", "time", "value", "quality"]))
    remote = best(lambda: client.do_get(ticket, options=AUTH).read_all())
    assert client.do_get(ticket, options=AUTH).read_all().num_rows == 10 * 86_400
    print(f"flight {remote * 1000:.0f} ms, local parquet {local * 1000:.0f} ms, ratio {local / remote:.2f}")
    # the ratio itself is bench/peers.py's figure; here a guard against a stream several times slower (a sort of
    # every row, rows converted one by one), with room for a shared, loaded test machine
    assert remote < 3 * local + 0.5, (remote, local)
