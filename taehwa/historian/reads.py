"""The read path: what one query sees (the committed files and the points still in memory), raw ranges,
downsampled buckets, each tag's value at a time, values on a grid (long or wide), and the last values.

Who may read is the historian's (`store.Historian`): this module answers.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import InvalidInput
from taehwa.core.names import check_tenant
from taehwa.core.settings import Settings
from taehwa.core.timeutil import from_us, parse_duration, to_us
from taehwa.historian.catalog import TagCatalog
from taehwa.historian.query import QueryEngine, Snapshot
from taehwa.historian.schema import OUT_TIME
from taehwa.historian.state import StoreState

Grid = tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]  # times, and each tag's values and qualities


class Reads:
    """Answers queries over `state`; `before_query(tenant)` first takes what other processes committed (the
    follower's `Follower.before_query`)."""

    def __init__(
        self,
        settings: Settings,
        state: StoreState,
        queries: QueryEngine,
        catalog: TagCatalog,
        before_query: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.state = state
        self.queries = queries
        self.catalog = catalog
        self.before_query = before_query
        self._spans: dict[int, tuple[weakref.ref[pa.Table], tuple[int, int, int, int]]] = {}
        self._spans_lock = threading.Lock()

    def snapshot(self, tenant: str) -> Snapshot:
        """The files and buffered points one query sees."""
        self.before_query(tenant)
        tables = self.state.buffered(tenant)
        buffer = spans = None
        if tables:
            buffer = pa.concat_tables(tables)
            buffer = buffer.append_column("rn", pa.array(np.arange(buffer.num_rows, dtype=np.int64)))
            spans = self._batch_spans(tables)
        files = tuple(self.state.manifest(tenant).files)
        return Snapshot(self.state.storage, check_tenant(tenant), files, buffer, spans)

    def _batch_spans(self, tables: list[pa.Table]) -> np.ndarray:
        """`Snapshot.spans` of buffered batches: each batch's figures are computed once, on its first query."""
        rows = np.cumsum([0] + [t.num_rows for t in tables])
        out = np.empty((len(tables), 6), np.int64)
        with self._spans_lock:
            memo = self._spans
            for k, table in enumerate(tables):
                got = memo.get(id(table))
                if got is None or got[0]() is not table:
                    got = (weakref.ref(table), _span(table))
                    memo[id(table)] = got
                out[k] = (rows[k], rows[k + 1], *got[1])
            for key in [key for key, (ref, _) in memo.items() if ref() is None]:  # flushed batches
                del memo[key]
        return out

    def _ids(self, tenant: str, tags: list[str] | str) -> dict[str, int]:
        names = [tags] if isinstance(tags, str) else list(tags)
        if not names:
            raise InvalidInput("name at least one tag", where="tags")
        return self.catalog.resolve(tenant, names)

    def read(
        self,
        tenant: str,
        tags: list[str] | str,
        start: Any,
        end: Any,
        *,
        limit: int | None = None,
        dictionary: bool = False,
    ) -> pa.Table:
        """Raw points in [start, end) (see `Historian.read`)."""
        ids = self._ids(tenant, tags)
        s, e = _range(start, end)
        return self.queries.raw(self.snapshot(tenant), ids, s, e, limit, dictionary=dictionary)

    def read_stream(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, batch_rows: int
    ) -> pa.RecordBatchReader:
        """Raw points in [start, end) as record batches (see `Historian.read_stream`)."""
        ids = self._ids(tenant, tags)
        s, e = _range(start, end)
        return self.queries.raw_stream(self.snapshot(tenant), ids, s, e, batch_rows)

    def downsample(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, every: Any, aggs: list[str] | str = "avg"
    ) -> pa.Table:
        """Buckets of `every` (see `Historian.downsample`)."""
        ids = self._ids(tenant, tags)
        s, e = _range(start, end)
        agg_list = [a.strip() for a in aggs.split(",")] if isinstance(aggs, str) else list(aggs)
        return self.queries.downsample(
            self.snapshot(tenant),
            list(ids.values()),
            s,
            e,
            parse_duration(every, field="every"),
            agg_list,
            names=list(ids),
        )

    def value_at(self, tenant: str, tags: list[str], at: Any) -> pa.Table:
        """Each tag's newest point at or before `at` (see `Historian.value_at`)."""
        ids = self._ids(tenant, tags)
        return self.queries.value_at(self.snapshot(tenant), list(ids.values()), to_us(at), self._lookback_us())

    def interpolate(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, step: Any, method: str = "previous"
    ) -> pa.Table:
        """A long table of each tag's value on the grid (see `Historian.interpolate`)."""
        ids = self._ids(tenant, tags)
        grid, series = self._on_grid(tenant, ids, start, end, step, method)
        times = _times(grid)
        parts = []
        for name, (values, quality) in series.items():
            parts.append(
                pa.table(
                    {
                        "tag": pa.repeat(pa.scalar(name, pa.string()), len(grid)),
                        "time": times,
                        "value": pa.array(values, pa.float64(), from_pandas=True),
                        "quality": pa.array(np.where(quality == 255, 0, quality), pa.uint8(), mask=quality == 255),
                    }
                )
            )
        return pa.concat_tables(parts)

    def align(
        self, tenant: str, tags: list[str], start: Any, end: Any, step: Any, method: str = "previous"
    ) -> pa.Table:
        """A wide table: time plus one column per tag on the same grid (see `Historian.align`)."""
        ids = self._ids(tenant, tags)
        grid, series = self._on_grid(tenant, ids, start, end, step, method)
        columns: dict[str, pa.Array] = {"time": _times(grid)}
        for name in ids:
            columns[name] = pa.array(series[name][0], pa.float64(), from_pandas=True)
        return pa.table(columns)

    def _on_grid(self, tenant: str, ids: dict[str, int], start: Any, end: Any, step: Any, method: str) -> Grid:
        """Each tag's values at start, start+step, … ≤ end (what `interpolate` and `align` lay out)."""
        s, e = _range(start, end)
        return self.queries.interpolate(
            self.snapshot(tenant), ids, s, e, parse_duration(step, field="step"), method, self._lookback_us()
        )

    def _lookback_us(self) -> int:
        return int(self.settings.interpolation_lookback_s * 1e6)

    def latest(self, tenant: str, tags: list[str] | None = None) -> pa.Table:
        """Newest point of each tag, from the cache (see `Historian.latest`)."""
        self.before_query(tenant)
        if tags:
            ids = self.catalog.resolve(tenant, list(tags))
            names = list(ids)
            found, points = self.state.latest.lookup(tenant, list(ids.values()))
            names = [n for n, f in zip(names, found.tolist(), strict=True) if f]
        else:
            points = self.state.latest.points(tenant)
            named = sorted((self.catalog.name(tenant, i), k) for k, i in enumerate(points.tag_id.tolist()))
            names = [n for n, _ in named]
            points = points.take(np.array([k for _, k in named], np.int64))
        return pa.table(
            {
                "tag": pa.array(names, pa.string()),
                "time": _times(points.time_us),
                "value": pa.array(points.value, pa.float64()),
                "quality": pa.array(points.quality, pa.uint8()),
            }
        )


def _span(table: pa.Table) -> tuple[int, int, int, int]:
    """A buffered batch's min and max time (µs) and min and max tag id."""
    if not table.num_rows:
        return (0, -1, 0, -1)  # meets nothing
    times = pc.min_max(table.column("time").cast(pa.int64()))
    ids = pc.min_max(table.column("tag_id"))
    return (
        int(times["min"].as_py()),
        int(times["max"].as_py()),
        int(ids["min"].as_py()),
        int(ids["max"].as_py()),
    )


def _range(start: Any, end: Any) -> tuple[int, int]:
    s, e = to_us(start, field="start"), to_us(end, field="end")
    if e <= s:
        raise InvalidInput(
            f"end ({from_us(e).isoformat()}) must be after start ({from_us(s).isoformat()})", where="end"
        )
    return s, e


def _times(us: np.ndarray | list[int]) -> pa.Array:
    """Microseconds since the epoch as the answers' time column (UTC)."""
    return pa.array(us, pa.int64()).cast(pa.timestamp("us")).cast(OUT_TIME)
