"""The twin service: versioned changes, search, live state fed by the historian, staleness, roll-up, past state."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taehwa.core.errors import Conflict, InvalidInput, NotFound, ValidationFailed
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from taehwa.twin.service import TwinService

PLANT = (Path(__file__).parent / "data" / "plant.yaml").read_text()
PUMP = "ulsan/cdu/p-101a"


@pytest.fixture
def twin(platform: Platform) -> TwinService:
    platform.twin.load("acme", PLANT)
    return platform.twin


def events(twin: TwinService, tenant: str = "acme") -> list[dict[str, object]]:
    import orjson

    return [orjson.loads(e.body) for e in twin.hub._after(tenant, 0)[0]]


def test_load_is_all_or_nothing(twin: TwinService) -> None:
    before = twin.export("acme")
    with pytest.raises(ValidationFailed):
        twin.load("acme", PLANT.replace("type: Column\n", "type: Colum\n"))
    assert twin.export("acme") == before
    assert len(twin.versions("acme")) == 1


def test_changes_are_versioned_and_the_past_can_be_read(twin: TwinService) -> None:
    t_before = time.time()
    time.sleep(0.01)
    twin.update("acme", PUMP, {"name": "Charge pump A", "attributes": {"rated_power": 300}})
    assert twin.get("acme", PUMP)["name"] == "Charge pump A"
    assert twin.get("acme", PUMP, at=t_before)["name"] == "p-101a"
    assert twin.get("acme", PUMP, at=t_before)["attributes"]["rated_power"] == 250
    assert [v.version for v in twin.versions("acme")] == [2, 1]
    assert twin.export("acme", at=t_before)["assets"][0]["children"][0]["children"][0].get("name") is None


def test_api_changes_are_validated_like_files(twin: TwinService) -> None:
    with pytest.raises(ValidationFailed, match="bound twice"):
        twin.update("acme", "ulsan/cdu/c-101", {"tags": {"top_temperature": "ulsan/cdu/P-101A/PT"}})
    with pytest.raises(ValidationFailed, match="required attribute"):
        twin.create("acme", {"id": "p-102", "type": "CentrifugalPump"}, parent="ulsan/cdu")
    with pytest.raises(ValidationFailed, match="form a cycle"):
        twin.relate("acme", "ulsan/cdu/c-101", "feeds", PUMP)
    with pytest.raises(Conflict):
        twin.create("acme", {"id": "c-101", "type": "Column"}, parent="ulsan/cdu")
    with pytest.raises(NotFound):
        twin.create("acme", {"id": "x", "type": "Column"}, parent="ulsan/nowhere")
    with pytest.raises(InvalidInput):
        twin.update("acme", PUMP, {"id": "p-999"})
    assert len(twin.versions("acme")) == 1  # nothing refused was stored


def test_create_move_delete(twin: TwinService) -> None:
    twin.create("acme", {"id": "vdu", "type": "Area"}, parent="ulsan")
    moved = twin.move("acme", PUMP, "ulsan/vdu")
    assert moved["path"] == "ulsan/vdu/p-101a"
    assert twin.get("acme", "ulsan/vdu/p-101a/motor")["tags"] == {"current": "ulsan/cdu/P-101A/M/I"}
    rels = twin.get("acme", "ulsan/vdu/p-101a")["relations"]
    assert {"from": "ulsan/cdu/p-101b", "kind": "backs_up", "to": "ulsan/vdu/p-101a"} in rels
    with pytest.raises(InvalidInput, match="under itself"):
        twin.move("acme", "ulsan/vdu", "ulsan/vdu/p-101a")
    with pytest.raises(Conflict, match="recursive"):
        twin.delete("acme", "ulsan/vdu")
    assert twin.delete("acme", "ulsan/vdu", recursive=True) == 3
    assert twin.search("acme", under="ulsan/vdu")["total"] == 0
    assert all("p-101a" not in r["to"] for r in twin.get("acme", "ulsan/cdu/p-101b")["relations"])


def test_search_by_type_subtree_attribute_state_and_text(twin: TwinService, platform: Platform) -> None:
    assert twin.search("acme", type="Equipment")["total"] == 3  # subtypes match
    assert [
        a["path"] for a in twin.search("acme", type="CentrifugalPump", attributes={"service": "standby"})["items"]
    ] == ["ulsan/cdu/p-101b"]
    assert twin.search("acme", type="CentrifugalPump", attributes={"service": "duty"})["total"] == 1  # default
    assert twin.search("acme", under="ulsan/cdu/p-101a")["total"] == 2
    assert twin.search("acme", under="ulsan/cd")["total"] == 0  # a prefix of a segment is not a subtree
    assert twin.search("acme", text="motor")["total"] == 1
    platform.historian.write("acme", [("ulsan/cdu/P-101B/PT", "2024-03-01T00:00:00Z", 32.0)])
    found = twin.search("acme", type="CentrifugalPump", state="warning")
    assert [a["path"] for a in found["items"]] == ["ulsan/cdu/p-101b"]
    with pytest.raises(InvalidInput):
        twin.search("acme", state="purple")
    with pytest.raises(NotFound):
        twin.search("acme", type="Nothing")


def test_live_state_limits_and_roll_up(twin: TwinService, platform: Platform) -> None:
    platform.historian.write(
        "acme",
        [
            ("ulsan/cdu/P-101A/PT", "2024-03-01T00:00:00Z", 12.0),
            ("ulsan/cdu/P-101A/M/I", "2024-03-01T00:00:00Z", 120.0),
        ],
    )
    motor = twin.state("acme", PUMP + "/motor")
    assert motor["state"] == "alarm" and motor["signals"]["current"]["value"] == 120.0
    pump = twin.state("acme", PUMP)
    assert pump["own_state"] == "normal" and pump["state"] == "alarm"  # worst of the children
    assert twin.state("acme", "ulsan")["state"] == "alarm"
    platform.historian.write("acme", [("ulsan/cdu/P-101A/M/I", "2024-03-01T00:00:01Z", 50.0)])
    assert twin.state("acme", "ulsan")["state"] == "normal"
    kinds = [e["kind"] for e in events(twin)]
    assert kinds.count("values") == 3 and "state" in kinds
    # an older point arriving late does not replace the newest
    platform.historian.write("acme", [("ulsan/cdu/P-101A/M/I", "2024-02-01T00:00:00Z", 500.0)])
    assert twin.state("acme", PUMP + "/motor")["signals"]["current"]["value"] == 50.0


def test_model_outputs_are_their_own_event_kind(twin: TwinService, platform: Platform) -> None:
    platform.historian.write("acme", [(PUMP + "/anomaly_score", "2024-03-01T00:00:00Z", 0.95)])
    ev = [e for e in events(twin) if e["kind"] == "model"]
    assert ev and ev[0]["path"] == PUMP
    assert twin.state("acme", PUMP)["own_state"] == "alarm"


def test_staleness(twin: TwinService, platform: Platform) -> None:
    now = time.time()
    platform.historian.write("acme", [("ulsan/cdu/P-101A/PT", now, 12.0)])
    twin.tick(int((now + 1) * 1e6))
    assert twin.state("acme", PUMP)["signals"]["discharge_pressure"]["stale"] is False
    twin.tick(int((now + 10) * 1e6))  # 3 × the 1 s interval has passed
    st = twin.state("acme", PUMP)
    assert st["signals"]["discharge_pressure"]["stale"] is True and st["own_state"] == "stale"
    assert events(twin)[-1]["kind"] == "state"


def test_state_at_a_past_time(twin: TwinService, platform: Platform) -> None:
    platform.historian.write(
        "acme",
        [("ulsan/cdu/P-101A/PT", "2024-03-01T00:00:00Z", 36.0), ("ulsan/cdu/P-101A/PT", "2024-03-01T00:01:00Z", 10.0)],
    )
    past = twin.state("acme", "ulsan", at="2024-03-01T00:00:00.5Z")
    assert past["state"] == "alarm"
    pump = twin.state("acme", PUMP, at="2024-03-01T00:00:00.5Z")
    assert pump["signals"]["discharge_pressure"]["value"] == 36.0
    later = twin.state("acme", PUMP, at="2024-03-01T00:01:00Z")
    assert later["signals"]["discharge_pressure"]["value"] == 10.0 and later["own_state"] == "normal"
    assert twin.state("acme", PUMP, at="2024-03-01T00:05:00Z")["own_state"] == "stale"


def test_tenants_are_apart(twin: TwinService, platform: Platform) -> None:
    assert twin.search("rival")["total"] == 0
    with pytest.raises(NotFound):
        twin.get("rival", PUMP)
    platform.historian.write("rival", [("ulsan/cdu/P-101A/PT", "2024-03-01T00:00:00Z", 39.0)])
    assert twin.state("acme", PUMP)["signals"]["discharge_pressure"]["value"] is None


def test_model_and_state_survive_a_restart(settings: Settings) -> None:
    p = Platform(settings, background=False)
    p.tenants.create("acme")
    p.twin.load("acme", PLANT)
    p.historian.write("acme", [("ulsan/cdu/P-101A/PT", "2024-03-01T00:00:00Z", 36.0)])
    p.close()
    again = Platform(settings, background=False)
    try:
        assert again.twin.search("acme")["total"] == 6
        assert again.twin.state("acme", PUMP)["signals"]["discharge_pressure"]["value"] == 36.0
    finally:
        again.close()


def test_changes_are_audited_with_before_and_after(twin: TwinService, platform: Platform) -> None:
    from taehwa.tenancy.access import acting_as

    admin = platform.authenticate(platform.api_token)
    with acting_as(admin):
        twin.update("acme", PUMP, {"name": "Charge pump A"})
        [entry] = [e for e in platform.audit.entries("acme") if e["action"] == "twin.updated"]
    assert entry["actor"] == "admin" and entry["before"][PUMP]["name"] == "p-101a"
    assert entry["after"]["assets"][PUMP]["name"] == "Charge pump A" and entry["after"]["version"] == 2
    assert platform.audit.verify().ok
