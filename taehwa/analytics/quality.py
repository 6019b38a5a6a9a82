"""Data-quality checks of a tag's points over a range, against what its signal declares (interval, engineering
range): gaps, stuck values, flat lines, out-of-range values, spikes, bad-quality points and timestamps in the future;
and, as points arrive, repeated and backward timestamps (which the historian's last-write-wins storage cannot show
afterwards). Each finding is an interval (an event `quality.<check>`), and the tag gets a quality figure: the share of
the range not covered by findings, in percent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.analytics.compute import Series
from taehwa.analytics.records import QualityFinding
from taehwa.core.tagbatch import TagIndex, segment_cummax

CHECKS = ("gap", "stuck", "flat", "out_of_range", "spike", "bad_quality", "future_time", "repeated_time", "clock_jump")


@dataclass(frozen=True)
class Thresholds:
    """How sensitive the checks are."""

    gap_factor: float = 3.0  # a gap: more than this many declared intervals without a point
    stuck_samples: int = 30  # stuck: this many identical values in a row (and at least that many intervals)
    flat_samples: int = 60  # flat: this many points varying less than flat_fraction of the range
    flat_fraction: float = 1e-4
    spike_factor: float = 8.0  # a spike: a jump out and back of more than this many typical steps
    future_s: float = 300.0  # points stamped more than this ahead of now


@dataclass(frozen=True)
class Finding:
    """One quality problem of a tag."""

    check: str
    start_us: int
    end_us: int
    points: int
    detail: str


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) index runs where mask is true."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def check_series(
    s: Series,
    start_us: int,
    end_us: int,
    *,
    interval_s: float | None,
    low: float | None,
    high: float | None,
    now_us: int,
    th: Thresholds = Thresholds(),
) -> list[Finding]:
    """Every finding of one tag's points over [start, end)."""
    t, v, q = s
    m = (t >= start_us) & (t < end_us)
    t, v, q = t[m], v[m], q[m]
    out: list[Finding] = []
    n = len(t)
    step = float(np.median(np.diff(t))) if n > 2 else None
    interval_us = interval_s * 1e6 if interval_s else step
    if interval_us:
        limit = th.gap_factor * interval_us
        edges = np.concatenate([[start_us], t, [end_us]])
        gaps = np.flatnonzero(np.diff(edges) > limit)
        for k in gaps:
            a, b = int(edges[k]), int(edges[k + 1])
            out.append(Finding("gap", a, b, 0, f"no point for {(b - a) / 1e6:g} s (interval {interval_us / 1e6:g} s)"))
    if n == 0:
        return out
    if n >= th.stuck_samples:
        same = np.concatenate([[False], v[1:] == v[:-1]])
        for a, b in _runs(same):
            a -= 1  # the run starts at the first of the equal values
            if b - a >= th.stuck_samples and (
                interval_us is None or t[b - 1] - t[a] >= (th.stuck_samples - 1) * interval_us * 0.5
            ):
                out.append(Finding("stuck", int(t[a]), int(t[b - 1]), b - a, f"{b - a} identical values ({v[a]:g})"))
    span = (high - low) if low is not None and high is not None else float(np.ptp(v)) or abs(float(v[0])) or 1.0
    width = int(th.flat_samples)
    if n >= width:
        from numpy.lib.stride_tricks import sliding_window_view

        win = sliding_window_view(v, width)
        rng = win.max(axis=1) - win.min(axis=1)
        flat = (rng <= th.flat_fraction * span) & (rng > 0)  # varying, but hardly (identical values are stuck)
        covered = np.zeros(n, bool)
        for a in np.flatnonzero(flat).tolist():
            covered[a : a + width] = True
        for a, b in _runs(covered):
            out.append(
                Finding("flat", int(t[a]), int(t[b - 1]), b - a, f"{b - a} points within {th.flat_fraction * span:g}")
            )
    if low is not None and high is not None:
        for a, b in _runs((v < low) | (v > high)):
            out.append(
                Finding(
                    "out_of_range",
                    int(t[a]),
                    int(t[b - 1]),
                    b - a,
                    f"outside the engineering range [{low:g}, {high:g}]",
                )
            )
    if n >= 5:
        d = np.diff(v)
        typical = float(np.median(np.abs(d)))
        if typical == 0:
            typical = float(np.mean(np.abs(d))) or 0.0
        thr = th.spike_factor * typical
        if thr > 0:
            up, down = d[:-1], d[1:]
            spike = (
                (np.abs(up) > thr)
                & (np.abs(down) > thr)
                & (np.sign(up) != np.sign(down))
                & (np.abs(up + down) < 0.5 * np.maximum(np.abs(up), np.abs(down)))
            )
            for j in (np.flatnonzero(spike) + 1).tolist():
                out.append(Finding("spike", int(t[j]), int(t[j]), 1, f"{v[j]:g} between {v[j - 1]:g} and {v[j + 1]:g}"))
    for a, b in _runs(q >= 2):
        out.append(Finding("bad_quality", int(t[a]), int(t[b - 1]), b - a, "points marked bad"))
    future = t > now_us + th.future_s * 1e6
    if future.any():
        out.append(
            Finding(
                "future_time",
                int(t[future][0]),
                int(t[future][-1]),
                int(future.sum()),
                "points stamped in the future (a clock ahead)",
            )
        )
    return out


