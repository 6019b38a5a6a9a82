"""Live state of every asset: the newest value, quality and time of each bound signal, its limit state
(normal / warning / alarm), staleness, and health rolled up to parents as the worst of the children.

It is fed by the historian's write listeners, so points count whatever path they came in by (HTTP, CLI, connectors,
model outputs), and it turns every change into twin events.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.timeutil import from_us
from taehwa.historian.schema import Quality
from taehwa.twin.model import Asset, Plant
from taehwa.twin.types import Limits

STATES = ("unknown", "normal", "stale", "warning", "alarm")
RANK = {s: i for i, s in enumerate(STATES)}
QUALITY_NAMES = {int(q): q.name.lower() for q in Quality}


def worst(states: list[str]) -> str:
    """The most severe of some states (unknown when there are none)."""
    return max(states, key=RANK.__getitem__, default="unknown")


@dataclass
class SignalState:
    """A signal's newest point and what it means."""

    tag: str
    derived: bool
    limits: Limits
    interval_s: float | None
    time_us: int | None = None
    value: float | None = None
    quality: int = 0
    limit: str = "unknown"  # normal / warning / alarm from the limits
    stale: bool = False

    @property
    def state(self) -> str:
        """What the signal contributes to its asset's state."""
        if self.time_us is None:
            return "unknown"
        return "stale" if self.stale or self.quality == Quality.BAD else self.limit

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "tag": self.tag,
            "value": self.value,
            "quality": QUALITY_NAMES.get(self.quality, "bad"),
            "time": from_us(self.time_us).isoformat() if self.time_us is not None else None,
            "limit_state": self.limit,
            "stale": self.stale,
            "state": self.state,
            "derived": self.derived,
        }


def signal_states(plant: Plant, asset: Asset) -> dict[str, SignalState]:
    """Empty states for every bound signal of an asset, with the limits and interval in force for it."""
    t = plant.types.get(asset.type)
    out: dict[str, SignalState] = {}
    for name, tag in plant.signal_tags(asset).items():
        spec = t.signals.get(name) if t else None
        out[name] = SignalState(
            tag, bool(spec and spec.derived), plant.limits_of(asset, name), spec.interval_s if spec else None
        )
    return out


