"""One step of a group on some rows, shared by live computation and backfill: every calculated signal evaluated
over all the group's assets at once and turned into points (bad-quality where the value is not finite), every event
template's conditions evaluated and scanned.

Only rows after each asset's `after` time are output; the rows before are the history windows and edges look back at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from taehwa.analytics.compute import BAD, Binder, Memo, Rows, Series, evaluate
from taehwa.analytics.frames import Change, ScanState, scan
from taehwa.analytics.program import Group
from taehwa.historian.schema import STORE_SCHEMA


@dataclass
class StepResult:
    """Points to write and events that changed."""

    points: list[pa.Table] = field(default_factory=list)
    changes: list[tuple[str, str, Change]] = field(default_factory=list)  # (asset, template, change)
    rows: int = 0

    def table(self) -> pa.Table | None:
        """All points in one table (None when there are none)."""
        tables = [t for t in self.points if t.num_rows]
        return pa.concat_tables(tables) if tables else None


def run_rows(
    g: Group,
    rows: Rows,
    after: Sequence[int | None],
    binder: Binder,
    data: object,
    states: dict[tuple[str, str], ScanState],
    *,
    until: Sequence[int | None] | None = None,
    templates: bool = True,
    memo: Memo | None = None,
) -> StepResult:
    """Evaluate a group on rows; output rows with after[i] < t (≤ until[i] when given). `memo`: values computed
    on the same rows and data before (another group's), to share."""
    out = StepResult()
    if not len(rows):
        return out
    lo = np.array([-(2**62) if a is None else a for a in after], np.int64)[rows.inst]
    mask = rows.t > lo
    if until is not None:
        hi = np.array([2**62 if u is None else u for u in until], np.int64)[rows.inst]
        mask &= rows.t <= hi
    if not mask.any():
        return out
    sel = np.flatnonzero(mask)
    out.rows = len(sel)
    inst = rows.inst[sel]
    times = rows.t[sel]
    memo = {} if memo is None else memo
    if g.calcs:
        dictionary, known, pos = _outputs(g, binder)
        where = np.array([pos[a] for a in rows.assets], np.int64)[inst]
        codes, all_v, all_q = [], [], []
        for k, c in enumerate(g.calcs):
            v, q = evaluate(c.plan, rows, binder, data, memo)  # type: ignore[arg-type]
            codes.append(where + k * len(g.assets))
            all_v.append(v[sel])
            all_q.append(q[sel])
        code = np.concatenate(codes)
        value = np.concatenate(all_v)
        quality = np.concatenate(all_q)
        t_out = np.tile(times, len(g.calcs))
        keep = known[code]
        if not keep.all():
            code, value, quality, t_out = code[keep], value[keep], quality[keep], t_out[keep]
        bad = quality >= BAD
        out.points.append(
            pa.table(
                {
                    "tag": pa.DictionaryArray.from_arrays(pa.array(code, pa.int32()), dictionary).cast(pa.string()),
                    "time": pa.array(t_out, pa.int64()).cast(pa.timestamp("us")),
                    "value": pa.array(np.where(bad, 0.0, value), pa.float64()),
                    "quality": pa.array(quality, pa.uint8()),
                },
                schema=STORE_SCHEMA,
            )
        )
    if templates:
        for tp in g.templates:
            sv, sq = evaluate(tp.start, rows, binder, data, memo)  # type: ignore[arg-type]
            start = (sv > 0.5) & (sq < BAD)
            end = None
            if tp.end is not None:
                ev, eq = evaluate(tp.end, rows, binder, data, memo)  # type: ignore[arg-type]
                end = (ev > 0.5) & (eq < BAD)
            for i, asset in enumerate(rows.assets):
                a, b = int(rows.bounds[i]), int(rows.bounds[i + 1])
                m = mask[a:b]
                if not m.any():
                    continue
                state = states.setdefault((asset, tp.name), ScanState())
                t_i = rows.t[a:b][m]
                changes = scan(
                    state, t_i, start[a:b][m], end[a:b][m] if end is not None else None, tp.held_us, tp.max_us
                )
                out.changes.extend((asset, tp.name, ch) for ch in changes)
    return out


def _outputs(g: Group, binder: Binder) -> tuple[pa.Array, np.ndarray, dict[str, int]]:
    """The group's output tags, calc by calc, asset by asset (kept with the group: computed once)."""
    if g.outputs is None:
        names = [binder.tag(a, c.signal) for c in g.calcs for a in g.assets]
        g.outputs = (
            pa.array([n or "" for n in names], pa.string()),
            np.array([n is not None for n in names], bool),
            {a: i for i, a in enumerate(g.assets)},
        )
    dictionary, known, pos = g.outputs
    return dictionary, known, pos


def series_of(buffers: dict[str, Series]) -> object:
    """A data source over buffers."""
    from taehwa.analytics.compute import EMPTY

    return lambda tag: buffers.get(tag, EMPTY)
