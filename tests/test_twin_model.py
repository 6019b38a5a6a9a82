"""The plant file: types with inheritance, the hierarchy, bindings, relations, and every validation error naming
its line, with nothing applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from taehwa.core.errors import InvalidInput, ValidationFailed
from taehwa.core.yamlio import dump_yaml, load_yaml
from taehwa.twin.model import Plant, parse_document

PLANT = (Path(__file__).parent / "data" / "plant.yaml").read_text()


def parse(text: str) -> Plant:
    return parse_document(load_yaml(text, source="plant.yaml"), source="plant.yaml")


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        parse(text)
    return info.value.problems


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    seen = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return i
    raise AssertionError(needle)


def test_plant_file_loads_with_inheritance_and_derived_signals() -> None:
    plant = parse(PLANT)
    pump = plant.types["CentrifugalPump"]
    assert pump.is_a("Equipment") and not pump.is_a("Motor")
    assert "manufacturer" in pump.attributes  # inherited from the built-in Equipment
    assert pump.signals["discharge_pressure"].limits.high_alarm == 35
    assert pump.signals["discharge_pressure"].interval_s == 1.0
    a = plant.assets["ulsan/cdu/p-101a"]
    assert a.parent == "ulsan/cdu"
    tags = plant.signal_tags(a)
    assert tags["flow"] == "ulsan/cdu/P-101A/FT"
    assert tags["anomaly_score"] == "ulsan/cdu/p-101a/anomaly_score"  # derived: bound by convention
    assert [r.kind for r in plant.relations] == ["backs_up", "feeds"]


def test_export_round_trips() -> None:
    plant = parse(PLANT)
    again = parse(dump_yaml(plant.document()))
    assert {p: a.record() for p, a in again.assets.items()} == {p: a.record() for p, a in plant.assets.items()}
    assert again.relations == plant.relations


def test_unknown_type_names_its_line() -> None:
    text = PLANT.replace("type: Column\n", "type: Colum\n")
    [(where, msg)] = problems(text)
    assert where == f"plant.yaml, line {line_of(text, 'id: c-101')}"
    assert "unknown type 'Colum'" in msg


def test_missing_required_attribute() -> None:
    text = PLANT.replace("attributes: {rated_power: 250, service: standby}", "attributes: {service: standby}")
    [(where, msg)] = problems(text)
    assert where == f"plant.yaml, line {line_of(text, 'id: p-101b')}"
    assert "required attribute 'rated_power'" in msg


def test_tag_bound_twice_names_both_assets() -> None:
    text = PLANT.replace("tags: {top_temperature: ulsan/cdu/C-101/TT}", "tags: {top_temperature: ulsan/cdu/P-101B/PT}")
    [(where, msg)] = problems(text)
    assert where == f"plant.yaml, line {line_of(text, 'id: c-101')}"
    assert "'ulsan/cdu/P-101B/PT' is bound twice" in msg and "p-101b" in msg


def test_cycle_in_relations() -> None:
    text = PLANT + "  - {from: ulsan/cdu/c-101, kind: feeds, to: ulsan/cdu/p-101a}\n"
    [(where, msg)] = problems(text)
    assert where == f"plant.yaml, line {len(text.splitlines())}"
    assert "form a cycle" in msg and "ulsan/cdu/p-101a → ulsan/cdu/c-101 → ulsan/cdu/p-101a" in msg


def test_recycle_loops_are_allowed() -> None:
    text = PLANT + "  - {from: ulsan/cdu/c-101, kind: recycles_to, to: ulsan/cdu/p-101a}\n"
    assert len(parse(text).relations) == 3


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("range: [0, 40]", "range: [40, 0]", "range must be [low, high]"),
        (
            "limits: {low_alarm: 1, high_warning: 30, high_alarm: 35}",
            "limits: {high_warning: 36, high_alarm: 35}",
            "limits must rise",
        ),
        ("interval: 1s\n      flow", "interval: often\n      flow", "interval must be a duration"),
        ("rated_power: 250, manufacturer", "rated_power: fast, manufacturer", "must be a finite number"),
        ("service: standby", "service: spare", "must be one of duty, standby"),
        ("install_date: 2019-04-01", "install_date: yesterday", "must be a date"),
        ("children: [Motor]", "children: [Column]", "may only contain Column, not Motor"),
        ("id: cdu\n        type: Area", "id: cdu\n        type: Site", "levels run"),
        ("extends: Equipment\n    description", "extends: Pump\n    description", "extends unknown type 'Pump'"),
        ("{current: ulsan/cdu/P-101A/M/I}", "{voltage: ulsan/cdu/P-101A/M/V}", "has no signal 'voltage'"),
        ("{from: ulsan/cdu/p-101a, kind: feeds", "{from: ulsan/cdu/p-999, kind: feeds", "no asset 'ulsan/cdu/p-999'"),
        ("kind: feeds", "kind: loves", "unknown relation kind"),
        ("- id: c-101", "- id: p-101b", "declared twice"),
        ("- id: c-101", "- id: c 101", "asset id 'c 101'"),
    ],
)
def test_each_bad_input_is_refused_with_its_reason(old: str, new: str, expected: str) -> None:
    assert old in PLANT
    found = problems(PLANT.replace(old, new, 1))
    assert any(expected in msg for _, msg in found), found
    assert all(w.startswith("plant.yaml") for w, _ in found)


def test_every_problem_is_listed() -> None:
    text = PLANT.replace("type: Column\n", "type: Colum\n").replace("service: standby", "service: spare")
    assert len(problems(text)) == 2


def test_yaml_syntax_and_duplicate_keys_name_the_line() -> None:
    with pytest.raises(InvalidInput, match="line 3") as info:
        load_yaml("assets:\n  - id: [unclosed\n", source="plant.yaml")
    assert info.value.where and info.value.where.startswith("plant.yaml, line")
    with pytest.raises(InvalidInput, match="appears twice") as dup:
        load_yaml("a: 1\nb: 2\na: 3\n", source="plant.yaml")
    assert dup.value.where == "plant.yaml, line 3, column 1"


def test_type_cycle_in_extends() -> None:
    text = "types:\n  A: {extends: B}\n  B: {extends: A}\nassets: []\n"
    assert any("extends itself" in m for _, m in problems(text))
