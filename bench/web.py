"""Web UI benchmark, in headless Chromium (Debian's package, driven by Playwright) against the demo plant.

    python bench/web.py            # full: the demo plus one 1 Hz tag with a year of history (31.5M points)
    python bench/web.py --quick    # the demo plus 30 days of that tag (2.6M points); "year" then spans 30 days of data

Measured, each the median of five loads in a signed-in browser:

- `plant_page_ms`: from navigation to a usable plant page (the asset tree with every asset's state drawn);
- `trend_week_ms`, `trend_year_ms`: from navigation to the trend of one week / one year of the 1 Hz tag drawn (the
  server downsamples to about one bucket per two pixels; the browser draws what it gets);
- `page_<name>_ms`: from navigation to each page of the UI doing its work (the asset page's sparklines drawn, the
  trend of an unbound SKAB tag fitted and drawn, the alerts with their history …), against the goal of 1 s each.

Baselines in the same run: the plant page's HTML fetched alone (no browser), and each trend's downsample fetched
alone from the HTTP API (no page, no drawing); the ratios say what the browser adds.

Prints a table, then as its last line {"bench": "web", "figures": {...}}.
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
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform

CHROMIUM = "/usr/bin/chromium"
TAG = "bench/year-1hz"
DAY_S = 86_400
END = 1_790_000_000  # 2026-09-21: the tag's history ends here


def write_tag(data_dir: Path, days: int) -> int:
    """`days` of one 1 Hz tag ending at END, in day-sized writes."""
    p = Platform(Settings(data_dir=data_dir), background=False)
    written = 0
    rng = np.random.default_rng(1)
    level = 50.0
    try:
        for d in range(days):
            t0 = END - (days - d) * DAY_S
            walk = level + np.cumsum(rng.normal(0, 0.05, DAY_S))
            level = float(walk[-1])
            values = walk + 5 * np.sin(np.arange(DAY_S) * 2 * np.pi / DAY_S)
            table = pa.table(
                {
                    "tag": pa.array([TAG] * DAY_S, pa.string()),
                    "time": pa.array((t0 + np.arange(DAY_S)) * 1_000_000).cast(pa.timestamp("us", tz="UTC")),
                    "value": pa.array(values),
                }
            )
            written += p.historian.write("demo", table).points
        p.historian.flush()
        # what the background maintenance does once the days are quiet: one file per day and its minute and hour
        # summaries (a historian that has run for a year has them; made cold, the first year view makes 365)
        p.historian.compact("demo", force=True)
        p.historian.warm_summaries(budget=1_000_000, force=True)
    finally:
        p.close()
    return written


def serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "TAEHWA_DATA_DIR": str(data_dir),
        "TAEHWA_PORT": str(port),
        "TAEHWA_DEMO_OPCUA_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve", "--demo"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200 and (data_dir / "demo-password").exists():
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("taehwa serve --demo did not start")


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 days of the 1 Hz tag instead of a year")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    days = 30 if args.quick else 365
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="taehwa-bench-web-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {**os.environ, "TAEHWA_DATA_DIR": str(data_dir)}
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "taehwa", "demo", "load"], env=env, check=True, capture_output=True)
        points = write_tag(data_dir, days)
        print(
            f"setup: demo plant and {points:,} points of {TAG} ({days} days at 1 Hz) in "
            f"{time.perf_counter() - began:.0f} s",
            flush=True,
        )
        server, url = serve(data_dir)
        try:
            password = (data_dir / "demo-password").read_text().strip()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--no-first-run",
                    ],
                )
                page = browser.new_context(locale="en-GB", viewport={"width": 1400, "height": 900}).new_page()
                page.set_default_timeout(60_000)
                page.goto(f"{url}/login")
                page.fill("#user", "demo")
                page.fill("#password", password)
                page.click("button[type=submit]")
                page.wait_for_url(lambda u: "/login" not in u)
                cookies = {c["name"]: c["value"] for c in page.context.cookies()}

                plant = []
                for _ in range(6):
                    t0 = time.perf_counter()
                    page.goto(f"{url}/t/demo/plant")
                    page.wait_for_selector("#asset-tree li [data-state-of]")
                    plant.append((time.perf_counter() - t0) * 1000)
                figures["plant_page_ms"] = median_ms(plant[1:])
                html = []
                with httpx.Client(cookies=cookies) as c:
                    for _ in range(5):
                        t0 = time.perf_counter()
                        c.get(f"{url}/t/demo/plant").raise_for_status()
                        html.append((time.perf_counter() - t0) * 1000)
                figures["plant_html_ms"] = median_ms(html)

                pages = {
                    "asset": ("/t/demo/assets/ulsan-water/pump-station/circulation/pump-1", "body[data-sparks=ready]"),
                    "engine": ("/t/demo/assets/engine-shop/fleet-fd001/engine-001", "body[data-sparks=ready]"),
                    "trends_skab": ("/t/demo/trends?tags=skab/anomaly-free/current", "#chart[data-ready]"),
                    "alerts": ("/t/demo/alerts?state=all", "main h1"),
                    "models": ("/t/demo/models", "#train-form"),
                    "connectors": ("/t/demo/connectors", "#connector-form"),
                    "plant_edit": ("/t/demo/plant/edit", "#plant-form"),
                    "operations": ("/t/demo/operations", "#rule-form"),
                    "admin": ("/t/demo/admin", "#token-form"),
                }
                for name, (path, ready) in pages.items():
                    took = []
                    for _ in range(4):
                        t0 = time.perf_counter()
                        page.goto(url + path)
                        page.wait_for_selector(ready, state="attached")
                        took.append((time.perf_counter() - t0) * 1000)
                    figures[f"page_{name}_ms"] = median_ms(took[1:])
                figures["pages_over_1s"] = [k for k, v in figures.items() if k.startswith("page_") and v > 1000]

                end_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END))
                for key, span in (("week", 7), ("year", 365)):
                    start_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END - span * DAY_S))
                    link = f"{url}/t/demo/trends?tags={quote(TAG)}&start={quote(start_iso)}&end={quote(end_iso)}"
                    drawn, points_drawn = [], 0
                    for _ in range(6):
                        t0 = time.perf_counter()
                        page.goto(link)
                        page.wait_for_function("document.getElementById('chart').dataset.values > 0")
                        drawn.append((time.perf_counter() - t0) * 1000)
                        points_drawn = int(page.evaluate("document.getElementById('chart').dataset.values"))
                    every = page.inner_text("#trend-status").split(" · ")[1]
                    api = []
                    with httpx.Client(cookies=cookies, timeout=120) as c:
                        for _ in range(5):
                            t0 = time.perf_counter()
                            c.get(
                                f"{url}/api/v1/demo/points",
                                params={"tags": TAG, "start": start_iso, "end": end_iso, "every": every, "agg": "avg"},
                            ).raise_for_status()
                            api.append((time.perf_counter() - t0) * 1000)
                    figures[f"trend_{key}_ms"] = median_ms(drawn[1:])
                    figures[f"trend_{key}_api_ms"] = median_ms(api)
                    figures[f"trend_{key}_buckets"] = points_drawn
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    print(f"{'figure':32s} {'value':>10s}")
    for k, v in figures.items():
        print(f"{k:32s} {v!s:>10}")
    print(
        f"plant page {figures['plant_page_ms']} ms in the browser, {figures['plant_html_ms']} ms for its HTML alone "
        f"(ratio {figures['plant_page_ms'] / figures['plant_html_ms']:.1f}); trend week "
        f"{figures['trend_week_ms']} ms ({figures['trend_week_api_ms']} ms API alone), year "
        f"{figures['trend_year_ms']} ms ({figures['trend_year_api_ms']} ms API alone)",
        flush=True,
    )
    print(json.dumps({"bench": "web", "quick": args.quick, "days_of_data": days, "figures": figures}))


if __name__ == "__main__":
    main()
