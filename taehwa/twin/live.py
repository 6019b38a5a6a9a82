"""Live state of every asset: the newest value, quality and time of each bound signal, its limit state
(normal / warning / alarm), staleness, and health rolled up to parents as the worst of the children.

It is fed by the historian's write listeners, so points count whatever path they came in by (HTTP, CLI, connectors,
model outputs), and it turns every change into twin events.

The state is kept in arrays, one slot per bound signal, and a write is folded in with array operations: each tag's
newest point of the batch (the last written of its newest time, as a point-by-point fold would keep), the limit
state of every point at once, and a step per distinct tag only to lay out the batch's events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.core.tagbatch import TagIndex, group_by_code, iso_parts, iso_times, segment_cummax
from taehwa.core.timeutil import from_us
from taehwa.historian.schema import Quality
from taehwa.twin.model import Asset, Plant
from taehwa.twin.records import AssetQuality, AssetState, SignalCounts, SignalQuality, SignalRecord
from taehwa.twin.types import Limits

STATES = ("unknown", "normal", "stale", "warning", "alarm")
RANK = {s: i for i, s in enumerate(STATES)}
QUALITY_NAMES = {int(q): q.name.lower() for q in Quality}
UNKNOWN, NORMAL, STALE, WARNING, ALARM = range(5)
BAD = int(Quality.BAD)
NO_TIME = np.iinfo(np.int64).min

Event = tuple[str, tuple[str, ...], dict[str, Any]]
Publish = Callable[[str, list[Event]], object]
"""Where a tenant's events go (the event hub's `publish`)."""
log = logging.getLogger(__name__)


def worst(states: list[str]) -> str:
    """The most severe of some states (unknown when there are none)."""
    return max(states, key=RANK.__getitem__, default="unknown")


class Slots:
    """The newest point of some signals, one slot each: whether one came (`has`), its time, value, quality, the
    limit state of its value (a `STATES` index) and whether it is stale."""

    def __init__(self, n: int) -> None:
        self.has = np.zeros(n, bool)
        self.has_value = np.zeros(n, bool)
        self.time = np.zeros(n, np.int64)
        self.value = np.full(n, np.nan)
        self.quality = np.zeros(n, np.uint8)
        self.limit = np.zeros(n, np.int8)
        self.stale = np.zeros(n, bool)
        self.points = np.zeros(n, np.int64)  # points received since the state was built (the server started)
        self.bad = np.zeros(n, np.int64)  # of them, of bad quality
        self.uncertain = np.zeros(n, np.int64)

    def states(self, at: np.ndarray | slice) -> np.ndarray:
        """What the slots contribute to their assets' states (`STATES` indexes)."""
        bad = self.stale[at] | (self.quality[at] == BAD)
        return np.where(self.has[at], np.where(bad, STALE, self.limit[at]), UNKNOWN).astype(np.int8)