def figure(findings: list[Finding], start_us: int, end_us: int, interval_us: float | None) -> float:
    """Percent of [start, end) not covered by findings (a point finding covers one interval)."""
    span = end_us - start_us
    if span <= 0:
        return 100.0
    pad = int(interval_us or 1_000_000)
    spans = sorted((max(f.start_us, start_us), min(max(f.end_us, f.start_us + pad), end_us)) for f in findings)
    covered, cur_a, cur_b = 0, None, None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                covered += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None and cur_a is not None:
        covered += cur_b - cur_a
    return round(100.0 * max(0.0, 1 - covered / span), 2)


class _TenantClocks:
    """Per tag of one tenant (by index): newest time seen, counts of repeated and backward points, when seen."""

    def __init__(self) -> None:
        self.index = TagIndex()
        self.last = np.empty(0, np.int64)
        self.repeated = np.empty(0, np.int64)
        self.backward = np.empty(0, np.int64)
        self.first_bad = np.empty(0, np.int64)
        self.last_bad = np.empty(0, np.int64)

    def grow(self, new: list[str]) -> None:
        self.index.add(new)
        k = len(self.index) - len(self.last)
        self.last = np.concatenate([self.last, np.full(k, np.iinfo(np.int64).min)])
        for attr in ("repeated", "backward"):
            setattr(self, attr, np.concatenate([getattr(self, attr), np.zeros(k, np.int64)]))
        for attr in ("first_bad", "last_bad"):
            setattr(self, attr, np.concatenate([getattr(self, attr), np.full(k, -1, np.int64)]))


