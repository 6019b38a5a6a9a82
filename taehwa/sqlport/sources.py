"""The views a SQL client sees, filled per query from the tenant's services: points (the historian's files and
buffer, read through an Arrow dataset so DuckDB's time and tag filters prune day files and row groups), latest,
tags, assets, signals, alerts; and the historian's own downsampling, time-weighted average and interpolation as
table functions.

Nothing here reads a file by a name a client gives: the day files a snapshot names are handed to DuckDB as a
dataset object, and the client's own connection has no file access at all.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from taehwa.core.timeutil import from_us
from taehwa.historian.query import Snapshot
from taehwa.historian.store import Historian
from taehwa.sqlport.shortcut import Downsampling
from taehwa.tenancy.tenants import TenantService

TIME = pa.timestamp("us")  # naive UTC, as PostgreSQL's `timestamp`: drivers and Grafana read it as UTC
# (time stays naive in DuckDB too: pyarrow cannot prune a UTC-aware filter against the files' naive statistics. A
# filter against a timestamptz, such as now(), casts the column and so reads every day: write now()::timestamp)
FILE_SCHEMA = pa.schema(
    [
        ("tag_id", pa.int64()),
        ("tag", pa.string()),
        ("time", TIME),
        ("value", pa.float64()),
        ("quality", pa.uint8()),
        ("seq", pa.int64()),
    ]
)
BUFFER_SCHEMA = pa.schema([*FILE_SCHEMA, pa.field("rn", pa.int64())])
SCHEMAS: dict[str, pa.Schema] = {
    "latest": pa.schema([("tag", pa.string()), ("time", TIME), ("value", pa.float64()), ("quality", pa.uint8())]),
    "tags": pa.schema(
        [
            ("tag", pa.string()),
            ("unit", pa.string()),
            ("description", pa.string()),
            ("eng_low", pa.float64()),
            ("eng_high", pa.float64()),
            ("interval_s", pa.float64()),
            ("created_at", TIME),
            ("updated_at", TIME),
        ]
    ),
    "assets": pa.schema(
        [
            ("path", pa.string()),
            ("parent", pa.string()),
            ("type", pa.string()),
            ("name", pa.string()),
            ("description", pa.string()),
        ]
    ),
    "signals": pa.schema([("asset", pa.string()), ("signal", pa.string()), ("tag", pa.string())]),
    "alerts": pa.schema(
        [
            ("id", pa.int64()),
            ("rule", pa.string()),
            ("asset", pa.string()),
            ("tag", pa.string()),
            ("severity", pa.string()),
            ("state", pa.string()),
            ("message", pa.string()),
            ("value", pa.float64()),
            ("count", pa.int64()),
            ("raised_at", TIME),
            ("last_at", TIME),
            ("resolved_at", TIME),
            ("shelved_until", TIME),
        ]
    ),
}
VIEWS = ("points", *SCHEMAS)
_POINTS_VIEW = """
CREATE OR REPLACE TEMP VIEW points AS
SELECT tag, time, value, quality FROM _thw_clean
UNION ALL
SELECT tag, time, value, quality FROM (
    SELECT tag, time, value, quality, seq, 0::BIGINT AS rn FROM _thw_dirty
    UNION ALL SELECT tag, time, value, quality, seq, rn FROM _thw_buffer)
