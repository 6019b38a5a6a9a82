"""Issue 20, points 8 and 9, as an attacker would try them.

The audit chain: whoever can write the metadata database and the data directory, but lacks the audit key, edits
entry 100 and recomputes the chain and the head, cuts the tail and deletes the head, restores an older head, empties
the log, deletes or swaps the key; `taehwa audit verify` (exit 7) and the service catch each, without repeating
what the entries say. Login: unknown users, held-back sources and wrong passwords get the same status, body and
(about) time, and failures from one source never shut a user out from another."""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from taehwa.api.app import create_app
from taehwa.cli.main import app
from taehwa.core.errors import Unauthorized, Unavailable
from taehwa.core.settings import Settings, load_settings
from taehwa.db import audit_log
from taehwa.migrate import make_engine
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as
from taehwa.tenancy.audit import AuditLog, Verdict, _entry_hash, _row_fields
from taehwa.tenancy.identity import BACKOFF_S, LOCKOUT_AFTER, WRONG_LOGIN, LoginThrottle

N = 120
EVERY = 25  # a signed checkpoint every 25 entries: 25, 50, 75, 100
SECRET = "secret-target-value"


@pytest.fixture
def logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A data directory (as the CLI sees it) whose audit log has N entries, written by a platform and closed."""
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAEHWA_AUDIT_CHECKPOINT_EVERY", str(EVERY))
    s = load_settings()
    platform = Platform(s, background=False)
    with acting_as(Principal("op", platform_admin=True, source="10.1.1.1:4000")):
        for i in range(N):
            platform.audit.append("test.append", target=f"t{i}", after={"i": i})
    platform.close()
    yield s


def _service(s: Settings) -> Verdict:
    """The service's verdict, from a fresh AuditLog as a new process would open it."""
    engine = make_engine(s.metadata_url)
    try:
        return AuditLog(
            engine, s.data_dir / "audit-head.json", key_file=s.audit_key_path, checkpoint_every=s.audit_checkpoint_every
        ).verify()
    finally:
        engine.dispose()


def _cli() -> Any:
    """`taehwa audit verify`, as an operator runs it."""
    return CliRunner().invoke(app, ["audit", "verify"])


def _assert_caught(s: Settings, *words: str) -> Verdict:
    """Both the service and the CLI call the log broken, for a reason with these words, without echoing content."""
    v = _service(s)
    assert not v.ok, v
    for w in words:
        assert w in (v.reason or ""), v
    r = _cli()
    assert r.exit_code == 7, r.output
    assert "broken" in r.output and all(w in r.output for w in words), r.output
    assert SECRET not in r.output and SECRET not in (v.reason or "")
    return v


def _recompute_unkeyed(s: Settings, start: int) -> str:
    """What an attacker with the code but not the key does: recompute every link from `start` with plain SHA-256
    (the old chain's rule); returns the new last hash."""
    engine = make_engine(s.metadata_url)
    with engine.begin() as c:
        rows = c.execute(select(audit_log).order_by(audit_log.c.seq)).all()
        prev = rows[start - 2].hash if start > 1 else "0" * 64
        for r in rows[start - 1 :]:
            digest = _entry_hash(prev, _row_fields(r))
            c.execute(update(audit_log).where(audit_log.c.seq == r.seq).values(prev_hash=prev, hash=digest))
            prev = digest
    engine.dispose()
    return prev


def _delete_from(s: Settings, first: int) -> None:
    """Remove entries `first` and after (0 or 1: all)."""
    engine = make_engine(s.metadata_url)
    with engine.begin() as c:
        c.execute(delete(audit_log).where(audit_log.c.seq >= first))
    engine.dispose()


def test_an_untouched_log_verifies(logged: Settings) -> None:
    v = _service(logged)
    assert v.ok and v.entries == N and v.keyed_from == 1 and v.checkpoints == N // EVERY, v
    r = _cli()
    assert r.exit_code == 0 and f"intact, {N} entries" in r.output and "keyed" in r.output, r.output


@pytest.mark.parametrize("head", ["rewritten", "kept"])
def test_edit_entry_100_and_recompute_the_chain(logged: Settings, head: str) -> None:
    engine = make_engine(logged.metadata_url)
    with engine.begin() as c:
        c.execute(update(audit_log).where(audit_log.c.seq == 100).values(target=SECRET))
    engine.dispose()
    last = _recompute_unkeyed(logged, 100)
    if head == "rewritten":  # the head as the old code wrote it, pointing at the recomputed end
        (logged.data_dir / "audit-head.json").write_text(orjson.dumps({"seq": N, "hash": last}).decode())
        _assert_caught(logged, "head file is not signed")
    else:
        v = _assert_caught(logged, "entry 100", "not signed with the audit key")
        assert v.first_bad == 100


