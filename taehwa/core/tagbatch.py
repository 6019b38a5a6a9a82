"""Batches of points by tag, vectorised: where each point's tag sits in a known list of tags, and running maxima
per tag, without a Python step per point.

The historian's write listeners (the twin's live state, live analytics, the arrival checks) see every write; these
are what lets them take a batch of N points in a few array operations and a step per distinct tag at most.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECENT = 8
"""How many recent batches' distinct tag lists a `TagIndex` remembers (writers repeat the same tags)."""


def _array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


_last = threading.local()


def encode(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """A tag column's distinct names and each row's index into them (Arrow's dictionary encoding), the last
    column's answer kept per thread: a write's listeners (the catalog, the twin, the city's rates, the arrival
    checks, live analytics) each ask of the same column in the writer's thread, and it is encoded once.

    The column is known again by its buffers' addresses, which stay its own while the answer holds a reference to
    it (Arrow arrays are immutable)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    key = tuple(
        (str(c.type), c.offset, len(c), *(b.address if b is not None else 0 for b in c.buffers())) for c in chunks
    )
    got = getattr(_last, "entry", None)
    if got is not None and got[0] == key:
        return got[2], got[3]
    enc = pc.dictionary_encode(_array(column))
    names: pa.Array = enc.dictionary
    indices = enc.indices.to_numpy(zero_copy_only=False)
    indices.setflags(write=False)
    _last.entry = (key, column, names, indices)
    return names, indices


class TagIndex:
    """Positions of tags in a list that may grow: `codes(column)` gives each row's position (-1 for a tag not in
    it). Each distinct tag of a batch is hashed in C (dictionary encoding) and looked up once, and a batch with the
    same distinct tags as a recent one reuses that answer, so a batch costs C work per point and at most a dict
    lookup per distinct tag, whatever the size of the list (Arrow's `is_in` would hash the whole list every call).
    """

    def __init__(self, tags: Iterable[str] = ()) -> None:
        self.pos: dict[str, int] = {}
        self._recent: dict[tuple[int, str], tuple[pa.Array, np.ndarray]] = {}
        self.distinct = 0
        """How many distinct tags the last `codes` call saw."""
        self.add(tags)

    def __len__(self) -> int:
        return len(self.pos)

    def add(self, tags: Iterable[str]) -> list[int]:
        """Append tags not in the list yet; returns the position of each tag given."""
        out = []
        for tag in tags:
            i = self.pos.get(tag)
            if i is None:
                i = self.pos[tag] = len(self.pos)
            out.append(i)
        self._recent.clear()  # a tag unknown before may be known now
        return out

    def codes(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Each row's position in the list (int64, -1 where unknown)."""
        names, indices = encode(column)
        self.distinct = len(names)
        if len(names) == 0:
            return np.empty(0, np.int64)
        key = (len(names), names[0].as_py())
        got = self._recent.get(key)
        if got is not None and got[0].equals(names):
            hit: np.ndarray = got[1][indices]
            return hit
        pos = self.pos
        known = np.fromiter((pos.get(n, -1) for n in names.to_pylist()), np.int64, len(names))
        if len(self._recent) >= RECENT:
            self._recent.pop(next(iter(self._recent)))
        self._recent[key] = (names, known)
        out: np.ndarray = known[indices]
        return out


DAY_US = 86_400_000_000
SMALL = 32
"""Up to this many times, a datetime each is quicker than Arrow's kernels."""


@cache
def _clock() -> pa.Array:
    """`T00:00:00` … `T23:59:59`, one per second of a day (built once, by Arrow)."""
    two = pa.array([f"{i:02d}" for i in range(60)], pa.string())
    s = np.arange(86_400)
    parts = ("T", two.take(s // 3600), ":", two.take(s // 60 % 60), ":", two.take(s % 60))
    out: pa.Array = pc.binary_join_element_wise(*parts, "")
    return out


def iso_times(us: np.ndarray, prefix: str = "", suffix: str = "") -> pa.Array:
    """Times in µs since the epoch as `datetime.isoformat` writes them in UTC (`2026-01-01T00:00:00+00:00`, with
    `.ffffff` when there are microseconds), each between `prefix` and `suffix`: a date per distinct day and the
    second of the day from a table, joined by Arrow, rather than a datetime per time."""
    us = np.asarray(us, np.int64)
    if len(us) <= SMALL:
        return pa.array([f"{prefix}{(EPOCH + timedelta(microseconds=x)).isoformat()}{suffix}" for x in us.tolist()])
    out: pa.Array = pc.binary_join_element_wise(*iso_parts(us, prefix, suffix), "")
    return out


def iso_parts(us: np.ndarray, prefix: str = "", suffix: str = "") -> list[pa.Array | str]:
    """`iso_times` as the pieces to join (arrays of one string per time, or one string for all), so a caller that
    joins more onto each time joins once."""
    days, of_day = np.divmod(np.asarray(us, np.int64), DAY_US)
    seconds, micros = np.divmod(of_day, 1_000_000)
    dates, which = np.unique(days, return_inverse=True)
    text = [prefix + (EPOCH + timedelta(days=d)).date().isoformat() for d in dates.tolist()]
    date: pa.Array | str = text[0] if len(text) == 1 else pa.array(text, pa.string()).take(which)
    parts: list[pa.Array | str] = [date, _clock().take(seconds)]
    if micros.any():
        # 1000000 + µs written out, its leading 1 replaced by the point: ".000123"
        frac = pc.utf8_replace_slice(
            pc.cast(pa.array(micros + 1_000_000), pa.string()), start=0, stop=1, replacement="."
        )
        parts.append(pc.if_else(pa.array(micros != 0), frac, ""))
    parts.append("+00:00" + suffix)
    return parts


def segment_cummax(values: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Running maximum restarting with each segment (segments contiguous, numbered 0, 1, …), without a loop: each
    segment is lifted above the one before, so one cumulative maximum serves them all."""
    if not len(values):
        return values
    lo = int(values.min())
    span = int(values.max()) - lo + 1
    if span * (int(seg[-1]) + 1) < 2**62:
        lifted = (values - lo) + seg * span
        return np.asarray(np.maximum.accumulate(lifted) - seg * span + lo, np.int64)
    out = values.copy()  # would overflow: segment by segment
    cuts = np.flatnonzero(np.diff(seg)) + 1
    for a, b in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(values)]]).tolist(), strict=True):
        out[a:b] = np.maximum.accumulate(values[a:b])
    return out


def group_by_code(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stable order that puts equal codes together (each tag's points in the order written), and the start and
    end of each run of one code in that order."""
    order = np.argsort(codes, kind="stable")
    c = codes[order]
    n = len(c)
    if n == 0:
        empty = np.empty(0, np.int64)
        return order, empty, empty
    brk = np.flatnonzero(c[1:] != c[:-1]) + 1
    starts = np.concatenate([[0], brk]).astype(np.int64)
    ends = np.concatenate([brk, [n]]).astype(np.int64)
    return order, starts, ends
