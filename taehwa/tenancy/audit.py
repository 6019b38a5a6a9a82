"""The audit log: who did what, when, from where, with the state before and after, hash-chained.

Each entry's hash covers its own fields and the previous entry's hash, so changing, removing or reordering any
entry breaks the chain from there on; `verify` walks it and says where.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, insert, select, text, update

from taehwa.db import audit_log
from taehwa.historian.timeutil import from_us
from taehwa.tenancy.access import SYSTEM, check, check_platform_admin, current

GENESIS = "0" * 64


def _entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """What `verify` found."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None


AUDIT_LOCK_KEY = 0x7461_6568  # PostgreSQL advisory lock id of audit appends ("taeh")


def _take_append_lock(c: Connection) -> None:
    """Serialize appends across processes (several API workers, writers on several machines, the CLI beside the
    server): each reads the chain's head and appends after it, so two at once would claim the same number.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: a write that changes nothing takes the database's
    write lock before the head is read (waiting up to the busy timeout), where a read first would lose the race."""
    if c.dialect.name == "postgresql":
        c.execute(text(f"SELECT pg_advisory_xact_lock({AUDIT_LOCK_KEY})"))
    else:
        c.execute(update(audit_log).where(audit_log.c.seq < 0).values(seq=audit_log.c.seq))


class AuditLog:
    """Appends and reads the chained log in the metadata database."""

    def __init__(self, engine: Engine, head_path: Path | None = None) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._head = head_path  # the newest (seq, hash), kept apart so that cutting off the tail shows too

    def append(self, action: str, *, tenant: str | None = None, target: str | None = None,
               before: Any = None, after: Any = None) -> int:
        """Record an action by the current caller; returns its sequence number.

        The platform's own machinery (the `SYSTEM` caller: demo replay, maintenance) is not recorded; every user,
        token and CLI operator is.
        """
        caller = current()
        if caller is SYSTEM:
            return 0
        actor = caller.user + (f" (token {caller.token_id})" if caller.token_id else "")
        with self._lock, self._engine.begin() as c:
            _take_append_lock(c)
            last = c.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
                             ).first()
            seq = (last.seq + 1) if last else 1
            prev = last.hash if last else GENESIS
            fields = {"seq": seq, "at_us": time.time_ns() // 1000, "actor": actor, "source": caller.source,
                      "tenant": tenant, "action": action, "target": target, "before": before, "after": after}
            digest = _entry_hash(prev, fields)
            c.execute(insert(audit_log).values(**fields, prev_hash=prev, hash=digest))
            if self._head is not None:
                tmp = self._head.with_name(self._head.name + ".tmp")
                tmp.write_text(orjson.dumps({"seq": seq, "hash": digest}).decode())
                os.replace(tmp, self._head)
        return seq

    def entries(self, tenant: str | None = None, *, limit: int = 100, before_seq: int | None = None
                ) -> list[dict[str, Any]]:
        """Newest entries first: a tenant's (its admins may read them), or all (platform admins)."""
        if tenant is None:
            check_platform_admin("read the whole audit log")
        else:
            check(tenant, "admin")
        q = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if tenant is not None:
            q = q.where(audit_log.c.tenant == tenant)
        if before_seq is not None:
            q = q.where(audit_log.c.seq < before_seq)
        with self._engine.connect() as c:
            rows = c.execute(q).all()
        return [{"seq": r.seq, "at": from_us(r.at_us).isoformat(), "actor": r.actor, "source": r.source,
                 "tenant": r.tenant, "action": r.action, "target": r.target, "before": r.before, "after": r.after}
                for r in rows]

    def verify(self) -> Verdict:
        """Walk the chain; the first entry that does not follow from the one before is reported."""
        prev = GENESIS
        expected_seq = 1
        n = 0
        with self._engine.connect() as c:
            total = int(c.execute(select(func.count()).select_from(audit_log)).scalar() or 0)
            for r in c.execute(select(audit_log).order_by(audit_log.c.seq)):
                n += 1
                if r.seq != expected_seq:
                    return Verdict(False, total, r.seq, f"entry {expected_seq} is missing (next is {r.seq})")
                if r.prev_hash != prev:
                    return Verdict(False, total, r.seq, f"entry {r.seq} does not follow entry {r.seq - 1}")
                fields = {"seq": r.seq, "at_us": r.at_us, "actor": r.actor, "source": r.source, "tenant": r.tenant,
                          "action": r.action, "target": r.target, "before": r.before, "after": r.after}
                if _entry_hash(prev, fields) != r.hash:
                    return Verdict(False, total, r.seq, f"entry {r.seq} was changed after it was written")
                prev = r.hash
                expected_seq += 1
        if self._head is not None and self._head.exists():
            head = orjson.loads(self._head.read_bytes())
            if head["seq"] != n or head["hash"] != prev:
                return Verdict(False, total, n + 1 if head["seq"] > n else head["seq"],
                               f"the log ends at entry {n} but entry {head['seq']} was written")
        return Verdict(True, n)
