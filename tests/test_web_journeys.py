"""The plant engineer's working journeys in a real browser (one platform, one server and one browser for the module),
each whole in English: add and check connectors (OPC UA browsed from a real asyncua server, its nodes bound to asset
signals; MQTT topics; Modbus registers; a drop folder) with each validation problem shown beside its field; the plant
file edited with its problems listed by line, assets created, moved and deleted; a spec evaluated and trained from a
form with a progress bar, two versions side by side, a forced promotion recorded; deployments, alert rules and
labels; users, roles, tokens, sharing grants and the audit log with its verification; and each refusal of rights
shown where it was asked. In Korean, each working page once, its refusals said in Korean beside their fields and no
English left (`untranslated`). Every change goes through the HTTP API with the page's session. A page fails on a
console error, an uncaught exception, a failed request or an error answer the journey did not ask for.
Screenshots: `test-output/web/journey-<lang>-<step>.png`.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from tests.conftest import TOKEN, serving
from tests.test_live import SPEC, T0, TRAIN_S, plant_yaml, pump_rows
from tests.test_web import PASSWORD, chromium, signed_in, untranslated, watch_failed_requests

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
SHOTS = Path(os.environ.get("TAEHWA_TEST_OUTPUT", "test-output")) / "web"
OPC_TAGS = ["opc/r1/pressure", "opc/r1/temperature"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str, str]]:
    """Pumps with two registered versions of one model (v1 in production), an alert rule; kim is acme's admin, eve
    its engineer, vic its viewer, lee a user without a role there; rival is another company; an OPC UA server on
    loopback."""
    from taehwa.replay.opcua_server import ReplayServer

    settings = Settings(data_dir=tmp_path_factory.mktemp("journeys") / "data", api_token=TOKEN)
    platform = Platform(settings, background=False)
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/taehwa/"
    server = ReplayServer(endpoint)
    starting = threading.Thread(target=server.start, args=(OPC_TAGS,), daemon=True)  # beside the platform's setup
    starting.start()
    try:
        for t in ("acme", "rival"):
            platform.tenants.create(t)
        platform.twin.load("acme", plant_yaml())
        platform.historian.write("acme", pump_rows(0, TRAIN_S))
        platform.historian.flush()
        run = platform.lab.run("acme", SPEC, track=False)  # registers v1
        platform.lab.register("acme", run["run_id"], "pump-pca", "Pump")  # v2 of the same run
        platform.lab.promote("acme", "pump-pca", 1, "first model", force=True)
        platform.identity.create_user("kim", "Kim Admin", password=PASSWORD)
        platform.identity.set_role("kim", "acme", "tenant_admin")
        platform.identity.create_user("eve", "Eve Engineer", password=PASSWORD)
        platform.identity.set_role("eve", "acme", "engineer")
        platform.identity.create_user("lee", "Lee")  # never signs in here: no password to hash
        platform.identity.create_user("vic", "Vic Viewer", password=PASSWORD)
        platform.identity.set_role("vic", "acme", "viewer")
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
        platform.historian.write(
            "acme", [{"tag": "P1/PT", "time": (T0 + pd.Timedelta(seconds=TRAIN_S + 5)).isoformat(), "value": 80.0}]
        )
        platform.live.engine.drain()  # pump 1 over the rule's 50: an alert at the data's time
        platform.labels.add(
            "acme",
            [
                {
                    "asset": "site/p1",
                    "kind": "anomaly",
                    "start": (T0 + pd.Timedelta(seconds=TRAIN_S - 60)).isoformat(),
                    "end": (T0 + pd.Timedelta(seconds=TRAIN_S - 30)).isoformat(),
                }
            ],
        )
        (settings.data_dir / "files" / "acme" / "incoming").mkdir(parents=True, exist_ok=True)
        starting.join(60)
        with serving(platform) as url:
            yield platform, url, endpoint
    finally:
        server.stop()
        platform.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module")
def contexts(site: tuple[Platform, str, str], browser: Any) -> Iterator[dict[str, Any]]:
    """kim (acme's admin), eve (its engineer) and vic (its viewer) in English; kim and eve in Korean."""
    _platform, url, _ep = site
    out = {
        f"{user}-{lang}": signed_in(browser, url, lang, user, timeout_ms=10_000)
        for user, lang in (("kim", "en"), ("eve", "en"), ("vic", "en"), ("kim", "ko"), ("eve", "ko"))
    }
    yield out
    for ctx in out.values():
        ctx.close()


REFUSED = re.compile(r"status of (\d{3})")


class Journey:
    """A page whose console errors, uncaught exceptions, failed requests and error answers are collected; an API
    refusal the journey asks for (`expect(422)`) is allowed, once per call to `expect`."""

    def __init__(self, ctx: Any, lang: str) -> None:
        self.lang = lang
        self.page = ctx.new_page()
        self.page.set_default_timeout(10_000)
        self.problems: list[str] = []
        self.refusals: list[int] = []  # API error answers seen, in order
        self.allowed: list[int] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        self.page.on("response", self._response)
        watch_failed_requests(self.page, self.problems)

        def refuse_dialog(d: Any) -> None:
            self.problems.append(f"native dialog: {d.message}")
            d.dismiss()

        self.page.on("dialog", refuse_dialog)

    def _response(self, r: Any) -> None:
        if r.status < 400:
            return
        if "/api/" in r.url and r.status < 500 and r.status in self.allowed:
            self.allowed.remove(r.status)
            self.refusals.append(r.status)
        else:
            self.problems.append(f"HTTP {r.status} {r.url}")

    def _console(self, m: Any) -> None:
        if m.type != "error":
            return
        hit = REFUSED.search(m.text)  # Chromium logs every error answer; the asked-for ones are not problems
        if hit and int(hit.group(1)) in self.refusals:
            return
        self.problems.append(f"console {m.type}: {m.text}")

    def expect(self, *statuses: int) -> None:
        self.allowed.extend(statuses)

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_load_state("load")
        return self.page

    def go(self, url: str) -> Any:
        """Leave the page once it has loaded (its script included), so no request of it is cut short, then open url."""
        self.page.wait_for_load_state("load")
        return self.open(url)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"journey-{self.lang}-{name}.png"), full_page=True)

    def said(self) -> str:
        """What the page's status lines and problem lists say (for a failing assertion's message)."""
        return " | ".join(
            self.page.eval_on_selector_all(
                "[role=status], .problems", "els => els.map(e => e.textContent.trim()).filter(Boolean)"
            )
        )

    def wait(self, selector: str, **kw: Any) -> None:
        """Wait for a selector; on a timeout, say what the page said and what went wrong."""
        try:
            self.page.wait_for_selector(selector, **kw)
        except playwright_api.TimeoutError:
            raise AssertionError(
                f"{selector} never came; the page said: {self.said()}; problems: {self.problems}"
            ) from None

    def close(self) -> list[str]:
        self.page.close()
        assert not self.allowed, f"refusals asked for but not seen: {self.allowed}"
        return self.problems


