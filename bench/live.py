"""Live benchmark: two models (PCA anomaly detection, LightGBM forecast) scoring 1,000 pumps as points arrive, an
alert rule on every pump, batch scoring beside the bare model, and the predict endpoint.

    python bench/live.py           # 1,000 pumps × 5 sensors at 2 Hz = 10,000 points/s for 30 s; backfill 50 pumps × 1 h
    python bench/live.py --quick   # the same plant and rate for 8 s; backfill 20 pumps × 20 min

The platform runs in this process as `taehwa serve` runs it (historian, twin, scorer, rule engine, notifier); a writer
thread writes one batch every 100 ms (a fifth of the pumps each time, every pump every 500 ms, all its sensors at its
grid time). Measured:

- `score_p99_ms`: from the start of the write call that carried a point to the write of the output row that used it
  (both models, every live row);
- `alert_p99_ms`: from the start of the write call that carried a value over a threshold to the `alert` event on the
  twin's change stream (one excursion a second, each on another pump);
- `batch_rows_s`: `taehwa live backfill` (historian read, rows, features, model) of the LightGBM model over a past
  range, beside the same pipeline's bare `predict` on the same rows already in memory (`batch_ratio_vs_bare`); the
  PCA detector's figures beside them (`_pca`: its model is so cheap that reading the points dominates);
- `predict_p99_ms`, `predict_rps`: `POST /api/v1/{tenant}/models/{name}/predict` with one row, against `taehwa serve`
  in its own process: p99 of 1,000 sequential calls, and calls/s from 4 concurrent clients; beside them the same
  call made in-process, without HTTP.

Prints a table, then as its last line {"bench": "live", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.core.yamlio import dump_yaml
from taehwa.historian.schema import STORE_SCHEMA
from taehwa.live.deployments import history_rows, required_columns
from taehwa.live.scoring import history_blocks, rows_frame
from taehwa.server.platform import Platform

TENANT = "bench"
TOKEN = "bench-live-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N_PUMPS = 1000
AREAS = 10
SENSORS = 5
STEP_US = 500_000  # 2 Hz
GROUPS = 5  # one fifth of the pumps per 100 ms batch
US = 1_000_000


def pump_path(i: int) -> str:
    return f"plant/area-{i // (N_PUMPS // AREAS):02d}/pump-{i:04d}"


def pump_tags(i: int) -> list[str]:
    return [f"P{i:04d}/S{k}" for k in range(SENSORS)]


def plant_doc() -> dict[str, Any]:
    sensors = {f"s{k}": {"unit": "-", "interval": "500ms"} for k in range(SENSORS)}
    per = N_PUMPS // AREAS
    areas = [
        {
            "id": f"area-{a:02d}",
            "type": "Area",
            "children": [
                {"id": f"pump-{i:04d}", "type": "Pump", "tags": {f"s{k}": t for k, t in enumerate(pump_tags(i))}}
                for i in range(a * per, (a + 1) * per)
            ],
        }
        for a in range(AREAS)
    ]
    return {
        "types": {
            "Pump": {
                "extends": "Equipment",
                "sensors": sensors,
                "derived": {"anomaly_score": {"limits": {"high_alarm": 1.0}}, "forecast": {}},
            }
        },
        "assets": [{"id": "plant", "type": "Site", "children": areas}],
    }


def signals(rng: np.random.Generator, n: int, temp0: float = 60.0) -> np.ndarray:
    """n rows of the 5 sensors of one pump: flow, pressure following it, a slow temperature, vibration, current."""
    flow = 100 + 5 * rng.standard_normal(n)
    pressure = 0.2 * flow + 0.2 * rng.standard_normal(n)
    temp = temp0 + np.cumsum(0.05 * rng.standard_normal(n)) + 0.02 * (flow - 100)
    vib = 2 + 0.3 * rng.standard_normal(n)
    current = 0.5 * flow + rng.standard_normal(n)
    return np.column_stack([flow, pressure, temp, vib, current])


def table_of(tags: list[str], times_us: np.ndarray, values: np.ndarray) -> pa.Table:
    n = len(tags)
    return pa.table(
        {
            "tag": pa.array(tags, pa.string()),
            "time": pa.array(times_us, pa.int64()).cast(pa.timestamp("us")),
            "value": pa.array(values, pa.float64()),
            "quality": pa.array(np.zeros(n, np.uint8), pa.uint8()),
        },
        schema=STORE_SCHEMA,
    )


def write_history(p: Platform, pumps: int, start_us: int, seconds: int) -> int:
    """`seconds` of 2 Hz history for the first `pumps` pumps."""
    rng = np.random.default_rng(7)
    n = seconds * US // STEP_US
    times = start_us + np.arange(n, dtype=np.int64) * STEP_US
    written = 0
    for i in range(pumps):
        vals = signals(rng, n)
        tags = [t for t in pump_tags(i) for _ in range(n)]
        written += p.historian.write_checked(TENANT, table_of(tags, np.tile(times, SENSORS), vals.T.reshape(-1))).points
    p.historian.flush()
    return written


def train(p: Platform, start_us: int, end_us: int) -> None:
    """The PCA detector and the LightGBM forecast, trained on the pumps of area 00 that have history, promoted."""
    data = {"under": "plant/area-00", "start": iso(start_us), "end": iso(end_us), "step": "500ms", "method": "previous"}
    p.lab.run(
        TENANT,
        {
            "name": "pump-pca",
            "task": "anomaly",
            "data": data,
            "features": {"windows": [4], "stats": ["mean", "std"]},
            "model": {"kind": "pca", "params": {"explained_variance": 0.95}},
            "split": {"method": "holdout", "train_fraction": 0.5},
            "register_as": {"name": "pump-pca", "asset_type": "Pump"},
        },
        track=False,
    )
    p.lab.run(
        TENANT,
        {
            "name": "pump-temp-forecast",
            "task": "forecast",
            "data": data,
            "labels": {"forecast_signal": "s2", "horizon": 4},
            "features": {"windows": [4, 16], "stats": ["mean", "std", "slope"]},
            "model": {"kind": "lgbm_regressor", "params": {"n_estimators": 200, "num_leaves": 31}},
            "split": {"method": "holdout", "train_fraction": 0.7},
            "register_as": {"name": "pump-temp-forecast", "asset_type": "Pump"},
        },
        track=False,
    )
    p.lab.promote(TENANT, "pump-pca", 1, "bench", force=True)
    p.lab.promote(TENANT, "pump-temp-forecast", 1, "bench", force=True)


def iso(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // US)) + f".{us % US:06d}+00:00"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class AlertWatcher:
    """Follows the twin's change stream for `alert` events, as an SSE client of the server would."""

    def __init__(self, p: Platform) -> None:
        self.p = p
        self.raised: dict[str, float] = {}  # asset → when its first `raised` event arrived
        self.ready = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        self.ready.wait(5)

    async def _run(self) -> None:
        follow = self.p.twin.hub.follow(TENANT, under=None, kinds={"alert"}, last_event_id=None, heartbeat_s=0.2)
        self.ready.set()
        async for events in follow:
            now = time.perf_counter()
            for ev in events or ():
                body = orjson.loads(ev.body)
                if body.get("action") == "raised":
                    self.raised.setdefault(body["alert"]["asset"], now)
            if self.stop:
                break


