"""The SQL port: psycopg, psql and Grafana's query shapes against a real server on loopback; sign-in by token and
password; tenants and roles as over HTTP; day pruning; the historian's functions; hostile SQL refused; audit."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pytest

from taehwa.server.platform import Platform
from taehwa.tenancy.access import SYSTEM, acting_as
from tests.conftest import TOKEN

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def _points(tag: str, day: int, n: int = 1440, step_s: int = 60, offset: float = 0.0) -> pa.Table:
    t0 = DAY0 + timedelta(days=day)
    times = [t0 + timedelta(seconds=step_s * i) for i in range(n)]
    return pa.table(
        {
            "tag": [tag] * n,
            "time": pa.array(times, pa.timestamp("us", "UTC")),
            "value": np.arange(n, dtype=float) + offset,
        }
    )


@pytest.fixture
def sql(platform: Platform) -> Iterator[tuple[Platform, int]]:
    hist = platform.historian
    for day in range(3):
        hist.write(
            "acme",
            pa.concat_tables(
                [_points("cdu/flow", day, offset=day * 10_000), _points("cdu/temp", day, n=144, step_s=600)]
            ),
        )
    hist.write("rival", _points("secret/flow", 0))
    hist.flush()
    port = platform.sql_port()
    number = port.start("127.0.0.1", 0)
    yield platform, number
    port.close()


def connect(port: int, tenant: str = "acme", password: str = TOKEN, user: str = "grafana") -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=port, dbname=tenant, user=user, password=password, connect_timeout=10, autocommit=True
    )


def test_tag_day_query_over_psycopg(sql: tuple[Platform, int]) -> None:
    platform, port = sql
    with connect(port) as con:
        rows = con.execute(
            "SELECT count(*), min(value), max(value), min(time) FROM points "
            "WHERE tag = 'cdu/flow' AND time >= '2026-03-02T00:00:00Z' "
            "AND time < '2026-03-03T00:00:00Z'"
        ).fetchall()
        assert rows == [(1440, 10_000.0, 11_439.0, datetime(2026, 3, 2))]
        tags = con.execute("SELECT tag FROM tags ORDER BY tag").fetchall()
        assert tags == [("cdu/flow",), ("cdu/temp",)]
        latest = con.execute("SELECT tag, value FROM latest ORDER BY tag").fetchall()
        assert latest == [("cdu/flow", 21_439.0), ("cdu/temp", 143.0)]
        # parameters bound by the driver (the extended protocol)
        got = con.execute(
            "SELECT count(*) FROM points WHERE tag = %s AND time >= %s AND time < %s",
            ["cdu/temp", DAY0, DAY0 + timedelta(days=1)],
        ).fetchone()
        assert got == (144,)
        # values kept as exact decimals come back as the very doubles written (a clean day, and a day in two files)
        rounded = np.random.default_rng(2).normal(50, 5, 200).round(3)
        for day in (5, 0):
            points = _points("cdu/dec", day, n=200)
            platform.historian.write("acme", points.set_column(2, "value", pa.array(rounded)))
        platform.historian.flush()
        for day in (5, 0):
            start = (DAY0 + timedelta(days=day)).strftime("%Y-%m-%d")
            stored = con.execute(
                f"SELECT value FROM points WHERE tag = 'cdu/dec' AND time >= '{start}' "
                f"AND time < TIMESTAMP '{start}' + INTERVAL 1 DAY ORDER BY time"
            ).fetchall()
            assert [row[0] for row in stored] == rounded.tolist()
        # each type as text, the way drivers read it back (sub-second and pre-1970 times, NULLs, small floats)
        typed = con.execute(
            "SELECT TIMESTAMP '1960-01-01 00:00:00.000001' AS a, TIMESTAMP '2026-03-01 00:00:00.5' AS b, "
            "NULL::DOUBLE AS c, true AS d, 1e-7::DOUBLE AS e, '한글' AS f, 2::BIGINT ^ 40 AS g, DATE '2026-03-02' AS h "
            "UNION ALL SELECT NULL, TIMESTAMP '2026-03-01', 0.1::DOUBLE + 0.2::DOUBLE, NULL, -0.0, NULL, NULL, NULL"
        ).fetchall()
        assert typed == [
            (
                datetime(1960, 1, 1, 0, 0, 0, 1),
                datetime(2026, 3, 1, 0, 0, 0, 500_000),
                None,
                True,
                1e-7,
                "한글",
                2.0**40,
                datetime(2026, 3, 2).date(),
            ),
            (None, datetime(2026, 3, 1), 0.1 + 0.2, None, -0.0, None, None, None),
        ]


def test_a_tag_day_query_reads_only_that_days_file(sql: tuple[Platform, int]) -> None:
    """The other days' files are overwritten with garbage: a query of one day (plain, or as Grafana sends it)
    still answers, so it never opened them; a query that needs them fails without naming a path."""
    platform, port = sql
    root = platform.settings.data_dir / "historian" / "acme"
    for day in ("2026-03-01", "2026-03-03"):
        for f in (root / f"day={day}").glob("*.parquet"):
            f.write_bytes(b"not parquet" * 10)
    with connect(port) as con:
        grafana = (
            'SELECT floor(extract(epoch from time)/60)*60 AS "time", avg(value) AS "value" FROM points '
            "WHERE time BETWEEN '2026-03-02T00:00:00Z' AND '2026-03-02T23:59:59.999Z' AND tag = 'cdu/flow' "
            "GROUP BY 1 ORDER BY 1"
        )
        rows = con.execute(grafana).fetchall()
        assert len(rows) == 1440 and rows[0] == (DAY0.timestamp() + 86_400, 10_000.0)
        with pytest.raises(psycopg.Error) as err:
            con.execute("SELECT count(*) FROM points WHERE time < '2026-03-02'").fetchall()
        assert "could not read" in str(err.value) and str(root) not in str(err.value)
        assert con.execute("SELECT 1").fetchall() == [(1,)]  # the session goes on


def test_grafana_query_shapes(sql: tuple[Platform, int]) -> None:
    """What Grafana's PostgreSQL data source sends, its macros written out: the health check, a time series with
    $__timeGroupAlias/$__timeFilter, a table of latest values, and a variable query over tags."""
    platform, port = sql
    with connect(port) as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]
        series = con.execute(
            'SELECT floor(extract(epoch from time)/3600)*3600 AS "time", tag AS metric, max(value) AS value '
            "FROM points WHERE time BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-01T23:59:59Z' "
            "AND tag IN ('cdu/flow', 'cdu/temp') GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        assert len(series) == 48 and series[0] == (DAY0.timestamp(), "cdu/flow", 59.0)
        want = platform.historian.downsample(
            "acme", ["cdu/flow", "cdu/temp"], DAY0, DAY0 + timedelta(days=1), "1h", "max"
        )
        assert sorted(v for _, _, v in series) == sorted(want.column("max").to_pylist())
        variables = con.execute("SELECT tag AS __text, tag AS __value FROM tags ORDER BY 1").fetchall()
        assert [v[0] for v in variables] == ["cdu/flow", "cdu/temp"]
        table = con.execute("SELECT tag, time, value FROM latest WHERE tag LIKE 'cdu/%' ORDER BY tag").fetchall()
        assert table[0][0] == "cdu/flow" and table[0][1] == datetime(2026, 3, 3, 23, 59)
        # $__timeGroup with a time_bucket spelling and $__timeFrom()/$__timeTo() as timestamps
        rows = con.execute(
            "SELECT time_bucket(INTERVAL '15 minutes', time) AS time, avg(value) FROM points "
            "WHERE time >= '2026-03-03T00:00:00Z'::timestamp AND time < '2026-03-03T01:00:00Z' "
            "AND tag = 'cdu/flow' GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert [r[1] for r in rows] == [20_007.0, 20_022.0, 20_037.0, 20_052.0]


DOWNSAMPLING = [  # Grafana's time groups, written out, in the shapes the historian's summaries answer
    "SELECT time_bucket(INTERVAL '1 minute', time) AS t, avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01T00:00:00Z' AND time < '2026-03-02T00:00:00Z' GROUP BY 1 ORDER BY 1",
    'SELECT floor(extract(epoch from time)/3600)*3600 AS "time", tag AS metric, max(value) AS value, '
    "count(*) AS n FROM points WHERE time BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-02T05:59:59Z' "
    "AND tag IN ('cdu/flow', 'cdu/temp') GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT tag, time_bucket(INTERVAL '15 minutes', time) AS b, min(value), sum(value), count(value) FROM points "
    "WHERE (tag IN ('cdu/temp', 'cdu/flow')) AND time > '2026-03-02 06:00:00' AND time <= '2026-03-03T00:00:00+00:00' "
    "GROUP BY tag, b ORDER BY b DESC, tag",
    "SELECT time_bucket(INTERVAL '1 day', p.time), avg(p.value) FROM points p WHERE p.tag = 'cdu/flow' "
    "AND p.time >= '2026-02-27T00:00:00Z'::timestamp AND p.time < TIMESTAMP '2026-03-05 00:00:00' GROUP BY 1",
]
NOT_DOWNSAMPLING = [  # anything else is DuckDB's: a value filter, HAVING, LIMIT, a join, an open range, an offset
    "SELECT time_bucket(INTERVAL '1 minute', time), avg(value) FROM points WHERE tag = 'cdu/flow' AND value > 5 "
    "AND time >= '2026-03-01' AND time < '2026-03-02' GROUP BY 1",
    "SELECT time_bucket(INTERVAL '1 hour', time), avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01' AND time < '2026-03-02' GROUP BY 1 HAVING avg(value) > 100",
    "SELECT time_bucket(INTERVAL '1 hour', time), avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01' AND time < '2026-03-02' GROUP BY 1 ORDER BY 1 LIMIT 3",
    "SELECT time_bucket(INTERVAL '1 hour', time), avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01' GROUP BY 1",
    "SELECT time_bucket(INTERVAL '1 hour', time), avg(value) FROM points WHERE tag IN ('cdu/flow', 'cdu/temp') "
    "AND time >= '2026-03-01' AND time < '2026-03-02' GROUP BY 1",  # one row a bucket over two tags
    "SELECT time_bucket(INTERVAL '7 days', time), avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01' AND time < '2026-03-09' GROUP BY 1",  # weeks start on 2000-01-03, not at the epoch
    "SELECT time_bucket(INTERVAL '1 hour', time), avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01T00:00:00+09:00' AND time < '2026-03-02' GROUP BY 1",
    "SELECT time_bucket(INTERVAL '1 hour', p.time), avg(p.value) FROM points p JOIN tags t ON p.tag = t.tag "
    "WHERE p.tag = 'cdu/flow' AND p.time >= '2026-03-01' AND p.time < '2026-03-02' GROUP BY 1",
    # a stranger's finds: an offset or origin moves the buckets; GROUP BY a name binds to the column before the
    # alias (one row per point), ORDER BY to the alias first (here an aggregate); times DuckDB does not read
    "SELECT time_bucket(INTERVAL '1 hour', time, INTERVAL '30 minutes') AS t, count(*) FROM points "
    "WHERE tag = 'cdu/flow' AND time >= '2026-03-01' AND time < '2026-03-02' GROUP BY 1 ORDER BY 1",
    "SELECT time_bucket(INTERVAL '1 hour', time, TIMESTAMP '2000-01-01 00:15:00') AS t, count(*) FROM points "
    "WHERE tag = 'cdu/flow' AND time >= '2026-03-01' AND time < '2026-03-02' GROUP BY 1 ORDER BY 1",
    "SELECT time_bucket(INTERVAL '1 hour', time) AS time, sum(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01' AND time < '2026-03-02' GROUP BY time ORDER BY time",
    "SELECT time_bucket(INTERVAL '1 hour', time) AS t, avg(value) AS tag FROM points WHERE time >= '2026-03-01' "
    "AND time < '2026-03-02' AND tag IN ('cdu/flow', 'cdu/temp') GROUP BY 1, tag ORDER BY 1, tag",
    "SELECT time_bucket(INTERVAL '1 hour', time), avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '20260301' AND time < '2026-03-02' GROUP BY 1",
    "SELECT time_bucket(INTERVAL '1 hour', time), avg(value) FROM points WHERE tag = 'cdu/flow' "
    "AND time >= '2026-03-01 ' AND time < '2026-03-02' GROUP BY 1",
]


def test_dashboard_downsampling_is_answered_from_the_historian_as_duckdb_answers_it(
    sql: tuple[Platform, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time-group queries Grafana sends come from the historian's downsample (its summaries, as over HTTP),
    with the very rows, column names and types DuckDB's own run of the query gives; every other shape is
    DuckDB's. Also with points still buffered (a later write of one point), and for a tag that does not exist."""
    from taehwa.sqlport import shortcut

    platform, port = sql
    for text in DOWNSAMPLING:
        assert shortcut.recognise(text) is not None, text
    for text in NOT_DOWNSAMPLING:
        assert shortcut.recognise(text) is None, text
    missing = DOWNSAMPLING[0].replace("cdu/flow", "cdu/none")
    sparse = (  # 63 million one-second buckets: over max_query_points for the historian, a few thousand rows here
        "SELECT time_bucket(INTERVAL '1 second', time) AS t, sum(value) FROM points WHERE tag = 'cdu/flow' "
        "AND time >= '2026-01-01' AND time < '2028-01-01' GROUP BY 1 ORDER BY 1"
    )
    assert shortcut.recognise(sparse) is not None
    platform.historian.write("acme", [("cdu/flow", "2026-03-02T07:00:30Z", -5.0)])  # buffered, not yet in a file

    def answers() -> list[tuple[list[str], list[str], list[tuple[object, ...]]]]:
        out = []
        with connect(port) as con:
            for text in [*DOWNSAMPLING, missing, sparse]:
                cur = con.execute(text)
                assert cur.description is not None
                names = [d.name for d in cur.description]
                types = [str(d.type_code) for d in cur.description]
                out.append((names, types, cur.fetchall()))
        return out

    made: list[bool] = []
    answer = shortcut.answer

    def counted(*args: Any) -> Any:
        got = answer(*args)
        made.append(got is not None)
        return got

    monkeypatch.setattr(shortcut, "answer", counted)
    fast = answers()
    assert made == [True] * len(DOWNSAMPLING)  # each answered from the historian (the missing tag: by DuckDB)
    calls: list[str] = []
    real = shortcut.recognise

    def declined(text: str) -> None:
        calls.append(text)

    monkeypatch.setattr(shortcut, "recognise", declined)
    slow = answers()
    monkeypatch.setattr(shortcut, "recognise", real)
    assert len(calls) == len(DOWNSAMPLING) + 2  # the second run was DuckDB's alone
    for text, (names, types, rows), (names2, types2, rows2) in zip(
        [*DOWNSAMPLING, missing, sparse], fast, slow, strict=True
    ):
        assert (names, types) == (names2, types2), text
        if "ORDER BY" not in text:
            rows, rows2 = sorted(rows), sorted(rows2)
        assert len(rows) == len(rows2), text
        for a, b in zip(rows, rows2, strict=True):  # sums and means as the summaries add them: the last bits
            assert [x if isinstance(x, str | datetime) else pytest.approx(x, rel=1e-12) for x in a] == list(b), text
    assert fast[0][2] and not fast[-2][2] and len(fast[-1][2]) == 3 * 1440 + 1  # none for a tag that does not exist


