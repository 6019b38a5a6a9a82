"""Event frames opened by an alert (closed when it resolves) or a label (over its span), with their statistics at
close and bounded by their maximum duration; alerts linked to the events they belong to; and a running event scored
live against its template's reference profile, the deviation written as an ordinary tag the twin shows."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
from pydantic import TypeAdapter

from taehwa.analytics.livecompare import LiveComparison
from taehwa.analytics.program import check_plant
from taehwa.analytics.records import Calculation, ReferenceSummary, ReferenceView
from taehwa.core.errors import InvalidInput, NotFound
from taehwa.core.timeutil import from_us
from taehwa.core.yamlio import load_yaml
from taehwa.server.platform import Platform
from taehwa.twin.model import parse_document
from tests.test_analytics_events import P1, PLANT, T0, S, feed, signals, table

SOURCED = PLANT.replace(
    "      trip:",
    """      hot: {alert: p1-pressure-high, max_duration: 1h, stats: [pressure]}
      service: {label: maintenance, max_duration: 60s, stats: [flow]}
      trip:""",
).replace(
    "      state: {interval: 1s}\n",
    "      state: {interval: 1s}\n    derived:\n      pressure_dev: {unit: bar}\n",
)
REFERENCED = SOURCED.replace(
    'end: "flow <= 5", max_duration: 1h, stats: [flow, pressure]}',
    'end: "flow <= 5", max_duration: 1h, stats: [flow, pressure],\n'
    "                reference: {signal: pressure, output: pressure_dev, band: 0.5}}",
)


@pytest.fixture
def plat(platform: Platform) -> Platform:
    platform.twin.load("acme", REFERENCED)
    assert platform.analytics.live is not None
    platform.analytics.live.refresh(force=True)
    return platform


def problems(text: str) -> list[str]:
    plant = parse_document(load_yaml(text, source="plant.yaml"), source="plant.yaml")
    return [f"{where}: {why}" for where, why in check_plant(plant)]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{alert: p1-pressure-high,", '{alert: p1-pressure-high, start: "flow > 1",', "give one of start, alert"),
        ("{alert: p1-pressure-high,", "{alert: 'Bad Rule!',", "alert must name an alert rule"),
        ("{alert: p1-pressure-high,", '{alert: p1-pressure-high, end: "flow > 1",', "has no end condition"),
        ("{label: maintenance,", "{label: 'no good',", "label must name a label kind"),
        ("{label: maintenance,", "{label: [maintenance],", "label must name a label kind"),
        ("{signal: pressure,", "{signal: nope,", "reference names unknown signal 'nope'"),
        ("output: pressure_dev,", "output: flow,", "must be a derived signal of Pump without an expr"),
        ("band: 0.5}", "band: 0}", "band must be a number above 0"),
        ("band: 0.5}", "band: 0.5, window: 3}", "unknown key 'window'"),
    ],
)
def test_templates_from_alerts_labels_and_references_are_checked(old: str, new: str, message: str) -> None:
    assert problems(REFERENCED) == []
    assert old in REFERENCED
    got = problems(REFERENCED.replace(old, new))
    assert any(message in p and p.startswith("plant.yaml, line ") for p in got), got


def _wall_points(p: Platform, start_us: int, pressure: list[float]) -> None:
    """Pressure points of p1, one a second from start_us (alerts live on the wall clock)."""
    times = start_us + np.arange(len(pressure), dtype=np.int64) * S
    p.historian.write_checked(
        "acme",
        pa.table(
            {
                "tag": ["p1/pressure"] * len(pressure),
                "time": pa.array(times).cast(pa.timestamp("us")),
                "value": pa.array(pressure, pa.float64()),
                "quality": pa.array([0] * len(pressure), pa.uint8()),
            }
        ),
    )


def test_events_opened_by_an_alert_and_the_alert_linked_to_its_events(plat: Platform) -> None:
    now = time.time_ns() // 1000
    _wall_points(plat, now - 10 * S, [5.0] * 5 + [11.0] * 5)
    book = plat.live.alerts
    outer = plat.analytics.open_event("acme", "site/north", "shift", start=from_us(now - 3600 * S))
    raised = book.raise_alert(
        "acme",
        rule="p1-pressure-high",
        asset=P1,
        tag="p1/pressure",
        severity="warning",
        message="pressure > 10",
        value=11.0,
        chain={},
    )
    opened = plat.analytics.search("acme", kind="alert", state="open")["events"]
    assert [(e["asset"], e["template"], e["info"]["alert"]) for e in opened] == [(P1, "hot", raised["id"])]
    linked = {e["id"] for e in book.get("acme", raised["id"])["events"]}
    assert linked == {opened[0]["id"], outer["id"]}  # its own event and the one open above it then
    _wall_points(plat, now + 1 * S, [11.0] * 3)
    book.clear("acme", raised["id"], "the condition cleared")
    done = plat.analytics.event("acme", opened[0]["id"])
    assert done["state"] == "closed" and done["close_reason"] == "resolved"
    assert done["stats"]["pressure"]["max"] == 11.0  # the template's statistics, at close
    # another rule's alert opens nothing; an alert that never clears is bounded by the maximum duration
    book.raise_alert("acme", rule="other", asset=P1, tag=None, severity="warning", message="x", value=1.0, chain={})
    stuck = book.raise_alert(
        "acme", rule="p1-pressure-high", asset=P1, tag=None, severity="alarm", message="x", value=1.0, chain={}
    )
    (ev,) = plat.analytics.search("acme", kind="alert", state="open")["events"]
    assert ev["info"]["alert"] == stuck["id"]
    assert plat.analytics.sources.close_due(ev["start_us"] + 3599 * S) == 0
    assert plat.analytics.sources.close_due(ev["start_us"] + 3600 * S) == 1
    bounded = plat.analytics.event("acme", ev["id"])
    assert (bounded["close_reason"], bounded["duration_s"]) == ("max_duration", 3600.0)
    # the plant names a rule the tenant does not have: said where the templates are listed
    rows = plat.analytics.calculations("acme")
    listed = {c["name"]: c for c in rows if "opened_by" in c}
    assert listed["hot"]["opened_by"] == {"alert": "p1-pressure-high"}
    assert "no alert rule 'p1-pressure-high'" in listed["hot"]["problem"]
    assert "no label of kind 'maintenance'" in listed["service"]["problem"]  # none yet: the first one opens
    # the route's response model (a union of the three row shapes) keeps each row whole, in its order
    kept = TypeAdapter(list[Calculation]).dump_python(TypeAdapter(list[Calculation]).validate_python(rows))
    assert kept == rows and [list(r) for r in kept] == [list(r) for r in rows]
    assert any("held_s" in r for r in rows) and any("reference" in r for r in rows)  # signals: tests/test_analytics_api


def test_events_from_labels_over_their_span(plat: Platform) -> None:
    feed(plat, P1, signals(100), step=100)
    now = time.time_ns() // 1000
    labels = plat.labels
    labels.add(
        "acme",
        [
            {"asset": P1, "kind": "maintenance", "start": from_us(T0 + 5 * S), "end": from_us(T0 + 15 * S)},
            {"asset": P1, "kind": "maintenance", "start": from_us(T0 + 20 * S)},  # a point: no duration
            {"asset": P1, "kind": "maintenance", "start": from_us(T0 + 30 * S), "end": from_us(T0 + 95 * S)},
            {"asset": P1, "kind": "anomaly", "start": from_us(T0 + 5 * S), "end": from_us(T0 + 9 * S)},
            {"asset": P1, "kind": "maintenance", "start": from_us(now - 10 * S), "end": from_us(now + 30 * S)},
            {"asset": P1, "kind": "maintenance", "start": from_us(now - 9 * S), "end": from_us(now + 500 * S)},
        ],
    )
    listed = {c["name"]: c for c in plat.analytics.calculations("acme") if "opened_by" in c}
    assert listed["service"]["opened_by"] == {"label": "maintenance"} and "problem" not in listed["service"]
    got = sorted(plat.analytics.search("acme", kind="label")["events"], key=lambda e: e["start_us"])
    spans = [((e["start_us"] - T0) // S, e["duration_s"], e["close_reason"]) for e in got[:3]]
    assert spans == [(5, 10.0, "label"), (20, 0.0, "label"), (30, 60.0, "max_duration")]
    assert got[0]["stats"]["flow"]["max"] == 20.0 and got[0]["stats"]["flow"]["min"] == 1.0  # 1 until 10 s, then 20
    assert [(e["state"], e["template"]) for e in got[3:]] == [("open", "service")] * 2  # their spans end later
    assert plat.analytics.sources.close_due(now) == 0
    assert plat.analytics.sources.close_due(now + 31 * S) == 1
    assert plat.analytics.event("acme", got[3]["id"])["end_us"] == now + 30 * S
    assert plat.analytics.sources.close_due(now + 51 * S) == 1  # longer than the template's 60 s: bounded
    longer = plat.analytics.event("acme", got[4]["id"])
    assert (longer["close_reason"], longer["duration_s"]) == ("max_duration", 60.0)
    first = next(
        r for r in labels.list_labels("acme", kind="maintenance") if r.start == from_us(T0 + 5 * S).isoformat()
    )
    labels.delete("acme", first.id)  # its event goes with it
    assert got[0]["id"] not in {e["id"] for e in plat.analytics.search("acme", kind="label")["events"]}


def test_a_running_event_is_scored_live_against_its_reference(plat: Platform) -> None:
    sig = signals()
    an = plat.analytics
    with pytest.raises(NotFound, match="has no reference yet"):
        an.reference("acme", "Pump.running")
    feed(plat, P1, {k: v[:60] for k, v in sig.items()})
    (first,) = an.search("acme", template="running", state="closed")["events"]  # 10-40 s
    with pytest.raises(InvalidInput, match="name 1 to 100 reference events"):
        an.set_reference("acme", "Pump.running", [])
    with pytest.raises(InvalidInput, match="declares no reference"):
        an.set_reference("acme", "Pump.excursion", [first["id"]])
    with pytest.raises(NotFound, match="no event template"):
        an.set_reference("acme", "Pump.nothing", [first["id"]])
    with pytest.raises(NotFound, match="no event 'nope'"):
        an.set_reference("acme", "Pump.running", ["nope"])
    with pytest.raises(NotFound):
        an.set_reference("rival", "Pump.running", [first["id"]])  # another tenant's event does not exist for it
    (exc,) = [e for e in an.search("acme", template="excursion")["events"] if e["state"] == "closed"]
    with pytest.raises(InvalidInput, match=r"is not an event of Pump\.running"):
        an.set_reference("acme", "Pump.running", [exc["id"]])
    ref = an.set_reference("acme", "Pump.running", [first["id"]])
    assert an.live is not None and (run := an.live.run_of("acme")) is not None
    assert an._program_of("acme") is run.prog  # one program per plant, the engine's and the service's
    assert ref["steps"] == 31 and ref["output"] == "pressure_dev" and ref["profile"]["median"][10] == 12.0
    for lo in range(60, 200, 25):  # the rest, as it comes
        plat.historian.write_checked(
            "acme", pa.concat_tables([table(f"p1/{k}", v[lo : lo + 25], lo) for k, v in sig.items()])
        )
        assert plat.analytics.live is not None
        plat.analytics.live.drain()
        if lo == 110:  # running since 100 s: scored as its points come, not only at close (31 steps in the profile)
            (running,) = an.scoring("acme")
            assert running["asset"] == P1 and running["steps"] == 31 and running["template"] == "Pump.running"
            # the route's response model (analytics.records.ReferenceView) keeps the answer whole, in its order
            view = an.reference("acme", "Pump.running")
            kept = TypeAdapter(ReferenceView).dump_python(TypeAdapter(ReferenceView).validate_python(view))
            assert kept == view and list(kept) == list(view) and kept["scoring"] == [running]
            got = plat.historian.latest("acme", [f"{P1}/pressure_dev"]).column("time")[0].as_py()
            assert got.timestamp() == (T0 + 134 * S) / 1e6
    assert an.scoring("acme") == []  # closed at 150 s
    dev = plat.historian.read("acme", [f"{P1}/pressure_dev"], from_us(T0), from_us(T0 + 300 * S)).to_pydict()
    times = [(int(t.timestamp() * 1e6) - T0) // S for t in dev["time"]]
    assert times[0] == 100 and times[-1] == 150  # the second run, 100-150 s, scored from its start to its end
    by_t = dict(zip(times, zip(dev["value"], dev["quality"], strict=True), strict=True))
    assert by_t[100] == (0.0, 0) and by_t[110] == (-7.0, 0) and by_t[120] == (4.0, 0)  # 5-12 and 9-5
    assert by_t[131][1] == 2  # past the reference's end (31 steps): a bad point, not a crash
    second = an.search("acme", template="running", state="closed", start=from_us(T0 + 90 * S))["events"][0]
    summary = second["info"]["reference"]
    assert summary["steps"] == 31 and summary["outside_share"] == round(16 / 31, 4)  # as compare_events gives
    state = plat.twin.get("acme", P1)["live"]
    assert state is not None
    live = state["signals"]["pressure_dev"]
    assert live["derived"] is True and live["time"] == from_us(T0 + 150 * S).isoformat()
    assert plat.historian.tag("acme", f"{P1}/pressure_dev").attributes["lineage"]["reference"] == "Pump.running"
    opened = an.open_event("acme", P1, "running", start=from_us(T0 + 250 * S))
    with pytest.raises(InvalidInput, match="still open"):
        an.set_reference("acme", "Pump.running", [opened["id"]])
    # a server started later takes up the open event: scored from its start, from the historian
    plat.historian.write_checked("acme", table("p1/pressure", np.array([6.0, 7.0, 12.0]), 250))
    fresh = LiveComparison(historian=plat.historian, events=an.events, references=an.references, program_of=an.program)
    fresh.tick()
    got = plat.historian.read("acme", [f"{P1}/pressure_dev"], from_us(T0 + 250 * S), from_us(T0 + 253 * S))
    assert got.column("value").to_pylist() == [1.0, 2.0, 7.0]  # against the golden run's 5, 5, 5
    refs = an.references_of("acme")
    assert [r["template"] for r in refs] == ["running"]
    kept_refs = TypeAdapter(list[ReferenceSummary]).dump_python(
        TypeAdapter(list[ReferenceSummary]).validate_python(refs)
    )
    assert kept_refs == refs and list(kept_refs[0]) == list(refs[0])  # the route's response model keeps it whole
    an.delete_reference("acme", "Pump.running")
    with pytest.raises(NotFound):
        an.delete_reference("acme", "Pump.running")


def test_backfill_scores_events_that_closed_before_their_reference_was_set(plat: Platform) -> None:
    sig = signals()
    an = plat.analytics
    feed(plat, P1, {k: v[:160] for k, v in sig.items()})
    first, second = sorted(
        an.search("acme", template="running", state="closed")["events"], key=lambda e: e["start_us"]
    )  # 10-40 s and 100-150 s, both closed before any reference
    an.set_reference("acme", "Pump.running", [first["id"]])
    tag = f"{P1}/pressure_dev"
    assert tag not in plat.historian.catalog.ids("acme")  # nothing scored live: no event was open
    done = an.backfill("acme", from_us(T0), from_us(T0 + 160 * S))
    assert done["reference_points"] == 31 + 51  # every point of both events, the second one past the profile's end
    dev = plat.historian.read("acme", [tag], from_us(T0), from_us(T0 + 300 * S)).to_pydict()
    times = [(int(t.timestamp() * 1e6) - T0) // S for t in dev["time"]]
    assert times[:31] == list(range(10, 41)) and dev["value"][:31] == [0.0] * 31  # the golden run against itself
    assert times[31] == 100 and times[-1] == 150
    remade = sorted(an.search("acme", template="running", state="closed")["events"], key=lambda e: e["start_us"])
    assert [e["start_us"] for e in remade] == [first["start_us"], second["start_us"]]  # made again by the backfill
    summary = remade[1]["info"]["reference"]
    assert summary["steps"] == 31 and summary["outside_share"] == round(16 / 31, 4)  # as live scoring gives
    assert plat.historian.tag("acme", tag).attributes["lineage"]["reference"] == "Pump.running"
    again = an.backfill("acme", from_us(T0), from_us(T0 + 160 * S))  # the same points again, not more
    assert again["reference_points"] == done["reference_points"]
    assert plat.historian.read("acme", [tag], from_us(T0), from_us(T0 + 300 * S)).num_rows == len(times)


def test_backfill_makes_alert_and_label_events_that_predate_their_templates(plat: Platform) -> None:
    plat.twin.load("acme", PLANT)  # no alert or label templates yet
    now = time.time_ns() // 1000
    plat.labels.add(
        "acme", [{"asset": P1, "kind": "maintenance", "start": from_us(T0 + 5 * S), "end": from_us(T0 + 15 * S)}]
    )
    book = plat.live.alerts
    raised = book.raise_alert(
        "acme", rule="p1-pressure-high", asset=P1, tag=None, severity="warning", message="x", value=1.0, chain={}
    )
    book.clear("acme", raised["id"], "cleared")
    assert plat.analytics.search("acme", kind="label")["events"] == []
    plat.twin.load("acme", REFERENCED)
    for _ in range(2):  # twice: the same events once
        past = plat.analytics.backfill("acme", from_us(T0), from_us(T0 + 3600 * S), signals=["service"])
        recent = plat.analytics.backfill(
            "acme", from_us(now - 60 * S), from_us(now + 60 * S), asset="site", signals=["hot", "service"]
        )
        assert (past["events"], recent["events"]) == (1, 1)
    (label,) = plat.analytics.search("acme", kind="label")["events"]
    assert (label["duration_s"], label["close_reason"], label["template"]) == (10.0, "label", "service")
    (alert,) = plat.analytics.search("acme", kind="alert")["events"]
    assert alert["info"]["alert"] == raised["id"] and alert["close_reason"] == "resolved"
    assert "Pump.hot" in recent["templates"]
