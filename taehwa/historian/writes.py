"""The write path: one funnel for every write, the write-ahead log and buffer for small batches, sorted day files
for large ones, and the flush that moves the buffer into files.

A batch is checked whole before anything is stored (`normalize`), given a sequence number, then either appended to
the log and the in-memory buffer (small writes) or written straight to sorted day files (large writes). Either
way it is on disk, fsynced, when the call returns. A rewrite of (tag, time) replaces the old point: the highest
sequence number wins, and within one batch the last row.

Who may write, and the audit record of a write, are the historian's (`store.Historian`): this module stores.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import Conflict, StorageFull, Unavailable
from taehwa.core.settings import Settings
from taehwa.historian.batches import by_tag_id, day_parts, strict_order
from taehwa.historian.catalog import TagCatalog
from taehwa.historian.durable import is_disk_full
from taehwa.historian.files import DAY_US, discard_files, write_day_files
from taehwa.historian.fulldisk import FullDisk
from taehwa.historian.manifest import DataFile
from taehwa.historian.normalize import normalize, window_us
from taehwa.historian.state import BUFFER_SCHEMA, StoreState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    """What a write stored."""

    points: int
    tags: int
    seq: int


class Writes:
    """Stores checked batches of one historian (the writer) and flushes its buffer into day files.

    `wake` is set when the buffer is full, for the maintenance thread to flush it."""

    def __init__(
        self, settings: Settings, state: StoreState, catalog: TagCatalog, disk: FullDisk, wake: threading.Event
    ) -> None:
        self.settings = settings
        self.state = state
        self.catalog = catalog
        self.disk = disk
        self.wake = wake
        self._listeners: list[Callable[[str, pa.Table], None]] = []

    # -- input ---------------------------------------------------------------------------------------------
    def normalize(self, data: Any, *, source: str = "input", layout: str = "auto", first_row: int = 1) -> pa.Table:
        """Check input against the schema and the accepted time window (see `normalize.normalize`)."""
        earliest, latest = window_us(self.settings.earliest_time, self.settings.future_tolerance_s)
        return normalize(
            data, source=source, earliest_us=earliest, latest_us=latest, layout=layout, first_row=first_row
        )

    def read_file(
        self, path: Path, *, layout: str = "auto", progress: Callable[[int, int], None] | None = None
    ) -> list[pa.Table]:
        """A CSV or Parquet file (long or wide), checked in chunks for memory; rows are named as counted from the
        file's start. Chunks with no points are left out."""
        from taehwa.historian.readers import iter_file_tables

        tables: list[pa.Table] = []
        for chunk, done, total in iter_file_tables(path):
            first_row = done - chunk.num_rows + 1
            tables.append(self.normalize(chunk, source=path.name, layout=layout, first_row=first_row))
            if progress:
                progress(done, total)
        return [t for t in tables if t.num_rows]

    # -- listeners -----------------------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[str, pa.Table], None]) -> None:
        """Call `listener(tenant, points)` after every stored write (see `Historian.add_listener`)."""
        self._listeners.append(listener)

    def _notify(self, tenant: str, tables: list[pa.Table], history: bool = False) -> None:
        if history:  # a backfill's points are history: the live state needs each tag's newest alone
            tables = [_newest_rows(pa.concat_tables(tables) if len(tables) > 1 else tables[0])]
        for listener in self._listeners:
            for table in tables:
                try:
                    listener(tenant, table.select(["tag", "time", "value", "quality"]))
                except Exception:
                    log.exception("a write listener failed")

    # -- storing -------------------------------------------------------------------------------------------
    def store(self, tenant: str, tables: list[pa.Table], *, history: bool = False) -> WriteResult:
        """Store checked tables (store schema) as one batch: through the log and buffer when small, straight to
        day files when `buffer_max_points` or more. The caller has checked who writes and runs this under the
        full-disk guard."""
        if sum(t.num_rows for t in tables) >= self.settings.buffer_max_points:
            return self._store_direct(tenant, tables, history)
        return self._store_buffered(tenant, tables[0] if len(tables) == 1 else pa.concat_tables(tables), history)

    def _store_buffered(self, tenant: str, table: pa.Table, history: bool = False) -> WriteResult:
        """A small batch: appended to the log and the buffer."""
        state = self.state
        ids, n_tags = self.catalog.ensure_column(tenant, table.column("tag"))
        tag_ids = pa.array(ids, pa.int64())
        with state.write_lock:
            state.seq += 1
            seq = state.seq
            n = table.num_rows
            batch = pa.table(
                {
                    "tag_id": tag_ids,
                    "tag": table.column("tag"),
                    "time": table.column("time"),
                    "value": table.column("value"),
                    "quality": table.column("quality"),
                    "seq": pa.array(np.full(n, seq, dtype=np.int64)),
                },
                schema=BUFFER_SCHEMA,
            )
            tenants = pa.array([tenant], pa.string()).take(np.zeros(n, np.int64))
            state.wal.append(batch.add_column(0, "tenant", tenants))
            state.buffer_add(tenant, batch)
            state.note_days(tenant, table.column("time"))
            full = state.buffer_points >= self.settings.buffer_max_points
        if full:
            self.wake.set()
        self._notify(tenant, [table], history)
        return WriteResult(n, n_tags, seq)

    def _store_direct(self, tenant: str, tables: list[pa.Table], history: bool = False) -> WriteResult:
        """Large writes go straight to sorted day files (no log needed: the manifest commit is the ack).

        The chunks are one batch with one seq: DuckDB sorts them together, so a file's points land in one file
        per day rather than one per chunk.
        """
        state = self.state
        # one hashing pass per table (its names and each row's code at once), then the catalog over the few
        # distinct names: hashing millions of strings twice (unique, then index_in) cost a tenth of the write
        encoded = [pc.dictionary_encode(t.column("tag").combine_chunks()) for t in tables]
        all_names = pc.unique(pa.concat_arrays([e.dictionary for e in encoded]))
        id_values = pa.array(self.catalog.ensure_column(tenant, all_names)[0], pa.int64())
        with_ids = [
            t.append_column(
                "tag_id", pc.take(pc.take(id_values, pc.index_in(e.dictionary, value_set=all_names)), e.indices)
            )
            for t, e in zip(tables, encoded, strict=True)
        ]
        batch = pa.concat_tables(with_ids)
        n = batch.num_rows
        batch = batch.append_column("rn", pa.array(np.arange(n, dtype=np.int64)))
        seq = state.next_seq()
        span = pc.min_max(pa.concat_arrays([c.cast(pa.int64()) for t in tables for c in t.column("time").chunks]))
        lo, hi = int(span["min"].as_py()), int(span["max"].as_py())
        stats = None
        if lo // DAY_US == hi // DAY_US:  # one day: no need to ask DuckDB for per-day figures
            tag_span = pc.min_max(id_values)
            stats = [(lo // DAY_US, lo, hi, int(tag_span["min"].as_py()), int(tag_span["max"].as_py()), seq)]
        con = state.connect()
        view = f"bulk_{threading.get_ident()}"
        source = f"(SELECT tag_id, tag, time, value, quality, {seq}::BIGINT AS seq, rn FROM {view})"
        order = strict_order(batch)
        if order == "time":  # every tag at each instant: a stable sort by tag id (a radix sort) is the files' order
            batch = by_tag_id(batch)
            order = "tag"
        dedup = "none" if order else "rn"
        version = state.manifest(tenant).version + 1
        added: list[DataFile] = []
        try:
            # one pass splits the batch by day (a point repeats only within its day), then each day's rows alone
            # are sorted into their file: a year of one tag was 365 scans of the whole batch, one per day
            for part, part_stats in day_parts(batch, seq, stats):
                con.register(view, part)
                added += write_day_files(
                    con,
                    source,
                    state.storage,
                    tenant,
                    version,
                    dedup=dedup,
                    stats=part_stats,
                    presorted=order == "tag",
                    values=part.column("value"),
                )
            state.latest.merge_table(tenant, batch, seq=seq)
        except BaseException:
            discard_files(state.storage, tenant, added)
            raise
        finally:
            con.unregister(view)
        state.commit(tenant, added, set())
        with state.write_lock:
            for table in tables:
                state.note_days(tenant, table.column("time"))
        self._notify(tenant, tables, history)
        return WriteResult(n, len(all_names), seq)

    # -- flush ---------------------------------------------------------------------------------------------
    def flush(self) -> int:
        """Move buffered points into day files and drop the log segments that held them; returns the points
        moved. A tenant whose files cannot be written keeps its points in memory and the log for the next flush."""
        state = self.state
        with state.flush_lock:
            with state.write_lock:
                closed = state.wal.rotate()
                segments = [s for s in state.wal.segments() if closed is None or s <= closed]
                # points a failed flush left (storage down, say) go first: they are older than the buffer's
                frozen = {t: list(tables) for t, tables in state.frozen.items()}
                for tenant, tables in state.buffers.items():
                    frozen.setdefault(tenant, []).extend(tables)
                state.frozen, state.buffers = frozen, {}
                state.buffer_points = 0
                state.buffer_since = None
            moved = 0
            failed: list[tuple[str, Exception]] = []
            con = state.connect()
            for tenant, tables in list(frozen.items()):
                try:
                    if tables:
                        moved += self._flush_tenant(con, tenant, tables)
                except (Conflict, Unavailable, OSError) as exc:
                    failed.append((tenant, exc))
                    continue
                with state.write_lock:
                    state.frozen.pop(tenant, None)
            if failed:  # the log keeps every point until all are in files; the next flush tries again
                name, error = failed[0]
                raise self._flush_failed(name, error) from error
            state.wal.remove(segments)
            if moved:
                self.disk.space_back()
            return moved

    def _flush_failed(self, name: str, error: Exception) -> StorageFull | Unavailable:
        """The error a failed flush raises: StorageFull, and writes refused, on a full disk."""
        if isinstance(error, StorageFull) or is_disk_full(error):
            head = (
                error.message.partition(":")[0]
                if isinstance(error, StorageFull)
                else "the disk holding the historian's data files is full"
            )
            err = StorageFull(
                f"{head}: tenant {name!r}'s points stay in the write-ahead log and memory "
                "until a flush succeeds (writes resume once space is freed)",
                where="disk",
                path=getattr(error, "path", None) or str(self.disk.root),
            )
            self.disk.mark(err)
            return err
        return Unavailable(
            f"flush of tenant {name!r} failed, its points stay in the log and memory until a flush succeeds: {error}",
            where="historian",
        )

    def _flush_tenant(self, con: duckdb.DuckDBPyConnection, tenant: str, tables: list[pa.Table]) -> int:
        """Write one tenant's buffered points as day files and commit them."""
        state = self.state
        table = pa.concat_tables(tables)
        table = table.append_column("rn", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        view = f"flush_{threading.get_ident()}"
        con.register(view, table)
        try:
            files = write_day_files(con, view, state.storage, tenant, state.manifest(tenant).version + 1, dedup="rn")
        finally:
            con.unregister(view)
        state.commit(tenant, files, set())
        return int(table.num_rows)


def _newest_rows(table: pa.Table) -> pa.Table:
    """Each tag's newest row of a write (the last written of equal times), in the order of their tags' first rows:
    one pass for each tag's newest time, then a sort of the few rows at it."""
    codes = pc.dictionary_encode(table.column("tag").combine_chunks()).indices.to_numpy()
    times = table.column("time").cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
    newest = np.full(int(codes.max()) + 1, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(newest, codes, times)
    rows = np.flatnonzero(times == newest[codes])
    _, last_first = np.unique(codes[rows][::-1], return_index=True)  # the last written row at each tag's newest time
    return table.take(pa.array(np.sort(rows[::-1][last_first])))
