"""Every route in the OpenAPI document, tried by callers who must be refused: no token, a bad token, an expired
and a revoked token, a user of another tenant, and a viewer where a write is needed. Routes are read from the
document, so a route added later is covered without touching this file; each answer is also searched for the
victim tenant's data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from taehwa.api.app import create_app
from taehwa.core.settings import Settings
from taehwa.db import api_tokens
from taehwa.server.platform import Platform
from tests.conftest import TOKEN

PLANT = (Path(__file__).parent / "data" / "plant.yaml").read_text()
SECRET_TAG = "ulsan/cdu/P-101A/PT"
SECRET_VALUE = 31.4159
PUBLIC = {("GET", "/healthz"), ("POST", "/api/v1/login"), ("POST", "/api/v1/session")}
# Routes not tied to one tenant: what an ordinary user may do there (their own identity and tokens).
OWN = {
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("PUT", "/api/v1/users/{user}/password"),
    ("GET", "/api/v1/tenants"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/city/figures"),  # the catalogue of figures a company may contribute to: names, no values
}
VALUES = {
    "tenant": "acme",
    "path": "ulsan/cdu/p-101a",
    "tag": SECRET_TAG,
    "name": "CentrifugalPump",
    "user": "eve",
    "token_id": "0000000000000000",
    "grant_id": "000000000000",
    "label_id": "1",
    "version": "1",
    "run_id": "00000000",
    "alert_id": "1",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Tenant acme (the victim) with a plant and a secret value; tenant rival with its own admin and viewer."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("iso"), api_token=TOKEN)
    p = Platform(settings, background=False)
    p.tenants.create("acme")
    p.tenants.create("rival")
    p.twin.load("acme", PLANT)
    p.historian.write("acme", [(SECRET_TAG, "2024-03-01T00:00:00Z", SECRET_VALUE)])
    ident = p.identity
    for user, tenant, role in [
        ("eve", "rival", "tenant_admin"),
        ("vic", "acme", "viewer"),
        ("ann", "acme", "engineer"),
    ]:
        ident.create_user(user)
        ident.set_role(user, tenant, role)
    tokens = {u: ident.create_token(u, "test")[0] for u in ("eve", "vic", "ann")}
    expired, info = ident.create_token("ann", "old")
    with p.historian.engine.begin() as c:
        c.execute(
            update(api_tokens)
            .where(api_tokens.c.id == info.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    revoked, rinfo = ident.create_token("ann", "gone")
    ident.revoke_token(rinfo.id)
    with TestClient(create_app(p)) as client:
        yield {"client": client, "tokens": tokens, "expired": expired, "revoked": revoked, "platform": p}
    p.close()


EXAMPLES = {
    "id": "probe",
    "role": "viewer",
    "password": "0123456789abc",
    "name": "probe",
    "type": "Column",
    "from": "ulsan/cdu/c-101",
    "kind": "feeds",
    "to": "ulsan/cdu/p-101a",
    "parent": None,
    "grantee": "rival",
    "tags": ["ulsan/*"],
    "start": "2024-01-01",
    "end": "2025-01-01",
    "days": 1,
}


def example(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A minimal valid JSON body for a request schema: its required fields, so that validation passes and the
    request reaches the access check."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: EXAMPLES.get(k, example(props[k], spec)) for k in schema.get("required", [])}
    kind = schema.get("type") or next(
        (s.get("type") for s in schema.get("anyOf", []) if s.get("type") != "null"), "string"
    )
    return {"string": "probe", "number": 1.0, "integer": 1, "boolean": False, "array": []}.get(kind, {})


def routes(client: TestClient) -> list[tuple[str, str, Any]]:
    """(method, path, example body) of every operation in the OpenAPI document."""
    spec = client.get("/openapi.json").json()
    out = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            content = op.get("requestBody", {}).get("content", {})
            body = example(content["application/json"]["schema"], spec) if "application/json" in content else None
            out.append((method.upper(), path, body))
    return out


def call(client: TestClient, method: str, path: str, token: str | None, body: Any = None) -> Any:
    url = re.sub(r"\{(\w+)(:path)?\}", lambda m: VALUES.get(m.group(1), "x"), path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"tags": SECRET_TAG, "start": "2024-01-01", "end": "2025-01-01", "from": "a", "kind": "feeds", "to": "b"}
    if path.endswith("/points") and method == "POST":
        return client.request(
            method,
            url,
            headers=headers,
            params=params,
            json=[{"tag": "probe/tag", "time": "2024-03-01T00:00:00Z", "value": 1.0}],
        )
    if path.endswith("/twin") and method == "PUT":
        return client.request(
            method,
            url,
            headers={**headers, "Content-Type": "application/yaml"},
            params=params,
            content=PLANT.replace("ulsan", "hacked"),
        )
    return client.request(method, url, headers=headers, params=params, json=body)


def leaks(response: Any) -> bool:
    text = response.text
    return str(SECRET_VALUE) in text or "Hyosung" in text or ("p-101a" in text.lower() and response.status_code < 400)


def test_every_route_refuses_whoever_must_be_refused(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    found = routes(client)
    assert len(found) > 30  # the document lists every route, including the twin's and identity's
    checked = 0
    for method, path, body in found:
        if (method, path) in PUBLIC or path.startswith("/docs") or path == "/openapi.json":
            continue
        is_write = method != "GET"
        tenant_route = "{tenant}" in path
        cases: list[tuple[str | None, tuple[int, ...]]] = [
            (None, (401,)),
            ("wrong-token", (401,)),
            ("thw_0000000000000000_nope", (401,)),
            (world["expired"], (401,)),
            (world["revoked"], (401,)),
        ]
        if tenant_route:
            cases.append((world["tokens"]["eve"], (403,)))  # another tenant's admin
            if is_write:
                cases.append((world["tokens"]["vic"], (403,)))  # a viewer where a write is needed
        elif path.startswith("/api/v1/academy/"):
            # open to every signed-in user; a challenge or submission they may not see is not found
            cases.append((world["tokens"]["eve"], (200, 404, 422)))
        elif (method, path) not in OWN:
            cases.append((world["tokens"]["eve"], (403,)))  # platform-wide administration
        for token, expected in cases:
            r = call(client, method, path, token, body)
            assert r.status_code in expected, (method, path, token and token[:8], r.status_code, r.text[:200])
            assert not leaks(r), (method, path, r.text[:300])
            checked += 1
    assert checked > 150
    p: Platform = world["platform"]
    assert p.twin.search("acme")["total"] == 6  # nothing the refused callers sent was applied
    assert "probe/tag" not in p.historian.catalog.ids("acme")


def test_members_can_do_their_job(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    vic = {"Authorization": f"Bearer {world['tokens']['vic']}"}
    ann = {"Authorization": f"Bearer {world['tokens']['ann']}"}
    r = client.get("/api/v1/acme/tags/latest", params={"tags": SECRET_TAG}, headers=vic)
    assert r.status_code == 200 and r.json()["points"][0]["value"] == SECRET_VALUE
    assert client.get("/api/v1/acme/assets/ulsan/cdu/p-101a", headers=vic).status_code == 200
    assert (
        client.post(
            "/api/v1/acme/points", headers=ann, json=[{"tag": "ann/tag", "time": "2024-03-01T00:00:00Z", "value": 2.0}]
        ).status_code
        == 200
    )
    assert [t["id"] for t in client.get("/api/v1/tenants", headers=vic).json()] == ["acme"]
    eve = {"Authorization": f"Bearer {world['tokens']['eve']}"}
    assert [t["id"] for t in client.get("/api/v1/tenants", headers=eve).json()] == ["rival"]
    assert client.get("/api/v1/me", headers=eve).json()["roles"] == {"rival": "tenant_admin"}


def test_events_stream_refuses_other_tenants(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    eve = {"Authorization": f"Bearer {world['tokens']['eve']}"}
    assert client.get("/api/v1/acme/events", headers=eve).status_code == 403
    from starlette.testclient import WebSocketDenialResponse

    for token, status in ((world["tokens"]["eve"], 403), (world["revoked"], 401), (None, 401)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with (
            pytest.raises(WebSocketDenialResponse) as info,
            client.websocket_connect("/api/v1/acme/events/ws", headers=headers) as ws,
        ):
            ws.receive_text()
        assert info.value.status_code == status
