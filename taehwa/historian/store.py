"""The historian service: the one object every other part writes points into and reads them from.

Process model: one process writes (it holds an exclusive lock on the store); any number of processes read.
Readers never block the writer: data files are immutable, the manifest is replaced atomically, and files that
compaction replaces stay on disk for a grace period.

`Historian` decides who may write and read (tenancy) and records each write in the audit log; the work itself is
done by one part per job, built here from the same shared state (`state.StoreState`):

- `writes.Writes`: the write funnel, the write-ahead log and buffer, large batches straight to files, the flush;
- `reads.Reads`: what a query sees, raw ranges, buckets, values on a grid, last values;
- `follower.Follower`: a read-only node keeping up with the writer (and a writer with other writers' tenants);
- `maintenance.Maintenance`: compaction, summaries, retention and the background thread;
- `fulldisk.FullDisk`: writes refused while a disk they need is full.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from taehwa.core.errors import Conflict, InvalidInput, StorageFull, Unavailable
from taehwa.core.paths import WRITER_LOCK, historian_root
from taehwa.core.settings import Settings
from taehwa.historian.catalog import TagCatalog, TagInfo
from taehwa.historian.durable import is_disk_full
from taehwa.historian.follower import Follower
from taehwa.historian.fulldisk import FULL_PROBE_S, FullDisk
from taehwa.historian.latest import LatestCache
from taehwa.historian.leases import TenantLeases
from taehwa.historian.maintenance import Maintenance
from taehwa.historian.query import QueryEngine, Snapshot
from taehwa.historian.reads import Reads
from taehwa.historian.schema import STORE_SCHEMA
from taehwa.historian.state import StoreState
from taehwa.historian.storage import Storage
from taehwa.historian.summaries import Summaries
from taehwa.historian.wal import WriteAheadLog
from taehwa.historian.writes import WriteResult, Writes
from taehwa.migrate import make_engine
from taehwa.tenancy.audit import AuditLog, open_audit
from taehwa.tenancy.tenants import TenantService

log = logging.getLogger(__name__)


class StoreStats(TypedDict):
    """A tenant's store in figures (`Historian.stats`): a mapping, as the API and the CLI show it as JSON."""

    storage: str  # where the files are (no secrets)
    files: int  # data files in the manifest
    rows_in_files: int
    bytes: int
    buffered: int  # points still in memory and the write-ahead log
    days: int  # days with at least one file
    manifest_version: int


