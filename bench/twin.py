"""Twin benchmark: change-stream latency under load, and asset search, each beside a plain baseline.

    python bench/twin.py            # full: 10,000 tags on 1,000 assets, 100 + 1 SSE clients, 10,000 points/s, 30 s
    python bench/twin.py --quick    # small: 2,000 tags on 200 assets, 20 + 1 clients, 2,000 points/s, 8 s

The platform runs as `taehwa serve` in its own process. A writer posts a batch every 100 ms (Arrow IPC); for every
point, the delay is measured from the return of the write call that carried it to its receipt by each client that
watches its asset (its own subtree's client and the whole-plant client). Events that arrive before the write call
has returned count as 0 ms. Baselines: the same writes with no twin loaded (the historian's own HTTP write time), and
the search done as SQL over the same assets in SQLite.

Prints a table, then as its last line {"bench": "twin", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import httpx
import numpy as np
import orjson
import pyarrow as pa

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.core.yamlio import dump_yaml
from taehwa.server.platform import Platform

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SIGNALS = 10  # tags per asset
ASSETS_PER_SUBTREE = 10


def plant_doc(n_assets: int) -> dict[str, Any]:
    """Areas of 10 pumps each (one subtree per SSE client), every pump with 10 bound tags."""
    sensors = {f"s{k}": {"unit": "bar", "limits": {"high_warning": 90, "high_alarm": 95}} for k in range(SIGNALS)}
    areas = []
    for a in range(n_assets // ASSETS_PER_SUBTREE):
        units = [
            {"id": f"p-{a:03d}-{u}", "type": "Pump", "tags": {f"s{k}": f"t/{a:03d}/{u}/s{k}" for k in range(SIGNALS)}}
            for u in range(ASSETS_PER_SUBTREE)
        ]
        areas.append({"id": f"area-{a:03d}", "type": "Area", "children": units})
    return {
        "types": {"Pump": {"extends": "Equipment", "sensors": sensors}},
        "assets": [{"id": "plant", "type": "Site", "children": areas}],
    }


def start_server(work: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TAEHWA_DATA_DIR": str(work / name), "TAEHWA_PORT": str(port), "TAEHWA_API_TOKEN": TOKEN}
    subprocess.run(
        [sys.executable, "-m", "taehwa", "tenants", "create", "bench"], env=env, check=True, capture_output=True
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    return server, url


def batch_body(tags: list[str], time_us: int, rng: np.random.Generator) -> bytes:
    table = pa.table(
        {
            "tag": pa.array(tags, pa.string()),
            "time": pa.array(np.full(len(tags), time_us)).cast(pa.timestamp("us", tz="UTC")),
            "value": pa.array(rng.normal(50, 5, len(tags))),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _us(iso: str) -> int:
    dt = datetime.fromisoformat(iso)
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


async def run_stream_load(url: str, n_assets: int, rate: int, seconds: float) -> dict[str, float]:
    """Clients follow the events while a writer posts `rate` points per second in 10 batches a second."""
    subtrees = [f"plant/area-{a:03d}" for a in range(n_assets // ASSETS_PER_SUBTREE)]
    watchers = [*subtrees, None]  # None: the whole plant
    all_tags = [
        f"t/{a:03d}/{u}/s{k}" for a in range(len(subtrees)) for u in range(ASSETS_PER_SUBTREE) for k in range(SIGNALS)
    ]
    per_batch = rate // 10
    n_batches = int(seconds * 10)
    base_us = int(time.time() * 1e6) - 3_600_000_000  # an hour ago: inside the accepted window, never stale logic
    received: list[dict[int, int]] = [defaultdict(int) for _ in watchers]  # batch time → points received
    arrival: list[list[tuple[int, float, int]]] = [[] for _ in watchers]  # (batch time, receipt, points)
    ready = [asyncio.Event() for _ in watchers]
    limits = httpx.Limits(max_connections=len(watchers) + 10, max_keepalive_connections=len(watchers) + 10)

    async def follow(i: int, under: str | None, client: httpx.AsyncClient) -> None:
        params = {"kinds": "values", **({"under": under} if under else {})}
        async with client.stream("GET", f"{url}/api/v1/bench/events", params=params, headers=AUTH) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("event: hello"):
                    ready[i].set()
                elif line.startswith('data: {"id"'):
                    now = time.perf_counter()
                    ev = orjson.loads(line[6:])
                    counts: dict[int, int] = defaultdict(int)
                    for points in ev["signals"].values():
                        for t, _, _ in points:
                            counts[_us(t)] += 1
                    for t_us, n in counts.items():
                        received[i][t_us] += n
                        arrival[i].append((t_us, now, n))

    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        tasks = [asyncio.create_task(follow(i, w, client)) for i, w in enumerate(watchers)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 60)
        rng = np.random.default_rng(5)
        write_done: dict[int, float] = {}
        expected: list[dict[int, int]] = [defaultdict(int) for _ in watchers]
        write_s: list[float] = []
        async with httpx.AsyncClient(timeout=60) as writer:
            start = time.perf_counter()
            for b in range(n_batches):
                lo = (b * per_batch) % len(all_tags)
                tags = (all_tags + all_tags)[lo : lo + per_batch]
                t_us = base_us + b * 1000  # one time per batch, 1 ms apart
                body = batch_body(tags, t_us, rng)
                t0 = time.perf_counter()
                r = await writer.post(
                    f"{url}/api/v1/bench/points",
                    content=body,
                    headers={**AUTH, "Content-Type": "application/vnd.apache.arrow.stream"},
                )
                r.raise_for_status()
                write_done[t_us] = time.perf_counter()
                write_s.append(write_done[t_us] - t0)
                for tag in tags:
                    area = int(tag.split("/")[1])
                    expected[area][t_us] += 1
                    expected[-1][t_us] += 1
                await asyncio.sleep(max(0.0, start + (b + 1) * 0.1 - time.perf_counter()))
            # let the last events arrive (waiting for the counts, at most 10 s)
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline and any(
                received[i][t] < n for i in range(len(watchers)) for t, n in expected[i].items()
            ):
                await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    delays: list[np.ndarray] = []
    early = 0
    for i in range(len(watchers)):
        for t_us, at, n in arrival[i]:
            d = (at - write_done[t_us]) * 1000 if t_us in write_done else 0.0
            early += n if d < 0 else 0
            delays.append(np.full(n, max(d, 0.0)))
    all_delays = np.concatenate(delays) if delays else np.array([0.0])
    expected_total = sum(sum(e.values()) for e in expected)
    got = sum(min(received[i].get(t, 0), n) for i in range(len(watchers)) for t, n in expected[i].items())
    return {
        "stream_points_written": n_batches * per_batch,
        "stream_deliveries": int(all_delays.size),
        "event_p50_ms": float(np.percentile(all_delays, 50)),
        "event_p99_ms": float(np.percentile(all_delays, 99)),
        "event_max_ms": float(all_delays.max()),
        "events_lost": int(expected_total - got),
        "events_before_write_returned": int(early),
        "write_call_p50_ms": float(np.percentile(np.array(write_s) * 1000, 50)),
        "write_rate_pts_s": n_batches * per_batch / (time.perf_counter() - start),
    }


def bench_stream(work: Path, n_assets: int, rate: int, seconds: float) -> dict[str, float]:
    server, url = start_server(work, "stream")
    try:
        r = httpx.put(f"{url}/api/v1/bench/twin", content=dump_yaml(plant_doc(n_assets)), headers=AUTH, timeout=120)
        r.raise_for_status()
        return asyncio.run(run_stream_load(url, n_assets, rate, seconds))
    finally:
        server.terminate()
        server.wait(30)


def bench_write_baseline(work: Path, n_assets: int, rate: int, seconds: float) -> dict[str, float]:
    """The same writes to a server with no twin and no clients: what the historian alone costs."""
    server, url = start_server(work, "baseline")
    try:
        all_tags = [
            f"t/{a:03d}/{u}/s{k}"
            for a in range(n_assets // ASSETS_PER_SUBTREE)
            for u in range(ASSETS_PER_SUBTREE)
            for k in range(SIGNALS)
        ]
        rng = np.random.default_rng(5)
        per_batch = rate // 10
        base_us = int(time.time() * 1e6) - 3_600_000_000
        samples = []
        with httpx.Client(timeout=60) as client:
            for b in range(int(seconds * 10)):
                lo = (b * per_batch) % len(all_tags)
                body = batch_body((all_tags + all_tags)[lo : lo + per_batch], base_us + b * 1000, rng)
                t0 = time.perf_counter()
                client.post(
                    f"{url}/api/v1/bench/points",
                    content=body,
                    headers={**AUTH, "Content-Type": "application/vnd.apache.arrow.stream"},
                ).raise_for_status()
                samples.append(time.perf_counter() - t0)
        return {"baseline_write_call_p50_ms": float(np.percentile(np.array(samples) * 1000, 50))}
    finally:
        server.terminate()
        server.wait(30)


def big_plant(n_assets: int) -> dict[str, Any]:
    """A city's worth of assets: sites → areas → lines → pumps and compressors."""
    assets = []
    made = 0
    s = 0
    while made < n_assets:
        areas = []
        for a in range(10):
            lines = []
            for ln in range(10):
                units = [
                    {
                        "id": f"u{u:03d}",
                        "type": "Pump" if u % 4 else "Compressor",
                        "attributes": {"vendor": ["hyosung", "doosan", "hanwha"][u % 3]},
                    }
                    for u in range(48)
                ]
                lines.append({"id": f"line-{ln}", "type": "Line", "children": units})
                made += 49
            areas.append({"id": f"area-{a}", "type": "Area", "children": lines})
            made += 1
        assets.append({"id": f"site-{s:02d}", "type": "Site", "children": areas})
        s += 1
        made += 1
    return {
        "types": {
            "Pump": {"extends": "Equipment", "attributes": {"vendor": {"type": "string"}}},
            "Compressor": {"extends": "Equipment", "attributes": {"vendor": {"type": "string"}}},
        },
        "assets": assets,
    }


