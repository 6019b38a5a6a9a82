"""What the historian's parts share: each tenant's manifest (the committed files), the points still in memory (and
the write-ahead log that holds them), the last values, and the locks that guard them.

The writes, the follower, the queries and the maintenance (`writes.py`, `follower.py`, `reads.py`,
`maintenance.py`) each take this one object; only a commit (`StoreState.commit`) publishes files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.errors import Conflict, StorageFull
from taehwa.core.names import check_tenant
from taehwa.core.timeutil import from_us
from taehwa.historian.files import DAY_US, parquet_source
from taehwa.historian.latest import LatestCache
from taehwa.historian.leases import TenantLeases
from taehwa.historian.manifest import DataFile, Manifest
from taehwa.historian.storage import Storage
from taehwa.historian.wal import WAL_SCHEMA, WriteAheadLog

log = logging.getLogger(__name__)
BUFFER_SCHEMA = pa.schema([f for f in WAL_SCHEMA if f.name != "tenant"])


class StoreState:
    """The manifests, the in-memory buffer and the last values of every tenant one historian serves, with the
    storage, leases and write-ahead log they live in and `connect`, this thread's DuckDB connection."""

    def __init__(
        self,
        storage: Storage,
        leases: TenantLeases,
        connect: Callable[[], duckdb.DuckDBPyConnection],
        latest: LatestCache,
        wal: WriteAheadLog,
    ) -> None:
        self.storage = storage
        self.leases = leases
        self.connect = connect  # this thread's DuckDB connection (`QueryEngine.connection`)
        self.latest = latest
        self.wal = wal
        self.write_lock = threading.RLock()  # seq, log, buffer
        self.manifest_lock = threading.Lock()  # manifest read-modify-write
        self.flush_lock = threading.Lock()  # one flush or compaction at a time
        self.manifests: dict[str, Manifest] = {}
        self.buffers: dict[str, list[pa.Table]] = {}  # tenant → batches not yet in files
        self.frozen: dict[str, list[pa.Table]] = {}  # tenant → batches a flush has taken (or failed to write)
        self.buffer_points = 0
        self.buffer_since: float | None = None  # when the oldest buffered batch came (monotonic)
        self.touched: dict[tuple[str, str], float] = {}  # (tenant, day) → last write time (monotonic)
        self.seq = 0  # the last write's sequence number

    # -- manifests --------------------------------------------------------------------------------------
    def manifest(self, tenant: str) -> Manifest:
        """The tenant's manifest as this process knows it (empty for a tenant with no files yet)."""
        with self.manifest_lock:
            return self.manifests.setdefault(tenant, Manifest())

    def read_manifest(self, tenant: str) -> Manifest:
        """The tenant's manifest as stored now."""
        return Manifest.from_bytes(self.storage.read(f"{check_tenant(tenant)}/manifest.json"))

    def load_latest(self, tenant: str, manifest: Manifest) -> None:
        """The stored last-value snapshot, plus the files committed after it."""
        version = self.latest.load_snapshot(tenant, self.storage.read(f"{tenant}/latest.parquet"))
        newer = [f"{tenant}/{f.path}" for f in manifest.files if f.added > version]
        if newer:
            with self.storage.local_paths(newer) as paths:
                self.latest.merge_source(self.connect(), tenant, parquet_source(paths), has_rn=False)

    def commit(self, tenant: str, add: list[DataFile], remove: set[str]) -> Manifest:
        """Make added files visible and removed ones obsolete, atomically, then persist the last values.

        On a shared store the writer must hold the tenant's lease, and the stored manifest must still be the one
        it committed last: otherwise another writer has written the tenant, and nothing is overwritten."""
        check_tenant(tenant)
        self.leases.require(tenant)  # held, or taken now; refused when another writer has it
        with self.manifest_lock:
            current = self.manifests.get(tenant, Manifest())
            missing = remove - {f.path for f in current.files}
            if missing:
                raise Conflict(f"files no longer in the manifest: {sorted(missing)[:3]}", where=tenant)
            if self.leases.shared:
                stored = self.read_manifest(tenant).version
                if stored != current.version:
                    raise Conflict(
                        f"tenant {tenant!r}'s manifest is at version {stored}, not {current.version}: "
                        "another writer has committed files; this writer stops",
                        where=tenant,
                    )
            fixed = [DataFile(**{**f.__dict__, "added": current.version + 1}) for f in add]
            new = current.replaced(fixed, remove)
            self.storage.write(f"{tenant}/manifest.json", new.to_bytes())
            self.manifests[tenant] = new
            try:
                self.storage.write(f"{tenant}/latest.parquet", self.latest.snapshot_bytes(tenant, new.version))
            except StorageFull as exc:  # committed all the same: a start reads the newer files' last values
                log.warning("tenant %r: the last-value snapshot was not saved: %s", tenant, exc.message)
        return new

    # -- the buffer ---------------------------------------------------------------------------------------
    def next_seq(self) -> int:
        """The next write's sequence number (callers hold `write_lock` when the number must match a log append)."""
        with self.write_lock:
            self.seq += 1
            return self.seq

    def buffer_add(self, tenant: str, batch: pa.Table) -> None:
        """A batch (store columns, tag id and seq) into the tenant's buffer and its last values."""
        self.buffers.setdefault(tenant, []).append(batch)
        self.buffer_points += batch.num_rows
        if self.buffer_since is None:
            self.buffer_since = time.monotonic()
        self.latest.merge_table(tenant, batch)

    def buffer_logged(self, logged: pa.Table) -> None:
        """Points read back from the log (with their tenant column) into each tenant's buffer."""
        for tenant in pc.unique(logged.column("tenant")).to_pylist():
            part = logged.filter(pc.equal(logged.column("tenant"), tenant)).drop_columns(["tenant"])
            self.buffer_add(tenant, part)

    def buffered(self, tenant: str) -> list[pa.Table]:
        """The tenant's points in memory, oldest first: those a flush has taken, then the buffer's."""
        with self.write_lock:
            return list(self.frozen.get(tenant, [])) + list(self.buffers.get(tenant, []))

    def note_days(self, tenant: str, times: pa.ChunkedArray | pa.Array) -> None:
        """Remember that the days these times fall on were written now (compaction waits for quiet days)."""
        now = time.monotonic()
        mm = pc.min_max(times.cast(pa.int64()))
        for day_no in range(int(mm["min"].as_py()) // DAY_US, int(mm["max"].as_py()) // DAY_US + 1):
            self.touched[(tenant, _day_name(day_no))] = now

    def quiet(self, tenant: str, day: str, after_s: float) -> bool:
        """Whether the tenant's day has had no write for `after_s` seconds."""
        return time.monotonic() - self.touched.get((tenant, day), 0.0) >= after_s


def _day_name(day_no: int) -> str:
    return from_us(day_no * DAY_US).date().isoformat()
