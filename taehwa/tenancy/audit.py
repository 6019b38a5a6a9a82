"""The audit log: who did what, when, from where, with the state before and after, in a keyed chain.

Each entry's hash is an HMAC-SHA256, under a key kept outside the metadata database, of its own fields and the
previous entry's hash: changing, removing or reordering any entry breaks the chain from there on, and whoever can
write the database but lacks the key cannot recompute it. Beside the database, a signed head file
(`audit-head.json`) says how long the log was when this machine last appended, and every `checkpoint_every` entries
a signed checkpoint line (`audit-checkpoints.jsonl`) records an entry's number and hash; both are witnesses that the
log was at least that long, so cutting its tail or emptying it shows. A missing head file is a failure.

A log written before the key existed (plain SHA-256 chain) is kept: the head records where the keyed part starts,
and since the first keyed entry's HMAC covers the hash of the last unkeyed one, the older part can no longer be
changed either; `verify` says which part is keyed.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, func, insert, select, text, update

from taehwa.core.errors import Conflict, Unavailable
from taehwa.core.timeutil import from_us
from taehwa.db import audit_log
from taehwa.tenancy.access import SYSTEM, check, check_platform_admin, current

if TYPE_CHECKING:
    from taehwa.core.settings import Settings

GENESIS = "0" * 64
HEAD_VERSION = 2
DEFER_WINDOW_S = 0.2  # deferred entries (SQL queries) are written within this, so a crash loses at most it
DEFER_MAX = 256  # or at once when this many wait
log = logging.getLogger(__name__)


def _canonical(fields: dict[str, Any]) -> bytes:
    """The bytes a hash or MAC covers: sorted-key JSON, so the same fields always give the same bytes."""
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The unkeyed SHA-256 link of entries written before the audit key existed."""
    return hashlib.sha256(prev_hash.encode() + _canonical(fields)).hexdigest()


def _entry_mac(key: bytes, prev_hash: str, fields: dict[str, Any]) -> str:
    """The keyed link: HMAC-SHA256 of the previous hash and this entry's fields."""
    return hmac.new(key, b"entry\n" + prev_hash.encode() + _canonical(fields), hashlib.sha256).hexdigest()


