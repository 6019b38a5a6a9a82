"""Event frames and data quality: events opened and closed by conditions (held for a duration, an edge, a limit),
their statistics at close, an event that never closes bounded by its maximum duration, the same events from live and
from backfill (a backfill run twice gives them once), search by subtree, template, time and statistic, events opened
and closed by API call; the data-quality checks on made-up faulty signals, as figures and as events."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from taehwa.analytics.frames import ScanState, scan
from taehwa.analytics.quality import ArrivalWatch, check_series, figure
from taehwa.analytics.records import EventFrame
from taehwa.core.errors import InvalidInput, NotFound
from taehwa.core.timeutil import from_us
from taehwa.server.platform import Platform

T0 = 1_767_225_600_000_000
S = 1_000_000

PLANT = """\
types:
  Pump:
    sensors:
      flow: {unit: m3/h, interval: 1s, range: [0, 100]}
      pressure: {unit: bar, interval: 1s, range: [0, 20], limits: {high_warning: 8}}
      state: {interval: 1s}
    events:
      running: {start: "flow > 5 for 3s", end: "flow <= 5", max_duration: 1h, stats: [flow, pressure]}
      excursion: {start: "pressure > high_warning", max_duration: 20s, stats: [pressure]}
      trip: {start: "state changes to 0", end: "state changes to 1", max_duration: 1h}
  Area2:
    level: area
assets:
  - id: site
    type: Site
    children:
      - id: north
        type: Area2
        children:
          - {id: p1, type: Pump, tags: {flow: p1/flow, pressure: p1/pressure, state: p1/state}}
      - id: south
        type: Area2
        children:
          - {id: p2, type: Pump, tags: {flow: p2/flow, pressure: p2/pressure, state: p2/state}}
