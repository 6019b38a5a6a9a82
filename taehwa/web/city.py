"""The city's pages: the map (districts, complexes, infrastructure and the sites companies share, live) and the
headquarters' view with its printable report. Thin: each page asks the city service, as the signed-in caller,
and shows what it answers; the wording is the city's own (`taehwa.city.words`) over the UI's."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from taehwa import __version__
from taehwa.city.consents import SHARES
from taehwa.city.words import WORDS, word
from taehwa.core.errors import TaehwaError
from taehwa.server.platform import Platform
from taehwa.tenancy.access import current
from taehwa.web.i18n import LANG_COOKIE, LANGUAGES, MESSAGES, pick_language, translate
from taehwa.web.pages import _back, _env, _tenants_of
from taehwa.web.sentences import in_language, patterns

# a marker's shape says its state without colour: ● normal, ▲ warning, ■ alarm, ◌ stale, ? unknown (as the chips)
SHAPES = {
    "normal": "M0,-7A7,7 0 1 1 0,7A7,7 0 1 1 0,-7Z",
    "warning": "M0,-8L7.5,6H-7.5Z",
    "alarm": "M-6.5,-6.5H6.5V6.5H-6.5Z",
    "stale": "M0,-7A7,7 0 1 1 0,7A7,7 0 1 1 0,-7Z",
    "unknown": "M0,-7A7,7 0 1 1 0,7A7,7 0 1 1 0,-7Z",
    "none": "M0,-5A5,5 0 1 1 0,5A5,5 0 1 1 0,-5Z",
}


def add_city_pages(app: FastAPI, platform: Platform) -> None:
    """Mount /city (the map) and /city/hq (the headquarters' view)."""
    env = _env()

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = pick_language(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
        caller = current()

        def t(key: str) -> str:
            return word(key, lang) if key in WORDS else translate(key, lang)

        messages = {k: translate(k, lang) for k in MESSAGES} | {k: word(k, lang) for k in WORDS}
        html = env.get_template(name).render(
            t=t,
            lang=lang,
            languages=LANGUAGES,
            caller=caller,
            tenants=_tenants_of(platform, caller),
            version=__version__,
            path=request.url.path,
            back=_back(request),
            messages=messages,
            shapes=SHAPES,
            said=lambda text: in_language(text, lang),
            sentences=patterns() if lang == "ko" else [],
            **({"section": "city"} | ctx),
        )
        return HTMLResponse(html, status_code=status)

    async def page(request: Request, name: str, build: Any, **ctx: Any) -> Response:
        caller = current()
        if caller.problem is not None:
            return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
        try:
            data = await run_in_threadpool(build)
        except TaehwaError as exc:
            return render(request, "error.html", status=exc.http_status, error=exc, **ctx)
        return render(request, name, **ctx, **data)

    @app.get("/city", include_in_schema=False)
    async def city_map(request: Request) -> Response:
        return await page(request, "city.html", lambda: {"m": platform.city.map()})

    @app.get("/t/{tenant}/city", include_in_schema=False)
    async def company(request: Request, tenant: str) -> Response:
        def build() -> dict[str, Any]:
            return {"c": platform.city.company(tenant), "figures": platform.city.figures(), "all_shares": SHARES}

        return await page(request, "city_company.html", build, tenant=tenant, section="city_sharing")

    @app.get("/city/hq", include_in_schema=False)
    async def city_hq(request: Request) -> Response:
        return await page(request, "city_hq.html", lambda: {"hq": platform.city.hq()})
