"""Turn any accepted input into one canonical Arrow table (tag, time, value, quality), or say what is wrong.

Accepted: Arrow tables and record batches, pandas and polars frames, and iterables of points (dicts or tuples),
in long format (tag/time/value[/quality]) or wide format (a time column and one column per tag). Every error
names the row (1-based, data rows) and the column, so nothing of a bad batch is stored and the fix is obvious.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import InvalidInput, Location
from taehwa.core.names import TAG_PATTERN, check_tag
from taehwa.core.timeutil import MAX_US, MIN_US, show_us, to_us
from taehwa.historian.schema import STORE_SCHEMA, Quality

TIME_NAMES = ("time", "timestamp", "datetime", "ts")
LONG_COLUMNS = {"tag", "time", "value", "quality"}


def _where(source: str, row: int | None = None, column: str | None = None) -> Location:
    """Where a problem is: the input (a file's name, `body`), its row (1-based) and column, when known."""
    return Location(source or None, row=row, column=column or None)


def to_arrow(data: Any, *, source: str = "input") -> pa.Table:
    """Any accepted tabular input as an Arrow table (no checks yet)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        table: pa.Table = data.to_arrow()
        return table
    if isinstance(data, Mapping):
        raise InvalidInput("expected rows of points, got a single mapping", where=_where(source))
    if isinstance(data, Iterable) and not isinstance(data, str | bytes):
        return _rows_to_arrow(data, source)
    raise InvalidInput(f"cannot read points from a {type(data).__name__}", where=_where(source))


def _rows_to_arrow(rows: Iterable[Any], source: str) -> pa.Table:
    tags: list[Any] = []
    times: list[Any] = []
    values: list[Any] = []
    qualities: list[Any] = []
    for i, row in enumerate(rows, start=1):
        if isinstance(row, Mapping):
            extra = set(row) - LONG_COLUMNS
            if extra:
                raise InvalidInput(
                    f"unknown field(s) {sorted(extra)}; a point has tag, time, value, quality", where=_where(source, i)
                )
            for key in ("tag", "time", "value"):
                if key not in row:
                    raise InvalidInput(f"missing field {key!r}", where=_where(source, i))
            tags.append(row["tag"])
            times.append(row["time"])
            values.append(row["value"])
            qualities.append(row.get("quality", 0))
        elif isinstance(row, tuple | list) and len(row) in (3, 4):
            tags.append(row[0])
            times.append(row[1])
            values.append(row[2])
            qualities.append(row[3] if len(row) == 4 else 0)
        else:
            raise InvalidInput("a point is a mapping or a (tag, time, value[, quality]) tuple", where=_where(source, i))
    arrays: dict[str, list[Any]] = {"tag": tags, "time": times, "value": values, "quality": qualities}
    columns = {}
    for name, items in arrays.items():
        try:
            columns[name] = pa.array(items)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([None if x is None else str(x) for x in items], pa.string())
    return pa.table(columns)


def wide_to_long(table: pa.Table, *, source: str = "input", time_column: str | None = None) -> pa.Table:
    """One column per tag beside a time column, turned into long (tag, time, value) rows."""
    time_col = time_column or _find_time_column(table)
    if time_col is None:
        raise InvalidInput(f"no time column; name one of {list(TIME_NAMES)}", where=_where(source))
    tag_cols = [c for c in table.column_names if c != time_col]
    if not tag_cols:
        raise InvalidInput("a wide table needs at least one tag column beside the time", where=_where(source))
    n = table.num_rows
    times = table.column(time_col)
    parts = []
    for col in tag_cols:
        values = table.column(col)
        part = pa.table(
            {
                "tag": pa.array([col] * n, pa.string()),
                "time": times,
                "value": values,
                "__row": pa.array(range(1, n + 1), pa.int64()),
            }
        )
        parts.append(part.filter(pc.is_valid(values)))  # an empty cell in a wide file is no reading
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    try:  # tag columns of different kinds (numbers in one, text in another): checked as text, row by row
        return pa.concat_tables([p.set_column(2, "value", p.column("value").cast(pa.string())) for p in parts])
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise InvalidInput("the tag columns hold values that are not numbers or text", where=_where(source)) from None


def _find_time_column(table: pa.Table) -> str | None:
    lowered = {c.lower(): c for c in table.column_names}
    for name in TIME_NAMES:
        if name in lowered:
            return str(lowered[name])
    return None


def is_long(table: pa.Table) -> bool:
    """Long format has a tag column; anything else is read as wide."""
    return "tag" in {c.lower() for c in table.column_names}


def normalize(
    data: Any,
    *,
    source: str = "input",
    earliest_us: int | None = None,
    latest_us: int | None = None,
    layout: str = "auto",
    first_row: int = 1,
) -> pa.Table:
    """Check and convert input to the store schema; raises InvalidInput naming row and column.

    `first_row`: the number of the table's first row in its source (a file read in chunks names rows as counted
    from the file's start)."""
    table = to_arrow(data, source=source)
    if layout not in ("auto", "long", "wide"):
        raise InvalidInput(f"layout must be auto, long or wide, got {layout!r}", where=_where(source))
    wide_time: str | None = None
    if layout == "wide" or (layout == "auto" and not is_long(table)):
        wide_time = _find_time_column(table)
        table = wide_to_long(table, source=source)
        rows = table.column("__row")
        table = table.drop_columns(["__row"])
    else:
        table = _long_columns(table, source)
        rows = None
    if table.num_rows == 0:
        return STORE_SCHEMA.empty_table()

    def locate(index: int, column: str) -> Location:
        """Where row `index` of the long table came from, in the caller's terms."""
        if rows is None:
            return _where(source, index + first_row, column)
        # wide input: values sit in a column named after the tag
        name = str(table.column("tag")[index].as_py()) if column == "value" else (wide_time or column)
        return _where(source, int(rows[index].as_py()) + first_row - 1, name)

    tag = _check_tags(table.column("tag"), source, locate)
    time = _check_times(table.column("time"), source, locate, earliest_us, latest_us)
    value = _check_values(table.column("value"), source, locate)
    quality = (
        _check_quality(table.column("quality"), source, locate)
        if "quality" in table.column_names
        else pa.array([0] * table.num_rows, pa.uint8())
    )
    return pa.Table.from_arrays([tag, time, value, quality], schema=STORE_SCHEMA)


def _long_columns(table: pa.Table, source: str) -> pa.Table:
    renamed = []
    for c in table.column_names:
        low = c.lower()
        renamed.append("time" if low in TIME_NAMES else low)
    unknown = [orig for orig, new in zip(table.column_names, renamed, strict=True) if new not in LONG_COLUMNS]
    if unknown:
        raise InvalidInput(
            f"unknown column(s) {unknown}; long format has tag, time, value and optional quality", where=_where(source)
        )
    if len(set(renamed)) != len(renamed):
        raise InvalidInput(f"duplicate columns in {table.column_names}", where=_where(source))
    table = table.rename_columns(renamed)
    for col in ("tag", "time", "value"):
        if col not in table.column_names:
            raise InvalidInput(f"missing column {col!r}", where=_where(source))
    return table


def _first_bad(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first true in a boolean mask, or None."""
    index = pc.index(mask, True).as_py()
    return None if index is None or index < 0 else int(index)


def _first_null(col: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first null, or None (no pass over the rows when the arrays say they hold none)."""
    return _first_bad(pc.is_null(col)) if col.null_count else None


def _first_outside(values: pa.ChunkedArray | pa.Array, lo: float | None, hi: float | None) -> int | None:
    """Index of the first value below `lo` or above `hi`, or None: one pass for the extremes, and a second
    only to find the row of a value outside."""
    span = pc.min_max(values)
    low, high = span["min"].as_py(), span["max"].as_py()
    if low is None or ((lo is None or low >= lo) and (hi is None or high <= hi)):
        return None
    outside = pc.less(values, lo) if hi is None else pc.greater(values, hi) if lo is None else None
    if outside is None:
        outside = pc.or_(pc.less(values, lo), pc.greater(values, hi))
    return _first_bad(outside)


def _check_tags(col: pa.ChunkedArray, source: str, row_of: Any) -> pa.Array:
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InvalidInput(f"tags must be text, got {col.type}", where=_where(source, None, "tag"))
    col = col.cast(pa.string())
    bad = _first_null(col)
    if bad is not None:
        raise InvalidInput("missing tag", where=row_of(bad, "tag"))
    unique = pc.unique(col)
    # in C first (RE2); only names it refuses go through `check_tag`, which decides (and says where)
    fast = pc.and_not(
        pc.match_substring_regex(unique, TAG_PATTERN.pattern),
        pc.or_(pc.match_substring(unique, "//"), pc.ends_with(unique, "/")),
    )
    for name in unique.filter(pc.invert(fast)).to_pylist():
        try:
            check_tag(name)
        except InvalidInput as exc:
            idx = _first_bad(pc.equal(col, name))
            raise InvalidInput(exc.message, where=row_of(idx or 0, "tag")) from None
    return col.combine_chunks()


def _check_times(
    col: pa.ChunkedArray, source: str, row_of: Any, earliest_us: int | None, latest_us: int | None
) -> pa.Array:
    where_col = "time"
    bad = _first_null(col)
    if bad is not None:
        raise InvalidInput("missing time", where=row_of(bad, where_col))
    typ = col.type
    if pa.types.is_timestamp(typ):
        _check_range(col.cast(pa.timestamp(typ.unit)).cast(pa.int64()), _UNIT_US[typ.unit], row_of, where_col)
        out = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).cast(pa.timestamp("us"))  # naive: UTC
    elif pa.types.is_date(typ):
        days = col.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
        _check_range(days, 86_400 * 1_000_000, row_of, where_col)
        out = col.cast(pa.timestamp("us"))
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ):
        if pa.types.is_integer(typ):  # range first: an integer past 2^53 has no exact float (a 500 before)
            _check_range(
                col.cast(pa.int64(), safe=False) if typ.bit_width < 64 or pa.types.is_signed_integer(typ) else col,
                1_000_000,
                row_of,
                where_col,
            )
        seconds = col.cast(pa.float64(), safe=False)
        bad = _first_bad(pc.invert(pc.is_finite(seconds)))
        if bad is not None:
            raise InvalidInput("time is not a finite number of epoch seconds", where=row_of(bad, where_col))
        _check_range(seconds, 1_000_000, row_of, where_col)
        out = pc.round(pc.multiply(seconds, 1_000_000.0)).cast(pa.int64()).cast(pa.timestamp("us"))
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        out = _parse_time_strings(col.cast(pa.string()), source, row_of)
    else:
        raise InvalidInput(
            f"time must be ISO 8601 text, a timestamp or epoch seconds, got {typ}",
            where=_where(source, None, where_col),
        )
    out = out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
    as_int = out.cast(pa.int64())
    _check_range(as_int, 1, row_of, where_col)
    if earliest_us is not None:
        bad = _first_outside(as_int, earliest_us, None)
        if bad is not None:
            raise InvalidInput(
                f"time {show_us(as_int[bad].as_py())} is before the accepted window", where=row_of(bad, where_col)
            )
    if latest_us is not None:
        bad = _first_outside(as_int, None, latest_us)
        if bad is not None:
            raise InvalidInput(
                f"time {show_us(as_int[bad].as_py())} is too far in the future", where=row_of(bad, where_col)
            )
    return out


