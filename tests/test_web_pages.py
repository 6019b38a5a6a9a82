"""Every page of the web UI in a real browser, in Korean and in English, on one platform and one browser per module.

Each page must load without a browser console error, an uncaught exception or a failed request (a model output
not yet written is "no output yet", never a 404): in English with no serious or critical accessibility violation
found by axe-core (vendored under tests/vendor, injected by the test, never served), in Korean with nothing left in
English (the Korean pages at 1024 px in the dark theme are checked by axe-core too). Then the journeys issue 23
names: the trends page draws a tag no asset binds and takes a time typed without a zone (read as UTC), the plant
tree folds and searches (a fleet is one tile), alerts explain themselves (value against limit, rule, model,
history) and are acknowledged in bulk, promotion asks its reason in a dialog, the run report is inside the UI with
its directions.
Screenshots: `test-output/web/pages-<lang>-<page>.png`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
import yaml

from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from taehwa.web.directions import lower_better
from tests.conftest import TOKEN, serving
from tests.test_live import SPEC, T0, TRAIN_S, plant_yaml, pump_rows
from tests.test_web import LOCALES, PASSWORD, chromium, signed_in, untranslated, watch_failed_requests

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
SHOTS = Path(os.environ.get("TAEHWA_TEST_OUTPUT", "test-output")) / "web"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SKAB = "skab/run-7/current"  # a tag no asset binds


def fleet_plant() -> str:
    """test_live's pumps, and a yard of twelve valves (a fleet: one tile, not twelve lines)."""
    doc = yaml.safe_load(plant_yaml())
    doc["assets"].append(
        {
            "id": "yard",
            "type": "Site",
            "children": [
                {"id": f"valve-{i:02d}", "name": f"Valve {i}", "type": "Valve", "tags": {"position": f"Y{i}/ZT"}}
                for i in range(12)
            ],
        }
    )
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str, str]]:
    """One platform for the module: pumps with a promoted model and an alert rule, an unbound SKAB tag, an engineer
    of acme who also sees the empty company rival, a city admin; served on loopback."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("web") / "data", api_token=TOKEN)
    platform = Platform(settings, background=False)
    try:
        platform.tenants.create("acme")
        platform.tenants.create("rival")
        platform.twin.load("acme", fleet_plant())
        platform.historian.write("acme", pump_rows(0, TRAIN_S))
        platform.historian.write(
            "acme",
            [
                {"tag": SKAB, "time": (T0 + pd.Timedelta(seconds=k)).isoformat(), "value": 2.0 + (k % 7) / 10}
                for k in range(0, 900, 3)
            ],
        )
        platform.historian.set_tag("acme", SKAB, {"unit": "A"})
        platform.historian.flush()
        run = platform.lab.run("acme", SPEC, track=False)
        platform.lab.promote("acme", "pump-pca", 1, "first model", force=True)
        platform.identity.create_user("kim", "Kim Engineer", password=PASSWORD)
        platform.identity.set_role("kim", "acme", "engineer")
        platform.identity.set_role("kim", "rival", "engineer")
        platform.identity.create_user("city", "City office", password=PASSWORD, platform_admin=True)
        platform.live.rules.put(
            "acme",
            {
                "name": "pressure-high",
                "kind": "threshold",
                "asset_type": "Pump",
                "signal": "pressure",
                "value": 50.0,
                "severity": "alarm",
            },
        )
        platform.live.engine.refresh(force=True)
        t = (T0 + pd.Timedelta(seconds=TRAIN_S + 5)).isoformat()
        platform.historian.write(
            "acme",
            [
                {"tag": "P1/PT", "time": t, "value": 80.0},
                {"tag": "P2/PT", "time": t, "value": 81.0},
                {"tag": "P3/PT", "time": t, "value": 82.0},
            ],
        )
        platform.live.engine.drain()
        with serving(platform) as url:
            yield platform, url, str(run["run_id"])
    finally:
        platform.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def contexts(site: tuple[Platform, str, str], browser: Any) -> Iterator[dict[str, Any]]:
    """Signed-in contexts: kim in each language, and the city office (control tower) in each language."""
    _platform, url, _run = site
    out = {lang: signed_in(browser, url, lang) for lang in LOCALES}
    out.update({f"city-{lang}": signed_in(browser, url, lang, "city") for lang in LOCALES})
    yield out
    for ctx in out.values():
        ctx.close()


class Watched:
    """A page whose console errors, uncaught exceptions and failed requests are collected."""

    def __init__(self, ctx: Any) -> None:
        self.page = ctx.new_page()
        self.page.set_default_timeout(15_000)
        self.problems: list[str] = []
        self.page.on(
            "console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        self.page.on(
            "response", lambda r: self.problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None
        )
        watch_failed_requests(self.page, self.problems)

        def refuse_dialog(d: Any) -> None:
            self.problems.append(f"native dialog: {d.message}")
            d.dismiss()

        self.page.on("dialog", refuse_dialog)

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_load_state("load")
        return self.page

    def go(self, url: str) -> Any:
        """Leave the page once it has loaded (its script included), so no request of it is cut short, then open url."""
        self.page.wait_for_load_state("load")
        return self.open(url)

    def close(self) -> list[str]:
        self.page.close()
        return self.problems


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def axe_violations(page: Any) -> list[str]:
    """Serious and critical axe-core violations of the page, one line each."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {v['nodes'][0]['target']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