def stream(p: Platform, seconds: float) -> dict[str, Any]:
    """10,000 points/s for `seconds`; latencies of the scored rows and of the alerts."""
    rng = np.random.default_rng(11)
    paths = [pump_path(i) for i in range(N_PUMPS)]
    group_of = {path: i % GROUPS for i, path in enumerate(paths)}
    groups = [[i for i in range(N_PUMPS) if i % GROUPS == k] for k in range(GROUPS)]
    group_tags = [[t for i in g for t in pump_tags(i)] for g in groups]
    temps = 60 + rng.standard_normal(N_PUMPS)
    written_at: dict[tuple[int, int], float] = {}  # (group, grid time) → write call start
    spikes: dict[str, float] = {}  # asset → write call start of its excursion
    scored: list[tuple[float, str, pa.Array, pa.Array]] = []

    def on_scored(tenant: str, run: Any, table: pa.Table) -> None:
        primary = next(iter(run.outputs.values()))
        mine = table.filter(pa.compute.ends_with(table.column("tag"), "/" + primary))
        scored.append((time.perf_counter(), primary, mine.column("tag"), mine.column("time")))

    p.live.scorer.on_scored.append(on_scored)
    watcher = AlertWatcher(p)
    t0_us = (time.time_ns() // 1000) // STEP_US * STEP_US + STEP_US
    start = time.perf_counter() + (t0_us / US - time.time())
    n_ticks = int(seconds * 10)
    late = 0
    points = 0
    for n in range(n_ticks):
        due = start + n * 0.1
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.05:
            late += 1
        k, cycle = n % GROUPS, n // GROUPS
        grid = t0_us + cycle * STEP_US
        vals = signals(rng, len(groups[k]))
        temps[groups[k]] += 0.05 * rng.standard_normal(len(groups[k]))
        vals[:, 2] = temps[groups[k]]
        spike = None
        if n % 10 == 0:  # an excursion a second, each on another pump: vibration over the alarm limit
            spike = (n // 10 * 7) % len(groups[k])
            vals[spike, 3] = 60.0
        table = table_of(group_tags[k], np.full(len(group_tags[k]), grid, np.int64), vals.reshape(-1))
        began = time.perf_counter()
        p.historian.write_checked(TENANT, table)
        written_at[(k, grid)] = began
        if spike is not None:
            spikes[paths[groups[k][spike]]] = began
        points += table.num_rows
    elapsed = time.perf_counter() - start
    expected = (n_ticks // GROUPS) * N_PUMPS  # rows per model
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sum(
            pa.compute.sum(pa.compute.greater_equal(times.cast(pa.int64()), t0_us)).as_py() or 0
            for _, _, _, times in scored
        )  # live rows only: the catch-up of the history is not waited for
        if got >= 2 * expected and len(watcher.raised) >= len(spikes):
            break
        time.sleep(0.1)
    watcher.stop = True
    p.live.scorer.on_scored.remove(on_scored)
    delays: list[float] = []
    rows = 0
    for at, primary, tags, times in scored:
        suffix = len(primary) + 1
        for tag, t in zip(tags.to_pylist(), times.cast(pa.int64()).to_pylist(), strict=True):
            asset = tag[:-suffix]
            began_at = written_at.get((group_of[asset], t))
            if began_at is not None:
                delays.append((at - began_at) * 1000)
                rows += 1
    alert_delays = [(watcher.raised[a] - began) * 1000 for a, began in spikes.items() if a in watcher.raised]
    return {
        "points": points,
        "seconds": elapsed,
        "late_ticks": late,
        "rows_expected": 2 * expected,
        "rows_scored": rows,
        "score_ms": delays,
        "alerts_expected": len(spikes),
        "alert_ms": alert_delays,
    }


def batch(p: Platform, model: str, pumps: int, start_us: int, end_us: int, repeat: int = 3) -> dict[str, float]:
    """Backfill a past range, and the same pipeline's bare predict on the same rows already in memory; each the
    best of `repeat` runs, taken in turns (this machine's speed wanders from one second to the next)."""
    under = "plant/area-00"
    pipe, _ = p.live.models.get(TENANT, model, None)
    columns = required_columns(pipe)
    units = {pump_path(i): [pump_tags(i)[int(c[1:])] for c in columns] for i in range(pumps)}
    blocks = history_blocks(p.historian, TENANT, units, start_us, end_us, STEP_US, 5 * STEP_US, history_rows(pipe))
    frame = rows_frame(columns, blocks)
    batch_s, bare_s, rows = [], [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        doc = p.live.backfill(TENANT, model=model, under=under, start=iso(start_us), end=iso(end_us), write="none")
        batch_s.append(time.perf_counter() - began)
        rows = doc["rows"]
        began = time.perf_counter()
        pipe.predict(frame)
        bare_s.append(time.perf_counter() - began)
    return {
        "rows": rows,
        "batch_rows_s": rows / min(batch_s),
        "bare_rows": len(frame),
        "bare_rows_s": len(frame) / min(bare_s),
    }


def bare_predict(p: Platform) -> dict[str, tuple[float, float]]:
    """p50 and p99 of the one-row predict as a direct service call, the baseline of the endpoint's figures."""
    rng = np.random.default_rng(5)
    out = {}
    for model, key in (("pump-pca", "pca"), ("pump-temp-forecast", "lgbm")):
        lat = []
        for i in range(1300):
            row = [dict(zip([f"s{k}" for k in range(SENSORS)], signals(rng, 1)[0].tolist(), strict=True))]
            began = time.perf_counter()
            p.live.predict(TENANT, model, row)
            if i >= 300:
                lat.append((time.perf_counter() - began) * 1000)
        out[key] = (pct(lat, 50), pct(lat, 99))
    return out


def calls_per_s(endpoint: str, *, clients: int, seconds: float) -> float:
    """Calls/s of one-row predicts from `clients` concurrent clients, each on its own connection."""
    counts = [0] * clients
    stop_at = time.perf_counter() + seconds
    body = {"rows": [{f"s{k}": 1.0 * k for k in range(SENSORS)}]}

    def client(i: int) -> None:
        with httpx.Client(headers=AUTH) as c:
            while time.perf_counter() < stop_at:
                c.post(endpoint, json=body).raise_for_status()
                counts[i] += 1

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def predict_load(data_dir: Path) -> dict[str, float]:
    """The predict endpoint of `taehwa serve` in its own process: sequential p99, and calls/s with 4 clients."""
    port = free_port()
    env = {
        **os.environ,
        "TAEHWA_DATA_DIR": str(data_dir),
        "TAEHWA_PORT": str(port),
        "TAEHWA_API_TOKEN": TOKEN,
        "TAEHWA_RATE_LIMIT_PER_S": "1000000",
        "TAEHWA_RATE_LIMIT_BURST": "1000000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        rng = np.random.default_rng(3)
        out: dict[str, float] = {}
        for model, key in (("pump-pca", "pca"), ("pump-temp-forecast", "lgbm")):
            endpoint = f"{url}/api/v1/{TENANT}/models/{model}/predict"
            with httpx.Client(headers=AUTH) as c:
                for _ in range(300):  # warm up: the model is loaded on the first call
                    c.post(
                        endpoint,
                        json={
                            "rows": [
                                dict(zip([f"s{k}" for k in range(SENSORS)], signals(rng, 1)[0].tolist(), strict=True))
                            ]
                        },
                    )
                lat = []
                for _ in range(1000):
                    body = {
                        "rows": [dict(zip([f"s{k}" for k in range(SENSORS)], signals(rng, 1)[0].tolist(), strict=True))]
                    }
                    began = time.perf_counter()
                    r = c.post(endpoint, json=body)
                    lat.append((time.perf_counter() - began) * 1000)
                    if r.status_code != 200:
                        raise SystemExit(f"predict answered {r.status_code}: {r.text}")
            out[f"predict_p50_ms_{key}"] = pct(lat, 50)
            out[f"predict_p99_ms_{key}"] = pct(lat, 99)
            out[f"predict_rps_{key}"] = calls_per_s(endpoint, clients=4, seconds=3.0)
        return out
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 s of stream and a shorter backfill")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")  # scorer trouble shows
    seconds, hist_pumps, hist_s = (8.0, 20, 1200) if args.quick else (30.0, 50, 3600)
    with tempfile.TemporaryDirectory(prefix="taehwa-bench-live-") as tmp:
        data_dir = Path(tmp) / "data"
        p = Platform(Settings(data_dir=data_dir, api_token=TOKEN))
        p.tenants.create(TENANT)
        p.twin.load(TENANT, dump_yaml(plant_doc()))
        now_us = time.time_ns() // 1000 // STEP_US * STEP_US
        h0 = now_us - 2 * hist_s * US
        began = time.perf_counter()
        n_hist = write_history(p, hist_pumps, h0, hist_s)
        train(p, h0, h0 + hist_s * US // 2)
        print(
            f"setup: {N_PUMPS} pumps, {n_hist:,} points of history on {hist_pumps}, two models trained and "
            f"promoted in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        figures: dict[str, Any] = {}
        for name, model in (("pca", "pump-pca"), ("lgbm", "pump-temp-forecast")):
            b = batch(p, model, hist_pumps, h0 + hist_s * US // 2, h0 + hist_s * US)
            ratio = b["batch_rows_s"] / b["bare_rows_s"]
            print(
                f"batch {name:5s} backfill {b['rows']:,} rows at {b['batch_rows_s']:,.0f} rows/s; bare predict "
                f"{b['bare_rows']:,} rows at {b['bare_rows_s']:,.0f} rows/s; ratio {ratio:.2f}",
                flush=True,
            )
            figures[f"batch_rows_s_{name}"] = round(b["batch_rows_s"])
            figures[f"bare_rows_s_{name}"] = round(b["bare_rows_s"])
            figures[f"batch_ratio_vs_bare_{name}"] = round(ratio, 3)
        figures["batch_rows_s"] = figures["batch_rows_s_lgbm"]
        figures["batch_ratio_vs_bare"] = figures["batch_ratio_vs_bare_lgbm"]
        p.live.deploy(TENANT, {"name": "pumps-pca", "model": "pump-pca", "asset_type": "Pump"})
        p.live.deploy(TENANT, {"name": "pumps-forecast", "model": "pump-temp-forecast", "asset_type": "Pump"})
        p.live.rules.put(
            TENANT,
            {
                "name": "vibration-high",
                "kind": "threshold",
                "asset_type": "Pump",
                "signal": "s3",
                "value": 50.0,
                "hysteresis": 5.0,
                "severity": "alarm",
            },
        )
        p.live.start()
        s = stream(p, seconds)
        rate = s["points"] / s["seconds"]
        figures.update(
            {
                "points_s": round(rate),
                "assets": N_PUMPS,
                "score_p50_ms": round(pct(s["score_ms"], 50), 1),
                "score_p99_ms": round(pct(s["score_ms"], 99), 1),
                "rows_scored": s["rows_scored"],
                "rows_expected": s["rows_expected"],
                "alert_p50_ms": round(pct(s["alert_ms"], 50), 1),
                "alert_p99_ms": round(pct(s["alert_ms"], 99), 1),
                "alerts": len(s["alert_ms"]),
                "alerts_expected": s["alerts_expected"],
            }
        )
        print(
            f"stream {rate:,.0f} points/s on {N_PUMPS} pumps for {s['seconds']:.1f} s ({s['late_ticks']} late "
            f"batches): {s['rows_scored']:,}/{s['rows_expected']:,} rows scored, delay p50 "
            f"{figures['score_p50_ms']} ms p99 {figures['score_p99_ms']} ms; {len(s['alert_ms'])}/"
            f"{s['alerts_expected']} alerts, delay p50 {figures['alert_p50_ms']} ms p99 "
            f"{figures['alert_p99_ms']} ms",
            flush=True,
        )
        bare = bare_predict(p)
        p.close()
        pr = predict_load(data_dir)
        print(
            f"predict one row: PCA p50 {pr['predict_p50_ms_pca']:.2f} ms p99 {pr['predict_p99_ms_pca']:.2f} ms, "
            f"{pr['predict_rps_pca']:,.0f} calls/s; LightGBM p50 {pr['predict_p50_ms_lgbm']:.2f} ms p99 "
            f"{pr['predict_p99_ms_lgbm']:.2f} ms, {pr['predict_rps_lgbm']:,.0f} calls/s",
            flush=True,
        )
        print(
            f"  the same call in-process (no HTTP): PCA p50 {bare['pca'][0]:.2f} ms p99 {bare['pca'][1]:.2f} ms; "
            f"LightGBM p50 {bare['lgbm'][0]:.2f} ms p99 {bare['lgbm'][1]:.2f} ms",
            flush=True,
        )
        figures.update({k: round(v, 2) for k, v in pr.items()})
        figures["predict_bare_p99_ms_pca"] = round(bare["pca"][1], 2)
        figures["predict_bare_p99_ms_lgbm"] = round(bare["lgbm"][1], 2)
        figures["predict_p99_ms"] = figures["predict_p99_ms_pca"]
        figures["predict_rps"] = round(figures["predict_rps_pca"])
    print(json.dumps({"bench": "live", "quick": args.quick, "figures": figures}))


if __name__ == "__main__":
    main()