def test_historian_functions_in_sql(sql: tuple[Platform, int]) -> None:
    platform, port = sql
    hist = platform.historian
    start, end = DAY0, DAY0 + timedelta(days=2)
    with connect(port) as con:
        got = con.execute(
            "SELECT tag, time, value FROM downsample('cdu/flow,cdu/temp', '2026-03-01', "
            "'2026-03-03', '6h', agg := 'twa') ORDER BY tag, time"
        ).fetchall()
        want = hist.downsample("acme", ["cdu/flow", "cdu/temp"], start, end, "6h", "twa")
        assert [r[2] for r in got] == pytest.approx(want.column("twa").to_pylist())
        assert got[0][:2] == ("cdu/flow", datetime(2026, 3, 1))
        got = con.execute(
            "SELECT value, quality FROM interpolate('cdu/temp', TIMESTAMP '2026-03-01 00:05:00', "
            "TIMESTAMP '2026-03-01 01:05:00', '10m', method := 'linear')"
        ).fetchall()
        want = hist.interpolate(
            "acme", "cdu/temp", DAY0 + timedelta(minutes=5), DAY0 + timedelta(minutes=65), "10m", "linear"
        )
        assert [r[0] for r in got] == want.column("value").to_pylist() == [0.5 + i for i in range(7)]
        with pytest.raises(psycopg.Error, match="unknown aggregate"):
            con.execute("SELECT * FROM downsample('cdu/flow', '2026-03-01', '2026-03-02', '1h', agg := 'median')")
        with pytest.raises(psycopg.Error, match=r"unknown tag|not found|no tag"):
            con.execute("SELECT * FROM downsample('secret/flow', '2026-03-01', '2026-03-02', '1h')")


