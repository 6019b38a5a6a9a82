"""Users, their roles in tenants, passwords and API tokens.

Passwords are stored as argon2 hashes. A failed sign-in answers the same, in about the same time, whether the user
is unknown, disabled, has no password, is held back or typed a wrong password: an argon2 verification runs every
time (against a dummy hash when there is no real one). After `LOCKOUT_AFTER` failures in a row for one user from one
source address, that source waits before its next try for that user, twice as long after each further failure (up to
`LOCKOUT_S`); other sources are not held back, so nobody can lock a known user out from afar.

API tokens (`thw_<id>_<secret>`) are shown once when made and stored as a SHA-256 of the secret (they are long
random strings, so a fast hash is safe); each has scopes (read, write, admin), an optional expiry, and can be
revoked.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from taehwa.core.errors import Conflict, InvalidInput, NotFound, TaehwaError, Unauthorized
from taehwa.db import api_tokens, memberships, users
from taehwa.tenancy.access import ACTIONS, ROLES, Principal, check, check_platform_admin, current
from taehwa.tenancy.audit import AuditLog

USER_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
LOCKOUT_AFTER = 5  # failures in a row from one source for one user before that source is held back
BACKOFF_S = 30.0  # the first wait; doubled after each further failure
LOCKOUT_S = 900  # the longest wait
TRACKED = 100_000  # (user, source) pairs remembered at most (the least recently failed are forgotten first)
MIN_PASSWORD = 10
WRONG_LOGIN = "wrong user name or password"
_hasher = PasswordHasher()
_dummy: list[str] = []
log = logging.getLogger(__name__)


def _dummy_hash() -> str:
    """An argon2 hash of a random secret, with the hasher's parameters: verified for users without a real hash so
    that an unknown name costs the same time as a wrong password."""
    if not _dummy:
        _dummy.append(str(_hasher.hash(secrets.token_urlsafe(24))))
    return _dummy[0]


def _verify(pw_hash: str, password: str) -> bool:
    """Whether the password matches the hash (a malformed stored hash matches nothing)."""
    try:
        return bool(_hasher.verify(pw_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def source_host(source: str | None) -> str:
    """The address part of a caller's source ('host:port'): one client, whatever port it connects from."""
    if not source:
        return "local"
    host, sep, port = source.rpartition(":")
    return (host if sep and port.isdigit() else source)[:100]


class LoginThrottle:
    """Failed sign-ins per (user name, source address), in memory: after `LOCKOUT_AFTER` in a row that source
    waits before trying that user again, exponentially longer; a success from a source clears only its own count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failed: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()  # → (failures, wait until)

    def wait(self, user: str, source: str) -> float:
        """Seconds this source must still wait before its next try for this user (0: it may try now)."""
        with self._lock:
            entry = self._failed.get((user[:128], source))
        return max(0.0, entry[1] - self._clock()) if entry else 0.0

    def failed(self, user: str, source: str) -> tuple[int, float]:
        """Count a failure; returns the failures in a row and the wait it starts (0 while under the limit)."""
        key = (user[:128], source)
        with self._lock:
            count = self._failed.pop(key, (0, 0.0))[0] + 1
            wait = min(LOCKOUT_S, BACKOFF_S * 2 ** (count - LOCKOUT_AFTER)) if count >= LOCKOUT_AFTER else 0.0
            self._failed[key] = (count, self._clock() + wait)
            while len(self._failed) > TRACKED:
                self._failed.popitem(last=False)
        return count, wait

    def succeeded(self, user: str, source: str) -> None:
        """A correct password from this source: its count starts again."""
        with self._lock:
            self._failed.pop((user[:128], source), None)

    def clear(self, user: str) -> None:
        """Forget every source's failures for a user (after a password reset)."""
        with self._lock:
            for key in [k for k in self._failed if k[0] == user[:128]]:
                del self._failed[key]


