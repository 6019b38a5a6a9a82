"""The demo plant from ../shared/data: built, validated and loaded as a plant file, and replayed as live data
whose faults show up in the twin's limit states."""

from __future__ import annotations

import time

from taehwa.core.settings import default_shared_data
from taehwa.core.yamlio import dump_yaml
from taehwa.demo.plant import TEP_COLUMNS, build_demo_plant
from taehwa.replay.player import Replayer, historian_sink
from taehwa.server.platform import Platform

TEP_UNIT = "ulsan-refinery/reaction-unit"


def test_demo_plant_loads_and_replays_a_tep_fault(platform: Platform) -> None:
    doc, sources = build_demo_plant(default_shared_data())
    result = platform.twin.load("acme", dump_yaml(doc), source="demo.yaml")
    assert result.added == result.assets
    twin = platform.twin
    assert twin.search("acme", under=TEP_UNIT, type="ProcessUnit")["total"] == 10
    assert twin.search("acme", type="TurbofanEngine")["total"] == 100
    assert twin.search("acme", type="CentrifugalPump")["total"] == 1
    reactor = twin.get("acme", f"{TEP_UNIT}/reactor")
    assert reactor["tags"]["pressure"] == "tep/reactor/pressure"
    bound = {t for s in sources for t in s.tags}
    assert len([t for t in bound if t.startswith("tep/")]) == len(TEP_COLUMNS) == 52
    assert len([t for t in bound if t.startswith("cmapss/")]) == 100 * 24

    tep = next(s for s in sources if s.name.startswith("Tennessee"))
    # d00_te (normal, 960 rows) then d01_te: IDV(1) starts at its row 161; replay ~400 rows into the fault
    replay = Replayer([tep], 60.0, historian_sink(platform.historian, "acme"), max_catch_up=5000)
    now = time.time()
    replay.step(now - 1300 * 3.0)  # starts the clock 1,300 rows (3 s each at 60×) ago
    replay.step(now)
    assert replay.status()[0]["run"].startswith("d01_te")
    states = twin.search("acme", under=TEP_UNIT, limit=100)["items"]
    assert any(a["state"] in ("warning", "alarm") for a in states), states
    assert twin.state("acme", TEP_UNIT)["state"] in ("warning", "alarm")
    # before the fault (inside d00_te, normal operation) the unit read normal
    past = twin.state("acme", TEP_UNIT, at=now - 1300 * 3.0 + 600 * 3.0)
    assert past["state"] == "normal", past