class SearchQuery(TypedDict):
    """One search of the benchmark: a type, a subtree and an attribute to match."""

    type: str
    under: str
    attributes: dict[str, str]


def bench_search(work: Path, n_assets: int) -> dict[str, float]:
    settings = Settings(data_dir=work / "search")
    platform = Platform(settings, background=False)
    try:
        platform.tenants.create("bench")
        t = time.perf_counter()
        loaded = platform.twin.load("bench", dump_yaml(big_plant(n_assets)))
        load_s = time.perf_counter() - t
        n_sites = len(platform.twin.children("bench", None))
        rng = np.random.default_rng(9)
        queries: list[SearchQuery] = []
        for _ in range(200):
            site, area = int(rng.integers(n_sites)), int(rng.integers(10))
            queries.append(
                {
                    "type": ["Pump", "Compressor", "Equipment"][int(rng.integers(3))],
                    "under": f"site-{site:02d}/area-{area}",
                    "attributes": {"vendor": ["hyosung", "doosan", "hanwha"][int(rng.integers(3))]},
                }
            )
        ours = []
        totals = []
        for q in queries:
            t = time.perf_counter()
            found = platform.twin.search("bench", type=q["type"], under=q["under"], attributes=q["attributes"])
            ours.append(time.perf_counter() - t)
            totals.append(found["total"])
        # baseline: the same filters as SQL over the stored asset records in SQLite
        db = sqlite3.connect(settings.data_dir / "metadata.sqlite")
        db.execute(
            "CREATE TEMP TABLE a AS SELECT path, json_extract(record, '$.type') AS type, "
            "json_extract(record, '$.attributes.vendor') AS vendor, record FROM twin_assets "
            "WHERE tenant = 'bench' AND v_to IS NULL"
        )
        db.execute("CREATE INDEX temp.ix_a ON a(type, path)")
        base = []
        for q, total in zip(queries, totals, strict=True):
            types = ["Pump", "Compressor"] if q["type"] == "Equipment" else [q["type"]]
            t = time.perf_counter()
            rows = db.execute(
                f"SELECT record FROM a WHERE type IN ({','.join('?' * len(types))}) AND path LIKE ? "
                "AND vendor = ? ORDER BY path LIMIT 100",
                [*types, q["under"] + "/%", q["attributes"]["vendor"]],
            ).fetchall()
            _ = [json.loads(r[0]) for r in rows]
            base.append(time.perf_counter() - t)
            assert min(total, 100) == len(rows), (q, total, len(rows))
        db.close()
        p95 = float(np.percentile(np.array(ours) * 1000, 95))
        base95 = float(np.percentile(np.array(base) * 1000, 95))
        return {
            "search_assets": loaded.assets,
            "plant_load_s": load_s,
            "search_p50_ms": float(np.percentile(np.array(ours) * 1000, 50)),
            "search_p95_ms": p95,
            "search_sqlite_p95_ms": base95,
            "search_ratio_vs_sqlite": p95 / base95 if base95 else 0.0,
        }
    finally:
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small run")
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    args = parser.parse_args()
    n_assets, rate, seconds = (200, 2000, 8.0) if args.quick else (1000, 10_000, 30.0)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        figures: dict[str, float] = {
            "tags": n_assets * SIGNALS,
            "assets": n_assets,
            "sse_clients": n_assets // ASSETS_PER_SUBTREE + 1,
            "points_per_s": rate,
        }
        figures |= bench_stream(work, n_assets, rate, seconds)
        figures |= bench_write_baseline(work, n_assets, rate, min(seconds, 10.0))
        figures["write_call_ratio_vs_historian_only"] = figures["write_call_p50_ms"] / max(
            figures["baseline_write_call_p50_ms"], 1e-9
        )
        figures |= bench_search(work, 5_000 if args.quick else 50_000)
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v:>14.3f}" if isinstance(v, float) else f"{k:<{width}}  {v:>14}")
    print(
        json.dumps(
            {
                "bench": "twin",
                "quick": args.quick,
                "figures": {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