class SignalState:
    """A signal's newest point and what it means (a view of one slot of a `Slots`)."""

    __slots__ = ("_i", "_s", "derived", "interval_s", "limits", "tag")

    def __init__(
        self,
        tag: str,
        derived: bool,
        limits: Limits,
        interval_s: float | None,
        *,
        slots: Slots | None = None,
        index: int = 0,
    ) -> None:
        """A signal's state; in `slots` at `index` when given, else in a slot of its own."""
        self.tag, self.derived, self.limits, self.interval_s = tag, derived, limits, interval_s
        self._s = slots if slots is not None else Slots(1)
        self._i = index if slots is not None else 0

    @property
    def time_us(self) -> int | None:
        """The newest point's time (µs), None before any."""
        return int(self._s.time[self._i]) if self._s.has[self._i] else None

    @time_us.setter
    def time_us(self, value: int | None) -> None:
        self._s.has[self._i] = value is not None
        self._s.time[self._i] = 0 if value is None else value

    @property
    def value(self) -> float | None:
        """The newest point's value."""
        return float(self._s.value[self._i]) if self._s.has_value[self._i] else None

    @value.setter
    def value(self, value: float | None) -> None:
        self._s.has_value[self._i] = value is not None
        self._s.value[self._i] = np.nan if value is None else value

    @property
    def quality(self) -> int:
        """The newest point's quality (a `Quality` value)."""
        return int(self._s.quality[self._i])

    @quality.setter
    def quality(self, value: int) -> None:
        self._s.quality[self._i] = value

    @property
    def limit(self) -> str:
        """normal / warning / alarm from the limits (unknown without a value)."""
        return STATES[int(self._s.limit[self._i])]

    @limit.setter
    def limit(self, value: str) -> None:
        self._s.limit[self._i] = RANK[value]

    @property
    def stale(self) -> bool:
        """No point for longer than the signal's interval allows."""
        return bool(self._s.stale[self._i])

    @stale.setter
    def stale(self, value: bool) -> None:
        self._s.stale[self._i] = value

    @property
    def state(self) -> str:
        """What the signal contributes to its asset's state."""
        if self.time_us is None:
            return "unknown"
        return "stale" if self.stale or self.quality == Quality.BAD else self.limit

    def to_dict(self) -> SignalRecord:
        """JSON form."""
        t = self.time_us
        return {
            "tag": self.tag,
            "value": self.value,
            "quality": QUALITY_NAMES.get(self.quality, "bad"),
            "time": from_us(t).isoformat() if t is not None else None,
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


_QUALITY_CLOSE = pa.array([f",{q}]" for q in range(256)], pa.string())
_QUALITY_PART = pa.array([f',"quality":"{QUALITY_NAMES.get(q, "bad")}","time":' for q in range(256)], pa.string())
_TAIL = pa.array(
    [
        f',"limit_state":"{STATES[lim]}","stale":{str(bool(stale)).lower()},"state":"{STATES[state]}",'
        f'"derived":{str(bool(derived)).lower()}}}'
        for lim in range(5)
        for stale in range(2)
        for state in range(5)
        for derived in range(2)
    ],
    pa.string(),
)
"""The end of a signal's JSON for each (limit, stale, state, derived), indexed ((limit·2 + stale)·5 + state)·2 +
derived."""


def _offsets(starts: np.ndarray, n: int) -> pa.Array:
    """List offsets for runs that start at `starts` and cover n items."""
    return pa.array(np.append(starts, n).astype(np.int32), pa.int32())


def _limit_array(limits: list[Limits], key: str) -> np.ndarray:
    return np.array([np.nan if (x := getattr(lim, key)) is None else x for lim in limits], np.float64)


class TenantLive:
    """The live state of one tenant's plant."""

    def __init__(self, plant: Plant, stale_after: float) -> None:
        self.stale_after = stale_after
        self.by_tag: dict[str, tuple[str, str]] = {}
        self.signals: dict[str, dict[str, SignalState]] = {}
        self.own: dict[str, str] = {}
        self.rolled: dict[str, str] = {}
        self.children: dict[str | None, list[str]] = {}
        self.slots = Slots(0)
        self._slot_of_tag: dict[str, int] = {}
        self.rebuild(plant)

    def rebuild(self, plant: Plant) -> None:
        """Take a new model, keeping what is known of tags that are still bound."""
        old, old_slot = self.slots, self._slot_of_tag
        self.by_tag, self.signals, self.children = {}, {}, {}
        tags: list[str] = []
        paths: list[str] = []
        names: list[str] = []
        derived: list[bool] = []
        limits: list[Limits] = []
        intervals: list[float] = []
        lo: list[int] = []
        path_of: list[int] = []
        specs: list[tuple[str, dict[str, SignalState]]] = []
        for asset in plant.assets.values():
            self.children.setdefault(asset.parent, []).append(asset.path)
            lo.append(len(tags))
            sigs = signal_states(plant, asset)
            for name, st in sigs.items():
                path_of.append(len(paths))
                tags.append(st.tag)
                names.append(name)
                derived.append(st.derived)
                limits.append(st.limits)
                intervals.append(np.nan if st.interval_s is None else st.interval_s)
                self.by_tag[st.tag] = (asset.path, name)
            paths.append(asset.path)
            specs.append((asset.path, sigs))
        n = len(tags)
        slots = self.slots = Slots(n)
        self._slot_of_tag = {tag: i for i, tag in enumerate(tags)}  # the last binding of a tag, as by_tag
        for i, (path, sigs) in enumerate(specs):
            self.signals[path] = {
                name: SignalState(st.tag, st.derived, st.limits, st.interval_s, slots=slots, index=lo[i] + k)
                for k, (name, st) in enumerate(sigs.items())
            }
        self.paths = paths
        self.path_lo = np.array(lo, np.int64)
        self.path_hi = np.append(self.path_lo[1:], n).astype(np.int64)
        self.path_of = np.array(path_of, np.int64)
        self.slot_path = [paths[p] for p in path_of]
        self.derived_of = np.array(derived, np.int8)
        self.slot_key = pa.array([f"{orjson.dumps(name).decode()}:[" for name in names], pa.string())
        heads = [
            f'{orjson.dumps(n).decode()}:{{"tag":{orjson.dumps(t).decode()},"value":'
            for n, t in zip(names, tags, strict=True)
        ]
        self.slot_head = pa.array(heads, pa.string())
        self.interval = np.array(intervals, np.float64)
        self.lim = {k: _limit_array(limits, k) for k in ("low_alarm", "low_warning", "high_warning", "high_alarm")}
        self.any_limits = any(bool(np.isfinite(a).any()) for a in self.lim.values())
        self.model = (self.slot_key, self.path_of, self.derived_of, paths)
        """What laying out a batch's point events reads of the model, replaced whole by a rebuild."""
        tag_list = list(self.by_tag)
        self.index = TagIndex(tag_list)
        self.slot_of = np.array([self._slot_of_tag[t] for t in tag_list], np.int64)
        self.path_pos = {p: i for i, p in enumerate(paths)}
        self.sites = sorted({p.split("/", 1)[0] for p in paths})
        site_pos = {site: i for i, site in enumerate(self.sites)}
        self.slot_site = np.array([site_pos[self.slot_path[k].split("/", 1)[0]] for k in range(n)], np.int64)
        self.site_map = (TagIndex(tag_list), self.slot_site[self.slot_of], list(self.sites))
        """A bound tag's site, for counting points without the state's lock: its own index (a caller serialises
        `points_per_site` calls), replaced whole by a rebuild."""
        pairs = [(i, old_slot[t]) for i, t in enumerate(tags) if t in old_slot]
        if pairs:
            new_i, old_i = (np.array(x, np.int64) for x in zip(*pairs, strict=True))
            carry = old.has[old_i]
            new_i, old_i = new_i[carry], old_i[carry]
            for name in ("has", "has_value", "time", "value", "quality", "stale", "points", "bad", "uncertain"):
                getattr(slots, name)[new_i] = getattr(old, name)[old_i]
            slots.limit[new_i] = np.where(slots.has_value[new_i], self.limit_codes(new_i, slots.value[new_i]), UNKNOWN)
        states = slots.states(slice(None))
        self.own = {p: STATES[self._own_code(states, i)] for i, p in enumerate(paths)}
        self.rolled = {}
        for path in reversed(list(self.signals)):  # children come after parents: fold bottom-up
            self.rolled[path] = worst([self.own[path], *(self.rolled[c] for c in self.children.get(path, []))])

    def limit_codes(self, slot: np.ndarray, value: np.ndarray) -> np.ndarray:
        """The limit state (`STATES` index) of values of some slots, as `Limits.state` gives it."""
        if not self.any_limits:
            return np.full(len(value), NORMAL, np.int8)
        lim = self.lim
        alarm = (value >= lim["high_alarm"][slot]) | (value <= lim["low_alarm"][slot])
        warning = (value >= lim["high_warning"][slot]) | (value <= lim["low_warning"][slot])
        return np.where(alarm, ALARM, np.where(warning, WARNING, NORMAL)).astype(np.int8)

    def _own_code(self, states: np.ndarray, path_index: int) -> int:
        a, b = int(self.path_lo[path_index]), int(self.path_hi[path_index])
        return int(states[a:b].max()) if b > a else UNKNOWN

    def _roll_up(self, paths: set[str]) -> dict[str, tuple[str, str]]:
        """Recompute own and rolled states of changed assets and their ancestors; returns path → (old, new)."""
        changed: dict[str, tuple[str, str]] = {}
        todo = set(paths)
        states = self.slots.states(slice(None))
        for path in paths:
            self.own[path] = STATES[self._own_code(states, self.path_pos[path])]
        levels: dict[int, set[str]] = {}  # deepest first, as the fold by the deepest pending path went
        for path in todo:
            levels.setdefault(path.count("/"), set()).add(path)
        while levels:
            depth = max(levels)
            for path in levels.pop(depth):
                old = self.rolled.get(path, "unknown")
                new = worst([self.own[path], *(self.rolled[c] for c in self.children.get(path, []))])
                if new != old:
                    self.rolled[path] = new
                    changed[path] = (old, new)
                    if "/" in path:
                        levels.setdefault(depth - 1, set()).add(path.rsplit("/", 1)[0])
        return changed

    def apply(self, points: pa.Table) -> list[Event]:
        """Fold in written points; returns the events they cause (values, model outputs, state changes).

        `fold` then `render`; the same as folding the points in one by one in the order written: a point replaces a
        signal's newest when its time is not older (so of equal times the last written wins, and an older point
        arriving late is announced but changes nothing), and an asset's state is announced when any point so taken
        changed what one of its signals contributes."""
        pending, state_events = self.fold(points)
        return self.render(pending) + state_events

    def fold(self, points: pa.Table) -> tuple[tuple[Any, ...] | None, list[Event]]:
        """The state part of `apply`: the points folded in, and the state events they cause; with what `render`
        needs to lay out the points' own events, which it may do after the state's lock is let go (it reads only
        the batch and the model as it was at the fold)."""
        if not self.by_tag or points.num_rows == 0:
            return None, []
        codes = self.index.codes(points.column("tag"))
        keep = codes >= 0
        if not keep.any():
            return None, []
        t = points.column("time").cast(pa.int64()).to_numpy()
        v = points.column("value").to_numpy().astype(np.float64, copy=False)
        q = points.column("quality").to_numpy().astype(np.uint8, copy=False)
        if not keep.all():
            codes, t, v, q = codes[keep], t[keep], v[keep], q[keep]
        slot = self.slot_of[codes]
        order, starts, ends = group_by_code(slot)
        ss, ts, vs, qs = slot[order], t[order], v[order], q[order]
        n, u = len(ss), ss[starts]
        gid = np.repeat(np.arange(len(starts)), ends - starts)
        s = self.slots
        init_has = s.has[u]
        newest = np.where(init_has, s.time[u], NO_TIME)  # each signal's newest time before the batch
        # a point is taken when it is not older than the signal's newest point and every earlier point of the batch
        before = np.empty(n, np.int64)
        if n > 1:
            before[1:] = segment_cummax(ts, gid)[:-1]
        before[starts] = NO_TIME
        taken = ts >= np.maximum(newest[gid], before)
        lim = self.limit_codes(ss, vs)
        point_state = np.where(qs == BAD, STALE, lim)
        moved = taken & (point_state != s.states(u)[gid])
        touched = {self.slot_path[int(x)] for x in np.unique(u[gid[moved]]).tolist()}
        # what stays: each signal's last written point of its newest time, if that is not older than before
        top = np.maximum.reduceat(ts, starts)
        at_top = np.flatnonzero(ts == top[gid])
        g_top = gid[at_top]
        last = at_top[np.append(g_top[1:] != g_top[:-1], True)]
        stays = top >= newest
        su, li = u[stays], last[stays]
        s.has[su] = s.has_value[su] = True
        s.time[su], s.value[su], s.quality[su], s.limit[su] = ts[li], vs[li], qs[li], lim[li]
        s.stale[su] = False
        sizes = ends - starts
        s.points[u] += sizes
        s.bad[u] += np.add.reduceat(qs == BAD, starts) if n else 0
        s.uncertain[u] += np.add.reduceat(qs == int(Quality.UNCERTAIN), starts) if n else 0
        return (self.model, order, starts, ends, u, ts, vs, qs), self._state_events(touched)

    def render(self, pending: tuple[Any, ...] | None) -> list[Event]:
        """The values and model events of a fold (see `fold`)."""
        return self._point_events(*pending) if pending is not None else []

    def points_per_site(self, points: pa.Table) -> dict[str, int]:
        """How many of some points are of each site's bound signals (points of unbound tags count nowhere); needs
        not the state's lock (see `site_map`), only that calls do not overlap."""
        index, site_of, sites = self.site_map
        if not len(index) or points.num_rows == 0:
            return {}
        codes = index.codes(points.column("tag"))
        counts = np.bincount(site_of[codes[codes >= 0]], minlength=len(sites))
        return {sites[i]: int(counts[i]) for i in np.flatnonzero(counts).tolist()}

    def _point_events(
        self,
        model: tuple[pa.Array, np.ndarray, np.ndarray, list[str]],
        order: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        u: np.ndarray,
        ts: np.ndarray,
        vs: np.ndarray,
        qs: np.ndarray,
    ) -> list[Event]:
        """One values event (measured signals) and one model event (derived signals) per asset, with every point
        of the batch as [time, value, quality]: assets and signals in the order they first appear in the batch,
        each signal's points in the order written.

        The signals are laid out as JSON by Arrow, one text per event (what the event hub sends is byte for byte
        what serializing them as lists would give): no Python object per point, so a large write neither costs a
        step per point nor leaves garbage for the collector to chase."""
        slot_key, path_of, derived_of, paths = model
        value_text = orjson.dumps(vs, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode()
        values = pc.list_flatten(pc.split_pattern(pa.array([value_text], pa.string()), ","))
        stamps: list[pa.Array | str]
        if len(ts) and ts.min() == ts.max():  # a live write's points often share one time: one text for all
            stamps = [iso_times(ts[:1], '["', '",')[0].as_py()]
        else:
            times, inverse = np.unique(ts, return_inverse=True)
            if len(times) * 4 <= len(ts):  # a live write's points mostly share a few times: write each once
                stamps = [iso_times(times, '["', '",').take(inverse)]
            else:  # a backfill's are mostly apart: write them in the one join
                stamps = iso_parts(ts, '["', '",')
        if len(starts) == len(ts):  # one point per signal (a live write's common case): no list per signal
            entries = pc.binary_join_element_wise(slot_key.take(u), *stamps, values, _QUALITY_CLOSE.take(qs), "]", "")
        else:
            points = pc.binary_join_element_wise(*stamps, values, _QUALITY_CLOSE.take(qs), "")
            bodies = pc.binary_join(pa.ListArray.from_arrays(_offsets(starts, len(ts)), points), ",")
            entries = pc.binary_join_element_wise(slot_key.take(u), bodies, "]", "")
        # groups by asset (in order of its first point), measured before derived, then by their first point
        first = order[starts]
        path = path_of[u]
        path_first = np.full(len(paths), len(ts), np.int64)
        np.minimum.at(path_first, path, first)
        kind = derived_of[u]
        ranked = np.lexsort((first, kind, path_first[path]))
        rp, rk = path[ranked], kind[ranked]
        brk = np.flatnonzero((rp[1:] != rp[:-1]) | (rk[1:] != rk[:-1])) + 1
        seg_starts = np.concatenate([[0], brk]).astype(np.int64)
        texts = pc.binary_join(pa.ListArray.from_arrays(_offsets(seg_starts, len(ranked)), entries.take(ranked)), ",")
        events: list[Event] = []
        for p, k, text in zip(rp[seg_starts].tolist(), rk[seg_starts].tolist(), texts.to_pylist(), strict=True):
            name = paths[p]
            events.append(
                ("model" if k else "values", (name,), {"path": name, "signals": orjson.Fragment(f"{{{text}}}")})
            )
        return events

    def _state_events(self, touched: set[str]) -> list[Event]:
        if not touched:
            return []
        own_before = {p: self.own[p] for p in touched}
        changed = self._roll_up(touched)
        order = sorted(set(changed) | touched)
        signals = self._signals_json([p for p in order if p in touched])
        out: list[Event] = []
        for path in order:
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
                        "signals": signals.get(path, {}),
                    },
                )
            )
        return out

    def _signals_json(self, paths: list[str]) -> dict[str, orjson.Fragment]:
        """Every signal of some assets as `SignalState.to_dict` gives it, one JSON object per asset laid out by
        Arrow (byte for byte what serializing the dicts would give): a state change of many assets at once (a
        site's connector gone quiet) costs array operations, not a dict per signal."""
        if not paths:
            return {}
        pos = np.array([self.path_pos[p] for p in paths], np.int64)
        lo, hi = self.path_lo[pos], self.path_hi[pos]
        sizes = hi - lo
        if not sizes.sum():
            return {p: orjson.Fragment(b"{}") for p in paths}
        sel = np.repeat(lo - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) + np.arange(int(sizes.sum()))
        s = self.slots
        has = s.has[sel]
        value_text = orjson.dumps(np.where(s.has_value[sel], s.value[sel], np.nan), option=orjson.OPT_SERIALIZE_NUMPY)
        values = pc.list_flatten(pc.split_pattern(pa.array([value_text[1:-1].decode()], pa.string()), ","))
        times = pc.if_else(pa.array(has), iso_times(np.where(has, s.time[sel], 0), '"', '"'), "null")
        tail = ((s.limit[sel].astype(np.int64) * 2 + s.stale[sel]) * 5 + s.states(sel)) * 2 + self.derived_of[sel]
        entries = pc.binary_join_element_wise(
            self.slot_head.take(sel), values, _QUALITY_PART.take(s.quality[sel]), times, _TAIL.take(tail), ""
        )
        bodies = pc.binary_join(pa.ListArray.from_arrays(_offsets(np.cumsum(sizes) - sizes, len(sel)), entries), ",")
        return {p: orjson.Fragment(f"{{{text}}}") for p, text in zip(paths, bodies.to_pylist(), strict=True)}

    def check_stale(self, now_us: int) -> list[Event]:
        """Mark signals with no data for `stale_after` × their interval; returns the state events."""
        s = self.slots
        if not len(s.has):
            return []
        timed = s.has & np.isfinite(self.interval)
        with np.errstate(invalid="ignore"):
            stale = (now_us - s.time).astype(np.float64) > self.stale_after * self.interval * 1e6
        flip = np.flatnonzero(timed & (stale != s.stale))
        if not len(flip):
            return []
        s.stale[flip] = stale[flip]
        return self._state_events({self.paths[int(p)] for p in np.unique(self.path_of[flip]).tolist()})

    def asset_state(self, path: str) -> AssetState:
        """One asset's live state as JSON."""
        return {
            "path": path,
            "state": self.rolled.get(path, "unknown"),
            "own_state": self.own.get(path, "unknown"),
            "signals": {k: s.to_dict() for k, s in self.signals.get(path, {}).items()},
            "quality": self.quality(path),
        }

    def signal_counts(self) -> SignalCounts:
        """The plant's measured signals (derived ones left out) by the state of their newest point."""
        s, measured = self.slots, self.derived_of == 0
        seen = measured & s.has
        fresh = seen & ~s.stale
        q = s.quality
        bad = int((fresh & (q == BAD)).sum())
        uncertain = int((fresh & (q == int(Quality.UNCERTAIN))).sum())
        good = int(fresh.sum()) - bad - uncertain
        n_seen = int(seen.sum())
        return {
            "measured": int(measured.sum()),
            "good": good,
            "stale": int((seen & s.stale).sum()),
            "bad": bad,
            "uncertain": uncertain,
            "no_data": int((measured & ~s.has).sum()),
            "good_pct": round(100.0 * good / n_seen, 1) if n_seen else None,
        }

    def quality(self, path: str) -> AssetQuality:
        """The quality of what an asset's signals sent since the server started: per signal the points received,
        how many of bad and of uncertain quality, and its figure (percent of points of good quality); the
        asset's figure is the mean of its signals' that received any (None before any point)."""
        i = self.path_pos.get(path)
        if i is None:
            return {"figure": None, "signals": {}}
        a, b = int(self.path_lo[i]), int(self.path_hi[i])
        s = self.slots
        pts, bad, unc = (x[a:b].tolist() for x in (s.points, s.bad, s.uncertain))
        signals: dict[str, SignalQuality] = {}
        for k, name in enumerate(self.signals[path]):
            good = pts[k] - bad[k] - unc[k]
            figure = round(100.0 * good / pts[k], 2) if pts[k] else None
            signals[name] = {"points": pts[k], "bad": bad[k], "uncertain": unc[k], "figure": figure}
        figures = [x["figure"] for x in signals.values() if x["figure"] is not None]
        return {"figure": round(sum(figures) / len(figures), 2) if figures else None, "signals": signals}