"""
P1, P2 = "site/north/p1", "site/south/p2"


def table(tag: str, values: np.ndarray, start_s: int = 0) -> pa.Table:
    n = len(values)
    times = T0 + (start_s + np.arange(n, dtype=np.int64)) * S
    return pa.table(
        {
            "tag": [tag] * n,
            "time": pa.array(times).cast(pa.timestamp("us")),
            "value": pa.array(np.asarray(values, float)),
            "quality": pa.array([0] * n, pa.uint8()),
        }
    )


def signals(n: int = 200) -> dict[str, np.ndarray]:
    t = np.arange(n)
    flow = np.where(((t >= 10) & (t < 40)) | ((t >= 60) & (t < 62)) | ((t >= 100) & (t < 150)), 20.0, 1.0)
    pressure = np.where((t >= 120) & (t < 200), 9.0, 5.0)  # over its warning from 120 s, never back: bounded
    pressure[20:25] = 12.0  # a short excursion
    state = np.where((t >= 70) & (t < 80), 0.0, 1.0)  # a trip at 70 s, back at 80 s
    return {"flow": flow, "pressure": pressure, "state": state}


@pytest.fixture
def plat(platform: Platform) -> Platform:
    platform.twin.load("acme", PLANT)
    assert platform.analytics.live is not None
    platform.analytics.live.refresh(force=True)
    return platform


def feed(p: Platform, asset: str, sig: dict[str, np.ndarray], step: int = 25) -> None:
    n = len(next(iter(sig.values())))
    for lo in range(0, n, step):
        p.historian.write_checked(
            "acme",
            pa.concat_tables(
                [table(f"{asset.rsplit('/', 1)[-1]}/{name}", v[lo : lo + step], lo) for name, v in sig.items()]
            ),
        )
        assert p.analytics.live is not None
        p.analytics.live.drain()


def closed(p: Platform, template: str, asset: str | None = None) -> list[EventFrame]:
    got = p.analytics.search("acme", template=template, asset=asset, state="closed", limit=1000)["events"]
    return sorted(got, key=lambda e: e["start_us"])


def test_scan_rules() -> None:
    t = np.arange(20) * S
    c = np.array([0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], bool)
    state = ScanState()
    got = scan(state, t, c, None, 2 * S, 100 * S)
    assert [(ch.start, ch.end, ch.reason) for ch in got] == [
        (1 * S, None, None),
        (1 * S, 5 * S, "end"),
        (9 * S, None, None),
    ]
    assert state.start == 9 * S  # still open: decided by later rows
    state = ScanState()
    got = scan(state, t, c, None, 0, 3 * S)  # bounded: a condition stuck true gives one event of 3 s, no chain
    assert [(ch.start, ch.end, ch.reason) for ch in got if ch.end] == [
        (1 * S, 4 * S, "max_duration"),
        (7 * S, 8 * S, "end"),
        (9 * S, 12 * S, "max_duration"),
    ]
    split = ScanState()
    a = scan(split, t[:11], c[:11], None, 2 * S, 100 * S) + scan(split, t[11:], c[11:], None, 2 * S, 100 * S)
    assert a == scan(ScanState(), t, c, None, 2 * S, 100 * S)  # in two batches as in one


def test_events_by_condition_with_statistics_and_a_bounded_one(plat: Platform) -> None:
    sig = signals()
    feed(plat, P1, sig)
    running = closed(plat, "running", P1)
    # flow > 5 for 3 s: 10-39 and 100-149 (60-61 is too short); starts when the condition became true
    assert [(e["start_us"] - T0) // S for e in running] == [10, 100]
    assert [(e["end_us"] - T0) // S for e in running] == [40, 150]  # type: ignore[operator]
    first = running[0]
    assert first["duration_s"] == 30.0 and first["close_reason"] == "end"
    stats = first["stats"]["pressure"]
    assert stats["max"] == 12.0 and stats["min"] == 5.0 and stats["start"] == 5.0
    assert np.isclose(stats["integral"], 25 * 5 + 5 * 12)  # held values over 10 s … 40 s
    assert first["stats"]["flow"]["mean"] > 5
    exc = closed(plat, "excursion", P1)
    assert [((e["start_us"] - T0) // S, e["close_reason"]) for e in exc] == [(20, "end"), (120, "max_duration")]
    assert exc[1]["duration_s"] == 20.0  # never closes by itself: bounded by its max_duration
    trips = closed(plat, "trip", P1)
    assert [((e["start_us"] - T0) // S, (e["end_us"] - T0) // S) for e in trips] == [(70, 80)]  # type: ignore[operator]
    assert plat.analytics.search("acme", state="open")["events"] == []


def test_an_event_whose_input_goes_silent_is_closed_by_the_clock(plat: Platform) -> None:
    sig = signals(130)  # ends with the 120 s excursion still open: pressure's data stops there
    feed(plat, P1, sig, step=130)
    assert sorted(e["template"] for e in plat.analytics.search("acme", state="open")["events"]) == [
        "excursion",
        "running",
    ]
    live = plat.analytics.live
    assert live is not None
    assert live.close_overdue(T0 + 130 * S) == 0  # not yet: 20 s have not passed since 120 s
    assert live.close_overdue(T0 + 3 * 3600 * S) == 2  # both bounded by their max_duration (1 h and 20 s)
    exc = closed(plat, "excursion", P1)[-1]
    assert (exc["start_us"], exc["end_us"], exc["close_reason"]) == (T0 + 120 * S, T0 + 140 * S, "max_duration")
    assert plat.analytics.search("acme", state="open")["events"] == []


def test_backfill_gives_the_same_events_once(plat: Platform) -> None:
    sig = signals()
    feed(plat, P1, sig)
    live = [
        (e["template"], e["start_us"], e["end_us"], e["close_reason"])
        for t in ("running", "excursion", "trip")
        for e in closed(plat, t, P1)
    ]
    for _ in range(2):
        plat.analytics.backfill("acme", from_us(T0), from_us(T0 + 200 * S), asset=P1)
    again = [
        (e["template"], e["start_us"], e["end_us"], e["close_reason"])
        for t in ("running", "excursion", "trip")
        for e in closed(plat, t, P1)
    ]
    assert again == live
    stats = closed(plat, "running", P1)[0]["stats"]
    assert stats["pressure"]["max"] == 12.0


def test_search_by_subtree_template_time_and_statistic(plat: Platform) -> None:
    feed(plat, P1, signals())
    other = signals()
    other["flow"] = np.where(np.arange(200) >= 150, 20.0, 1.0)  # p2 runs from 150 s, still open at the end
    feed(plat, P2, other)
    s = plat.analytics.search
    assert {e["asset"] for e in s("acme", asset="site/north")["events"]} == {P1}
    assert {e["asset"] for e in s("acme", asset="site")["events"]} == {P1, P2}
    assert s("acme", asset="site/nort")["events"] == []  # a subtree is whole path segments
    long_runs = s("acme", template="running", where=["duration > 40s"])["events"]
    assert [(e["asset"], e["duration_s"]) for e in long_runs] == [(P1, 50.0)]
    assert [e["duration_s"] for e in s("acme", template="running", where=["duration <= 0.5min"])["events"]] == [30.0]
    high = s("acme", template="running", where=["max(pressure) > 10"])["events"]
    assert [e["start_us"] for e in high] == [T0 + 10 * S]
    window = s("acme", template="running", start=from_us(T0 + 120 * S), end=from_us(T0 + 130 * S))["events"]
    assert [(e["asset"], e["start_us"]) for e in window] == [(P1, T0 + 100 * S)]  # overlapping the window
    assert [e["asset"] for e in s("acme", state="open")["events"]] == [P2]
    with pytest.raises(InvalidInput, match="cannot read filter"):
        s("acme", where=["duration >> 3"])
    with pytest.raises(InvalidInput, match="only duration takes a unit"):
        s("acme", where=["max(flow) > 3s"])
    assert plat.analytics.search("rival")["events"] == []  # tenants apart


def test_an_event_against_a_reference_profile(plat: Platform) -> None:
    sig = signals()
    feed(plat, P1, sig)
    first, second = closed(plat, "running", P1)  # 10-40 s and 100-150 s
    got = plat.analytics.compare_events("acme", str(second["id"]), [str(first["id"])], "pressure", step="1s", band=0.5)
    prof = got["profile"]
    assert prof["events"] == 1 and prof["median"][:12] == [5.0] * 10 + [12.0, 12.0]  # the golden run's own curve
    # the second run's pressure is 5 until 120 s, then 9: against the first's 12 at 10-14 s and 5 after
    assert got["steps"] == 31 and got["deviation"][10] == -7.0 and got["deviation"][0] == 0.0
    assert got["outside_share"] == round(16 / 31, 4)  # offsets 10-14 (5 against 12) and 20-30 (9 against 5)
    median = plat.analytics.compare_events("acme", str(first["id"]), [str(first["id"]), str(second["id"])], "pressure")
    assert median["profile"]["events"] == 2 and median["steps"] == 31
    with pytest.raises(InvalidInput, match="no signal"):
        plat.analytics.compare_events("acme", str(second["id"]), [str(first["id"])], "nope")


def test_events_opened_and_closed_by_api(plat: Platform) -> None:
    feed(plat, P1, signals())
    ev = plat.analytics.open_event("acme", P1, "running", start=from_us(T0 + 5 * S), note="manual start")
    assert ev["state"] == "open" and ev["kind"] == "manual" and ev["info"]["note"] == "manual start"
    done = plat.analytics.close_event("acme", ev["id"], end=from_us(T0 + 15 * S))
    assert done["duration_s"] == 10.0 and done["close_reason"] == "api"
    assert done["stats"]["flow"]["max"] == 20.0  # the template's statistics
    with pytest.raises(InvalidInput, match="already closed"):
        plat.analytics.close_event("acme", ev["id"])
    with pytest.raises(NotFound):
        plat.analytics.close_event("rival", ev["id"])  # another tenant's event does not exist for it
    with pytest.raises(NotFound):
        plat.analytics.open_event("acme", "site/nowhere", "x")


# -- data quality ---------------------------------------------------------------------------------------------
def _series(v: np.ndarray, t: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(len(v), dtype=np.int64) * S + T0 if t is None else t
    return t, np.asarray(v, float), np.zeros(len(v), np.uint8)


def test_quality_checks_on_faulty_signals() -> None:
    rng = np.random.default_rng(0)
    n = 600
    v = 50 + rng.normal(0, 2, n)
    v[100:160] = 51.25  # stuck
    v[200:280] = 60 + rng.normal(0, 1e-4, 80)  # flat: hardly moves
    v[300:305] = 150.0  # out of range
    v[400] = 95.0  # a spike
    t = np.arange(n, dtype=np.int64) * S + T0
    t = np.concatenate([t[:450], t[450:] + 30 * S])  # a 30 s gap
    found = check_series(_series(v, t), T0, int(t[-1]) + S, interval_s=1.0, low=0, high=100, now_us=T0 + 10**12)
    kinds = {f.check: f for f in found}
    assert set(kinds) == {"stuck", "flat", "out_of_range", "spike", "gap"}, found
    assert kinds["stuck"].points == 60 and kinds["stuck"].start_us == T0 + 100 * S
    assert kinds["out_of_range"].points == 5
    assert kinds["spike"].start_us == T0 + 400 * S
    assert (kinds["gap"].end_us - kinds["gap"].start_us) == 31 * S
    clean = check_series(
        _series(50 + rng.normal(0, 2, n)), T0, T0 + n * S, interval_s=1.0, low=0, high=100, now_us=T0 + 10**12
    )
    assert clean == []
    assert figure(clean, T0, T0 + n * S, 1e6) == 100.0
    assert 70 < figure(found, T0, int(t[-1]) + S, 1e6) < 80
    future = check_series(
        _series(np.arange(10.0)), T0, T0 + 20 * S, interval_s=1.0, low=None, high=None, now_us=T0 - 3600 * S
    )
    assert [f.check for f in future] == ["gap", "future_time"]


def test_repeated_and_backward_timestamps_as_they_arrive() -> None:
    watch = ArrivalWatch()
    watch.feed("acme", table("a", np.arange(10.0)))
    watch.feed("acme", table("a", np.arange(3.0), start_s=9))  # 9 again (repeated), then 10, 11
    watch.feed("acme", table("a", np.arange(2.0), start_s=5))  # the clock went back
    found = {f.check: f.points for f in watch.findings("acme", "a")}
    assert found == {"repeated_time": 1, "clock_jump": 2}
    assert watch.findings("rival", "a") == []


def test_repeated_and_backward_timestamps_in_writes_that_run_instant_by_instant() -> None:
    """A plant export lists every tag at each instant: clean such writes are taken without sorting their rows, and
    a repeated instant, a tag twice in one instant or an instant older than a tag's newest is still counted."""

    def instants(start_s: int, n: int, tags: tuple[str, ...] = ("a", "b", "c")) -> pa.Table:
        times = (T0 + (start_s + np.repeat(np.arange(n), len(tags))) * S).astype("datetime64[us]")
        return pa.table({"tag": list(tags) * n, "time": times, "value": np.zeros(n * len(tags))})

    watch = ArrivalWatch()
    watch.feed("acme", instants(0, 10))
    watch.feed("acme", instants(10, 5))  # clean: nothing found
    assert all(watch.findings("acme", tag) == [] for tag in "abc")
    watch.feed("acme", instants(14, 3))  # instant 14 again for every tag
    watch.feed("acme", instants(17, 2, ("a", "b", "b")))  # b twice in each instant
    watch.feed("acme", instants(3, 1, ("c",)))  # c's clock went back
    found = {tag: {f.check: f.points for f in watch.findings("acme", tag)} for tag in "abc"}
    assert found == {"a": {"repeated_time": 1}, "b": {"repeated_time": 3}, "c": {"repeated_time": 1, "clock_jump": 1}}


def test_quality_of_a_plant_as_figures_and_events(plat: Platform) -> None:
    sig = signals()
    sig["pressure"][50:100] = 5.0  # the constant part is already there; make it a long stuck run
    sig["flow"][150:160] = 500.0  # out of range
    feed(plat, P1, sig, step=100)
    got = plat.analytics.quality("acme", from_us(T0), from_us(T0 + 200 * S), asset="site/north", write_events=True)
    tags = got["assets"][P1]["tags"]
    assert tags["flow"]["quality"] < 100 and any(f["check"] == "out_of_range" for f in tags["flow"]["findings"])
    assert any(f["check"] == "stuck" for f in tags["pressure"]["findings"])
    assert got["assets"][P1]["quality"] < 100 and got["events_written"] == got["findings"] > 0
    events = plat.analytics.search("acme", kind="quality", template="quality.out_of_range")["events"]
    assert events and events[0]["info"]["tag"] == "p1/flow"
    again = plat.analytics.quality("acme", from_us(T0), from_us(T0 + 200 * S), asset="site/north", write_events=True)
    assert len(plat.analytics.search("acme", kind="quality", limit=1000)["events"]) == again["events_written"]
