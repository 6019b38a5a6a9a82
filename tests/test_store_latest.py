"""The last-value cache against a plain reference: random batches out of order, equal times within a batch and
across batches, bad and uncertain quality. The rule: the newest (time, seq) wins, and of equal times within one
batch the last row written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from taehwa.core.settings import Settings
from taehwa.historian.latest import LatestCache, Points, _last_by_time_seq, newest_per_tag
from taehwa.historian.store import Historian

T0 = 1_709_251_200_000_000  # 2024-03-01, µs

Ref = dict[int, tuple[int, float, int, int]]


def reference(ref: Ref, ids: np.ndarray, times: np.ndarray, vals: np.ndarray, qual: np.ndarray, seq: int) -> None:
    """One batch, row by row in the order written: a row replaces the tag's point when (time, seq) is not older."""
    for i, t, v, q in zip(ids.tolist(), times.tolist(), vals.tolist(), qual.tolist(), strict=True):
        old = ref.get(i)
        if old is None or (t, seq) >= (old[0], old[3]):
            ref[i] = (t, v, q, seq)


def random_batch(rng: np.random.Generator, n_tags: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = int(rng.integers(1, 60))
    ids = rng.integers(0, n_tags, n) * 7 + 3  # sparse ids, any order, repeated
    times = T0 + rng.integers(0, 6, n) * 1_000_000  # few distinct times: ties within and across batches
    vals = rng.normal(size=n)
    qual = rng.integers(0, 3, n).astype(np.uint8)  # good, uncertain, bad: quality never decides
    return ids.astype(np.int64), times.astype(np.int64), vals, qual


def as_ref(cache: LatestCache, tenant: str) -> Ref:
    return {i: (last.time_us, last.value, last.quality, last.seq) for i, last in cache.get(tenant).items()}


@pytest.mark.parametrize("seed", range(8))
def test_cache_matches_reference_on_random_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cache = LatestCache()
    ref: Ref = {}
    seqs = rng.permutation(200) + 1  # batches folded out of seq order too (a start folds files after the log)
    for seq in seqs[:120].tolist():
        ids, times, vals, qual = random_batch(rng, 40)
        reference(ref, ids, times, vals, qual, seq)
        n = len(ids)
        how = seq % 3
        if how == 0:  # a buffered write: the rows' own order is the order written
            table = pa.table(
                {
                    "tag_id": ids,
                    "time": pa.array(times).cast(pa.timestamp("us", tz="UTC")),
                    "value": vals,
                    "quality": qual,
                    "seq": np.full(n, seq, np.int64),
                }
            )
            cache.merge_table("acme", table)
        elif how == 1:  # a large write, rows reordered (by tag) with the order written in `rn`
            by = np.argsort(ids, kind="stable")
            table = pa.table({"tag_id": ids[by], "time": times[by], "value": vals[by], "quality": qual[by]})
            cache.merge_table("acme", table.append_column("rn", pa.array(np.arange(n)[by])), seq=seq)
        else:
            cache.merge_points("acme", Points(ids, times, vals, qual, np.full(n, seq, np.int64)))
        assert as_ref(cache, "acme") == ref
    # several batches folded at once (a log replay) keep the rule: seq decides equal times
    more: list[tuple[np.ndarray, ...]] = []
    for seq in seqs[120:].tolist():
        ids, times, vals, qual = random_batch(rng, 40)
        reference(ref, ids, times, vals, qual, seq)
        more.append((ids, times, vals, qual, np.full(len(ids), seq, np.int64)))
    cache.merge_points("acme", Points(*(np.concatenate(c) for c in zip(*more, strict=True))))
    assert as_ref(cache, "acme") == ref
    assert as_ref(cache, "rival") == {}
    # the snapshot round-trips, and retention forgets what is older than its cutoff
    copy = LatestCache()
    assert copy.load_snapshot("acme", cache.snapshot_bytes("acme", 7)) == 7
    assert as_ref(copy, "acme") == ref
    cutoff = T0 + 3_000_000
    copy.drop_before("acme", cutoff)
    assert as_ref(copy, "acme") == {i: p for i, p in ref.items() if p[0] >= cutoff}
    found, points = copy.lookup("acme", np.array([3, 10, 5, 3]))
    want = [i for i in (3, 10, 5, 3) if i in ref and ref[i][0] >= cutoff]
    assert points.tag_id.tolist() == want and found.sum() == len(want)


def test_tie_rule_is_last_row_of_a_batch_then_highest_seq() -> None:
    cache = LatestCache()
    one = np.array([5, 5, 5], np.int64)
    times = np.array([T0 + 1, T0 + 1, T0], np.int64)  # the last row is older: the second row wins
    cache.merge_points("acme", Points(one, times, np.array([1.0, 2.0, 3.0]), np.zeros(3, np.uint8), np.full(3, 4)))
    assert cache.get("acme")[5].value == 2.0
    older = Points(one[:1], times[:1], np.array([9.0]), np.array([2], np.uint8), np.array([3], np.int64))
    cache.merge_points("acme", older)  # an older seq at the same time loses
    assert cache.get("acme")[5].value == 2.0
    newer = Points(one[:1], times[:1], np.array([8.0]), np.array([2], np.uint8), np.array([6], np.int64))
    cache.merge_points("acme", newer)  # a newer seq at the same time wins, bad quality or not
    assert cache.get("acme")[5][1:3] == (8.0, 2)


def test_historian_latest_matches_reference_through_writes_flush_and_restart(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_token="t", buffer_max_points=150)
    rng = np.random.default_rng(11)
    tags = [f"p/{i}" for i in range(30)]
    ref: dict[str, tuple[int, float, int]] = {}
    with Historian(settings, background=False) as h:
        h.tenants.create("acme")
        for k in range(25):
            n = int(rng.integers(1, 300))  # some batches go straight to files (≥ 150 points)
            which = rng.integers(0, len(tags), n)
            times = T0 + rng.integers(0, 5, n) * 1_000_000
            vals, qual = rng.normal(size=n), rng.integers(0, 3, n)
            for w, t, v, q in zip(which.tolist(), times.tolist(), vals.tolist(), qual.tolist(), strict=True):
                old = ref.get(tags[w])
                if old is None or t >= old[0]:  # later writes and later rows win equal times
                    ref[tags[w]] = (t, v, q)
            h.write(
                "acme",
                pa.table(
                    {
                        "tag": pa.array([tags[w] for w in which.tolist()]),
                        "time": pa.array(times.astype("datetime64[us]")),
                        "value": vals,
                        "quality": pa.array(qual, pa.uint8()),
                    }
                ),
            )
            if k % 7 == 6:
                h.flush()
        got = h.latest("acme")
        want = sorted(ref)
        assert got.column("tag").to_pylist() == want
        assert got.column("value").to_pylist() == [ref[t][1] for t in want]
        assert got.column("quality").to_pylist() == [ref[t][2] for t in want]
        some = h.latest("acme", ["p/3", "p/1"])
        assert some.column("tag").to_pylist() == [t for t in ("p/3", "p/1") if t in ref]
    with Historian(settings, background=False) as h:  # rebuilt from the snapshot, the files and the log
        got = h.latest("acme")
        assert got.column("value").to_pylist() == [ref[t][1] for t in sorted(ref)]
        assert got.column("time").cast(pa.int64()).to_pylist() == [ref[t][0] for t in sorted(ref)]


def test_the_newest_of_a_large_batch_is_the_one_a_full_sort_picks() -> None:
    """A batch of many rows takes each tag's candidates at its newest time first; ties in time, seq and the
    written order are decided as the full sort decides them."""

    rng = np.random.default_rng(4)
    n = 50_000
    ids = rng.integers(0, 900, n)
    times = rng.integers(0, 40, n)  # many rows share their tag's newest time
    pts = Points(ids, times, rng.normal(size=n), rng.integers(0, 3, n).astype(np.uint8), rng.integers(5, 8, n))
    for order in (None, rng.permutation(n)):
        fast, full = newest_per_tag(pts, order), _last_by_time_seq(pts, order)
        for a, b in zip(fast, full, strict=True):
            assert np.array_equal(a, b)
