"""`taehwa doctor`: the configuration's security posture as a checklist, for the operator to act on before the
platform serves more than one laptop."""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import orjson
from sqlalchemy import func, make_url, select

from taehwa.core.errors import TaehwaError
from taehwa.core.paths import dev_token_path
from taehwa.db import api_tokens, connectors, lab_runs, users, webhooks
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as

TELEMETRY_ENV = ("MLFLOW_TRACKING_URI", "WANDB_API_KEY", "SENTRY_DSN", "HF_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@dataclass(frozen=True)
class Check:
    """One line of the checklist: ok, warn or fail, and what to do."""

    status: str
    topic: str
    detail: str


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def diagnose(platform: Platform) -> list[Check]:
    """Every check, in the order an operator should read them."""
    s = platform.settings
    out: list[Check] = []
    if s.api_token is None:
        out.append(
            Check(
                "warn",
                "bootstrap token",
                f"the development token in {dev_token_path(s)} is in use; set "
                "TAEHWA_API_TOKEN to a secret of your own, or keep it for "
                "first setup only",
            )
        )
    elif len(s.api_token.get_secret_value()) < 24:
        out.append(Check("fail", "bootstrap token", "TAEHWA_API_TOKEN is shorter than 24 characters"))
    else:
        out.append(Check("ok", "bootstrap token", "set from TAEHWA_API_TOKEN"))
    tls = bool(s.tls_cert and s.tls_key)
    if _loopback(s.host):
        out.append(Check("ok", "bind address", f"{s.host}: loopback only"))
    else:
        out.append(
            Check(
                "ok" if tls else "fail",
                "bind address",
                f"{s.host} is reachable from the network"
                + ("" if tls else " and TLS is off: tokens and data cross the network in clear text"),
            )
        )
    out.append(
        Check(
            "ok" if tls else ("warn" if not _loopback(s.host) else "ok"),
            "TLS",
            f"HTTPS with {s.tls_cert}"
            if tls
            else "off (plain HTTP); set TAEHWA_TLS_CERT and TAEHWA_TLS_KEY or put a TLS proxy in front",
        )
    )
    mode = stat.S_IMODE(os.stat(s.data_dir).st_mode) if s.data_dir.exists() else 0
    out.append(
        Check(
            "warn" if mode & 0o007 else "ok",
            "data directory",
            f"{s.data_dir} is readable by every local user (mode {mode:o}); chmod o-rwx"
            if mode & 0o007
            else f"{s.data_dir} (mode {mode:o})",
        )
    )
    token_file = dev_token_path(s)
    if token_file.exists() and stat.S_IMODE(token_file.stat().st_mode) & 0o077:
        out.append(Check("fail", "token file", f"{token_file} is readable by others; chmod 600"))
    env = [k for k in TELEMETRY_ENV if os.environ.get(k)]
    out.append(
        Check(
            "warn" if env else "ok",
            "outbound connections",
            f"configured by {', '.join(env)}: data may leave this machine"
            if env
            else "none configured; Taehwa itself opens no outbound connection",
        )
    )
    with platform.historian.engine.connect() as c:
        admins = int(c.execute(select(func.count()).select_from(users).where(users.c.platform_admin)).scalar() or 0)
        forever = int(
            c.execute(
                select(func.count())
                .select_from(api_tokens)
                .where(api_tokens.c.expires_at.is_(None), api_tokens.c.revoked_at.is_(None))
            ).scalar()
            or 0
        )
    out.append(
        Check(
            "ok" if admins else "warn",
            "platform admins",
            f"{admins} user(s)"
            if admins
            else "none yet: only the bootstrap token can administer; "
            "create a named admin (taehwa admin user … --platform-admin)",
        )
    )
    out.append(
        Check(
            "warn" if forever else "ok",
            "tokens without expiry",
            f"{forever} active token(s) never expire" if forever else "every active token expires",
        )
    )
    verdict = platform.audit.verify()
    out.append(Check("ok" if verdict.ok else "fail", "audit log", verdict.describe()))
    out.extend(_audit_key_checks(platform))
    out.extend(_database_file_checks(platform))
    out.extend(_webhook_checks(platform))
    out.extend(_path_checks(platform))
    out.append(Check("ok", "checked at", datetime.now(UTC).isoformat(timespec="seconds")))
    return out


def _mode(path: Path) -> int | None:
    """Permission bits of a file, None when it does not exist."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def _audit_key_checks(platform: Platform) -> list[Check]:
    """Where the audit key lives and who may read it: a key others can read, or one inside the data directory that
    a copy of that directory carries along, lets the log be re-signed."""
    s = platform.settings
    key = s.audit_key_path
    mode = _mode(key)
    if mode is None:
        return [Check("fail", "audit key", f"{key} is missing")]
    if mode & 0o077:
        return [Check("fail", "audit key", f"{key} is readable by others (mode {mode:o}); chmod 600")]
    inside = Path(os.path.realpath(key)).is_relative_to(os.path.realpath(s.data_dir))
    if inside:
        return [
            Check(
                "warn",
                "audit key",
                f"{key} lies inside the data directory: whoever can change the data "
                "directory can also re-sign the audit log; move it elsewhere and set "
                "TAEHWA_AUDIT_KEY_FILE",
            )
        ]
    return [Check("ok", "audit key", f"{key} (mode {mode:o}), outside the data directory")]


def _database_file_checks(platform: Platform) -> list[Check]:
    """SQLite files, the audit head and checkpoints, readable by other local users: password and token hashes,
    every tenant's metadata."""
    s = platform.settings
    files: list[Path] = []
    url = make_url(s.metadata_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database)
        files += [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    files += [s.data_dir / "audit-head.json", s.data_dir / "audit-checkpoints.jsonl"]
    loose = [(f, m) for f in files if (m := _mode(f)) is not None and m & 0o077]
    if not loose:
        return [Check("ok", "database files", "readable by their owner only" if files else "none on this machine")]
    shown = ", ".join(f"{f.name} (mode {m:o})" for f, m in loose)
    shut = (_mode(s.data_dir) or 0) & 0o011 == 0  # nobody else may enter the data directory
    if shut and all(Path(os.path.realpath(f)).is_relative_to(os.path.realpath(s.data_dir)) for f, _ in loose):
        return [Check("ok", "database files", f"{shown}, but the data directory lets no other user in")]
    return [
        Check(
            "warn",
            "database files",
            f"readable by other local users: {shown}; chmod 600 them (they hold "
            "password and token hashes and every tenant's metadata)",
        )
    ]


def _host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether a host is one of the allowed names (`*.example.com` also allows its subdomains)."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host == entry[2:] or host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def _inside_address(host: str) -> bool:
    """Whether a host names this machine or a private, link-local or reserved network (where a webhook could reach
    services that are not meant to be called from outside, cloud metadata among them)."""
    if host.lower().rstrip(".") in ("localhost", "") or host.lower().endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified


def _webhook_checks(platform: Platform) -> list[Check]:
    """Webhooks that post outside the allowed hosts (TAEHWA_WEBHOOK_HOSTS), or, with none set, into this machine or
    its private networks."""
    s = platform.settings
    allowed = [h.strip().lower() for h in (s.webhook_hosts or "").split(",") if h.strip()]
    with platform.historian.engine.connect() as c:
        hooks = c.execute(
            select(webhooks.c.tenant, webhooks.c.name, webhooks.c.url).order_by(webhooks.c.tenant, webhooks.c.name)
        ).all()
    bad: list[str] = []
    clear: list[str] = []
    for h in hooks:
        u = urlparse(h.url)
        host = u.hostname or ""
        refused = not _host_allowed(host, allowed) if allowed else _inside_address(host)
        if refused:
            bad.append(f"{h.tenant}/{h.name} → {host or '(no host)'}")
        elif u.scheme != "https":
            clear.append(f"{h.tenant}/{h.name}")
    out: list[Check] = []
    rule = "outside TAEHWA_WEBHOOK_HOSTS" if allowed else "into this machine or a private network"
    if bad:
        out.append(
            Check(
                "fail", "webhooks", f"{len(bad)} post {rule}: {', '.join(bad[:10])}" + (" …" if len(bad) > 10 else "")
            )
        )
    if clear:
        out.append(Check("warn", "webhooks", f"{len(clear)} post over plain HTTP: {', '.join(clear[:10])}"))
    if not bad and not clear:
        out.append(
            Check(
                "ok",
                "webhooks",
                f"{len(hooks)} configured, every one to an allowed host over HTTPS" if hooks else "none configured",
            )
        )
    if hooks and not allowed:
        out.append(
            Check(
                "warn",
                "webhook hosts",
                "TAEHWA_WEBHOOK_HOSTS is unset: a tenant admin may point a "
                "webhook at any host; list the receivers you allow",
            )
        )
    return out


def _path_checks(platform: Platform) -> list[Check]:
    """Files and folders named in connectors and stored lab specs that lie outside the folders their tenant may use
    (checked with the same rule the platform applies when they are used)."""
    try:
        from taehwa.tenancy.files import FileRoots
    except ImportError:  # path confinement not in this build
        return [Check("warn", "named paths", "not checked: this build has no path confinement")]
    roots = FileRoots(platform.settings)
    named: list[tuple[str, str, str]] = []  # tenant, what, path
    with platform.historian.engine.connect() as c:
        for r in c.execute(
            select(connectors.c.tenant, connectors.c.name, connectors.c.spec).where(connectors.c.protocol == "files")
        ):
            try:
                folder = orjson.loads(r.spec).get("folder")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(folder, str):
                named.append((r.tenant, f"connector {r.name}", folder))
        for r in c.execute(select(lab_runs.c.tenant, lab_runs.c.id, lab_runs.c.spec)):
            data = r.spec.get("data") if isinstance(r.spec, dict) else None
            if isinstance(data, dict) and data.get("source") == "file" and isinstance(data.get("file"), str):
                named.append((r.tenant, f"lab run {r.id}", data["file"]))
    outside: list[str] = []
    with acting_as(Principal("doctor", scopes=frozenset())):  # judged as a tenant's caller, not the local operator
        for tenant, what, path in named:
            try:
                roots.resolve(tenant, path, where=what, folder=what.startswith("connector"))
            except TaehwaError:
                outside.append(f"{tenant}/{what}")
    if outside:
        return [
            Check(
                "fail",
                "named paths",
                f"{len(outside)} outside their tenant's folders: "
                f"{', '.join(outside[:10])}" + (" …" if len(outside) > 10 else ""),
            )
        ]
    return [
        Check(
            "ok",
            "named paths",
            f"{len(named)} file(s) and folder(s) named in connectors and lab runs, all inside their tenant's folders",
        )
    ]
