"""The historian on object storage: writes and queries with the store on an S3-compatible server, against the
same work on local disk and against a plain reader of the same objects.

    python bench/storage.py            # 2,000,000 points (20 tags, 100,000 s each)
    python bench/storage.py --quick    # 400,000 points

The S3 server is moto's (a test extra) on loopback: a Python server, far slower than MinIO or Ceph, so the
transfer figures are a floor, and the ratios within one run are what to read. Measured:

- `write_pts_s_local`, `write_pts_s_s3`: one large write and its flush (sorted day files), local and on S3;
- `query_ms_local`: a day of all tags downsampled to 1 min (avg, max) from the local store;
- `query_ms_s3_cold`: the same from a reader on "another machine" (its own folder, an empty cache: every file
  is fetched), `query_ms_s3_warm`: the same reader again (the files are cached: immutable, never stale);
- `query_ms_bare_s3`: the baseline, the same query by plain pyarrow + DuckDB over the manifest's objects on the
  bucket, as an outside engine reads them (docs/historian-layout.md); `warm_speedup_vs_bare` is its time over
  the warm reader's, `cold_ratio_vs_bare` its time over the cold reader's.

Prints a table, then as its last line {"bench": "storage", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.historian.manifest import Manifest
from taehwa.historian.store import Historian

T0_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z
TAGS = 20
SQL = (
    "SELECT tag, time_bucket(INTERVAL 1 minute, time) AS b, avg(value), max(value) FROM (SELECT * FROM {src} "
    "WHERE time >= TIMESTAMP '2024-03-01' AND time < TIMESTAMP '2024-03-02' "
    "QUALIFY row_number() OVER (PARTITION BY tag_id, time ORDER BY seq DESC) = 1) GROUP BY ALL"
)


def points(per_tag: int) -> pa.Table:
    times = np.tile(T0_US + np.arange(per_tag, dtype=np.int64) * 1_000_000, TAGS)
    tags = np.repeat([f"line{i // 5}/pump{i}/PT" for i in range(TAGS)], per_tag)
    rng = np.random.default_rng(7)
    return pa.table(
        {
            "tag": tags,
            "time": pa.array(times).cast(pa.timestamp("us", tz="UTC")),
            "value": rng.normal(5.0, 0.5, len(times)),
        }
    )


def median_ms(fn: Callable[[], object], runs: int) -> float:
    took = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        took.append((time.perf_counter() - t) * 1000)
    return statistics.median(took)


def start_s3(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the S3 test server did not start (pip install 'moto[server]')")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="400,000 points instead of 2,000,000")
    args = ap.parse_args()
    per_tag = 20_000 if args.quick else 100_000
    runs = 5
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    port = free_port()
    server = start_s3(port)
    s3 = pafs.S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1", allow_bucket_creation=True
    )
    s3.create_dir("taehwa")
    url = f"s3://taehwa/bench?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    table = points(per_tag)
    figures: dict[str, float | int] = {"points": table.num_rows}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            db_url = f"sqlite:///{root / 'meta.sqlite'}"
            stores = {
                "local": Settings(data_dir=root / "local", database_url=db_url),
                "s3": Settings(data_dir=root / "writer", historian_url=url, database_url=db_url),
            }
            hists: dict[str, Historian] = {}
            for name, settings in stores.items():
                h = Historian(settings, background=False)
                if name == "local":
                    h.tenants.create("bench")
                t = time.perf_counter()
                h.write("bench", table)
                h.flush()  # (a write below TAEHWA_BUFFER_MAX_POINTS waits in the log until the flush)
                figures[f"write_pts_s_{name}"] = round(table.num_rows / (time.perf_counter() - t))
                hists[name] = h
            figures["write_ratio_s3_vs_local"] = round(figures["write_pts_s_s3"] / figures["write_pts_s_local"], 3)
            tags = [f"line{i // 5}/pump{i}/PT" for i in range(TAGS)]

            def query(h: Historian) -> pa.Table:
                return h.downsample("bench", tags, "2024-03-01", "2024-03-02", "1m", "avg,max")

            figures["query_ms_local"] = round(median_ms(lambda: query(hists["local"]), runs), 1)
            expected = query(hists["local"])
            # a reader on another machine: its own folder, nothing cached
            reader = Historian(
                Settings(data_dir=root / "reader", historian_url=url, database_url=db_url),
                readonly=True,
                background=False,
            )
            t = time.perf_counter()
            cold = query(reader)
            figures["query_ms_s3_cold"] = round((time.perf_counter() - t) * 1000, 1)
            figures["query_ms_s3_warm"] = round(median_ms(lambda: query(reader), runs), 1)
            assert cold.equals(expected) and query(reader).equals(expected), "the S3 reader answered differently"
            # the baseline: plain pyarrow + DuckDB over the manifest's objects, fetched by each query
            manifest = Manifest.from_bytes(s3.open_input_stream("taehwa/bench/bench/manifest.json").read())
            paths = [f"taehwa/bench/bench/{f.path}" for f in manifest.files]

            con = duckdb.connect()

            def bare() -> list[tuple[object, ...]]:
                con.register("data", ds.dataset(paths, filesystem=s3, format="parquet"))
                return con.sql(SQL.format(src="data")).fetchall()

            figures["query_ms_bare_s3"] = round(median_ms(bare, runs), 1)
            assert len(bare()) == expected.num_rows, "the plain reader found other buckets"
            figures["warm_speedup_vs_bare"] = round(figures["query_ms_bare_s3"] / figures["query_ms_s3_warm"], 2)
            figures["cold_ratio_vs_bare"] = round(figures["query_ms_bare_s3"] / figures["query_ms_s3_cold"], 2)
            figures["files"] = len(manifest.files)
            reader.close()
            for h in hists.values():
                h.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{'figure':<26} value")
    for key, value in figures.items():
        print(f"{key:<26} {value}")
    print(
        json.dumps(
            {
                "bench": "storage",
                "quick": args.quick,
                "figures": figures,
                "notes": {"s3_server": "moto on loopback (Python)"},
            }
        )
    )


if __name__ == "__main__":
    main()
