"""Connectors as a service: definitions kept in the metadata database (so the CLI, HTTP and YAML all manage the same
set), and a runtime in the serving process that starts, restarts and stops links to match them.

The runtime looks at the definitions every few seconds, so a connector added with the CLI beside a running server
starts without a restart. Each link keeps its queue and status under `<data_dir>/connectors/<tenant>/<name>/`.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy import Engine, delete, insert, select, update

from taehwa.connectors.config import Connector, FilesConnector, item_tags, parse_connectors
from taehwa.connectors.link import Link, make_link
from taehwa.connectors.queue import DurableQueue
from taehwa.connectors.records import ConnectorStatus, ConnectorSummary, ConnectorView
from taehwa.core.errors import Conflict, NotFound, Unavailable
from taehwa.db import connectors
from taehwa.historian.store import Historian
from taehwa.tenancy.access import current
from taehwa.tenancy.audit import AuditLog
from taehwa.tenancy.files import FileRoots
from taehwa.tenancy.tenants import TenantService

log = logging.getLogger(__name__)


class CheckedConnector(TypedDict):
    """A definition `ConnectorService.check` found valid: its name, protocol, items and the fixed tags it maps
    to (a mapping, as the API answers it)."""

    name: str
    protocol: str
    items: int
    tags: list[str]


class ConnectorService:
    """Add, list, inspect and remove connectors; run them (in the server) with `start`."""

    def __init__(
        self,
        engine: Engine,
        tenants: TenantService,
        audit: AuditLog,
        historian: Historian,
        root: Path,
        *,
        files: FileRoots,
    ) -> None:
        self.engine, self.tenants, self.audit, self.historian, self.root = engine, tenants, audit, historian, root
        self.files = files
        self._links: dict[tuple[str, str], tuple[str, Link]] = {}  # (tenant, name) → (spec JSON, link)
        self._reconcile_lock = threading.Lock()
        self._parsed: dict[str, Connector] = {}  # stored spec JSON → its definition (parsed once, not every tick)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def folder(self, tenant: str, name: str) -> Path:
        return self.root / tenant / name

    # --- definitions ---------------------------------------------------------------------------------------------
    def add(self, tenant: str, doc: Any, *, replace: bool = False, source: str = "connectors") -> list[str]:
        """Store one or more definitions, checked as a whole; an existing name is a conflict unless `replace`."""
        self.tenants.require(tenant, "admin")
        specs = [self._confined(tenant, s, source) for s in parse_connectors(doc, source=source)]
        now, actor = datetime.now(UTC), current().user
        with self.engine.begin() as c:
            existing = {r.name for r in c.execute(select(connectors.c.name).where(connectors.c.tenant == tenant))}
            clash = [s.name for s in specs if s.name in existing]
            if clash and not replace:
                raise Conflict(f"connector {clash[0]!r} exists; remove it first or replace it", where="name")
            for s in specs:
                row = {"protocol": s.protocol, "spec": s.model_dump_json(), "created_by": actor, "updated_at": now}
                if s.name in existing:
                    c.execute(
                        update(connectors)
                        .where(connectors.c.tenant == tenant, connectors.c.name == s.name)
                        .values(**row)
                    )
                else:
                    c.execute(insert(connectors).values(tenant=tenant, name=s.name, **row))
        for s in specs:
            self.audit.append("connector.add", tenant=tenant, target=s.name, after=s.model_dump(mode="json"))
        self.wake()
        return [s.name for s in specs]

    def check(self, tenant: str, doc: Any, *, source: str = "connector") -> list[CheckedConnector]:
        """Check definitions as `add` would (fields, names, drop folders) without storing anything: each one's
        name, protocol and the fixed tags it maps to (tenant admins, as for `add`)."""
        self.tenants.require(tenant, "admin")
        specs = [self._confined(tenant, s, source) for s in parse_connectors(doc, source=source)]
        return [
            CheckedConnector(
                name=s.name, protocol=s.protocol, items=len(s.items) if hasattr(s, "items") else 0, tags=item_tags(s)
            )
            for s in specs
        ]

    def browse(
        self,
        tenant: str,
        endpoint: str,
        *,
        username: str | None = None,
        password: str | None = None,
        depth: int = 6,
        limit: int = 2000,
        timeout_s: float = 20.0,
    ) -> list[dict[str, str]]:
        """An OPC UA server's numeric variables, each with a proposed tag (tenant admins: they may point the
        server at a plant server, as a connector does); a server that does not answer is named with the reason."""
        import asyncio

        from taehwa.connectors.opcua import browse as walk

        self.tenants.require(tenant, "admin")
        parse_connectors(
            {"name": "browse", "protocol": "opcua", "endpoint": endpoint, "items": [{"node": "i=2253", "tag": "x"}]},
            source="browse",
        )  # the endpoint's form
        try:
            return asyncio.run(
                asyncio.wait_for(
                    walk(
                        endpoint,
                        depth=max(1, min(depth, 10)),
                        limit=max(1, min(limit, 10_000)),
                        username=username,
                        password=password,
                    ),
                    timeout_s,
                )
            )
        except Exception as exc:  # any failure of the remote server (refused, timed out, a UA status) is its answer
            raise Unavailable(f"cannot browse {endpoint}: {exc or type(exc).__name__}", where="endpoint") from None

    def _confined(self, tenant: str, spec: Connector, source: str) -> Connector:
        """A drop folder resolved, by the one rule for caller-named paths, to a real folder the tenant may use,
        and stored so (the link then refuses it if a link is later put in its place)."""
        if not isinstance(spec, FilesConnector):
            return spec
        folder = self.files.resolve(tenant, spec.folder, where=f"{source}:{spec.name}.folder", folder=True)
        return spec.model_copy(update={"folder": str(folder)})

    def definitions(self, tenant: str | None = None) -> list[tuple[str, Connector]]:
        return [(t, spec) for t, _, spec in self._stored(tenant)]

    def _stored(self, tenant: str | None = None) -> list[tuple[str, str, Connector]]:
        """(tenant, stored JSON, definition) of every connector; a definition of thousands of items takes a while
        to validate, so each stored text is parsed once."""
        q = select(connectors.c.tenant, connectors.c.spec).order_by(connectors.c.tenant, connectors.c.name)
        if tenant is not None:
            q = q.where(connectors.c.tenant == tenant)
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        out = []
        for r in rows:
            raw = r.spec if isinstance(r.spec, str) else json.dumps(r.spec)
            spec = self._parsed.get(raw)
            if spec is None:
                spec = parse_connectors(json.loads(raw))[0]
                if len(self._parsed) > 1000:
                    self._parsed.clear()
                self._parsed[raw] = spec
            out.append((r.tenant, raw, spec))
        return out

    def get(self, tenant: str, name: str) -> ConnectorView:
        self.tenants.require(tenant, "read")
        for _t, spec in self.definitions(tenant):
            if spec.name == name:
                return {
                    "definition": spec.model_dump(mode="json", exclude={"password"}),
                    "status": self.status(tenant, name),
                }
        raise NotFound(f"no connector {name!r}", where="name")

    def list(self, tenant: str) -> list[ConnectorSummary]:
        self.tenants.require(tenant, "read")
        return [
            {
                "name": s.name,
                "protocol": s.protocol,
                "enabled": s.enabled,
                "items": len(getattr(s, "items", [])),
                "status": self.status(tenant, s.name),
            }
            for _, s in self.definitions(tenant)
        ]

    def status(self, tenant: str, name: str) -> ConnectorStatus:
        """Live status from this process when it runs the connector, else what the running server last wrote."""
        self.tenants.require(tenant, "read")
        with self._lock:
            running = self._links.get((tenant, name))
        if running is not None:
            link = running[1]
            link.status.backlog = link.queue.backlog
            return link.status.to_dict()
        path = self.folder(tenant, name) / "status.json"
        doc: ConnectorStatus = json.loads(path.read_text()) if path.exists() else {"name": name, "state": "not running"}
        queue = self.folder(tenant, name) / "queue.db"
        if queue.exists():
            q = DurableQueue(queue)
            doc["backlog"] = q.backlog
            q.close()
        return doc

    def remove(self, tenant: str, name: str, *, force: bool = False) -> None:
        """Stop and delete a connector; refused while points still wait in its queue, unless `force`."""
        self.tenants.require(tenant, "admin")
        if not any(s.name == name for _, s in self.definitions(tenant)):
            raise NotFound(f"no connector {name!r}", where="name")
        backlog = int(self.status(tenant, name).get("backlog") or 0)
        if backlog and not force:
            raise Conflict(
                f"connector {name!r} still has {backlog} points waiting for the historian; wait, or "
                "remove it with force (they are lost)",
                where="name",
            )
        with self.engine.begin() as c:
            c.execute(delete(connectors).where(connectors.c.tenant == tenant, connectors.c.name == name))
        self._stop_link((tenant, name))
        shutil.rmtree(self.folder(tenant, name), ignore_errors=True)
        self.audit.append("connector.remove", tenant=tenant, target=name, after={"force": force, "lost": backlog})

    # --- the runtime ---------------------------------------------------------------------------------------------
    def start(self, interval_s: float = 2.0) -> None:
        """Run every enabled connector of every tenant, following changes to the definitions (once; a second call
        only wakes the running loop)."""
        if getattr(self, "_thread", None) is not None:
            self.reconcile()
            return
        self._interval = interval_s
        self._wake = threading.Event()
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name="connectors", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        if self._thread is not None:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.reconcile()
            except Exception:
                log.exception("connector runtime: reconcile failed")

    def reconcile(self) -> None:
        """Start new or changed connectors, stop removed or disabled ones. One reconcile at a time: the runtime's
        loop (woken by a change) and a caller of `start` could otherwise both start a link for the same new
        connector, and the one not recorded would run on unseen, a second session into the same queue."""
        with self._reconcile_lock:
            self._reconcile()

    def _reconcile(self) -> None:
        # with writers partitioned by tenant, each runs only its own tenants' connectors
        wanted = {
            (t, s.name): (raw, s) for t, raw, s in self._stored() if s.enabled and self.historian.leases.active(t)
        }
        with self._lock:
            running = dict(self._links)
        for key, (text, _) in running.items():
            if key not in wanted or wanted[key][0] != text:
                self._stop_link(key)
        for key, (text, spec) in wanted.items():
            if key in running and running[key][0] == text:
                continue
            link = make_link(key[0], spec, self.historian, self.folder(*key))
            link.start()
            with self._lock:
                self._links[key] = (text, link)

    def _stop_link(self, key: tuple[str, str]) -> None:
        with self._lock:
            found = self._links.pop(key, None)
        if found is not None:
            found[1].stop()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._wake.set()
            self._thread.join(timeout=10)
        for key in list(self._links):
            self._stop_link(key)
