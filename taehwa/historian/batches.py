"""How a large batch is laid out for the day files: whether its rows already run in the files' order (so no point
can repeat and no sort is needed), a stable sort by tag id, and its split by day."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from taehwa.historian.files import DAY_US

DayStats = tuple[int, int, int, int, int, int]  # day, min and max time, min and max tag id, seq


def strict_order(batch: pa.Table) -> str | None:
    """'tag' when rows run strictly by (tag id, time), 'time' when by (time, tag id), else None. Either way no
    point can repeat; by (tag id, time) the rows are also in the files' own order already.

    Plant exports usually come so (every tag at each instant, or each tag's series in turn), and this check is a
    few vector operations where a hash check for duplicates costs a pass over a table of every key.
    """
    if batch.num_rows < 2:
        return "tag"
    tag = batch.column("tag_id").to_numpy()
    t = batch.column("time").cast(pa.int64()).to_numpy()
    same_tag, same_time = tag[1:] == tag[:-1], t[1:] == t[:-1]
    if bool(np.all((tag[1:] > tag[:-1]) | (same_tag & (t[1:] > t[:-1])))):
        return "tag"
    if bool(np.all((t[1:] > t[:-1]) | (same_time & (tag[1:] > tag[:-1])))):
        return "time"
    return None


def by_tag_id(batch: pa.Table) -> pa.Table:
    """A batch in (tag id, time) order by a stable sort on tag id; the tag names come back as a dictionary
    column built from the ids (moving millions of strings row by row costs more than the sort)."""
    ids = batch.column("tag_id").to_numpy()
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    first = np.r_[0, np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1]
    names = batch.column("tag").take(pa.array(order[first]))
    indices = np.repeat(np.arange(len(first), dtype=np.int32), np.diff(np.r_[first, len(order)]))
    tag = pa.DictionaryArray.from_arrays(pa.array(indices), names.combine_chunks())
    rest = batch.drop_columns(["tag"]).take(pa.array(order))
    return rest.add_column(batch.column_names.index("tag"), "tag", tag)


def day_parts(batch: pa.Table, seq: int, stats: list[DayStats] | None) -> Iterator[tuple[pa.Table, list[DayStats]]]:
    """A batch (tag_id, time, …, rn) as one slice per day, in day order, each with its file's figures (day, min
    and max time, min and max tag id, seq); rows keep their order within a day (a stable sort by day, skipped
    when the batch already runs day by day, as plant exports and long histories do)."""
    if stats is not None:  # one day, known already
        yield batch, stats
        return
    t = batch.column("time").cast(pa.int64()).to_numpy()
    day = t // DAY_US
    if not bool(np.all(day[1:] >= day[:-1])):
        order = np.argsort(day, kind="stable")
        batch, t, day = batch.take(pa.array(order)), t[order], day[order]
    ids = batch.column("tag_id").to_numpy()
    cuts = np.flatnonzero(day[1:] != day[:-1]) + 1
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(day)], strict=True):
        lo, hi = int(lo), int(hi)
        yield (
            batch.slice(lo, hi - lo),
            [
                (
                    int(day[lo]),
                    int(t[lo:hi].min()),
                    int(t[lo:hi].max()),
                    int(ids[lo:hi].min()),
                    int(ids[lo:hi].max()),
                    seq,
                )
            ],
        )
