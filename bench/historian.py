"""Historian benchmark: Taehwa against raw DuckDB doing the same work on the same data, in one run.

    python bench/historian.py            # full: 10M-point bulk file, 86.4M-point store (1,000 tags, a day at 1 Hz)
    python bench/historian.py --quick    # small: 1M-point file, 8.64M-point store (100 tags)

Prints a table, then as its last line {"bench": "historian", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.historian.store import Historian

DAY0 = np.datetime64("2024-03-01T00:00:00", "us")
TOKEN = "bench-token"


def p95(samples: list[float]) -> float:
    return float(np.percentile(np.array(samples) * 1000, 95))


def p50(samples: list[float]) -> float:
    return float(np.percentile(np.array(samples) * 1000, 50))


def tag_name(i: int) -> str:
    return f"plant/area{i // 100:02d}/eq{i:04d}/value"


def make_points(tag_lo: int, tag_hi: int, seconds: int, rng: np.random.Generator, time_major: bool) -> pa.Table:
    tags = np.array([tag_name(i) for i in range(tag_lo, tag_hi)])
    times = DAY0 + np.arange(seconds).astype("timedelta64[s]").astype("timedelta64[us]")
    n_tags = tag_hi - tag_lo
    if time_major:  # as an export from a plant system: every tag at each instant
        tag_col, time_col = np.tile(tags, seconds), np.repeat(times, n_tags)
    else:
        tag_col, time_col = np.repeat(tags, seconds), np.tile(times, n_tags)
    return pa.table({"tag": tag_col, "time": time_col, "value": rng.normal(50, 5, n_tags * seconds)})


def bench_bulk(work: Path, n_tags: int, seconds: int) -> dict[str, float]:
    src = work / "bulk.parquet"
    pq.write_table(make_points(0, n_tags, seconds, np.random.default_rng(1), time_major=True), src)
    n = n_tags * seconds
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{src}') ORDER BY tag, time) TO '{work / 'duck.parquet'}' "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    duck_s = time.perf_counter() - t
    settings = Settings(data_dir=work / "bulk-store")
    hist = Historian(settings, background=False)
    hist.tenants.create("bench")
    t = time.perf_counter()
    result = hist.ingest_file("bench", src)
    ours_s = time.perf_counter() - t
    assert result.points == n
    hist.close()
    return {
        "bulk_points": n,
        "bulk_ingest_s": ours_s,
        "bulk_duckdb_s": duck_s,
        "bulk_ingest_pts_s": n / ours_s,
        "bulk_ingest_ratio_vs_duckdb": duck_s / ours_s,
    }


def bench_http(work: Path, quick: bool) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "TAEHWA_DATA_DIR": str(work / "http-store"),
        "TAEHWA_PORT": str(port),
        "TAEHWA_API_TOKEN": TOKEN,
    }
    subprocess.run(
        [sys.executable, "-m", "taehwa", "tenants", "create", "bench"], env=env, check=True, capture_output=True
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            rng = np.random.default_rng(2)
            arrow_batch, arrow_n = 100_000, 10 if quick else 30
            bodies = []
            for b in range(arrow_n):
                table = make_points(b * 10, b * 10 + 10, arrow_batch // 10, rng, time_major=True)
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, table.schema) as w:
                    w.write_table(table)
                bodies.append(sink.getvalue().to_pybytes())
            t = time.perf_counter()
            for body in bodies:
                r = client.post(
                    "/api/v1/bench/points",
                    content=body,
                    headers={"Content-Type": "application/vnd.apache.arrow.stream"},
                )
                r.raise_for_status()
            arrow_s = time.perf_counter() - t
            json_batch, json_n = 20_000, 10 if quick else 30
            jbodies = []
            for b in range(json_n):
                base = DAY0 + np.timedelta64(b * json_batch, "s")
                jbodies.append(
                    orjson.dumps(
                        [
                            {
                                "tag": tag_name(2000 + (i % 10)),
                                "time": str(base + np.timedelta64(i, "s")) + "Z",
                                "value": float(i),
                            }
                            for i in range(json_batch)
                        ]
                    )
                )
            t = time.perf_counter()
            for body in jbodies:
                client.post(
                    "/api/v1/bench/points", content=body, headers={"Content-Type": "application/json"}
                ).raise_for_status()
            json_s = time.perf_counter() - t
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {"http_arrow_pts_s": arrow_batch * arrow_n / arrow_s, "http_json_pts_s": json_batch * json_n / json_s}


def bench_queries(work: Path, n_tags: int, runs: int) -> dict[str, float]:
    settings = Settings(data_dir=work / "query-store", buffer_max_points=1_000_000)
    hist = Historian(settings, background=False)
    hist.tenants.create("bench")
    rng = np.random.default_rng(3)
    t = time.perf_counter()
    chunk = 100
    for lo in range(0, n_tags, chunk):
        hist.write("bench", make_points(lo, min(lo + chunk, n_tags), 86_400, rng, time_major=False))
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    hist.compact("bench")
    compact_s = time.perf_counter() - t
    stats = hist.stats("bench")
    files = [str(hist.root / "bench" / f.path) for f in hist.state.manifest("bench").files]
    assert len(files) == 1
    tags = [tag_name(i) for i in range(n_tags)]

    lv = []
    for _ in range(runs):
        t = time.perf_counter()
        out = hist.latest("bench", tags)
        lv.append(time.perf_counter() - t)
    assert out.num_rows == n_tags
    con = duckdb.connect()
    con.execute("SET parquet_metadata_cache = true")
    t = time.perf_counter()
    con.execute(f"SELECT tag, arg_max(value, time) FROM read_parquet('{files[0]}') GROUP BY tag").fetchall()
    lv_duck = time.perf_counter() - t

    ds, ds_duck = [], []
    picks = rng.integers(0, n_tags, runs)
    start, end = "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"
    for i in picks:  # warm both the same way
        hist.downsample("bench", tags[i], start, end, "1m", "avg")
        break
    sql = (
        f"SELECT time_bucket(INTERVAL 1 minute, time) AS b, avg(value) FROM read_parquet('{files[0]}') "
        "WHERE tag = ? AND time >= TIMESTAMP '2024-03-01' AND time < TIMESTAMP '2024-03-02' GROUP BY b ORDER BY b"
    )
    con.execute(sql, [tags[0]]).fetchall()
    for i in picks:
        t = time.perf_counter()
        got = hist.downsample("bench", tags[i], start, end, "1m", "avg")
        ds.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = con.execute(sql, [tags[i]]).fetchall()
        ds_duck.append(time.perf_counter() - t)
        assert got.num_rows == len(ref) == 1440
        assert abs(got.column("avg")[0].as_py() - ref[0][1]) < 1e-9

    al = []
    for i in picks[: max(runs // 2, 5)]:
        ten = [tags[(int(i) + k) % n_tags] for k in range(10)]
        t = time.perf_counter()
        wide = hist.align("bench", ten, "2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z", "1s")
        al.append(time.perf_counter() - t)
        assert wide.num_rows == 3601 and wide.num_columns == 11
    hist.close()
    return {
        "store_points": stats["rows_in_files"],
        "store_bytes": stats["bytes"],
        "store_build_s": build_s,
        "store_compact_s": compact_s,
        "last_value_p95_ms": p95(lv),
        "last_value_duckdb_scan_ms": lv_duck * 1000,
        "downsample_p50_ms": p50(ds),
        "downsample_p95_ms": p95(ds),
        "downsample_duckdb_p50_ms": p50(ds_duck),
        "downsample_duckdb_p95_ms": p95(ds_duck),
        "downsample_ratio_vs_duckdb": p95(ds) / p95(ds_duck),
        "align_p95_ms": p95(al),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="taehwa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    bulk_tags, bulk_seconds = (100, 10_000) if args.quick else (1000, 10_000)
    figures |= bench_bulk(work, bulk_tags, bulk_seconds)
    figures |= bench_http(work, args.quick)
    figures |= bench_queries(work, 100 if args.quick else 1000, 30 if args.quick else 100)
    print(f"{'figure':36s} {'value':>16s}")
    for key, value in figures.items():
        print(f"{key:36s} {value:16,.2f}")
    print(
        json.dumps({"bench": "historian", "quick": args.quick, "figures": {k: round(v, 3) for k, v in figures.items()}})
    )


if __name__ == "__main__":
    main()
