"""Errors carry a structured location (file, line, row, column, field) beside their `where` text: the file readers
and the plant-file loader fill it, and the API's error body shows it as `location`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from taehwa.connectors.config import parse_connectors
from taehwa.core.errors import InvalidInput, Location, ValidationFailed
from taehwa.core.yamlio import load_yaml
from taehwa.historian import readers
from taehwa.historian.store import Historian
from taehwa.twin.model import parse_document


def test_a_location_reads_as_the_where_it_replaces() -> None:
    assert str(Location("body", row=1, column="value")) == "body, row 1, column 'value'"
    assert str(Location("plant.yaml", line=3, column=1)) == "plant.yaml, line 3, column 1"
    assert str(Location("spec.yaml", field="model.kind")) == "spec.yaml, model.kind"
    assert Location("body", row=2, column="time").to_dict() == {"file": "body", "row": 2, "column": "time"}
    err = InvalidInput("the value is not a number", where=Location("body", row=1, column="value"))
    assert (
        err.where == "body, row 1, column 'value'"
        and str(err) == "body, row 1, column 'value': the value is not a number"
    )
    assert err.to_dict() == {
        "error": "invalid_input",
        "message": "the value is not a number",
        "where": "body, row 1, column 'value'",
        "location": {"file": "body", "row": 1, "column": "value"},
    }
    plain = InvalidInput("name at least one tag", where="tags")
    assert plain.location is None and "location" not in plain.to_dict()


def test_rows_of_a_file_read_in_chunks_count_from_its_start(
    hist: Historian, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad row in the third chunk of a Parquet file is named by its row in the file (no text parsed back)."""
    monkeypatch.setattr(readers, "PARQUET_CHUNK_ROWS", 2)
    times = [f"2024-03-01T00:00:0{i}Z" for i in range(6)]
    long = tmp_path / "long.parquet"
    pq.write_table(pa.table({"tag": ["p/1"] * 6, "time": times, "value": ["1", "2", "3", "4", "x", "6"]}), long)
    with pytest.raises(InvalidInput) as info:
        hist.ingest_file("acme", long)
    assert info.value.location == Location("long.parquet", row=5, column="value")
    assert info.value.where == "long.parquet, row 5, column 'value'"
    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"time": times, "p/1": [1.0] * 6, "p/2": ["1", "2", "3", "4", "5", "bad"]}), wide)
    with pytest.raises(InvalidInput) as info:
        hist.ingest_file("acme", wide)
    assert info.value.location == Location("wide.parquet", row=6, column="p/2")
    assert hist.tags("acme") == []  # nothing of either file was stored


def test_plant_files_name_file_and_line() -> None:
    text = "types: {}\nassets:\n  - id: a\n    type: Site\n  - id: a\n    type: Site\n"
    with pytest.raises(ValidationFailed) as info:
        parse_document(load_yaml(text, source="plant.yaml"), source="plant.yaml")
    assert info.value.locations[0] == Location("plant.yaml", line=5)
    assert info.value.where == "plant.yaml, line 5"
    assert info.value.to_dict()["problems"][0]["location"] == {"file": "plant.yaml", "line": 5}
    with pytest.raises(InvalidInput) as bad:
        load_yaml("a: [1, 2\n", source="plant.yaml")
    assert bad.value.location is not None and bad.value.location.file == "plant.yaml"
    assert bad.value.location.line is not None and bad.value.location.column is not None


def test_the_api_error_body_shows_the_location(client: TestClient) -> None:
    r = client.post(
        "/api/v1/acme/points",
        content="tag,time,value\nx,2024-05-01T00:00:00Z,abc\n",
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 422
    assert r.json() == {
        "error": "invalid_input",
        "message": "the value is not a number",
        "where": "body, row 1, column 'value'",
        "location": {"file": "body", "row": 1, "column": "value"},
    }


def test_schema_problems_are_structured_and_their_text_derived() -> None:
    """A connector document's problems (pydantic's) each hold the field's path (the union's tag left out), a
    Location with the YAML line the field is on, and the `where` text made from them as before."""
    text = "name: plc-1\nprotocol: modbus\nitems:\n  - address: 70000\n    tag: x\n"
    text += "  - address: 1\n    tag: y\n    type: int8\n"
    with pytest.raises(ValidationFailed) as info:
        parse_connectors(load_yaml(text, source="plc.yaml"), source="connector")
    got = {p.path: p for p in info.value.details}
    assert set(got) == {("items", 0, "address"), ("items", 1, "type")}
    assert got["items", 0, "address"].location == Location("connector", line=4, field="items[0].address")
    assert got["items", 1, "type"].location == Location("connector", line=8, field="items[1].type")
    assert [w for w, _ in info.value.problems] == ["connector.items[0].address", "connector.items[1].type"]
    body = info.value.to_dict()
    assert body["location"] == {"file": "connector", "line": 4, "field": "items[0].address"}
    assert body["problems"][1]["location"] == {"file": "connector", "line": 8, "field": "items[1].type"}
    with pytest.raises(ValidationFailed) as plain:  # a document without lines (a JSON body): the field alone
        parse_connectors({"name": "Not A Name!", "protocol": "modbus", "items": []}, source="connector")
    assert plain.value.details[0].location == Location("connector", field="name")
    assert plain.value.details[0].path == ("name",)


def test_the_cli_says_a_server_error_as_it_says_its_own(tmp_path: Path) -> None:
    """One rendering: an error raised in the CLI's process and the same error sent back as the API's body read
    the same (file:line:column, row and column, field), and a body in the request is named by the command's file."""
    from taehwa.cli.common import error_from_body, said

    with pytest.raises(InvalidInput) as yaml_error:
        load_yaml("a: [1, 2\n", source="plant.yaml")
    local = [yaml_error.value, InvalidInput("the value is not a number", where=Location("d.csv", row=2, column="v"))]
    with pytest.raises(ValidationFailed) as schema:
        parse_connectors(load_yaml("name: Not A Name!\nprotocol: modbus\nitems: []\n", source="c"), source="c")
    local.append(schema.value)
    for exc in local:
        back = error_from_body(exc.to_dict())
        assert type(back) is type(exc) and back.location == exc.location and said(back) == said(exc)
    assert said(local[0]).startswith("plant.yaml:2:1: ")
    assert said(local[1]) == "d.csv, row 2, column 'v': the value is not a number"
    assert said(local[2]).startswith("c:1, field name: ")
    sent = InvalidInput("the value is not a number", where=Location("body", row=2, column="v")).to_dict()
    assert said(error_from_body(sent, body_name="d.csv")) == said(local[1])


def test_an_error_body_is_read_as_untrusted() -> None:
    """Parts of a hostile or broken error body of the wrong type are left out, never raised on or trusted."""
    from taehwa.cli.common import error_from_body

    assert Location.from_dict({"file": 5, "line": "3", "row": True, "column": "v", "evil": 1}) == Location(column="v")
    assert Location.from_dict(["file"]) is None and Location.from_dict({"line": None}) is None
    back = error_from_body({"error": "not_found", "message": 7, "where": ["x"], "location": "plant.yaml"})
    assert back.kind == "not_found" and back.location is None and back.where is None
    broken = error_from_body({"error": "validation_failed", "problems": [3, {"where": 1, "location": {"line": 2}}]})
    assert isinstance(broken, ValidationFailed) and broken.locations == [None, Location(line=2)]
    assert error_from_body("oops").kind == "error"
