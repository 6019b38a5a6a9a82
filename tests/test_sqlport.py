"""The SQL port: psycopg, psql and Grafana's query shapes against a real server on loopback; sign-in by token and
password; tenants and roles as over HTTP; day pruning; the historian's functions; hostile SQL refused; audit."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from taehwa.server.platform import Platform
from taehwa.sqlport.server import SqlPort
from taehwa.tenancy.access import SYSTEM, acting_as
from tests.conftest import TOKEN

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def _points(tag: str, day: int, n: int = 1440, step_s: int = 60, offset: float = 0.0) -> pa.Table:
    t0 = DAY0 + timedelta(days=day)
    times = [t0 + timedelta(seconds=step_s * i) for i in range(n)]
    return pa.table({"tag": [tag] * n, "time": pa.array(times, pa.timestamp("us", "UTC")),
                     "value": np.arange(n, dtype=float) + offset})


@pytest.fixture
def sql(platform: Platform) -> Iterator[tuple[Platform, int]]:
    hist = platform.historian
    for day in range(3):
        hist.write("acme", pa.concat_tables([_points("cdu/flow", day, offset=day * 10_000),
                                             _points("cdu/temp", day, n=144, step_s=600)]))
    hist.write("rival", _points("secret/flow", 0))
    hist.flush()
    port = platform.sql_port()
    number = port.start("127.0.0.1", 0)
    yield platform, number
    port.close()


def connect(port: int, tenant: str = "acme", password: str = TOKEN, user: str = "grafana") -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", port=port, dbname=tenant, user=user, password=password,
                           connect_timeout=10, autocommit=True)


def test_tag_day_query_over_psycopg(sql: tuple[Platform, int]) -> None:
    platform, port = sql
    with connect(port) as con:
        rows = con.execute("SELECT count(*), min(value), max(value), min(time) FROM points "
                           "WHERE tag = 'cdu/flow' AND time >= '2026-03-02T00:00:00Z' "
                           "AND time < '2026-03-03T00:00:00Z'").fetchall()
        assert rows == [(1440, 10_000.0, 11_439.0, datetime(2026, 3, 2))]
        tags = con.execute("SELECT tag FROM tags ORDER BY tag").fetchall()
        assert tags == [("cdu/flow",), ("cdu/temp",)]
        latest = con.execute("SELECT tag, value FROM latest ORDER BY tag").fetchall()
        assert latest == [("cdu/flow", 21_439.0), ("cdu/temp", 143.0)]
        # parameters bound by the driver (the extended protocol)
        got = con.execute("SELECT count(*) FROM points WHERE tag = %s AND time >= %s AND time < %s",
                          ["cdu/temp", DAY0, DAY0 + timedelta(days=1)]).fetchone()
        assert got == (144,)