def test_cut_the_tail_and_delete_the_head(logged: Settings) -> None:
    _delete_from(logged, 81)
    (logged.data_dir / "audit-head.json").unlink()
    _assert_caught(logged, "head file is missing")
    # nor does a later append paper over it: the head stays missing until an operator reseals
    engine = make_engine(logged.metadata_url)
    log = AuditLog(engine, logged.data_dir / "audit-head.json", key_file=logged.audit_key_path)
    with acting_as(Principal("op", platform_admin=True)):
        log.append("test.append", target="after the cut")
    engine.dispose()
    _assert_caught(logged, "head file is missing")


def test_cut_the_tail_and_put_back_an_older_head(logged: Settings) -> None:
    """The head is signed, but an older copy is a valid signature too: the checkpoints past it tell."""
    head = logged.data_dir / "audit-head.json"
    engine = make_engine(logged.metadata_url)
    log = AuditLog(engine, head, key_file=logged.audit_key_path, checkpoint_every=EVERY)
    _delete_from(logged, N + 1)
    old = head.read_bytes()  # the head at entry N
    with acting_as(Principal("op", platform_admin=True)):
        for i in range(30):  # past the checkpoint at 125 + … (N = 120: 125 and 150 are checkpoints)
            log.append("test.append", target=f"late {i}")
    engine.dispose()
    _delete_from(logged, N + 1)
    head.write_bytes(old)
    v = _assert_caught(logged, "checkpoint", "entries were removed")
    assert v.first_bad == N + 1
    head.unlink()  # and with no head at all
    _assert_caught(logged, "head file is missing")


@pytest.mark.parametrize("also", ["nothing", "the head", "the head and the checkpoints"])
def test_an_emptied_log(logged: Settings, also: str) -> None:
    _delete_from(logged, 0)
    if also != "nothing":
        (logged.data_dir / "audit-head.json").unlink()
    if also == "the head and the checkpoints":
        (logged.data_dir / "audit-checkpoints.jsonl").unlink()
    v = _assert_caught(logged, "the log is empty" if also == "nothing" else "head file is missing")
    assert v.entries == 0


def test_a_missing_key_is_a_failure_and_is_not_replaced(logged: Settings) -> None:
    logged.audit_key_path.unlink()
    _assert_caught(logged, "audit key file is missing")
    platform = Platform(logged, background=False)  # a restart does not make a new key over a signed log
    try:
        assert not logged.audit_key_path.exists()
        with acting_as(Principal("op", platform_admin=True)), pytest.raises(Unavailable, match="audit key"):
            platform.audit.append("test.append", target="unrecordable")
    finally:
        platform.close()
    _assert_caught(logged, "audit key file is missing")


def test_a_wrong_key(logged: Settings) -> None:
    key = logged.audit_key_path
    key.write_text(secrets.token_hex(32) + "\n")
    _assert_caught(logged, "not the key this log was signed with")
    key.write_text("not a key at all, and a " + SECRET + "\n")  # a malformed key: said so, not repeated
    _assert_caught(logged, "does not hold a hex key")


def test_a_forged_checkpoint_line(logged: Settings) -> None:
    points = logged.data_dir / "audit-checkpoints.jsonl"
    lines = points.read_bytes().splitlines()
    forged = orjson.loads(lines[1])
    forged["seq"] = 10_000
    points.write_bytes(b"\n".join([*lines, orjson.dumps(forged)]) + b"\n")
    _assert_caught(logged, "checkpoint file was changed")


