"""The twin's live state folds a write in with array operations; these tests hold it to the point-by-point fold it
replaced (kept here as the reference): the same state and the same events, on batches with points out of order,
equal timestamps, bad quality, limits crossed and crossed back, unknown tags, and staleness."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest

from taehwa.core.tagbatch import iso_times
from taehwa.core.timeutil import from_us
from taehwa.historian.schema import STORE_SCHEMA, Quality
from taehwa.twin.live import TenantLive, worst
from taehwa.twin.model import Plant, parse_document

T0 = 1_767_225_600_000_000

PLANT = {
    "types": {
        "Pump": {
            "sensors": {
                "flow": {"interval": "1s", "limits": {"high_warning": 40, "high_alarm": 45, "low_warning": 5}},
                "pressure": {"interval": "2s", "limits": {"low_alarm": 2, "low_warning": 4}},
                "speed": {},
            },
            "derived": {"health": {"limits": {"low_warning": 0.3, "low_alarm": 0.1}}},
        },
    },
    "assets": [
        {
            "id": "site",
            "type": "Area",
            "children": [
                {
                    "id": f"p{j}",
                    "type": "Pump",
                    "tags": {"flow": f"raw/p{j}/flow", "pressure": f"raw/p{j}/pressure", "speed": f"raw/p{j}/speed"},
                }
                for j in range(4)
            ],
        }
    ],
}


def plant() -> Plant:
    return parse_document(PLANT, source="plant.yaml")


class Reference:
    """The point-by-point fold (the live state before it was vectorised), over the same model."""

    def __init__(self, live: TenantLive) -> None:
        self.live = live

    def apply(self, points: pa.Table) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
        live = self.live
        per_asset: dict[str, dict[str, list[list[Any]]]] = {}
        touched: set[str] = set()
        for tag, t, v, q in zip(
            points.column("tag").to_pylist(),
            points.column("time").cast(pa.int64()).to_pylist(),
            points.column("value").to_pylist(),
            points.column("quality").to_pylist(),
            strict=True,
        ):
            if tag not in live.by_tag:
                continue
            path, sig = live.by_tag[tag]
            st = live.signals[path][sig]
            per_asset.setdefault(path, {}).setdefault(sig, []).append([from_us(t).isoformat(), v, q])
            if st.time_us is None or t >= st.time_us:
                before = st.state
                st.time_us, st.value, st.quality, st.stale = t, v, q, False
                st.limit = st.limits.state(v)
                if st.state != before:
                    touched.add(path)
        events: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []
        for path, sigs in per_asset.items():
            measured = {k: v for k, v in sigs.items() if not live.signals[path][k].derived}
            model = {k: v for k, v in sigs.items() if live.signals[path][k].derived}
            if measured:
                events.append(("values", (path,), {"path": path, "signals": measured}))
            if model:
                events.append(("model", (path,), {"path": path, "signals": model}))
        events += reference_state_events(live, touched)
        return events


def table(rows: list[tuple[str, int, float, int]]) -> pa.Table:
    tags, times, values, qualities = zip(*rows, strict=True) if rows else ((), (), (), ())
    return pa.table(
        {
            "tag": pa.array(list(tags), pa.string()),
            "time": pa.array(list(times), pa.int64()).cast(pa.timestamp("us")),
            "value": pa.array(list(values), pa.float64()),
            "quality": pa.array(list(qualities), pa.uint8()),
        },
        schema=STORE_SCHEMA,
    )


def state_of(live: TenantLive) -> dict[str, Any]:
    """Every asset's state (without the quality counts, which the reference does not keep)."""
    return {p: {k: v for k, v in live.asset_state(p).items() if k != "quality"} for p in live.signals}


