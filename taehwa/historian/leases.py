"""Writers partitioned by tenant: each tenant's files are written by one process at a time.

On one machine a file lock keeps a second writer out. When the store is shared (object storage, or a folder that
several machines mount) each writer takes a lease on the tenants it writes: `<tenant>/writer.json` names the
writer and when it last renewed the lease. A writer refuses a tenant whose lease another writer renewed less than
`LEASE_TTL_S` ago, renews its own every `RENEW_EVERY_S`, and gives them up when it closes; a crashed writer's
leases lapse. Object storage has no compare-and-swap that pyarrow exposes, so the claim is checked by reading the
lease back, and every manifest commit checks that the manifest is still the version this writer wrote last: two
writers cannot both commit over each other unnoticed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from taehwa.core.errors import Conflict
from taehwa.historian.storage import Storage

log = logging.getLogger(__name__)
LEASE_TTL_S = 30.0
RENEW_EVERY_S = 10.0
OWNER_CACHE_S = 2.0  # how long a node trusts what it read of another writer's lease before reading it again
CLAIM_SETTLE_S = 0.05  # a rival's claim made at the same instant lands within this; then the read-back sees it


class TenantLeases:
    """The tenants this writer may write, and its leases on them."""

    def __init__(self, storage: Storage, *, tenants: frozenset[str] | None, shared: bool) -> None:
        self.storage = storage
        self.tenants = tenants  # None: any tenant (one writer for the whole store)
        self.shared = shared  # leases are taken only when other writers may share the store
        self.writer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.url: str | None = None  # where other nodes reach this writer (they pass its tenants' requests on)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._renewed = 0.0
        self._owners: dict[str, tuple[float, str | None]] = {}  # tenant → (when read, its writer's URL)

    def owns(self, tenant: str) -> bool:
        """Whether this writer's partition includes the tenant (whether or not it holds the lease yet)."""
        return self.tenants is None or tenant in self.tenants

    def require(self, tenant: str) -> None:
        """Before writing a tenant's files: refuse a tenant of another partition, and hold its lease."""
        if not self.owns(tenant):
            raise Conflict(
                f"this writer takes tenants {', '.join(sorted(self.tenants or ()))}; tenant {tenant!r} "
                "is written by another writer: send its points there",
                where=tenant,
            )
        if not self.shared or tenant in self._held:
            return
        with self._lock:
            if tenant not in self._held:
                self._claim(tenant)

    def _read(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's lease, or None when there is none; a torn or foreign file is no lease."""
        raw = self.storage.read(f"{tenant}/writer.json")
        try:
            lease = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if not (
            isinstance(lease, dict)
            and isinstance(lease.get("writer"), str)
            and isinstance(lease.get("renewed"), int | float)
        ):
            return None
        return lease

    def _live(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's lease if another writer renewed it less than `LEASE_TTL_S` ago."""
        lease = self._read(tenant)
        if lease is None or lease["writer"] == self.writer or time.time() - lease["renewed"] >= LEASE_TTL_S:
            return None
        return lease

    def _write(self, tenant: str) -> None:
        body = {
            "writer": self.writer,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed": time.time(),
            "url": self.url,
        }
        self.storage.write(f"{tenant}/writer.json", json.dumps(body).encode())

    def _claim(self, tenant: str) -> None:
        rival = self._live(tenant)
        if rival:
            raise Conflict(
                f"tenant {tenant!r} is being written by {rival['writer']} (its lease was renewed "
                f"{time.time() - rival['renewed']:.0f} s ago); one writer per tenant: send its points "
                "there",
                where=tenant,
            )
        self._write(tenant)
        time.sleep(CLAIM_SETTLE_S)
        rival = self._live(tenant)
        if rival:
            raise Conflict(f"tenant {tenant!r} was claimed at the same moment by {rival['writer']}", where=tenant)
        self._held.add(tenant)
        log.info("writer %s holds tenant %s", self.writer, tenant)

    def active(self, tenant: str) -> bool:
        """Whether this process runs the tenant's work now (connectors, scoring, rules, compaction): every tenant
        for a sole writer; for a writer by tenant, those whose leases it holds (a standby given a tenant that
        another writer still holds waits until that lease lapses)."""
        return self.tenants is None or tenant in self._held

    def active_tenants(self) -> frozenset[str] | None:
        """The tenants `active` says yes to; None for all."""
        return None if self.tenants is None else frozenset(self._held)

    def holds(self, tenant: str) -> bool:
        """Whether this writer may commit the tenant's files now."""
        return not self.shared or tenant in self._held

    def renew(self, *, force: bool = False) -> None:
        """Renew every lease held (every `RENEW_EVERY_S`); a lease another writer has taken over is given up."""
        if not self.shared or (not force and time.monotonic() - self._renewed < RENEW_EVERY_S):
            return
        self._renewed = time.monotonic()
        with self._lock:
            for tenant in sorted(self._held):
                lease = self._read(tenant)
                if lease and lease["writer"] != self.writer:
                    self._held.discard(tenant)
                    log.error(
                        "tenant %s was taken over by writer %s: this writer (%s) stops writing it",
                        tenant,
                        lease["writer"],
                        self.writer,
                    )
                    continue
                self._write(tenant)
            for tenant in sorted((self.tenants or frozenset()) - self._held):  # a standby takes a lapsed lease
                try:
                    self._claim(tenant)
                except Conflict as exc:
                    log.info("standby for tenant %s: %s", tenant, exc.message)

    def set_url(self, url: str) -> None:
        """Say where this writer can be reached, in every lease it holds now and later."""
        self.url = url.rstrip("/")
        self.renew(force=True)

    def owner_url(self, tenant: str) -> str | None:
        """Where another writer of a partitioned store takes this tenant's requests: the URL in its live lease;
        None for a tenant this writer holds, or when no live writer has said where it is (a standby passes its
        configured tenants on to their holder too). Read at most every `OWNER_CACHE_S` per tenant."""
        if self.tenants is None or tenant in self._held:
            return None
        now = time.monotonic()
        cached = self._owners.get(tenant)
        if cached is not None and now - cached[0] < OWNER_CACHE_S:
            return cached[1]
        lease = self._live(tenant)
        url = lease.get("url") if lease else None
        url = url if isinstance(url, str) and url and url != self.url else None
        self._owners[tenant] = (now, url)
        return url

    def release(self) -> None:
        """Give up every lease (on close), so another writer may take the tenants at once."""
        with self._lock:
            for tenant in sorted(self._held):
                lease = self._read(tenant)
                if lease and lease["writer"] == self.writer:
                    self.storage.delete(f"{tenant}/writer.json")
            self._held.clear()