def _sign(key: bytes, kind: str, body: dict[str, Any]) -> str:
    """HMAC of a head or checkpoint record (without its own `mac`), domain-separated by kind."""
    return hmac.new(key, kind.encode() + b"\n" + _canonical(body), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A public fingerprint of the key, kept in the head so that a wrong key is told from a tampered log."""
    return hmac.new(key, b"taehwa audit key id", hashlib.sha256).hexdigest()[:16]


def _pending(
    caller: Any, action: str, tenant: str | None, target: str | None, before: Any, after: Any
) -> dict[str, Any]:
    """An entry's fields but its number, as of now: who, from where, when, what."""
    return {
        "at_us": time.time_ns() // 1000,
        "actor": caller.user + (f" (token {caller.token_id})" if caller.token_id else ""),
        "source": caller.source,
        "tenant": tenant,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }


def _row_fields(r: Any) -> dict[str, Any]:
    """The fields of a stored entry that its hash covers."""
    return {
        "seq": r.seq,
        "at_us": r.at_us,
        "actor": r.actor,
        "source": r.source,
        "tenant": r.tenant,
        "action": r.action,
        "target": r.target,
        "before": r.before,
        "after": r.after,
    }


@dataclass(frozen=True)
class Verdict:
    """What `verify` found."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None
    keyed_from: int | None = None  # the first entry under the key (None: no key in use)
    checkpoints: int = 0  # signed checkpoints that matched the log

    def describe(self) -> str:
        """One line for the operator: how many entries, which are keyed, or where and why the chain breaks."""
        if not self.ok:
            where = f" at entry {self.first_bad}" if self.first_bad is not None else ""
            return f"broken{where}: {self.reason}"
        if self.keyed_from is None:
            keyed = "not keyed (no audit key configured)"
        elif self.keyed_from <= 1 or not self.entries:
            keyed = "all keyed" if self.entries else "keyed"
        elif self.entries < self.keyed_from:
            keyed = (
                f"all written before the audit key (chained, not keyed; sealed by the signed head, and by the "
                f"first keyed entry from {self.keyed_from} on)"
            )
        else:
            keyed = (
                f"entries 1–{self.keyed_from - 1} were written before the audit key (chained, sealed by the "
                f"keyed entries after them), {self.keyed_from}–{self.entries} keyed"
            )
        return f"intact, {self.entries} entries, {keyed}, {self.checkpoints} checkpoint(s) matched"


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


def _write_private(path: Path, data: bytes) -> None:
    """Write a file atomically, readable by its owner only (a crash leaves the old one or the new one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_key(path: Path) -> bytes:
    """The key in a key file (64 hex digits); a malformed file is an error that does not repeat its content."""
    raw = path.read_bytes().strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise Unavailable("the audit key file does not hold a hex key", where=str(path)) from None
    if len(key) < 32:
        raise Unavailable("the audit key file holds a key shorter than 32 bytes", where=str(path))
    return key


class AuditLog:
    """Appends and reads the chained log in the metadata database.

    With `key_file` the chain is keyed (the platform always gives one); without it (tools and old tests) entries
    are chained with plain SHA-256, as before the key existed."""

    def __init__(
        self,
        engine: Engine,
        head_path: Path | None = None,
        *,
        key_file: Path | None = None,
        checkpoint_every: int = 1000,
    ) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._head = head_path  # the newest (seq, hash) this machine wrote, kept apart: a cut tail shows
        self._checkpoints = head_path.with_name("audit-checkpoints.jsonl") if head_path is not None else None
        self._key_file = key_file
        self._every = max(1, checkpoint_every)
        self._key: bytes | None = None
        self._key_problem: str | None = None
        self._deferred: list[dict[str, Any]] = []  # entries `append_deferred` took, not yet written
        self._defer_wake = threading.Condition()
        self._defer_thread: threading.Thread | None = None
        self._defer_error: str | None = None
        if key_file is not None:
            self._open_key(key_file)

    # -- the key and the head ---------------------------------------------------------------------------------
    def _open_key(self, key_file: Path) -> None:
        """Load the key, or make it at first start (and seal an older unkeyed log); a lost key is never replaced
        while a signed head says the log was keyed."""
        try:
            if key_file.exists():
                self._key = _read_key(key_file)
                return
            head = self._read_head_raw()
            if head is not None and "mac" in head:
                self._key_problem = "the audit key file is missing; restore it (the log was signed with it)"
                return
            with self._engine.begin() as c:  # one process makes it, the others wait and read it
                _take_append_lock(c)
                if key_file.exists():
                    self._key = _read_key(key_file)
                    return
                last = c.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).first()
                if last is not None and _entry_hash(str(last.prev_hash), _row_fields(last)) != last.hash:
                    self._key_problem = (
                        "the audit log is signed with a key this node does not have (or was "
                        "changed): give it the same audit key file as the node that wrote it"
                    )
                    return
                key = secrets.token_bytes(32)
                seq, digest = (int(last.seq), str(last.hash)) if last else (0, GENESIS)
                if head is not None and isinstance(head.get("seq"), int) and head["seq"] > seq:
                    seq, digest = head["seq"], str(head.get("hash"))  # the old head says more: keep the evidence
                key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                tmp = key_file.with_name(f".{key_file.name}.new")
                _write_private(tmp, key.hex().encode() + b"\n")
                self._key = key
                if self._head is not None:
                    self._write_head({"seq": seq, "hash": digest, "keyed_from": seq + 1, "checkpoint": 0})
                os.replace(tmp, key_file)  # the key last: a crash before leaves a fresh start next time
        except Unavailable as exc:
            self._key, self._key_problem = None, exc.message
        except OSError as exc:
            self._key, self._key_problem = None, f"the audit key file cannot be read or made ({exc.strerror})"

    def _read_head_raw(self) -> dict[str, Any] | None:
        """The head file's record, None when there is none; an unreadable one is an empty record."""
        if self._head is None or not self._head.exists():
            return None
        try:
            value = orjson.loads(self._head.read_bytes())
        except (orjson.JSONDecodeError, OSError):
            return {}
        return value if isinstance(value, dict) else {}

    def _write_head(self, body: dict[str, Any]) -> None:
        """Sign and store the head (no-op without a head path); it never moves back to an older entry."""
        if self._head is None or self._key is None:
            return
        record = {"v": HEAD_VERSION, "key_id": key_id(self._key), **body}
        record["mac"] = _sign(self._key, "head", record)
        _write_private(self._head, orjson.dumps(record))

    def _checked_head(self) -> tuple[dict[str, Any] | None, str | None]:
        """The head if present and signed with this key, else the reason it cannot be trusted."""
        head = self._read_head_raw()
        if head is None:
            return None, "the head file is missing: the log's length cannot be confirmed"
        if self._key is None:
            return None, self._key_problem or "no audit key"
        if "mac" not in head or head.get("v") != HEAD_VERSION:
            return None, "the head file is not signed (replaced by an unkeyed one?)"
        if head.get("key_id") != key_id(self._key):
            return None, "the audit key is not the key this log was signed with (or the head file was replaced)"
        body = {k: v for k, v in head.items() if k != "mac"}
        if not hmac.compare_digest(str(head["mac"]), _sign(self._key, "head", body)):
            return None, "the head file was changed (its signature does not match)"
        for name in ("seq", "keyed_from", "checkpoint"):
            if not isinstance(head.get(name), int) or head[name] < 0:
                return None, "the head file was changed (a field is missing)"
        return head, None

    def _add_checkpoint(self, seq: int, digest: str) -> None:
        """Append a signed checkpoint line: a witness, apart from the head, that entry `seq` had this hash."""
        if self._checkpoints is None or self._key is None:
            return
        record: dict[str, Any] = {
            "seq": seq,
            "hash": digest,
            "at_us": time.time_ns() // 1000,
            "key_id": key_id(self._key),
        }
        record["mac"] = _sign(self._key, "checkpoint", record)
        fd = os.open(self._checkpoints, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, orjson.dumps(record) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- appending and reading --------------------------------------------------------------------------------
    def append(
        self,
        action: str,
        *,
        tenant: str | None = None,
        target: str | None = None,
        before: Any = None,
        after: Any = None,
    ) -> int:
        """Record an action by the current caller; returns its sequence number (entries deferred before it are
        written first, in the same transaction, so the log stays in the order things happened).

        The platform's own machinery (the `SYSTEM` caller: demo replay, maintenance) is not recorded; every user,
        token and CLI operator is. With a key configured but missing, the action is refused: it could not be
        recorded so that it can be checked.
        """
        caller = current()
        if caller is SYSTEM:
            return 0
        self._require_key()
        entry = _pending(caller, action, tenant, target, before, after)
        with self._lock:
            pending = self._take_deferred()
            try:
                written = self._write([*pending, entry])
            except BaseException:
                self._put_back(pending)  # kept for the next try: a failed append loses none of them
                raise
        return written[-1][0]

    def append_deferred(
        self,
        action: str,
        *,
        tenant: str | None = None,
        target: str | None = None,
        after: Any = None,
    ) -> None:
        """Record a read (a SQL query) without waiting for the database: the entry (its caller and time taken
        now) is written with others within `DEFER_WINDOW_S`, or at once when `DEFER_MAX` wait. A crash loses at
        most that window's entries. Refused, like `append`, while the audit key is missing, and while the
        deferred entries cannot be written (the error of the last try is raised): nothing goes unaudited."""
        caller = current()
        if caller is SYSTEM:
            return
        self._require_key()
        entry = _pending(caller, action, tenant, target, None, after)
        with self._defer_wake:
            self._refuse_while_failing()
            self._deferred.append(entry)
            full = len(self._deferred) >= DEFER_MAX
            if self._defer_thread is None:
                self._defer_thread = threading.Thread(target=self._defer_loop, name="audit-deferred", daemon=True)
                self._defer_thread.start()
                atexit.register(self._flush_quietly)
            self._defer_wake.notify()
        if full:
            self.flush_deferred()

    def check_deferred(self) -> None:
        """Refuse (Unavailable) while deferred entries cannot be written: a query is checked before it runs."""
        self._require_key()
        with self._defer_wake:
            self._refuse_while_failing()

    def _refuse_while_failing(self) -> None:
        if self._defer_error is not None:
            raise Unavailable(
                f"the audit log cannot record queries now ({self._defer_error}); queries are refused until it can",
                where="audit log",
            )

    def flush_deferred(self) -> None:
        """Write the deferred entries now (readers of the log, and shutting down, call this first)."""
        with self._lock:
            pending = self._take_deferred()
            if not pending:
                return
            try:
                self._write(pending)
            except BaseException as exc:
                self._put_back(pending, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
                raise
            with self._defer_wake:
                self._defer_error = None

    def _take_deferred(self) -> list[dict[str, Any]]:
        with self._defer_wake:
            pending, self._deferred = self._deferred, []
        return pending

    def _put_back(self, pending: list[dict[str, Any]], error: str | None = None) -> None:
        with self._defer_wake:
            self._deferred[:0] = pending
            if error is not None:
                self._defer_error = error

    def _defer_loop(self) -> None:
        """The writer of deferred entries: waits for the first, lets the window fill, writes them at once."""
        while True:
            with self._defer_wake:
                while not self._deferred:
                    self._defer_wake.wait()
            time.sleep(DEFER_WINDOW_S)
            try:
                self.flush_deferred()
            except Exception:
                log.exception("the audit log could not write its deferred entries; queries are refused meanwhile")
                time.sleep(DEFER_WINDOW_S)

    def _flush_quietly(self) -> None:
        try:
            self.flush_deferred()
        except Exception:
            log.exception("the audit log's deferred entries were not written at exit")

    def _require_key(self) -> None:
        if self._key_file is not None and self._key is None:
            raise Unavailable(
                f"{self._key_problem or 'no audit key'}; actions that are audited are refused until then",
                where="audit log",
            )

    def _write(self, entries: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Append entries (their fields but seq) in one transaction, chained; the caller holds `_lock`. Returns
        each one's (seq, hash)."""
        written: list[tuple[int, str]] = []
        with self._engine.begin() as c:
            _take_append_lock(c)
            last = c.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)).first()
            if last is not None and self._key is not None and not self._links(last):
                log.error(
                    "audit entry %d is not signed with this node's audit key (another node with another "
                    "key wrote it, or it was changed); run taehwa audit verify",
                    last.seq,
                )
            seq = (last.seq + 1) if last else 1
            prev = last.hash if last else GENESIS
            rows = []
            for entry in entries:
                fields = {"seq": seq, **entry}
                digest = _entry_mac(self._key, prev, fields) if self._key is not None else _entry_hash(prev, fields)
                rows.append({**fields, "prev_hash": prev, "hash": digest})
                written.append((seq, digest))
                prev, seq = digest, seq + 1
            c.execute(insert(audit_log), rows)
        # written after the commit: a head or checkpoint is a lower bound of the log's length, never ahead of it
        self._after_append(written)
        return written

    def _links(self, row: Any) -> bool:
        """Whether a stored entry follows from its previous hash under this key (or, before the key, unkeyed)."""
        assert self._key is not None
        fields = _row_fields(row)
        return (
            hmac.compare_digest(_entry_mac(self._key, str(row.prev_hash), fields), str(row.hash))
            or _entry_hash(str(row.prev_hash), fields) == row.hash
        )

    def _after_append(self, written: list[tuple[int, str]]) -> None:
        """Move the head forward and add the checkpoints that are due; the entries are committed already, so a
        head that cannot be written (a full disk) is logged, and the head stays a lower bound."""
        try:
            self._move_head(written)
        except OSError as exc:
            log.error("audit head not moved to entry %d: %s", written[-1][0], exc.strerror)

    def _move_head(self, written: list[tuple[int, str]]) -> None:
        """The work of `_after_append`."""
        if self._head is None or not written:
            return
        seq, digest = written[-1]
        if self._key is None:  # unkeyed (no key configured): the old plain head
            tmp = self._head.with_name(self._head.name + ".tmp")
            tmp.write_text(orjson.dumps({"seq": seq, "hash": digest}).decode())
            os.replace(tmp, self._head)
            return
        trusted, problem = self._checked_head()
        if trusted is None:  # missing or forged: leave the evidence for `verify`, do not paper over it
            log.error("audit head not moved to entry %d: %s", seq, problem)
            return
        if trusted["seq"] >= seq:
            return
        checkpoint = int(trusted["checkpoint"])
        for n, d in written:
            if n % self._every == 0 and n > trusted["seq"]:
                self._add_checkpoint(n, d)
                checkpoint = n
        self._write_head({"seq": seq, "hash": digest, "keyed_from": trusted["keyed_from"], "checkpoint": checkpoint})

    def entries(
        self, tenant: str | None = None, *, limit: int = 100, before_seq: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest entries first: a tenant's (its admins may read them), or all (platform admins)."""
        if tenant is None:
            check_platform_admin("read the whole audit log")
        else:
            check(tenant, "admin")
        self.flush_deferred()
        q = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if tenant is not None:
            q = q.where(audit_log.c.tenant == tenant)
        if before_seq is not None:
            q = q.where(audit_log.c.seq < before_seq)
        with self._engine.connect() as c:
            rows = c.execute(q).all()
        return [
            {
                "seq": r.seq,
                "at": from_us(r.at_us).isoformat(),
                "actor": r.actor,
                "source": r.source,
                "tenant": r.tenant,
                "action": r.action,
                "target": r.target,
                "before": r.before,
                "after": r.after,
            }
            for r in rows
        ]

    # -- verifying --------------------------------------------------------------------------------------------
    def _read_checkpoints(self) -> tuple[dict[int, str], str | None]:
        """Signed checkpoints by entry number, or the reason the file cannot be trusted."""
        found: dict[int, str] = {}
        if self._checkpoints is None or self._key is None or not self._checkpoints.exists():
            return found, None
        for n, line in enumerate(self._checkpoints.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                body = {k: v for k, v in record.items() if k != "mac"}
                good = hmac.compare_digest(str(record["mac"]), _sign(self._key, "checkpoint", body))
                seq, digest = int(record["seq"]), str(record["hash"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                return found, f"line {n} of the checkpoint file is not a checkpoint"
            if not good:
                return found, f"line {n} of the checkpoint file was changed (its signature does not match)"
            found[seq] = digest
        return found, None

    def verify(self) -> Verdict:
        """Walk the chain; the first entry that does not follow from the one before is reported, and so is a head or
        checkpoint that records more than the log holds."""
        keyed = self._key_file is not None
        with contextlib.suppress(Exception):  # what cannot be written now is not in the log: verify what is
            self.flush_deferred()
        with self._engine.connect() as c:
            total = int(c.execute(select(func.count()).select_from(audit_log)).scalar() or 0)
        if keyed and self._key is None:
            return Verdict(False, total, None, self._key_problem or "no audit key")
        head: dict[str, Any] | None = None
        keyed_from: int | None = None
        checkpoints: dict[int, str] = {}
        if keyed:
            head, problem = (
                self._checked_head() if self._head is not None else ({"seq": 0, "keyed_from": 1, "checkpoint": 0}, None)
            )
            if head is None:
                return Verdict(False, total, None, problem)
            keyed_from = int(head["keyed_from"])
            checkpoints, problem = self._read_checkpoints()
            if problem:
                return Verdict(False, total, None, problem)
            if head["checkpoint"] and head["checkpoint"] not in checkpoints:
                return Verdict(
                    False,
                    total,
                    int(head["checkpoint"]),
                    f"the checkpoint at entry {head['checkpoint']} is missing from the checkpoint file",
                )
        prev = GENESIS
        expected_seq = 1
        n = 0
        seen: dict[int, str] = {}
        witness = {int(head["seq"]): str(head.get("hash"))} if head and head["seq"] else {}
        with self._engine.connect() as c:
            for r in c.execute(select(audit_log).order_by(audit_log.c.seq)):
                n += 1
                if r.seq != expected_seq:
                    return Verdict(
                        False, total, r.seq, f"entry {expected_seq} is missing (next is {r.seq})", keyed_from
                    )
                if r.prev_hash != prev:
                    return Verdict(False, total, r.seq, f"entry {r.seq} does not follow entry {r.seq - 1}", keyed_from)
                fields = _row_fields(r)
                if keyed_from is not None and self._key is not None and r.seq >= keyed_from:
                    if not hmac.compare_digest(_entry_mac(self._key, prev, fields), str(r.hash)):
                        why = (
                            "is not signed with the audit key (the chain was recomputed without it)"
                            if _entry_hash(prev, fields) == r.hash
                            else "was changed after it was written"
                        )
                        return Verdict(False, total, r.seq, f"entry {r.seq} {why}", keyed_from)
                elif _entry_hash(prev, fields) != r.hash:
                    return Verdict(False, total, r.seq, f"entry {r.seq} was changed after it was written", keyed_from)
                if r.seq in checkpoints or r.seq in witness:
                    seen[r.seq] = str(r.hash)
                prev = r.hash
                expected_seq += 1
        if keyed:
            assert head is not None
            for seq, digest in sorted({**checkpoints, **witness}.items()):
                what = "the head file" if seq in witness else "a signed checkpoint"
                if seq > n:
                    lost = "the log is empty" if n == 0 else f"the log ends at entry {n}"
                    return Verdict(
                        False, total, n + 1, f"{lost} but {what} records entry {seq}: entries were removed", keyed_from
                    )
                if seen.get(seq) != digest:
                    return Verdict(False, total, seq, f"entry {seq} is not the one {what} records", keyed_from)
            return Verdict(True, n, keyed_from=keyed_from, checkpoints=len(checkpoints))
        if self._head is not None and self._head.exists():
            old = orjson.loads(self._head.read_bytes())
            if old["seq"] != n or old["hash"] != prev:
                return Verdict(
                    False,
                    total,
                    n + 1 if old["seq"] > n else old["seq"],
                    f"the log ends at entry {n} but entry {old['seq']} was written",
                )
        return Verdict(True, n)

    def reseal(self, reason: str) -> Verdict:
        """Accept the log as it now stands after the operator has looked into a failure (a lost head file, a
        restored backup): the chain itself must still hold; a new signed head is written, the old checkpoint file
        is kept aside, and the reseal itself is the next entry, with the reason."""
        check_platform_admin("reseal the audit log")
        if self._key is None or self._head is None:
            raise Unavailable(
                self._key_problem or "resealing needs the audit key and the head file's place", where="audit log"
            )
        prev, n, keyed_from = GENESIS, 0, None
        with self._lock, self._engine.begin() as c:
            _take_append_lock(c)
            for r in c.execute(select(audit_log).order_by(audit_log.c.seq)):
                n += 1
                fields = _row_fields(r)
                if r.seq != n or r.prev_hash != prev:
                    raise Conflict(f"cannot reseal: the chain itself breaks at entry {n}", where="audit log")
                if hmac.compare_digest(_entry_mac(self._key, prev, fields), str(r.hash)):
                    keyed_from = keyed_from or n
                elif keyed_from is not None or _entry_hash(prev, fields) != r.hash:
                    raise Conflict(f"cannot reseal: entry {n} was changed after it was written", where="audit log")
                prev = r.hash
            if self._checkpoints is not None and self._checkpoints.exists():
                os.replace(
                    self._checkpoints,
                    self._checkpoints.with_name(f"{self._checkpoints.name}.before-reseal-{time.time_ns() // 1000}"),
                )
            self._write_head({"seq": n, "hash": prev, "keyed_from": keyed_from or n + 1, "checkpoint": 0})
        self.append("audit.reseal", after={"entries": n, "keyed_from": keyed_from or n + 1, "reason": reason})
        return self.verify()


def open_audit(engine: Engine, settings: Settings) -> AuditLog:
    """The audit log of a data directory, as the settings place its head file and key (one place for every
    builder: the composition root and a historian built alone)."""
    return AuditLog(
        engine,
        settings.data_dir / "audit-head.json",
        key_file=settings.audit_key_path,
        checkpoint_every=settings.audit_checkpoint_every,
    )