def test_an_older_unkeyed_log_is_sealed_by_the_key(tmp_path: Path) -> None:
    """A log from before the key: kept, said to be unkeyed, and no longer changeable once keyed entries follow."""
    s = Settings(data_dir=tmp_path / "data", api_token="test-token-0123456789")
    s.data_dir.mkdir(parents=True)
    head = s.data_dir / "audit-head.json"
    engine = make_engine(s.metadata_url)
    old = AuditLog(engine, head)  # as before: no key
    with acting_as(Principal("op", platform_admin=True)):
        for i in range(10):
            old.append("test.append", target=f"old {i}")
        keyed = AuditLog(engine, head, key_file=s.audit_key_path)
        assert s.audit_key_path.exists() and s.audit_key_path.stat().st_mode & 0o077 == 0
        keyed.append("test.append", target="new")
    v = keyed.verify()
    assert v.ok and v.entries == 11 and v.keyed_from == 11, v
    assert "1–10 were written before the audit key" in v.describe()
    with engine.begin() as c:
        c.execute(update(audit_log).where(audit_log.c.seq == 3).values(target=SECRET))
    _recompute_unkeyed(s, 3)  # entries 3–11 recomputed the old way
    v = keyed.verify()
    assert not v.ok and v.first_bad == 11, v
    engine.dispose()


def test_reseal_after_a_lost_head(logged: Settings) -> None:
    (logged.data_dir / "audit-head.json").unlink()
    _assert_caught(logged, "head file is missing")
    r = CliRunner().invoke(app, ["audit", "reseal", "--reason", "head lost in a disk swap", "--yes"])
    assert r.exit_code == 0, r.output
    v = _service(logged)
    assert v.ok and v.entries == N + 1 and v.keyed_from == 1, v


# -- login ------------------------------------------------------------------------------------------------------
PASSWORD = "the right password here"


@pytest.fixture
def choi(platform: Platform) -> Platform:
    """A known user with a password and a role."""
    platform.identity.create_user("choi", password=PASSWORD)
    platform.identity.set_role("choi", "acme", "viewer")
    return platform


def _timed(client: TestClient, user: str, password: str) -> tuple[int, bytes, float]:
    """Status, body and seconds of one sign-in."""
    t = time.perf_counter()
    r = client.post("/api/v1/login", json={"user": user, "password": password})
    return r.status_code, r.content, time.perf_counter() - t


def test_login_tells_nothing(choi: Platform) -> None:
    with TestClient(create_app(choi), client=("198.51.100.7", 40000)) as client:
        held = [_timed(client, "choi", "wrong guess") for _ in range(LOCKOUT_AFTER)]  # this source is held back
        cases = {
            "unknown user": [_timed(client, "nobody.here", "wrong guess") for _ in range(3)],
            "wrong password": [
                _timed(TestClient(create_app(choi), client=("198.51.100.8", 1)), "choi", "another guess")
                for _ in range(3)
            ],
            "held back (right password)": [_timed(client, "choi", PASSWORD) for _ in range(3)],
        }
        bodies = {(status, body) for tries in [held, *cases.values()] for status, body, _ in tries}
        assert bodies == {(401, orjson.dumps({"error": "unauthorized", "message": WRONG_LOGIN, "where": "login"}))}, (
            bodies
        )
        medians = {name: statistics.median(t for _, _, t in tries) for name, tries in cases.items()}
        assert max(medians.values()) / min(medians.values()) < 3, medians
        print("login medians (ms):", {k: round(v * 1000, 1) for k, v in medians.items()})
        with acting_as(Principal("root", platform_admin=True)):
            held_back = [e for e in choi.audit.entries(limit=50) if e["action"] == "login.held_back"]
        assert held_back and held_back[0]["target"] == "choi" and held_back[0]["after"]["source"] == "198.51.100.7"


def test_a_held_back_source_does_not_lock_out_another(choi: Platform) -> None:
    ident = choi.identity
    for _ in range(LOCKOUT_AFTER + 2):
        with pytest.raises(Unauthorized, match=WRONG_LOGIN):
            ident.login("choi", "guess", source="203.0.113.9:5555")
    with pytest.raises(Unauthorized, match=WRONG_LOGIN):  # the attacker's source: held back, even when right
        ident.login("choi", PASSWORD, source="203.0.113.9:6666")
    assert ident.login("choi", PASSWORD, source="192.0.2.10:1234").id == "choi"  # the user, elsewhere
    with TestClient(create_app(choi), client=("192.0.2.11", 2222)) as client:
        r = client.post("/api/v1/login", json={"user": "choi", "password": PASSWORD})
        assert r.status_code == 200 and r.json()["user"] == "choi"


