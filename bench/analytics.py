"""Analytics benchmark: calculated signals live and in backfill, and event search, each beside a plain baseline.

    python bench/analytics.py           # 1,000 assets × 100 calculated signals at 10,000 points/s for 20 s;
                                        # backfill over 30 days of 1 Hz inputs; search over 1,000,000 events
    python bench/analytics.py --quick   # 8 s live, 7 days of backfill, 200,000 events
    python bench/analytics.py --days 365  # the issue's year of 1 Hz inputs (about 95 M points: minutes to load)

Measured:

- `live_p99_ms`: from the start of the write call that carried an input point to the write of the calculated points
  made from it (the engine in its own thread, as `taehwa serve` runs it), the points timed by the wall clock as a
  live feed's are; `live_cpu_s_per_input_s`: the process's CPU seconds per second of input fed (the whole server's
  work, whatever else loads the machine: above 1.0 one core cannot keep up); `lost`: calculated points expected (every
  asset × every input time up to the watermark × 100 signals) but not written; beside it `baseline_batch_ms`: the
  same 100 expressions as hand-written NumPy over one batch's arrays already in memory (no historian, no engine);
- `backfill_points_s`: `taehwa analytics backfill` of one calculated signal (flow · head · 9.81 / (power · 1000)) over
  the range, read from the historian's Parquet files and written back, against the same expression as hand-written
  DuckDB SQL over the same files (pivot by time, compute, COPY to Parquet): `backfill_ratio_vs_sql` (≥ 0.8 asked);
  `backfill_unwritten_points_s`: the same read and computation without the historian write (its listeners and
  its buffer: the difference between the two is what writing costs);
- `search_p95_ms`: event search (an asset subtree, a template, a time window, `duration > 30m`, 100 newest) over the
  metadata database's index, against the same query in DuckDB over the same events held in memory.

Prints a table, then as its last line {"bench": "analytics", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.core.settings import Settings
from taehwa.core.timeutil import from_us
from taehwa.core.yamlio import dump_yaml
from taehwa.historian.schema import STORE_SCHEMA
from taehwa.server.platform import Platform

TENANT = "bench"
N_ASSETS = 1000
N_CALCS = 100
SENSORS = ("flow", "head", "power", "speed")
T_BASE = 1_767_225_600_000_000  # 2026-01-01 UTC


def calc_exprs() -> dict[str, str]:
    """100 calculated signals over the same four inputs: ratios, products, clipped and conditional forms."""
    out = {}
    for i in range(N_CALCS):
        k = i + 1
        form = i % 5
        if form == 0:
            out[f"c{i:03d}"] = f"flow * head * 9.81 / (power * 1000) * {k}"
        elif form == 1:
            out[f"c{i:03d}"] = f"(flow + {k}) / (speed + 1)"
        elif form == 2:
            out[f"c{i:03d}"] = f"clip(power - {k} * 0.01, 0, 100)"
        elif form == 3:
            out[f"c{i:03d}"] = f"if(flow > {k % 40}, head * {k}, 0)"
        else:
            out[f"c{i:03d}"] = f"abs(head - speed) * {k}"
    return out


def baseline_eval(i: int, a: dict[str, np.ndarray]) -> np.ndarray:
    """The same expression by hand in NumPy."""
    k, form = i + 1, i % 5
    f, h, p, s = a["flow"], a["head"], a["power"], a["speed"]
    out: np.ndarray
    with np.errstate(all="ignore"):
        if form == 0:
            out = f * h * 9.81 / (p * 1000) * k
        elif form == 1:
            out = (f + k) / (s + 1)
        elif form == 2:
            out = np.clip(p - k * 0.01, 0, 100)
        elif form == 3:
            out = np.where(f > k % 40, h * k, 0)
        else:
            out = np.abs(h - s) * k
    return out


def plant(n_assets: int, calcs: dict[str, str], *, events: bool = False) -> str:
    derived = {name: {"expr": expr} for name, expr in calcs.items()}
    pump: dict[str, Any] = {"sensors": {s: {"interval": "1s"} for s in SENSORS}, "derived": derived}
    if events:
        pump["events"] = {"running": {"start": "flow > 5", "max_duration": "1d"}}
    areas = []
    per = max(1, n_assets // 10)
    for a in range(0, n_assets, per):
        areas.append(
            {
                "id": f"area-{a // per}",
                "type": "Area",
                "children": [
                    {"id": f"p{j:04d}", "type": "Pump", "tags": {s: f"raw/p{j:04d}/{s}" for s in SENSORS}}
                    for j in range(a, min(a + per, n_assets))
                ],
            }
        )
    return dump_yaml({"types": {"Pump": pump}, "assets": [{"id": "site", "type": "Site", "children": areas}]})


def batch(assets: list[int], t_us: int, rng: np.random.Generator) -> pa.Table:
    n = len(assets) * len(SENSORS)
    tags = [f"raw/p{j:04d}/{s}" for j in assets for s in SENSORS]
    values = rng.uniform(1, 50, n)
    return pa.table(
        {
            "tag": tags,
            "time": pa.array(np.full(n, t_us, np.int64)).cast(pa.timestamp("us")),
            "value": values,
            "quality": pa.array(np.zeros(n, np.uint8)),
        },
        schema=STORE_SCHEMA,
    )


def bench_live(root: Path, seconds: float, rate: int) -> dict[str, Any]:
    settings = Settings(data_dir=root / "live", api_token="bench")
    p = Platform(settings, background=True)
    try:
        p.tenants.create(TENANT)
        calcs = calc_exprs()
        p.twin.load(TENANT, plant(N_ASSETS, calcs))
        live = p.analytics.live
        assert live is not None
        live.lineage = False  # 100,000 tag metadata writes are a one-off, not the steady state measured here
        live.refresh(force=True)
        gc.collect()
        gc.freeze()  # as `taehwa serve` does once started with its plant loaded
        sent: dict[int, float] = {}  # input time → wall time its write started
        delays: list[tuple[float, int]] = []

        def on_written(tenant: str, table: pa.Table) -> None:
            now = time.perf_counter()
            times, counts = np.unique(table.column("time").cast(pa.int64()).to_numpy(), return_counts=True)
            for t, c in zip(times.tolist(), counts.tolist(), strict=True):
                if t in sent:
                    delays.append((now - sent[t], c))

        rng = np.random.default_rng(0)
        per_batch = rate // 10 // len(SENSORS)  # one write every 100 ms
        groups = [list(range(g, g + per_batch)) for g in range(0, N_ASSETS, per_batch)]
        # points carry the wall clock's time, as a live feed's do (points months old would have the twin mark
        # every signal stale each second and fresh again at its next point: a replay's load, not a live one's)
        start_us = time.time_ns() // 100_000 * 100
        # warm-up: two rounds of every asset make its 100,000 calculated tags exist before anything is timed, each
        # write computed before the next (as in the steady state: the listeners have then seen each write's tags)
        k = 0
        for _ in range(2):
            for g in groups:
                done = live.status(TENANT)["points_written"]
                p.historian.write_checked(TENANT, batch(g, start_us + k * 100_000, rng))
                k += 1
                until = time.perf_counter() + 120
                while live.status(TENANT)["points_written"] < done + len(g) * N_CALCS and time.perf_counter() < until:
                    time.sleep(0.02)
        while live.status(TENANT)["queued"] or live.status(TENANT)["points_written"] < N_ASSETS * N_CALCS:
            time.sleep(0.1)
        time.sleep(1.0)
        live.on_written.append(on_written)
        first = k
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        t0_us = max(time.time_ns() // 100_000 * 100, start_us + first * 100_000)
        expected_times: dict[int, int] = {}
        while time.perf_counter() - t0 < seconds:
            due = t0 + (k - first) * 0.1
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            assets = groups[k % len(groups)]
            t_us = t0_us + (k - first) * 100_000
            table = batch(assets, t_us, rng)
            sent[t_us] = time.perf_counter()
            p.historian.write_checked(TENANT, table)
            expected_times[t_us] = len(assets)
            k += 1
        feed_s = time.perf_counter() - t0
        # an asset's newest round is computed once all its inputs passed it: here they arrive in one write, so
        # every round is computable at once; wait for the engine to catch up
        expected = sum(expected_times.values()) * N_CALCS
        deadline = time.perf_counter() + 120
        while sum(c for _, c in delays) < expected and time.perf_counter() < deadline:
            time.sleep(0.05)
        caught_up_s = time.perf_counter() - t0
        cpu_s = time.process_time() - cpu0
        got = sum(c for _, c in delays)
        d = np.repeat(np.array([x for x, _ in delays]), [c for _, c in delays]) if delays else np.array([np.nan])
        arrays = {s: rng.uniform(1, 50, per_batch) for s in SENSORS}  # baseline: the 100 expressions by hand
        b0 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            for i in range(N_CALCS):
                baseline_eval(i, arrays)
        base_ms = (time.perf_counter() - b0) / reps * 1000
        return {
            "live_inputs_per_s": round(sum(expected_times.values()) * len(SENSORS) / feed_s),
            "live_calculated_per_s": round(got / caught_up_s),
            "live_p50_ms": round(float(np.percentile(d, 50)) * 1000, 1),
            "live_p99_ms": round(float(np.percentile(d, 99)) * 1000, 1),
            "live_expected": expected,
            "live_written": got,
            "lost": max(0, expected - got),
            "live_cpu_s_per_input_s": round(cpu_s / ((k - first) * 0.1), 2),
            "baseline_batch_ms": round(base_ms, 2),
        }
    finally:
        p.close()


def bench_backfill(root: Path, days: int) -> dict[str, Any]:
    settings = Settings(data_dir=root / "backfill", api_token="bench")
    p = Platform(settings, background=False)
    try:
        p.tenants.create(TENANT)
        doc = {
            "types": {
                "Pump": {
                    "sensors": {s: {"interval": "1s"} for s in ("flow", "head", "power")},
                    "derived": {"efficiency": {"expr": "flow * head * 9.81 / (power * 1000)"}},
                }
            },
            "assets": [
                {
                    "id": "site",
                    "type": "Site",
                    "children": [
                        {"id": "p1", "type": "Pump", "tags": {s: f"raw/{s}" for s in ("flow", "head", "power")}}
                    ],
                }
            ],
        }
        p.twin.load(TENANT, dump_yaml(doc))
        rng = np.random.default_rng(1)
        day = 86_400
        t_load = time.perf_counter()
        for d in range(days):
            times = T_BASE + (d * day + np.arange(day, dtype=np.int64)) * 1_000_000
            parts = []
            for s in ("flow", "head", "power"):
                v = rng.uniform(0, 50, day)
                parts.append(
                    pa.table(
                        {
                            "tag": [f"raw/{s}"] * day,
                            "time": pa.array(times).cast(pa.timestamp("us")),
                            "value": v,
                            "quality": pa.array(np.zeros(day, np.uint8)),
                        },
                        schema=STORE_SCHEMA,
                    )
                )
            p.historian.write_checked(TENANT, pa.concat_tables(parts))
        p.historian.flush()
        load_s = time.perf_counter() - t_load
        start, end = from_us(T_BASE), from_us(T_BASE + days * day * 1_000_000)
        t0 = time.perf_counter()
        report = p.analytics.backfill(TENANT, start, end, events=False)
        ours = time.perf_counter() - t0
        n = report["points"]
        # the same backfill without the write: what the historian's write path (its buffer, its log, its listeners)
        # adds on top of reading and computing
        from taehwa.analytics.backfill import BackfillReport, backfill_group

        prog = p.analytics.program(TENANT)
        g = prog.groups[0]
        t2 = time.perf_counter()
        backfill_group(
            p.historian,
            TENANT,
            prog,
            g,
            g.assets,
            T_BASE,
            T_BASE + days * day * 1_000_000,
            report=BackfillReport(),
            templates=False,
            write=False,
        )
        compute_s = time.perf_counter() - t2
        files = sorted(glob.glob(str(settings.data_dir / "**" / TENANT / "day=*" / "*.parquet"), recursive=True))
        ids = p.historian.catalog.ids(TENANT)
        fid, hid, pid = ids["raw/flow"], ids["raw/head"], ids["raw/power"]
        out = root / "sql-out.parquet"
        con = duckdb.connect()
        con.execute("SET threads TO 2")
        sql = (
            f"COPY (SELECT time, flow * head * 9.81 / NULLIF(power * 1000, 0) AS efficiency FROM ("
            f"SELECT time, max(value) FILTER (WHERE tag_id = {fid}) AS flow, "
            f"max(value) FILTER (WHERE tag_id = {hid}) AS head, max(value) FILTER (WHERE tag_id = {pid}) AS power "
            f"FROM read_parquet({files!r}) WHERE tag_id IN ({fid}, {hid}, {pid}) GROUP BY time) ORDER BY time) "
            f"TO '{out}' (FORMAT parquet)"
        )
        t1 = time.perf_counter()
        con.execute(sql)
        sql_s = time.perf_counter() - t1
        sql_rows = con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]  # type: ignore[index]
        return {
            "backfill_days": days,
            "backfill_points": n,
            "backfill_s": round(ours, 2),
            "backfill_points_s": round(n / ours),
            "sql_s": round(sql_s, 2),
            "sql_points_s": round(sql_rows / sql_s),
            "backfill_ratio_vs_sql": round((n / ours) / (sql_rows / sql_s), 2),
            "backfill_unwritten_points_s": round(n / compute_s),
            "backfill_unwritten_ratio_vs_sql": round((n / compute_s) / (sql_rows / sql_s), 2),
            "load_s": round(load_s, 1),
        }
    finally:
        p.close()


def bench_search(root: Path, n_events: int, queries: int = 200) -> dict[str, Any]:
    settings = Settings(data_dir=root / "search", api_token="bench")
    p = Platform(settings, background=False)
    try:
        p.tenants.create(TENANT)
        rng = np.random.default_rng(2)
        assets = [f"site/area-{a}/p{j:04d}" for a in range(10) for j in range(a * 100, a * 100 + 100)]
        templates = ["running", "trip", "excursion", "quality.gap", "quality.stuck"]
        span = 365 * 86_400 * 1_000_000
        starts = T_BASE + rng.integers(0, span, n_events)
        dur = rng.exponential(1800, n_events)
        a_idx = rng.integers(0, len(assets), n_events)
        t_idx = rng.integers(0, len(templates), n_events)
        t0 = time.perf_counter()
        rows = [
            {
                "asset": assets[a],
                "template": templates[t],
                "start_us": int(s),
                "end_us": int(s + d * 1e6),
                "reason": "end",
                "stats": {"flow": {"max": float(d % 50)}},
            }
            for a, t, s, d in zip(a_idx.tolist(), t_idx.tolist(), starts.tolist(), dur.tolist(), strict=True)
        ]
        for k in range(0, n_events, 50_000):
            p.analytics.events.add_many(TENANT, rows[k : k + 50_000])
        insert_s = time.perf_counter() - t0
        lat, base = [], []
        con = duckdb.connect()
        frame = pa.table(
            {
                "asset": [r["asset"] for r in rows],
                "template": [r["template"] for r in rows],
                "start_us": starts,
                "end_us": [r["end_us"] for r in rows],
                "duration_s": dur,
            }
        )
        con.register("ev", frame)
        found = 0
        for _ in range(queries):
            area = int(rng.integers(0, 10))
            tpl = templates[int(rng.integers(0, len(templates)))]
            lo = T_BASE + int(rng.integers(0, span - 30 * 86_400 * 1_000_000))
            hi = lo + 30 * 86_400 * 1_000_000
            q0 = time.perf_counter()
            got = p.analytics.search(
                TENANT,
                asset=f"site/area-{area}",
                template=tpl,
                start=from_us(lo),
                end=from_us(hi),
                where=["duration > 30m"],
                limit=100,
            )
            lat.append(time.perf_counter() - q0)
            found += len(got["events"])
            q1 = time.perf_counter()
            con.execute(
                "SELECT * FROM ev WHERE (asset = ? OR (asset > ? AND asset < ?)) AND template = ? "
                "AND start_us < ? AND end_us >= ? AND duration_s > 1800 ORDER BY start_us DESC LIMIT 100",
                [f"site/area-{area}", f"site/area-{area}/", f"site/area-{area}0", tpl, hi, lo],
            ).fetchall()
            base.append(time.perf_counter() - q1)
        return {
            "events": n_events,
            "insert_s": round(insert_s, 1),
            "search_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2),
            "search_p95_ms": round(float(np.percentile(lat, 95)) * 1000, 2),
            "duckdb_p95_ms": round(float(np.percentile(base, 95)) * 1000, 2),
            "search_found_mean": round(found / queries, 1),
        }
    finally:
        p.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--only", choices=["live", "backfill", "search"], default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    days = args.days or (7 if args.quick else 30)
    n_events = args.events or (200_000 if args.quick else 1_000_000)
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    figures: dict[str, Any] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="taehwa-bench-analytics-") as tmp:
        root = Path(tmp)
        if args.only in (None, "live"):
            figures.update(bench_live(root, seconds, 10_000))
        if args.only in (None, "backfill"):
            figures.update(bench_backfill(root, days))
        if args.only in (None, "search"):
            figures.update(bench_search(root, n_events))
    for key, value in figures.items():
        print(f"{key:28s} {value}")
    print(json.dumps({"bench": "analytics", "figures": figures}))
    assert threading.active_count() >= 1


if __name__ == "__main__":
    main()
