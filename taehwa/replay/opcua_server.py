"""A real OPC UA server (asyncua) that serves replayed values: one Double variable per tag, in folders along the
tag's path (so a browse proposes the tag names back), each value with its source timestamp, and optionally a
history (in memory, or in SQLite that outlives a restart) so that clients can fill gaps by HistoryRead.

The server runs its own event loop on a thread; `write` may be called from any other thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import threading
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from taehwa.connectors.opcua import close_loop
from taehwa.core.errors import Unavailable
from taehwa.core.loopback import free_port

NAMESPACE = "urn:taehwa:replay"
FIRST_ID = 1000  # numeric node ids from here, one per tag in sorted order (stable across restarts)


def _ua() -> Any:
    """asyncua's `ua` module, untyped: its NewType'd integers and dynamic exports defeat the type checker."""
    import importlib

    return importlib.import_module("asyncua.ua")


@functools.cache  # once per process: a second patch would wrap the first
def _tune_asyncua() -> None:
    """Two changes to asyncua's server in this process (pinned version 2.1.0):
    - it deep-copies every value it hands to a monitored item (to guard against callers that mutate a written
      DataValue); ours are built fresh for each write and never touched again, and the copy is three quarters of the
      server's time under load, so the reference is kept instead;
    - its deadband check subtracts from the previous value even when that was empty (a node still waiting for its
      first value) and fails; an empty previous value now counts as a change, as the specification has it."""
    from asyncua.server import monitored_item_service as mis

    def keep(self: Any, value: Any) -> None:
        self.old_dvalue, self.current_dvalue = self.current_dvalue, value

    original = mis.MonitoredItemService._is_deadband_exceeded

    def deadband(self: Any, values: Any, flt: Any) -> bool:
        old, cur = values.get_old_datavalue(), values.get_current_datavalue()
        if (
            old is None
            or cur is None
            or old.Value is None
            or cur.Value is None
            or old.Value.Value is None
            or cur.Value.Value is None
        ):
            return True
        return bool(original(self, values, flt))

    mis.MonitoredItemValues.set_current_datavalue = keep  # type: ignore[method-assign,assignment]
    mis.MonitoredItemService._is_deadband_exceeded = deadband  # type: ignore[method-assign]


class ReplayServer:
    """Serve a fixed set of tags over OPC UA on `endpoint` (history: values kept per node in memory, or the SQLite
    file `history_db`; 0 and None for none)."""

    def __init__(
        self, endpoint: str = "opc.tcp://127.0.0.1:4840/taehwa/", *, history: int = 0, history_db: Path | None = None
    ) -> None:
        # port 0 asks for any free loopback port; the endpoint then names the one chosen
        self.endpoint = re.sub(r"^(opc\.tcp://[^/:]+):0(?=/|$)", lambda m: f"{m.group(1)}:{free_port()}", endpoint)
        self.history, self.history_db = history, history_db
        self.ns = 2
        self.ids: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._stopped: asyncio.Event | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def start(self, tags: list[str], timeout: float = 120.0) -> None:
        """Create the address space for `tags` and start listening; returns once clients can connect."""
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(sorted(set(tags)), ready), name="opcua-replay", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=timeout)
        except OSError as exc:  # the port is taken, the address is not ours
            self._thread.join(timeout=10)
            raise Unavailable(
                f"the OPC UA replay server cannot listen on {self.endpoint}: {exc.strerror or exc}", where="port"
            ) from None

    def _run(self, tags: list[str], ready: Future[None]) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve(tags, ready))
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
        finally:
            close_loop(self._loop)

    async def _serve(self, tags: list[str], ready: Future[None]) -> None:
        from asyncua import Server  # type: ignore[attr-defined]

        ua = _ua()

        _tune_asyncua()
        # a replay server on loopback without security, by design: asyncua's warnings that passwords may travel in
        # plain text and certificates go unchecked say nothing new here, so they are not printed (errors are)
        logging.getLogger("asyncua.server.server").setLevel(logging.ERROR)
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("Taehwa replay")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.ns = await server.register_namespace(NAMESPACE)
        nodes = await self._build(server, tags)
        if self.history_db is not None:
            from asyncua.server.history_sql import HistorySQLite

            storage = HistorySQLite(str(self.history_db))
            await storage.init()
            server.iserver.history_manager.set_storage(storage)
        if self.history_db is not None or self.history:
            for node in nodes:
                await server.historize_node_data_change(node, period=None, count=self.history)  # type: ignore[arg-type]
        self._stopped = asyncio.Event()
        async with server:
            self._server = server
            ready.set_result(None)
            await self._stopped.wait()
        self._server = None

    async def _build(self, server: Any, tags: list[str]) -> list[Any]:
        """Folders along each tag's path, then every variable in one AddNodes call per thousand."""
        ua = _ua()
        folders: dict[str, Any] = {"": server.nodes.objects.nodeid}
        items = []
        for k, tag in enumerate(tags):
            *path, leaf = tag.split("/")
            parent = ""
            for level in path:
                here = f"{parent}/{level}" if parent else level
                if here not in folders:
                    node = await server.get_node(folders[parent]).add_folder(
                        ua.NodeId(f"folder:{here}", self.ns), ua.QualifiedName(level, self.ns)
                    )
                    folders[here] = node.nodeid
                parent = here
            self.ids[tag] = FIRST_ID + k
            item = ua.AddNodesItem()
            item.RequestedNewNodeId = ua.NodeId(FIRST_ID + k, self.ns)
            item.BrowseName = ua.QualifiedName(leaf, self.ns)
            item.NodeClass = ua.NodeClass.Variable
            item.ParentNodeId = folders[parent]
            item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
            item.TypeDefinition = ua.NodeId(ua.ObjectIds.BaseDataVariableType)
            attrs = ua.VariableAttributes()
            attrs.DisplayName = ua.LocalizedText(leaf)
            attrs.Description = ua.LocalizedText(tag)
            attrs.DataType = ua.NodeId(ua.ObjectIds.Double)
            attrs.Value = ua.Variant(0.0, ua.VariantType.Double)
            attrs.ValueRank = ua.ValueRank.Scalar
            attrs.AccessLevel = attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
            item.NodeAttributes = attrs
            items.append(item)
        for k in range(0, len(items), 1000):
            for result in await server.iserver.isession.add_nodes(items[k : k + 1000]):
                result.StatusCode.check()
        waiting = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData))
        for k in range(len(tags)):  # no value until the first one is played
            await server.write_attribute_value(ua.NodeId(FIRST_ID + k, self.ns), waiting)
        return [server.get_node(ua.NodeId(FIRST_ID + k, self.ns)) for k in range(len(tags))]

    def stop(self) -> None:
        """Stop serving (clients see the connection drop)."""
        if self._loop is not None and self._stopped is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    # --- data ----------------------------------------------------------------------------------------------------
    def write(self, table: pa.Table) -> None:
        """Publish points (columns tag, time, value; tags this server serves): each becomes a value change with the
        point's time as its source timestamp, in the order given."""
        if self._loop is None or self._server is None or not table.num_rows:
            return
        tags = table.column("tag").to_pylist()
        times = table.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
        values = table.column("value").cast(pa.float64()).to_pylist()
        unknown = next((t for t in tags if t not in self.ids), None)
        if unknown is not None:
            raise KeyError(f"tag {unknown!r} is not served by this replay server")
        asyncio.run_coroutine_threadsafe(self._write(tags, times, values), self._loop).result(timeout=60)

    async def _write(self, tags: list[str], times: list[int], values: list[float]) -> None:
        ua = _ua()
        # naive UTC datetimes: asyncua encodes them as UTC, and its SQLite history can read them back (it cannot
        # parse the offset of aware ones)
        now = datetime.now(UTC).replace(tzinfo=None)
        epoch = datetime(1970, 1, 1)
        iserver, ns, ids = self._server.iserver, self.ns, self.ids
        for tag, t, v in zip(tags, times, values, strict=True):
            stamp = epoch + timedelta(microseconds=t)
            dv = ua.DataValue(ua.Variant(v, ua.VariantType.Double), SourceTimestamp=stamp, ServerTimestamp=now)
            await iserver.write_attribute_value(ua.NodeId(ids[tag], ns), dv)

    # --- for clients ---------------------------------------------------------------------------------------------
    def node_id(self, tag: str) -> str:
        return f"ns={self.ns};i={self.ids[tag]}"

    def connector(self, name: str = "replay", *, publish_ms: float = 200.0, sampling_ms: float = 0.0) -> dict[str, Any]:
        """A connector definition that maps every served node to its tag (filling gaps from the server's history only
        when it keeps one: asking a server without history logs an error per node)."""
        return {
            "name": name,
            "protocol": "opcua",
            "endpoint": self.endpoint,
            "publish_ms": publish_ms,
            "history_fill": bool(self.history or self.history_db),
            "description": "OPC UA replay server (taehwa replay)",
            "items": [{"node": self.node_id(tag), "tag": tag, "sampling_ms": sampling_ms} for tag in sorted(self.ids)],
        }

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
