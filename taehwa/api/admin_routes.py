"""HTTP routes for identity and audit: users, roles, API tokens, sign-in, and the audit log. Who may call each is
decided by the identity and audit services, not here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from taehwa.api.caller import CSRF_COOKIE, SESSION_COOKIE, csrf_token
from taehwa.api.responses import BoundedRoute, split_tags, table_response
from taehwa.server.platform import Platform
from taehwa.tenancy.access import acting_as, check, check_platform_admin, current


class UserIn(BaseModel):
    """A new user."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="lower-case sign-in name, e.g. kim.engineer")
    name: str | None = None
    password: str | None = Field(None, description=">= 10 characters; leave out for token-only users")
    platform_admin: bool = False


class RoleIn(BaseModel):
    """A user's role in a tenant (null removes it)."""

    model_config = ConfigDict(extra="forbid")
    role: str | None = Field(description="tenant_admin, engineer, viewer or researcher")


class TokenIn(BaseModel):
    """A new API token."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    user: str | None = Field(None, description="whose token (platform admins only; default: the caller)")
    scopes: list[str] | None = Field(None, description="read, write, admin (default: all the caller has)")
    expires_in_days: float | None = Field(None, gt=0, le=3650)


class PasswordIn(BaseModel):
    """A new password."""

    model_config = ConfigDict(extra="forbid")
    password: str


class LoginIn(BaseModel):
    """Sign-in with a password; the answer is a token that expires."""

    model_config = ConfigDict(extra="forbid")
    user: str
    password: str
    hours: float = Field(12, gt=0, le=24 * 30)


class GrantIn(BaseModel):
    """Read access for another tenant to some tags over a time range."""

    model_config = ConfigDict(extra="forbid")
    grantee: str = Field(description="the tenant (company or research group) that may read")
    tags: list[str] = Field(min_length=1, description="tag names, or prefixes written as 'cdu/*'")
    start: str
    end: str
    days: float = Field(gt=0, le=3650, description="how long the grant lasts")
    pseudonymise: bool = Field(False, description="replace tag names and scale values affinely")
    purpose: str | None = None


def add_admin_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the identity, audit and sharing routes."""
    ident = platform.identity
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["identity"])

    @router.get("/api/v1/me")
    def me() -> dict[str, Any]:
        """The caller: user, roles per tenant, token scopes."""
        p = current()
        return {
            "user": p.user,
            "platform_admin": p.platform_admin,
            "roles": p.roles,
            "scopes": sorted(p.scopes),
            "token": p.token_id,
        }

    @router.get("/api/v1/users")
    def list_users(
        tenant: str | None = Query(None, description="only this tenant's users (its admins may ask)"),
    ) -> list[dict[str, Any]]:
        """Users (all: platform admins; a tenant's: its admins)."""
        return [u.to_dict() for u in ident.list_users(tenant)]

    @router.post("/api/v1/users", status_code=201)
    def create_user(body: UserIn) -> dict[str, Any]:
        """Add a user (platform admins)."""
        return ident.create_user(
            body.id, body.name, password=body.password, platform_admin=body.platform_admin
        ).to_dict()

    @router.put("/api/v1/{tenant}/users/{user}")
    def set_role(tenant: str, user: str, body: RoleIn) -> dict[str, Any]:
        """Give a user a role in a tenant, or remove it (the tenant's admins, platform admins)."""
        return ident.set_role(user, tenant, body.role).to_dict()

    @router.put("/api/v1/users/{user}/password", status_code=204)
    def set_password(user: str, body: PasswordIn) -> None:
        """Set a password (the user themself, or a platform admin resetting it)."""
        ident.set_password(user, body.password)

    @router.get("/api/v1/tokens")
    def list_tokens(user: str | None = None) -> list[dict[str, Any]]:
        """The caller's tokens (platform admins: anyone's)."""
        return [t.to_dict() for t in ident.list_tokens(user or current().user)]

    @router.post("/api/v1/tokens", status_code=201)
    def create_token(body: TokenIn) -> dict[str, Any]:
        """Make an API token; the `token` field is shown only in this answer."""
        secret, info = ident.create_token(
            body.user or current().user, body.name, scopes=body.scopes, expires_in_days=body.expires_in_days
        )
        return {"token": secret, **info.to_dict()}

    @router.delete("/api/v1/tokens/{token_id}", status_code=204)
    def revoke_token(token_id: str) -> None:
        """Revoke a token at once."""
        ident.revoke_token(token_id)

    @router.get("/api/v1/overview")
    def overview() -> list[dict[str, Any]]:
        """Every tenant at a glance, for the city's control tower (platform admins): sites, assets, data rate,
        assets by state, active alerts, models in production with their latest validation figure."""
        return platform.overview.tenants()

    @router.get("/api/v1/audit")
    def audit(
        tenant: str | None = Query(None, description="a tenant's entries (its admins); all for platform admins"),
        limit: int = Query(100, ge=1, le=10_000),
        before_seq: int | None = Query(None, ge=1, le=2**62),
    ) -> list[dict[str, Any]]:
        """The audit log, newest first."""
        return platform.audit.entries(tenant, limit=limit, before_seq=before_seq)

    @router.get("/api/v1/audit/verify")
    def verify_audit(
        tenant: str | None = Query(
            None, description="as this tenant's admin: whether the chain that holds its entries is intact"
        ),
    ) -> dict[str, Any]:
        """Walk the audit log's hash chain. Platform admins get the whole verdict; a tenant's admins whether it is
        intact and how many of its own entries it holds (no other tenant's figures)."""
        if tenant is None:
            check_platform_admin("verify the whole audit log")
        else:
            check(tenant, "admin")
        verdict = platform.audit.verify()
        if tenant is None:
            return {
                "ok": verdict.ok,
                "entries": verdict.entries,
                "first_bad": verdict.first_bad,
                "reason": verdict.reason,
                "keyed_from": verdict.keyed_from,
                "checkpoints": verdict.checkpoints,
                "summary": verdict.describe(),
            }
        own = len(platform.audit.entries(tenant, limit=1_000_000))
        return {
            "ok": verdict.ok,
            "entries": own,
            "summary": "intact" if verdict.ok else "broken: ask the platform operator to run `taehwa audit verify`",
        }

    sharing = platform.sharing

    @router.post("/api/v1/{tenant}/grants", status_code=201, tags=["sharing"])
    def create_grant(tenant: str, body: GrantIn) -> dict[str, Any]:
        """Grant another tenant read access to a dataset (this tenant's admins)."""
        g = sharing.create(
            tenant,
            body.grantee,
            body.tags,
            body.start,
            body.end,
            days=body.days,
            pseudonymise=body.pseudonymise,
            purpose=body.purpose,
        )
        return g.to_dict(for_owner=True)

    @router.get("/api/v1/{tenant}/grants", tags=["sharing"])
    def list_grants(tenant: str) -> dict[str, Any]:
        """Grants this tenant has given (admins see them) and received."""
        return sharing.overview(tenant)

    @router.delete("/api/v1/{tenant}/grants/{grant_id}", status_code=204, tags=["sharing"])
    def revoke_grant(tenant: str, grant_id: str) -> None:
        """End a grant at once."""
        sharing.revoke(tenant, grant_id)

    @router.get("/api/v1/{tenant}/shared/{grant_id}/tags", tags=["sharing"])
    def shared_tags(tenant: str, grant_id: str) -> list[str]:
        """Tags readable under a grant this tenant received (pseudonymous names where the grant says so)."""
        return sharing.tags(tenant, grant_id)

    @router.get("/api/v1/{tenant}/shared/{grant_id}/points", tags=["sharing"])
    def shared_points(
        tenant: str,
        grant_id: str,
        tags: Annotated[list[str], Query(description="tag names as the grant shows them")],
        start: str,
        end: str,
        every: str | None = None,
        agg: str = "avg",
        format: str = Query("json", pattern="^(json|csv|arrow)$"),
    ) -> Response:
        """Points under a grant, clipped to its range; each read is recorded in the owner's audit log."""
        table = sharing.read(tenant, grant_id, split_tags(tags), start, end, every=every, agg=agg)
        return table_response(table, format)

    app.include_router(router)

    @app.post("/api/v1/session", tags=["identity"], status_code=204)
    async def open_session(body: LoginIn, response: Response) -> None:
        """Sign in from a browser: sets an HTTP-only session cookie (Secure under TLS, SameSite=Strict) and the
        `taehwa_csrf` cookie whose value must come back in an X-CSRF-Token header on every change."""
        answer = await login(body)
        secure = bool(platform.settings.tls_cert and platform.settings.tls_key)
        max_age = int(body.hours * 3600)
        response.set_cookie(
            SESSION_COOKIE, answer["token"], max_age=max_age, httponly=True, secure=secure, samesite="strict", path="/"
        )
        response.set_cookie(
            CSRF_COOKIE,
            csrf_token(answer["token"]),
            max_age=max_age,
            httponly=False,
            secure=secure,
            samesite="strict",
            path="/",
        )

    @app.delete("/api/v1/session", tags=["identity"], status_code=204, dependencies=[Depends(auth)])
    def close_session(response: Response) -> None:
        """Sign out: the session's token is revoked and the cookies cleared."""
        if current().token_id:
            ident.revoke_token(current().token_id or "")
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")

    @app.post("/api/v1/login", tags=["identity"])
    async def login(body: LoginIn) -> dict[str, Any]:
        """Sign in with a password; answers a token that expires after `hours` (for programs and the web UI)."""
        user = await run_in_threadpool(ident.login, body.user, body.password)
        from taehwa.tenancy.access import Principal

        def make() -> tuple[str, Any]:
            with acting_as(Principal(user.id, user.platform_admin, user.roles)):
                return ident.create_token(user.id, "sign-in", expires_in_days=body.hours / 24)

        secret, info = await run_in_threadpool(make)
        return {"token": secret, **info.to_dict()}
