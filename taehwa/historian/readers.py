"""Reading points from files and request bodies: CSV, Parquet, Arrow IPC streams and JSON.

The CLI's `taehwa ingest` and the HTTP API's `POST …/points` share these, so both accept the same formats and
give the same errors.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from taehwa.core.errors import InvalidInput, Location, UnsupportedMediaType

PARQUET_CHUNK_ROWS = 4_000_000
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _delimiter(head: bytes) -> str:
    first = head.split(b"\n", 1)[0]
    counts = {d: first.count(d.encode()) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def read_csv(data: bytes | Path, *, source: str) -> pa.Table:
    """A CSV (comma, semicolon or tab separated, with a header row) as an Arrow table."""
    if isinstance(data, bytes):
        head = data[:4096]
    else:
        with open(data, "rb") as fh:
            head = fh.read(4096)
    if not head.strip():
        raise InvalidInput("the CSV is empty; it needs a header row", where=Location(source))
    delimiter = _delimiter(head)
    text_cols = {"tag": pa.string(), "quality": pa.string(), "Tag": pa.string(), "Quality": pa.string()}
    try:
        return pacsv.read_csv(
            io.BytesIO(data) if isinstance(data, bytes) else str(data),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=text_cols, strings_can_be_null=True, null_values=["", "null", "NULL"]
            ),
        )
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"cannot read CSV: {_arrow_msg(exc)}", where=Location(source)) from None


def _arrow_msg(exc: Exception) -> str:
    return str(exc).split("\n")[0].replace("CSV parse error: ", "")


def iter_file_tables(path: Path) -> Iterator[tuple[pa.Table, int, int]]:
    """Chunks of a CSV or Parquet file with progress (rows done, rows in all)."""
    if not path.exists():
        raise InvalidInput("file not found", where=Location(str(path)))
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"not a readable Parquet file: {_arrow_msg(exc)}", where=Location(str(path))) from None
        total = pf.metadata.num_rows
        done = 0
        for batch in pf.iter_batches(batch_size=PARQUET_CHUNK_ROWS):
            done += batch.num_rows
            yield pa.Table.from_batches([batch]), done, total
        if total == 0:
            yield pf.schema_arrow.empty_table(), 0, 0
    elif suffix in (".csv", ".txt", ".tsv"):
        table = read_csv(path, source=path.name)
        yield table, table.num_rows, table.num_rows
    else:
        raise InvalidInput(f"unknown file type {suffix!r}; use .csv or .parquet", where=Location(str(path)))


def read_arrow_stream(body: bytes, *, source: str = "body") -> pa.Table:
    """An Arrow IPC stream body as a table, fully validated: a malformed body (offsets past the data, bad UTF-8,
    lengths that lie) is refused here, because Arrow's kernels trust what they are given and crashed the server
    on such a table."""
    try:
        table = pa.ipc.open_stream(body).read_all()
        table.validate(full=True)
        return table
    except (
        pa.ArrowInvalid,
        pa.ArrowNotImplementedError,
        pa.ArrowTypeError,
        pa.ArrowIndexError,
        pa.ArrowCapacityError,
        pa.ArrowMemoryError,
        OSError,
        ValueError,
    ) as exc:
        raise InvalidInput(f"not a valid Arrow IPC stream: {_arrow_msg(exc)}", where=Location(source)) from None


def read_json_points(body: bytes, *, source: str = "body") -> pa.Table | list[Any]:
    """JSON: a list of points, {"points": [...]}, or columns {"tag": [...], "time": [...], "value": [...]}."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc}", where=Location(source)) from None
    if isinstance(doc, dict) and "points" in doc:
        extra = set(doc) - {"points"}
        if extra:
            raise InvalidInput(f"unknown key(s) {sorted(extra)} beside 'points'", where=Location(source))
        doc = doc["points"]
    if isinstance(doc, list):
        return _json_rows(doc, source)
    if isinstance(doc, dict):
        lengths = {k: len(v) for k, v in doc.items() if isinstance(v, list)}
        if len(lengths) != len(doc):
            raise InvalidInput("a column body maps each column name to a list", where=Location(source))
        if len(set(lengths.values())) > 1:
            raise InvalidInput(f"columns have different lengths: {lengths}", where=Location(source))
        try:
            return pa.table({k: pa.array(v) for k, v in doc.items()})
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.table(
                {k: pa.array([None if x is None else str(x) for x in v], pa.string()) for k, v in doc.items()}
            )
    raise InvalidInput("expected a list of points or an object of columns", where=Location(source))


def _json_rows(rows: list[Any], source: str) -> pa.Table | list[Any]:
    """Rows of points to columns fast; odd rows go through the generic path, which names the bad row."""
    if not rows:
        return []
    try:
        if all(type(r) is dict and len(r) <= 4 for r in rows):
            tags = [r["tag"] for r in rows]
            times = [r["time"] for r in rows]
            values = [r["value"] for r in rows]
            columns: dict[str, Any] = {"tag": tags, "time": times, "value": values}
            if any("quality" in r for r in rows):
                columns["quality"] = [r.get("quality", 0) for r in rows]
            if all(set(r) <= {"tag", "time", "value", "quality"} for r in rows):
                return pa.table({k: pa.array(v) for k, v in columns.items()})
    except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    return rows


def read_body(body: bytes, content_type: str, *, max_bytes: int) -> pa.Table | list[Any]:
    """A request body in JSON, CSV or Arrow IPC, chosen by its content type."""
    from taehwa.core.errors import PayloadTooLarge

    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body of {len(body)} bytes is over the limit of {max_bytes}", where="body")
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("application/json", ""):
        return read_json_points(body)
    if kind in ("text/csv", "application/csv"):
        return read_csv(body, source="body")
    if kind in (ARROW_STREAM, "application/vnd.apache.arrow.file"):
        return read_arrow_stream(body)
    raise UnsupportedMediaType(
        f"content type {kind!r} is not read here; send application/json, text/csv or {ARROW_STREAM}",
        where="Content-Type",
    )
