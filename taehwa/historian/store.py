"""The historian service: durable writes, background flush and compaction, retention, and queries.

Process model: one process writes (it holds an exclusive lock on the store); any number of processes read.
Readers never block the writer: data files are immutable, the manifest is replaced atomically, and files that
compaction replaces stay on disk for a grace period.

Write path: a batch is checked whole (nothing of a bad batch is stored), given a sequence number, then either
appended to the write-ahead log and the in-memory buffer (small writes) or written straight to sorted day files
(large writes). Either way it is on disk, fsynced, when the call returns. A rewrite of (tag, time) replaces the
old point: the highest sequence number wins, and within one batch the last row.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from taehwa.core.errors import Conflict, InvalidInput, NotFound, StorageFull, Unavailable
from taehwa.core.names import check_tenant
from taehwa.core.settings import Settings
from taehwa.core.timeutil import from_us, parse_duration, to_us
from taehwa.historian.catalog import TagCatalog, TagInfo
from taehwa.historian.durable import free_bytes, full, is_disk_full
from taehwa.historian.files import DAY_US, FILE_COLUMNS, discard_files, parquet_source, write_day_files
from taehwa.historian.latest import Last, LatestCache
from taehwa.historian.leases import TenantLeases
from taehwa.historian.manifest import DataFile, Manifest
from taehwa.historian.normalize import normalize, window_us
from taehwa.historian.query import QueryEngine, Snapshot
from taehwa.historian.schema import OUT_TIME, STORE_SCHEMA
from taehwa.historian.storage import Storage
from taehwa.historian.summaries import Summaries
from taehwa.historian.wal import WAL_SCHEMA, WriteAheadLog, read_segment
from taehwa.migrate import make_engine
from taehwa.tenancy.audit import AuditLog, open_audit
from taehwa.tenancy.tenants import TenantService

log = logging.getLogger(__name__)
OBSOLETE_GRACE_S = 60.0
BUFFER_SCHEMA = pa.schema([f for f in WAL_SCHEMA if f.name != "tenant"])


@dataclass(frozen=True)
class WriteResult:
    """What a write stored."""

    points: int
    tags: int
    seq: int


FOLLOW_EVERY_S = 0.02  # how stale a follower's view may be: it looks at the writer's log and manifests this often
REMOTE_FOLLOW_S = 1.0  # how often a manifest on remote storage is read again (a GET each time)
FULL_PROBE_S = 1.0  # while a disk is full, how often a write asks whether space has come back
MIN_FREE_BYTES = 1 << 20  # free space on the full disk at which writes are tried again


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
        self._follow_lock = threading.Lock()
        self._followed_at = 0.0
        self._consumed: dict[Path, int] = {}  # log segment → batches already in the buffer
        self._manifest_stamps: dict[str, tuple[int | None, int]] = {}  # tenant → (file stamp, version) seen
        self._manifests_read: dict[str, float] = {}  # tenant → when its manifest was last read (others' tenants)
        self._listed: tuple[float, list[str]] = (-1e9, [])
        self.root = settings.data_dir / "historian"  # this process's own: log, lock, staging, cache
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fh: Any = None
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
        self._listeners: list[Callable[[str, pa.Table], None]] = []
        self._write_lock = threading.RLock()  # seq, WAL, buffer
        self._manifest_lock = threading.Lock()  # manifest read-modify-write
        self._flush_lock = threading.Lock()  # one flush or compaction at a time
        self._manifests: dict[str, Manifest] = {}
        self._buffers: dict[str, list[pa.Table]] = {}
        self._frozen: dict[str, list[pa.Table]] = {}
        self._buffer_points = 0
        self._buffer_since: float | None = None
        self._touched: dict[tuple[str, str], float] = {}  # (tenant, day) -> last write time
        self.wal = WriteAheadLog(self.root / "_wal")
        self._seq = 0
        self._closed = False
        self._full: StorageFull | None = None  # set while a disk a write needs is full: writes are refused
        self._full_probed = 0.0
        if follow:
            self._follow(force=True)
        else:
            self._load_state()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if not self.readonly and background:
            self._thread = threading.Thread(target=self._background, name="historian-maintenance", daemon=True)
            self._thread.start()

    # -- start-up and shut-down ---------------------------------------------------------------------------
    def _take_writer_lock(self) -> None:
        path = self.root / ".writer.lock"
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
        if not self.readonly:
            self.storage.clear_staging()  # files a crash left unpublished
        for tenant in self.storage.tenants():
            manifest = self._read_manifest(tenant)
            self._manifests[tenant] = manifest
            self._seq = max(self._seq, max((f.max_seq for f in manifest.files), default=0))
            self._load_latest(tenant, manifest)
            if not self.readonly and not self.storage.remote:
                shutil.rmtree(self.root / tenant / "_tmp", ignore_errors=True)  # where earlier versions staged
        # a writer of given tenants takes them at once; one still held elsewhere is taken when its lease lapses
        self.leases.renew(force=True)
        logged = self.wal.read_all()
        if logged.num_rows:
            self._seq = max(self._seq, int(pc.max(logged.column("seq")).as_py()))
            self._buffer_logged(logged)
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
        if not self.readonly and self._full is None:
            try:
                room = free_bytes(self.root)
            except OSError:
                room = MIN_FREE_BYTES
            if room < MIN_FREE_BYTES:
                self._mark_full(full("the historian's store", self.root))
                log.warning("starting read-only: only %d bytes are free on the disk holding %s", room, self.root)

    def _read_manifest(self, tenant: str) -> Manifest:
        return Manifest.from_bytes(self.storage.read(f"{check_tenant(tenant)}/manifest.json"))

    def _load_latest(self, tenant: str, manifest: Manifest) -> None:
        """The stored last-value snapshot, plus the files committed after it."""
        version = self.latest_cache.load_snapshot(tenant, self.storage.read(f"{tenant}/latest.parquet"))
        newer = [f"{tenant}/{f.path}" for f in manifest.files if f.added > version]
        if newer:
            with self.storage.local_paths(newer) as paths:
                self.latest_cache.merge_source(self.queries.connection(), tenant, parquet_source(paths), has_rn=False)

    def _refresh_manifest(self, tenant: str, *, force: bool = False) -> bool:
        """Take a manifest another process commits (as follower, or for another writer's tenant) when it
        changed; returns whether it did. On a local store a stat tells; on a remote one the file is read, at
        most every `REMOTE_FOLLOW_S`."""
        seen = self._manifest_stamps.get(tenant)
        stamp = self.storage.stamp(f"{tenant}/manifest.json")  # None on remote storage
        if self.storage.remote:
            now = time.monotonic()
            if not force and now - self._manifests_read.get(tenant, 0.0) < REMOTE_FOLLOW_S:
                return False
            self._manifests_read[tenant] = now
        elif seen is not None and seen[0] == stamp:
            return False
        manifest = self._read_manifest(tenant)
        self._manifest_stamps[tenant] = (stamp, manifest.version)
        if seen is not None and seen[1] == manifest.version:
            return False  # rewritten without new files (its obsolete list): nothing to take
        with self._manifest_lock:
            self._manifests[tenant] = manifest
        self._load_latest(tenant, manifest)
        return True

    def _buffer_logged(self, logged: pa.Table) -> None:
        """Points read back from the log (with their tenant column) into each tenant's buffer."""
        for tenant in pc.unique(logged.column("tenant")).to_pylist():
            part = logged.filter(pc.equal(logged.column("tenant"), tenant)).drop_columns(["tenant"])
            self._buffer_add(tenant, part)

    def _follow(self, *, force: bool = False) -> None:
        """A follower catches up with the writer: the points its log holds, the files its manifests name.

        The log is read before the manifests: a flush writes files, then the manifest, then removes the log's
        segments, so every acknowledged point is in one of the two (in both for a moment, and queries keep one
        value per tag and time). At most every `FOLLOW_EVERY_S`; only batches not seen before are added."""
        if not self.follow or (not force and time.monotonic() - self._followed_at < FOLLOW_EVERY_S):
            return
        with self._follow_lock:
            if not force and time.monotonic() - self._followed_at < FOLLOW_EVERY_S:
                return
            started = time.monotonic()
            segments = self.wal.segments()
            flushed = any(seg not in segments for seg in self._consumed)
            if flushed:  # the writer flushed: its files have them now
                with self._write_lock:
                    self._buffers, self._buffer_points = {}, 0
                self._consumed = {}
            for seg in segments:
                batches = read_segment(seg, self._consumed.get(seg, 0))
                if not batches:
                    continue
                self._consumed[seg] = self._consumed.get(seg, 0) + len(batches)
                with self._write_lock:
                    self._buffer_logged(pa.Table.from_batches(batches, schema=WAL_SCHEMA))
            # after a flush the manifests are read now, even on remote storage: the log no longer has the points
            for tenant in self._known_tenants(force=flushed):
                self._refresh_manifest(tenant, force=flushed)
            self._followed_at = started

    def _refresh_others(self, tenant: str) -> None:
        """A writer of some tenants reads the others' manifests as their writers commit them."""
        if not self.follow and not self.readonly and not self.leases.active(tenant):
            self._refresh_manifest(check_tenant(tenant))

    def _known_tenants(self, *, force: bool = False) -> list[str]:
        """The store's tenant folders; on remote storage listed again at most every `REMOTE_FOLLOW_S`."""
        now = time.monotonic()
        if force or not self.storage.remote or now - self._listed[0] >= REMOTE_FOLLOW_S:
            self._listed = (now, self.storage.tenants())
        return self._listed[1]

    def close(self) -> None:
        """Flush the buffer, stop maintenance and release the store."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=120)
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

    # -- a full disk ----------------------------------------------------------------------------------------
    @property
    def full_reason(self) -> str | None:
        """Why writes are refused now (a disk they need is full), or None: what health checks show."""
        err = self._full
        return err.message if err is not None else None

    def _mark_full(self, err: StorageFull) -> None:
        """Refuse writes until space returns (logged once, with the folder, for the operator)."""
        first = self._full is None
        self._full, self._full_probed = err, time.monotonic()
        if first:
            log.warning("read-only until space is freed on the disk holding %s: %s", err.path or self.root, err.message)

    def _space_back(self) -> None:
        """Take writes again (space has been freed)."""
        if self._full is not None:
            self._full = None
            log.warning("space freed: the historian takes writes again")

    def _refuse_while_full(self) -> None:
        """While a disk is known to be full, refuse at once, asking again every `FULL_PROBE_S` whether the disk
        has `MIN_FREE_BYTES` free again (then writes are tried)."""
        err = self._full
        if err is None:
            return
        now = time.monotonic()
        if now - self._full_probed >= FULL_PROBE_S:
            self._full_probed = now
            try:
                free = free_bytes(err.path or self.root)
            except OSError:
                free = 0
            if free >= MIN_FREE_BYTES:
                self._space_back()
                return
        raise StorageFull(err.message, where=err.where, path=err.path)

    @contextmanager
    def _disk_guard(self) -> Iterator[None]:
        """Run a write: refused at once while a disk is full; a full disk met on the way (whatever raised it: the
        log, DuckDB, the metadata database) is answered as StorageFull and makes the historian refuse writes
        until space returns."""
        self._refuse_while_full()
        try:
            yield
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            if isinstance(exc, StorageFull):
                self._mark_full(exc)
                raise
            from sqlalchemy.exc import DBAPIError

            err = (
                full("the metadata database", self.settings.data_dir)
                if isinstance(exc, DBAPIError)
                else full("the historian's data files", self.root)
            )
            self._mark_full(err)
            raise err from exc

    # -- writes ---------------------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.readonly:
            raise Conflict("this historian was opened read-only", where="historian")
        if self._closed:
            raise Unavailable("the historian is closed", where="historian")

    def normalize(self, data: Any, *, source: str = "input", layout: str = "auto") -> pa.Table:
        """Check input against the schema and the accepted time window (see `normalize.normalize`)."""
        earliest, latest = window_us(self.settings.earliest_time, self.settings.future_tolerance_s)
        return normalize(data, source=source, earliest_us=earliest, latest_us=latest, layout=layout)

    def write(self, tenant: str, data: Any, *, source: str = "input", layout: str = "auto") -> WriteResult:
        """Store points: Arrow, pandas or polars tables, or iterables of points (long or wide).

        All-or-nothing and durable when it returns. Tags are created on their first write.
        """
        self._check_writable()
        self.tenants.require(tenant, "write")
        self.leases.require(tenant)
        table = self.normalize(data, source=source, layout=layout)
        return self.write_checked(tenant, table)

    def write_checked(self, tenant: str, table: pa.Table) -> WriteResult:
        """Store a table already in the store schema (from `normalize`); a full disk is StorageFull (507)."""
        self._check_writable()
        self.tenants.require(tenant, "write")
        self.leases.require(tenant)
        if table.num_rows == 0:
            return WriteResult(0, 0, self._seq)
        with self._disk_guard():
            return self._write_checked(tenant, table)

    def _write_checked(self, tenant: str, table: pa.Table) -> WriteResult:
        """`write_checked` once the caller and the disk are checked."""
        if table.num_rows >= self.settings.buffer_max_points:
            return self._write_direct(tenant, [table])
        names = pc.unique(table.column("tag"))
        ids = self.catalog.ensure(tenant, names.to_pylist())
        id_array = pa.array([ids[n] for n in names.to_pylist()], pa.int64())
        tag_ids = pc.take(id_array, pc.index_in(table.column("tag"), value_set=names))
        with self._write_lock:
            self._seq += 1
            seq = self._seq
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
            self.wal.append(batch.add_column(0, "tenant", pa.array([tenant] * n, pa.string())))
            self._buffer_add(tenant, batch)
            self._note_days(tenant, table.column("time"))
            full = self._buffer_points >= self.settings.buffer_max_points
        if full:
            self._wake.set()
        self._notify(tenant, [table])
        self._audit_write(tenant, n, len(ids), seq)
        return WriteResult(n, len(ids), seq)

    def _audit_write(self, tenant: str, points: int, tags: int, seq: int) -> None:
        """Record a stored write in the audit log; when the metadata database's disk is full the points are kept
        (they are durable already) and the answer says so: stored, but not audited (StorageFull)."""
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
        self._listeners.append(listener)

    def _notify(self, tenant: str, tables: list[pa.Table]) -> None:
        for listener in self._listeners:
            for table in tables:
                try:
                    listener(tenant, table.select(["tag", "time", "value", "quality"]))
                except Exception:
                    log.exception("a write listener failed")

    def _buffer_add(self, tenant: str, batch: pa.Table) -> None:
        self._buffers.setdefault(tenant, []).append(batch)
        self._buffer_points += batch.num_rows
        if self._buffer_since is None:
            self._buffer_since = time.monotonic()
        con = self.queries.connection()
        view = f"wbatch_{threading.get_ident()}"
        con.register(view, batch.append_column("rn", pa.array(np.arange(batch.num_rows, dtype=np.int64))))
        try:
            self.latest_cache.merge_source(con, tenant, view, has_rn=True)
        finally:
            con.unregister(view)

    def _note_days(self, tenant: str, times: pa.ChunkedArray | pa.Array) -> None:
        now = time.monotonic()
        mm = pc.min_max(times.cast(pa.int64()))
        for day_no in range(int(mm["min"].as_py()) // DAY_US, int(mm["max"].as_py()) // DAY_US + 1):
            self._touched[(tenant, _day_name(day_no))] = now

    def _write_direct(self, tenant: str, tables: list[pa.Table]) -> WriteResult:
        """Large writes go straight to sorted day files (no log needed: the manifest commit is the ack).

        The chunks are one batch with one seq: DuckDB sorts them together, so a file's points land in one file
        per day rather than one per chunk.
        """
        with self._disk_guard():
            return self._write_direct_files(tenant, tables)

    def _write_direct_files(self, tenant: str, tables: list[pa.Table]) -> WriteResult:
        """`_write_direct` once the disk is checked."""
        # unique per table, then over the few results: combining millions of strings first is far slower
        all_names = pc.unique(pa.concat_arrays([pc.unique(t.column("tag")) for t in tables]))
        ids = self.catalog.ensure(tenant, all_names.to_pylist())
        id_values = pa.array([ids[n] for n in all_names.to_pylist()], pa.int64())
        with_ids = [
            t.append_column("tag_id", pc.take(id_values, pc.index_in(t.column("tag"), value_set=all_names)))
            for t in tables
        ]
        batch = pa.concat_tables(with_ids)
        n = batch.num_rows
        batch = batch.append_column("rn", pa.array(np.arange(n, dtype=np.int64)))
        with self._write_lock:
            self._seq += 1
            seq = self._seq
        span = pc.min_max(pa.concat_arrays([c.cast(pa.int64()) for t in tables for c in t.column("time").chunks]))
        lo, hi = int(span["min"].as_py()), int(span["max"].as_py())
        stats = None
        if lo // DAY_US == hi // DAY_US:  # one day: no need to ask DuckDB for per-day figures
            tag_span = pc.min_max(id_values)
            stats = [(lo // DAY_US, lo, hi, int(tag_span["min"].as_py()), int(tag_span["max"].as_py()), seq)]
        con = self.queries.connection()
        view = f"bulk_{threading.get_ident()}"
        source = f"(SELECT tag_id, tag, time, value, quality, {seq}::BIGINT AS seq, rn FROM {view})"
        order = _strict_order(batch)
        if order == "time":  # every tag at each instant: a stable sort by tag id (a radix sort) is the files' order
            batch = _by_tag_id(batch)
            order = "tag"
        dedup = "none" if order else "rn"
        version = self._manifest(tenant).version + 1
        added: list[DataFile] = []
        try:
            # one pass splits the batch by day (a point repeats only within its day), then each day's rows alone
            # are sorted into their file: a year of one tag was 365 scans of the whole batch, one per day
            for part, part_stats in _day_parts(batch, seq, stats):
                con.register(view, part)
                added += write_day_files(
                    con, source, self.storage, tenant, version, dedup=dedup, stats=part_stats, presorted=order == "tag"
                )
            con.register(view, batch)
            self.latest_cache.merge_source(con, tenant, source, has_rn=True)
        except BaseException:
            discard_files(self.storage, tenant, added)
            raise
        finally:
            con.unregister(view)
        self._commit(tenant, added, set())
        with self._write_lock:
            for table in tables:
                self._note_days(tenant, table.column("time"))
        self._notify(tenant, tables)
        self._audit_write(tenant, n, len(ids), seq)
        return WriteResult(n, len(ids), seq)

    def ingest_file(
        self, tenant: str, path: Path, *, layout: str = "auto", progress: Callable[[int, int], None] | None = None
    ) -> WriteResult:
        """Ingest a CSV or Parquet file (long or wide) as one all-or-nothing batch, in chunks for memory."""
        from taehwa.historian.readers import iter_file_tables

        self._check_writable()
        self.tenants.require(tenant, "write")
        self.leases.require(tenant)
        tables: list[pa.Table] = []
        for chunk, done, total in iter_file_tables(path):
            tables.append(_shift_rows(chunk, self, path, layout, done - chunk.num_rows))
            if progress:
                progress(done, total)
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return WriteResult(0, 0, self._seq)
        total_rows = sum(t.num_rows for t in tables)
        if total_rows < self.settings.buffer_max_points:
            return self.write_checked(tenant, pa.concat_tables(tables))
        return self._write_direct(tenant, tables)

    def _manifest(self, tenant: str) -> Manifest:
        with self._manifest_lock:
            return self._manifests.setdefault(tenant, Manifest())

    def _commit(self, tenant: str, add: list[DataFile], remove: set[str]) -> Manifest:
        """Make added files visible and removed ones obsolete, atomically, then persist the last values.

        On a shared store the writer must hold the tenant's lease, and the stored manifest must still be the one
        it committed last: otherwise another writer has written the tenant, and nothing is overwritten."""
        check_tenant(tenant)
        self.leases.require(tenant)  # held, or taken now; refused when another writer has it
        with self._manifest_lock:
            current = self._manifests.get(tenant, Manifest())
            missing = remove - {f.path for f in current.files}
            if missing:
                raise Conflict(f"files no longer in the manifest: {sorted(missing)[:3]}", where=tenant)
            if self.leases.shared:
                stored = self._read_manifest(tenant).version
                if stored != current.version:
                    raise Conflict(
                        f"tenant {tenant!r}'s manifest is at version {stored}, not {current.version}: "
                        "another writer has committed files; this writer stops",
                        where=tenant,
                    )
            fixed = [DataFile(**{**f.__dict__, "added": current.version + 1}) for f in add]
            new = current.replaced(fixed, remove)
            self.storage.write(f"{tenant}/manifest.json", new.to_bytes())
            self._manifests[tenant] = new
            try:
                self.storage.write(f"{tenant}/latest.parquet", self.latest_cache.snapshot_bytes(tenant, new.version))
            except StorageFull as exc:  # committed all the same: a start reads the newer files' last values
                log.warning("tenant %r: the last-value snapshot was not saved: %s", tenant, exc.message)
        return new

    # -- flush, compaction, retention -----------------------------------------------------------------------
    def flush(self) -> int:
        """Move buffered points into day files and drop the log segments that held them."""
        if self.readonly:
            return 0
        with self._flush_lock:
            with self._write_lock:
                closed = self.wal.rotate()
                segments = [s for s in self.wal.segments() if closed is None or s <= closed]
                # points a failed flush left (storage down, say) go first: they are older than the buffer's
                frozen = {t: list(tables) for t, tables in self._frozen.items()}
                for tenant, tables in self._buffers.items():
                    frozen.setdefault(tenant, []).extend(tables)
                self._frozen, self._buffers = frozen, {}
                self._buffer_points = 0
                self._buffer_since = None
            moved = 0
            failed: list[tuple[str, Exception]] = []
            con = self.queries.connection()
            for tenant, tables in list(frozen.items()):
                try:
                    if tables:
                        moved += self._flush_tenant(con, tenant, tables)
                except (Conflict, Unavailable, OSError) as exc:
                    failed.append((tenant, exc))
                    continue
                with self._write_lock:
                    self._frozen.pop(tenant, None)
            if failed:  # the log keeps every point until all are in files; the next flush tries again
                name, error = failed[0]
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
                        path=getattr(error, "path", None) or str(self.root),
                    )
                    self._mark_full(err)
                    raise err from error
                raise Unavailable(
                    f"flush of tenant {name!r} failed, its points stay in the log and memory "
                    f"until a flush succeeds: {error}",
                    where="historian",
                ) from error
            self.wal.remove(segments)
            if moved:
                self._space_back()
            return moved

    def _flush_tenant(self, con: duckdb.DuckDBPyConnection, tenant: str, tables: list[pa.Table]) -> int:
        """Write one tenant's buffered points as day files and commit them."""
        table = pa.concat_tables(tables)
        table = table.append_column("rn", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        view = f"flush_{threading.get_ident()}"
        con.register(view, table)
        try:
            files = write_day_files(con, view, self.storage, tenant, self._manifest(tenant).version + 1, dedup="rn")
        finally:
            con.unregister(view)
        self._commit(tenant, files, set())
        return int(table.num_rows)

    def compact(self, tenant: str | None = None, *, force: bool = True) -> int:
        """Merge each day's files into one sorted, duplicate-free file; returns how many days were merged.

        Without force, only days untouched for `compact_after_s` are merged (the background policy).
        """
        if self.readonly:
            return 0
        merged = 0
        for name in [tenant] if tenant else list(self._manifests):
            if not self.leases.active(name):  # another writer's tenant: its writer compacts it
                continue
            by_day: dict[str, list[DataFile]] = {}
            for f in self._manifest(name).files:
                by_day.setdefault(f.day, []).append(f)
            now = time.monotonic()
            for day, files in sorted(by_day.items()):
                if len(files) < 2:
                    continue
                quiet = now - self._touched.get((name, day), 0.0) >= self.settings.compact_after_s
                if not force and not quiet and len(files) < 32:
                    continue
                with self._flush_lock:
                    self._compact_day(name, files)
                merged += 1
        return merged

    def _compact_day(self, tenant: str, files: list[DataFile]) -> None:
        con = self.queries.connection()
        with self.storage.local_paths([f"{tenant}/{f.path}" for f in files]) as paths:
            source = f"(SELECT {FILE_COLUMNS} FROM {parquet_source(paths)})"
            out = write_day_files(con, source, self.storage, tenant, 0, dedup="seq")
        self._commit(tenant, out, {f.path for f in files})

    def warm_summaries(self, budget: int = 8, *, force: bool = False) -> int:
        """Make the minute/hour summaries of up to `budget` quiet days (one file, untouched for `compact_after_s`)
        that lack one, so the first long trend after a day settles is as fast as the next (local stores only: on
        a remote one a summary is made when a query needs it); returns how many were made."""
        summaries = self.queries.summaries
        if summaries is None or self.storage.remote:
            return 0
        made = 0
        now = time.monotonic()
        for tenant in list(self._manifests):
            files = self._manifest(tenant).files
            per_day: dict[str, int] = {}
            for f in files:
                per_day[f.day] = per_day.get(f.day, 0) + 1
            for f in files:
                if made >= budget:
                    return made
                quiet = force or now - self._touched.get((tenant, f.day), 0.0) >= self.settings.compact_after_s
                if per_day[f.day] != 1 or not quiet or summaries.path(tenant, f).exists():
                    continue
                with self.storage.local_paths([f"{tenant}/{f.path}"]) as paths:
                    summaries.ensure(self.queries.connection(), tenant, [f], paths)
                made += 1
        return made

    def apply_retention(self) -> int:
        """Drop whole day files older than each tenant's retention; returns the files dropped."""
        dropped = 0
        now_us = to_us("now")
        for tenant in list(self._manifests):
            if not self.leases.active(tenant):
                continue
            try:
                days = self.tenants.get(tenant).retention_days or self.settings.default_retention_days
            except NotFound:
                continue
            if not days:
                continue
            cutoff = now_us - days * DAY_US
            old = {f.path for f in self._manifest(tenant).files if f.max_time < cutoff}
            if old:
                with self._flush_lock:
                    self.latest_cache.drop_before(tenant, cutoff)
                    self._commit(tenant, [], old)
                dropped += len(old)
        return dropped

    def _delete_obsolete(self, grace_s: float = OBSOLETE_GRACE_S) -> None:
        now = time.time()
        for tenant in list(self._manifests):
            manifest = self._manifest(tenant)
            due = [(p, t) for p, t in manifest.obsolete if now - t >= grace_s]
            if not due:
                continue
            if not self.leases.holds(tenant):
                continue
            for p, _ in due:
                self.storage.delete(f"{tenant}/{p}")
            with self._manifest_lock:
                current = self._manifests[tenant]
                keep = [(p, t) for p, t in current.obsolete if (p, t) not in due]
                new = Manifest(current.version, current.files, keep)
                self.storage.write(f"{tenant}/manifest.json", new.to_bytes())
                self._manifests[tenant] = new

    def _background(self) -> None:
        last_retention = 0.0
        compact_after = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                age = time.monotonic() - self._buffer_since if self._buffer_since is not None else 0.0
                if (
                    self._buffer_points >= self.settings.buffer_max_points
                    or age >= self.settings.buffer_max_age_s
                    or (self._full is not None and self._frozen)
                ):  # a full disk's backlog: retried
                    self.flush()
                if self._full is None and time.monotonic() >= compact_after:
                    try:
                        self.compact(force=False)
                    except StorageFull as exc:  # a merged copy needs room the disk lacks: writes go on
                        compact_after = time.monotonic() + 60
                        log.warning("compaction waits a minute: %s", exc.message)
                if self._full is None:
                    self.warm_summaries()
                self.leases.renew()
                if time.monotonic() - last_retention > 3600:
                    self.apply_retention()
                    last_retention = time.monotonic()
                self._delete_obsolete()
            except StorageFull as exc:  # logged once by _mark_full; the next round retries
                self._mark_full(exc)
            except Exception:  # keep maintaining; the next round retries
                log.exception("historian maintenance failed")

    # -- queries --------------------------------------------------------------------------------------------
    def snapshot(self, tenant: str) -> Snapshot:
        """The files and buffered points one query sees."""
        self._follow()
        self._refresh_others(tenant)
        with self._write_lock:
            tables = list(self._frozen.get(tenant, [])) + list(self._buffers.get(tenant, []))
        buffer = None
        if tables:
            buffer = pa.concat_tables(tables)
            buffer = buffer.append_column("rn", pa.array(np.arange(buffer.num_rows, dtype=np.int64)))
        return Snapshot(self.storage, check_tenant(tenant), tuple(self._manifest(tenant).files), buffer)

    def _ids(self, tenant: str, tags: list[str] | str) -> dict[str, int]:
        self.tenants.require(tenant)
        names = [tags] if isinstance(tags, str) else list(tags)
        if not names:
            raise InvalidInput("name at least one tag", where="tags")
        return self.catalog.resolve(tenant, names)

    @staticmethod
    def _range(start: Any, end: Any) -> tuple[int, int]:
        s, e = to_us(start, field="start"), to_us(end, field="end")
        if e <= s:
            raise InvalidInput(
                f"end ({from_us(e).isoformat()}) must be after start ({from_us(s).isoformat()})", where="end"
            )
        return s, e

    def read(self, tenant: str, tags: list[str] | str, start: Any, end: Any, *, limit: int | None = None) -> pa.Table:
        """Raw points in [start, end): tag, time (UTC), value, quality (0 good, 1 uncertain, 2 bad)."""
        ids = self._ids(tenant, tags)
        s, e = self._range(start, end)
        return self.queries.raw(self.snapshot(tenant), list(ids.values()), s, e, limit)

    def downsample(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, every: Any, aggs: list[str] | str = "avg"
    ) -> pa.Table:
        """Buckets of `every` (e.g. '1m') with avg, min, max, sum, count, first, last, stddev, twa."""
        ids = self._ids(tenant, tags)
        s, e = self._range(start, end)
        agg_list = [a.strip() for a in aggs.split(",")] if isinstance(aggs, str) else list(aggs)
        return self.queries.downsample(
            self.snapshot(tenant), list(ids.values()), s, e, parse_duration(every, field="every"), agg_list
        )

    def value_at(self, tenant: str, tags: list[str], at: Any) -> pa.Table:
        """Each tag's newest point at or before `at` (tag, time, value, quality), looking back as far as
        interpolation does; tags with nothing in that window are absent."""
        ids = self._ids(tenant, tags)
        return self.queries.value_at(
            self.snapshot(tenant), list(ids.values()), to_us(at), int(self.settings.interpolation_lookback_s * 1e6)
        )

    def interpolate(
        self, tenant: str, tags: list[str] | str, start: Any, end: Any, step: Any, method: str = "previous"
    ) -> pa.Table:
        """Long table of each tag's value at start, start+step, … ≤ end (null where nothing is known)."""
        ids = self._ids(tenant, tags)
        s, e = self._range(start, end)
        grid, series = self.queries.interpolate(
            self.snapshot(tenant),
            ids,
            s,
            e,
            parse_duration(step, field="step"),
            method,
            int(self.settings.interpolation_lookback_s * 1e6),
        )
        parts = []
        for name, (values, quality) in series.items():
            parts.append(
                pa.table(
                    {
                        "tag": pa.repeat(pa.scalar(name, pa.string()), len(grid)),
                        "time": pa.array(grid, pa.int64()).cast(pa.timestamp("us")).cast(OUT_TIME),
                        "value": pa.array(values, pa.float64(), from_pandas=True),
                        "quality": pa.array(np.where(quality == 255, 0, quality), pa.uint8(), mask=quality == 255),
                    }
                )
            )
        return pa.concat_tables(parts)

    def align(
        self, tenant: str, tags: list[str], start: Any, end: Any, step: Any, method: str = "previous"
    ) -> pa.Table:
        """A wide table: time plus one column per tag, each interpolated onto the same grid (for training)."""
        ids = self._ids(tenant, tags)
        s, e = self._range(start, end)
        grid, series = self.queries.interpolate(
            self.snapshot(tenant),
            ids,
            s,
            e,
            parse_duration(step, field="step"),
            method,
            int(self.settings.interpolation_lookback_s * 1e6),
        )
        columns: dict[str, pa.Array] = {"time": pa.array(grid, pa.int64()).cast(pa.timestamp("us")).cast(OUT_TIME)}
        for name in ids:
            columns[name] = pa.array(series[name][0], pa.float64(), from_pandas=True)
        return pa.table(columns)

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
    ) -> pa.Table:
        """One entry for every reader: raw, downsampled (every, agg) or interpolated (step, method, align)."""
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
        return self.read(tenant, tags, start, end, limit=limit)

    def latest(self, tenant: str, tags: list[str] | None = None) -> pa.Table:
        """Newest point of each tag (all tags when none are named), from the cache: no scan."""
        self.tenants.require(tenant)
        self._follow()
        self._refresh_others(tenant)
        cache: dict[int, Last] = self.latest_cache.get(tenant)
        if tags:
            ids = self.catalog.resolve(tenant, list(tags))
            wanted = [(name, i) for name, i in ids.items()]
        else:
            wanted = sorted((self.catalog.name(tenant, i), i) for i in cache)
        rows = [(name, cache[i]) for name, i in wanted if i in cache]
        return pa.table(
            {
                "tag": pa.array([r[0] for r in rows], pa.string()),
                "time": pa.array([r[1].time_us for r in rows], pa.int64()).cast(pa.timestamp("us")).cast(OUT_TIME),
                "value": pa.array([r[1].value for r in rows], pa.float64()),
                "quality": pa.array([r[1].quality for r in rows], pa.uint8()),
            }
        )

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

    def stats(self, tenant: str) -> dict[str, Any]:
        """Files, rows and bytes of a tenant's store, and the points still buffered."""
        self.tenants.require(tenant)
        manifest = self._manifest(tenant)
        with self._write_lock:
            buffered = sum(t.num_rows for t in self._buffers.get(tenant, []) + self._frozen.get(tenant, []))
        return {
            "storage": self.storage.describe(),
            "files": len(manifest.files),
            "rows_in_files": sum(f.rows for f in manifest.files),
            "bytes": sum(f.bytes for f in manifest.files),
            "buffered": buffered,
            "days": len({f.day for f in manifest.files}),
            "manifest_version": manifest.version,
        }


def _strict_order(batch: pa.Table) -> str | None:
    """'tag' when rows run strictly by (tag id, time), 'time' when by (time, tag id), else None. Either way no
    point can repeat; by (tag id, time) the rows are also in the files' own order already.

    Plant exports usually come so (every tag at each instant, or each tag's series in turn), and this check is a
    few vector operations where a hash check for duplicates costs a pass over a table of every key.
    """
    if batch.num_rows < 2:
        return "tag"
    tag = batch.column("tag_id").to_numpy()
    t = batch.column("time").cast(pa.int64()).to_numpy()
    same_tag, same_time = tag[1:] == tag[:-1], t[1:] == t[:-1]
    if bool(np.all((tag[1:] > tag[:-1]) | (same_tag & (t[1:] > t[:-1])))):
        return "tag"
    if bool(np.all((t[1:] > t[:-1]) | (same_time & (tag[1:] > tag[:-1])))):
        return "time"
    return None


def _strictly_ordered(batch: pa.Table) -> bool:
    """Whether rows run strictly by (time, tag id) or by (tag id, time): then no point can repeat."""
    return _strict_order(batch) is not None


def _by_tag_id(batch: pa.Table) -> pa.Table:
    """A batch in (tag id, time) order by a stable sort on tag id; the tag names come back as a dictionary
    column built from the ids (moving millions of strings row by row costs more than the sort)."""
    ids = batch.column("tag_id").to_numpy()
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    first = np.r_[0, np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1]
    names = batch.column("tag").take(pa.array(order[first]))
    indices = np.repeat(np.arange(len(first), dtype=np.int32), np.diff(np.r_[first, len(order)]))
    tag = pa.DictionaryArray.from_arrays(pa.array(indices), names.combine_chunks())
    rest = batch.drop_columns(["tag"]).take(pa.array(order))
    return rest.add_column(batch.column_names.index("tag"), "tag", tag)


def _day_parts(
    batch: pa.Table, seq: int, stats: list[tuple[int, int, int, int, int, int]] | None
) -> Iterator[tuple[pa.Table, list[tuple[int, int, int, int, int, int]]]]:
    """A batch (tag_id, time, …, rn) as one slice per day, in day order, each with its file's figures (day, min
    and max time, min and max tag id, seq); rows keep their order within a day (a stable sort by day, skipped
    when the batch already runs day by day, as plant exports and long histories do)."""
    if stats is not None:  # one day, known already
        yield batch, stats
        return
    t = batch.column("time").cast(pa.int64()).to_numpy()
    day = t // DAY_US
    if not bool(np.all(day[1:] >= day[:-1])):
        order = np.argsort(day, kind="stable")
        batch, t, day = batch.take(pa.array(order)), t[order], day[order]
    ids = batch.column("tag_id").to_numpy()
    cuts = np.flatnonzero(day[1:] != day[:-1]) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(day)], strict=True):
        lo, hi = int(lo), int(hi)
        yield (
            batch.slice(lo, hi - lo),
            [
                (
                    int(day[lo]),
                    int(t[lo:hi].min()),
                    int(t[lo:hi].max()),
                    int(ids[lo:hi].min()),
                    int(ids[lo:hi].max()),
                    seq,
                )
            ],
        )


def _day_name(day_no: int) -> str:
    return from_us(day_no * DAY_US).date().isoformat()


def _shift_rows(chunk: pa.Table, hist: Historian, path: Path, layout: str, offset: int) -> pa.Table:
    """Normalize a chunk of a file, reporting rows as counted from the file's start."""
    try:
        return hist.normalize(chunk, source=path.name, layout=layout)
    except InvalidInput as exc:
        where = exc.where or ""
        if ", row " in where:
            head, _, rest = where.partition(", row ")
            number, _, tail = rest.partition(",")
            where = f"{head}, row {int(number) + offset}{',' + tail if tail else ''}"
        raise InvalidInput(exc.message, where=where) from None


@contextmanager
def open_historian(settings: Settings, *, readonly: bool = False) -> Iterator[Historian]:
    """A historian for the length of a block."""
    hist = Historian(settings, readonly=readonly, background=False)
    try:
        yield hist
    finally:
        hist.close()


__all__ = ["STORE_SCHEMA", "Historian", "WriteResult", "open_historian"]
