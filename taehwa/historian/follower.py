"""Keeping up with what other processes commit to the store: a follower (a read-only node beside a running writer,
an API worker) takes the writer's log and manifests before each query; a writer of some tenants takes the other
tenants' manifests as their writers commit them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa

from taehwa.core.names import check_tenant
from taehwa.historian.state import StoreState
from taehwa.historian.wal import WAL_SCHEMA, read_segment

FOLLOW_EVERY_S = 0.02  # how stale a follower's view may be: it looks at the writer's log and manifests this often
REMOTE_FOLLOW_S = 1.0  # how often a manifest on remote storage is read again (a GET each time)


class Follower:
    """Takes into `state` what other processes commit. `follow`: this process follows a writer (its log and every
    manifest); `readonly`: it writes nothing (a plain reader takes nothing after it opened)."""

    def __init__(self, state: StoreState, *, follow: bool, readonly: bool) -> None:
        self.state = state
        self.follow = follow
        self.readonly = readonly
        self._lock = threading.Lock()
        self._followed_at = 0.0
        self._consumed: dict[Path, int] = {}  # log segment → batches already in the buffer
        self._stamps: dict[str, tuple[int | None, int]] = {}  # tenant → (file stamp, version) seen
        self._read_at: dict[str, float] = {}  # tenant → when its manifest was last read (others' tenants)
        self._listed: tuple[float, list[str]] = (-1e9, [])

    def catch_up(self, *, force: bool = False) -> None:
        """A follower catches up with the writer: the points its log holds, the files its manifests name.

        The log is read before the manifests: a flush writes files, then the manifest, then removes the log's
        segments, so every acknowledged point is in one of the two (in both for a moment, and queries keep one
        value per tag and time). At most every `FOLLOW_EVERY_S`; only batches not seen before are added."""
        if not self.follow or (not force and time.monotonic() - self._followed_at < FOLLOW_EVERY_S):
            return
        state = self.state
        with self._lock:
            if not force and time.monotonic() - self._followed_at < FOLLOW_EVERY_S:
                return
            started = time.monotonic()
            segments = state.wal.segments()
            flushed = any(seg not in segments for seg in self._consumed)
            if flushed:  # the writer flushed: its files have them now
                with state.write_lock:
                    state.buffers, state.buffer_points = {}, 0
                self._consumed = {}
            for seg in segments:
                batches = read_segment(seg, self._consumed.get(seg, 0))
                if not batches:
                    continue
                self._consumed[seg] = self._consumed.get(seg, 0) + len(batches)
                with state.write_lock:
                    state.buffer_logged(pa.Table.from_batches(batches, schema=WAL_SCHEMA))
            # after a flush the manifests are read now, even on remote storage: the log no longer has the points
            for tenant in self._known_tenants(force=flushed):
                self.refresh(tenant, force=flushed)
            self._followed_at = started

    def before_query(self, tenant: str) -> None:
        """What a query of the tenant needs first: a follower catches up, a writer of other tenants takes this
        one's newest manifest."""
        self.catch_up()
        self.refresh_others(tenant)

    def refresh_others(self, tenant: str) -> None:
        """A writer of some tenants reads the others' manifests as their writers commit them."""
        if not self.follow and not self.readonly and not self.state.leases.active(tenant):
            self.refresh(check_tenant(tenant))

    def refresh(self, tenant: str, *, force: bool = False) -> bool:
        """Take a manifest another process commits (as follower, or for another writer's tenant) when it
        changed; returns whether it did. On a local store a stat tells; on a remote one the file is read, at
        most every `REMOTE_FOLLOW_S`."""
        state = self.state
        seen = self._stamps.get(tenant)
        stamp = state.storage.stamp(f"{tenant}/manifest.json")  # None on remote storage
        if state.storage.remote:
            now = time.monotonic()
            if not force and now - self._read_at.get(tenant, 0.0) < REMOTE_FOLLOW_S:
                return False
            self._read_at[tenant] = now
        elif seen is not None and seen[0] == stamp:
            return False
        manifest = state.read_manifest(tenant)
        self._stamps[tenant] = (stamp, manifest.version)
        if seen is not None and seen[1] == manifest.version:
            return False  # rewritten without new files (its obsolete list): nothing to take
        with state.manifest_lock:
            state.manifests[tenant] = manifest
        state.load_latest(tenant, manifest)
        return True

    def _known_tenants(self, *, force: bool = False) -> list[str]:
        """The store's tenant folders; on remote storage listed again at most every `REMOTE_FOLLOW_S`."""
        now = time.monotonic()
        if force or not self.state.storage.remote or now - self._listed[0] >= REMOTE_FOLLOW_S:
            self._listed = (now, self.state.storage.tenants())
        return self._listed[1]
