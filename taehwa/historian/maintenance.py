"""The writer's upkeep: compaction (each day's files merged into one sorted, duplicate-free file), the minute and
hour summaries of quiet days, retention, the removal of files compaction replaced, and the background thread that
runs all of it with the buffer's flush."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from taehwa.core.errors import NotFound, StorageFull
from taehwa.core.settings import Settings
from taehwa.core.timeutil import to_us
from taehwa.historian.files import DAY_US, FILE_COLUMNS, parquet_source, write_day_files
from taehwa.historian.fulldisk import FullDisk
from taehwa.historian.manifest import DataFile, Manifest
from taehwa.historian.state import StoreState
from taehwa.historian.summaries import Summaries
from taehwa.tenancy.tenants import TenantService

log = logging.getLogger(__name__)
OBSOLETE_GRACE_S = 60.0  # how long a replaced file stays on disk for the readers still reading it
RETENTION_EVERY_S = 3600.0


class Maintenance:
    """Compaction, summaries, retention and clean-up of one writer's tenants (those it holds the lease of), and
    the thread that runs them with the buffer's `flush` (`Writes.flush`). `tenants` tells each tenant's retention;
    `wake` makes the thread run at once; `summaries`, the queries' minute and hour summaries, if kept."""

    def __init__(
        self,
        settings: Settings,
        state: StoreState,
        flush: Callable[[], int],
        disk: FullDisk,
        tenants: TenantService,
        wake: threading.Event,
        summaries: Summaries | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.flush = flush
        self.disk = disk
        self.tenants = tenants
        self.wake = wake
        self.summaries = summaries
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Run maintenance in a background thread until `stop`."""
        self._thread = threading.Thread(target=self._run, name="historian-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it finishes the round it is in)."""
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _run(self) -> None:
        last_retention = 0.0
        compact_after = 0.0
        state, settings = self.state, self.settings
        while not self._stop.is_set():
            self.wake.wait(timeout=1.0)
            self.wake.clear()
            if self._stop.is_set():
                break
            try:
                age = time.monotonic() - state.buffer_since if state.buffer_since is not None else 0.0
                if (
                    state.buffer_points >= settings.buffer_max_points
                    or age >= settings.buffer_max_age_s
                    or (self.disk.error is not None and state.frozen)
                ):  # a full disk's backlog: retried
                    self.flush()
                if self.disk.error is None and time.monotonic() >= compact_after:
                    try:
                        self.compact(force=False)
                    except StorageFull as exc:  # a merged copy needs room the disk lacks: writes go on
                        compact_after = time.monotonic() + 60
                        log.warning("compaction waits a minute: %s", exc.message)
                if self.disk.error is None:
                    self.warm_summaries()
                state.leases.renew()
                if time.monotonic() - last_retention > RETENTION_EVERY_S:
                    self.apply_retention()
                    last_retention = time.monotonic()
                self.delete_obsolete()
            except StorageFull as exc:  # logged once by the full-disk state; the next round retries
                self.disk.mark(exc)
            except Exception:  # keep maintaining; the next round retries
                log.exception("historian maintenance failed")

    # -- compaction ----------------------------------------------------------------------------------------
    def compact(self, tenant: str | None = None, *, force: bool = True) -> int:
        """Merge each day's files into one (see `Historian.compact`); returns how many days were merged."""
        state = self.state
        merged = 0
        for name in [tenant] if tenant else list(state.manifests):
            if not state.leases.active(name):  # another writer's tenant: its writer compacts it
                continue
            by_day: dict[str, list[DataFile]] = {}
            for f in state.manifest(name).files:
                by_day.setdefault(f.day, []).append(f)
            for day, files in sorted(by_day.items()):
                if len(files) < 2:
                    continue
                if not force and not state.quiet(name, day, self.settings.compact_after_s) and len(files) < 32:
                    continue
                with state.flush_lock:
                    self._compact_day(name, files)
                merged += 1
        return merged

    def _compact_day(self, tenant: str, files: list[DataFile]) -> None:
        state = self.state
        con = state.connect()
        with state.storage.local_paths([f"{tenant}/{f.path}" for f in files]) as paths:
            source = f"(SELECT {FILE_COLUMNS} FROM {parquet_source(paths)})"
            out = write_day_files(con, source, state.storage, tenant, 0, dedup="seq")
        state.commit(tenant, out, {f.path for f in files})

    def warm_summaries(self, budget: int = 8, *, force: bool = False) -> int:
        """Make the minute/hour summaries of up to `budget` quiet days (see `Historian.warm_summaries`)."""
        state = self.state
        summaries = self.summaries
        if summaries is None or state.storage.remote:
            return 0
        made = 0
        for tenant in list(state.manifests):
            files = state.manifest(tenant).files
            per_day: dict[str, int] = {}
            for f in files:
                per_day[f.day] = per_day.get(f.day, 0) + 1
            for f in files:
                if made >= budget:
                    return made
                quiet = force or state.quiet(tenant, f.day, self.settings.compact_after_s)
                if per_day[f.day] != 1 or not quiet or summaries.path(tenant, f).exists():
                    continue
                with state.storage.local_paths([f"{tenant}/{f.path}"]) as paths:
                    summaries.ensure(state.connect(), tenant, [f], paths)
                made += 1
        return made

    # -- retention and clean-up ----------------------------------------------------------------------------
    def apply_retention(self) -> int:
        """Drop whole day files older than each tenant's retention; returns the files dropped."""
        state = self.state
        dropped = 0
        now_us = to_us("now")
        for tenant in list(state.manifests):
            if not state.leases.active(tenant):
                continue
            try:
                days = self.tenants.get(tenant).retention_days or self.settings.default_retention_days
            except NotFound:
                continue
            if not days:
                continue
            cutoff = now_us - days * DAY_US
            old = {f.path for f in state.manifest(tenant).files if f.max_time < cutoff}
            if old:
                with state.flush_lock:
                    state.latest.drop_before(tenant, cutoff)
                    state.commit(tenant, [], old)
                dropped += len(old)
        return dropped

    def delete_obsolete(self, grace_s: float = OBSOLETE_GRACE_S) -> None:
        """Delete the files compaction and retention replaced once no reader can still be reading them."""
        state = self.state
        now = time.time()
        for tenant in list(state.manifests):
            manifest = state.manifest(tenant)
            due = [(p, t) for p, t in manifest.obsolete if now - t >= grace_s]
            if not due:
                continue
            if not state.leases.holds(tenant):
                continue
            for p, _ in due:
                state.storage.delete(f"{tenant}/{p}")
            with state.manifest_lock:
                current = state.manifests[tenant]
                keep = [(p, t) for p, t in current.obsolete if (p, t) not in due]
                new = Manifest(current.version, current.files, keep)
                state.storage.write(f"{tenant}/manifest.json", new.to_bytes())
                state.manifests[tenant] = new
