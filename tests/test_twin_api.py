"""The twin over HTTP: plant files, asset CRUD and search, state, and change streams (SSE on a real server,
WebSocket) that resume with Last-Event-ID and never mix tenants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from taehwa.server.platform import Platform
from tests.conftest import TOKEN

PLANT = (Path(__file__).parent / "data" / "plant.yaml").read_text()
PUMP = "ulsan/cdu/p-101a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def loaded(client: TestClient) -> TestClient:
    r = client.put("/api/v1/acme/twin", content=PLANT, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 6
    return client


def test_plant_round_trip_and_versions(loaded: TestClient) -> None:
    exported = loaded.get("/api/v1/acme/twin")
    assert exported.headers["content-type"].startswith("application/yaml")
    again = loaded.put("/api/v1/acme/twin", content=exported.text)
    assert again.json() == {
        "version": 1,
        "assets": 6,
        "types": 8,
        "added": 0,
        "changed": 0,
        "removed": 0,
        "relations": 2,
    }  # the same model again: no new version
    changed = exported.text.replace("name: Crude distillation unit", "name: CDU")
    assert loaded.put("/api/v1/acme/twin", content=changed).json()["changed"] == 1
    assert [v["version"] for v in loaded.get("/api/v1/acme/twin/versions").json()] == [2, 1]
    assert loaded.get("/api/v1/acme/twin?format=json").json()["assets"][0]["id"] == "ulsan"


def test_bad_plant_is_refused_with_lines(loaded: TestClient) -> None:
    r = loaded.put("/api/v1/acme/twin", content=PLANT.replace("type: Column\n", "type: Colum\n"))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_failed" and body["problems"][0]["where"].startswith("body, line ")
    assert "unknown type 'Colum'" in body["message"]
    assert loaded.put("/api/v1/acme/twin", content=b"assets: [").status_code == 422
    assert loaded.put("/api/v1/acme/twin", content=b"").status_code == 422
    assert loaded.put("/api/v1/acme/twin", content=b"- just\n- a list\n").status_code == 422
    assert len(loaded.get("/api/v1/acme/twin/versions").json()) == 1


def test_asset_crud_move_and_search(loaded: TestClient) -> None:
    r = loaded.post(
        "/api/v1/acme/assets",
        json={
            "id": "p-102",
            "parent": "ulsan/cdu",
            "type": "CentrifugalPump",
            "attributes": {"rated_power": 90},
            "tags": {"discharge_pressure": "ulsan/cdu/P-102/PT"},
        },
    )
    assert r.status_code == 201, r.text
    assert loaded.get("/api/v1/acme/assets/ulsan/cdu/p-102").json()["attributes"] == {"rated_power": 90}
    r = loaded.patch("/api/v1/acme/assets/ulsan/cdu/p-102", json={"name": "Booster"})
    assert r.json()["name"] == "Booster"
    found = loaded.get(
        "/api/v1/acme/assets", params={"type": "CentrifugalPump", "under": "ulsan/cdu", "attr": "rated_power=90"}
    ).json()
    assert [a["path"] for a in found["items"]] == ["ulsan/cdu/p-102"]
    assert [c["id"] for c in loaded.get(f"/api/v1/acme/assets/{PUMP}/children").json()] == ["motor"]
    assert [s["id"] for s in loaded.get("/api/v1/acme/sites").json()] == ["ulsan"]
    r = loaded.post("/api/v1/acme/assets/ulsan/cdu/p-102/move", json={"parent": "ulsan", "id": "p-900"})
    assert r.json()["path"] == "ulsan/p-900"  # levels may be skipped, never reversed
    assert loaded.delete("/api/v1/acme/assets/ulsan/cdu").status_code == 409
    assert loaded.get("/api/v1/acme/assets/ulsan/nothing").status_code == 404
    assert loaded.get("/api/v1/acme/assets", params={"attr": "nonsense"}).status_code == 422
    assert loaded.get("/api/v1/acme/assets", params={"state": "purple"}).status_code == 422
    r = loaded.post("/api/v1/acme/relations", json={"from": "ulsan/cdu/c-101", "kind": "feeds", "to": PUMP})
    assert r.status_code == 422 and "cycle" in r.json()["message"]
    r = loaded.delete("/api/v1/acme/relations", params={"from": PUMP, "kind": "feeds", "to": "ulsan/cdu/c-101"})
    assert r.status_code == 200
    assert loaded.post("/api/v1/acme/assets", json={"id": "x", "type": "Column", "colour": "red"}).status_code == 422


def test_state_live_and_past(loaded: TestClient, platform: Platform) -> None:
    loaded.post(
        "/api/v1/acme/points", json=[{"tag": "ulsan/cdu/P-101A/PT", "time": "2024-03-01T00:00:00Z", "value": 36.0}]
    )
    assert loaded.get(f"/api/v1/acme/assets/{PUMP}/state").json()["own_state"] == "alarm"
    assert loaded.get("/api/v1/acme/assets", params={"state": "alarm"}).json()["total"] == 3  # pump, area, site
    past = loaded.get(f"/api/v1/acme/assets/{PUMP}/state", params={"at": "2024-02-01T00:00:00Z"}).json()
    assert past["own_state"] == "unknown"
    # the typed answers (twin.records) are the routes' response models: each answer is the service's, whole
    twin = platform.twin
    assert loaded.get(f"/api/v1/acme/assets/{PUMP}/state").json() == twin.state("acme", PUMP)
    assert past == twin.state("acme", PUMP, "2024-02-01T00:00:00Z") and "at" in past and "quality" not in past
    got = loaded.get(f"/api/v1/acme/assets/{PUMP}").json()
    assert got == twin.get("acme", PUMP) and got["live"]["quality"]["figure"] == 100.0
    assert loaded.get("/api/v1/acme/assets", params={"state": "alarm"}).json() == twin.search("acme", state="alarm")
    assert loaded.get("/api/v1/acme/types").json() == twin.types("acme")
    assert loaded.get("/api/v1/acme/sites").json() == twin.children("acme", None)


def test_other_tenants_see_nothing(loaded: TestClient) -> None:
    assert loaded.get(f"/api/v1/rival/assets/{PUMP}").status_code == 404
    assert loaded.get("/api/v1/rival/assets").json()["total"] == 0
    assert loaded.get("/api/v1/nobody/assets").status_code == 404
    assert loaded.get("/api/v1/acme/assets", headers={"Authorization": "Bearer wrong"}).status_code == 401


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse a Server-Sent Events stream into {id, event, data} messages."""
    message: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if message:
                yield message
            message = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            message[key] = value