class Historian:
    """The time-series store of every tenant; open once per process (`readonly=True` for readers, `follow=True`
    for readers that keep up with a running writer)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        *,
        audit: AuditLog | None = None,
        tenants: TenantService | None = None,
        readonly: bool = False,
        background: bool = True,
        follow: bool = False,
    ) -> None:
        """`engine`, `audit`, `tenants`: the metadata database, audit log and tenancy the composition root built
        (`taehwa.server.platform`); a historian built alone (its own tests, `open_historian`) builds them itself."""
        self.settings = settings
        self.readonly = readonly or follow
        self.follow = follow  # a reader beside a running writer (an API worker): catches up before each query
        self.root = historian_root(settings)  # this process's own: log, lock, staging, cache
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fh: Any = None
        self._closed = False
        self.storage = Storage(
            self.root, settings.historian_url, cache_bytes=settings.historian_cache_bytes, writer=not self.readonly
        )
        if not self.readonly:
            self._take_writer_lock()  # before anything is read: a refused second writer opens nothing else
        partition = settings.writer_tenant_set
        self.leases = TenantLeases(
            self.storage, tenants=partition, shared=not self.readonly and (self.storage.remote or partition is not None)
        )
        self.engine = engine or make_engine(settings.metadata_url)
        self.audit = audit or open_audit(self.engine, settings)
        self.tenants = tenants or TenantService(self.engine, self.audit)
        self.catalog = TagCatalog(self.engine)
        self.queries = QueryEngine(
            settings.duckdb_threads, settings.max_query_points, summaries=Summaries(self.root / "_summaries")
        )
        self.latest_cache = LatestCache()
        self.wal = WriteAheadLog(self.root / "_wal")
        self.state = StoreState(self.storage, self.leases, self.queries.connection, self.latest_cache, self.wal)
        self.disk = FullDisk(self.root, settings.data_dir)
        wake = threading.Event()  # the buffer is full: the maintenance thread flushes it now
        self.writes = Writes(settings, self.state, self.catalog, self.disk, wake)
        self.follower = Follower(self.state, follow=follow, readonly=self.readonly)
        self.reads = Reads(settings, self.state, self.queries, self.catalog, self.follower.before_query)
        self.maintenance = Maintenance(
            settings, self.state, self.writes.flush, self.disk, self.tenants, wake, summaries=self.queries.summaries
        )
        if follow:
            self.follower.catch_up(force=True)
        else:
            self._load_state()
        if not self.readonly and background:
            self.maintenance.start()

    # -- start-up and shut-down ---------------------------------------------------------------------------
    def _take_writer_lock(self) -> None:
        path = self.root / WRITER_LOCK
        fh = open(path, "a+")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise Conflict(
                f"the store is held by {holder}; stop it, or send data to its HTTP API", where=str(self.root)
            ) from None
        fh.seek(0)
        fh.truncate()
        try:
            fh.write(f"pid {os.getpid()}")
            fh.flush()
        except OSError as exc:  # a full disk: the lock holds without the note of who holds it
            if not is_disk_full(exc):
                raise
        self._lock_fh = fh

    def _load_state(self) -> None:
        """Read manifests and latest snapshots, replay the write-ahead log, and (as writer) flush it."""
        state = self.state
        if not self.readonly:
            self.storage.clear_staging()  # files a crash left unpublished
        for tenant in self.storage.tenants():
            manifest = state.read_manifest(tenant)
            state.manifests[tenant] = manifest
            state.seq = max(state.seq, max((f.max_seq for f in manifest.files), default=0))
            state.load_latest(tenant, manifest)
            if not self.readonly and not self.storage.remote:
                shutil.rmtree(self.root / tenant / "_tmp", ignore_errors=True)  # where earlier versions staged
        # a writer of given tenants takes them at once; one still held elsewhere is taken when its lease lapses
        self.leases.renew(force=True)
        logged = self.wal.read_all()
        if logged.num_rows:
            state.seq = max(state.seq, int(pc.max(logged.column("seq")).as_py()))
            state.buffer_logged(logged)
        if not self.readonly and logged.num_rows:
            try:
                self.flush()
            except StorageFull as exc:  # start anyway: read-only until space is freed, the log keeps the points
                log.warning(
                    "starting read-only: %s; %d logged points stay in the write-ahead log (and are "
                    "answered from memory) until a flush succeeds",
                    exc.message,
                    logged.num_rows,
                )
        if not self.readonly:
            self.disk.check_at_start()

    def close(self) -> None:
        """Flush the buffer, stop maintenance and release the store."""
        if self._closed:
            return
        self._closed = True
        self.maintenance.stop()
        if not self.readonly:
            try:
                self.flush()
            except StorageFull as exc:  # the points stay in the log: the next start flushes them
                log.warning("the last flush failed, the points stay in the write-ahead log: %s", exc.message)
            except Unavailable:  # the points stay in the log: the next start flushes them
                log.exception("the last flush failed")
            self.wal.close()
            self.leases.release()
            if self._lock_fh is not None:
                fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
                self._lock_fh.close()
        self.storage.close()
        self.engine.dispose()

    def __enter__(self) -> Historian:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def full_reason(self) -> str | None:
        """Why writes are refused now (a disk they need is full), or None: what health checks show."""
        return self.disk.reason

    # -- writes: who may, then the write, then its audit record ----------------------------------------------
    def _check_writable(self) -> None:
        if self.readonly:
            raise Conflict("this historian was opened read-only", where="historian")
        if self._closed:
            raise Unavailable("the historian is closed", where="historian")

    def _require_write(self, tenant: str) -> None:
        """This historian writes, the caller may write the tenant, and this writer holds the tenant."""
        self._check_writable()
        self.tenants.require(tenant, "write")
        self.leases.require(tenant)

    def normalize(self, data: Any, *, source: str = "input", layout: str = "auto") -> pa.Table:
        """Check input against the schema and the accepted time window (see `normalize.normalize`)."""
        return self.writes.normalize(data, source=source, layout=layout)

    def write(self, tenant: str, data: Any, *, source: str = "input", layout: str = "auto") -> WriteResult:
        """Store points: Arrow, pandas or polars tables, or iterables of points (long or wide).

        All-or-nothing and durable when it returns. Tags are created on their first write.
        """
        self._require_write(tenant)
        table = self.normalize(data, source=source, layout=layout)
        return self.write_checked(tenant, table)

    def write_checked(self, tenant: str, table: pa.Table, *, history: bool = False) -> WriteResult:
        """Store a table already in the store schema (from `normalize`); a full disk is StorageFull (507).
        `history`: points recomputed for the past (a backfill): stored as any, but the write listeners (the twin,
        live analytics and scoring) hear only each tag's newest point, not the range again."""
        self._require_write(tenant)
        if table.num_rows == 0:
            return WriteResult(0, 0, self.state.seq)
        return self._store(tenant, [table], history=history)

    def ingest_file(
        self, tenant: str, path: Path, *, layout: str = "auto", progress: Callable[[int, int], None] | None = None
    ) -> WriteResult:
        """Ingest a CSV or Parquet file (long or wide) as one all-or-nothing batch, in chunks for memory."""
        self._require_write(tenant)
        tables = self.writes.read_file(path, layout=layout, progress=progress)
        if not tables:
            return WriteResult(0, 0, self.state.seq)
        return self._store(tenant, tables)

    def _store(self, tenant: str, tables: list[pa.Table], *, history: bool = False) -> WriteResult:
        """Store checked tables and record the write; both under the full-disk guard."""
        with self.disk.guard():
            result = self.writes.store(tenant, tables, history=history)
            self._audit_write(tenant, result)
        return result

    def _audit_write(self, tenant: str, result: WriteResult) -> None:
        """Record a stored write in the audit log; when the metadata database's disk is full the points are kept
        (they are durable already) and the answer says so: stored, but not audited (StorageFull)."""
        points, tags, seq = result.points, result.tags, result.seq
        try:
            self.audit.append(
                "points.write",
                tenant=tenant,
                target=f"{points} points in {tags} tags",
                after={"points": points, "tags": tags, "seq": seq},
            )
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            log.error(
                "tenant %r: write %d (%d points) stored but not audited: the metadata database's disk is full",
                tenant,
                seq,
                points,
            )
            raise StorageFull(
                f"the {points} points were stored (write {seq}), but the disk holding the metadata "
                "database is full, so the audit log could not record the write; writes are refused "
                "until space is freed (a retry stores the same points again, harmlessly)",
                where="disk",
                path=str(self.settings.data_dir),
            ) from exc

    def add_listener(self, listener: Callable[[str, pa.Table], None]) -> None:
        """Call `listener(tenant, points)` after every acknowledged write (points: tag, time, value, quality).

        This is how the twin's live state sees every point whatever path it came in by. A listener must be quick
        and must not raise; an exception is logged and does not undo the write.
        """
        self.writes.add_listener(listener)

    # -- flush, compaction, retention -----------------------------------------------------------------------
    def flush(self) -> int:
        """Move buffered points into day files and drop the log segments that held them."""
        return 0 if self.readonly else self.writes.flush()

    def compact(self, tenant: str | None = None, *, force: bool = True) -> int:
        """Merge each day's files into one sorted, duplicate-free file; returns how many days were merged.

        Without force, only days untouched for `compact_after_s` are merged (the background policy).
        """
        return 0 if self.readonly else self.maintenance.compact(tenant, force=force)

    def warm_summaries(self, budget: int = 8, *, force: bool = False) -> int:
        """Make the minute/hour summaries of up to `budget` quiet days (one file, untouched for `compact_after_s`)
        that lack one, so the first long trend after a day settles is as fast as the next (local stores only: on
        a remote one a summary is made when a query needs it); returns how many were made."""
        return self.maintenance.warm_summaries(budget, force=force)

    def apply_retention(self) -> int:
        """Drop whole day files older than each tenant's retention; returns the files dropped."""
        return self.maintenance.apply_retention()

    # -- queries: who may read, then the answer ----------------------------------------------------------------
    def snapshot(self, tenant: str) -> Snapshot:
        """The files and buffered points one query sees."""
        return self.reads.snapshot(tenant)

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
        """Raw points in [start, end): tag, time (UTC), value, quality (0 good, 1 uncertain, 2 bad); `dictionary`:
        the tag column dictionary-encoded, for bulk Arrow answers (read straight from the day files when it can)."""
        self.tenants.require(tenant)
        return self.reads.read(tenant, tags, start, end, limit=limit, dictionary=dictionary)

    def read_stream(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, *, batch_rows: int = 1 << 18
    ) -> pa.RecordBatchReader:
        """`read(dictionary=True)` as a stream of record batches of at most `batch_rows` points, each sent while
        the next is read where the store allows (Arrow Flight's bulk reads); checked before the first batch."""
        self.tenants.require(tenant)
        return self.reads.read_stream(tenant, tags, start, end, batch_rows)

    def downsample(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, every: Any, aggs: list[str] | str = "avg"
    ) -> pa.Table:
        """Buckets of `every` (e.g. '1m') with avg, min, max, sum, count, first, last, stddev, twa."""
        self.tenants.require(tenant)
        return self.reads.downsample(tenant, tags, start, end, every, aggs)

    def value_at(self, tenant: str, tags: list[str], at: Any) -> pa.Table:
        """Each tag's newest point at or before `at` (tag, time, value, quality), looking back as far as
        interpolation does; tags with nothing in that window are absent."""
        self.tenants.require(tenant)
        return self.reads.value_at(tenant, tags, at)

    def interpolate(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, step: Any, method: str = "previous"
    ) -> pa.Table:
        """Long table of each tag's value at start, start+step, … ≤ end (null where nothing is known)."""
        self.tenants.require(tenant)
        return self.reads.interpolate(tenant, tags, start, end, step, method)

    def align(
        self, tenant: str, tags: list[str], start: Any, end: Any, step: Any, method: str = "previous"
    ) -> pa.Table:
        """A wide table: time plus one column per tag, each interpolated onto the same grid (for training)."""
        self.tenants.require(tenant)
        return self.reads.align(tenant, tags, start, end, step, method)

    def query(
        self,
        tenant: str,
        tags: list[str],
        start: Any,
        end: Any,
        *,
        every: Any = None,
        agg: list[str] | str = "avg",
        step: Any = None,
        method: str = "previous",
        align: bool = False,
        limit: int | None = None,
        dictionary: bool = False,
    ) -> pa.Table:
        """One entry for every reader: raw, downsampled (every, agg) or interpolated (step, method, align);
        `dictionary`: a raw answer's tag column dictionary-encoded (see `read`)."""
        if every and step:
            raise InvalidInput("give either every (downsample) or step (interpolate), not both", where="every")
        if align and not step:
            raise InvalidInput("align needs a step", where="align")
        if every:
            return self.downsample(tenant, tags, start, end, every, agg)
        if step:
            return (
                self.align(tenant, tags, start, end, step, method)
                if align
                else self.interpolate(tenant, tags, start, end, step, method)
            )
        return self.read(tenant, tags, start, end, limit=limit, dictionary=dictionary)

    def latest(self, tenant: str, tags: list[str] | None = None) -> pa.Table:
        """Newest point of each tag (all tags when none are named), from the cache: no scan."""
        self.tenants.require(tenant)
        return self.reads.latest(tenant, tags)

    # -- tags and figures -------------------------------------------------------------------------------------
    def tags(self, tenant: str, prefix: str | None = None, limit: int | None = None) -> list[TagInfo]:
        """The tenant's tags with their metadata, optionally under a path prefix."""
        self.tenants.require(tenant)
        return self.catalog.list(tenant, prefix, limit or 10_000)

    def tag(self, tenant: str, name: str) -> TagInfo:
        """One tag's metadata."""
        self.tenants.require(tenant)
        return self.catalog.get(tenant, name)

    def set_tag(self, tenant: str, name: str, changes: dict[str, Any]) -> TagInfo:
        """Set a tag's metadata (creating the tag if it has no points yet)."""
        self.tenants.require(tenant, "write")
        before = self.catalog.get(tenant, name).to_dict() if name in self.catalog.ids(tenant) else None
        info = self.catalog.set_metadata(tenant, name, changes)
        self.audit.append("tag.set", tenant=tenant, target=name, before=before, after=info.to_dict())
        return info

    def points_per_day(self, tenant: str, days: list[str]) -> dict[str, int]:
        """Points held per UTC day (`YYYY-MM-DD`, by the points' own time): the day files' rows from the manifest and
        the points still buffered, counted without reading a stored point (for the pages' data-volume trends; a
        day not yet compacted may count a point written twice)."""
        self.tenants.require(tenant)
        out = dict.fromkeys(days, 0)
        for f in self.state.manifest(tenant).files:
            if f.day in out:
                out[f.day] += f.rows
        for table in self.state.buffered(tenant):
            counts = pc.value_counts(pc.strftime(table.column("time"), format="%Y-%m-%d"))
            for day, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
                if day in out:
                    out[day] += n
        return out

    def stats(self, tenant: str) -> StoreStats:
        """Files, rows and bytes of a tenant's store, and the points still buffered."""
        self.tenants.require(tenant)
        manifest = self.state.manifest(tenant)
        buffered = sum(t.num_rows for t in self.state.buffered(tenant))
        return StoreStats(
            storage=self.storage.describe(),
            files=len(manifest.files),
            rows_in_files=sum(f.rows for f in manifest.files),
            bytes=sum(f.bytes for f in manifest.files),
            buffered=buffered,
            days=len({f.day for f in manifest.files}),
            manifest_version=manifest.version,
        )


@contextmanager
def open_historian(settings: Settings, *, readonly: bool = False) -> Iterator[Historian]:
    """A historian for the length of a block."""
    hist = Historian(settings, readonly=readonly, background=False)
    try:
        yield hist
    finally:
        hist.close()


__all__ = ["FULL_PROBE_S", "STORE_SCHEMA", "Historian", "StoreStats", "WriteResult", "open_historian"]
