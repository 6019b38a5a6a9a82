"""The web UI in a real browser: Debian's Chromium driven by Playwright against the platform served on loopback.

Journeys: sign in, open the plant, see a value change live, open a trend and zoom, acknowledge an alert, switch to
Korean, the control tower; and the refusals (wrong password, a page without signing in, another company's plant).
Every page is saved as a screenshot under `test-output/web/` (or `$TAEHWA_TEST_OUTPUT/web`). One platform, one
server and one browser for the module.
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

from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from tests.conftest import TOKEN, serving
from tests.test_live import T0, TRAIN_S, pump_rows, trained

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
SHOTS = Path(os.environ.get("TAEHWA_TEST_OUTPUT", "test-output")) / "web"
PASSWORD = "correct horse battery"
LOCALES = {"en": "en-GB", "ko": "ko-KR"}  # the UI's two languages, as the browser announces them


UNTRANSLATED = """(() => {
  // Visible text that reads as English (three or more English words in a row) outside what is data (translate=no:
  // names, notes people typed, identifiers), code and form fields; and labels read out or shown in fields.
  const skip = "script, style, code, pre, kbd, samp, textarea, select, [translate=no], [hidden]";
  const words = /\\b[A-Za-z][a-z]+(?:,? [A-Za-z][a-z]+){2,}\\b/g;
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const p = n.parentElement;
    if (!p || p.closest(skip) || !p.getClientRects().length) continue;
    for (const hit of n.textContent.match(words) || []) out.push(`${p.tagName.toLowerCase()}: ${hit}`);
  }
  for (const a of document.querySelectorAll("[aria-label], [placeholder], [alt]")) {
    if (a.closest("[translate=no], [hidden]")) continue;
    for (const k of ["aria-label", "placeholder", "alt"]) {
      for (const hit of (a.getAttribute(k) || "").match(words) || []) out.push(`@${k}: ${hit}`);
    }
  }
  return out;
})()"""


def watch_failed_requests(page: Any, problems: list[str]) -> None:
    """Collect the page's failed requests as problems, except the event stream's end and a request the page's own
    navigation cut short (Chromium aborts a left document's loads: the test moving on, not a fault)."""
    navigations = [0]
    started: dict[Any, int] = {}

    def on_request(r: Any) -> None:
        if r.is_navigation_request() and r.frame == page.main_frame:
            navigations[0] += 1
        started[r] = navigations[0]

    def on_failed(r: Any) -> None:
        left = r.failure == "net::ERR_ABORTED" and started.get(r, navigations[0]) < navigations[0]
        if "/events" not in r.url and not left:
            problems.append(f"failed {r.url}: {r.failure}")

    page.on("request", on_request)
    page.on("requestfailed", on_failed)


def untranslated(page: Any) -> list[str]:
    """English left on a Korean page: phrases of three or more English words outside data and code, each with the
    element that shows it (an empty list when everything is said in Korean)."""
    assert page.locator("html").get_attribute("lang") == "ko"
    return list(page.evaluate(UNTRANSLATED))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    """The pumps of `test_live` with a promoted model, an engineer (kim) of acme, a city admin, served: one
    platform and one server for the module (the tests change different pumps)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("web") / "data", api_token=TOKEN)
    platform = Platform(settings, background=False)
    for t in ("acme", "rival"):
        platform.tenants.create(t)
    trained(platform)
    platform.identity.create_user("kim", "Kim Engineer", password=PASSWORD)
    platform.identity.set_role("kim", "acme", "engineer")
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
    try:
        with serving(platform) as url:
            yield platform, url
    finally:
        platform.close()


def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (never its own browser), with nothing reaching outside."""
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(
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
        yield b
        b.close()


def signed_in(browser: Any, url: str, lang: str, user: str = "kim", *, timeout_ms: int = 15_000) -> Any:
    """A browser context of one language, signed in as `user` (the session cookie is shared by its pages)."""
    ctx = browser.new_context(locale=LOCALES[lang], timezone_id="Asia/Seoul", viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(f"{url}/login")
    page.fill("#user", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)
    page.close()
    return ctx


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(browser: Any, url: str, user: str = "kim", lang: str = "en-GB") -> Any:
    page = browser.new_context(locale=lang, timezone_id="Asia/Seoul").new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{url}/t/acme/plant")
    assert "/login" in page.url  # not signed in: sent to sign in first
    page.fill("#user", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)
    assert page.url.endswith("/t/acme/plant")
    return page


def test_sign_in_and_see_the_plant_with_its_states(site: tuple[Platform, str], browser: Any) -> None:
    _platform, url = site
    page = browser.new_context(locale="en-GB").new_page()
    page.goto(f"{url}/login")
    shot(page, "01-sign-in")
    page.fill("#user", "kim")
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "Sign-in failed" in page.inner_text("#login-error")
    page.context.close()

    page = sign_in(browser, url)
    tree = page.inner_text("#asset-tree")
    assert "p0" in tree and "v1" in tree and "Pump" in tree
    # state is shown by word as well as colour
    assert page.locator("[data-state-of='site/p0'] .state-text").inner_text() in ("Normal", "Stale", "Unknown")
    shot(page, "02-plant")
    # another company's plant is refused, with the reason
    page.goto(f"{url}/t/rival/plant")
    assert page.locator("h1").inner_text() in ("403", "404")
    shot(page, "02b-refused")


def test_a_value_changes_live_on_the_asset_page(site: tuple[Platform, str], browser: Any) -> None:
    platform, url = site
    page = sign_in(browser, url)
    page.goto(f"{url}/t/acme/assets/site/p0")
    page.wait_for_selector("[data-signal='pressure']")
    page.wait_for_timeout(300)  # the event stream is open
    t = (T0 + pd.Timedelta(seconds=TRAIN_S + 1)).isoformat()
    platform.historian.write(
        "acme", [{"tag": "P0/PT", "time": t, "value": 23.456}, {"tag": "P0/FT", "time": t, "value": 99.0}]
    )  # below the rule's 50: p0 raises no alert the later tests would meet
    page.wait_for_function("document.querySelector(\"[data-signal='pressure']\").textContent.trim() === '23.46'")
    assert page.locator("[data-signal-quality='pressure']").inner_text() == "Good"
    # the live value is over the type's limit? the row's state word follows the twin's state event
    shot(page, "03-asset-live")


def test_the_asset_page_says_its_own_data_quality_over_its_last_day(site: tuple[Platform, str], browser: Any) -> None:
    platform, url = site
    page = sign_in(browser, url)
    page.goto(f"{url}/t/acme/assets/site/p0")
    page.wait_for_selector("#data-quality[data-ready=done]")
    rows = page.locator("#quality-table tr[data-quality-of]")
    shown = {rows.nth(i).get_attribute("data-quality-of") for i in range(rows.count())}
    assert shown == {"pressure", "flow"}  # the asset's own measured signals, not its children's
    assert page.inner_text("#quality-figure").endswith("%")
    # the same figures as the service gives for the asset alone, over the same day
    state = platform.twin.state("acme", "site/p0")
    times = [s["time"] for s in state["signals"].values() if not s.get("derived")]
    newest = max(pd.Timestamp(t) for t in times if t is not None)
    end = newest + pd.Timedelta(microseconds=1)
    got = platform.analytics.quality("acme", end - pd.Timedelta(days=1), end, asset="site/p0", subtree=False)
    assert list(got["assets"]) == ["site/p0"]
    figure = page.locator("#quality-table tr[data-quality-of='pressure'] td").first.inner_text()
    assert figure == f"{got['assets']['site/p0']['tags']['pressure']['quality']:g} %"
    shot(page, "03b-asset-quality")


def test_trend_draws_and_zooms_with_server_downsampling(site: tuple[Platform, str], browser: Any) -> None:
    _platform, url = site
    page = sign_in(browser, url)
    page.goto(
        f"{url}/t/acme/trends?tags=P0/PT,P0/FT&start={quote(T0.isoformat())}&end="
        f"{quote((T0 + pd.Timedelta(seconds=TRAIN_S)).isoformat())}"
    )
    page.wait_for_function("document.getElementById('chart').dataset.points > 0")
    full = page.evaluate("({...document.getElementById('chart').dataset})")
    assert float(full["end"]) - float(full["start"]) == TRAIN_S * 1000  # the range asked for
    step = int(full["every"].removesuffix("s"))  # about one bucket per two pixels of the chart's width
    assert int(full["values"]) == 2 * -(-TRAIN_S // step)  # both tags drawn, every bucket of the 1 Hz history
    shot(page, "04-trend")
    over = page.locator("#chart .u-over")
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + 60, steps=5)
    page.mouse.up()
    page.wait_for_function(f"document.getElementById('chart').dataset.start !== '{full['start']}'")
    zoomed = page.evaluate("({...document.getElementById('chart').dataset})")
    span_full = float(full["end"]) - float(full["start"])
    span_zoom = float(zoomed["end"]) - float(zoomed["start"])
    assert 0.1 * span_full < span_zoom < 0.3 * span_full  # a fifth of the chart dragged over
    assert int(zoomed["points"]) > 0
    assert "format=csv" in page.get_attribute("#export-csv", "href")
    shot(page, "05-trend-zoomed")
    # pan: half a view later, by the button and by the keyboard; back out to the whole range
    page.click("#pan-later")
    page.wait_for_function(f"document.getElementById('chart').dataset.start !== '{zoomed['start']}'")
    later = page.evaluate("({...document.getElementById('chart').dataset})")
    assert float(later["start"]) == pytest.approx(float(zoomed["start"]) + span_zoom / 2)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"document.getElementById('chart').dataset.start === '{zoomed['start']}'")
    page.click("#zoom-out")
    page.wait_for_function(f"document.getElementById('chart').dataset.start === '{full['start']}'")
    # an unknown tag is named, not drawn empty
    page.goto(f"{url}/t/acme/trends?tags=NOPE/XX")
    assert "NOPE/XX" in page.inner_text("main")


def test_trend_overlays_the_alerts_and_labels_of_the_tags_assets(site: tuple[Platform, str], browser: Any) -> None:
    platform, url = site
    platform.labels.add(
        "acme",
        [
            {
                "asset": "site/p0",
                "kind": "anomaly",
                "start": (T0 + pd.Timedelta(seconds=100)).isoformat(),
                "end": (T0 + pd.Timedelta(seconds=160)).isoformat(),
            }
        ],
    )
    platform.live.engine.refresh(force=True)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    platform.historian.write(
        "acme",
        [
            {"tag": "P0/PT", "time": (now - pd.Timedelta(seconds=30)).isoformat(), "value": 20.0},
            {"tag": "P0/PT", "time": now.isoformat(), "value": 80.0},
        ],
    )
    platform.live.engine.drain()  # an alert raised now (alerts carry the wall-clock time they were raised)
    page = sign_in(browser, url)
    page.goto(
        f"{url}/t/acme/trends?tags=P0/PT&start={quote(T0.isoformat())}&end="
        f"{quote((T0 + pd.Timedelta(seconds=TRAIN_S)).isoformat())}"
    )
    page.wait_for_function("document.getElementById('chart').dataset.labels > 0")
    assert page.evaluate("document.getElementById('chart').dataset.alerts") == "0"  # none in that range
    assert "anomaly" in page.inner_text("#overlay-list") and "site/p0" in page.inner_text("#overlay-list")
    shot(page, "05b-trend-labels")
    start = quote((now - pd.Timedelta(minutes=5)).isoformat())
    page.goto(f"{url}/t/acme/trends?tags=P0/PT&start={start}&end={quote((now + pd.Timedelta(minutes=5)).isoformat())}")
    page.wait_for_function("document.getElementById('chart').dataset.alerts > 0")
    assert "pressure > 50" in page.inner_text("#overlay-list")


def test_acknowledge_an_alert_with_a_note(site: tuple[Platform, str], browser: Any) -> None:
    platform, url = site
    platform.live.engine.refresh(force=True)
    t = (T0 + pd.Timedelta(seconds=TRAIN_S + 5)).isoformat()
    platform.historian.write("acme", [{"tag": "P1/PT", "time": t, "value": 80.0}])
    platform.live.engine.drain()
    alert = next(a for a in platform.live.alerts.list("acme", state="open") if a["asset"] == "site/p1")
    page = sign_in(browser, url)
    page.goto(f"{url}/t/acme/alerts")
    row = page.locator(f"tr[data-alert='{alert['id']}']")
    assert "Active" in row.inner_text() and "Alarm" in row.inner_text()
    shot(page, "06-alerts")
    page.fill(f"#note-{alert['id']}", "operator on the way")
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_function(
        f"document.querySelector(\"tr[data-alert='{alert['id']}'] .alert-state\").textContent.includes('Acknowledged')"
    )
    shot(page, "07-alert-acknowledged")
    history = platform.live.alerts.get("acme", alert["id"])
    step = next(e for e in history["history"] if e["action"] == "acknowledged")
    assert step["actor"] == "kim" and step["note"] == "operator on the way"


def test_switch_to_korean_and_back(site: tuple[Platform, str], browser: Any) -> None:
    _platform, url = site
    page = sign_in(browser, url)
    page.click("text=한국어")
    page.wait_for_selector("html[lang=ko]")
    nav = page.inner_text("nav")
    for word in ("디지털 트윈", "트렌드", "알림", "모델", "커넥터"):
        assert word in nav
    assert page.locator("[data-state-of='site/p0'] .state-text").inner_text() in ("정상", "갱신 지연", "알 수 없음")
    assert untranslated(page) == []
    shot(page, "08-plant-korean")
    page.click("text=English")
    page.wait_for_selector("html[lang=en]")
    # a Korean browser gets Korean without choosing
    ko = browser.new_context(locale="ko-KR").new_page()
    ko.goto(f"{url}/login")
    assert ko.locator("html").get_attribute("lang") == "ko" and "로그인" in ko.inner_text("h1")


def test_control_tower_aggregates_every_company(site: tuple[Platform, str], browser: Any) -> None:
    platform, url = site
    platform.historian.write("acme", pump_rows(TRAIN_S, TRAIN_S + 3))
    page = browser.new_context(locale="en-GB").new_page()
    page.goto(f"{url}/login?next=/tower")
    page.fill("#user", "city")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)
    assert page.url.endswith("/tower")
    acme = page.locator("[data-tenant='acme']").inner_text()
    assert "pump-pca v1" in acme  # the model in production with its validation figure
    assert page.locator("section[data-tenant='rival']").count() == 1
    assert "P0/PT" not in page.content()  # no tag, value or asset name of any company
    shot(page, "09-control-tower")
    # an engineer is not a platform admin: the tower refuses
    eng = sign_in(browser, url)
    eng.goto(f"{url}/tower")
    assert eng.locator("h1").inner_text() == "403"


def test_pages_can_be_used_from_the_keyboard(site: tuple[Platform, str], browser: Any) -> None:
    _platform, url = site
    page = sign_in(browser, url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for path in (
        "/t/acme/plant",
        "/t/acme/alerts",
        "/t/acme/trends",
        "/t/acme/models",
        "/t/acme/connectors",
        "/academy",
    ):
        page.goto(url + path)
        unlabelled = page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select')]
            .filter(el => !el.labels || el.labels.length === 0).map(el => el.id || el.name)""")
        assert unlabelled == [], f"{path}: controls without a label: {unlabelled}"
        nameless = page.evaluate("""[...document.querySelectorAll('button, a')]
            .filter(el => !(el.innerText || el.getAttribute('aria-label') || '').trim()).length""")
        assert nameless == 0, f"{path}: buttons or links without a name"


def test_academy_submit_from_the_browser_and_see_the_verdict_and_board(
    site: tuple[Platform, str], browser: Any, tmp_path: Path
) -> None:
    from taehwa.core.settings import default_shared_data

    platform, url = site
    if not default_shared_data().exists():
        pytest.skip("../shared/data is not beside the checkout")
    platform.academy.install_ready(["skab-valves"])
    page = sign_in(browser, url)
    page.click("nav >> text=Academy")
    page.click("text=Pump station anomalies (SKAB)")
    assert "Taehwa baseline (Baseline)" in page.inner_text("#board")  # the platform's own entry stands beside
    assert "Conv-AE (Published)" in page.inner_text("#board")
    good = tmp_path / "flags.py"
    good.write_text(
        "import numpy as np\n\nclass Model:\n    def fit(self, X, y):\n        self.m = X['current']"
        ".quantile(0.99)\n\n    def predict(self, X):\n        return (X['current'] > self.m)"
        ".astype(int).to_numpy()\n"
    )
    bad = tmp_path / "bad.py"
    bad.write_text(
        "class Model:\n    def fit(self, X, y):\n        pass\n\n    def predict(self, X):\n"
        "        return ['maybe'] * len(X)\n"
    )
    for f in (good, bad):
        page.select_option("#sub-kind", "python")
        page.set_input_files("#sub-file", str(f))
        page.fill("#sub-label", f.stem)
        page.click("#submit-form button[type=submit]")
        page.wait_for_selector(f"#mine tr:has-text('{f.stem}')", timeout=60_000)
    rows = page.locator("#mine tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-verdict") == "invalid_output"
    assert "not an anomaly flag" in rows.nth(0).inner_text()
    assert rows.nth(1).get_attribute("data-verdict") == "scored"
    assert page.locator("#board tr[data-user='kim'] td").nth(0).inner_text() == "1"
    shot(page, "10-academy-challenge")
    page.click("text=한국어")
    page.wait_for_selector("html[lang=ko]")
    assert "리더보드" in page.inner_text("main") and "잘못된 출력" in page.inner_text("#mine")
    assert "펌프 스테이션 이상 탐지" in page.inner_text("h1")
    shot(page, "11-academy-korean")
