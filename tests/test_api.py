"""The HTTP API: auth, tenants, JSON/CSV/Arrow bodies, query formats, and a clear error for each bad request."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
from fastapi.testclient import TestClient

from taehwa.api.app import create_app
from taehwa.core.settings import Settings
from taehwa.historian.readers import ARROW_STREAM
from taehwa.server.platform import Platform
from tests.conftest import TOKEN

POINTS = [
    {"tag": "cdu/P-101/flow", "time": "2024-03-01T00:00:00Z", "value": 1.5},
    {"tag": "cdu/P-101/flow", "time": "2024-03-01T00:00:01Z", "value": 2.5, "quality": "uncertain"},
]
RANGE = {"start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00Z"}


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    body: bytes = sink.getvalue().to_pybytes()
    return body


def test_auth_is_required(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    r = client.get("/api/v1/acme/tags", headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = client.get("/api/v1/acme/tags", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["message"] == "invalid token"


def test_json_write_and_read_back(client: TestClient) -> None:
    r = client.post("/api/v1/acme/points", json=POINTS)
    assert r.status_code == 200 and r.json() == {"stored": 2, "tags": 1}
    r = client.get("/api/v1/acme/points", params={"tags": "cdu/P-101/flow", **RANGE})
    body = r.json()
    assert body["count"] == 2
    assert body["points"][1] == {
        "tag": "cdu/P-101/flow",
        "time": "2024-03-01T00:00:01+00:00",
        "value": 2.5,
        "quality": "uncertain",
    }
    latest = client.get("/api/v1/acme/tags/latest").json()
    assert latest["points"][0]["value"] == 2.5


def test_csv_and_arrow_bodies_and_outputs(client: TestClient) -> None:
    csv = "tag,time,value\na/1,2024-03-01T00:00:00Z,1\na/1,2024-03-01T00:00:30Z,3\n"
    assert client.post("/api/v1/acme/points", content=csv, headers={"Content-Type": "text/csv"}).json()["stored"] == 2
    table = pa.table(
        {
            "tag": ["a/2"] * 3,
            "time": pa.array([0, 1, 2], pa.int64()).cast(pa.timestamp("s", "UTC")),
            "value": [1.0, 2.0, 3.0],
        }
    )
    r = client.post("/api/v1/acme/points", content=arrow_body(table), headers={"Content-Type": ARROW_STREAM})
    assert r.json()["stored"] == 3
    r = client.get(
        "/api/v1/acme/points", params={"tags": "a/1", **RANGE, "every": "1m", "agg": "avg,count", "format": "arrow"}
    )
    got = pa.ipc.open_stream(r.content).read_all()
    assert got.column("avg").to_pylist() == [2.0] and got.column("count").to_pylist() == [2.0]
    r = client.get("/api/v1/acme/points", params={"tags": "a/1", **RANGE, "format": "csv"})
    assert pacsv.read_csv(io.BytesIO(r.content)).num_rows == 2
    r = client.get(
        "/api/v1/acme/points",
        params={
            "tags": "a/1",
            "start": "2024-03-01T00:00:00Z",
            "end": "2024-03-01T00:00:30Z",
            "step": "15s",
            "method": "linear",
            "align": "true",
        },
    )
    assert r.json()["columns"]["a/1"] == [1.0, 2.0, 3.0]


def test_bad_requests_say_what_and_where(client: TestClient) -> None:
    def post(body: bytes | str, ctype: str = "application/json") -> dict[str, str]:
        r = client.post("/api/v1/acme/points", content=body, headers={"Content-Type": ctype})
        assert r.status_code >= 400
        return {"status": str(r.status_code), **r.json()}

    assert post("{not json")["message"].startswith("not valid JSON")
    bad = post('[{"tag":"a","time":"2024-03-01T00:00:00Z","value":"x"}]')
    assert bad["status"] == "422" and bad["where"] == "body, row 1, column 'value'"
    nan = post("tag,time,value\na,2024-03-01T00:00:00Z,1\na,2024-03-01T00:00:01Z,nan\n", "text/csv")
    assert "not finite" in nan["message"] and nan["where"] == "body, row 2, column 'value'"
    assert post("tag,time\na,2024-03-01T00:00:00Z\n", "text/csv")["where"] == "body"
    assert post("<xml/>", "application/xml")["status"] == "415"
    assert post(b"not arrow", ARROW_STREAM)["message"].startswith("not a valid Arrow IPC stream")
    assert post("")["message"].startswith("empty body")
    assert post('[{"tag":"a","time":"when?","value":1}]')["where"] == "body, row 1, column 'time'"
    assert client.get("/api/v1/acme/tags").json()["count"] == 0  # nothing of any of these was stored


def test_body_size_limit(platform: object, client: TestClient) -> None:
    big = "x" * (300 * 1024 * 1024)
    r = client.post("/api/v1/acme/points", content=big[:10], headers={"Content-Length": str(len(big))})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_unknown_tenant_and_isolation(client: TestClient) -> None:
    r = client.post("/api/v1/nobody/points", json=POINTS)
    assert r.status_code == 404 and r.json()["message"] == "unknown tenant 'nobody'"
    client.post("/api/v1/rival/points", json=[{"tag": "secret/recipe", "time": "2024-03-01T00:00:00Z", "value": 7}])
    r = client.get("/api/v1/acme/points", params={"tags": "secret/recipe", **RANGE})
    assert r.status_code == 404
    assert client.get("/api/v1/acme/tags/latest").json()["count"] == 0
    assert client.get("/api/v1/acme/tags").json()["count"] == 0


def test_tag_metadata_and_tenants(client: TestClient) -> None:
    r = client.patch(
        "/api/v1/acme/tags/cdu/P-101/pressure",
        json={"unit": "bar", "eng_low": 0, "eng_high": 40, "interval_s": 1, "attributes": {"loop": "A"}},
    )
    assert r.status_code == 200 and r.json()["unit"] == "bar"
    assert client.get("/api/v1/acme/tags/cdu/P-101/pressure").json()["attributes"] == {"loop": "A"}
    r = client.patch("/api/v1/acme/tags/cdu/P-101/pressure", json={"eng_low": 50})
    assert r.status_code == 422 and "must be below high" in r.json()["message"]
    r = client.patch("/api/v1/acme/tags/cdu/P-101/pressure", json={"colour": "red"})
    assert r.status_code == 422
    assert client.get("/api/v1/acme/tags/none/such").status_code == 404
    assert client.post("/api/v1/tenants", json={"id": "Bad Id"}).status_code == 422
    assert client.post("/api/v1/tenants", json={"id": "shipyard"}).status_code == 201
    assert client.post("/api/v1/tenants", json={"id": "shipyard"}).status_code == 409
    assert {"acme", "rival", "shipyard"} <= {t["id"] for t in client.get("/api/v1/tenants").json()}


def test_query_parameter_errors(client: TestClient) -> None:
    client.post("/api/v1/acme/points", json=POINTS)
    r = client.get("/api/v1/acme/points", params={"tags": "cdu/P-101/flow", **RANGE, "every": "1m", "step": "1s"})
    assert r.status_code == 422
    r = client.get("/api/v1/acme/points", params={"tags": "cdu/P-101/flow", "start": "soon", "end": "later"})
    assert r.status_code == 422 and r.json()["where"] == "start"
    r = client.get("/api/v1/acme/points", params={"tags": "cdu/P-101/flow", **RANGE, "format": "xml"})
    assert r.status_code == 422


def test_openapi_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/{tenant}/points" in spec["paths"]
    assert "/api/v1/{tenant}/tags/latest" in spec["paths"]


def test_rate_limit_per_caller(settings: Settings) -> None:
    p = Platform(settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3}), background=False)
    try:
        with TestClient(create_app(p)) as c:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            codes = [c.get("/api/v1/tenants", headers=auth).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            r = c.get("/api/v1/tenants", headers=auth)
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"] == "too_many_requests"
            # another caller (anonymous, by address) has its own bucket: refused for its credentials, not its rate
            assert c.get("/api/v1/tenants").status_code == 401
    finally:
        p.close()
