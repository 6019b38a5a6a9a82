"""Users, roles, tokens (scopes, expiry, revocation), password lockout, and the audit log's hash chain, with a
test that tampers with it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import delete, text, update
from typer.testing import CliRunner

from taehwa.cli.main import app
from taehwa.core.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from taehwa.db import audit_log
from taehwa.migrate import make_engine
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as
from taehwa.tenancy.audit import AuditLog
from taehwa.tenancy.identity import LOCKOUT_AFTER


def test_roles_and_scopes(platform: Platform) -> None:
    ident = platform.identity
    ident.create_user("kim", password="correct horse battery")
    ident.set_role("kim", "acme", "engineer")
    read_only, _ = ident.create_token("kim", "dashboards", scopes=["read"])
    kim = ident.authenticate(read_only)
    with acting_as(kim):
        assert platform.historian.tags("acme") == []
        with pytest.raises(Forbidden, match="scopes"):
            platform.historian.write("acme", [("a", "2024-03-01T00:00:00Z", 1.0)])
        with pytest.raises(Forbidden, match="no access to tenant 'rival'"):
            platform.historian.tags("rival")
        with pytest.raises(Forbidden, match="platform admin"):
            platform.tenants.create("evil")
        with pytest.raises(Forbidden):
            ident.create_user("mallory")
    full = ident.authenticate(ident.create_token("kim", "all")[0])
    with acting_as(full):
        platform.historian.write("acme", [("a", "2024-03-01T00:00:00Z", 1.0)])
        with pytest.raises(InvalidInput, match="scopes"), acting_as(kim):
            ident.create_token("kim", "wider", scopes=["write"])
    with pytest.raises(InvalidInput):
        ident.set_role("kim", "acme", "overlord")
    with pytest.raises(Conflict):
        ident.create_user("kim")
    with pytest.raises(InvalidInput):
        ident.create_user("Not A Valid Id")


def test_a_tenant_admin_renames_their_tenant_and_the_demo_takes_its_new_name(platform: Platform) -> None:
    """Renaming is for the tenant's admins only, keeps the id, is audited; a demo tenant made by a former version
    (named "Demo: SKAB water-pump test bed") is renamed for what it holds, a name somebody chose is left alone."""
    from taehwa.demo import DEMO_NAME, ensure_demo_tenant

    ident = platform.identity
    ident.create_user("lee", password="correct horse battery")
    ident.set_role("lee", "acme", "engineer")
    ident.create_user("park", password="correct horse battery")
    ident.set_role("park", "acme", "tenant_admin")
    with acting_as(ident.authenticate(ident.create_token("lee", "t")[0])), pytest.raises(Forbidden):
        platform.tenants.rename("acme", "Acme Ulsan refinery")
    with acting_as(ident.authenticate(ident.create_token("park", "t")[0])):
        with pytest.raises(InvalidInput, match="1-255"):
            platform.tenants.rename("acme", "  ")
        assert platform.tenants.rename("acme", "Acme Ulsan refinery").name == "Acme Ulsan refinery"
        with pytest.raises(Forbidden):
            platform.tenants.rename("rival", "mine now")
    assert platform.tenants.get("acme").id == "acme"
    [entry] = [e for e in platform.audit.entries("acme", limit=20) if e["action"] == "tenant.rename"]
    assert entry["actor"].startswith("park (token ")
    platform.tenants.create("demo", "Demo: SKAB water-pump test bed")
    ensure_demo_tenant(platform.tenants)
    assert platform.tenants.get("demo").name == DEMO_NAME
    platform.tenants.rename("demo", "Our training plant")
    ensure_demo_tenant(platform.tenants)
    assert platform.tenants.get("demo").name == "Our training plant"


def test_tokens_expire_and_revoke(platform: Platform) -> None:
    ident = platform.identity
    ident.create_user("lee")
    secret, info = ident.create_token("lee", "job", expires_in_days=1)
    assert ident.authenticate(secret).user == "lee"
    assert secret not in str(ident.list_tokens("lee")[0].to_dict())  # only the hash is kept
    ident.revoke_token(info.id)
    with pytest.raises(Unauthorized, match="revoked"):
        ident.authenticate(secret)
    with pytest.raises(Unauthorized, match="invalid"):
        ident.authenticate(secret[:-2] + "xx")
    with pytest.raises(InvalidInput):
        ident.create_token("lee", "bad", expires_in_days=-1)


def test_password_lockout(platform: Platform) -> None:
    ident = platform.identity
    ident.create_user("park", password="a long enough password")
    assert ident.login("park", "a long enough password").id == "park"
    for _ in range(LOCKOUT_AFTER):
        with pytest.raises(Unauthorized, match="wrong user name or password"):
            ident.login("park", "guess")
    with pytest.raises(Unauthorized, match="wrong user name or password"):  # held back, and not told so
        ident.login("park", "a long enough password")
    ident.set_password("park", "a brand new password")  # an admin reset unlocks
    assert ident.login("park", "a brand new password").id == "park"
    with pytest.raises(InvalidInput, match="at least"):
        ident.set_password("park", "short")


def test_login_over_http(platform: Platform, client: object) -> None:
    from fastapi.testclient import TestClient

    assert isinstance(client, TestClient)
    platform.identity.create_user("choi", password="another good password")
    platform.identity.set_role("choi", "acme", "viewer")
    r = client.post("/api/v1/login", json={"user": "choi", "password": "another good password"}, headers={})
    assert r.status_code == 200
    token = r.json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["user"] == "choi" and me["roles"] == {"acme": "viewer"}
    assert client.post("/api/v1/login", json={"user": "choi", "password": "nope"}).status_code == 401


def test_audit_chain_detects_tampering(platform: Platform) -> None:
    ident = platform.identity
    ident.create_user("yoon")  # runs as the local system: not recorded
    with acting_as(_admin(platform)):
        ident.create_user("han")
        ident.set_role("han", "acme", "viewer")
        platform.historian.write("acme", [("t", "2024-03-01T00:00:00Z", 1.0)])
    with acting_as(_admin(platform)):
        entries = platform.audit.entries(limit=10)
    assert [e["action"] for e in entries] == ["points.write", "user.role", "user.create"]
    assert entries[1]["before"] == {"role": None} and entries[1]["after"] == {"role": "viewer"}
    assert platform.audit.verify().ok
    engine = platform.historian.engine
    with engine.begin() as c:  # change what an entry says
        c.execute(update(audit_log).where(audit_log.c.seq == 2).values(target="someone-else"))
    v = platform.audit.verify()
    assert not v.ok and v.first_bad == 2 and "changed" in (v.reason or "")


@pytest.mark.parametrize("attack", ["remove-middle", "remove-last", "reorder"])
def test_audit_chain_detects_removal_and_reordering(platform: Platform, attack: str) -> None:
    with acting_as(_admin(platform)):
        for i in range(4):
            platform.historian.write("acme", [(f"t{i}", "2024-03-01T00:00:00Z", 1.0)])
    assert platform.audit.verify().ok
    with platform.historian.engine.begin() as c:
        if attack == "remove-middle":
            c.execute(delete(audit_log).where(audit_log.c.seq == 2))
        elif attack == "remove-last":
            c.execute(delete(audit_log).where(audit_log.c.seq == 4))
        else:  # swap entries 2 and 3 (numbers and all)
            c.execute(text("UPDATE audit_log SET seq = -1 WHERE seq = 2"))
            c.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
            c.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = -1"))
    assert not platform.audit.verify().ok


def _admin(platform: Platform) -> Principal:
    """The caller the bootstrap admin token stands for (recorded in the audit log, unlike the local system)."""
    return platform.authenticate(platform.api_token)


def test_audit_appends_from_several_processes_keep_one_chain(platform: Platform) -> None:
    """Several processes append at once (API workers, writers on several machines, the CLI beside the server):
    each has its own engine and lock, and no entry may claim another's number."""
    s = platform.settings
    logs = [
        AuditLog(
            make_engine(s.metadata_url), s.data_dir / "audit-head.json", key_file=s.audit_key_path, checkpoint_every=7
        )
        for _ in range(2)
    ]
    errors: list[Exception] = []

    def append(log: AuditLog, k: int) -> None:
        with acting_as(Principal(f"op{k}", platform_admin=True)):
            for i in range(60):
                try:
                    log.append("test.append", target=f"{k}-{i}")
                except Exception as exc:  # collected and reported below
                    errors.append(exc)

    threads = [threading.Thread(target=append, args=(log, k)) for k, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verdict = platform.audit.verify()
    assert verdict.ok and verdict.entries >= 120, verdict
    assert verdict.checkpoints >= 1  # the signed checkpoints the two wrote match the one chain
    with acting_as(Principal("root", platform_admin=True)):
        targets = {e["target"] for e in platform.audit.entries(limit=500) if e["action"] == "test.append"}
    assert len(targets) == 120
    for log in logs:
        log._engine.dispose()


def test_admin_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(app, ["admin", "tenant", "acme"]).exit_code == 0
    r = runner.invoke(app, ["admin", "user", "kang", "-t", "acme", "--role", "engineer"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["admin", "token", "kang", "--scope", "read", "--days", "30"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("thw_")
    r = runner.invoke(app, ["admin", "users", "-t", "acme"])
    assert "kang" in r.output and "engineer" in r.output
    assert runner.invoke(app, ["admin", "role", "kang", "-t", "acme", "overlord"]).exit_code == 2
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 0 and "intact" in r.output
    r = runner.invoke(app, ["audit", "show"])
    assert "token.create" in r.output and "cli:" in r.output
    from taehwa.core.settings import load_settings
    from taehwa.db import engine_for

    engine = engine_for(load_settings().metadata_url)  # the database the CLI used (SQLite, or PostgreSQL by URL)
    with engine.begin() as c:
        c.execute(update(audit_log).where(audit_log.c.seq == 1).values(actor="nobody"))
    engine.dispose()
    r = runner.invoke(app, ["audit", "verify"])
    assert r.exit_code == 7 and "entry 1" in r.output


def test_browser_session_cookie_and_csrf(platform: Platform) -> None:
    from fastapi.testclient import TestClient

    from taehwa.api.app import create_app

    platform.identity.create_user("seo", password="a browser password")
    platform.identity.set_role("seo", "acme", "engineer")
    with TestClient(create_app(platform)) as browser:
        r = browser.post("/api/v1/session", json={"user": "seo", "password": "a browser password"})
        assert r.status_code == 204
        assert "httponly" in r.headers.get("set-cookie", "").lower()
        assert browser.get("/api/v1/me").json()["user"] == "seo"  # the cookie alone reads
        point = [{"tag": "s/t", "time": "2024-03-01T00:00:00Z", "value": 1.0}]
        r = browser.post("/api/v1/acme/points", json=point)  # a change without the CSRF header: refused
        assert r.status_code == 401 and "CSRF" in r.json()["message"]
        r = browser.post("/api/v1/acme/points", json=point, headers={"X-CSRF-Token": "forged"})
        assert r.status_code == 401
        csrf = browser.cookies.get("taehwa_csrf")
        assert csrf is not None, "the session sets a CSRF cookie"
        assert browser.post("/api/v1/acme/points", json=point, headers={"X-CSRF-Token": csrf}).status_code == 200
        assert browser.request("DELETE", "/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert browser.get("/api/v1/me").status_code == 401
