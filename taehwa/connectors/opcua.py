"""OPC UA (asyncua): a subscription with one monitored item per mapped node (sampling interval, absolute deadband),
user/password and Basic256Sha256 certificates, reconnect with backoff and resubscription after the server restarts,
and a browse of the server's address space that proposes a tag mapping."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from taehwa.connectors.config import OpcUaConnector, OpcUaItem
from taehwa.connectors.link import Link

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what asyncua left running on a private event loop, then close it."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    with contextlib.suppress(Exception):
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def _us(ts: datetime) -> int:
    """µs since the epoch of an OPC UA timestamp (naive ones are UTC)."""
    return int((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp() * 1e6)


NUMERIC = {"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Float", "Double"}


async def _connect(spec: OpcUaConnector) -> Any:
    from asyncua import Client  # type: ignore[attr-defined]

    client = Client(spec.endpoint, timeout=5)
    client.session_timeout = 600_000  # what most servers grant (asyncua's own at most); asking for more only warns
    if spec.username:
        client.set_user(spec.username)
        client.set_password(spec.password or "")
    if spec.security_policy != "None":
        await client.set_security_string(
            f"{spec.security_policy},{spec.security_mode},{spec.certificate},{spec.private_key}"
            + (f",{spec.server_certificate}" if spec.server_certificate else "")
        )
    await client.connect()
    return client


def status_name(status: Any) -> str:
    """An OPC UA status code in words (BadConnectionClosed: the connection was closed), not an integer."""
    from asyncua import ua

    try:
        code = ua.StatusCode(ua.UInt32(int(getattr(status, "value", status))))
        return f"{code.name}: {code.doc}" if code.doc else str(code.name)
    except (TypeError, ValueError):
        return str(status)


def _take_values(link: OpcUaLink, tags: dict[Any, str], events: list[Any]) -> None:
    """The values of one publish response, staged together: good numbers with their source times; a bad-quality
    value (e.g. waiting for initial data) is skipped, a value that is not a number reported."""
    from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent

    out_tags: list[str] = []
    out_times: list[int] = []
    out_values: list[float] = []
    now_us = int(time.time() * 1e6)
    for ev in events:
        if isinstance(ev, StatusChangeEvent):
            link.error(f"subscription status: {status_name(ev.notification.Status)}")
            continue
        if not isinstance(ev, DataChangeEvent):
            continue
        tag = tags.get(ev.node.nodeid)
        if tag is None:
            continue
        dv = ev.data.monitored_item.Value
        if dv.StatusCode is not None and not dv.StatusCode.is_good():
            continue
        ts = dv.SourceTimestamp or dv.ServerTimestamp
        t_us = _us(ts) if ts else now_us
        try:
            value = float(ev.value)
        except (TypeError, ValueError):
            link.reject(f"node {ev.node.nodeid.to_string()}: value {ev.value!r} is not a number")
            continue
        link.last_seen[tag] = t_us
        out_tags.append(tag)
        out_times.append(t_us)
        out_values.append(value)
    if out_tags:
        link.stage(out_tags, out_times, out_values)


@functools.cache
def _bulk_subscription() -> type:
    """asyncua's Subscription, handing each publish response's values to the link at once. (In handler mode
    asyncua 2.1 schedules one task per value, which cost more than everything else the connector does; in
    iterator mode each value goes through a bounded queue that drops values when it overflows.)"""
    from asyncua.common.subscription import Subscription

    class BulkSubscription(Subscription):
        def __init__(self, link: OpcUaLink, tags: dict[Any, str], *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.link, self.tags = link, tags
            self.batch: list[Any] = []

        def _deliver(self, event: Any) -> None:
            self.batch.append(event)

        async def publish_callback(self, publish_result: Any) -> None:
            self.batch = []
            await super().publish_callback(publish_result)
            batch, self.batch = self.batch, []
            _take_values(self.link, self.tags, batch)

    return BulkSubscription


async def _subscribe(client: Any, link: OpcUaLink, tags: dict[Any, str], publish_ms: float) -> Any:
    """A subscription as `Client.create_subscription` makes one, of the bulk kind."""
    from asyncua import ua

    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = publish_ms
    params.RequestedLifetimeCount = 10000
    params.RequestedMaxKeepAliveCount = client.get_keepalive_count(publish_ms)
    params.MaxNotificationsPerPublish = 10000
    params.PublishingEnabled = True
    params.Priority = 0
    sub = _bulk_subscription()(link, tags, client.uaclient.session, params, None)
    sub.set_overflow_disconnect_handler(client.uaclient.notify_transport_lost)
    results = await sub.init()
    revised = client.get_subscription_revised_params(params, results)
    if revised:
        await sub.update(revised)
    client._subscriptions.append(sub)
    return sub


class OpcUaLink(Link):
    spec: OpcUaConnector
    last_seen: dict[str, int]  # tag → source time (µs) of the newest value received, where the next gap fill starts

    def run_source(self) -> None:
        self.last_seen = self._stored_times()
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._run())
        finally:
            close_loop(self._loop)

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
            since = dict(self.last_seen)  # where this session's gap fill starts, before any value arrives
            sub = await _subscribe(client, self, tags, s.publish_ms)
            # every sample the server takes is a point for the historian, so a repeated value with a new timestamp is
            # reported too (trigger StatusValueTimestamp); a deadband item reports only changes beyond its deadband
            groups: dict[tuple[float, int, float], list[Any]] = {}
            for item in s.items:
                groups.setdefault((item.sampling_ms, item.queue_size, item.deadband), []).append(nodes[item.node])
            value_attr = ua.AttributeIds.Value  # type: ignore[attr-defined]
            for (interval, size, deadband), group in groups.items():
                flt = (
                    ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
                    if deadband == 0
                    else ua.DataChangeFilter(
                        Trigger=ua.DataChangeTrigger.StatusValue,
                        DeadbandType=ua.DeadbandType.Absolute,
                        DeadbandValue=deadband,
                    )
                )
                for k in range(0, len(group), 1000):
                    handles = await sub._subscribe(
                        group[k : k + 1000], value_attr, flt, size, sampling_interval=interval
                    )
                    bad = [h for h in handles if isinstance(h, ua.StatusCode)]
                    if bad:
                        self.error(f"{len(bad)} nodes could not be monitored, first: {bad[0]}")
            self.set_state("connected", endpoint=s.endpoint, monitored=len(s.items))
            if s.history_fill:
                await self._fill_gaps(client, {tags[n.nodeid]: n for n in nodes.values()}, since)
            while not self.stopping.is_set():
                await asyncio.sleep(0.5)
                await client.check_connection()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2)

    def _stored_times(self) -> dict[str, int]:
        """The newest stored time of each mapped tag: where a gap fill starts after the platform restarts."""
        tags = [self.spec.tag_prefix + i.tag for i in self.spec.items]
        try:
            latest = self.historian.latest(self.tenant, tags)
        except Exception:  # nothing stored yet
            return {}
        times = latest.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
        return dict(zip(latest.column("tag").to_pylist(), times, strict=True))

    async def _fill_gaps(self, client: Any, nodes: dict[str, Any], since: dict[str, int]) -> None:
        """Read the server's history for the values each tag missed while disconnected (HistoryRead, a few hundred
        nodes a request, following continuation points), from `since`: each tag's newest time before this session
        subscribed. (Not from what the subscription has brought since: its first notification carries the newest
        value, and a gap fill starting there would skip everything between.) Values already stored come back
        identical and the historian keeps one per (tag, time), so overlaps cost nothing."""
        from asyncua import ua

        now = datetime.now(UTC)
        floor = int((now.timestamp() - self.spec.history_fill_max_s) * 1e6)
        todo = sorted((max(t, floor), tag) for tag, t in since.items() if tag in nodes)
        recovered = 0
        unsupported = 0
        for k in range(0, len(todo), 200):
            chunk = todo[k : k + 200]
            details = ua.ReadRawModifiedDetails(
                IsReadModified=False,
                NumValuesPerNode=10_000,
                ReturnBounds=False,
                StartTime=_EPOCH + timedelta(microseconds=chunk[0][0]),
                EndTime=now,
            )
            pending: list[tuple[str, bytes | None]] = [(tag, None) for _, tag in chunk]
            while pending and not self.stopping.is_set():
                params = ua.HistoryReadParameters(
                    HistoryReadDetails=details,
                    TimestampsToReturn=ua.TimestampsToReturn.Both,
                    ReleaseContinuationPoints=False,
                )
                params.NodesToRead = [
                    ua.HistoryReadValueId(NodeId=nodes[tag].nodeid, ContinuationPoint=cp) for tag, cp in pending
                ]
                results = await client.uaclient.history_read(params)
                follow: list[tuple[str, bytes | None]] = []
                for (tag, _), result in zip(pending, results, strict=True):
                    if not result.StatusCode.is_good() or result.HistoryData is None:
                        unsupported += 1
                        continue
                    tags, times, values = [], [], []
                    for dv in result.HistoryData.DataValues or []:
                        ts = dv.SourceTimestamp or dv.ServerTimestamp
                        if ts is None or dv.Value is None:
                            continue
                        try:
                            values.append(float(dv.Value.Value))
                        except (TypeError, ValueError):
                            continue
                        tags.append(tag)
                        times.append(_us(ts))
                    if tags:
                        self.last_seen[tag] = max(self.last_seen.get(tag, 0), max(times))
                        self.stage(tags, times, values)
                        recovered += len(tags)
                    if result.ContinuationPoint:
                        follow.append((tag, result.ContinuationPoint))
                pending = follow
        if unsupported:
            self.error(
                f"{unsupported} nodes keep no history on the server: values changed while disconnected "
                "could not be recovered for them"
            )
        self.set_state("connected", history_recovered=recovered)


async def browse(
    endpoint: str, *, depth: int = 6, limit: int = 10_000, username: str | None = None, password: str | None = None
) -> list[dict[str, str]]:
    """Numeric variables under Objects, each with a proposed tag from its browse path (lowercase, '/'-separated)."""
    spec = OpcUaConnector(
        protocol="opcua",
        name="browse",
        endpoint=endpoint,
        username=username,
        password=password,
        items=[OpcUaItem(node="i=2253", tag="x")],
    )
    client = await _connect(spec)
    found: list[dict[str, str]] = []
    try:
        from asyncua import ua

        async def walk(node: Any, path: list[str], level: int) -> None:
            if level > depth or len(found) >= limit:
                return
            for child in await node.get_children():
                if len(found) >= limit:
                    return
                name = (await child.read_browse_name()).Name
                cls = await child.read_node_class()
                if cls == ua.NodeClass.Variable:
                    dtype = await child.read_data_type_as_variant_type()
                    if dtype.name in NUMERIC and child.nodeid.NamespaceIndex != 0:
                        tag = "/".join(re.sub(r"[^a-z0-9_.\-]+", "_", p.lower()) for p in [*path, name])
                        found.append({"node": child.nodeid.to_string(), "tag": tag})
                elif cls == ua.NodeClass.Object and name not in ("Server", "Aliases"):
                    await walk(child, [*path, name], level + 1)

        await walk(client.nodes.objects, [], 0)
    finally:
        await client.disconnect()
    return found
