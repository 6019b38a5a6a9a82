"""Data-quality checks of a tag's points over a range, against what its signal declares (interval, engineering
range): gaps, stuck values, flat lines, out-of-range values, spikes, bad-quality points and timestamps in the future;
and, as points arrive, repeated and backward timestamps (which the historian's last-write-wins storage cannot show
afterwards). Each finding is an interval (an event `quality.<check>`), and the tag gets a quality figure: the share of
the range not covered by findings, in percent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.analytics.compute import Series

CHECKS = ("gap", "stuck", "flat", "out_of_range", "spike", "bad_quality", "future_time", "repeated_time",
          "clock_jump")


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


def check_series(s: Series, start_us: int, end_us: int, *, interval_s: float | None, low: float | None,
                 high: float | None, now_us: int, th: Thresholds = Thresholds()) -> list[Finding]:
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
            out.append(Finding("gap", a, b, 0, f"no point for {(b - a) / 1e6:g} s (interval "
                                               f"{interval_us / 1e6:g} s)"))
    if n == 0:
        return out
    if n >= th.stuck_samples:
        same = np.concatenate([[False], v[1:] == v[:-1]])
        for a, b in _runs(same):
            a -= 1  # the run starts at the first of the equal values
            if b - a >= th.stuck_samples and (interval_us is None or t[b - 1] - t[a] >= (th.stuck_samples - 1)
                                              * interval_us * 0.5):
                out.append(Finding("stuck", int(t[a]), int(t[b - 1]), b - a, f"{b - a} identical values "
                                                                              f"({v[a]:g})"))
    span = (high - low) if low is not None and high is not None else float(np.ptp(v)) or abs(float(v[0])) or 1.0
    width = int(th.flat_samples)
    if n >= width:
        from numpy.lib.stride_tricks import sliding_window_view

        win = sliding_window_view(v, width)
        rng = win.max(axis=1) - win.min(axis=1)
        flat = (rng <= th.flat_fraction * span) & (rng > 0)  # varying, but hardly (identical values are stuck)
        covered = np.zeros(n, bool)
        for a in np.flatnonzero(flat).tolist():
            covered[a:a + width] = True
        for a, b in _runs(covered):
            out.append(Finding("flat", int(t[a]), int(t[b - 1]), b - a, f"{b - a} points within "
                                                                        f"{th.flat_fraction * span:g}"))
    if low is not None and high is not None:
        for a, b in _runs((v < low) | (v > high)):
            out.append(Finding("out_of_range", int(t[a]), int(t[b - 1]), b - a,
                               f"outside the engineering range [{low:g}, {high:g}]"))
    if n >= 5:
        d = np.diff(v)
        typical = float(np.median(np.abs(d)))
        if typical == 0:
            typical = float(np.mean(np.abs(d))) or 0.0
        thr = th.spike_factor * typical
        if thr > 0:
            up, down = d[:-1], d[1:]
            spike = (np.abs(up) > thr) & (np.abs(down) > thr) & (np.sign(up) != np.sign(down)) & \
                    (np.abs(up + down) < 0.5 * np.maximum(np.abs(up), np.abs(down)))
            for j in (np.flatnonzero(spike) + 1).tolist():
                out.append(Finding("spike", int(t[j]), int(t[j]), 1, f"{v[j]:g} between {v[j - 1]:g} and "
                                                                     f"{v[j + 1]:g}"))
    for a, b in _runs(q >= 2):
        out.append(Finding("bad_quality", int(t[a]), int(t[b - 1]), b - a, "points marked bad"))
    future = t > now_us + th.future_s * 1e6
    if future.any():
        out.append(Finding("future_time", int(t[future][0]), int(t[future][-1]), int(future.sum()),
                           "points stamped in the future (a clock ahead)"))
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


@dataclass
class _TagClock:
    last_us: int
    repeated: int = 0
    backward: int = 0
    first_bad_us: int | None = None
    last_bad_us: int | None = None


@dataclass
class ArrivalWatch:
    """Counts, per tag, points that arrive with a time equal to (repeated) or before (clock jump) the tag's previous
    point: fed by the historian's write listener."""

    tags: dict[tuple[str, str], _TagClock] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_tags: int = 1_000_000

    def feed(self, tenant: str, points: pa.Table) -> None:
        """Take in one acknowledged write."""
        if points.num_rows == 0:
            return
        enc = pc.dictionary_encode(points.column("tag")).combine_chunks()
        codes = enc.indices.to_numpy(zero_copy_only=False)
        names = enc.dictionary.to_pylist()
        t = points.column("time").cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
        order = np.argsort(codes, kind="stable")  # keeps each tag's points in the order written
        codes, t = codes[order], t[order]
        cuts = np.flatnonzero(np.diff(codes)) + 1
        with self.lock:
            for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(codes)]]), strict=True):
                name = names[int(codes[a])]
                tt = t[a:b]
                clock = self.tags.get((tenant, name))
                prev = np.concatenate([[clock.last_us if clock else tt[0] - 1], tt[:-1]])
                newest = np.maximum.accumulate(prev)  # the newest time seen before each point
                rep = int(np.count_nonzero(tt == prev))
                back = int(np.count_nonzero(tt < newest))
                if clock is None:
                    if len(self.tags) >= self.max_tags:
                        continue
                    clock = self.tags[(tenant, name)] = _TagClock(int(tt[-1]))
                if rep or back:
                    bad = tt[(tt == prev) | (tt < newest)]
                    clock.first_bad_us = clock.first_bad_us or int(bad[0])
                    clock.last_bad_us = int(bad[-1])
                clock.repeated += rep
                clock.backward += back
                clock.last_us = max(clock.last_us, int(tt.max()))

    def findings(self, tenant: str, tag: str) -> list[Finding]:
        """The arrival findings of a tag so far (since the server started)."""
        clock = self.tags.get((tenant, tag))
        if clock is None or clock.first_bad_us is None or clock.last_bad_us is None:
            return []
        out = []
        if clock.repeated:
            out.append(Finding("repeated_time", clock.first_bad_us, clock.last_bad_us, clock.repeated,
                               f"{clock.repeated} points with the time of the point before"))
        if clock.backward:
            out.append(Finding("clock_jump", clock.first_bad_us, clock.last_bad_us, clock.backward,
                               f"{clock.backward} points older than the tag's newest point (the clock went back)"))
        return out


def finding_dict(f: Finding) -> dict[str, Any]:
    """JSON form."""
    from taehwa.core.timeutil import from_us

    return {"check": f.check, "start": from_us(f.start_us).isoformat(), "end": from_us(f.end_us).isoformat(),
            "points": f.points, "detail": f.detail}
