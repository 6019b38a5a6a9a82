"""The city map with 500 sites, in headless Chromium (Debian's package, driven by Playwright) against `taehwa serve`.

    python bench/city_map.py              # 50 companies × 10 sites, each site sharing everything
    python bench/city_map.py --sites 100  # fewer

Measured, each the median of five:

- `map_usable_ms`: from navigation to the map usable — every district, complex and site marker drawn and the live
  feed connected (goal ≤ 1 s);
- `state_change_ms`: from the POST of a point that takes a site's pump into alarm to its marker on the map turning
  to alarm (the historian's write → the twin's roll-up → the SSE feed → the page; goal ≤ 1 s).

Baselines in the same run: the map's JSON fetched alone from the API (no browser, no drawing) against
`map_usable_ms`, and the point's POST alone (its answer, no map) against `state_change_ms`; the ratios say what the
page and the live path add.

Prints a table, then as its last line {"bench": "city_map", "figures": {...}}.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.city.consents import SHARES
from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.core.yamlio import dump_yaml
from taehwa.server.platform import Platform

CHROMIUM = "/usr/bin/chromium"
CITY_FILE = Path(__file__).resolve().parents[1] / "taehwa" / "city" / "data" / "ulsan-city.yaml"
PASSWORD = "bench bench bench"
TOKEN = "bench-token-0123456789abcdef"
TYPES = {
    "Pump": {
        "extends": "Equipment",
        "sensors": {"flow": {"unit": "m3/h", "limits": {"high_warning": 80, "high_alarm": 90}}},
    }
}


def prepare(data_dir: Path, sites: int, per_company: int = 10) -> list[tuple[str, str]]:
    """The city and `sites` sites over companies of `per_company`, spread over Ulsan, each pump normal."""
    p = Platform(Settings(data_dir=data_dir, api_token=TOKEN), background=False)
    made = []
    try:
        p.tenants.create("city", "City office")
        p.twin.load("city", CITY_FILE.read_text())
        p.identity.create_user("mayor", "Mayor", password=PASSWORD, platform_admin=True)
        for c in range((sites + per_company - 1) // per_company):
            tenant = f"co-{c:03d}"
            p.tenants.create(tenant)
            n = min(per_company, sites - c * per_company)
            assets = []
            for s in range(n):
                i = c * per_company + s
                assets.append(
                    {
                        "id": f"site-{s}",
                        "type": "Site",
                        "attributes": {
                            "latitude": 35.40 + 0.25 * ((i * 37) % 100) / 100,
                            "longitude": 129.05 + 0.38 * ((i * 61) % 100) / 100,
                            "complex": "mipo" if i % 2 else "onsan",
                            "industry": ["petrochemical", "automotive", "shipbuilding"][i % 3],
                        },
                        "children": [{"id": "pump", "type": "Pump", "tags": {"flow": f"site-{s}/flow"}}],
                    }
                )
                made.append((tenant, f"site-{s}"))
            p.twin.load(tenant, dump_yaml({"types": TYPES, "assets": assets}))
            p.historian.write(tenant, [(f"site-{s}/flow", datetime.now(UTC), 10.0) for s in range(n)])
            for s in range(n):
                p.city.consents.set(tenant, f"site-{s}", shares=list(SHARES), figures=[])
        p.historian.flush()
    finally:
        p.close()
    return made


def serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TAEHWA_DATA_DIR": str(data_dir), "TAEHWA_PORT": str(port), "TAEHWA_API_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("taehwa serve did not start")


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=500)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        t = time.perf_counter()
        made = prepare(data_dir, args.sites)
        print(f"prepared {len(made)} sites in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        proc, url = serve(data_dir)
        figures: dict[str, Any] = {"sites": len(made)}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            with httpx.Client(base_url=url, headers=auth, timeout=60) as api:
                api.get("/api/v1/city/map").raise_for_status()
                json_s = []
                for _ in range(5):
                    t = time.perf_counter()
                    api.get("/api/v1/city/map").raise_for_status()
                    json_s.append(time.perf_counter() - t)
                with sync_playwright() as pw:
                    b = pw.chromium.launch(
                        executable_path=CHROMIUM,
                        headless=True,
                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                    )
                    page = b.new_context(locale="ko-KR").new_page()
                    page.goto(f"{url}/login")
                    page.fill("#user", "mayor")
                    page.fill("#password", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_url(lambda u: "/login" not in u)
                    usable: list[float] = []
                    phases: list[list[float]] = []
                    for _ in range(5):
                        t = time.perf_counter()
                        page.goto(f"{url}/city")
                        page.wait_for_selector("#city-map[data-connected='1']", timeout=30_000)
                        usable.append(time.perf_counter() - t)
                        phases.append(
                            page.evaluate("""() => { const n = performance.getEntriesByType("navigation")[0];
                            const at = (m) => { const e = performance.getEntriesByName(m)[0]; return e ? e.startTime
                              : null; };
                            return [n.responseStart, n.responseEnd, at("city-js-start"), at("city-drawn"),
                                    n.domContentLoadedEventEnd, n.loadEventEnd, at("city-connected")]; }""")
                        )
                        drawn = page.locator("#city-map .site-marker").count()
                        assert drawn == len(made), f"{drawn} markers of {len(made)}"
                    change, post = [], []
                    for i, (tenant, site) in enumerate(made[:5]):
                        sel = f"[data-site='{tenant}|{site}']"
                        t0 = time.time()
                        r = api.post(
                            f"/api/v1/{tenant}/points",
                            json=[{"tag": f"{site}/flow", "time": datetime.now(UTC).isoformat(), "value": 95.0 + i}],
                        )
                        post.append(time.time() - t0)
                        r.raise_for_status()
                        page.wait_for_selector(f"{sel}.alarm", timeout=10_000)
                        changed_ms = float(page.get_attribute(sel, "data-changed-at") or 0)
                        change.append(changed_ms / 1000 - t0)
                    b.close()
            for j, name in enumerate(
                ("first_byte", "html_done", "script_start", "markers_drawn", "dom_ready", "loaded", "feed_connected")
            ):
                figures[f"phase_{name}_ms"] = round(statistics.median(ph[j] or 0 for ph in phases), 1)
            figures.update(
                {
                    "map_usable_ms": median_ms(usable),
                    "map_json_alone_ms": median_ms(json_s),
                    "state_change_ms": median_ms(change),
                    "point_post_alone_ms": median_ms(post),
                }
            )
            figures["usable_vs_json"] = round(figures["map_usable_ms"] / max(figures["map_json_alone_ms"], 0.1), 2)
            figures["change_vs_post"] = round(figures["state_change_ms"] / max(figures["point_post_alone_ms"], 0.1), 2)
            figures["goals_met"] = figures["map_usable_ms"] <= 1000 and figures["state_change_ms"] <= 1000
        finally:
            proc.terminate()
            proc.wait(30)
    for k, v in figures.items():
        print(f"{k:24} {v}")
    print(json.dumps({"bench": "city_map", "figures": figures}))


if __name__ == "__main__":
    main()
