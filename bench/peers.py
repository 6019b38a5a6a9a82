"""Taehwa's historian against the stores a user would pick instead, on the same data, in one run.

    python bench/peers.py            # a few minutes on two cores: 200 tags × a day at 10 s, one tag × 30 days at 1 Hz
    python bench/peers.py --full     # the issue's sizes: 1,000 tags × a day at 10 s, one tag × 365 days at 1 Hz

Peers, each through its fastest documented bulk path, on loopback or in-process: plain DuckDB (Arrow insert into
a database file), chDB (ClickHouse's engine, MergeTree ordered by tag and time, insert from Arrow), PostgreSQL
(Debian's server, started here, COPY then an index on (tag, time)), InfluxDB 1.x (Debian's, started here, line
protocol over HTTP; data+WAL bytes counted right after the load), VictoriaMetrics (Debian's, started here, its CSV
import API, then a forced flush). A peer that is not installed is skipped and
said so. Every answer of every store is checked against NumPy on the generated data before any time counts.
Shapes: bulk ingest (many tags; one long history) until queryable, the last value of every tag, one tag-day to
1-minute averages, 100 tags × a day to hourly maxima, the long history to daily averages, and bytes per point on
disk. Taehwa is also timed over HTTP, over its SQL port (psycopg) and over Arrow Flight for the tag-day query and
a bulk read.

Prints a table, then as its last line {"bench": "peers", "figures": {...}, "ratios": {...}}.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from taehwa.core.settings import Settings
from taehwa.server.platform import Platform

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "bench-token-0123456789"
ROUNDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_ms(fn: Callable[[], Any], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


# -- the data and its answers --------------------------------------------------------------------------------------
class Workload:
    """The generated data and the answers NumPy gives on it."""

    def __init__(self, n_tags: int, long_days: int) -> None:
        rng = np.random.default_rng(7)
        self.n_tags, self.long_days = n_tags, long_days
        self.tags = [f"plant/area{i // 100:02d}/eq{i:04d}/value" for i in range(n_tags)]
        steps = 8640  # a day at 10 s
        t0 = np.datetime64(DAY0.replace(tzinfo=None), "us")
        times = t0 + (np.arange(steps) * 10_000_000).astype("timedelta64[us]")
        self.many_values = rng.normal(50, 5, (n_tags, steps)).round(3)
        # as a plant export: every tag at each instant
        self.many = pa.table(
            {
                "tag": np.tile(np.array(self.tags), steps),
                "time": pa.array(np.repeat(times, n_tags)),
                "value": self.many_values.T.reshape(-1),
            }
        )
        n = long_days * 86_400
        self.long_tag = "plant/long/flow"
        self.long_values = (np.sin(np.arange(n) / 3600.0) * 10 + 50 + rng.normal(0, 0.1, n)).round(3)
        self.long = pa.table(
            {
                "tag": pa.array([self.long_tag] * n),
                "time": pa.array(t0 + (np.arange(n) * 1_000_000).astype("timedelta64[us]")),
                "value": self.long_values,
            }
        )
        self.day_tag = self.tags[min(3, n_tags - 1)]
        self.hour_tags = self.tags[:100]
        # the answers
        self.last = {t: float(self.many_values[i, -1]) for i, t in enumerate(self.tags)}
        self.minute_avg = self.many_values[self.tags.index(self.day_tag)].reshape(1440, 6).mean(axis=1)
        self.hourly_max = self.many_values[: len(self.hour_tags)].reshape(len(self.hour_tags), 24, 360).max(axis=2)
        self.daily_avg = self.long_values.reshape(long_days, 86_400).mean(axis=1)
        self.points = self.many.num_rows + self.long.num_rows

    def check(
        self,
        store: str,
        last: dict[str, float],
        minute: list[float],
        hourly: dict[str, list[float]],
        daily: list[float],
    ) -> None:
        """Refuse to time a store whose answers differ from NumPy's."""
        problems = []
        if set(last) != set(self.last) or not np.allclose(
            [last[t] for t in self.tags], [self.last[t] for t in self.tags]
        ):
            problems.append("last values")
        if not np.allclose(minute, self.minute_avg, rtol=1e-9, atol=1e-9):
            problems.append("1-minute averages")
        if set(hourly) != set(self.hour_tags) or not np.allclose(
            [hourly[t] for t in self.hour_tags], self.hourly_max, rtol=1e-9, atol=1e-9
        ):
            problems.append("hourly maxima")
        if not np.allclose(daily, self.daily_avg, rtol=1e-9, atol=1e-9):
            problems.append("daily averages")
        if problems:
            raise SystemExit(f"{store}: wrong answers ({', '.join(problems)}); nothing is timed")