PAGES = {  # name: (path, what shows the page has done its work)
    "plant": ("/t/acme/plant", "#asset-tree"),
    "plant-empty": ("/t/rival/plant", "#empty-plant"),
    "asset": ("/t/acme/assets/site/p0", "body[data-sparks=ready]"),
    "asset-alarm": ("/t/acme/assets/site/p1", "body[data-sparks=ready]"),
    "trends": (f"/t/acme/trends?tags=P0/PT,P0/FT,{SKAB}", "#chart[data-ready]"),
    "alerts": ("/t/acme/alerts", "#alerts"),
    "models": ("/t/acme/models", "#registry"),
    "report": ("/t/acme/models/runs/{run}", "#figures"),
    "connectors": ("/t/acme/connectors", "#connector-form"),
    "plant-edit": ("/t/acme/plant/edit", "#plant-form"),
    "compare": ("/t/acme/models/compare?name=pump-pca&a=1&b=1", "#compare"),
    "operations": ("/t/acme/operations", "#rule-form"),
    "admin": ("/t/acme/admin", "#token-form"),
    "academy": ("/academy", "h1"),
    "tower": ("/tower", "#tower[data-refreshed]"),
}


@pytest.mark.parametrize("lang", list(LOCALES))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_clean_passes_axe_in_english_and_leaves_no_english_in_korean(
    site: tuple[Platform, str, str], contexts: dict[str, Any], name: str, lang: str
) -> None:
    _platform, url, run = site
    path, ready = PAGES[name]
    w = Watched(contexts[f"city-{lang}" if name == "tower" else lang])
    page = w.open(url + path.format(run=run))
    page.wait_for_selector(ready, state="attached")
    assert page.locator("html").get_attribute("lang") == lang
    page.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")  # late fetches land
    shot(page, f"pages-{lang}-{name}")
    violations = axe_violations(page) if lang == "en" else untranslated(page)  # axe's rules do not read the words
    problems = w.close()
    assert problems == [], f"{name} ({lang}): {problems}"
    assert violations == [], f"{name} ({lang}): {violations}"