def next_event(stream: Iterator[dict[str, str]], kind: str) -> dict[str, str]:
    for message in stream:
        if message.get("event") == kind:
            return message
    raise AssertionError(f"stream ended before a {kind} event")


def test_sse_filters_by_subtree_and_resumes(loaded: TestClient, live_server: str) -> None:
    def write(tag: str, t: str, v: float) -> None:
        r = httpx.post(f"{live_server}/api/v1/acme/points", headers=AUTH, json=[{"tag": tag, "time": t, "value": v}])
        assert r.status_code == 200

    url = f"{live_server}/api/v1/acme/events"
    params = {"under": PUMP, "kinds": "values"}
    with httpx.Client(timeout=10) as http:
        with http.stream("GET", url, params=params, headers=AUTH) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            stream = sse_events(resp)
            assert next_event(stream, "hello")["id"]
            write("ulsan/cdu/P-101B/PT", "2024-03-01T00:00:00Z", 5.0)  # another subtree: not sent
            write("ulsan/cdu/P-101A/PT", "2024-03-01T00:00:00Z", 6.0)
            first = next_event(stream, "values")
            data = orjson.loads(first["data"])
            assert data["path"] == PUMP and data["signals"]["discharge_pressure"][0][1] == 6.0
        write("ulsan/cdu/P-101A/PT", "2024-03-01T00:00:01Z", 7.0)  # while disconnected
        with http.stream("GET", url, params=params, headers={**AUTH, "Last-Event-ID": first["id"]}) as resp:
            missed = orjson.loads(next_event(sse_events(resp), "values")["data"])
            assert missed["signals"]["discharge_pressure"][0][1] == 7.0
        with http.stream("GET", url, params=params, headers={**AUTH, "Last-Event-ID": "deadbeef-1"}) as resp:
            assert next_event(sse_events(resp), "reset")
        assert http.get(url, params={"kinds": "gossip"}, headers=AUTH).status_code == 422
        assert http.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.get(f"{live_server}/api/v1/nobody/events", headers=AUTH).status_code == 404


def test_websocket_stream(loaded: TestClient) -> None:
    with loaded.websocket_connect(f"/api/v1/acme/events/ws?under={PUMP}&kinds=values,state", headers=AUTH) as ws:
        loaded.post(
            "/api/v1/acme/points", json=[{"tag": "ulsan/cdu/P-101A/PT", "time": "2024-03-01T00:00:00Z", "value": 36.0}]
        )
        kinds: set[str] = set()
        while {"values", "state"} - kinds:
            kinds |= {e["kind"] for e in orjson.loads(ws.receive_text())}
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        loaded.websocket_connect("/api/v1/acme/events/ws", headers={"Authorization": "Bearer nope"}) as ws,
    ):
        ws.receive_text()
    assert info.value.status_code == 401  # refused before the handshake, as an HTTP request is