def field_error(page: Any, where: str) -> str:
    """The problem shown beside the visible field whose data-where is `where`."""
    return str(
        page.evaluate(
            """(w) => {
        const f = [...document.querySelectorAll('[data-where]')]
          .find(x => x.dataset.where === w && !x.closest('[hidden]'));
        if (!f) return 'no field ' + w;
        const own = f.parentElement.querySelector('.field-error');
        const named = [...document.querySelectorAll('[data-error-for]')].find(x => x.dataset.errorFor === w
          && !x.closest('[hidden]'));
        const said = (own && own.textContent) || (named && named.textContent) || '';
        return said + (f.getAttribute('aria-invalid') ? '' : ' (not marked)');
    }""",
            where,
        )
    )


def test_add_and_check_connectors_with_problems_beside_their_fields(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    lang = "en"
    platform, url, endpoint = site
    j = Journey(contexts[f"kim-{lang}"], lang)
    page = j.open(f"{url}/t/acme/connectors")
    # MQTT: a bad name and a topic with '#' inside: each problem beside its field, nothing stored
    page.select_option("#c-protocol", "mqtt")
    page.fill("#c-name", "Bad Name")
    page.fill("#item-0-topic", "plant/#/pressure")
    j.expect(422)
    page.click("#connector-check")
    j.wait("#connector-form[data-checked=refused]")
    assert "should match pattern" in field_error(page, "name")
    assert "'#' must be a whole level" in field_error(page, "items[0].topic")
    j.shot("connector-mqtt-problems")
    page.fill("#c-name", f"line-mqtt-{lang}")
    page.fill("#item-0-topic", "plant/+/pressure")
    page.click("#connector-check")
    j.wait("#connector-form[data-checked=valid]")
    assert field_error(page, "name") == " (not marked)"  # the problems went with their fix
    page.click("#connector-save")
    j.wait(f"#connectors th:text-is('line-mqtt-{lang}')")  # saved, and listed after the reload
    assert platform.connectors.get("acme", f"line-mqtt-{lang}")["definition"]["items"][0]["topic"] == "plant/+/pressure"
    # Modbus: a register past 65535; a drop folder outside the company's files
    page.select_option("#c-protocol", "modbus")
    page.fill("#c-name", f"plc-{lang}")
    page.fill("#item-0-address", "70000")
    page.fill("#item-0-tag", "plc/speed")
    j.expect(422)
    page.click("#connector-check")
    j.wait("#connector-form[data-checked=refused]")
    assert "65535" in field_error(page, "items[0].address")
    page.select_option("#c-protocol", "files")
    page.fill("#c-name", f"drop-{lang}")
    page.fill("#c-folder", "../../etc")
    j.expect(422)
    page.click("#connector-check")
    j.wait("#connector-form[data-checked=refused]")
    assert field_error(page, "folder").strip() not in ("", "(not marked)"), j.said()
    page.fill("#c-folder", "incoming")
    page.click("#connector-check")
    j.wait("#connector-form[data-checked=valid]")
    # OPC UA: browse the server, tick a variable, bind it to the valve's position, save
    page.select_option("#c-protocol", "opcua")
    page.fill("#c-name", f"reactor-{lang}")
    page.fill("#c-endpoint", endpoint)
    page.fill("#c-prefix", f"{lang}/")
    page.click("#opc-browse")
    j.wait("#browse-pick input[name=node]")
    assert page.locator("#browse-pick input[name=node]").count() == len(OPC_TAGS)
    page.locator("#browse-pick li", has_text="opc/r1/pressure").locator("input").check()
    page.click("#use-nodes")
    assert page.input_value("#item-0-tag") == "opc/r1/pressure"
    page.select_option("#item-0-bind", "site/v1|position")
    j.shot("connector-opcua-browsed")
    page.click("#connector-save")
    j.wait(f"#connectors th:text-is('reactor-{lang}')")
    stored = platform.connectors.get("acme", f"reactor-{lang}")["definition"]
    assert stored["endpoint"] == endpoint and stored["items"][0]["tag"] == "opc/r1/pressure"
    assert platform.twin.plant("acme").assets["site/v1"].tags["position"] == f"{lang}/opc/r1/pressure"
    j.shot("connector-saved")
    assert j.close() == []
    # an engineer may look but not add: the refusal is said in place
    e = Journey(contexts[f"eve-{lang}"], lang)
    page = e.open(f"{url}/t/acme/connectors")
    assert page.locator("#connector-rights").is_visible()
    page.select_option("#c-protocol", "files")
    page.fill("#c-name", f"eve-{lang}")
    page.fill("#c-folder", "incoming")
    e.expect(403)
    page.click("#connector-save")
    e.wait("#connector-form[data-saved=refused]")
    assert "Not allowed" in page.inner_text("#connector-status")
    e.shot("connector-refused")
    assert e.close() == []


def test_plant_file_problems_by_line_and_assets_created_moved_deleted(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    lang = "en"
    platform, url, _ep = site
    j = Journey(contexts[f"kim-{lang}"], lang)
    page = j.open(f"{url}/t/acme/plant")
    page.click("#edit-plant")
    j.wait("#plant-text")
    good = page.input_value("#plant-text")
    assert "site" in good and "Pump" in good  # the plant as it stands
    bad = good.replace("type: Pump", "type: Pumpx", 1).replace("id: p1", "id: P 1", 1)
    page.fill("#plant-text", bad)
    j.expect(422)
    page.click("#plant-save")
    j.wait("#plant-form[data-saved=refused]")
    lines = page.eval_on_selector_all("#plant-problems li", "els => els.map(e => Number(e.dataset.line))")
    assert len(lines) == 2 and lines == sorted(lines) and all(n > 0 for n in lines)
    assert "Pumpx" in page.inner_text("#plant-problems") and "P 1" in page.inner_text("#plant-problems")
    page.locator("#plant-problems li").nth(1).locator("button").click()  # go to the line
    picked = page.evaluate(
        "(() => { const t = document.getElementById('plant-text');"
        " return t.value.slice(0, t.selectionStart).split('\\n').length; })()"
    )
    assert picked == lines[1]
    j.shot("plant-problems")
    assert platform.twin.plant("acme").assets["site/p1"].type == "Pump"  # nothing of the bad file kept
    page.fill("#plant-text", good)
    page.click("#plant-save")
    j.wait("#plant-form[data-saved=yes]")
    # one asset: a bad id said beside the field, then created, moved to the top level renamed, deleted
    new = f"p9-{lang}"
    page.select_option("#new-parent", "site")
    page.fill("#new-id", "bad id")
    page.select_option("#new-type", "Pump")
    j.expect(422)
    page.click("#asset-create button[type=submit]")
    j.wait("#asset-create[data-done=refused]")
    assert "bad id" in field_error(page, "id")
    page.fill("#new-id", new)
    page.click("#asset-create button[type=submit]")
    j.wait(f"#move-path option[value='site/{new}']", state="attached")
    assert f"site/{new}" in platform.twin.plant("acme").assets
    page.select_option("#move-path", f"site/{new}")
    page.select_option("#move-parent", "")
    page.fill("#move-id", f"{new}-top")
    page.click("#asset-move button[type=submit]")
    j.wait(f"#del-path option[value='{new}-top']", state="attached")
    assert f"{new}-top" in platform.twin.plant("acme").assets
    page.select_option("#del-path", f"{new}-top")
    page.click("#asset-delete button[type=submit]")
    page.wait_for_function(f"!document.querySelector(\"#del-path option[value='{new}-top']\")")
    assert f"{new}-top" not in platform.twin.plant("acme").assets
    j.shot("plant-assets")
    assert j.close() == []


def test_train_from_a_form_compare_versions_and_force_a_promotion(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    lang = "en"
    platform, url, _ep = site
    j = Journey(contexts[f"kim-{lang}"], lang)
    page = j.open(f"{url}/t/acme/models")
    assert '"pump-pca"' in page.input_value("#spec-text")  # a recent run's spec to start from
    page.fill("#spec-text", "{not json")
    page.click("#evaluate-run")
    assert "JSON" in page.inner_text("#train-status")  # said before anything is sent
    page.select_option("#spec-from", "pump-pca")
    # one run in the browser (the API's runs are tracked in MLflow: seconds each)
    page.click("#evaluate-run")
    j.wait("#train-progress:not([hidden])")  # the bar runs while the run does
    j.wait("#train-form[data-state=done]", timeout=60_000)
    run = page.get_attribute("#train-form", "data-run")
    assert run and platform.lab.get_run("acme", run)["mode"] == "evaluate"
    j.shot("models-evaluated")
    page.click("#train-report")
    j.wait("#figures")
    j.go(f"{url}/t/acme/models")
    # a sweep from the same form: its grid checked before anything is sent, its combinations ranked in the page
    # (one value: run in the server's process, as cheap as the evaluation)
    page.fill("#sweep-grid", "{not json")
    page.click("#sweep-run")
    assert "JSON" in page.inner_text("#train-status")
    page.fill("#sweep-grid", '{"quantile": [0.995]}')
    page.click("#sweep-run")
    j.wait("#train-form[data-state=done][data-sweep]", timeout=60_000)
    assert page.locator("#sweep-table tbody tr").count() == 1 and "0.995" in page.inner_text("#sweep-table")
    j.shot("models-swept")
    # two versions side by side, the better of each figure named by the figure's direction
    page.select_option("#compare-a", "pump-pca|1")
    page.select_option("#compare-b", "pump-pca|2")
    page.click("#compare-form button[type=submit]")
    j.wait("#compare")
    rows = page.locator("#compare tr[data-metric]")
    assert rows.count() > 3
    ways = page.eval_on_selector_all(
        "#compare tr[data-metric]",
        "els => Object.fromEntries(els.map(e => "
        "[e.dataset.metric, e.querySelector('[data-direction]').dataset.direction]))",
    )
    assert ways["alarm_episodes"] == "lower" and ways["normal_hours"] == "none", ways
    j.shot("models-compare")
    # a forced promotion (tenant admin), recorded with its reason
    j.go(f"{url}/t/acme/models")
    version = 2
    page.click(f"button[data-promote='pump-pca'][data-version='{version}']")
    page.check("#reason-force")
    page.fill("#reason-text", f"forced in the browser ({lang})")
    page.click("#reason-ok")
    page.wait_for_function(
        f"document.querySelector(\"tr[data-model='pump-pca'][data-version='{version}'] .state\")"
        f"?.className.includes('normal')"
    )
    step = [h for h in platform.lab.history("acme", "pump-pca") if h["action"] == "promote"][-1]
    assert step["actor"] == "kim" and step["reason"] == f"forced in the browser ({lang})"
    assert step["detail"]["forced"] is True
    j.go(f"{url}/t/acme/models/compare?name=pump-pca&a=1&b=2")
    assert f"forced in the browser ({lang})" in page.inner_text("#version-history")
    assert j.close() == []
    # an engineer is not offered the force
    e = Journey(contexts[f"eve-{lang}"], lang)
    page = e.open(f"{url}/t/acme/models")
    assert page.locator("#reason-force").count() == 0
    assert e.close() == []


def test_deployments_alert_rules_and_labels_from_forms(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    lang = "en"
    platform, url, _ep = site
    j = Journey(contexts[f"kim-{lang}"], lang)
    page = j.open(f"{url}/t/acme/operations")
    dep = f"pumps-{lang}"
    page.fill("#dep-name", dep)
    page.select_option("#dep-model", "pump-pca")
    page.select_option("#dep-target-kind", "asset")
    page.fill("#dep-target", "site/nope")
    j.expect(404)
    page.click("#deployment-form button[type=submit]")
    j.wait("#deployment-form[data-done=refused]")
    assert "site/nope" in page.inner_text("#deployment-form")
    page.select_option("#dep-target-kind", "asset_type")
    page.fill("#dep-target", "Pump")
    page.click("#deployment-form button[type=submit]")
    j.wait(f"tr[data-deployment='{dep}']")
    page.click(f"tr[data-deployment='{dep}'] button:text-is('Pause')")
    j.wait(f"tr[data-deployment='{dep}'] button:text-is('Resume')")
    assert not next(d for d in platform.live.list("acme") if d["name"] == dep)["enabled"]
    # a threshold rule without its limit: said beside the limit; then added, and removed
    rule = f"flow-low-{lang}"
    page.fill("#rule-name", rule)
    page.select_option("#rule-scope-kind", "asset_type")
    page.fill("#rule-scope", "Pump")
    page.fill("#rule-signal", "flow")
    page.select_option("#rule-op", "<")
    j.expect(422)
    page.click("#rule-form button[type=submit]")
    j.wait("#rule-form[data-done=refused]")
    assert "needs a value" in page.inner_text("#rule-form")
    page.fill("#rule-value", "5")
    page.click("#rule-form button[type=submit]")
    j.wait(f"tr[data-rule='{rule}']")
    assert any(r.name == rule and r.spec.value == 5.0 for r in platform.live.rules.list("acme"))
    # a label with a start that is no time; then added
    page.select_option("#label-asset", "site/p0")
    page.fill("#label-kind", "maintenance")
    page.fill("#label-start", "yesterday-ish")
    j.expect(422)
    page.click("#label-form button[type=submit]")
    j.wait("#label-form[data-done=refused]")
    assert "yesterday-ish" in page.inner_text("#label-form") or "start" in page.inner_text("#label-form")
    start = (T0 + pd.Timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M:%S")
    page.fill("#label-start", start)
    page.fill("#label-note", f"seal changed ({lang})")
    page.click("#label-form button[type=submit]")
    j.wait(f"#label-list td:text-is('seal changed ({lang})')")
    j.shot("operations")
    page.click(f"tr[data-rule='{rule}'] button.danger")
    page.wait_for_function(f"!document.querySelector(\"tr[data-rule='{rule}']\")")
    page.click(f"tr[data-deployment='{dep}'] button.danger")
    page.wait_for_function(f"!document.querySelector(\"tr[data-deployment='{dep}']\")")
    assert j.close() == []
    # a viewer may look, and is told so; a change is refused where it was asked
    v = Journey(contexts[f"vic-{lang}"], lang)
    page = v.open(f"{url}/t/acme/operations")
    assert page.locator("#ops-rights").is_visible()
    page.fill("#rule-name", f"vic-{lang}")
    page.fill("#rule-scope", "Pump")
    page.fill("#rule-signal", "flow")
    page.fill("#rule-value", "1")
    v.expect(403)
    page.click("#rule-form button[type=submit]")
    v.wait("#rule-form[data-done=refused]")
    assert "Not allowed" in page.inner_text("#rule-form")
    v.shot("operations-refused")
    assert v.close() == []


def test_users_roles_tokens_grants_and_the_verified_audit_log(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    lang = "en"
    platform, url, _ep = site
    j = Journey(contexts[f"kim-{lang}"], lang)
    page = j.open(f"{url}/t/acme/admin")
    assert page.locator("#user-list tr[data-user='eve']").count() == 1
    page.fill("#role-user", "lee")
    page.select_option("#role-role", "viewer")
    page.click("#role-form button[type=submit]")
    j.wait("#user-list tr[data-user='lee']")
    assert platform.identity.get_user("lee").roles.get("acme") == "viewer"
    page.click("#user-list tr[data-user='lee'] button.danger")
    page.wait_for_function("!document.querySelector(\"#user-list tr[data-user='lee']\")")
    page.fill("#role-user", "nobody-here")
    j.expect(404)
    page.click("#role-form button[type=submit]")
    j.wait("#role-form[data-done=refused]")
    # a token, shown once; then revoked
    page.fill("#token-name", f"historian-export-{lang}")
    page.click("#token-form button[type=submit]")
    j.wait("#token-secret:not([hidden])")
    secret = page.inner_text("#token-secret code")
    assert len(secret) > 20 and platform.identity.authenticate(secret).user == "kim"
    j.go(f"{url}/t/acme/admin")
    assert secret not in page.content()  # never shown again
    page.click(f"#token-list tr:has-text('historian-export-{lang}') button.danger")
    j.wait(f"#token-list tr:has-text('historian-export-{lang}') .state.stale")
    # a sharing grant to another company: a missing end said beside it; then given, and revoked
    page.fill("#grant-grantee", "rival")
    page.fill("#grant-tags", "P0/*")
    page.fill("#grant-start", T0.isoformat())
    j.expect(422)
    page.click("#grant-form button[type=submit]")
    j.wait("#grant-form[data-done=refused]")
    assert field_error(page, "end").strip() not in ("", "(not marked)")
    page.fill("#grant-end", (T0 + pd.Timedelta(seconds=TRAIN_S)).isoformat())
    page.fill("#grant-purpose", f"pump study ({lang})")
    page.click("#grant-form button[type=submit]")
    j.wait(f"#grants-given td:text-is('pump study ({lang})')")
    assert any(g["purpose"] == f"pump study ({lang})" for g in platform.sharing.overview("acme")["given"])
    # the audit log, and its chain verified
    assert page.locator("#audit-list tr[data-seq]").count() > 3
    assert "grant" in page.inner_text("#audit-list")
    page.click("#audit-verify")
    j.wait("#audit-verdict[data-ok=true]")
    assert "Intact" in page.inner_text("#audit-verdict")
    j.shot("admin")
    assert j.close() == []
    # an engineer sees the refusals in place of the admin's sections, and a refused change said where asked
    e = Journey(contexts[f"eve-{lang}"], lang)
    page = e.open(f"{url}/t/acme/admin")
    assert page.locator("[data-refused=users]").is_visible() and page.locator("[data-refused=audit]").is_visible()
    page.fill("#role-user", "eve")
    page.select_option("#role-role", "tenant_admin")
    e.expect(403)
    page.click("#role-form button[type=submit]")
    e.wait("#role-form[data-done=refused]")
    assert "Not allowed" in page.inner_text("#role-form")
    assert platform.identity.get_user("eve").roles["acme"] == "engineer"
    e.shot("admin-refused")
    assert e.close() == []


def test_trend_draws_limits_alerts_labels_and_event_frames_exports_csv_and_says_alerts_in_its_language(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    lang = "en"
    platform, url, _ep = site
    j = Journey(contexts[f"eve-{lang}"], lang)
    start = (T0 + pd.Timedelta(seconds=TRAIN_S - 120)).isoformat()
    end = (T0 + pd.Timedelta(seconds=TRAIN_S + 60)).isoformat()
    (owner,) = platform.twin.assets_with_tags("acme", ["P1/PT"])  # an event frame on the tag's asset, in view
    frame = platform.analytics.open_event("acme", owner, "valve-test", start=T0 + pd.Timedelta(seconds=TRAIN_S - 60))
    platform.analytics.close_event("acme", frame["id"], end=T0 + pd.Timedelta(seconds=TRAIN_S - 30))
    page = j.open(
        f"{url}/t/acme/trends?tags=P1/PT,P1/FT&start={start.replace('+', '%2B')}&end={end.replace('+', '%2B')}"
    )
    j.wait("#chart[data-ready]", state="attached")
    page.wait_for_function("document.getElementById('chart').dataset.alerts > 0")  # at the data's own time
    data = page.evaluate("({...document.getElementById('chart').dataset})")
    assert int(data["limits"]) >= 1 and int(data["labels"]) == 1 and data["axes"] == "2"
    assert data["events"] == "1" and page.locator(f"#overlay-list li[data-event='{frame['id']}']").count() == 1
    listed = page.inner_text("#overlay-list")
    assert "Event frame: valve-test" in listed, listed
    said = "pressure > 50"  # the alert's message key, in the page's language
    assert said in listed and "pressure-high" in listed, listed
    j.shot("trend-limits")
    # the view as CSV: the same points the chart drew, one row each
    csv = page.evaluate("fetch(document.getElementById('export-csv').href).then(r => r.text())")
    head, *rows = csv.strip().splitlines()
    assert "tag" in head and "time" in head and len(rows) == int(data["points"])
    # the alerts page says it in the page's language too
    j.go(f"{url}/t/acme/alerts?state=all")
    assert said in page.inner_text("#alerts")
    assert j.close() == []


def test_the_working_pages_in_korean_say_every_refusal_in_korean(
    site: tuple[Platform, str, str], contexts: dict[str, Any]
) -> None:
    """Each working page once in Korean (the journeys above run whole in English): its refusals said in Korean beside
    their fields (the validation library's sentences and Taehwa's own), a refusal of rights where it was asked,
    alerts said in Korean, and no English left on any of them."""
    _platform, url, _ep = site
    j = Journey(contexts["kim-ko"], "ko")

    def korean(page: Any) -> None:
        left = untranslated(page)
        assert left == [], f"{page.url}: {left}"

    page = j.open(f"{url}/t/acme/connectors")
    korean(page)
    page.select_option("#c-protocol", "mqtt")
    page.fill("#c-name", "Bad Name")
    page.fill("#item-0-topic", "plant/#/pressure")
    j.expect(422)
    page.click("#connector-check")
    j.wait("#connector-form[data-checked=refused]")
    assert "형식이 맞지 않습니다" in field_error(page, "name")
    assert "'#'은 토픽의 한 단계 전체이면서 마지막 단계여야 합니다" in field_error(page, "items[0].topic")
    page.select_option("#c-protocol", "modbus")
    page.fill("#c-name", "plc-ko")
    page.fill("#item-0-address", "70000")
    page.fill("#item-0-tag", "plc/speed")
    j.expect(422)
    page.click("#connector-check")
    j.wait("#connector-form[data-checked=refused]")
    assert "65535 이하여야 합니다" in field_error(page, "items[0].address")
    korean(page)
    j.shot("connector-problems")
    # the plant file: its problems by line, in Korean
    page = j.open(f"{url}/t/acme/plant/edit")
    good = page.input_value("#plant-text")
    page.fill("#plant-text", good.replace("type: Pump", "type: Pumpx", 1).replace("id: p1", "id: P 1", 1))
    j.expect(422)
    page.click("#plant-save")
    j.wait("#plant-form[data-saved=refused]")
    listed = page.inner_text("#plant-problems")
    assert "알 수 없는 유형 'Pumpx'" in listed and "자산 ID 'P 1'" in listed, listed
    korean(page)
    j.shot("plant-problems")
    # a spec the lab refuses: its problems listed, the bar gone
    page = j.open(f"{url}/t/acme/models")
    korean(page)
    page.evaluate(
        "(() => { const t = document.getElementById('spec-text'), s = JSON.parse(t.value);"
        " s.task = 'guessing'; t.value = JSON.stringify(s); })()"
    )
    j.expect(422)
    page.click("#train-run")
    j.wait("#train-form[data-state=refused]")
    listed = page.inner_text("#train-problems")
    assert "task" in listed and "다음 중 하나여야 합니다" in listed and page.locator("#train-progress").is_hidden()
    korean(page)
    j.shot("models-refused")
    # operations: a deployment on no asset, a threshold rule without its limit, a label that starts at no time
    page = j.open(f"{url}/t/acme/operations")
    korean(page)
    page.fill("#dep-name", "pumps-ko")
    page.select_option("#dep-model", "pump-pca")
    page.select_option("#dep-target-kind", "asset")
    page.fill("#dep-target", "site/nope")
    j.expect(404)
    page.click("#deployment-form button[type=submit]")
    j.wait("#deployment-form[data-done=refused]")
    assert "자산 'site/nope'이(가) 없습니다" in page.inner_text("#deployment-form")
    page.fill("#rule-name", "flow-low-ko")
    page.select_option("#rule-scope-kind", "asset_type")
    page.fill("#rule-scope", "Pump")
    page.fill("#rule-signal", "flow")
    j.expect(422)
    page.click("#rule-form button[type=submit]")
    j.wait("#rule-form[data-done=refused]")
    assert "임계값 규칙에는 값(value)이 필요합니다" in page.inner_text("#rule-form")
    page.select_option("#label-asset", "site/p0")
    page.fill("#label-kind", "maintenance")
    page.fill("#label-start", "yesterday-ish")
    j.expect(422)
    page.click("#label-form button[type=submit]")
    j.wait("#label-form[data-done=refused]")
    assert "시각 'yesterday-ish'을(를) 읽을 수 없습니다" in page.inner_text("#label-form")
    korean(page)
    j.shot("operations-problems")
    # administration: the audit chain verified
    page = j.open(f"{url}/t/acme/admin")
    page.click("#audit-verify")
    j.wait("#audit-verdict[data-ok=true]")
    assert "무결" in page.inner_text("#audit-verdict")
    korean(page)
    j.shot("admin")
    # the alert in Korean on the trend and the alerts page
    start = (T0 + pd.Timedelta(seconds=TRAIN_S - 120)).isoformat().replace("+", "%2B")
    end = (T0 + pd.Timedelta(seconds=TRAIN_S + 60)).isoformat().replace("+", "%2B")
    page = j.open(f"{url}/t/acme/trends?tags=P1/PT,P1/FT&start={start}&end={end}")
    page.wait_for_function("document.getElementById('chart').dataset.alerts > 0")
    assert "pressure 50 초과" in page.inner_text("#overlay-list")
    korean(page)
    j.shot("trend-limits")
    page = j.open(f"{url}/t/acme/alerts?state=all")
    assert "pressure 50 초과" in page.inner_text("#alerts")
    korean(page)
    assert j.close() == []
    # an engineer: the connectors' rights note, and a refused change said where it was asked
    e = Journey(contexts["eve-ko"], "ko")
    page = e.open(f"{url}/t/acme/connectors")
    assert page.locator("#connector-rights").is_visible()
    korean(page)
    page = e.open(f"{url}/t/acme/admin")
    page.fill("#role-user", "eve")
    page.select_option("#role-role", "tenant_admin")
    e.expect(403)
    page.click("#role-form button[type=submit]")
    e.wait("#role-form[data-done=refused]")
    assert "권한 없음" in page.inner_text("#role-form")
    korean(page)
    e.shot("admin-refused")
    assert e.close() == []