class TenantLive:
    """The live state of one tenant's plant."""

    def __init__(self, plant: Plant, stale_after: float) -> None:
        self.stale_after = stale_after
        self.by_tag: dict[str, tuple[str, str]] = {}
        self.signals: dict[str, dict[str, SignalState]] = {}
        self.own: dict[str, str] = {}
        self.rolled: dict[str, str] = {}
        self.children: dict[str | None, list[str]] = {}
        self.tag_set = pa.array([], pa.string())
        self.rebuild(plant, {})

    def rebuild(self, plant: Plant, old: dict[str, dict[str, SignalState]]) -> None:
        """Take a new model, keeping what is known of tags that are still bound."""
        known = {s.tag: s for sigs in old.values() for s in sigs.values()}
        self.by_tag, self.signals, self.children = {}, {}, {}
        for asset in plant.assets.values():
            self.children.setdefault(asset.parent, []).append(asset.path)
            sigs = signal_states(plant, asset)
            for name, st in sigs.items():
                prev = known.get(st.tag)
                if prev is not None and prev.time_us is not None:
                    st.time_us, st.value, st.quality, st.stale = prev.time_us, prev.value, prev.quality, prev.stale
                    st.limit = st.limits.state(prev.value) if prev.value is not None else "unknown"
                self.by_tag[st.tag] = (asset.path, name)
            self.signals[asset.path] = sigs
        self.tag_set = pa.array(list(self.by_tag), pa.string())
        self.own = {p: worst([s.state for s in sigs.values()]) for p, sigs in self.signals.items()}
        self.rolled = {}
        for path in reversed(list(self.signals)):  # children come after parents: fold bottom-up
            self.rolled[path] = worst([self.own[path], *(self.rolled[c] for c in self.children.get(path, []))])

    def _roll_up(self, paths: set[str]) -> dict[str, tuple[str, str]]:
        """Recompute own and rolled states of changed assets and their ancestors; returns path → (old, new)."""
        changed: dict[str, tuple[str, str]] = {}
        todo = set(paths)
        for path in paths:
            self.own[path] = worst([s.state for s in self.signals[path].values()])
        while todo:
            deepest = max(todo, key=lambda p: p.count("/"))
            todo.discard(deepest)
            old = self.rolled.get(deepest, "unknown")
            new = worst([self.own[deepest], *(self.rolled[c] for c in self.children.get(deepest, []))])
            if new != old:
                self.rolled[deepest] = new
                changed[deepest] = (old, new)
                parent = deepest.rsplit("/", 1)[0] if "/" in deepest else None
                if parent is not None:
                    todo.add(parent)
        return changed

    def apply(self, points: pa.Table) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
        """Fold in written points; returns the events they cause (values, model outputs, state changes)."""
        if not self.by_tag:
            return []
        mask = pc.is_in(points.column("tag"), value_set=self.tag_set)
        mine = points.filter(mask)
        if mine.num_rows == 0:
            return []
        tags = mine.column("tag").to_pylist()
        times = mine.column("time").cast(pa.int64()).to_pylist()
        values = mine.column("value").to_pylist()
        qualities = mine.column("quality").to_pylist()
        per_asset: dict[str, dict[str, list[list[Any]]]] = {}
        derived_assets: set[str] = set()
        touched: set[str] = set()
        stamps: dict[int, str] = {}  # a batch's points mostly share a few times: format each once
        for tag, t, v, q in zip(tags, times, values, qualities, strict=True):
            path, sig = self.by_tag[tag]
            st = self.signals[path][sig]
            stamp = stamps.get(t)
            if stamp is None:
                stamp = stamps[t] = from_us(t).isoformat()
            per_asset.setdefault(path, {}).setdefault(sig, []).append([stamp, v, q])
            if st.derived:
                derived_assets.add(path)
            if st.time_us is None or t >= st.time_us:
                before = st.state
                st.time_us, st.value, st.quality, st.stale = t, v, q, False
                st.limit = st.limits.state(v)
                if st.state != before:
                    touched.add(path)
        events: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []
        for path, sigs in per_asset.items():
            measured = {k: v for k, v in sigs.items() if not self.signals[path][k].derived}
            model = {k: v for k, v in sigs.items() if self.signals[path][k].derived}
            if measured:
                events.append(("values", (path,), {"path": path, "signals": measured}))
            if model:
                events.append(("model", (path,), {"path": path, "signals": model}))
        events += self._state_events(touched)
        return events

    def _state_events(self, touched: set[str]) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
        if not touched:
            return []
        own_before = {p: self.own[p] for p in touched}
        changed = self._roll_up(touched)
        out: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []
        for path in sorted(set(changed) | touched):
            previous = changed[path][0] if path in changed else self.rolled[path]
            out.append(
                (
                    "state",
                    (path,),
                    {
                        "path": path,
                        "state": self.rolled[path],
                        "previous": previous,
                        "own_state": self.own[path],
                        "own_previous": own_before.get(path, self.own[path]),
                        "signals": {k: s.to_dict() for k, s in self.signals[path].items()} if path in touched else {},
                    },
                )
            )
        return out

    def check_stale(self, now_us: int) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
        """Mark signals with no data for `stale_after` × their interval; returns the state events."""
        touched: set[str] = set()
        for path, sigs in self.signals.items():
            for st in sigs.values():
                if st.interval_s is None or st.time_us is None:
                    continue
                stale = now_us - st.time_us > self.stale_after * st.interval_s * 1e6
                if stale != st.stale:
                    st.stale = stale
                    touched.add(path)
        return self._state_events(touched)

    def asset_state(self, path: str) -> dict[str, Any]:
        """One asset's live state as JSON."""
        return {
            "path": path,
            "state": self.rolled.get(path, "unknown"),
            "own_state": self.own.get(path, "unknown"),
            "signals": {k: s.to_dict() for k, s in self.signals.get(path, {}).items()},
        }


class LiveState:
    """Live state for every tenant, guarded by one lock (updates come from the historian's writer threads)."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self._tenants: dict[str, TenantLive] = {}
        self.lock = threading.RLock()

    def set_plant(self, tenant: str, plant: Plant, latest: pa.Table | None = None) -> None:
        """Install a tenant's (new) model; `latest` (tag, time, value, quality) seeds newly bound tags."""
        with self.lock:
            live = self._tenants.get(tenant)
            if live is None:
                live = self._tenants[tenant] = TenantLive(plant, self.stale_after)
            else:
                live.rebuild(plant, live.signals)
            if latest is not None and latest.num_rows:
                live.apply(latest)
                live.check_stale(time.time_ns() // 1000)

    def get(self, tenant: str) -> TenantLive | None:
        """A tenant's live state, if its twin has been loaded."""
        return self._tenants.get(tenant)

    def apply(self, tenant: str, points: pa.Table) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
        """Fold in points written for a tenant; returns events."""
        with self.lock:
            live = self._tenants.get(tenant)
            return live.apply(points) if live is not None else []

    def check_stale(self, now_us: int) -> dict[str, list[tuple[str, tuple[str, ...], dict[str, Any]]]]:
        """Staleness for every tenant; returns events per tenant."""
        with self.lock:
            return {t: ev for t, live in self._tenants.items() if (ev := live.check_stale(now_us))}
