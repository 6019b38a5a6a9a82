"""The city's pages in a real browser (Debian's Chromium through Playwright, the platform on loopback): the map
draws offline — every request the page makes stays on loopback —, in Korean; a marker's state changes live when a
point crosses a limit; a click goes through to a company's site for those allowed; the headquarters' view and its
PDF report download. Screenshots go to test-output/web/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from taehwa.tenancy.access import SYSTEM, acting_as
from tests.conftest import TOKEN, serving
from tests.test_city import CITY_FILE, COMPANIES, plant, share
from tests.test_web import SHOTS, chromium, shot

PASSWORD = "correct horse battery"
pytestmark = pytest.mark.skipif(chromium is None, reason="no browser")


@pytest.fixture(scope="module")
def city_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    platform = Platform(Settings(data_dir=tmp_path_factory.mktemp("city") / "data", api_token=TOKEN), background=False)
    platform.tenants.create("city", "Ulsan city office")
    platform.twin.load("city", CITY_FILE.read_text(), source="ulsan-city.yaml")
    for t, (cx, ind, lat, lon) in COMPANIES.items():
        platform.tenants.create(t)
        platform.twin.load(t, plant(t, cx, ind, lat, lon))
        platform.historian.write(t, [(f"{t}/secret-pump-{i}/flow", datetime.now(UTC), 10.0) for i in range(3)])
        share(platform, t, ["map", "state", "rate", "models", "alerts"], ["alarm_share"])
    platform.identity.create_user("planner", "City planner", password=PASSWORD)
    platform.identity.set_role("planner", "city", "viewer")
    platform.identity.set_role("planner", "co-a", "viewer")  # may open co-a's site, no other company's
    platform.identity.create_user("a-admin", "Admin of co-a", password=PASSWORD)
    platform.identity.set_role("a-admin", "co-a", "tenant_admin")
    try:
        with serving(platform) as url:
            yield platform, url
    finally:
        platform.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def open_signed_in(
    browser: Any, url: str, path: str, locale: str, user: str = "planner"
) -> tuple[Any, list[str], list[str]]:
    page = browser.new_context(locale=locale, accept_downloads=True).new_page()
    page.set_default_timeout(15_000)
    hosts: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: hosts.append(urlparse(r.url).hostname or r.url.split(":", 1)[0]))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{url}{path}")
    assert "/login" in page.url
    page.fill("#user", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)
    page.goto(f"{url}{path}")
    return page, hosts, problems


def test_the_map_draws_offline_in_korean_follows_states_live_and_clicks_through(
    city_site: tuple[Platform, str], browser: Any
) -> None:
    platform, url = city_site
    page, hosts, problems = open_signed_in(browser, url, "/city", "ko-KR")
    page.wait_for_selector("#city-map .site-marker")
    assert page.locator("#city-map path.district").count() == 5
    assert page.locator("#city-map .site-marker").count() == 4
    assert page.locator("#city-map .complex").count() == 2 and page.locator("#city-map .infra-marker").count() == 3
    svg_text = page.locator("#city-map").text_content() or ""
    assert "울주군" in svg_text and "울산·미포국가산업단지" in svg_text
    assert "사업장" in page.inner_text("main") and page.locator("html").get_attribute("lang") == "ko"
    page.wait_for_selector("#city-map[data-connected='1']")
    marker = page.locator("[data-site='co-b|works']")
    assert "normal" in (marker.get_attribute("class") or "")
    shot(page, "city-map-ko")
    t0 = time.monotonic()
    platform.historian.write("co-b", [("co-b/secret-pump-1/flow", datetime.now(UTC), 95.0)])
    page.wait_for_selector("[data-site='co-b|works'].alarm", timeout=5_000)
    took = time.monotonic() - t0
    assert took < 2.0, f"the marker changed {took:.2f} s after the point"
    assert "경보" in page.inner_text("tr[data-row='co-b|works']")
    page.click("[data-site='co-b|works']")
    assert "접근 권한이 없습니다" in page.inner_text("#city-panel")  # co-b gave the planner no access
    page.click("[data-site='co-a|works']")
    assert page.get_attribute("#open-plant", "href") == "/t/co-a/plant"
    shot(page, "city-map-ko-panel")
    page.click("#open-site")
    page.wait_for_url(lambda u: u.endswith("/t/co-a/assets/works"))
    assert hosts and all(h in ("127.0.0.1", "localhost", "data") for h in hosts), sorted(set(hosts))
    assert not problems, problems


def test_the_headquarters_view_and_its_report_download(city_site: tuple[Platform, str], browser: Any) -> None:
    _, url = city_site
    page, hosts, problems = open_signed_in(browser, url, "/city/hq", "en-GB")
    page.wait_for_selector("#aggregates")
    assert "Assets in warning or alarm" in page.inner_text("#aggregates")  # the city: released
    assert "fewer than 3 companies" in (page.text_content("#refused") or "")  # each complex: refused
    shot(page, "city-hq")
    with page.expect_download() as dl:
        page.click("#report-link")
    path = dl.value.path()
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 10_000
    (SHOTS / "city-report-en.pdf").write_bytes(data)
    assert all(h in ("127.0.0.1", "localhost") for h in hosts), sorted(set(hosts))
    assert not problems, problems


def test_a_company_admin_changes_what_it_shares_and_sees_its_standing(
    city_site: tuple[Platform, str], browser: Any
) -> None:
    platform, url = city_site
    page, hosts, problems = open_signed_in(browser, url, "/t/co-a/city", "ko-KR", user="a-admin")
    page.wait_for_selector("#standings")
    assert "귀사의 위치" in page.inner_text("main") and "도시 값" in page.inner_text("#standings")
    row = page.locator("#consents tr[data-site='works']")
    row.locator("input[name=share][value=power]").check()
    row.locator("[data-save]").click()
    page.wait_for_function("document.querySelector(\"#consents tr[data-site='works'] [data-status]\").textContent")
    assert row.locator("[data-status]").inner_text() == "저장됨"
    with acting_as(SYSTEM):
        assert "power" in platform.city.consents.get("co-a")["works"].shares
    shot(page, "city-company-ko")
    assert all(h in ("127.0.0.1", "localhost") for h in hosts) and not problems, problems