HOSTILE = [
    ("SELECT * FROM read_parquet('{rival}/*/*.parquet')", "disabled by configuration"),
    ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
    ("SELECT * FROM glob('/*')", "disabled by configuration"),
    ("COPY points TO '/tmp/taehwa-stolen.csv'", "read-only"),
    ("COPY (SELECT 1) TO '/tmp/taehwa-stolen.csv'", "read-only"),
    ("ATTACH '/tmp/taehwa-other.db' AS other", "read-only"),
    ("INSTALL httpfs", "read-only"),
    ("LOAD httpfs", "read-only"),
    ("SET enable_external_access = true", "cannot be changed"),
    ("SET threads TO 64", "cannot be changed"),
    ("RESET lock_configuration", "read-only"),
    ("PRAGMA enable_profiling", "read-only"),
    ("INSERT INTO points VALUES ('x', now(), 1, 0)", "read-only"),
    ("CREATE TABLE loot AS SELECT * FROM points", "read-only"),
    ("DROP VIEW points", "read-only"),
    ("CREATE MACRO evil() AS 1", "read-only"),
    ("SELECT 1; DELETE FROM points", "read-only"),
    ("SELECT * FROM platform", "does not exist"),
    # nested 300 deep: DuckDB answers it (its limit is 1,000); the downsampling shortcut's parser would recurse
    # past Python's limit, so it leaves the query to DuckDB rather than fail the session
    ("SELECT " + "(" * 300 + "value" + ")" * 300 + " FROM points WHERE tag = 'none'", None),
    ("SELECT * FROM hist", "does not exist"),
    ("SELECT * FROM duckdb_settings() WHERE name = 'enable_external_access' AND value = 'true'", None),
]


