"""The web UI: server-rendered pages (Jinja2) with a little vendored client code (uPlot for trends, a small script
for live updates over SSE and for actions through the HTTP API). Thin: each page asks the same services the API
and the CLI use, as the signed-in caller (the session cookie), and shows what they answer.

Pages: sign-in; the control tower (platform admins); per tenant the plant (asset tree with live states), an asset,
trends, alerts and models; the working pages of `work` (connectors, the plant file, operations, administration);
the academy's challenges with their boards and a submission form. Every
label comes from `i18n` in Korean or English.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from taehwa import __version__
from taehwa.core.errors import NotFound, TaehwaError
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, current
from taehwa.web import views
from taehwa.web.directions import direction, lower_better
from taehwa.web.i18n import LANG_COOKIE, LANGUAGES, MESSAGES, pick_language, say, translate
from taehwa.web.icons import icon
from taehwa.web.sentences import in_language, patterns
from taehwa.web.work import add_work_pages

HERE = Path(__file__).parent


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlpath"] = lambda s: quote(str(s), safe="/")
    env.filters["fig"] = _figure
    env.globals["icon"] = icon
    env.globals["lower_better"] = lower_better
    env.globals["direction"] = direction
    return env


def _figure(v: Any, digits: int = 4) -> str:
    """A figure for reading: a few significant digits, thousands apart, '—' for none."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int) or (float(v).is_integer() and abs(v) < 1e15):
        return f"{int(v):,}"
    return f"{v:,.{digits}g}" if abs(v) < 1e6 else f"{v:,.0f}"