def random_batch(rng: np.random.Generator, n: int, base: int) -> pa.Table:
    tags = [f"raw/p{j}/{s}" for j in range(4) for s in ("flow", "pressure", "speed")]
    tags += [f"site/p{j}/health" for j in range(4)] + ["raw/unbound", "site/p9/health"]
    rows = []
    for _ in range(n):
        tag = tags[int(rng.integers(0, len(tags)))]
        t = base + int(rng.integers(-3, 4)) * 1_000_000  # out of order and equal times within and across batches
        t += int(rng.choice([0, 0, 0, 250_000, 7]))  # some with microseconds
        v = float(rng.choice([0.05, 0.2, 1.0, 3.0, 10.0, 41.0, 46.0, np.nan]))
        q = int(rng.choice([0, 0, 0, 1, 2]))
        rows.append((tag, t, v, q))
    return table(rows)


def same(a: Any, b: Any) -> bool:
    return bool(orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS))


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_fold_equals_the_point_by_point_fold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ours, theirs = TenantLive(plant(), 3.0), TenantLive(plant(), 3.0)
    ref = Reference(theirs)
    for k in range(25):
        batch = random_batch(rng, int(rng.integers(1, 40)), T0 + k * 2_000_000)
        got, want = ours.apply(batch), ref.apply(batch)
        assert orjson.dumps(got) == orjson.dumps(want)  # the same events in the same order, keys in the same order
        assert same(state_of(ours), state_of(theirs)) and ours.own == theirs.own and ours.rolled == theirs.rolled
        if k % 5 == 4:
            now = T0 + k * 2_000_000 + int(rng.integers(0, 12)) * 1_000_000
            assert orjson.dumps(ours.check_stale(now)) == orjson.dumps(reference_stale(theirs, now))
            assert same(state_of(ours), state_of(theirs))


@pytest.mark.parametrize("repeat", [1, 3])
def test_a_live_writes_shape_equals_the_point_by_point_fold(repeat: int) -> None:
    """Every signal at one time (once, or three times in one write): the fast paths of laying out its events."""
    ours, theirs = TenantLive(plant(), 3.0), TenantLive(plant(), 3.0)
    ref = Reference(theirs)
    tags = [f"raw/p{j}/{s}" for j in range(4) for s in ("flow", "pressure", "speed")] + ["site/p1/health"]
    for k, value in enumerate([10.0, 46.0, 0.05, 3.0]):
        rows = [(tag, T0 + k * 1_000_000 + 250_000 * (k % 2), value + r, 0) for r in range(repeat) for tag in tags]
        got, want = ours.apply(table(rows)), ref.apply(table(rows))
        assert orjson.dumps(got) == orjson.dumps(want)
        assert same(state_of(ours), state_of(theirs))
    assert orjson.dumps(ours.check_stale(T0 + 60_000_000)) == orjson.dumps(reference_stale(theirs, T0 + 60_000_000))


def test_a_tag_column_is_encoded_once_per_write_and_never_answered_for_another() -> None:
    """The encoding kept for the last column of a thread: the same column (through another table's select) gets
    it again; another column of the same length, a slice of it, a column built after it was freed do not."""
    from taehwa.core.tagbatch import encode

    a = pa.chunked_array([pa.array(["x/a", "x/b"]), pa.array(["x/a", "x/c"])])
    first = encode(a)
    t = pa.table({"tag": a, "n": pa.chunked_array([pa.array([1, 2]), pa.array([3, 4])])})
    again = encode(t.select(["tag"]).column("tag"))
    assert again[0] is first[0] and again[1] is first[1]
    assert not first[1].flags.writeable  # callers cannot spoil it for the next listener
    b = pa.chunked_array([pa.array(["y/a", "y/b"]), pa.array(["y/a", "y/d"])])
    assert encode(b)[0].to_pylist() == ["y/a", "y/b", "y/d"]
    assert encode(a.slice(1))[0].to_pylist() == ["x/b", "x/a", "x/c"]
    del a, t, first, again
    for k in range(20):  # new columns, maybe where freed ones were: each is encoded as itself
        c = pa.array([f"z{k}/a", f"z{k}/b", f"z{k}/a"])
        names, idx = encode(c)
        assert names.to_pylist() == [f"z{k}/a", f"z{k}/b"] and idx.tolist() == [0, 1, 0]


