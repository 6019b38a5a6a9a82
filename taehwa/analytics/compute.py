"""Evaluating plans, vectorised with NumPy over many assets at once.

The rows are the times at which any input of an asset changed (PI's event-triggered analyses), for a set of assets,
sorted by (asset, time). Each input is taken at each row as its newest point at or before it (as-of). Every plan
node is one NumPy operation over all rows of all assets; windows use a composite (asset, time) key so no window
crosses from one asset to the next. A value that is not finite (a division by zero, the log of a negative) or that
reads a bad or missing input comes out as a bad-quality point, never an exception.

Live computation and backfill build their rows the same way and call the same `evaluate`, which is what makes them
agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from taehwa.analytics.plan import Agg, Attr, Const, Edge, Func, Limit, P, Sig, Window
from taehwa.historian.schema import Quality

BAD = int(Quality.BAD)
Series = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A tag's points: times (int64 µs, ascending), values (float64), qualities (uint8)."""
EMPTY: Series = (np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.uint8))


class Binder(Protocol):
    """What plans are bound to on a plant: the tags, numbers and children of assets."""

    def tag(self, asset: str, role: str) -> str | None:
        """The tag of an asset's signal (None: not bound)."""

    def number(self, asset: str, plan: Attr | Limit) -> float:
        """An attribute's value or a limit in force (NaN when absent)."""

    def members(self, asset: str, type_name: str, deep: bool) -> list[str]:
        """The children (or descendants) of an asset that are of a type."""


@dataclass
class Rows:
    """The times a plan is evaluated at: for each asset its rows, sorted by (asset, time)."""

    assets: list[str]
    t: np.ndarray  # int64 µs
    inst: np.ndarray  # int64: index into assets
    bounds: np.ndarray  # int64, len(assets) + 1: the rows of asset i are bounds[i]:bounds[i + 1]

    @classmethod
    def of(cls, assets: list[str], times: list[np.ndarray]) -> Rows:
        """Rows from each asset's (ascending) times."""
        counts = np.array([len(t) for t in times], np.int64)
        bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        t = np.concatenate(times).astype(np.int64) if times else np.empty(0, np.int64)
        return cls(list(assets), t, np.repeat(np.arange(len(assets), dtype=np.int64), counts), bounds)

    def __len__(self) -> int:
        return len(self.t)


def union_times(series: list[Series], lo: int | None, hi: int) -> np.ndarray:
    """The distinct times of some series in (lo, hi], with the newest time at or before lo in front (the row that
    windows and edges look back to)."""
    parts = []
    before = -1
    for t, _, _ in series:
        a = 0 if lo is None else int(t.searchsorted(lo, "right"))
        b = int(t.searchsorted(hi, "right"))
        parts.append(t[a:b])
        if a > 0:
            before = max(before, int(t[a - 1]))
    if not parts:
        return np.empty(0, np.int64)
    first = parts[0]
    # inputs sampled together (the common case): their times are already the union
    inside = first if all(_same(x, first) for x in parts[1:]) else np.unique(np.concatenate(parts))
    if before >= 0 and (not len(inside) or before < inside[0]):
        return np.concatenate([np.array([before], np.int64), inside])
    return inside


