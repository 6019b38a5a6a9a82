"""One running connector: its source (a protocol client) feeds a stager, the stager commits batches to the durable
queue and only then lets the source acknowledge them, and a forwarder drains the queue into the historian.

A link runs whole in the server's process, or split (`role`): the source and stager in a process of their own
(`taehwa.connectors.worker`, for MQTT by default), the forwarder in the server. The queue between them is the same
SQLite file either way, so a split costs no durability, and the source process reports its status and each commit
to the server on a pipe.

Each link reports its status — state, last value time, points/s, backlog, last error with its time — in memory and
in `status.json` beside its queue, so the CLI can read it while the server runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa

from taehwa.connectors.config import Connector
from taehwa.connectors.queue import DurableQueue
from taehwa.connectors.records import ConnectorStatus
from taehwa.core.errors import InvalidInput, TaehwaError
from taehwa.historian.store import Historian

log = logging.getLogger(__name__)

STAGE_MAX_S = 0.02  # how long points wait in memory before their batch is committed to the queue
STAGE_MAX_POINTS = 50_000
STAGE_MAX_ACKS = 200
FORWARD_GATHER_S = 0.05  # how long the forwarder lets commits gather before a historian write (each write has a
# fixed cost — a log fsync, the latest-value merge — that a larger batch shares)


Role = Literal["whole", "forward", "source"]


class Checker(Protocol):
    """What the source side needs of the historian: its checks (the historian itself, or `WindowChecker` in a
    connector's own process)."""

    def normalize(self, data: Any, *, source: str = "input", layout: str = "auto") -> pa.Table: ...


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts else None


@dataclass
class Status:
    """What an engineer asks of a connector: is it connected, is data flowing, is anything stuck or failing?"""

    name: str
    protocol: str
    state: str = "starting"  # starting | connected | disconnected | stopped
    since: float = field(default_factory=time.time)
    last_value_time: float | None = None  # the newest point's own time
    points_total: int = 0
    points_s: float = 0.0
    backlog: int = 0
    rejected: int = 0
    last_error: str | None = None
    last_error_time: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> ConnectorStatus:
        """The status as JSON: times as ISO text, the rate to a tenth."""
        return {
            "name": self.name,
            "protocol": self.protocol,
            "state": self.state,
            "since": _iso(self.since),
            "last_value_time": _iso(self.last_value_time),
            "points_total": self.points_total,
            "points_s": round(self.points_s, 1),
            "backlog": self.backlog,
            "rejected": self.rejected,
            "last_error": self.last_error,
            "last_error_time": _iso(self.last_error_time),
            "detail": dict(self.detail),
        }


class Link:
    """The plumbing every protocol shares; a subclass implements `run_source` (blocking until `stopping`).

    `role`: "whole" runs source, stager and forwarder here; "forward" runs the forwarder here and the rest in a
    connector process (`process.SourceProcess`); "source" is that process's side, reporting through `report`."""

    def __init__(
        self,
        tenant: str,
        spec: Connector,
        historian: Historian | None,
        folder: Path,
        *,
        role: Role = "whole",
        checker: Checker | None = None,
        report: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.tenant, self.spec, self.folder, self.role = tenant, spec, folder, role
        self._historian = historian
        self.checker: Checker = checker or self.historian
        self._report = report
        self._last_status_write = 0.0
        self.queue = DurableQueue(folder / "queue.db")
        self.status = Status(spec.name, spec.protocol, backlog=self.queue.backlog)
        self.stopping = threading.Event()
        self._stage_lock = threading.Lock()
        self._tags: list[str] = []
        self._times: list[int] = []
        self._values: list[float] = []
        self._acks: list[Callable[[], None]] = []
        self._stage_t0: float | None = None
        self._kick = threading.Event()
        self._full = threading.Event()
        self._staged = threading.Event()  # the first point of a batch is staged: the stager's clock starts
        self._threads: list[threading.Thread] = []
        self._rate_window: list[tuple[float, int]] = []
        self._process: Any = None  # process.SourceProcess in the "forward" role
        self._counted = (0, 0)  # points and rejections counted by this link's earlier processes

    def new_process(self) -> None:
        """A new process for this link's source starts counting from 0: keep what the earlier ones counted."""
        self._counted = (self.status.points_total, self.status.rejected)

    @property
    def historian(self) -> Historian:
        """The historian (not in a connector's own process, which only has its checks)."""
        if self._historian is None:
            raise RuntimeError("no historian in a connector's own process")
        return self._historian

    # --- the source side -----------------------------------------------------------------------------------------
    def stage(
        self, tags: list[str], times_us: list[int], values: list[float], ack: Callable[[], None] | None = None
    ) -> None:
        """Hand points over; `ack` is called once they are committed to the durable queue."""
        with self._stage_lock:
            self._tags += tags
            self._times += times_us
            self._values += values
            if ack is not None:
                self._acks.append(ack)
            if self._stage_t0 is None:
                self._stage_t0 = time.monotonic()
                self._staged.set()
            points, acks = len(self._tags), len(self._acks)
        if points >= 2 * STAGE_MAX_POINTS or acks >= 2 * STAGE_MAX_ACKS:
            self.commit()  # the stager is behind: the source waits (its protocol then holds back the sender)
        elif points >= STAGE_MAX_POINTS or acks >= STAGE_MAX_ACKS:
            self._full.set()  # the stager commits while the source goes on reading

    def commit(self) -> int:
        """Commit staged points to the queue, then acknowledge their sources. Points the historian would refuse
        (a bad tag name, a time outside the accepted window) are counted and reported, never queued."""
        with self._stage_lock:
            tags, times, values, acks = self._tags, self._times, self._values, self._acks
            self._tags, self._times, self._values, self._acks = [], [], [], []
            self._stage_t0 = None
        if not tags and not acks:
            return 0
        table = self._checked(
            pa.table(
                {
                    "tag": pa.array(tags, pa.string()),
                    "time": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                    "value": pa.array(values, pa.float64()),
                }
            )
        )
        try:
            self.queue.put(table)
        except TaehwaError as exc:  # queue full: the source keeps its data unacknowledged and resends it
            self.error(str(exc))
            return 0
        for ack in acks:
            try:
                ack()
            except Exception as exc:  # an ack lost on a dropped connection: the source resends, stored once
                log.debug("ack failed: %s", exc)
        if table.num_rows:
            newest = table.column("time").cast(pa.int64()).to_numpy().max() / 1e6
            self.status.last_value_time = max(self.status.last_value_time or 0.0, float(newest))
            self.status.points_total += table.num_rows
            self._rate_window.append((time.monotonic(), table.num_rows))
        self.status.backlog = self.queue.backlog
        self._kick.set()
        if self._report is not None:
            self._report({"committed": int(table.num_rows), "status": asdict(self.status)})
        return int(table.num_rows)

    def _checked(self, table: pa.Table) -> pa.Table:
        try:
            return self.checker.normalize(table, source=f"connector {self.spec.name}")
        except InvalidInput:
            pass
        keep = []
        for i in range(table.num_rows):  # the rare bad batch: find the bad points one by one
            try:
                self.checker.normalize(table.slice(i, 1), source=f"connector {self.spec.name}")
                keep.append(i)
            except InvalidInput as exc:
                self.status.rejected += 1
                self.error(f"point refused: {exc}")
        return (
            self.checker.normalize(table.take(keep), source=f"connector {self.spec.name}")
            if keep
            else table.slice(0, 0)
        )

    def reject(self, reason: str) -> None:
        """A message or record the source sent that cannot become points (reported; acknowledged by the caller)."""
        self.status.rejected += 1
        self.error(reason)

    def error(self, message: str) -> None:
        self.status.last_error, self.status.last_error_time = message[:500], time.time()
        log.warning("connector %s/%s: %s", self.tenant, self.spec.name, message)

    def set_state(self, state: str, **detail: Any) -> None:
        changed = state != self.status.state
        if changed:
            self.status.state, self.status.since = state, time.time()
        self.status.detail.update(detail)
        if changed and self._report is not None:
            self._report({"status": asdict(self.status)})

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        loops: list[tuple[Callable[[], None], str]] = []
        if self.role == "forward":
            from taehwa.connectors.process import SourceProcess

            self._process = SourceProcess(self)
            loops.append((self._process.run, "process"))
        else:
            loops += [(self._source_loop, "source"), (self._stager_loop, "stager")]
        if self.role != "source":
            loops.append((self._forward_loop, "forward"))
        for target, name in loops:
            t = threading.Thread(target=target, name=f"connector-{self.spec.name}-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.stopping.set()
        self._kick.set()
        self._full.set()
        self._staged.set()
        if self._process is not None:
            self._process.stop()  # it commits what it holds and acknowledges it before it goes
        else:
            self.stop_source()
        for t in self._threads:
            t.join(timeout=10)
        self.commit()
        if self.role != "source":
            self._drain_once()
        self.set_state("stopped")
        self.write_status()
        self.queue.close()

    def absorb(self, message: dict[str, Any]) -> None:
        """A report from this link's own process: its status, and the points it committed to the queue. Counts
        go on from the processes before it; its error replaces the server's only when newer."""
        st = message.get("status")
        if isinstance(st, dict):
            for key in ("state", "since", "last_value_time", "points_s", "detail"):
                if key in st:
                    setattr(self.status, key, st[key])
            self.status.points_total = self._counted[0] + int(st.get("points_total") or 0)
            self.status.rejected = self._counted[1] + int(st.get("rejected") or 0)
            if st.get("last_error_time") and st["last_error_time"] > (self.status.last_error_time or 0):
                self.status.last_error, self.status.last_error_time = st.get("last_error"), st["last_error_time"]
        committed = message.get("committed")
        if isinstance(committed, int) and committed > 0:
            self.queue.note_put(committed)
            self._kick.set()
        self.status.backlog = self.queue.backlog
        now = time.monotonic()
        if now - self._last_status_write >= 1.0:
            self._last_status_write = now
            self.write_status()

    def stop_source(self) -> None:
        """Wake the source so that it sees `stopping` (a subclass closes its client here)."""

    def run_source(self) -> None:
        raise NotImplementedError

    def _source_loop(self) -> None:
        try:
            self.run_source()
        except Exception as exc:
            log.exception("connector %s source failed", self.spec.name)
            self.error(f"source stopped: {exc}")
            self.set_state("disconnected")

    def _stager_loop(self) -> None:
        last_status = 0.0
        while not self.stopping.is_set():
            t0, now = self._stage_t0, time.monotonic()
            if t0 is None:  # nothing staged: asleep until the first point comes (or the next status is due)
                self._staged.wait(max(0.0, 1.0 - (now - last_status)))
                self._staged.clear()
            elif self._full.wait(max(0.0, t0 + STAGE_MAX_S - now)):  # a batch's age, or full before then
                self._full.clear()
                self.commit()
            t0 = self._stage_t0
            if t0 is not None and time.monotonic() - t0 >= STAGE_MAX_S:
                self.commit()
            now = time.monotonic()
            if now - last_status >= 1.0:
                self._update_rate(now)
                self.write_status()
                last_status = now

    def _update_rate(self, now: float) -> None:
        self._rate_window = [(t, n) for t, n in self._rate_window if now - t <= 5.0]
        span = max(1.0, min(5.0, now - self._rate_window[0][0])) if self._rate_window else 1.0
        self.status.points_s = sum(n for _, n in self._rate_window) / span

    def _forward_loop(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            if self._kick.wait(0.5):
                self.stopping.wait(FORWARD_GATHER_S)
            self._kick.clear()
            while not self.stopping.is_set():
                try:
                    if not self._drain_once():
                        break
                    backoff = 0.2
                except Exception as exc:  # the historian refuses (unavailable, full): keep it queued, retry
                    self.error(f"historian write failed, kept in the queue: {exc}")
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)

    def _drain_once(self) -> bool:
        batches = self.queue.peek(64)
        if not batches:
            return False
        table = pa.concat_tables([t for _, t in batches])
        self.historian.write_checked(self.tenant, table)
        self.queue.ack(batches[-1][0])
        self.status.backlog = self.queue.backlog
        return True

    def write_status(self) -> None:
        """Write `status.json` atomically (a file per writing thread: the stager and a stopping link may write at
        once); a failure is logged, never fatal to the thread that writes. A connector's own process sends its
        status to the server instead, which writes the file."""
        if self._report is not None:
            self._report({"status": asdict(self.status)})
            return
        self.status.backlog = self.queue.backlog
        tmp = self.folder / f"status.json.{threading.get_ident()}.tmp"
        try:
            tmp.write_text(json.dumps(self.status.to_dict()))
            tmp.replace(self.folder / "status.json")
        except OSError as exc:
            log.warning("connector %s/%s: cannot write its status: %s", self.tenant, self.spec.name, exc)


def make_link(
    tenant: str,
    spec: Connector,
    historian: Historian | None,
    folder: Path,
    *,
    role: Role | None = None,
    checker: Checker | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> Link:
    """The running form of a definition; by default an MQTT connector with `own_process` runs split."""
    if role is None:
        role = "forward" if getattr(spec, "own_process", False) else "whole"
    return link_class(spec.protocol)(tenant, spec, historian, folder, role=role, checker=checker, report=report)


# every connector kind: protocol → (module under taehwa.connectors, its Link class), imported when first used (a
# protocol's client library loads only where a connector of it runs); the contract tests run over each one
KINDS: dict[str, tuple[str, str]] = {
    "mqtt": ("mqtt", "MqttLink"),
    "opcua": ("opcua", "OpcUaLink"),
    "modbus": ("modbus", "ModbusLink"),
    "files": ("files", "FilesLink"),
}


def link_class(protocol: str) -> type[Link]:
    """The Link class of a connector kind."""
    import importlib

    module, name = KINDS[protocol]
    kind: type[Link] = getattr(importlib.import_module(f"taehwa.connectors.{module}"), name)
    return kind
