"""Replaying the demo data sets as live plant data: each source's rows are written into the historian as if they
were being measured now, at `speed` times their native rate, run after run, for ever.

Points are stamped with the wall-clock time of their (accelerated) replay, so the twin's live state, staleness and
change streams behave exactly as with a real plant. After a pause (a slow disk, a suspended laptop) at most
`max_catch_up` rows per source are written at once; older rows are skipped rather than flooding the store.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from taehwa.demo.plant import Source
from taehwa.historian.store import Historian
from taehwa.platform import Platform

log = logging.getLogger(__name__)


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
    """Writes the demo sources into one tenant's historian on a background thread."""

    def __init__(self, historian: Historian, tenant: str, sources: list[Source], speed: float,
                 *, tick_s: float = 0.2, max_catch_up: int = 600) -> None:
        self.historian = historian
        self.tenant = tenant
        self.speed = speed
        self.tick_s = tick_s
        self.max_catch_up = max_catch_up
        self._cursors = [_Cursor(s, np.cumsum([len(r) for _, r in s.runs])) for s in sources if s.runs]
        self._t0: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.points = 0

    def step(self, now: float | None = None) -> int:
        """Write every row that is due by `now` (seconds since the epoch); returns the points written."""
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
        table = pa.table({"tag": pa.array(np.concatenate(tags), pa.string()),
                          "time": pa.array(np.concatenate(times)).cast(pa.timestamp("us", tz="UTC")),
                          "value": pa.array(np.concatenate(values), pa.float64())})
        self.historian.write(self.tenant, table, source="demo replay")
        n = int(table.num_rows)
        self.points += n
        return n

    def status(self) -> list[dict[str, Any]]:
        """What each source is replaying now."""
        out = []
        for c in self._cursors:
            name, _ = c.row(max(c.sent - 1, 0))
            total = int(c.lengths[-1])
            out.append({"source": c.source.name, "run": name, "row": (max(c.sent - 1, 0) % total) + 1,
                        "rows": total, "interval_s": c.source.interval_s, "speed": self.speed})
        return out

    def start(self) -> None:
        """Replay on a background thread until `stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="demo-replay", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("demo replay failed; retrying")
            self._stop.wait(self.tick_s)

    def stop(self) -> None:
        """Stop replaying."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def load_demo_plant(platform: Platform, shared: Path, tenant: str = "demo") -> list[Source]:
    """Create the demo tenant if needed and load (or refresh) the demo plant into its twin; the replay sources."""
    from taehwa.demo.plant import build_demo_plant
    from taehwa.errors import NotFound
    from taehwa.twin.yamlio import dump_yaml

    try:
        platform.tenants.get(tenant)
    except NotFound:
        platform.tenants.create(tenant, "Demo plant (TEP, SKAB, C-MAPSS)")
    doc, sources = build_demo_plant(shared)
    platform.twin.load(tenant, dump_yaml(doc), source="demo-plant.yaml", actor="demo")
    return sources


def start_demo(platform: Platform, shared: Path, *, speed: float | None = None) -> Replayer:
    """Load (or refresh) the demo plant into tenant `demo` and start replaying its data sets into it."""
    from taehwa.demo import DEMO_TENANT

    sources = load_demo_plant(platform, shared, DEMO_TENANT)
    replayer = Replayer(platform.historian, DEMO_TENANT, sources, speed or platform.settings.demo_speed)
    replayer.start()
    return replayer
