"""Points written per second per site, for the city's map: counted from the historian's write listener (whatever
path the points came in by) and attributed to a site through the twin's tag bindings."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from taehwa.historian.store import Historian
    from taehwa.twin.live import LiveState

WINDOW_S = 10.0


class SiteRates:
    """A sliding ten-second count of points per (tenant, site)."""

    def __init__(self, historian: Historian, live: LiveState) -> None:
        self._live = live
        self._writes: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()
        historian.add_listener(self._count)

    def _count(self, tenant: str, points: pa.Table) -> None:
        state = self._live.get(tenant)
        if state is None or points.num_rows == 0:
            return
        now = time.monotonic()
        with self._lock:  # not the live state's lock: a writer must not wait behind another's fold
            per_site = state.points_per_site(points)
            for site, n in per_site.items():
                q = self._writes.setdefault((tenant, site), deque())
                q.append((now, n))
                while q and now - q[0][0] > WINDOW_S:
                    q.popleft()

    def rate(self, tenant: str, site: str) -> float:
        """Points per second written to a site's bound tags over the last ten seconds."""
        now = time.monotonic()
        with self._lock:
            q = self._writes.get((tenant, site))
            return sum(n for t, n in q if now - t <= WINDOW_S) / WINDOW_S if q else 0.0
