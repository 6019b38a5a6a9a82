"""Answers in the formats every route offers: JSON records, CSV or an Arrow IPC stream."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
from fastapi.responses import Response

from taehwa.historian.readers import ARROW_STREAM
from taehwa.historian.schema import Quality

QUALITY_NAMES = [q.name.lower() for q in Quality]


def table_response(table: pa.Table, fmt: str, extra: dict[str, Any] | None = None) -> Response:
    """A result table as JSON records, CSV or an Arrow IPC stream."""
    if fmt == "arrow":
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)
    if fmt == "csv":
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        return Response(sink.getvalue().to_pybytes(), media_type="text/csv")
    rows = table.to_pylist()
    if "quality" in table.column_names:
        for row in rows:
            q = row["quality"]
            row["quality"] = QUALITY_NAMES[q] if q is not None else None
    body = {**(extra or {}), "count": len(rows), "points": rows}
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def split_tags(tags: list[str]) -> list[str]:
    """Tags given as repeated parameters and/or comma-separated lists."""
    return [t for item in tags for t in item.split(",") if t]