def test_trends_draws_an_unbound_tag_from_a_time_typed_without_a_zone(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    _platform, url, _run = site
    w = Watched(contexts["en"])
    typed = "2026-11-01 00:05:00"  # no Z: read as UTC, not as the browser's Asia/Seoul
    page = w.open(f"{url}/t/acme/trends?tags={quote(SKAB)}&start={quote(typed)}")
    page.wait_for_selector("#chart[data-ready]", state="attached")
    data = page.evaluate("({...document.getElementById('chart').dataset})")
    assert int(data["values"]) > 0 and data["axes"] == "1"
    assert float(data["start"]) == pd.Timestamp("2026-11-01T00:05:00Z").value / 1e6
    # no range: the view fits the data (15 minutes of it), not a day of empty buckets
    w.go(f"{url}/t/acme/trends?tags={quote(SKAB)},P0/PT")
    page.wait_for_selector("#chart[data-ready]", state="attached")
    data = page.evaluate("({...document.getElementById('chart').dataset})")
    assert float(data["end"]) - float(data["start"]) < 2 * 3600 * 1000
    assert data["axes"] == "2"  # A and bar: one y axis per unit
    assert "(A)" in page.inner_text("#chart") and "UTC" in page.inner_text("#trend-status")
    # the tag browser finds it by name and adds it to the tags
    page.click("#tab-name")
    page.click("#by-name summary:text-is('skab/')")  # folders open (and are built) on demand
    page.click("#by-name summary:text-is('run-7/')")
    assert page.locator("#by-name input[value='skab/run-7/current']").is_checked()
    page.fill("#tag-filter", "run-7")  # the search goes over every tag
    assert page.locator("#tag-results input[value='skab/run-7/current']").is_visible()
    assert page.locator("#tag-results input[name=pick]").count() == 1
    page.fill("#tag-filter", "")
    page.click("#tab-asset")
    page.locator("#by-asset details:has-text('site/p3') summary").click()
    page.check("#by-asset input[value='P3/FT']")
    assert page.input_value("#tags").split(",") == [SKAB, "P0/PT", "P3/FT"]
    shot(page, "pages-en-trends-unbound")
    assert w.close() == []


def test_plant_tree_folds_searches_and_shows_a_fleet_as_one_tile(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    _platform, url, _run = site
    w = Watched(contexts["ko"])
    page = w.open(f"{url}/t/acme/plant")
    assert page.locator("[data-fleet='yard'] .cell").count() == 12
    assert page.locator("li[data-path='yard/valve-03']").count() == 0  # not twelve lines
    assert "bar" in page.inner_text("li[data-path='site/p0'] > .node")  # live values with their units
    assert page.locator("li[data-path='site/p0']").is_visible()
    page.click("li[data-path='site'] > .node .twisty")
    assert not page.locator("li[data-path='site/p0']").is_visible()
    assert page.get_attribute("li[data-path='site']", "aria-expanded") == "false"
    page.click("#tree-expand")
    page.fill("#tree-search", "p2")
    assert page.locator("li[data-path='site/p2']").is_visible()
    assert not page.locator("li[data-path='site/p0']").is_visible()
    assert not page.locator("li[data-path='yard']").is_visible()
    page.fill("#tree-search", "valve 7")  # a member of the fleet: the fleet stays, the rest goes
    assert page.locator("li[data-path='yard']").is_visible()
    assert not page.locator("li[data-path='site']").is_visible()
    shot(page, "pages-ko-plant-search")
    page.fill("#tree-search", "")
    assert page.locator("li[data-path='site/p0']").is_visible()
    assert w.close() == []


def test_alerts_explain_themselves_and_are_acknowledged_in_bulk(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    platform, url, _run = site
    w = Watched(contexts["en"])
    page = w.open(f"{url}/t/acme/alerts")
    alert = next(a for a in platform.live.alerts.list("acme", state="open") if a["asset"] == "site/p1")
    row = page.locator(f"tr[data-alert='{alert['id']}']")
    text = row.inner_text()
    assert "pressure-high" in text and "80" in text and "limit 50" in text  # value against the rule's limit
    link = row.locator("[data-trend-link]").get_attribute("href")
    query = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    at = T0 + pd.Timedelta(seconds=TRAIN_S + 5)  # around the data's own time, not the wall clock's
    assert query["tags"] == "P1/PT" and pd.Timestamp(query["start"]) < at < pd.Timestamp(query["end"])
    page.fill(f"#note-{alert['id']}", "operator on the way")
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_function(
        f"document.querySelector(\"tr[data-alert='{alert['id']}'] .alert-state\")?.textContent.includes('Acknowledged')"
    )
    row = page.locator(f"tr[data-alert='{alert['id']}']")
    row.locator("summary").click()
    step = row.locator("[data-history='acknowledged']").inner_text()
    assert "kim" in step and "operator on the way" in step
    # the others, all at once
    page.check("#select-all")
    page.fill("#bulk-note", "shift change")
    page.click("#bulk-ack")
    page.wait_for_function("document.querySelectorAll('.pick-alert').length === 0")
    assert all(a["state"] != "active" for a in platform.live.alerts.list("acme", state="open"))
    shot(page, "pages-en-alerts-acknowledged")
    ko = Watched(contexts["ko"])
    kpage = ko.open(f"{url}/t/acme/alerts?state=all")
    assert "규칙" in kpage.inner_text("#alerts") and "이력" in kpage.inner_text("#alerts")
    assert w.close() == [] and ko.close() == []


def test_promotion_asks_its_reason_in_a_dialog_and_the_report_reads_fp_lower_is_better(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    platform, url, run = site
    w = Watched(contexts["en"])
    page = w.open(f"{url}/t/acme/models")
    page.click("button[data-rollback='pump-pca']")
    assert page.locator("#reason-dialog").is_visible()  # a dialog in the page, not window.prompt
    page.click("#reason-ok")  # no reason: said in place, nothing sent
    assert page.locator("#reason-error").is_visible()
    shot(page, "pages-en-models-dialog")
    page.click("#reason-cancel")
    assert not page.locator("#reason-dialog").is_visible()
    assert platform.lab.versions("acme", "pump-pca")[0]["stage"] == "production"
    w.go(f"{url}/t/acme/models/runs/{run}")
    shown = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#figures tr[data-metric]')]"
        ".map(tr => [tr.dataset.metric, tr.querySelector('[data-direction]').dataset.direction]))"
    )
    assert shown, "the report lists its figures"
    for metric, way in shown.items():
        assert way in ("none", "lower" if lower_better(metric) else "higher"), metric
    assert lower_better("fp") and lower_better("false_alarms") and lower_better("far_pct")  # fewer is better
    assert not lower_better("f1") and not lower_better("precision")
    ko = Watched(contexts["ko"])
    kpage = ko.open(f"{url}/t/acme/models/runs/{run}")
    assert "낮을수록 좋음" in kpage.inner_text("#figures") and "오경보" in kpage.inner_text("#figures")
    assert w.close() == [] and ko.close() == []


def test_control_tower_tiles_refresh_and_zero_is_neutral(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    platform, url, _run = site
    w = Watched(contexts["city-en"])
    page = w.open(f"{url}/tower")
    page.wait_for_selector("#tower[data-refreshed]", state="attached")
    rival = page.locator("section[data-tenant='rival']")
    alarm_tile = rival.locator("[data-kpi='in_alarm']")
    assert alarm_tile.inner_text().strip().endswith("0")
    assert "zero" in (alarm_tile.get_attribute("class") or "")  # 0 reads neutral, not red
    colour = alarm_tile.locator(".kpi-value").evaluate("el => getComputedStyle(el).color")
    alarm = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--alarm')")
    assert colour.replace(" ", "") != alarm.strip().replace(" ", "")
    # the cluster's and each company's alerts over the last 14 days, counts only
    raised = len(platform.live.alerts.list("acme", limit=10_000))
    assert int(page.get_attribute("#days-cluster", "data-total")) == raised >= 3
    assert page.locator("#days-acme rect").count() == 14 and page.get_attribute("#days-rival", "data-total") == "0"
    # each company's data quality: its measured signals by the state of their newest point, refreshed live
    counts = platform.twin.signal_counts("acme")
    line = page.locator("section[data-tenant='acme'] [data-quality-counts]")
    assert (
        counts["measured"] > 0
        and counts["good"] + counts["stale"] + counts["bad"] + counts["uncertain"] + counts["no_data"]
        == counts["measured"]
    )
    assert line.locator("[data-figure='no_data_signals']").inner_text() == str(counts["no_data"])
    shown = line.locator("[data-figure='good_pct']").inner_text()
    assert shown == ("—" if counts["good_pct"] is None else f"{counts['good_pct']:g} %"), shown
    assert w.close() == []


NO_WRAP = """[...document.querySelectorAll('button, .state, thead th, nav a, .badge')]
  .filter(el => el.offsetParent !== null && el.innerText.trim())
  .filter(el => {
    const cs = getComputedStyle(el), line = parseFloat(cs.lineHeight) || 1.5 * parseFloat(cs.fontSize);
    const inner = el.getBoundingClientRect().height - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom)
      - parseFloat(cs.borderTopWidth) - parseFloat(cs.borderBottomWidth);
    return el.getClientRects().length && inner > 1.6 * line;
  })
  .map(el => el.tagName + ': ' + el.innerText.trim())"""
BROKEN_WORDS = """[...document.querySelectorAll('main td, main th, main p, main li, main dd, main div, main span')]
  .filter(el => el.offsetParent !== null)
  .flatMap(el => [...el.childNodes].filter(n => n.nodeType === 3 && /[가-힣]{2,}/.test(n.textContent)).map(n => {
    const r = document.createRange(); r.selectNodeContents(n);
    return [...r.getClientRects()].filter(x => x.width > 0 && x.width < 18).length ? el.innerText.slice(0, 40) : null;
  })).filter(Boolean)"""


@pytest.mark.parametrize(
    "name", ["plant", "asset", "alerts", "models", "report", "trends", "connectors", "operations", "admin"]
)
def test_korean_at_1024_px_keeps_words_whole_and_dark_theme_passes_axe(
    site: tuple[Platform, str, str], contexts: dict[str, Any], name: str
) -> None:
    _platform, url, run = site
    path, ready = PAGES[name]
    w = Watched(contexts["ko"])
    page = w.page
    page.set_viewport_size({"width": 1024, "height": 800})
    page.emulate_media(color_scheme="dark")
    w.open(url + path.format(run=run))
    page.wait_for_selector(ready, state="attached")
    assert page.evaluate("getComputedStyle(document.body).wordBreak") == "keep-all"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024  # nothing pushes the page sideways
    assert page.evaluate(NO_WRAP) == []  # buttons, state chips, column heads and menu items on one line
    assert page.evaluate(BROKEN_WORDS) == []  # no Korean text a syllable a line
    assert untranslated(page) == []
    if name == "asset":  # outputs no model has written yet say so (and cost no 404)
        assert "아직 출력 없음" in page.inner_text("[data-output='rul']")
    shot(page, f"pages-ko-1024-dark-{name}")
    violations = axe_violations(page)
    assert w.close() == []
    assert violations == [], violations
