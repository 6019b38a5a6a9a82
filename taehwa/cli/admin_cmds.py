"""`taehwa admin …` and `taehwa audit …`: users, roles, tokens and passwords from the operator's shell, and the
audit log's integrity check.

Users, roles and tokens live only in the metadata database, which the server reads on every request, so these
commands work while the server runs (they open the historian read-only) and take effect at once.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from taehwa.cli.common import JsonOpt, err, out, print_table, services

admin_app = typer.Typer(help="Users, roles and API tokens (run on the platform's machine).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log (감사 로그): read it, verify its hash chain.", no_args_is_help=True)


@admin_app.command("tenant")
def tenant(tenant_id: str, name: Annotated[str | None, typer.Option()] = None) -> None:
    """Create a tenant (the same as `taehwa tenants create`)."""
    with services(readonly=False) as platform:
        t = platform.tenants.create(tenant_id, name)
        out.print(f"created tenant {t.id} ({t.name})")


@admin_app.command("user")
def user(
    user_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Give a role in this tenant.")] = None,
    role: Annotated[str, typer.Option(help="tenant_admin, engineer, viewer or researcher.")] = "viewer",
    platform_admin: Annotated[bool, typer.Option(help="A platform admin (the city office).")] = False,
    password: Annotated[bool, typer.Option(help="Ask for a password (else token-only).")] = False,
) -> None:
    """Create a user, optionally with a role in a tenant."""
    secret = typer.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    with services(readonly=True) as platform:
        u = platform.identity.create_user(user_id, name, password=secret, platform_admin=platform_admin)
        if tenant:
            u = platform.identity.set_role(user_id, tenant, role)
        out.print_json(json.dumps(u.to_dict()))


@admin_app.command("role")
def role(
    user_id: str,
    tenant: Annotated[str, typer.Option("--tenant", "-t")],
    role_name: Annotated[
        str, typer.Argument(metavar="ROLE", help="tenant_admin, engineer, viewer, researcher or none to remove.")
    ],
) -> None:
    """Set a user's role in a tenant."""
    with services(readonly=True) as platform:
        u = platform.identity.set_role(user_id, tenant, None if role_name == "none" else role_name)
        out.print_json(json.dumps(u.to_dict()))


@admin_app.command("users")
def users(tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None, as_json: JsonOpt = False) -> None:
    """List users (of one tenant, or all)."""
    with services(readonly=True) as platform:
        view = Table("user", "name", "platform admin", "roles")
        for u in platform.identity.list_users(tenant):
            view.add_row(
                u.id, u.name, "yes" if u.platform_admin else "", ", ".join(f"{t}: {r}" for t, r in u.roles.items())
            )
        print_table(
            view,
            as_json=as_json,
            data=[
                {"user": u.id, "name": u.name, "platform_admin": u.platform_admin, "roles": u.roles}
                for u in platform.identity.list_users(tenant)
            ],
        )


@admin_app.command("password")
def password(user_id: str) -> None:
    """Set or reset a user's password (and unlock the account)."""
    secret = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    with services(readonly=True) as platform:
        platform.identity.set_password(user_id, secret)
        out.print(f"password of {user_id} set")


@admin_app.command("token")
def token(
    user_id: str,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    scope: Annotated[list[str] | None, typer.Option(help="read, write, admin (repeatable; default all).")] = None,
    days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
) -> None:
    """Make an API token for a user; it is printed once and stored only as a hash."""
    with services(readonly=True) as platform:
        secret, info = platform.identity.create_token(user_id, name, scopes=scope, expires_in_days=days)
        err.print(
            f"token {info.id} for {user_id}, scopes {', '.join(info.scopes)}"
            + (f", expires {info.expires_at.isoformat(timespec='seconds')}" if info.expires_at else "")
        )
        print(secret)


@admin_app.command("tokens")
def tokens(user_id: str, as_json: JsonOpt = False) -> None:
    """List a user's tokens (never their secrets)."""
    with services(readonly=True) as platform:
        view = Table("id", "name", "scopes", "created", "expires", "revoked")
        for t in platform.identity.list_tokens(user_id):
            d = t.to_dict()
            view.add_row(
                d["id"],
                d["name"],
                ",".join(d["scopes"]),
                d["created_at"][:19],
                (d["expires_at"] or "")[:19],
                (d["revoked_at"] or "")[:19],
            )
        print_table(view, as_json=as_json, data=[t.to_dict() for t in platform.identity.list_tokens(user_id)])


@admin_app.command("revoke")
def revoke(
    token_id: Annotated[str | None, typer.Argument(help="The token's id (taehwa admin tokens USER).")] = None,
    user_id: Annotated[str | None, typer.Option("--user", help="With --name: that user's tokens of that name.")] = None,
    name: Annotated[str | None, typer.Option(help="The name given when the token was made.")] = None,
) -> None:
    """Revoke a token at once (by id, or a user's live tokens of one name); its open streams end within seconds."""
    if (token_id is None) == (user_id is None or name is None):
        raise typer.BadParameter("give a token id, or --user and --name")
    with services(readonly=True) as platform:
        ids = (
            [token_id]
            if token_id
            else [t.id for t in platform.identity.list_tokens(user_id or "") if t.name == name and t.revoked_at is None]
        )
        if not ids:
            raise typer.BadParameter(f"{user_id} has no live token named {name!r}")
        for one in ids:
            platform.identity.revoke_token(one)
            out.print(f"revoked {one}")


@audit_app.command("verify")
def verify() -> None:
    """Check the keyed chain, the signed head and checkpoints; exits 7 naming what was changed, removed, reordered or
    is missing (the key, the head file)."""
    with services(readonly=True) as platform:
        verdict = platform.audit.verify()
    if verdict.ok:
        out.print(f"audit log {verdict.describe()}")
        return
    err.print(
        "[red]audit log broken[/red]" + (f" at entry {verdict.first_bad}" if verdict.first_bad else "") + ": ", end=""
    )
    err.print(verdict.reason or "unknown", markup=False, highlight=False)
    raise typer.Exit(7)


@audit_app.command("reseal")
def reseal(
    reason: Annotated[str, typer.Option(help="Why (recorded in the log): what you found and did.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Accept the log as it now stands after looking into a failed verify (lost head file, restored backup): the
    chain must still hold; writes a new signed head and records the reseal."""
    if not yes:
        typer.confirm("the log's recorded length is replaced by its present one; continue?", abort=True)
    with services(readonly=True) as platform:
        verdict = platform.audit.reseal(reason)
    out.print(f"audit log resealed: {verdict.describe()}")


@audit_app.command("show")
def show(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The newest entries."""
    with services(readonly=True) as platform:
        view = Table("seq", "at", "actor", "tenant", "action", "target")
        for e in platform.audit.entries(tenant, limit=limit):
            view.add_row(str(e["seq"]), e["at"][:19], e["actor"], e["tenant"] or "", e["action"], e["target"] or "")
        print_table(view, as_json=as_json, data=platform.audit.entries(tenant, limit=limit))


__all__ = ["admin_app", "audit_app"]