class LiveState:
    """Live state for every tenant, guarded by one lock (updates come from the historian's writer threads).

    A write's point events are laid out after the lock is let go, so another writer's fold need not wait for them;
    given a `publish`, events still go out in the order the folds happened (a state change announced before the
    one that followed it), whichever writer finishes laying out first."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self._tenants: dict[str, TenantLive] = {}
        self.lock = threading.RLock()
        self._order: deque[list[Any]] = deque()  # [events or None while laid out, tenant], in fold order
        self._publish_lock = threading.Lock()

    def set_plant(self, tenant: str, plant: Plant, latest: pa.Table | None = None) -> None:
        """Install a tenant's (new) model; `latest` (tag, time, value, quality) seeds newly bound tags."""
        with self.lock:
            live = self._tenants.get(tenant)
            if live is None:
                live = self._tenants[tenant] = TenantLive(plant, self.stale_after)
            else:
                live.rebuild(plant)
            if latest is not None and latest.num_rows:
                live.apply(latest)
                live.check_stale(time.time_ns() // 1000)

    def get(self, tenant: str) -> TenantLive | None:
        """A tenant's live state, if its twin has been loaded."""
        return self._tenants.get(tenant)

    def apply(self, tenant: str, points: pa.Table, publish: Publish | None = None) -> list[Event]:
        """Fold in points written for a tenant; returns events, and hands them to `publish(tenant, events)` (when
        given) in fold order."""
        with self.lock:
            live = self._tenants.get(tenant)
            if live is None:
                return []
            pending, state_events = live.fold(points)
            slot: list[Any] = [None, tenant]
            if publish is not None:
                self._order.append(slot)
        events: list[Event] = []
        try:
            events = live.render(pending) + state_events  # laid out without the lock: other writers fold meanwhile
        finally:
            if publish is not None:
                self._deliver(slot, events, publish)
        return events

    def _deliver(self, slot: list[Any], events: list[Event], publish: Publish) -> None:
        """Fill a fold's place in the order and publish every filled place from the front."""
        with self._publish_lock:
            slot[0] = events
            while self._order and self._order[0][0] is not None:
                ready, tenant = self._order.popleft()
                if ready:
                    try:
                        publish(tenant, ready)
                    except Exception:  # one failed publish must not hold back the others
                        log.exception("twin events of tenant %s not published", tenant)

    def check_stale(self, now_us: int, publish: Publish | None = None) -> dict[str, list[Event]]:
        """Staleness for every tenant; returns events per tenant (published in order with the writes' events when
        `publish` is given)."""
        with self.lock:
            out = {t: ev for t, live in self._tenants.items() if (ev := live.check_stale(now_us))}
            slots: list[list[Any]] = [[None, t] for t in out]
            if publish is not None:
                self._order.extend(slots)
        if publish is not None:
            for slot in slots:
                self._deliver(slot, out[slot[1]], publish)
        return out