@dataclass(frozen=True)
class User:
    """A person or program that signs in."""

    id: str
    name: str
    platform_admin: bool
    disabled: bool
    roles: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (never the password hash)."""
        return {
            "id": self.id,
            "name": self.name,
            "platform_admin": self.platform_admin,
            "disabled": self.disabled,
            "roles": dict(self.roles),
        }


@dataclass(frozen=True)
class TokenInfo:
    """An API token's public facts."""

    id: str
    user: str
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (never the secret)."""
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "scopes": self.scopes,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class IdentityService:
    """Users, memberships and tokens in the metadata database."""

    def __init__(self, engine: Engine, audit: AuditLog) -> None:
        self._engine = engine
        self._audit = audit
        self._throttle = LoginThrottle()

    # -- users ------------------------------------------------------------------------------------------------
    def create_user(
        self, user_id: str, name: str | None = None, *, password: str | None = None, platform_admin: bool = False
    ) -> User:
        """Add a user (platform admins only)."""
        check_platform_admin("create users")
        if not isinstance(user_id, str) or not USER_RE.match(user_id):
            raise InvalidInput(
                f"user id {user_id!r} must be 1–64 lower-case letters, digits, '.', '_', '@' or '-'", where="user"
            )
        pw_hash = self._hash_password(password) if password is not None else None
        try:
            with self._engine.begin() as c:
                c.execute(
                    insert(users).values(
                        id=user_id,
                        name=name or user_id,
                        password_hash=pw_hash,
                        platform_admin=platform_admin,
                        disabled=False,
                        failed_logins=0,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            raise Conflict(f"user {user_id!r} already exists", where="user") from None
        self._audit.append(
            "user.create", target=user_id, after={"name": name or user_id, "platform_admin": platform_admin}
        )
        return self.get_user(user_id)

    @staticmethod
    def _hash_password(password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters", where="password")
        return str(_hasher.hash(password))

    def get_user(self, user_id: str) -> User:
        """A user with their roles."""
        with self._engine.connect() as c:
            row = c.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                raise NotFound(f"unknown user {user_id!r}", where="user")
            roles = {m.tenant: m.role for m in c.execute(select(memberships).where(memberships.c.user_id == user_id))}
        return User(row.id, row.name, bool(row.platform_admin), bool(row.disabled), roles)

    def list_users(self, tenant: str | None = None) -> list[User]:
        """Users of a tenant (tenant admins), or all users (platform admins)."""
        if tenant is None:
            check_platform_admin("list every user")
            with self._engine.connect() as c:
                ids = list(c.execute(select(users.c.id).order_by(users.c.id)).scalars())
        else:
            check(tenant, "admin")
            with self._engine.connect() as c:
                ids = list(
                    c.execute(
                        select(memberships.c.user_id)
                        .where(memberships.c.tenant == tenant)
                        .order_by(memberships.c.user_id)
                    ).scalars()
                )
        return [self.get_user(u) for u in ids]

    def set_role(self, user_id: str, tenant: str, role: str | None) -> User:
        """Give a user a role in a tenant (None removes it); tenant admins for their tenant, platform admins."""
        check(tenant, "admin")
        if role is not None and role not in ROLES[1:]:
            raise InvalidInput(f"role must be one of {', '.join(ROLES[1:])}", where="role")
        before = self.get_user(user_id).roles.get(tenant)
        with self._engine.begin() as c:
            c.execute(delete(memberships).where(memberships.c.user_id == user_id, memberships.c.tenant == tenant))
            if role is not None:
                c.execute(insert(memberships).values(user_id=user_id, tenant=tenant, role=role))
        self._audit.append("user.role", tenant=tenant, target=user_id, before={"role": before}, after={"role": role})
        return self.get_user(user_id)

    def set_password(self, user_id: str, password: str) -> None:
        """Set or reset a password and unlock the account (platform admins, or the user themself)."""
        me = current()
        if me.user != user_id:
            check_platform_admin("reset another user's password")
        self.get_user(user_id)
        with self._engine.begin() as c:
            c.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=self._hash_password(password), failed_logins=0, locked_until=None)
            )
        self._throttle.clear(user_id)
        self._audit.append("user.password", target=user_id)

    def login(self, user_id: str, password: str, *, source: str | None = None) -> User:
        """Check a password: every failure, whatever its cause, is the same Unauthorized after the same work; a
        source that failed too often for this user waits (see `LoginThrottle`), other sources do not."""
        host = source_host(source if source is not None else current().source)
        dummy = _dummy_hash()
        held = self._throttle.wait(user_id, host) > 0
        with self._engine.connect() as c:
            row = c.execute(select(users.c.password_hash, users.c.disabled).where(users.c.id == user_id)).first()
        usable = row is not None and not row.disabled and row.password_hash is not None
        matched = _verify(row.password_hash if usable and row is not None else dummy, password)  # always hashed
        if matched and usable and not held:
            self._throttle.succeeded(user_id, host)
            return self.get_user(user_id)
        if not held:
            failures, wait = self._throttle.failed(user_id, host)
            if wait:
                try:  # recorded for known and unknown names alike, so the cost tells nothing either
                    self._audit.append(
                        "login.held_back",
                        target=user_id[:128],
                        after={"source": host, "failures": failures, "wait_s": wait},
                    )
                except TaehwaError as exc:
                    log.error("sign-in back-off not recorded: %s", exc.message)
        raise Unauthorized(WRONG_LOGIN, where="login")

    # -- tokens -----------------------------------------------------------------------------------------------
    def create_token(
        self, user_id: str, name: str, *, scopes: list[str] | None = None, expires_in_days: float | None = None
    ) -> tuple[str, TokenInfo]:
        """Make an API token for a user; returns the token (shown this once) and its facts.

        Users make their own; platform admins make anyone's.
        """
        me = current()
        if me.user != user_id:
            check_platform_admin("make tokens for other users")
        user = self.get_user(user_id)
        wanted = list(scopes or ACTIONS)
        bad = [s for s in wanted if s not in ACTIONS]
        if bad:
            raise InvalidInput(f"unknown scope {bad[0]!r}; use {', '.join(ACTIONS)}", where="scopes")
        if me.user == user_id and not set(wanted) <= set(me.scopes):
            raise InvalidInput("a token cannot have scopes the token that makes it lacks", where="scopes")
        if expires_in_days is not None and not 0 < expires_in_days <= 3650:
            raise InvalidInput("expiry must be between a moment and 3650 days", where="expires_in_days")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires = now + timedelta(days=expires_in_days) if expires_in_days is not None else None
        with self._engine.begin() as c:
            c.execute(
                insert(api_tokens).values(
                    id=token_id,
                    user_id=user.id,
                    name=name,
                    secret_hash=_digest(secret),
                    scopes=wanted,
                    created_at=now,
                    expires_at=expires,
                )
            )
        self._audit.append(
            "token.create",
            target=f"{user.id}/{token_id}",
            after={"name": name, "scopes": wanted, "expires_at": expires.isoformat() if expires else None},
        )
        return f"thw_{token_id}_{secret}", TokenInfo(token_id, user.id, name, wanted, now, expires, None)

    def list_tokens(self, user_id: str) -> list[TokenInfo]:
        """A user's tokens (without secrets)."""
        if current().user != user_id:
            check_platform_admin("list other users' tokens")
        with self._engine.connect() as c:
            rows = c.execute(
                select(api_tokens).where(api_tokens.c.user_id == user_id).order_by(api_tokens.c.created_at)
            ).all()
        return [
            TokenInfo(
                r.id,
                r.user_id,
                r.name,
                list(r.scopes),
                _utc(r.created_at) or datetime.now(UTC),
                _utc(r.expires_at),
                _utc(r.revoked_at),
            )
            for r in rows
        ]

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token at once (its owner or a platform admin)."""
        with self._engine.connect() as c:
            owner = c.execute(select(api_tokens.c.user_id).where(api_tokens.c.id == token_id)).scalar()
        if owner is None:
            raise NotFound(f"unknown token {token_id!r}", where="token")
        if current().user != owner:
            check_platform_admin("revoke other users' tokens")
        with self._engine.begin() as c:
            c.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        self._audit.append("token.revoke", target=f"{owner}/{token_id}")

    def authenticate(self, token: str, *, source: str | None = None) -> Principal:
        """The caller a token stands for; a malformed, unknown, expired or revoked token is Unauthorized."""
        parts = token.split("_")
        if len(parts) < 3 or parts[0] != "thw":
            raise Unauthorized("invalid token", where="Authorization")
        token_id, secret = parts[1], "_".join(parts[2:])
        with self._engine.connect() as c:
            row = c.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None or not secrets.compare_digest(row.secret_hash, _digest(secret)):
            raise Unauthorized("invalid token", where="Authorization")
        if row.revoked_at is not None:
            raise Unauthorized("this token has been revoked", where="Authorization")
        expires = _utc(row.expires_at)
        if expires is not None and expires <= datetime.now(UTC):
            raise Unauthorized(f"this token expired at {expires.isoformat(timespec='seconds')}", where="Authorization")
        user = self.get_user(row.user_id)
        if user.disabled:
            raise Unauthorized(f"user {user.id!r} is disabled", where="Authorization")
        return Principal(user.id, user.platform_admin, user.roles, frozenset(row.scopes), token_id, source)