def test_events_go_out_in_fold_order_whoever_lays_them_out_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write whose events are still being laid out (outside the lock) holds back the next write's: p1's alarm and
    its return to normal reach the hub in the order they were folded."""
    import threading

    from taehwa.twin.live import LiveState

    state = LiveState(3.0)
    state.set_plant("acme", plant())
    published: list[tuple[str, list[str]]] = []
    gate, first_folded = threading.Event(), threading.Event()
    render = TenantLive.render

    def slow_render(self: TenantLive, pending: Any) -> Any:
        if threading.current_thread().name == "first":
            first_folded.set()
            gate.wait(5)
        return render(self, pending)

    monkeypatch.setattr(TenantLive, "render", slow_render)

    def publish(tenant: str, events: list[Any]) -> None:
        published.append((tenant, [e[2].get("state", e[0]) for e in events]))

    first = threading.Thread(
        target=state.apply, args=("acme", table([("raw/p1/flow", T0, 46.0, 0)]), publish), name="first"
    )
    first.start()
    assert first_folded.wait(5)
    second = state.apply("acme", table([("raw/p1/flow", T0 + 1, 10.0, 0)]), publish)
    assert second and published == []  # folded and laid out, but waits for the first write's events
    gate.set()
    first.join(5)
    assert [p[1] for p in published] == [["values", "alarm", "alarm"], ["values", "normal", "normal"]]  # p1, site


def reference_stale(live: TenantLive, now_us: int) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
    touched: set[str] = set()
    for path, sigs in live.signals.items():
        for st in sigs.values():
            if st.interval_s is None or st.time_us is None:
                continue
            stale = now_us - st.time_us > live.stale_after * st.interval_s * 1e6
            if stale != st.stale:
                st.stale = stale
                touched.add(path)
    return reference_state_events(live, touched)


def reference_state_events(live: TenantLive, touched: set[str]) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
    """State events as the point-by-point fold made them: own states from each signal's own `state`."""
    if not touched:
        return []
    own_before = {p: live.own[p] for p in touched}
    changed: dict[str, tuple[str, str]] = {}
    todo = set(touched)
    for path in touched:
        live.own[path] = worst([s.state for s in live.signals[path].values()])
    while todo:
        deepest = max(todo, key=lambda p: p.count("/"))
        todo.discard(deepest)
        old = live.rolled.get(deepest, "unknown")
        new = worst([live.own[deepest], *(live.rolled[c] for c in live.children.get(deepest, []))])
        if new != old:
            live.rolled[deepest] = new
            changed[deepest] = (old, new)
            parent = deepest.rsplit("/", 1)[0] if "/" in deepest else None
            if parent is not None:
                todo.add(parent)
    out: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []
    for path in sorted(set(changed) | touched):
        previous = changed[path][0] if path in changed else live.rolled[path]
        body = {
            "path": path,
            "state": live.rolled[path],
            "previous": previous,
            "own_state": live.own[path],
            "own_previous": own_before.get(path, live.own[path]),
            "signals": {k: s.to_dict() for k, s in live.signals[path].items()} if path in touched else {},
        }
        out.append(("state", (path,), body))
    return out


def test_equal_times_last_written_wins_and_older_points_are_announced_but_not_kept() -> None:
    live = TenantLive(plant(), 3.0)
    ev = live.apply(
        table([("raw/p0/flow", T0, 10.0, 0), ("raw/p0/flow", T0, 46.0, 0), ("raw/p0/flow", T0 - 5, 1.0, 0)])
    )
    st = live.signals["site/p0"]["flow"]
    assert st.value == 46.0 and st.time_us == T0 and st.limit == "alarm"
    sent = orjson.loads(orjson.dumps(ev[0][2]))  # as the event hub sends it
    assert [p[1] for p in sent["signals"]["flow"]] == [10.0, 46.0, 1.0]  # every point, in the order written
    live.apply(table([("raw/p0/flow", T0 - 1, 10.0, 0)]))
    assert live.signals["site/p0"]["flow"].value == 46.0