def test_hostile_sql_is_refused_and_the_session_goes_on(sql: tuple[Platform, int]) -> None:
    platform, port = sql
    hist = platform.historian  # noqa: F841 - a name a Python replacement scan would find
    rival = platform.settings.data_dir / "historian" / "rival"
    assert list(rival.glob("*/*.parquet"))
    with connect(port) as con:
        for text, problem in HOSTILE:
            query = text.format(rival=rival)
            if problem is None:
                assert con.execute(query).fetchall() == []
                continue
            with pytest.raises(psycopg.Error) as err:
                con.execute(query).fetchall()
            assert problem in str(err.value), (query, str(err.value))
        assert not Path("/tmp/taehwa-stolen.csv").exists() and not Path("/tmp/taehwa-other.db").exists()
        assert con.execute("SELECT count(*) FROM points WHERE tag = 'secret/flow'").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM points").fetchone() == (3 * 1584,)
        con.execute("SET application_name = 'dbeaver'")  # what drivers send on connecting: accepted, no effect


def test_sign_in_tenants_and_roles(sql: tuple[Platform, int]) -> None:
    platform, port = sql
    ident = platform.identity
    ident.create_user("kim", password="correct horse battery")
    ident.set_role("kim", "acme", "viewer")
    ident.create_user("lee", password="another long password")
    token, info = ident.create_token("kim", "grafana", scopes=["read"])
    with connect(port, user="kim", password="correct horse battery") as con:
        assert con.execute("SELECT count(*) FROM tags").fetchone() == (2,)
    with connect(port, password=token) as con:
        assert con.execute("SELECT count(*) FROM latest").fetchone() == (2,)
        with acting_as(SYSTEM):
            ident.revoke_token(info.id)
        with pytest.raises(psycopg.Error, match="revoked"):
            con.execute("SELECT 1")
    refused = [
        dict(tenant="rival", user="kim", password="correct horse battery"),  # no role in rival
        dict(user="lee", password="another long password"),  # no role in acme
        dict(user="kim", password="wrong password"),
        dict(password=token),  # revoked
        dict(tenant="../etc", password=TOKEN),
        dict(tenant="nosuch", password=TOKEN),
    ]
    for kwargs in refused:
        with pytest.raises(psycopg.OperationalError):
            connect(port, **kwargs).close()