_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}  # ns: every int64 is inside the years 1 to 9999


def _check_range(values: pa.ChunkedArray | pa.Array, us_per_unit: int, row_of: Any, where_col: str) -> None:
    """Refuse times outside the years 1 to 9999 (what a datetime holds) before any conversion can overflow:
    Arrow times at ±2^62 µs and JSON `time: 1e300` were 500s."""
    lo, hi = MIN_US / us_per_unit, MAX_US / us_per_unit
    if pa.types.is_integer(values.type):
        lo, hi = -(-MIN_US // us_per_unit), MAX_US // us_per_unit
    bad = _first_outside(values, lo, hi)
    if bad is not None:
        raise InvalidInput("time is outside the years 1 to 9999", where=row_of(bad, where_col))


def _parse_time_strings(col: pa.ChunkedArray, source: str, row_of: Any) -> pa.Array:
    """Fast path through Arrow's ISO 8601 cast; on mixed or bad text, parse row by row to find the culprit."""
    try:
        return col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return col.cast(pa.timestamp("us"))  # naive text: taken as UTC
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = []
    for i, text in enumerate(col.to_pylist()):
        try:
            out.append(to_us(text))
        except InvalidInput as exc:
            raise InvalidInput(exc.message, where=row_of(i, "time")) from None
    return pa.array(out, pa.int64()).cast(pa.timestamp("us"))


def _check_values(col: pa.ChunkedArray, source: str, row_of: Any) -> pa.Array:
    typ = col.type
    if pa.types.is_boolean(typ) or pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        values = col.cast(pa.float64())
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_null(typ):
        values = _cast_text_values(col, source, row_of)
    else:
        raise InvalidInput(f"values must be numbers, got {typ}", where=_where(source, None, "value"))
    bad = _first_null(values)
    if bad is not None:
        raise InvalidInput("missing value", where=row_of(bad, "value"))
    finite = pc.is_finite(values)
    bad = None if pc.all(finite).as_py() else _first_bad(pc.invert(finite))
    if bad is not None:
        raise InvalidInput(
            f"value {values[bad].as_py()} is not finite (NaN and infinity are not stored)", where=row_of(bad, "value")
        )
    return values.combine_chunks()


def _cast_text_values(col: pa.ChunkedArray, source: str, row_of: Any) -> pa.ChunkedArray:
    if pa.types.is_null(col.type):
        raise InvalidInput("missing value", where=row_of(0, "value"))
    try:
        return col.cast(pa.float64())
    except pa.ArrowInvalid:
        pass
    # Find the first text that is not a number, with DuckDB's TRY_CAST (only on this error path).
    con = duckdb.connect()
    con.register("probe", pa.table({"v": col}))
    try:
        found = con.execute(
            "SELECT i, v FROM (SELECT row_number() OVER () AS i, v FROM probe) "
            "WHERE v IS NOT NULL AND TRY_CAST(v AS DOUBLE) IS NULL ORDER BY i LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    row = int(found[0]) - 1 if found else 0  # the row is named, its text is not: errors never echo a file's content
    raise InvalidInput("the value is not a number", where=row_of(row, "value"))


def _check_quality(col: pa.ChunkedArray, source: str, row_of: Any) -> pa.Array:
    typ = col.type
    if pa.types.is_integer(typ):
        ints = col.cast(pa.int64()).fill_null(0)
        small = pc.less_equal(ints, 2)
        if pc.all(small).as_py():
            return ints.cast(pa.uint8()).combine_chunks()
        out = []
        for i, v in enumerate(ints.to_pylist()):
            try:
                out.append(int(Quality.parse(v)))
            except InvalidInput as exc:
                raise InvalidInput(exc.message, where=row_of(i, "quality")) from None
        return pa.array(out, pa.uint8())
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(col.cast(pa.string()).fill_null("good")))
        lookup = pa.array(["good", "uncertain", "bad", "0", "1", "2"])
        codes = pc.index_in(text, value_set=lookup)
        bad = _first_bad(pc.is_null(codes))
        if bad is not None:
            raise InvalidInput("quality must be good, uncertain or bad", where=row_of(bad, "quality"))
        return pc.if_else(pc.greater_equal(codes, 3), pc.subtract(codes, 3), codes).cast(pa.uint8()).combine_chunks()
    if pa.types.is_null(typ):
        return pa.array([0] * len(col), pa.uint8())
    raise InvalidInput(f"quality must be good, uncertain or bad, got {typ}", where=_where(source, None, "quality"))


def window_us(earliest: str, future_tolerance_s: float) -> tuple[int, int]:
    """The accepted time window: from the configured earliest time to now plus the tolerance."""
    now_us = to_us(datetime.now().astimezone())
    return to_us(earliest), now_us + int(future_tolerance_s * 1_000_000)
