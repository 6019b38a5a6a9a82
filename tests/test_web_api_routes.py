"""The API routes the working pages use besides the existing ones, against hostile callers: a connector checked
without being stored, an OPC UA server browsed (tenant admins only; a URL of another scheme or a closed port is
refused with the reason), the audit chain verified (platform admins get the whole verdict, a tenant's admins only
whether it is intact and their own count, others nothing)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from taehwa.connectors.link import Status
from taehwa.core.loopback import free_port
from taehwa.server.platform import Platform
from tests.conftest import TOKEN


def bearer(platform: Platform, user: str) -> dict[str, str]:
    secret, _ = platform.identity.create_token(user, "test")
    return {"Authorization": f"Bearer {secret}"}


def people(platform: Platform) -> tuple[dict[str, str], dict[str, str]]:
    platform.identity.create_user("boss", "Boss")
    platform.identity.set_role("boss", "acme", "tenant_admin")
    platform.identity.create_user("eng", "Engineer")
    platform.identity.set_role("eng", "acme", "engineer")
    return bearer(platform, "boss"), bearer(platform, "eng")


def test_check_stores_nothing_names_each_problem_and_needs_an_admin(client: TestClient, platform: Platform) -> None:
    boss, eng = people(platform)
    doc = {"name": "plc-1", "protocol": "modbus", "items": [{"address": 3, "type": "float32", "tag": "plc/speed"}]}
    r = client.post("/api/v1/acme/connectors/check", json=doc, headers=boss)
    assert r.status_code == 200 and r.json()["valid"] == [
        {"name": "plc-1", "protocol": "modbus", "items": 1, "tags": ["plc/speed"]}
    ]
    assert platform.connectors.list("acme") == []  # checked, not stored
    bad = {**doc, "items": [{"address": 70000, "tag": "x"}, {"address": 1, "type": "int8", "tag": "y"}]}
    r = client.post("/api/v1/acme/connectors/check", json=bad, headers=boss)
    assert r.status_code == 422
    assert {p["where"] for p in r.json()["problems"]} == {"connector.items[0].address", "connector.items[1].type"}
    escape = {"name": "drop", "protocol": "files", "folder": "../../../etc"}
    r = client.post("/api/v1/acme/connectors/check", json=escape, headers=boss)
    assert r.status_code in (403, 422) and "folder" in r.json()["where"]
    assert client.post("/api/v1/acme/connectors/check", json=doc, headers=eng).status_code == 403
    assert client.post("/api/v1/rival/connectors/check", json=doc, headers=boss).status_code == 403


def test_browse_is_for_admins_and_refuses_other_schemes_and_closed_ports(
    client: TestClient, platform: Platform
) -> None:
    boss, eng = people(platform)
    r = client.post("/api/v1/acme/connectors/browse", json={"endpoint": "http://127.0.0.1:80/"}, headers=boss)
    assert r.status_code == 422 and "endpoint" in r.json()["where"]
    closed = f"opc.tcp://127.0.0.1:{free_port()}/"
    r = client.post("/api/v1/acme/connectors/browse", json={"endpoint": closed}, headers=boss)
    assert r.status_code == 503 and r.json()["message"].startswith(f"cannot browse {closed}")
    assert client.post("/api/v1/acme/connectors/browse", json={"endpoint": closed}, headers=eng).status_code == 403
    r = client.post("/api/v1/acme/connectors/browse", json={"endpoint": closed, "depth": 99}, headers=boss)
    assert r.status_code == 422  # bounded


def test_audit_verify_says_to_each_what_it_may_know(client: TestClient, platform: Platform) -> None:
    boss, eng = people(platform)
    admin = {"Authorization": f"Bearer {TOKEN}"}
    doc = {"name": "drop", "protocol": "files", "folder": "incoming"}
    (platform.settings.data_dir / "files" / "acme" / "incoming").mkdir(parents=True)
    assert client.post("/api/v1/acme/connectors", json=doc, headers=boss).status_code == 201  # an audited change
    whole = client.get("/api/v1/audit/verify", headers=admin).json()
    assert whole["ok"] is True and whole["entries"] >= 1 and "summary" in whole
    own = client.get("/api/v1/audit/verify?tenant=acme", headers=boss).json()
    assert own["ok"] is True and set(own) == {"ok", "entries", "summary"} and own["entries"] >= 1  # no one else's
    assert own["entries"] == len(platform.audit.entries("acme", limit=10_000))
    assert client.get("/api/v1/audit/verify", headers=boss).status_code == 403  # the whole log: platform admins
    assert client.get("/api/v1/audit/verify?tenant=acme", headers=eng).status_code == 403
    assert client.get("/api/v1/audit/verify?tenant=rival", headers=boss).status_code == 403
    # the connector added above, as the list and its page read it: the typed answers are the routes' response
    # models, and each is the service's whole, not running (name, state, backlog) and as a running link wrote it
    listed = client.get("/api/v1/acme/connectors", headers=boss).json()
    assert listed == platform.connectors.list("acme") and listed[0]["status"]["state"] == "not running"
    running = Status("drop", "files", state="connected", points_total=3, detail={"files_done": 1}).to_dict()
    folder = platform.connectors.folder("acme", "drop")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "status.json").write_text(json.dumps(running))
    one = client.get("/api/v1/acme/connectors/drop", headers=boss).json()
    assert one == platform.connectors.get("acme", "drop") and one["status"] == running and len(running) == 12