def test_every_query_is_audited(sql: tuple[Platform, int]) -> None:
    platform, port = sql
    with connect(port) as con:
        con.execute("SELECT count(*) FROM points WHERE tag = 'cdu/temp'").fetchall()
        with pytest.raises(psycopg.Error):
            con.execute("COPY points TO '/tmp/x.csv'")
    with acting_as(SYSTEM):
        entries = [e for e in platform.audit.entries("acme", limit=20) if e["action"].startswith("sql.")]
    actions = [(e["action"], e["target"]) for e in reversed(entries)]
    assert actions[0] == ("sql.connect", "admin")
    assert ("sql.query", "SELECT count(*) FROM points WHERE tag = 'cdu/temp'") in actions
    refused = next(e for e in entries if e["target"] == "COPY points TO '/tmp/x.csv'")
    assert "read-only" in refused["after"]["error"] and refused["after"]["via"] == "sql"


def test_queries_are_refused_while_their_audit_entries_cannot_be_written(
    sql: tuple[Platform, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entries of queries are written a moment later, in batches; when that fails, no further query runs,
    and the entries waiting are kept and written once the log works again (none is lost)."""
    platform, port = sql
    audit = platform.audit
    written = audit._write

    def broken(entries: list[dict[str, object]]) -> list[tuple[int, str]]:
        raise OSError("database or disk is full")

    with connect(port) as con:
        monkeypatch.setattr(audit, "_write", broken)
        con.execute("SELECT 1 AS kept_1").fetchall()
        with pytest.raises(OSError):
            audit.flush_deferred()
        with pytest.raises(psycopg.Error, match="audit log cannot record queries"):
            con.execute("SELECT 2 AS refused_2").fetchall()
        monkeypatch.setattr(audit, "_write", written)
        audit.flush_deferred()
        assert con.execute("SELECT 3 AS answered_3").fetchall() == [(3,)]
    with acting_as(SYSTEM):
        targets = [e["target"] for e in reversed(audit.entries("acme", limit=20)) if e["action"] == "sql.query"]
        assert audit.verify().ok
    assert targets[-2:] == ["SELECT 1 AS kept_1", "SELECT 3 AS answered_3"]  # the refused one never ran


def test_psql(sql: tuple[Platform, int]) -> None:
    """Debian's psql client, when installed."""
    _, port = sql
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed (apt-get install postgresql-client)")
    env = {**os.environ, "PGPASSWORD": TOKEN, "PGCONNECT_TIMEOUT": "10"}
    run = subprocess.run(
        [
            psql,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "grafana",
            "-d",
            "acme",
            "-At",
            "-c",
            "SELECT tag, count(*) FROM points GROUP BY tag ORDER BY tag",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["cdu/flow|4320", "cdu/temp|432"]
    run = subprocess.run(
        [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "grafana", "-d", "acme", "-At", "-c", "DROP VIEW points"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode != 0 and "read-only" in run.stderr


def test_tls_when_the_server_has_a_certificate(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    from taehwa.core.settings import Settings

    platform = Platform(
        Settings(data_dir=tmp_path / "data", api_token=TOKEN, tls_cert=cert, tls_key=key), background=False
    )
    try:
        platform.tenants.create("acme")
        port = platform.sql_port()
        number = port.start("127.0.0.1", 0)
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=number,
                dbname="acme",
                user="x",
                password=TOKEN,
                sslmode="require",
                autocommit=True,
            ) as con:
                assert con.pgconn.ssl_in_use
                assert con.execute("SELECT count(*) FROM tags").fetchone() == (0,)
        finally:
            port.close()
    finally:
        platform.close()
