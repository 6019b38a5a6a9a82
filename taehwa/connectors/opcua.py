"""OPC UA (asyncua): a subscription with one monitored item per mapped node (sampling interval, absolute deadband),
user/password and Basic256Sha256 certificates, reconnect with backoff and resubscription after the server restarts,
and a browse of the server's address space that proposes a tag mapping."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

from taehwa.connectors.config import OpcUaConnector, OpcUaItem
from taehwa.connectors.link import Link

NUMERIC = {"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double"}


async def _connect(spec: OpcUaConnector) -> Any:
    from asyncua import Client  # type: ignore[attr-defined]

    client = Client(spec.endpoint, timeout=5)
    if spec.username:
        client.set_user(spec.username)
        client.set_password(spec.password or "")
    if spec.security_policy != "None":
        await client.set_security_string(
            f"{spec.security_policy},{spec.security_mode},{spec.certificate},{spec.private_key}"
            + (f",{spec.server_certificate}" if spec.server_certificate else ""))
    await client.connect()
    return client


class _Handler:
    def __init__(self, link: OpcUaLink, tags: dict[Any, str]) -> None:
        self.link, self.tags = link, tags

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        tag = self.tags.get(node.nodeid)
        if tag is None:
            return
        dv = data.monitored_item.Value
        ts = dv.SourceTimestamp or dv.ServerTimestamp
        t_us = int(ts.timestamp() * 1e6) if ts else int(time.time() * 1e6)
        try:
            value = float(val)
        except (TypeError, ValueError):
            self.link.reject(f"node {node.nodeid.to_string()}: value {val!r} is not a number")
            return
        self.link.stage([tag], [t_us], [value])

    def status_change_notification(self, status: Any) -> None:
        self.link.error(f"subscription status: {status}")


class OpcUaLink(Link):
    spec: OpcUaConnector

    def run_source(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._run())
        finally:
            self._loop.close()

    async def _run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                await self._session()
                backoff = 1.0
            except Exception as exc:
                if self.stopping.is_set():
                    break
                self.set_state("disconnected")
                self.error(f"OPC UA session to {self.spec.endpoint} lost: {exc!r}; retrying in {backoff:.0f} s")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _session(self) -> None:
        from asyncua import ua

        s = self.spec
        client = await _connect(s)
        try:
            nodes = {i.node: client.get_node(i.node) for i in s.items}
            tags = {nodes[i.node].nodeid: s.tag_prefix + i.tag for i in s.items}
            sub = await client.create_subscription(s.publish_ms, _Handler(self, tags))
            by_interval: dict[float, list[Any]] = {}
            for item in s.items:
                if item.deadband > 0:
                    await sub.deadband_monitor(nodes[item.node], item.deadband, deadbandtype=1)
                else:
                    by_interval.setdefault(item.sampling_ms, []).append(nodes[item.node])
            for interval, group in by_interval.items():
                for k in range(0, len(group), 1000):
                    handles = await sub.subscribe_data_change(group[k:k + 1000], sampling_interval=interval)
                    bad = [h for h in handles if isinstance(h, ua.StatusCode)]
                    if bad:
                        self.error(f"{len(bad)} nodes could not be monitored, first: {bad[0]}")
            self.set_state("connected", endpoint=s.endpoint, monitored=len(s.items))
            while not self.stopping.is_set():
                await asyncio.sleep(0.5)
                await client.check_connection()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2)


async def browse(endpoint: str, *, depth: int = 6, limit: int = 10_000, username: str | None = None,
                 password: str | None = None) -> list[dict[str, str]]:
    """Numeric variables under Objects, each with a proposed tag from its browse path (lowercase, '/'-separated)."""
    spec = OpcUaConnector(protocol="opcua", name="browse", endpoint=endpoint, username=username, password=password,
                          items=[OpcUaItem(node="i=2253", tag="x")])
    client = await _connect(spec)
    found: list[dict[str, str]] = []
    try:
        from asyncua import ua

        async def walk(node: Any, path: list[str], level: int) -> None:
            if level > depth or len(found) >= limit:
                return
            for child in await node.get_children():
                name = (await child.read_browse_name()).Name
                cls = await child.read_node_class()
                if cls == ua.NodeClass.Variable:
                    dtype = await child.read_data_type_as_variant_type()
                    if dtype.name in NUMERIC:
                        tag = "/".join(re.sub(r"[^a-z0-9_.\-]+", "_", p.lower()) for p in [*path, name])
                        found.append({"node": child.nodeid.to_string(), "tag": tag})
                elif cls == ua.NodeClass.Object and name != "Server":
                    await walk(child, [*path, name], level + 1)

        await walk(client.nodes.objects, [], 0)
    finally:
        await client.disconnect()
    return found
