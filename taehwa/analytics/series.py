"""Points as per-tag NumPy series: from a historian table, and kept per tag for live computation (appended in time
order, merged when a point arrives late, trimmed to the history still needed)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from taehwa.analytics.compute import EMPTY, Series


def split(table: pa.Table) -> dict[str, Series]:
    """A (tag, time, value, quality) table as series per tag, each sorted by time with one point per time (the
    last one given wins, as in the historian)."""
    if table.num_rows == 0:
        return {}
    enc = pc.dictionary_encode(table.column("tag")).combine_chunks()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    names = enc.dictionary.to_pylist()
    t = table.column("time").cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
    v = table.column("value").to_numpy().astype(np.float64, copy=False)
    q = table.column("quality").to_numpy().astype(np.uint8, copy=False)
    dc, dt = np.diff(codes), np.diff(t)
    if not ((dc > 0) | ((dc == 0) & (dt > 0))).all():  # not already by tag then strictly by time (as reads are)
        order = np.lexsort((np.arange(len(t)), t, codes))  # by tag, time, then as given
        codes, t, v, q = codes[order], t[order], v[order], q[order]
        last = np.ones(len(t), bool)  # the last row of each (tag, time)
        last[:-1] = (codes[1:] != codes[:-1]) | (t[1:] != t[:-1])
        codes, t, v, q = codes[last], t[last], v[last], q[last]
    cuts = np.flatnonzero(np.diff(codes)) + 1
    out: dict[str, Series] = {}
    for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(codes)]]), strict=True):
        out[names[int(codes[a])]] = (t[a:b], v[a:b], q[a:b])
    return out


def merge(old: Series, new: Series) -> tuple[Series, int | None]:
    """Points appended to a series; returns it and the earliest time that arrived out of order (None if none)."""
    ot, ov, oq = old
    nt, nv, nq = new
    if not len(ot):
        return new, None
    if not len(nt):
        return old, None
    if nt[0] > ot[-1]:
        return (np.concatenate([ot, nt]), np.concatenate([ov, nv]), np.concatenate([oq, nq])), None
    late = int(nt[0])
    t = np.concatenate([ot, nt])
    v = np.concatenate([ov, nv])
    q = np.concatenate([oq, nq])
    order = np.argsort(t, kind="stable")
    t, v, q = t[order], v[order], q[order]
    last = np.ones(len(t), bool)
    last[:-1] = t[1:] != t[:-1]
    return (t[last], v[last], q[last]), late


def trim(s: Series, keep_from: int) -> Series:
    """A series without the points before `keep_from`, except the newest of them (the value in force then)."""
    t = s[0]
    k = int(np.searchsorted(t, keep_from, "left")) - 1
    if k <= 0:
        return s
    return (t[k:], s[1][k:], s[2][k:])


__all__ = ["EMPTY", "Series", "merge", "split", "trim"]
