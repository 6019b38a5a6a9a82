"""Recomputing calculated signals and event frames for a range from the historian: after inputs arrived late, after an
expression changed, or for history that predates the expression (`taehwa analytics backfill`).

The range is taken a day at a time (bounded memory): the inputs of all the group's assets are read for the day, with
the history its windows need and the value in force before it, rows are made exactly as live computation makes
them, and the same `run_rows` evaluates them; points are written in one write per day (the historian keeps the last
write of a (tag, time), so a backfill over live output replaces it), events replace those of the range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from taehwa.analytics.compute import EMPTY, Rows, Series, union_times
from taehwa.analytics.frames import ScanState
from taehwa.analytics.program import Group, Program
from taehwa.analytics.records import BackfillCounts
from taehwa.analytics.runner import run_rows
from taehwa.analytics.series import merge, split
from taehwa.core.timeutil import from_us

if TYPE_CHECKING:
    from taehwa.analytics.recorder import EventRecorder
    from taehwa.historian.store import Historian

DAY_US = 86_400 * 1_000_000


@dataclass
class BackfillReport:
    """What a backfill did."""

    points: int = 0
    bad_points: int = 0
    events: int = 0
    reference_points: int = 0
    chunks: int = 0
    signals: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)

    def to_dict(self) -> BackfillCounts:
        """JSON form."""
        return {
            "points": self.points,
            "bad_points": self.bad_points,
            "events": self.events,
            "reference_points": self.reference_points,
            "chunks": self.chunks,
            "signals": self.signals,
            "templates": self.templates,
        }


def read_inputs(
    historian: Historian, tenant: str, tags: list[str], lo: int, hi: int, carry: dict[str, Series] | None = None
) -> dict[str, Series]:
    """Points of tags in (lo, hi] with each tag's value in force at lo in front (taken from `carry`, the previous
    chunk's points, when they reach lo: one query fewer per chunk)."""
    known = set(historian.catalog.ids(tenant))
    tags = [t for t in tags if t in known]
    if not tags:
        return {}
    if carry is not None and all(t in carry for t in tags):
        first = {}
        for t in tags:
            st, sv, sq = carry[t]
            k = int(np.searchsorted(st, lo, "right"))
            if k:
                first[t] = (st[k - 1 : k], sv[k - 1 : k], sq[k - 1 : k])
    else:
        first = split(historian.value_at(tenant, tags, from_us(lo)))
    inside = split(historian.read(tenant, tags, from_us(lo + 1), from_us(hi + 1)))
    out = {}
    for tag in tags:
        got, _ = merge(first.get(tag, EMPTY), inside.get(tag, EMPTY))
        out[tag] = got
    return out


def _source(data: dict[str, Series]) -> Callable[[str], Series]:
    return lambda tag: data.get(tag, EMPTY)


def watermarks(historian: Historian, tenant: str, g: Group, assets: list[str]) -> list[int | None]:
    """Each asset's watermark: the oldest of its inputs' newest points (rows after it wait for the inputs, as in
    live computation)."""
    tags = sorted({t for a in assets for t in g.inputs[a]})
    known = set(historian.catalog.ids(tenant))
    latest = historian.latest(tenant, [t for t in tags if t in known]) if any(t in known for t in tags) else None
    last: dict[str, int] = {}
    if latest is not None and latest.num_rows:
        times = latest.column("time").cast(pa.timestamp("us")).cast(pa.int64()).to_pylist()
        last = dict(zip(latest.column("tag").to_pylist(), times, strict=True))
    out: list[int | None] = []
    for a in assets:
        seen = [last[t] for t in g.inputs[a] if t in last]
        out.append(min(seen) if seen else None)
    return out


def backfill_group(
    historian: Historian,
    tenant: str,
    prog: Program,
    g: Group,
    assets: list[str],
    start: int,
    end: int,
    *,
    report: BackfillReport,
    recorder: EventRecorder | None = None,
    templates: bool = True,
    chunk_us: int = DAY_US,
    write: bool = True,
) -> list[dict[str, Any]]:
    """Recompute a group on some of its assets for [start, end); returns the events found (recorded when a
    recorder is given)."""
    assets = [a for a in assets if a in g.inputs]
    states: dict[tuple[str, str], ScanState] = {}
    found: list[dict[str, Any]] = []
    hist = g.history_us
    marks = watermarks(historian, tenant, g, assets)
    carry: dict[str, Series] = {}
    carry_ok = False
    pending: list[pa.Table] = []  # outputs not yet written: stored together once there are enough for the
    held = 0  # historian's direct path (sorted day files, no log, nothing to flush later)
    lo = start
    while lo < end:
        hi = min(lo + chunk_us, end)
        tags = sorted({t for a in assets for t in g.inputs[a]})
        # rows in [lo, hi): the series are read for (lo - 1 - hist, hi - 1]
        data = read_inputs(historian, tenant, tags, lo - 1 - hist, hi - 1, carry if carry_ok else None) if tags else {}
        carry, carry_ok = data, hist < chunk_us
        times = [union_times([data.get(t, EMPTY) for t in g.inputs[a]], lo - 1 - hist, hi - 1) for a in assets]
        rows = Rows.of(assets, times)
        res = run_rows(
            g, rows, [lo - 1] * len(assets), prog.binder, _source(data), states, until=marks, templates=templates
        )
        table = res.table()
        if table is not None:
            report.points += table.num_rows
            report.bad_points += int(np.count_nonzero(table.column("quality").to_numpy() >= 2))
            if write:
                pending.append(table)
                held += table.num_rows
                if held >= historian.settings.buffer_max_points:
                    historian.write_checked(tenant, pa.concat_tables(pending), history=True)
                    pending, held = [], 0
        for asset, name, ch in res.changes:
            if ch.end is None:
                continue
            found.append(
                {"asset": asset, "template": name, "start_us": ch.start, "end_us": ch.end, "reason": ch.reason}
            )
        report.chunks += 1
        lo = hi
    if pending:
        historian.write_checked(tenant, pa.concat_tables(pending), history=True)
    for (asset, name), st in states.items():  # still open at the end of the range
        if st.start is not None:
            found.append({"asset": asset, "template": name, "start_us": st.start, "end_us": None, "reason": None})
    if recorder is not None:
        type_of = {a: prog.plant.assets[a].type for a in assets if a in prog.plant.assets}
        for ev in found:
            tp = prog.templates.get((type_of.get(ev["asset"], ""), ev["template"]))
            ev["info"] = {"version": tp.version if tp else None, "backfill": True}
            if ev["end_us"] is not None and tp is not None:
                ev["stats"] = recorder.stats(tenant, prog, ev["asset"], tp, ev["start_us"], ev["end_us"])
    return found