def by_tag(rows: list[tuple[str, Any, float]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for tag, _, v in sorted(rows, key=lambda r: (r[0], r[1])):
        out.setdefault(tag, []).append(float(v))
    return out


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- Taehwa ---------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def run_taehwa(work: Path, w: Workload, figures: dict[str, dict[str, float]]) -> None:
    from taehwa.api.app import create_app

    settings = Settings(data_dir=work / "taehwa", api_token=TOKEN)
    platform = Platform(settings, background=False)
    hist = platform.historian
    try:
        platform.tenants.create("bench")
        t = time.perf_counter()
        hist.write("bench", w.many)
        hist.flush()
        ingest_many = w.many.num_rows / (time.perf_counter() - t)
        t = time.perf_counter()
        hist.write("bench", w.long)
        hist.flush()
        ingest_long = w.long.num_rows / (time.perf_counter() - t)
        t = time.perf_counter()  # what the background maintenance does once a day is quiet: one file per day,
        hist.compact(force=True)  # and its minute and hour summaries
        hist.warm_summaries(budget=1_000_000, force=True)
        compact_s = time.perf_counter() - t
        day_end = DAY0 + timedelta(days=1)
        long_end = DAY0 + timedelta(days=w.long_days)

        def last() -> dict[str, float]:
            table = hist.latest("bench", w.tags)
            return dict(zip(table.column("tag").to_pylist(), table.column("value").to_pylist(), strict=True))

        def minute() -> list[float]:
            return list(hist.downsample("bench", w.day_tag, DAY0, day_end, "1m", "avg").column("avg").to_pylist())

        def hourly() -> dict[str, list[float]]:
            t = hist.downsample("bench", w.hour_tags, DAY0, day_end, "1h", "max")
            return by_tag(  # times as integers, for the order alone (UTC datetimes cost 5× the query here)
                list(
                    zip(
                        t.column("tag").to_pylist(),
                        t.column("time").cast(pa.int64()).to_pylist(),
                        t.column("max").to_pylist(),
                        strict=True,
                    )
                )
            )

        def daily() -> list[float]:
            return list(hist.downsample("bench", w.long_tag, DAY0, long_end, "1d", "avg").column("avg").to_pylist())

        w.check("taehwa", last(), minute(), hourly(), daily())
        stats = hist.stats("bench")
        figures["taehwa"] = {
            "ingest_many_pts_s": ingest_many,
            "ingest_long_pts_s": ingest_long,
            "last_ms": median_ms(last),
            "tag_day_1m_ms": median_ms(minute, 7),
            "hourly_max_ms": median_ms(hourly),
            "long_daily_ms": median_ms(daily),
            "bytes_per_point": stats["bytes"] / w.points,
            "compact_after_ingest_s": compact_s,
        }
        # the same tag-day query over HTTP, the SQL port and the bulk read over Flight
        params = {
            "tags": w.day_tag,
            "start": DAY0.isoformat(),
            "end": day_end.isoformat(),
            "every": "1m",
            "agg": "avg",
            "format": "arrow",
        }
        with (
            uvicorn_serving(create_app(platform)) as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        ):

            def over_http() -> list[float]:
                r = http.get("/api/v1/bench/points", params=params)
                r.raise_for_status()
                return list(pa.ipc.open_stream(r.content).read_all().column("avg").to_pylist())

            assert np.allclose(over_http(), w.minute_avg)
            figures["taehwa"]["tag_day_1m_http_ms"] = median_ms(over_http, 7)
        sql = platform.sql_port()
        port = sql.start("127.0.0.1", 0)
        try:
            import psycopg

            with psycopg.connect(
                host="127.0.0.1", port=port, dbname="bench", user="bench", password=TOKEN, autocommit=True
            ) as con:
                query = (
                    "SELECT time_bucket(INTERVAL '1 minute', time) AS t, avg(value) FROM points "
                    f"WHERE tag = '{w.day_tag}' AND time >= '{DAY0.isoformat()}' "
                    f"AND time < '{day_end.isoformat()}' GROUP BY 1 ORDER BY 1"
                )

                def over_sql() -> list[float]:
                    return [float(r[1]) for r in con.execute(query).fetchall()]

                assert np.allclose(over_sql(), w.minute_avg)
                figures["taehwa"]["tag_day_1m_sql_ms"] = median_ms(over_sql, 7)
        finally:
            sql.close()
        flight = platform.flight("127.0.0.1", 0)
        fport = flight.start()
        try:
            import pyarrow.flight as fl

            client = fl.FlightClient(f"grpc://127.0.0.1:{fport}")
            options = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
            ticket = fl.Ticket(
                orjson.dumps(
                    {
                        "tenant": "bench",
                        "tags": [*w.tags, w.long_tag],
                        "start": DAY0.isoformat(),
                        "end": day_end.isoformat(),
                    }
                )
            )
            files = [  # the day's current file (a compacted day's old files stay on disk a while: not read)
                str(settings.data_dir / "historian" / "bench" / f.path)
                for f in hist.state.manifest("bench").files
                if f.day == DAY0.date().isoformat()
            ]
            assert client.do_get(ticket, options=options).read_all().num_rows == w.many.num_rows + 86_400
            figures["taehwa"]["flight_day_ms"] = median_ms(lambda: client.do_get(ticket, options=options).read_all())
            figures["taehwa"]["local_parquet_day_ms"] = median_ms(
                lambda: pq.read_table(files, columns=["tag", "time", "value", "quality"])
            )
            client.close()
        finally:
            flight.close()
    finally:
        platform.close()


# -- plain DuckDB --------------------------------------------------------------------------------------------------
def run_duckdb(work: Path, w: Workload, figures: dict[str, dict[str, float]]) -> None:
    path = work / "duck.db"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE points (tag VARCHAR, time TIMESTAMP, value DOUBLE)")
    many, long = w.many, w.long  # scanned by name
    t = time.perf_counter()
    con.execute("INSERT INTO points SELECT * FROM many")
    con.execute("CHECKPOINT")
    ingest_many = many.num_rows / (time.perf_counter() - t)
    t = time.perf_counter()
    con.execute("INSERT INTO points SELECT * FROM long")
    con.execute("CHECKPOINT")
    ingest_long = long.num_rows / (time.perf_counter() - t)
    figures["duckdb"] = {"ingest_many_pts_s": ingest_many, "ingest_long_pts_s": ingest_long}
    _sql_shapes(
        "duckdb",
        lambda q: con.execute(q).fetchall(),
        w,
        figures,
        "time_bucket(INTERVAL '{every}', time)",
        "TIMESTAMP '{t}'",
    )
    con.close()
    figures["duckdb"]["bytes_per_point"] = path.stat().st_size / w.points


def _sql_shapes(
    name: str,
    run: Callable[[str], list[Any]],
    w: Workload,
    figures: dict[str, dict[str, float]],
    bucket: str,
    ts: str,
    every: dict[str, str] | None = None,
) -> None:
    """The four query shapes in SQL (DuckDB, ClickHouse and PostgreSQL spell buckets and times their own way)."""
    every = every or {"1m": "1 minute", "1h": "1 hour", "1d": "1 day"}
    day_end, long_end = DAY0 + timedelta(days=1), DAY0 + timedelta(days=w.long_days)

    def t(x: datetime) -> str:
        return ts.format(t=x.strftime("%Y-%m-%d %H:%M:%S"))

    tag_list = ", ".join(f"'{x}'" for x in w.hour_tags)
    queries = {
        "last": "SELECT tag, arg_max(value, time) FROM points WHERE tag LIKE 'plant/area%' GROUP BY tag",
        "minute": f"SELECT {bucket.format(every=every['1m'])} AS b, avg(value) FROM points WHERE tag = "
        f"'{w.day_tag}' AND time >= {t(DAY0)} AND time < {t(day_end)} GROUP BY b ORDER BY b",
        "hourly": f"SELECT tag, {bucket.format(every=every['1h'])} AS b, max(value) FROM points WHERE tag IN "
        f"({tag_list}) AND time >= {t(DAY0)} AND time < {t(day_end)} GROUP BY tag, b ORDER BY tag, b",
        "daily": f"SELECT {bucket.format(every=every['1d'])} AS b, avg(value) FROM points WHERE tag = "
        f"'{w.long_tag}' AND time >= {t(DAY0)} AND time < {t(long_end)} GROUP BY b ORDER BY b",
    }
    if name == "postgresql":
        queries["last"] = (
            "SELECT DISTINCT ON (tag) tag, value FROM points WHERE tag LIKE 'plant/area%' ORDER BY tag, time DESC"
        )
    if name == "chdb":
        queries["last"] = "SELECT tag, argMax(value, time) FROM points WHERE tag LIKE 'plant/area%' GROUP BY tag"
    last = {r[0]: float(r[1]) for r in run(queries["last"])}
    minute = [float(r[1]) for r in run(queries["minute"])]
    hourly = by_tag([(r[0], r[1], r[2]) for r in run(queries["hourly"])])
    daily = [float(r[1]) for r in run(queries["daily"])]
    w.check(name, last, minute, hourly, daily)
    for key, shape in (
        ("last_ms", "last"),
        ("tag_day_1m_ms", "minute"),
        ("hourly_max_ms", "hourly"),
        ("long_daily_ms", "daily"),
    ):
        figures[name][key] = median_ms(lambda q=queries[shape]: run(q))  # type: ignore[misc]


# -- chDB ----------------------------------------------------------------------------------------------------------
def run_chdb(work: Path, w: Workload, figures: dict[str, dict[str, float]]) -> None:
    try:
        from chdb import session as chs
    except ImportError:
        print("chdb: not installed (pip install chdb==4.4.0); skipped")
        return
    path = work / "chdb"
    chdb_session: Any = chs  # chdb ships no type hints
    sess = chdb_session.Session(str(path))
    sess.query("CREATE DATABASE IF NOT EXISTS b")
    sess.query(
        "CREATE TABLE b.points (tag LowCardinality(String), time DateTime64(6, 'UTC'), value Float64) "
        "ENGINE = MergeTree ORDER BY (tag, time)"
    )

    def load(table: pa.Table) -> float:
        src = work / "chdb-in.parquet"  # the documented bulk path from Python: a Parquet file, read by the server
        t = time.perf_counter()
        pq.write_table(table, src, compression="none")
        sess.query(f"INSERT INTO b.points SELECT tag, time, value FROM file('{src}', Parquet)")
        sess.query("OPTIMIZE TABLE b.points FINAL")
        rate = float(table.num_rows / (time.perf_counter() - t))
        src.unlink()
        return rate

    figures["chdb"] = {"ingest_many_pts_s": load(w.many), "ingest_long_pts_s": load(w.long)}

    def run(q: str) -> list[Any]:
        text = sess.query(q.replace("FROM points", "FROM b.points"), "JSONCompact").bytes()
        rows: list[Any] = json.loads(text)["data"] if text else []
        return rows

    _sql_shapes(
        "chdb",
        run,
        w,
        figures,
        "toStartOfInterval(time, INTERVAL {every})",
        "toDateTime64('{t}', 6, 'UTC')",
        {"1m": "1 minute", "1h": "1 hour", "1d": "1 day"},
    )
    size = run("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'b' AND table = 'points' AND active")
    figures["chdb"]["bytes_per_point"] = float(size[0][0]) / w.points
    sess.close()


# -- PostgreSQL ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def postgres(work: Path) -> Iterator[str | None]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        yield None
        return
    bin_dir = Path(found[-1]).parent
    root = work / "pg"
    root.mkdir()
    work.chmod(0o711)  # the postgres user passes through to its own folder
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(tool: str, *args: str) -> None:
        subprocess.run([*as_user, str(bin_dir / tool), *args], check=True, capture_output=True, cwd=root)

    run("initdb", "-D", str(root / "data"), "-U", "bench", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(
        "pg_ctl",
        "-D",
        str(root / "data"),
        "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 "
        f"-c unix_socket_directories={root} -c fsync=off -c synchronous_commit=off -c max_wal_size=4GB "
        "-c shared_buffers=512MB -c work_mem=256MB -c maintenance_work_mem=512MB",
        "-l",
        str(root / "log"),
        "-w",
        "start",
    )
    try:
        yield f"host=127.0.0.1 port={port} user=bench dbname=postgres"
    finally:
        run("pg_ctl", "-D", str(root / "data"), "-m", "immediate", "stop")


def run_postgres(work: Path, w: Workload, figures: dict[str, dict[str, float]]) -> None:
    import psycopg

    with postgres(work) as dsn:
        if dsn is None:
            print("postgresql: not installed (apt-get install postgresql); skipped")
            return
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute("CREATE TABLE points (tag text NOT NULL, time timestamp NOT NULL, value float8 NOT NULL)")

            def load(table: pa.Table, index: bool) -> float:
                t = time.perf_counter()
                buf = io.BytesIO()
                pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
                with con.cursor().copy("COPY points FROM STDIN (FORMAT csv)") as cp:
                    cp.write(buf.getvalue())
                if index:
                    con.execute("CREATE INDEX points_tag_time ON points (tag, time)")
                con.execute("ANALYZE points")
                return float(table.num_rows / (time.perf_counter() - t))

            figures["postgresql"] = {"ingest_many_pts_s": load(w.many, True), "ingest_long_pts_s": load(w.long, False)}
            _sql_shapes(
                "postgresql",
                lambda q: con.execute(q).fetchall(),
                w,
                figures,
                "date_bin(INTERVAL '{every}', time, TIMESTAMP '2000-01-01')",
                "TIMESTAMP '{t}'",
            )
            size = con.execute("SELECT pg_total_relation_size('points')").fetchone()
            figures["postgresql"]["bytes_per_point"] = float(size[0] if size else 0) / w.points


# -- InfluxDB 1.x ----------------------------------------------------------------------------------------------------
def line_protocol(table: pa.Table, chunk: int = 100_000) -> list[bytes]:
    """Points as InfluxDB line protocol (`points,tag=… value=… <seconds>`), in chunks of a POST each."""
    tags = np.asarray(table.column("tag").to_numpy(zero_copy_only=False), dtype=object)
    secs = (table.column("time").cast(pa.int64()).to_numpy() // 1_000_000).astype(str).astype(object)
    values = np.array([repr(float(v)) for v in table.column("value").to_numpy()], dtype=object)
    lines = "points,tag=" + tags + " value=" + values + " " + secs
    return ["\n".join(lines[i : i + chunk]).encode() for i in range(0, len(lines), chunk)]


@contextlib.contextmanager
def influxdb(work: Path) -> Iterator[str | None]:
    binary = shutil.which("influxd")
    if binary is None:
        yield None
        return
    root = work / "influx"
    root.mkdir()
    port, rpc = free_port(), free_port()
    (root / "influx.conf").write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n[meta]\n  dir = "{root}/meta"\n'
        f'[data]\n  dir = "{root}/data"\n  wal-dir = "{root}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n  max-body-size = 0\n'
        "[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
    )
    proc = subprocess.Popen(
        [binary, "-config", str(root / "influx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ping", timeout=1).status_code == 204:
                    break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def run_influxdb(work: Path, w: Workload, figures: dict[str, dict[str, float]]) -> None:
    with influxdb(work) as url, httpx.Client(base_url=url or "http://0", timeout=600) as http:
        if url is None:
            print("influxdb: not installed (apt-get install influxdb); skipped")
            return
        http.post("/query", params={"q": "CREATE DATABASE b"}).raise_for_status()

        def load(table: pa.Table) -> float:
            chunks = line_protocol(table)  # made before the clock starts: the client's own formatting
            t = time.perf_counter()
            for body in chunks:
                http.post("/write", params={"db": "b", "precision": "s"}, content=body).raise_for_status()
            return float(table.num_rows / (time.perf_counter() - t))

        figures["influxdb"] = {"ingest_many_pts_s": load(w.many), "ingest_long_pts_s": load(w.long)}

        def q(text: str) -> list[dict[str, Any]]:
            r = http.get("/query", params={"db": "b", "q": text, "epoch": "s"})
            if r.status_code != 200:
                raise SystemExit(f"influxdb: {r.text[:300]} for {text[:200]}")
            series: list[dict[str, Any]] = r.json()["results"][0].get("series", [])
            return series

        day_end, long_end = DAY0 + timedelta(days=1), DAY0 + timedelta(days=w.long_days)

        def iso(x: datetime) -> str:
            return x.strftime("%Y-%m-%dT%H:%M:%SZ")

        def esc(tag: str) -> str:
            return tag.replace("/", "\\/")

        hour_re = "|".join(esc(t) for t in w.hour_tags)
        texts = {
            "last": 'SELECT last(value) FROM points WHERE "tag" =~ /^plant\\/area/ GROUP BY "tag"',
            "minute": f"SELECT mean(value) FROM points WHERE \"tag\" = '{w.day_tag}' AND time >= '{iso(DAY0)}' "
            f"AND time < '{iso(day_end)}' GROUP BY time(1m)",
            "hourly": f"SELECT max(value) FROM points WHERE \"tag\" =~ /^({hour_re})$/ AND time >= '{iso(DAY0)}' "
            f"AND time < '{iso(day_end)}' GROUP BY time(1h), \"tag\"",
            "daily": f"SELECT mean(value) FROM points WHERE \"tag\" = '{w.long_tag}' AND time >= '{iso(DAY0)}' "
            f"AND time < '{iso(long_end)}' GROUP BY time(1d)",
        }
        last = {s["tags"]["tag"]: float(s["values"][0][1]) for s in q(texts["last"])}
        minute = [float(v[1]) for v in q(texts["minute"])[0]["values"]]
        hourly = {s["tags"]["tag"]: [float(v[1]) for v in s["values"]] for s in q(texts["hourly"])}
        daily = [float(v[1]) for v in q(texts["daily"])[0]["values"]]
        w.check("influxdb", last, minute, hourly, daily)
        for key, shape in (
            ("last_ms", "last"),
            ("tag_day_1m_ms", "minute"),
            ("hourly_max_ms", "hourly"),
            ("long_daily_ms", "daily"),
        ):
            figures["influxdb"][key] = median_ms(lambda t=texts[shape]: q(t))  # type: ignore[misc]
        figures["influxdb"]["bytes_per_point"] = dir_bytes(work / "influx" / "data") / w.points


# -- VictoriaMetrics ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def victoriametrics(work: Path) -> Iterator[str | None]:
    binary = shutil.which("victoria-metrics")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"-storageDataPath={work / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-search.disableCache",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def run_victoriametrics(work: Path, w: Workload, figures: dict[str, dict[str, float]]) -> None:
    with victoriametrics(work) as url, httpx.Client(base_url=url or "http://0", timeout=600) as http:
        if url is None:
            print("victoriametrics: not installed (apt-get install victoria-metrics); skipped")
            return

        def load(table: pa.Table) -> float:
            body = io.BytesIO()  # made before the clock starts: the client's own formatting
            csv = pa.table(
                {"tag": table.column("tag"), "t": table.column("time").cast(pa.int64()), "value": table.column("value")}
            )
            csv = csv.set_column(1, "t", pa.array(csv.column("t").to_numpy() // 1000))  # milliseconds
            pacsv.write_csv(csv, body, pacsv.WriteOptions(include_header=False, quoting_style="none"))
            t = time.perf_counter()
            http.post(
                "/api/v1/import/csv",
                params={"format": "1:label:tag,2:time:unix_ms,3:metric:value"},
                content=body.getvalue(),
            ).raise_for_status()
            http.get("/internal/force_flush").raise_for_status()
            return float(table.num_rows / (time.perf_counter() - t))

        figures["victoriametrics"] = {"ingest_many_pts_s": load(w.many), "ingest_long_pts_s": load(w.long)}

        def q(path: str, **params: Any) -> list[dict[str, Any]]:
            r = http.get(path, params={"nocache": "1", **params})
            if r.status_code != 200:
                raise SystemExit(f"victoriametrics: {r.text[:300]}")
            result: list[dict[str, Any]] = r.json()["data"]["result"]
            return result

        day0 = DAY0.timestamp()
        # a window ends at its evaluation time and leaves its start out, (T - w, T]: evaluated just before each
        # bucket's end, it holds the bucket's points [b, b + w)
        hour_re = "|".join(w.hour_tags)
        shapes: dict[str, Callable[[], list[dict[str, Any]]]] = {
            "last": lambda: q(
                "/api/v1/query", query='last_over_time(value{tag=~"plant/area.*"}[2d])', time=day0 + 86_399.999
            ),
            "minute": lambda: q(
                "/api/v1/query_range",
                query=f'avg_over_time(value{{tag="{w.day_tag}"}}[1m])',
                start=day0 + 59.999,
                end=day0 + 86_399.999,
                step="60s",
            ),
            "hourly": lambda: q(
                "/api/v1/query_range",
                query=f'max_over_time(value{{tag=~"{hour_re}"}}[1h])',
                start=day0 + 3_599.999,
                end=day0 + 86_399.999,
                step="3600s",
            ),
            "daily": lambda: q(
                "/api/v1/query_range",
                query=f'avg_over_time(value{{tag="{w.long_tag}"}}[1d])',
                start=day0 + 86_399.999,
                end=day0 + w.long_days * 86_400 - 0.001,
                step="86400s",
            ),
        }
        last = {r["metric"]["tag"]: float(r["value"][1]) for r in shapes["last"]()}
        minute = [float(v[1]) for v in shapes["minute"]()[0]["values"]]
        hourly = {r["metric"]["tag"]: [float(v[1]) for v in r["values"]] for r in shapes["hourly"]()}
        daily = [float(v[1]) for v in shapes["daily"]()[0]["values"]]
        w.check("victoriametrics", last, minute, hourly, daily)
        for key, shape in (
            ("last_ms", "last"),
            ("tag_day_1m_ms", "minute"),
            ("hourly_max_ms", "hourly"),
            ("long_daily_ms", "daily"),
        ):
            figures["victoriametrics"][key] = median_ms(shapes[shape])
    # on disk once the server has stopped (it keeps recent parts in memory until then)
    figures["victoriametrics"]["bytes_per_point"] = dir_bytes(work / "vm") / w.points


def report(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    """The table, and Taehwa's ratio to the best peer per shape (> 1: Taehwa is better)."""
    shapes = [
        ("ingest_many_pts_s", "bulk ingest, points/s", True),
        ("ingest_long_pts_s", "one long history, ingest points/s", True),
        ("last_ms", "last value of every tag, ms", False),
        ("tag_day_1m_ms", "one tag-day → 1-min averages, ms", False),
        ("hourly_max_ms", "100 tags × a day → hourly max, ms", False),
        ("long_daily_ms", "the long history → daily averages, ms", False),
        ("bytes_per_point", "bytes per point on disk", False),
    ]
    stores = list(figures)
    print(f"{'shape':44}" + "".join(f"{s:>14}" for s in stores))
    ratios: dict[str, float] = {}
    for key, label, higher in shapes:
        row = [figures[s].get(key) for s in stores]
        print(f"{label:44}" + "".join(f"{v:>14,.2f}" if v is not None else f"{'—':>14}" for v in row))
        mine = figures.get("taehwa", {}).get(key)
        peers = [figures[s][key] for s in stores if s != "taehwa" and key in figures[s]]
        if mine and peers:
            best = max(peers) if higher else min(peers)
            ratios[key] = mine / best if higher else best / mine
    tw = figures.get("taehwa", {})
    if "tag_day_1m_http_ms" in tw:
        ratios["http_overhead_ms"] = tw["tag_day_1m_http_ms"] - tw["tag_day_1m_ms"]
        print(
            f"Taehwa tag-day over HTTP {tw['tag_day_1m_http_ms']:.2f} ms "
            f"(+{ratios['http_overhead_ms']:.2f} ms over in-process)"
        )
    if "tag_day_1m_sql_ms" in tw and "tag_day_1m_http_ms" in tw:
        ratios["sql_over_http"] = tw["tag_day_1m_sql_ms"] / tw["tag_day_1m_http_ms"]
        print(
            f"Taehwa tag-day over the SQL port {tw['tag_day_1m_sql_ms']:.2f} ms "
            f"({ratios['sql_over_http']:.2f}× HTTP; goal ≤ 2×)"
        )
    if "flight_day_ms" in tw:
        ratios["flight_vs_local_parquet"] = tw["local_parquet_day_ms"] / tw["flight_day_ms"]
        print(
            f"Flight bulk read of the day {tw['flight_day_ms']:.1f} ms, the same files read locally "
            f"{tw['local_parquet_day_ms']:.1f} ms ({ratios['flight_vs_local_parquet']:.2f}×; goal ≥ 0.8×)"
        )
    print("ratios (Taehwa / best peer, > 1 is better): " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (1,000 tags; 365 days)")
    parser.add_argument("--tags", type=int, default=None)
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument(
        "--only",
        default="taehwa,duckdb,chdb,postgresql,influxdb,victoriametrics",
        help="comma-separated stores (taehwa, duckdb, chdb, postgresql, influxdb, victoriametrics)",
    )
    args = parser.parse_args()
    n_tags = args.tags or (1000 if args.full else 200)
    days = args.days or (365 if args.full else 30)
    w = Workload(n_tags, days)
    print(
        f"workload: {n_tags} tags × a day at 10 s ({w.many.num_rows:,} points) and one tag × {days} days at 1 Hz "
        f"({w.long.num_rows:,} points); answers checked against NumPy; medians of {ROUNDS}"
    )
    figures: dict[str, dict[str, float]] = {}
    runners = {
        "taehwa": run_taehwa,
        "duckdb": run_duckdb,
        "chdb": run_chdb,
        "postgresql": run_postgres,
        "influxdb": run_influxdb,
        "victoriametrics": run_victoriametrics,
    }
    work = Path(tempfile.mkdtemp(prefix="taehwa-peers-"))
    try:
        for name in args.only.split(","):
            t = time.perf_counter()
            runners[name.strip()](work, w, figures)
            print(f"{name}: done in {time.perf_counter() - t:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = report(figures)
    print(json.dumps({"bench": "peers", "tags": n_tags, "days": days, "figures": figures, "ratios": ratios}))


if __name__ == "__main__":
    main()