def test_bad_quality_makes_the_signal_stale_and_a_crossing_inside_one_batch_is_announced() -> None:
    live = TenantLive(plant(), 3.0)
    live.apply(table([("raw/p1/flow", T0, 10.0, 0)]))
    assert live.own["site/p1"] == "normal"
    ev = live.apply(table([("raw/p1/flow", T0 + 1, 10.0, int(Quality.BAD))]))
    assert live.own["site/p1"] == "stale" and any(e[0] == "state" for e in ev)
    # alarm and back within one write: the state ends where it began, but the crossing is still announced
    live.apply(table([("raw/p1/flow", T0 + 2, 10.0, 0)]))
    ev = live.apply(table([("raw/p1/flow", T0 + 3, 46.0, 0), ("raw/p1/flow", T0 + 4, 10.0, 0)]))
    states = [e for e in ev if e[0] == "state" and e[2]["path"] == "site/p1"]
    assert states and states[0][2]["own_state"] == "normal" and states[0][2]["own_previous"] == "normal"


def test_rebuild_keeps_what_is_known_of_tags_still_bound() -> None:
    live = TenantLive(plant(), 3.0)
    live.apply(table([("raw/p2/flow", T0, 42.0, 0), ("site/p2/health", T0, 0.05, 0)]))
    assert live.own["site/p2"] == "alarm"
    doc = orjson.loads(orjson.dumps(PLANT))
    doc["types"]["Pump"]["sensors"]["flow"]["limits"] = {"high_warning": 50}
    doc["types"]["Pump"]["derived"] = {}
    live.rebuild(parse_document(doc, source="plant.yaml"))
    st = live.signals["site/p2"]["flow"]
    assert st.value == 42.0 and st.limit == "normal" and "health" not in live.signals["site/p2"]
    assert live.own["site/p2"] == "normal" and live.rolled["site"] == worst(list(live.own.values()))


def test_points_per_site_counts_bound_points_only() -> None:
    live = TenantLive(plant(), 3.0)
    batch = table([("raw/p0/flow", T0, 1.0, 0), ("raw/p1/speed", T0, 1.0, 0), ("raw/unbound", T0, 1.0, 0)])
    assert live.points_per_site(batch) == {"site": 2}
    assert live.points_per_site(table([("raw/unbound", T0, 1.0, 0)])) == {}


def test_times_are_written_as_isoformat_writes_them() -> None:
    rng = np.random.default_rng(5)
    us = np.concatenate(
        [
            rng.integers(-(10**15), 10**17, 200),
            rng.integers(-(10**10), 2 * 10**11, 50) * 1_000_000,  # whole seconds
            np.array([0, -1, 1, -1_500_000, T0, T0 + 7, 253_402_300_799_999_999, -62_135_596_800_000_000]),
        ]
    )
    assert iso_times(us).to_pylist() == [from_us(x).isoformat() for x in us.tolist()]
    assert iso_times(np.array([T0, T0])).to_pylist() == [from_us(T0).isoformat()] * 2
    wrapped = iso_times(us, '["', '"').to_pylist()
    assert wrapped == [f'["{from_us(x).isoformat()}"' for x in us.tolist()]


def test_quality_figures_per_signal_and_asset() -> None:
    live = TenantLive(plant(), 3.0)
    assert live.asset_state("site/p3")["quality"]["figure"] is None
    bad, unc = int(Quality.BAD), int(Quality.UNCERTAIN)
    live.apply(table([("raw/p3/flow", T0 + i, 10.0, bad if i < 2 else 0) for i in range(8)]))
    live.apply(table([("raw/p3/speed", T0, 1.0, unc), ("raw/p3/speed", T0 + 1, 1.0, 0), ("raw/p3/flow", T0 - 9, 1, 0)]))
    q = live.asset_state("site/p3")["quality"]
    assert q["signals"]["flow"] == {"points": 9, "bad": 2, "uncertain": 0, "figure": 77.78}  # late points count too
    assert q["signals"]["speed"] == {"points": 2, "bad": 0, "uncertain": 1, "figure": 50.0}
    assert q["signals"]["pressure"]["figure"] is None and q["figure"] == round((77.78 + 50.0) / 2, 2)
    live.rebuild(plant())
    assert live.quality("site/p3")["signals"]["flow"]["points"] == 9  # kept across a new model
