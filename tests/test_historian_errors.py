"""Errors carry a structured location (file, line, row, column, field) beside their `where` text: the file readers
and the plant-file loader fill it, and the API's error body shows it as `location`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

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