def add_web_routes(app: FastAPI, platform: Platform) -> None:
    """Mount the pages and their static files on the HTTP application."""
    env = _env()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        caller = current()
        tenants = _tenants_of(platform, caller)
        html = env.get_template(name).render(
            t=lambda key: translate(key, lang),
            lang=lang,
            languages=LANGUAGES,
            caller=caller,
            tenants=tenants,
            version=__version__,
            path=request.url.path,
            back=_back(request),
            messages={k: translate(k, lang) for k in MESSAGES},
            say=lambda alert: say(alert, lang),
            said=lambda text: in_language(text, lang),
            figure=lambda v: in_language(v, lang) if isinstance(v, str) else _figure(v),
            sentences=patterns() if lang == "ko" else [],
            **ctx,
        )
        return HTMLResponse(html, status_code=status)

    def signed_in(request: Request) -> Principal | RedirectResponse:
        caller = current()
        if caller.problem is not None:
            return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
        return caller

    async def page(request: Request, name: str, build: Any, **ctx: Any) -> Response:
        """A page for a signed-in caller: `build()` runs in a worker thread (it reads the stores); a refusal of the
        services (no access, no such asset) is shown as a page with the reason and its status."""
        who = signed_in(request)
        if isinstance(who, RedirectResponse):
            return who
        try:
            data = await run_in_threadpool(build) if build else {}
        except TaehwaError as exc:
            return render(request, "error.html", status=exc.http_status, error=exc, **ctx)
        return render(request, name, **ctx, **data)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        caller = current()
        if caller.problem is not None:
            return RedirectResponse("/login", status_code=303)
        if caller.platform_admin:
            return RedirectResponse("/tower", status_code=303)
        first = sorted(caller.tenants() or [])
        return RedirectResponse(f"/t/{first[0]}/plant" if first else "/login", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = Query("/", max_length=500)) -> HTMLResponse:
        safe_next = next if next.startswith("/") and not next.startswith("//") else "/"
        return render(request, "login.html", next=safe_next)

    @app.get("/lang/{code}", include_in_schema=False)
    def set_language(code: str, request: Request, back: str = Query("/", max_length=500)) -> Response:
        """The language switch: remembered in a cookie for a year."""
        if code not in LANGUAGES:
            raise NotFound(f"no language {code!r}; choose ko or en", where="language")
        target = back if back.startswith("/") and not back.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax")
        return response

    @app.get("/tower", include_in_schema=False)
    async def tower(request: Request) -> Response:
        def build() -> dict[str, Any]:
            rows = platform.overview.tenants()
            tenants = [r["tenant"] for r in rows]
            return {
                "rows": rows,
                "daily": views.alerts_per_day(platform, tenants),
                "volume": views.points_per_day(platform, tenants),
            }

        return await page(request, "tower.html", build)

    @app.get("/t/{tenant}/plant", include_in_schema=False)
    async def plant(request: Request, tenant: str) -> Response:
        def build() -> dict[str, Any]:
            return {"tree": views.plant_tree(platform, tenant), "counts": platform.twin.state_counts(tenant)}

        return await page(request, "plant.html", build, tenant=tenant, section="plant")

    @app.get("/t/{tenant}/assets/{path:path}", include_in_schema=False)
    async def asset(request: Request, tenant: str, path: str) -> Response:
        def build() -> dict[str, Any]:
            doc = platform.twin.get(tenant, path)
            state = platform.twin.state(tenant, path)
            rows = views.signal_rows(platform, tenant, path)
            deployed = platform.live.deployed_on(tenant, path)
            return {
                "asset": doc,
                "state": state,
                "signals": [r for r in rows if not r["output"]],
                "outputs": views.explain_outputs(platform, tenant, path, rows, deployed),
                "deployments": deployed,
                "alerts": platform.live.alerts.list(tenant, asset=path, limit=50),
                "children": doc["children"],
            }

        return await page(request, "asset.html", build, tenant=tenant, section="plant")

    @app.get("/t/{tenant}/trends", include_in_schema=False)
    async def trends(
        request: Request,
        tenant: str,
        tags: str = Query("", max_length=10_000),
        start: str | None = Query(None, max_length=64),
        end: str | None = Query(None, max_length=64),
    ) -> Response:
        def build() -> dict[str, Any]:
            platform.tenants.require(tenant)
            names = [x.strip() for x in tags.split(",") if x.strip()]
            known = platform.historian.catalog.ids(tenant)
            if any(n not in known for n in names):  # a tag written since the catalog was read
                known = platform.historian.catalog.ids(tenant, refresh=True)
            unknown = [n for n in names if n not in known]  # an unknown tag is named, not drawn empty
            names = [n for n in names if n in known]
            units = {**views.bound_units(platform, tenant, names), **views.tag_units(platform, tenant)}
            return {
                "tags": names,
                "unknown": unknown,
                "start": start or "",
                "end": end or "",
                "units": {n: units.get(n) for n in names},
                "browser": views.tag_tree(platform, tenant),
                "owners": platform.twin.assets_with_tags(tenant, names),
                "limits": views.tag_limits(platform, tenant, names),
            }

        return await page(request, "trends.html", build, tenant=tenant, section="trends")

    @app.get("/t/{tenant}/alerts", include_in_schema=False)
    async def alerts(
        request: Request,
        tenant: str,
        state: str = Query("open", max_length=20),
        asset: str | None = Query(None, max_length=500),
        severity: str | None = Query(None, max_length=20),
        rule: str | None = Query(None, max_length=100),
    ) -> Response:
        def build() -> dict[str, Any]:
            rows = platform.live.alerts.list(
                tenant,
                state=None if state == "all" else state,
                asset=asset or None,
                severity=severity or None,
                rule=rule or None,
                limit=200,
            )
            return {
                "alerts": views.alert_details(platform, tenant, rows),
                "state": state,
                "asset": asset or "",
                "severity": severity or "",
                "rule": rule or "",
                "rules": sorted(r.name for r in platform.live.rules.list(tenant)),
            }

        return await page(request, "alerts.html", build, tenant=tenant, section="alerts")

    @app.get("/t/{tenant}/models", include_in_schema=False)
    async def models(request: Request, tenant: str) -> Response:
        def build() -> dict[str, Any]:
            versions = platform.lab.versions(tenant)
            runs = {}
            for v in versions:
                try:
                    runs[v["run_id"]] = platform.lab.get_run(tenant, v["run_id"])
                except TaehwaError:
                    continue
            recent = platform.lab.runs(tenant, limit=20)
            specs = {}
            for r in recent:  # a starting point for the train form: the spec of each recent run, newest first
                spec = (runs.get(r["run_id"]) or _run_or_none(platform, tenant, r["run_id"]) or {}).get("spec")
                if spec and spec.get("name") not in specs:
                    specs[spec.get("name")] = spec
            return {
                "versions": versions,
                "runs": runs,
                "deployments": platform.live.list(tenant),
                "specs": specs,
                "can_force": current().may(tenant, "admin"),
            }

        return await page(request, "models.html", build, tenant=tenant, section="models")

    @app.get("/t/{tenant}/models/runs/{run_id}", include_in_schema=False)
    async def run_report(request: Request, tenant: str, run_id: str) -> Response:
        """A run's validation report inside the UI: figures against the baseline and production, each with which
        way is better, the verdict, the data it was judged on."""

        def build() -> dict[str, Any]:
            return {"run": platform.lab.get_run(tenant, run_id)}

        return await page(request, "report.html", build, tenant=tenant, section="models")

    @app.get("/academy", include_in_schema=False)
    async def academy(request: Request) -> Response:
        return await page(
            request, "academy.html", lambda: {"challenges": platform.academy.list_challenges()}, section="academy"
        )

    @app.get("/academy/{cid}", include_in_schema=False)
    async def challenge(request: Request, cid: str) -> Response:
        def build() -> dict[str, Any]:
            return {
                "c": platform.academy.get(cid),
                "board": platform.academy.board(cid),
                "mine": platform.academy.submissions(cid),
            }

        return await page(request, "challenge.html", build, section="academy")

    add_work_pages(app, platform, page)


def _run_or_none(platform: Platform, tenant: str, run_id: str) -> dict[str, Any] | None:
    try:
        return platform.lab.get_run(tenant, run_id)
    except TaehwaError:
        return None


def _back(request: Request) -> str:
    """Where the language switch returns to: this page with its query (the tags and range of a trend)."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _tenants_of(platform: Platform, caller: Principal) -> list[str]:
    if caller.problem is not None:
        return []
    mine = caller.tenants()
    if mine is None:
        try:
            return [t.id for t in platform.tenants.list()]
        except TaehwaError:
            return []
    return sorted(mine)
