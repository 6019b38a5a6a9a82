"""Answers in the formats every route offers: JSON records, CSV or an Arrow IPC stream."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from taehwa.core.errors import PayloadTooLarge
from taehwa.core.yamlio import MAX_DOCUMENT_BYTES, load_json
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


async def read_bounded(request: Request, max_bytes: int, *, where: str = "body") -> bytes:
    """The request body, refused (413) as soon as it passes `max_bytes`, whatever Content-Length claims."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(f"body of {length} bytes is over the limit of {max_bytes}", where=where)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body is over the limit of {max_bytes} bytes", where=where)
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse a body of this content type as JSON (no content type included)."""
    if not content_type:
        return True
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class BoundedRoute(APIRoute):
    """A route whose JSON body (the documents FastAPI parses for a route: specs, connectors, types, rules) is read
    through the bounded parser first: at most MAX_DOCUMENT_BYTES (413) and MAX_DEPTH levels (422), so a huge or
    100k-deep document is refused in milliseconds instead of reaching the standard library's recursive parser
    (RecursionError) or a model validator. Routes that read their own body (bulk points) are untouched."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, behind the bounded read when the route takes a JSON body."""
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def bounded(request: Request) -> Response:
            if _is_json(request.headers.get("content-type")):
                body = await read_bounded(request, MAX_DOCUMENT_BYTES)
                # Starlette keeps a read body and its parsed JSON here; FastAPI then uses them as they are
                request._body = body
                if body:
                    request._json = load_json(body, source="body")
            return await handler(request)

        return bounded