def union_rows(assets: list[str], inputs: list[list[Series]], lo: list[int | None], hi: list[int]) -> Rows:
    """`Rows.of(assets, [union_times(inputs[i], lo[i], hi[i]) ...])` for many assets in a few array operations
    over all their inputs laid end to end, rather than a handful per asset (a live step has hundreds)."""
    n = len(assets)
    per_asset = [len(series) for series in inputs]
    flat = [s[0] for series in inputs for s in series]
    if not flat or not sum(len(x) for x in flat):
        return Rows.of(assets, [np.empty(0, np.int64)] * n)
    t = np.concatenate(flat).astype(np.int64, copy=False)
    owner = np.repeat(np.arange(n, dtype=np.int64), per_asset)
    inst = np.repeat(owner, [len(x) for x in flat])
    lo_at = np.array([-(2**63) if x is None else x for x in lo], np.int64)[inst]
    inside = (t > lo_at) & (t <= np.asarray(hi, np.int64)[inst])
    before = np.full(n, -1, np.int64)  # each asset's newest time at or before lo (none: -1, as union_times)
    at_lo = t <= lo_at
    np.maximum.at(before, inst[at_lo], t[at_lo])
    has = np.flatnonzero(before >= 0)
    ri = np.concatenate([inst[inside], has])
    rt = np.concatenate([t[inside], before[has]])
    order = np.lexsort((rt, ri))
    ri, rt = ri[order], rt[order]
    if len(rt) > 1:  # distinct (asset, time)
        keep = np.ones(len(rt), bool)
        keep[1:] = (ri[1:] != ri[:-1]) | (rt[1:] != rt[:-1])
        ri, rt = ri[keep], rt[keep]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(ri, minlength=n))]).astype(np.int64)
    return Rows(list(assets), rt, ri, bounds)


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether two ascending time arrays are equal (the ends first: most that differ, differ there)."""
    n = len(x)
    if n != len(y):
        return False
    return n == 0 or (x[0] == y[0] and x[-1] == y[-1] and bool((x == y).all()))


Memo = dict[object, tuple[np.ndarray, np.ndarray]]
"""Values already computed on the same rows: inputs by what they are (shared by every plan of a step), other nodes
by identity."""


def evaluate(
    plan: P, rows: Rows, binder: Binder, data: Callable[[str], Series], memo: Memo | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(values, qualities) of a plan at every row; non-finite values come with bad quality. Plans evaluated on the
    same rows may share a `memo`, so each input is looked up once."""
    memo = {} if memo is None else memo
    with np.errstate(all="ignore"):
        v, q = _eval(plan, rows, binder, data, memo)
    bad = ~np.isfinite(v)
    if bad.any():
        q = np.where(bad, BAD, q).astype(np.uint8)
    return v, q


def _eval(p: P, rows: Rows, binder: Binder, data: Callable[[str], Series], memo: Memo) -> tuple[np.ndarray, np.ndarray]:
    key: object = p if isinstance(p, Sig | Attr | Limit | Const) else id(p)
    got = memo.get(key)
    if got is not None:
        return got
    n = len(rows)
    if isinstance(p, Const):
        out = (np.full(n, p.value), np.zeros(n, np.uint8))
    elif isinstance(p, Sig):
        out = _asof(p.role, rows, binder, data)
    elif isinstance(p, Attr | Limit):
        per = np.array([binder.number(a, p) for a in rows.assets], np.float64)
        v = per[rows.inst] if n else np.empty(0)
        out = (v, np.where(np.isfinite(v), 0, BAD).astype(np.uint8))
    elif isinstance(p, Func):
        args = [_eval(a, rows, binder, data, memo) for a in p.args]
        q = args[0][1]
        for _, aq in args[1:]:
            q = np.maximum(q, aq)
        out = (_func(p.fn, [a for a, _ in args]), q)
    elif isinstance(p, Window):
        v, q = _eval(p.arg, rows, binder, data, memo)
        out = (_window(p.fn, v, q, rows, p.us), q)
    elif isinstance(p, Edge):
        v, q = _eval(p.arg, rows, binder, data, memo)
        prev = np.full(n, np.nan)
        if n > 1:
            prev[1:] = v[:-1]
            prev[rows.bounds[:-1][rows.bounds[:-1] < n]] = np.nan  # each asset's first row has no previous
        if p.to is None:
            hit = np.isfinite(prev) & (v != prev)
        else:
            to, tq = _eval(p.to, rows, binder, data, memo)
            hit = np.isfinite(prev) & (v == to) & (prev != to)
            q = np.maximum(q, tq)
        out = (hit.astype(np.float64), q)
    elif isinstance(p, Agg):
        out = _aggregate(p, rows, binder, data)
    else:  # pragma: no cover - the resolver makes no other node
        raise TypeError(f"unknown plan node {type(p).__name__}")
    memo[key] = out
    return out


