"""Scale-out benchmark: many small models at once, and the HTTP API's request rate.

    python bench/scale.py            # 200 models; 10 s of API load
    python bench/scale.py --quick    # 50 models; 3 s of API load

Measured:

- a sweep of N small models (a 10-minute-ahead pressure forecast by gradient boosting, 60 trees, every combination
  of a grid of leaves, leaf sizes and learning rates), each backtested time-ordered (3 rolling folds) on the same 3
  days of a synthetic pump at 1 min: serially in one process (the baseline), over the local
  process pool (one worker per core) and over a local Ray instance; `pool_speedup` and `ray_speedup` are the serial
  time over each, and `identical` says whether all three gave the same figures;
- `api_rps_1`, `api_rps_2`: requests/s of `taehwa serve` with one and with two API processes (`--workers 2`: the
  second answers reads from a historian that follows the writer) answering an hour of a tag's points as JSON, from
  loopback: `wrk` (Debian's package) with 16 connections when installed, else 8 Python client threads (which
  take most of a core themselves). The clients share the machine's cores with the server.

Prints a table, then as its last line {"bench": "scale", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.lab import fanout
from taehwa.server.platform import Platform

TAGS = ["pump/PT", "pump/FT", "pump/TT"]
WRK = shutil.which("wrk")
START = pd.Timestamp("2024-03-01T00:00:00Z")
SPEC: dict[str, Any] = {
    "name": "scale-sweep",
    "task": "forecast",
    "data": {"tags": TAGS, "start": "2024-03-01", "end": "2024-03-04", "step": "1m"},
    "labels": {"forecast_signal": "pump/PT", "horizon": 10},
    "features": {"windows": [5, 15], "stats": ["mean", "std"]},
    "model": {"kind": "lgbm_regressor", "params": {"n_estimators": 60, "subsample": 1.0, "colsample_bytree": 1.0}},
    "split": {"method": "rolling", "folds": 3, "train_fraction": 0.4},
}


def plant(p: Platform) -> None:
    """Three days of a pump at 1 min whose pressure follows its flow, with two labelled spells where it does not."""
    p.tenants.create("bench")
    rng = np.random.default_rng(7)
    t = pd.date_range(START, periods=3 * 1440, freq="1min")
    flow = 100 + 5 * rng.standard_normal(len(t))
    pressure = 0.2 * flow + 0.2 * rng.standard_normal(len(t))
    temp = 40 + 0.05 * flow + 0.3 * rng.standard_normal(len(t))
    spells = [("2024-03-02T06:00:00Z", "2024-03-02T08:00:00Z"), ("2024-03-03T12:00:00Z", "2024-03-03T13:30:00Z")]
    for a, b in spells:
        m = (t >= pd.Timestamp(a)) & (t < pd.Timestamp(b))
        pressure[m] = 0.2 * (200 - flow[m]) + 0.2 * rng.standard_normal(m.sum())
    p.historian.write(
        "bench", pd.DataFrame({"time": t, "pump/PT": pressure, "pump/FT": flow, "pump/TT": temp}), layout="wide"
    )
    p.historian.flush()
    p.labels.add("bench", [{"asset": "pump", "kind": "anomaly", "start": a, "end": b} for a, b in spells])


def grid(n: int) -> dict[str, list[Any]]:
    """About `n` combinations of the forecast's gradient-boosting settings."""
    leaves, children = [7, 15, 31, 63], [5, 10, 20, 40, 80]
    rates = np.round(np.linspace(0.03, 0.3, max(1, n // (len(leaves) * len(children)))), 4)
    return {"num_leaves": leaves, "min_child_samples": children, "learning_rate": [float(r) for r in rates]}


def sweeps(data_dir: Path, n: int) -> dict[str, Any]:
    p = Platform(Settings(data_dir=data_dir), background=False)
    try:
        plant(p)
        g = grid(n)
        times, docs = {}, {}
        for backend in ("serial", "pool", "ray"):
            t0 = time.perf_counter()
            docs[backend] = p.lab.sweep("bench", SPEC, g, backend=backend)
            times[backend] = time.perf_counter() - t0
            print(f"  {backend:6} {docs[backend]['combinations']} models in {times[backend]:.2f} s", flush=True)
        fanout.shutdown_ray()
        same = all(
            [(r["params"], r["metrics"]) for r in docs[b]["results"]]
            == [(r["params"], r["metrics"]) for r in docs["serial"]["results"]]
            for b in ("pool", "ray")
        )
        return {
            "models": docs["serial"]["combinations"],
            "cores": os.cpu_count(),
            "serial_s": round(times["serial"], 2),
            "pool_s": round(times["pool"], 2),
            "ray_s": round(times["ray"], 2),
            "pool_speedup": round(times["serial"] / times["pool"], 2),
            "ray_speedup": round(times["serial"] / times["ray"], 2),
            "identical": same,
            "best_rmse": round(docs["serial"]["best"]["metrics"]["rmse"], 4),
        }
    finally:
        p.close()


def api_rate(data_dir: Path, seconds: float, clients: int = 8, workers: int = 1) -> float:
    """Requests/s of `taehwa serve` with `workers` API processes answering an hour of points."""
    port = free_port()
    env = {
        **os.environ,
        "TAEHWA_DATA_DIR": str(data_dir),
        "TAEHWA_PORT": str(port),
        "TAEHWA_API_TOKEN": "bench-token",
        "TAEHWA_RATE_LIMIT_PER_S": "100000",
        "TAEHWA_RATE_LIMIT_BURST": "100000",
        "TAEHWA_WORKERS": str(workers),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        seen: set[str] = set()
        for _ in range(600):  # until every process answers
            try:
                seen.add(httpx.get(f"{url}/healthz").headers["x-taehwa-worker"])
                if len(seen) >= workers:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        query = f"{url}/api/v1/bench/points?tags=pump/PT&start=2024-03-02T00:00:00Z&end=2024-03-02T01:00:00Z"
        headers = {"Authorization": "Bearer bench-token"}
        assert httpx.get(query, headers=headers).status_code == 200
        if WRK is not None:  # a client in C: the Python clients below would take most of a core themselves
            done = subprocess.run(
                [
                    WRK,
                    "-t1",
                    f"-c{2 * clients}",
                    f"-d{max(1, round(seconds))}s",
                    "-H",
                    "Authorization: Bearer bench-token",
                    query,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if "Non-2xx" in done:
                raise RuntimeError(f"the API refused requests under load:\n{done}")
            return float(next(line.split()[1] for line in done.splitlines() if line.startswith("Requests/sec")))
        counts = [0] * clients
        stop = time.perf_counter() + seconds

        def client(i: int) -> None:
            with httpx.Client(headers=headers) as c:
                while time.perf_counter() < stop:
                    if c.get(query).status_code == 200:
                        counts[i] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="50 models and 3 s of API load")
    args = ap.parse_args()
    n, seconds = (50, 3.0) if args.quick else (200, 10.0)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        print(f"sweep of about {n} small models (LightGBM forecasts, 3 rolling folds each):", flush=True)
        figures = sweeps(data_dir, n)
        figures["api_rps_1"] = round(api_rate(data_dir, seconds), 1)
        figures["api_rps_2"] = round(api_rate(data_dir, seconds, workers=2), 1)
    print(f"{'figure':24} value")
    for k, v in figures.items():
        print(f"{k:24} {v}")
    print(
        json.dumps(
            {
                "bench": "scale",
                "quick": args.quick,
                "figures": figures,
                "notes": {"api_client": "wrk" if WRK else "httpx threads"},
            }
        )
    )


if __name__ == "__main__":
    main()
