"""The replay clock: data set rows played as if measured now, at `speed` times their native rate, run after run,
for ever, handed to a sink — the historian directly, a replay OPC UA server, or an MQTT broker.

Points are stamped with the wall-clock time of their (accelerated) replay, so the twin's live state, staleness and
change streams behave exactly as with a real plant. After a pause (a slow disk, a suspended laptop) at most
`max_catch_up` rows per source are sent at once; older rows are skipped rather than flooding the receiver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from taehwa.demo.plant import Source
from taehwa.historian.store import Historian

log = logging.getLogger(__name__)
Sink = Callable[[pa.Table], None]


def historian_sink(historian: Historian, tenant: str) -> Sink:
    """Write replayed points straight into a tenant's historian (no protocol in between)."""

    def write(table: pa.Table) -> None:
        historian.write(tenant, table, source="replay")

    return write


@dataclass
class _Cursor:
    source: Source
    lengths: np.ndarray  # cumulative row counts of the runs
    sent: int = 0  # rows written so far

    def row(self, k: int) -> tuple[str, np.ndarray]:
        """Row k of the endless playlist: (run name, values)."""
        total = int(self.lengths[-1])
        k %= total
        run = int(np.searchsorted(self.lengths, k, side="right"))
        start = int(self.lengths[run - 1]) if run else 0
        name, rows = self.source.runs[run]
        return name, rows[k - start]


class Replayer:
    """Plays sources into a sink on a background thread (or step by step, for tests)."""

    def __init__(
        self, sources: list[Source], speed: float, sink: Sink, *, tick_s: float = 0.2, max_catch_up: int = 600
    ) -> None:
        self.sink = sink
        self.speed = speed
        self.tick_s = tick_s
        self.max_catch_up = max_catch_up
        self._cursors = [_Cursor(s, np.cumsum([len(r) for _, r in s.runs])) for s in sources if s.runs]
        self._t0: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.points = 0

    def step(self, now: float | None = None) -> int:
        """Send every row that is due by `now` (seconds since the epoch); returns the points sent."""
        now = time.time() if now is None else now
        if self._t0 is None:
            self._t0 = now
        tags: list[np.ndarray] = []
        times: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for c in self._cursors:
            period = c.source.interval_s / self.speed  # wall seconds between rows
            due = int((now - self._t0) / period) + 1
            if due - c.sent > self.max_catch_up:
                c.sent = due - self.max_catch_up
            for k in range(c.sent, due):
                _, row = c.row(k)
                ok = np.isfinite(row)
                tags.append(np.asarray(c.source.tags, dtype=object)[ok])
                times.append(np.full(int(ok.sum()), int((self._t0 + k * period) * 1e6), dtype=np.int64))
                values.append(row[ok])
            c.sent = max(c.sent, due)
        if not tags:
            return 0
        table = pa.table(
            {
                "tag": pa.array(np.concatenate(tags), pa.string()),
                "time": pa.array(np.concatenate(times)).cast(pa.timestamp("us", tz="UTC")),
                "value": pa.array(np.concatenate(values), pa.float64()),
            }
        )
        self.sink(table)
        n = int(table.num_rows)
        self.points += n
        return n

    def status(self) -> list[dict[str, Any]]:
        """What each source is replaying now."""
        out = []
        for c in self._cursors:
            name, _ = c.row(max(c.sent - 1, 0))
            total = int(c.lengths[-1])
            out.append(
                {
                    "source": c.source.name,
                    "run": name,
                    "row": (max(c.sent - 1, 0) % total) + 1,
                    "rows": total,
                    "interval_s": c.source.interval_s,
                    "speed": self.speed,
                }
            )
        return out

    def start(self) -> None:
        """Replay on a background thread until `stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("replay failed; retrying")
            self._stop.wait(self.tick_s)

    def stop(self) -> None:
        """Stop replaying."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
