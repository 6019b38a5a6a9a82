"""The pages where a plant engineer changes things, not only looks: connectors (with an OPC UA browse), the plant file
and its assets, training and evaluating a spec, versions side by side, deployments, alert rules and labels, and a
company's users, roles, tokens, sharing grants and audit log. Thin: each page shows what the services answer for the
signed-in caller; every change is made by the page's script through the HTTP API with the caller's session, so the
API's checks (rights, validation) are the only ones, and their refusals are shown where the change was asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from taehwa.core.errors import InvalidInput, TaehwaError
from taehwa.core.yamlio import dump_yaml
from taehwa.server.platform import Platform
from taehwa.tenancy.access import current
from taehwa.web import views

Page = Callable[..., Awaitable[Response]]
ROLE_CHOICES = ("tenant_admin", "engineer", "viewer", "researcher")


def _refused(build: Callable[[], Any]) -> tuple[Any, str | None]:
    """A section's data, or the reason the services refused it (shown in place of the section)."""
    try:
        return build(), None
    except TaehwaError as exc:
        return None, str(exc.to_dict().get("message") or exc)


def add_work_pages(app: FastAPI, platform: Platform, page: Page) -> None:
    """Mount the working pages; `page` renders a template for a signed-in caller (see `pages.add_web_routes`)."""

    def admin_of(tenant: str) -> bool:
        return current().may(tenant, "admin")

    @app.get("/t/{tenant}/connectors", include_in_schema=False)
    async def connectors(request: Request, tenant: str) -> Response:
        def build() -> dict[str, Any]:
            return {
                "connectors": platform.connectors.list(tenant),
                "rate": platform.overview.rate(tenant),
                "volume": views.points_per_day(platform, [tenant])[tenant],
                "bindable": views.bindable_signals(platform, tenant),
                "can_admin": admin_of(tenant),
            }

        return await page(request, "connectors.html", build, tenant=tenant, section="connectors")

    @app.get("/t/{tenant}/plant/edit", include_in_schema=False)
    async def plant_edit(request: Request, tenant: str) -> Response:
        def build() -> dict[str, Any]:
            doc = platform.twin.export(tenant)
            plant = platform.twin.plant(tenant)
            return {
                "plant_yaml": dump_yaml(doc) if doc.get("assets") or doc.get("types") else "",
                "paths": sorted(plant.assets),
                "types": sorted(t["name"] for t in platform.twin.types(tenant)),
                "can_write": current().may(tenant, "write"),
            }

        return await page(request, "plant_edit.html", build, tenant=tenant, section="plant")

    @app.get("/t/{tenant}/models/compare", include_in_schema=False)
    async def compare(
        request: Request,
        tenant: str,
        name: str = Query(..., max_length=255),
        a: int = Query(..., ge=1, le=10**9),
        b: int = Query(..., ge=1, le=10**9),
    ) -> Response:
        def build() -> dict[str, Any]:
            versions = {v["version"]: v for v in platform.lab.versions(tenant, name)}
            missing = [x for x in (a, b) if x not in versions]
            if missing:
                raise InvalidInput(f"model {name!r} has no version {missing[0]}", where="version")
            pair = [versions[a], versions[b]]
            runs = [platform.lab.get_run(tenant, v["run_id"]) for v in pair]
            return {
                "model_name": name,
                "pair": pair,
                "runs": runs,
                "rows": views.compare_rows(runs),
                "history": [h for h in platform.lab.history(tenant, name) if h["version"] in (a, b)],
            }

        return await page(request, "compare.html", build, tenant=tenant, section="models")

    @app.get("/t/{tenant}/operations", include_in_schema=False)
    async def operations(request: Request, tenant: str) -> Response:
        def build() -> dict[str, Any]:
            plant = platform.twin.plant(tenant)
            return {
                "deployments": platform.live.list(tenant),
                "rules": [r.to_dict() for r in platform.live.rules.list(tenant)],
                "labels": [lb.to_dict() for lb in platform.labels.list_labels(tenant, limit=200)],
                "models": sorted({v["name"] for v in platform.lab.versions(tenant)}),
                "paths": sorted(plant.assets),
                "types": sorted(t["name"] for t in platform.twin.types(tenant)),
                "can_write": current().may(tenant, "write"),
            }

        return await page(request, "operations.html", build, tenant=tenant, section="operations")

    @app.get("/t/{tenant}/admin", include_in_schema=False)
    async def admin(request: Request, tenant: str) -> Response:
        def build() -> dict[str, Any]:
            platform.tenants.require(tenant)
            users, users_refused = _refused(lambda: [u.to_dict() for u in platform.identity.list_users(tenant)])
            audit, audit_refused = _refused(lambda: platform.audit.entries(tenant, limit=100))
            grants, grants_refused = _refused(lambda: platform.sharing.overview(tenant))
            tokens = [t.to_dict() for t in platform.identity.list_tokens(current().user)]
            return {
                "users": users,
                "users_refused": users_refused,
                "audit": audit,
                "audit_refused": audit_refused,
                "grants": grants,
                "grants_refused": grants_refused,
                "tokens": tokens,
                "roles": ROLE_CHOICES,
                "can_admin": admin_of(tenant),
            }

        return await page(request, "admin.html", build, tenant=tenant, section="admin")
