"""`taehwa doctor`: the configuration's security posture as a checklist, for the operator to act on before the
platform serves more than one laptop."""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from taehwa.db import api_tokens, users
from taehwa.platform import Platform, dev_token_path

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
        out.append(Check("warn", "bootstrap token", f"the development token in {dev_token_path(s)} is in use; set "
                                                    "TAEHWA_API_TOKEN to a secret of your own, or keep it for "
                                                    "first setup only"))
    elif len(s.api_token.get_secret_value()) < 24:
        out.append(Check("fail", "bootstrap token", "TAEHWA_API_TOKEN is shorter than 24 characters"))
    else:
        out.append(Check("ok", "bootstrap token", "set from TAEHWA_API_TOKEN"))
    tls = bool(s.tls_cert and s.tls_key)
    if _loopback(s.host):
        out.append(Check("ok", "bind address", f"{s.host}: loopback only"))
    else:
        out.append(Check("ok" if tls else "fail", "bind address",
                         f"{s.host} is reachable from the network" + ("" if tls else " and TLS is off: tokens and "
                                                                        "data cross the network in clear text")))
    out.append(Check("ok" if tls else ("warn" if not _loopback(s.host) else "ok"), "TLS",
                     f"HTTPS with {s.tls_cert}" if tls else "off (plain HTTP); set TAEHWA_TLS_CERT and "
                                                            "TAEHWA_TLS_KEY or put a TLS proxy in front"))
    mode = stat.S_IMODE(os.stat(s.data_dir).st_mode) if s.data_dir.exists() else 0
    out.append(Check("warn" if mode & 0o007 else "ok", "data directory",
                     f"{s.data_dir} is readable by every local user (mode {mode:o}); chmod o-rwx"
                     if mode & 0o007 else f"{s.data_dir} (mode {mode:o})"))
    token_file = dev_token_path(s)
    if token_file.exists() and stat.S_IMODE(token_file.stat().st_mode) & 0o077:
        out.append(Check("fail", "token file", f"{token_file} is readable by others; chmod 600"))
    env = [k for k in TELEMETRY_ENV if os.environ.get(k)]
    out.append(Check("warn" if env else "ok", "outbound connections",
                     f"configured by {', '.join(env)}: data may leave this machine" if env
                     else "none configured; Taehwa itself opens no outbound connection"))
    with platform.historian.engine.connect() as c:
        admins = int(c.execute(select(func.count()).select_from(users).where(users.c.platform_admin)).scalar() or 0)
        forever = int(c.execute(select(func.count()).select_from(api_tokens).where(
            api_tokens.c.expires_at.is_(None), api_tokens.c.revoked_at.is_(None))).scalar() or 0)
    out.append(Check("ok" if admins else "warn", "platform admins",
                     f"{admins} user(s)" if admins else "none yet: only the bootstrap token can administer; "
                                                        "create a named admin (taehwa admin user … --platform-admin)"))
    out.append(Check("warn" if forever else "ok", "tokens without expiry",
                     f"{forever} active token(s) never expire" if forever else "every active token expires"))
    verdict = platform.audit.verify()
    out.append(Check("ok" if verdict.ok else "fail", "audit log",
                     f"intact, {verdict.entries} entries" if verdict.ok
                     else f"broken at entry {verdict.first_bad}: {verdict.reason}"))
    out.append(Check("ok", "checked at", datetime.now(UTC).isoformat(timespec="seconds")))
    return out