def test_the_back_off_grows_and_ends() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for i in range(LOCKOUT_AFTER - 1):
        assert throttle.failed("choi", "a") == (i + 1, 0.0)
    assert throttle.wait("choi", "a") == 0
    count, wait = throttle.failed("choi", "a")
    assert count == LOCKOUT_AFTER and wait == BACKOFF_S and throttle.wait("choi", "a") == BACKOFF_S
    assert throttle.wait("choi", "b") == 0 and throttle.wait("park", "a") == 0  # only that user, that source
    now[0] += BACKOFF_S
    assert throttle.wait("choi", "a") == 0
    assert throttle.failed("choi", "a") == (LOCKOUT_AFTER + 1, 2 * BACKOFF_S)  # exponentially longer
    throttle.succeeded("choi", "a")
    assert throttle.wait("choi", "a") == 0


def test_a_node_without_the_key_does_not_make_its_own(logged: Settings, tmp_path: Path) -> None:
    """A second node on the same database, started without the log's key, refuses to sign with a key of its own."""
    other = tmp_path / "other-node"
    engine = make_engine(logged.metadata_url)
    log = AuditLog(engine, other / "audit-head.json", key_file=other / "secrets" / "audit.key")
    try:
        assert not (other / "secrets" / "audit.key").exists()
        assert "same audit key file" in (log.verify().reason or "")
        with acting_as(Principal("op", platform_admin=True)), pytest.raises(Unavailable, match="same audit key"):
            log.append("test.append", target="from the other node")
    finally:
        engine.dispose()
    assert _service(logged).ok


# -- taehwa doctor ----------------------------------------------------------------------------------------------
def test_doctor_flags_loose_database_files_foreign_webhooks_and_outside_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from taehwa.db import connectors, webhooks

    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAEHWA_WEBHOOK_HOSTS", "hooks.example.com,*.city.example")
    s = load_settings()
    platform = Platform(s, background=False)
    platform.tenants.create("acme")
    platform.close()
    engine = make_engine(s.metadata_url)
    now = datetime.now(UTC)
    with engine.begin() as c:  # as a tenant admin could have set them up before the checks at entry existed
        for name, url in [
            ("ok", "https://hooks.example.com/a"),
            ("sub", "https://alarms.city.example/b"),
            ("metadata", "http://169.254.169.254/latest/meta-data"),
            ("far", "https://evil.example/"),
        ]:
            c.execute(
                insert(webhooks).values(
                    tenant="acme", name=name, url=url, events=["raised"], secret=None, created_by="t", created_at=now
                )
            )
        c.execute(
            insert(connectors).values(
                tenant="acme",
                name="drop",
                protocol="files",
                created_by="t",
                spec=orjson.dumps({"protocol": "files", "folder": "/etc"}).decode(),
                updated_at=now,
            )
        )
    engine.dispose()
    os.chmod(s.data_dir, 0o755)
    if s.metadata_url.startswith("sqlite"):
        os.chmod(Path(s.metadata_url.removeprefix("sqlite:///")), 0o644)
    r = CliRunner().invoke(app, ["doctor"])
    said = " ".join(r.output.split())
    assert r.exit_code == 8, said
    assert "2 post outside TAEHWA_WEBHOOK_HOSTS: acme/far → evil.example, acme/metadata → 169.254.169.254" in said
    assert "acme/ok" not in said and "acme/sub" not in said
    assert "outside their tenant's folders: acme/connector drop" in said
    if s.metadata_url.startswith("sqlite"):
        assert "readable by other local users: metadata.sqlite (mode 644)" in said


def test_deferred_entries_are_chained_and_checkpointed_in_their_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads audited later (SQL queries) go in as one batch: numbered after the entries before them, with the
    checkpoints that fall inside the batch, and a closed platform leaves none unwritten."""
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAEHWA_AUDIT_CHECKPOINT_EVERY", str(EVERY))
    s = load_settings()
    platform = Platform(s, background=False)
    with acting_as(Principal("op", platform_admin=True, source="10.1.1.1:4000")):
        platform.audit.append("test.append", target="first")
        for i in range(60):
            platform.audit.append_deferred("sql.query", target=f"q{i}")
        platform.audit.append("test.append", target="last")  # written after the deferred ones, in order
    platform.close()
    platform.audit.flush_deferred()  # nothing left: the sync append took them
    v = _service(s)
    assert v.ok and v.entries >= 62 and v.checkpoints == v.entries // EVERY, v
    engine = make_engine(s.metadata_url)
    with engine.connect() as c:
        targets = [r.target for r in c.execute(select(audit_log).order_by(audit_log.c.seq))]
    engine.dispose()
    assert targets[-62:] == ["first", *(f"q{i}" for i in range(60)), "last"]
