"""Who may do what: roles, the one table of their permissions, and the check every service call makes.

The caller is carried in a context variable: the HTTP layer sets it from the request's credentials before any route
runs, so the services (historian, twin, …) check it themselves and no endpoint can forget to. Code that runs with
no caller set (the CLI at the operator's shell, background threads such as the demo replay) acts as the local
system, which may do everything: it already has the data directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from taehwa.core.errors import Forbidden, Unauthorized

ROLES = ("platform_admin", "tenant_admin", "engineer", "viewer", "researcher")
ACTIONS = ("read", "write", "admin")

# The one place that says what each role may do within a tenant it belongs to. Platform admins may do everything
# in every tenant, and are the only ones who create tenants. The README's role table is this table.
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"tenant_admin", "engineer", "viewer", "researcher"}),  # query points, read the twin
    "write": frozenset({"tenant_admin", "engineer"}),  # write points, change the twin and tag metadata
    "admin": frozenset({"tenant_admin"}),  # manage the tenant's users, tokens and retention
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user with roles per tenant, limited by the scopes of the token used."""

    user: str
    platform_admin: bool = False
    roles: dict[str, str] = field(default_factory=dict)  # tenant → role
    scopes: frozenset[str] = frozenset(ACTIONS)
    token_id: str | None = None
    source: str | None = None  # the client address, for the audit log
    problem: str | None = None  # set for callers that failed to authenticate: every check refuses them
    local: bool = False  # the operator at this machine's shell (or the platform itself), never an HTTP caller

    def may(self, tenant: str, action: str) -> bool:
        """Whether this caller may do `action` in `tenant`."""
        if self.problem is not None or action not in self.scopes:
            return False
        return self.platform_admin or self.roles.get(tenant) in PERMISSIONS[action]

    def tenants(self) -> set[str] | None:
        """The tenants this caller may read (None: all, for platform admins)."""
        if self.platform_admin:
            return None
        return {t for t, r in self.roles.items() if r in PERMISSIONS["read"]}


SYSTEM = Principal("system", platform_admin=True, local=True)


def anonymous(reason: str, source: str | None = None) -> Principal:
    """A caller without valid credentials: refused by every check, with the reason."""
    return Principal("anonymous", scopes=frozenset(), source=source, problem=reason)


_current: ContextVar[Principal | None] = ContextVar("taehwa_principal", default=None)


def current() -> Principal:
    """The caller of the running service call (the local system when none was set)."""
    p = _current.get()
    return SYSTEM if p is None else p


@contextmanager
def acting_as(principal: Principal) -> Iterator[None]:
    """Run a block as a caller."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)


def set_caller(principal: Principal) -> None:
    """Make a caller current for the rest of this context (the HTTP layer does this per request)."""
    _current.set(principal)


def check(tenant: str, action: str) -> Principal:
    """Refuse the call unless the current caller may do `action` in `tenant`; returns the caller."""
    p = current()
    if p.problem is not None:
        raise Unauthorized(p.problem, where="Authorization")
    if action not in p.scopes:
        raise Forbidden(
            f"this token's scopes ({', '.join(sorted(p.scopes)) or 'none'}) do not allow {action}", where="scope"
        )
    if p.platform_admin:
        return p
    role = p.roles.get(tenant)
    if role is None:
        raise Forbidden(f"user {p.user!r} has no access to tenant {tenant!r}", where="tenant")
    if role not in PERMISSIONS[action]:
        raise Forbidden(f"a {role} may not {action} in tenant {tenant!r}", where="role")
    return p


def check_platform_admin(what: str) -> Principal:
    """Refuse unless the current caller is a platform admin."""
    p = current()
    if p.problem is not None:
        raise Unauthorized(p.problem, where="Authorization")
    if not p.platform_admin or "admin" not in p.scopes:
        raise Forbidden(f"only a platform admin may {what}", where="role")
    return p