def _asof(role: str, rows: Rows, binder: Binder, data: Callable[[str], Series]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's newest point of the asset's signal at or before it: the assets' series are laid end to end under
    a composite (asset, time) key, so one binary search serves every asset."""
    n = len(rows)
    v = np.full(n, np.nan)
    q = np.full(n, BAD, np.uint8)
    if n == 0:
        return v, q
    parts_t, parts_v, parts_q, owners, sizes = [], [], [], [], []
    has_rows = (rows.bounds[1:] > rows.bounds[:-1]).tolist()
    for i, asset in enumerate(rows.assets):
        if not has_rows[i]:
            continue
        tag = binder.tag(asset, role)
        if tag is None:
            continue
        st, sv, sq = data(tag)
        if len(st):
            parts_t.append(st)
            parts_v.append(sv)
            parts_q.append(sq)
            owners.append(i)
            sizes.append(len(st))
    if not parts_t:
        return v, q
    st = np.concatenate(parts_t)
    si = np.repeat(np.array(owners, np.int64), sizes)
    t0 = min(int(st.min()), int(rows.t.min()))
    span = max(int(st.max()), int(rows.t.max())) - t0 + 1
    if span * (len(rows.assets) + 1) >= 2**62:  # keys would overflow: asset by asset
        return _asof_each(role, rows, binder, data)
    skey = si * span + (st - t0)
    rkey = rows.inst * span + (rows.t - t0)
    idx = np.searchsorted(skey, rkey, "right") - 1
    safe = np.maximum(idx, 0)
    ok = (idx >= 0) & (si[safe] == rows.inst)
    sv_all, sq_all = np.concatenate(parts_v), np.concatenate(parts_q)
    v = np.where(ok, sv_all[safe], np.nan)
    q = np.where(ok, sq_all[safe], BAD).astype(np.uint8)
    return v, q


def _asof_each(role: str, rows: Rows, binder: Binder, data: Callable[[str], Series]) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    v = np.full(n, np.nan)
    q = np.full(n, BAD, np.uint8)
    for i, asset in enumerate(rows.assets):
        a, b = int(rows.bounds[i]), int(rows.bounds[i + 1])
        tag = binder.tag(asset, role) if a < b else None
        if tag is None:
            continue
        st, sv, sq = data(tag)
        if not len(st):
            continue
        idx = np.searchsorted(st, rows.t[a:b], "right") - 1
        ok = idx >= 0
        safe = np.maximum(idx, 0)
        v[a:b] = np.where(ok, sv[safe], np.nan)
        q[a:b] = np.where(ok, sq[safe], BAD)
    return v, q


def _func(fn: str, a: list[np.ndarray]) -> np.ndarray:
    return np.asarray(_func_any(fn, a), np.float64)


def _func_any(fn: str, a: list[np.ndarray]) -> Any:
    x = a[0]
    if fn in _BINARY:
        return _BINARY[fn](x, a[1]).astype(np.float64)
    if fn == "neg":
        return -x
    if fn == "not":
        return (~(x > 0.5)).astype(np.float64)
    if fn == "abs":
        return np.abs(x)
    if fn == "sqrt":
        return np.where(x >= 0, np.sqrt(np.abs(x)), np.nan)
    if fn == "log":
        return np.where(x > 0, np.log(np.abs(x) + (x == 0)), np.nan)
    if fn == "exp":
        return np.exp(x)
    if fn == "round":
        return np.round(x)
    if fn == "min":
        return np.minimum.reduce(a)
    if fn == "max":
        return np.maximum.reduce(a)
    if fn == "clip":
        return np.minimum(np.maximum(x, a[1]), a[2])
    if fn == "if":
        return np.where(x > 0.5, a[1], a[2])
    raise ValueError(f"unknown function {fn}")  # pragma: no cover - the resolver refuses it first


_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": lambda x, y: np.where(y != 0, x / np.where(y != 0, y, 1.0), np.nan),
    "%": lambda x, y: np.where(y != 0, np.mod(x, np.where(y != 0, y, 1.0)), np.nan),
    "^": np.power,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
    "and": lambda x, y: (x > 0.5) & (y > 0.5),
    "or": lambda x, y: (x > 0.5) | (y > 0.5),
}


def window_starts(rows: Rows, us: int) -> np.ndarray:
    """For each row, the first row of the same asset with a time after (row time - us)."""
    n = len(rows)
    if n == 0:
        return np.empty(0, np.int64)
    t0 = int(rows.t.min())
    span = int(rows.t.max()) - t0 + us + 1
    if span * max(len(rows.assets), 1) < 2**62:
        key = rows.inst * span + (rows.t - t0)
        starts: np.ndarray = np.searchsorted(key, key - us, "right").astype(np.int64)
        return starts
    out = np.empty(n, np.int64)  # keys would overflow: asset by asset
    for i in range(len(rows.assets)):
        a, b = int(rows.bounds[i]), int(rows.bounds[i + 1])
        out[a:b] = a + np.searchsorted(rows.t[a:b], rows.t[a:b] - us, "right")
    return out


def _window(fn: str, v: np.ndarray, q: np.ndarray, rows: Rows, us: int) -> np.ndarray:
    n = len(rows)
    if n == 0:
        return np.empty(0)
    start = window_starts(rows, us)
    idx = np.arange(n)
    first = rows.bounds[:-1][rows.inst]  # each row's asset's first row
    ok = np.isfinite(v) & (q < BAD)
    if fn in ("rolling_mean", "rolling_sum"):
        vz = np.where(ok, v, 0.0)
        cs = np.concatenate([[0.0], np.cumsum(vz)])
        cn = np.concatenate([[0], np.cumsum(ok)])
        total = cs[idx + 1] - cs[start]
        count = cn[idx + 1] - cn[start]
        if fn == "rolling_sum":
            return np.where(count > 0, total, np.nan)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    if fn in ("rolling_min", "rolling_max"):
        fill = np.inf if fn == "rolling_min" else -np.inf
        vals = np.where(ok, v, fill)
        out = _range_reduce(vals, start, idx, np.minimum if fn == "rolling_min" else np.maximum)
        return np.where(np.isfinite(out), out, np.nan)
    if fn in ("integral", "time_in_state"):
        vz = np.where(ok, v, 0.0) if fn == "integral" else (ok & (v > 0.5)).astype(np.float64)
        dt = np.zeros(n)
        dt[:-1] = np.diff(rows.t).astype(np.float64) / 1e6
        last = rows.bounds[1:] - 1  # no segment runs past an asset's last row
        dt[last[last >= 0]] = 0.0
        area = np.concatenate([[0.0], np.cumsum(vz * dt)])
        inside = area[idx] - area[start]  # segments start..i-1
        before = start - 1
        has = before >= first
        partial = np.where(
            has, vz[np.maximum(before, 0)] * (rows.t[np.minimum(start, n - 1)] - (rows.t - us)) / 1e6, 0.0
        )
        return np.asarray(inside + partial, np.float64)
    if fn in ("rate", "delta"):
        before = start - 1
        has = before >= first
        prev = np.where(has, v[np.maximum(before, 0)], np.nan)
        d = np.asarray(v - prev, np.float64)
        return d / (us / 1e6) if fn == "rate" else d
    raise ValueError(f"unknown window function {fn}")  # pragma: no cover


def _range_reduce(
    vals: np.ndarray, lo: np.ndarray, hi: np.ndarray, op: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """op over vals[lo[i]:hi[i] + 1] for every i, by a sparse table (O(n log n), no Python loop over rows)."""
    n = len(vals)
    levels = [vals]
    k = 1
    while (1 << k) <= n:
        prev, half = levels[-1], 1 << (k - 1)
        levels.append(op(prev[:-half], prev[half:]))
        k += 1
    length = hi - lo + 1
    j = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
    out = np.empty(n)
    for level in np.unique(j):
        m = j == level
        table = levels[int(level)]
        out[m] = op(table[lo[m]], table[hi[m] - (1 << int(level)) + 1])
    return out


def _aggregate(p: Agg, rows: Rows, binder: Binder, data: Callable[[str], Series]) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    sub_assets: list[str] = []
    sub_times: list[np.ndarray] = []
    parent_rows: list[np.ndarray] = []
    for i, asset in enumerate(rows.assets):
        a, b = int(rows.bounds[i]), int(rows.bounds[i + 1])
        for member in binder.members(asset, p.type, p.deep):
            sub_assets.append(member)
            sub_times.append(rows.t[a:b])
            parent_rows.append(np.arange(a, b, dtype=np.int64))
    if not sub_assets:
        v = np.zeros(n) if p.fn == "count" else np.full(n, np.nan)
        return v, np.where(np.isfinite(v), 0, BAD).astype(np.uint8)
    sub = Rows.of(sub_assets, sub_times)
    v, q = evaluate(p.each, sub, binder, data)
    parent = np.concatenate(parent_rows)
    ok = np.isfinite(v) & (q < BAD)
    count = np.bincount(parent[ok], minlength=n).astype(np.float64)
    quality = np.zeros(n, np.uint8)
    np.maximum.at(quality, parent[ok], q[ok])
    if p.fn == "count":
        return count, quality
    if p.fn in ("sum", "mean"):
        total = np.bincount(parent[ok], weights=v[ok], minlength=n)
        out = total if p.fn == "sum" else total / np.maximum(count, 1)
    else:
        out = np.full(n, np.inf if p.fn == "min" else -np.inf)
        (np.minimum if p.fn == "min" else np.maximum).at(out, parent[ok], v[ok])
    out = np.where(count > 0, out, np.nan)
    return out, np.where(count > 0, quality, BAD).astype(np.uint8)


def lookup(series: Mapping[str, Series]) -> Callable[[str], Series]:
    """A data source from a mapping of tag → series (missing tags have no points)."""
    return lambda tag: series.get(tag, EMPTY)