QUALIFY row_number() OVER (PARTITION BY tag, time ORDER BY seq DESC, rn DESC) = 1
"""
_MACROS = (
    "CREATE TEMP MACRO downsample(tag_names, start_time, end_time, every, agg := 'avg') AS TABLE "
    "SELECT r.tag AS tag, r.time AS time, r.value AS value FROM (SELECT unnest(_thw_downsample("
    "CAST(tag_names AS VARCHAR), epoch_us(CAST(start_time AS TIMESTAMP)), epoch_us(CAST(end_time AS TIMESTAMP)), "
    "CAST(every AS VARCHAR), CAST(agg AS VARCHAR))) AS r)",
    "CREATE TEMP MACRO interpolate(tag_names, start_time, end_time, step, method := 'previous') AS TABLE "
    "SELECT r.tag AS tag, r.time AS time, r.value AS value, r.quality AS quality FROM (SELECT unnest("
    "_thw_interpolate(CAST(tag_names AS VARCHAR), epoch_us(CAST(start_time AS TIMESTAMP)), "
    "epoch_us(CAST(end_time AS TIMESTAMP)), CAST(step AS VARCHAR), CAST(method AS VARCHAR))) AS r)",
)
_DOWNSAMPLED = "STRUCT(tag VARCHAR, time TIMESTAMP, value DOUBLE)[]"
_INTERPOLATED = "STRUCT(tag VARCHAR, time TIMESTAMP, value DOUBLE, quality UTINYINT)[]"


class Twin(Protocol):
    """What the views need of the twin service."""

    def plant(self, tenant: str) -> Any: ...


class Alerts(Protocol):
    """What the views need of the alert book."""

    def list(self, tenant: str, *, limit: int = 1000) -> Sequence[Mapping[str, Any]]: ...


def _naive(value: datetime | str | None) -> datetime | None:
    """A time as naive UTC (the views' `timestamp`)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _mentions(sql: str) -> set[str]:
    """The view names a query's text mentions (a view it does not mention is left empty for it)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)}
    found = {v for v in VIEWS if v in words}
    if words & {"downsample", "interpolate"}:
        found.add("points")
    if words & {"query_table", "duckdb_views", "information_schema"}:  # a view named by a string: fill all
        found |= set(VIEWS)
    return found


def point_dataset(snap: Snapshot, paths: list[str], files: list[Any], scale: int = -1) -> ds.Dataset:
    """The day files as one dataset, each with its time and tag id range as a partition expression, so a filter
    on time skips the files of other days without opening them. All hold their values one way (`scale`: as
    DECIMAL(18, scale), or DOUBLE when -1): DuckDB converts decimals exactly, where Arrow's cast would not."""
    parts = [
        (ds.field("time") >= pa.scalar(f.min_time, pa.int64()).cast(TIME))
        & (ds.field("time") <= pa.scalar(f.max_time, pa.int64()).cast(TIME))
        & (ds.field("tag_id") >= f.min_tag)
        & (ds.field("tag_id") <= f.max_tag)
        for f in files
    ]
    schema = FILE_SCHEMA if scale < 0 else FILE_SCHEMA.set(3, pa.field("value", pa.decimal128(18, scale)))
    return ds.FileSystemDataset.from_paths(
        paths, schema=schema, format=ds.ParquetFileFormat(), filesystem=pafs.LocalFileSystem(), partitions=parts
    )


def _by_scale(files: list[Any]) -> dict[int, list[Any]]:
    """Files grouped by how they hold their values (`DataFile.scale`), in a stable order."""
    out: dict[int, list[Any]] = {}
    for f in files:
        out.setdefault(int(getattr(f, "scale", -1)), []).append(f)
    return dict(sorted(out.items()))


def _points_view(clean: list[str], dirty: list[str], buffered: bool) -> str:
    """The points view over these registered sources (one per way of holding values, each cast to DOUBLE):
    clean days as they are, dirty days and the buffer through the duplicate filter."""
    plain = " UNION ALL ".join(
        f"SELECT tag, time, CAST(value AS DOUBLE) AS value, quality FROM {n}" for n in clean or ["_thw_clean"]
    )
    if not dirty and not buffered:
        return f"CREATE OR REPLACE TEMP VIEW points AS {plain}"
    mixed = " UNION ALL ".join(
        f"SELECT tag, time, CAST(value AS DOUBLE) AS value, quality, seq, 0::BIGINT AS rn FROM {n}"
        for n in dirty or ["_thw_dirty"]
    )
    return (
        f"CREATE OR REPLACE TEMP VIEW points AS {plain} UNION ALL SELECT tag, time, value, quality FROM ("
        f"{mixed} UNION ALL SELECT tag, time, value, quality, seq, rn FROM _thw_buffer) "
        "QUALIFY row_number() OVER (PARTITION BY tag, time ORDER BY seq DESC, rn DESC) = 1"
    )


class TenantSources:
    """Fills one client connection's views with one tenant's data, query by query, as its caller."""

    def __init__(
        self, *, historian: Historian, twin: Twin, alerts: Alerts, tenants: TenantService, tenant: str
    ) -> None:
        """The services the views read (each checks the caller itself), the tenant book (the tenant must still
        exist) and the tenant they are read for."""
        self.historian, self.twin, self.alerts, self.tenant = historian, twin, alerts, tenant
        self.tenants = tenants
        self._registered: dict[str, object] = {}  # view source → what it holds now (None: empty)

    def require(self) -> None:
        """Refuse (NotFound) when the tenant is gone, or (Forbidden) when the caller may no longer read it."""
        self.tenants.require(self.tenant)

    def _register(self, con: duckdb.DuckDBPyConnection, name: str, key: object, make: Callable[[], Any]) -> None:
        """Register a view's source unless it holds the same already (a registration costs a millisecond or
        more; most queries name one view, and a store at rest keeps its files)."""
        if key is not None and self._registered.get(name, "unset") == key:
            return
        con.register(name, make())
        self._registered[name] = key

    def install(self, con: duckdb.DuckDBPyConnection, as_caller: Callable[[Callable[[], Any]], Any]) -> None:
        """Create the views (empty) and the functions on a fresh connection; `as_caller` runs a call as the
        connection's caller (DuckDB may call a function on a thread of its own)."""
        for name in ("_thw_clean", "_thw_dirty"):
            self._register(con, name, "empty", FILE_SCHEMA.empty_table)
        self._register(con, "_thw_buffer", "empty", BUFFER_SCHEMA.empty_table)
        for name, schema in SCHEMAS.items():
            self._register(con, f"_thw_{name}", "empty", schema.empty_table)
            con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM _thw_{name}")
        con.execute(_POINTS_VIEW)
        self._registered["points"] = _POINTS_VIEW
        hist, tenant = self.historian, self.tenant

        def downsample(tags: str, start: int, end: int, every: str, agg: str) -> list[dict[str, Any]]:
            table = as_caller(lambda: hist.downsample(tenant, _names(tags), from_us(start), from_us(end), every, [agg]))
            return _rows(table, {"tag": "tag", "time": "time", "value": agg})

        def interpolate(tags: str, start: int, end: int, step: str, method: str) -> list[dict[str, Any]]:
            table = as_caller(
                lambda: hist.interpolate(tenant, _names(tags), from_us(start), from_us(end), step, method)
            )
            return _rows(table, {"tag": "tag", "time": "time", "value": "value", "quality": "quality"})

        args: list[Any] = ["VARCHAR", "BIGINT", "BIGINT", "VARCHAR", "VARCHAR"]
        con.create_function("_thw_downsample", downsample, args, _DOWNSAMPLED, side_effects=True)
        con.create_function("_thw_interpolate", interpolate, args, _INTERPOLATED, side_effects=True)
        for macro in _MACROS:
            con.execute(macro)

    def downsampled(self, shape: Downsampling) -> pa.Table:
        """A recognised downsampling query's buckets, from the historian as the caller (tag, time, aggregates)."""
        self.require()
        return self.historian.downsample(
            self.tenant,
            list(shape.tags),
            from_us(shape.start_us),
            from_us(shape.end_us),
            f"{shape.every_us}us",
            shape.aggregates,
        )

    def fill(self, con: duckdb.DuckDBPyConnection, sql: str, stack: contextlib.ExitStack) -> None:
        """Fill the views this query names with the tenant's data now, and empty the others; file paths stay
        valid (and remote copies cached) until `stack` closes. Runs as the caller."""
        wanted = _mentions(sql)
        if "points" in wanted:
            self._fill_points(con, stack)
        else:
            for name in ("_thw_clean", "_thw_dirty"):
                self._register(con, name, "empty", FILE_SCHEMA.empty_table)
            self._register(con, "_thw_buffer", "empty", BUFFER_SCHEMA.empty_table)
        for name, schema in SCHEMAS.items():
            if name in wanted:
                table = self._table(name)
                self._register(con, f"_thw_{name}", None, lambda t=table: t)  # type: ignore[misc]
            else:
                self._register(con, f"_thw_{name}", "empty", schema.empty_table)

    def _fill_points(self, con: duckdb.DuckDBPyConnection, stack: contextlib.ExitStack) -> None:
        """The snapshot's files and buffer: days with one file and nothing buffered are read as they are; the
        others go through the duplicate filter (newest write wins), as the historian's own queries do."""
        self.require()
        snap = self.historian.snapshot(self.tenant)
        buffer = snap.buffer
        dirty_days = {d for d in (f.day for f in snap.files) if sum(1 for g in snap.files if g.day == d) > 1}
        if buffer is not None and buffer.num_rows:
            days = pc.unique(pc.strftime(buffer.column("time"), "%Y-%m-%d")).to_pylist()
            dirty_days |= set(days)
        clean = [f for f in snap.files if f.day not in dirty_days]
        dirty = [f for f in snap.files if f.day in dirty_days]
        rels = [f"{snap.tenant}/{f.path}" for f in clean + dirty]
        paths = stack.enter_context(snap.storage.local_paths(rels)) if rels else []
        remote = snap.storage.remote  # cached copies may be evicted between queries: register them anew
        where = dict(zip((f.path for f in clean + dirty), paths, strict=True))
        names: dict[str, list[str]] = {"clean": [], "dirty": []}
        for kind, files in (("clean", clean), ("dirty", dirty)):
            for scale, group in _by_scale(files).items():
                name = f"_thw_{kind}_{scale + 1}"  # _1 … _10: DECIMAL(18, 0 … 9); _0: DOUBLE
                self._register(
                    con,
                    name,
                    None if remote else ("files", tuple(group)),
                    lambda g=group, k=scale: point_dataset(snap, [where[f.path] for f in g], g, k),  # type: ignore[misc]
                )
                names[kind].append(name)
        buffered = buffer is not None and buffer.num_rows > 0
        if buffer is not None and buffered:
            self._register(con, "_thw_buffer", None, lambda: buffer.select(BUFFER_SCHEMA.names).cast(BUFFER_SCHEMA))
        else:
            self._register(con, "_thw_buffer", "empty", BUFFER_SCHEMA.empty_table)
        # a store at rest (every day one file, nothing buffered) needs no duplicate filter: a plain view plans faster
        view = _points_view(names["clean"], names["dirty"], buffered)
        if self._registered.get("points") != view:
            con.execute(view)
            self._registered["points"] = view

    def _table(self, name: str) -> pa.Table:
        schema = SCHEMAS[name]
        rows: list[dict[str, Any]]
        if name == "latest":
            table = self.historian.latest(self.tenant)
            return table.set_column(1, "time", table.column("time").cast(TIME)).cast(schema)
        if name == "tags":
            rows = [
                {
                    "tag": t.name,
                    "unit": t.unit,
                    "description": t.description,
                    "eng_low": t.eng_low,
                    "eng_high": t.eng_high,
                    "interval_s": t.interval_s,
                    "created_at": _naive(t.created_at),
                    "updated_at": _naive(t.updated_at),
                }
                for t in self.historian.tags(self.tenant, limit=1_000_000)
            ]
        elif name in ("assets", "signals"):
            plant = self.twin.plant(self.tenant)
            if name == "assets":
                rows = [
                    {"path": a.path, "parent": a.parent, "type": a.type, "name": a.name, "description": a.description}
                    for a in plant.assets.values()
                ]
            else:
                rows = [
                    {"asset": a.path, "signal": s, "tag": t}
                    for a in plant.assets.values()
                    for s, t in sorted(plant.signal_tags(a).items())
                ]
        else:
            rows = [
                {
                    **{k: d.get(k) for k in schema.names},
                    **{k: _naive(d.get(k)) for k in ("raised_at", "last_at", "resolved_at", "shelved_until")},
                }
                for d in self.alerts.list(self.tenant, limit=100_000)
            ]
        return pa.Table.from_pylist(rows, schema=schema)


def _names(tags: str) -> list[str]:
    """Tag names given to a table function: one name, or several separated by commas."""
    return [t.strip() for t in str(tags).split(",") if t.strip()]


def _rows(table: pa.Table, columns: dict[str, str]) -> list[dict[str, Any]]:
    """A historian answer as the struct list a table function unnests (times as naive UTC)."""
    if "time" in table.column_names:
        table = table.set_column(table.column_names.index("time"), "time", table.column("time").cast(TIME))
    picked = {out: table.column(src).to_pylist() for out, src in columns.items()}
    return [dict(zip(picked, values, strict=True)) for values in zip(*picked.values(), strict=True)]