class ArrivalWatch:
    """Counts, per tag, points that arrive with the time of the tag's previous point (repeated) or older than its
    newest point (the clock went back): fed by the historian's write listener, vectorised over each write."""

    def __init__(self, max_tags: int = 1_000_000) -> None:
        self.max_tags = max_tags
        self.lock = threading.Lock()
        self.tenants: dict[str, _TenantClocks] = {}

    def feed(self, tenant: str, points: pa.Table) -> None:
        """Take in one acknowledged write."""
        if points.num_rows == 0:
            return
        tags = points.column("tag")
        t = points.column("time").cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
        with self.lock:
            clocks = self.tenants.setdefault(tenant, _TenantClocks())
            idx = clocks.index.codes(tags)
            missing = idx < 0
            if missing.any():
                new = pc.unique(pc.filter(tags, pa.array(missing))).to_pylist()
                if len(clocks.index) + len(new) > self.max_tags:
                    return
                clocks.grow(new)
                idx = clocks.index.codes(tags)
            if len(idx) < 2 or bool(np.all(idx[1:] >= idx[:-1])):
                ti, tt = idx, t  # tag by tag already (exports, long histories): no sort
            elif self._rising_by_time(clocks, idx, t):
                return  # instant by instant, each tag once an instant (a plant export): nothing repeated or backward
            else:
                order = np.argsort(idx, kind="stable")  # each tag's points in the order written
                ti, tt = idx[order], t[order]
            first = np.ones(len(ti), bool)
            first[1:] = ti[1:] != ti[:-1]
            starts = np.flatnonzero(first)
            if bool(np.all((tt[1:] > tt[:-1]) | first[1:])) and bool(np.all(tt[starts] > clocks.last[ti[starts]])):
                # every tag's times rise through the write and past its newest: nothing repeated or backward
                ends = np.r_[starts[1:] - 1, len(tt) - 1]
                clocks.last[ti[ends]] = tt[ends]
                return
            prev = np.where(first, clocks.last[ti], np.roll(tt, 1))
            # the newest time before each point: the running maximum within the tag, from its last known time
            prev = np.where(prev == np.iinfo(np.int64).min, tt - 1, prev)
            newest = segment_cummax(prev, np.cumsum(first) - 1)
            rep = tt == prev
            back = tt < newest
            bad = rep | back
            np.add.at(clocks.repeated, ti[rep], 1)
            np.add.at(clocks.backward, ti[back], 1)
            if bad.any():
                bi, bt = ti[bad], tt[bad]
                fb = clocks.first_bad
                unset = fb[bi] < 0
                fb[bi[unset]] = bt[unset]
                clocks.last_bad[bi] = bt
            np.maximum.at(clocks.last, ti, tt)

    @staticmethod
    def _rising_by_time(clocks: _TenantClocks, idx: np.ndarray, t: np.ndarray) -> bool:
        """For rows that run by time with each tag at most once an instant, every tag's times rise through the
        write: when each tag's first time also passes its newest known one, take its last time and say so (True);
        no sort of the rows, which for such a write was a fifth of the historian's bulk write."""
        step = t[1:] - t[:-1]
        if not (bool(np.all(step >= 0)) and bool(np.all((step > 0) | (idx[1:] > idx[:-1])))):
            return False
        first = np.full(len(clocks.last), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, idx, t)
        present = first != np.iinfo(np.int64).max
        if not bool(np.all(first[present] > clocks.last[present])):
            return False
        np.maximum.at(clocks.last, idx, t)
        return True

    def findings(self, tenant: str, tag: str) -> list[Finding]:
        """The arrival findings of a tag so far (since the server started)."""
        clocks = self.tenants.get(tenant)
        i = clocks.index.pos.get(tag) if clocks is not None else None
        if clocks is None or i is None or clocks.first_bad[i] < 0:
            return []
        a, b = int(clocks.first_bad[i]), int(clocks.last_bad[i])
        out = []
        if clocks.repeated[i]:
            out.append(
                Finding(
                    "repeated_time",
                    a,
                    b,
                    int(clocks.repeated[i]),
                    f"{int(clocks.repeated[i])} points with the time of the point before",
                )
            )
        if clocks.backward[i]:
            out.append(
                Finding(
                    "clock_jump",
                    a,
                    b,
                    int(clocks.backward[i]),
                    f"{int(clocks.backward[i])} points older than the tag's newest point (the clock went back)",
                )
            )
        return out


def finding_dict(f: Finding) -> QualityFinding:
    """JSON form."""
    from taehwa.core.timeutil import from_us

    return {
        "check": f.check,
        "start": from_us(f.start_us).isoformat(),
        "end": from_us(f.end_us).isoformat(),
        "points": f.points,
        "detail": f.detail,
    }
