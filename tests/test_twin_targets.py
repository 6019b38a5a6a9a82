"""One answer to "which assets does this target take in" (taehwa.twin.targets): the deployments' scorer, the alert
rules and `Deployment.covers` agree with `TwinService.targets`, and none of them stops at a page size."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from taehwa.core.errors import InvalidInput, NotFound
from taehwa.live.deployments import Deployment, resolve_units
from taehwa.live.rules import Rule, RuleIn, rule_targets
from taehwa.server.platform import Platform
from taehwa.twin.model import parse_document
from taehwa.twin.service import TwinService

PLANT = (Path(__file__).parent / "data" / "plant.yaml").read_text()
PUMPS = ["ulsan/cdu/p-101a", "ulsan/cdu/p-101b"]
MANY = 10_050  # more than the 10,000 a search page holds, which the three old answers stopped at


def deployment(**target: str) -> Deployment:
    """A deployment of a model (not stored: only its target matters here)."""
    return Deployment("acme", "d", "m", None, dict(target), {}, True, "kim", datetime.now(UTC))


def test_every_kind_of_target_and_covers_agree(platform: Platform) -> None:
    twin = platform.twin
    twin.load("acme", PLANT)
    plant = twin.plant("acme")
    assert twin.targets("acme", asset_type="CentrifugalPump") == PUMPS
    assert twin.targets("acme", asset=PUMPS[1]) == [PUMPS[1]]
    under = twin.targets("acme", under="ulsan/cdu")
    assert under[0] == "ulsan/cdu" and set(PUMPS) < set(under) and all(p.startswith("ulsan/cdu") for p in under)
    assert "ulsan/cdu/p-101a/motor" in twin.targets("acme", asset_type="Motor")  # a type's subtypes count too
    assert set(twin.targets("acme", asset_type="Equipment")) >= set(PUMPS)
    for target in (
        {"asset_type": "CentrifugalPump"},
        {"asset": PUMPS[0]},
        {"under": "ulsan/cdu"},
        {"asset_type": "Equipment"},
    ):
        dep = deployment(**target)
        assert sorted(p for p in plant.assets if dep.covers(plant, p)) == twin.targets("acme", **target), target


def test_a_target_naming_nothing_is_refused_and_a_rule_waits(platform: Platform) -> None:
    twin = platform.twin
    twin.load("acme", PLANT)
    for field, value in (("asset", "ulsan/nowhere"), ("asset_type", "Turbine"), ("under", "busan")):
        with pytest.raises(NotFound) as info:
            twin.targets("acme", **{field: value})
        assert info.value.where == f"target.{field}"
        with pytest.raises(NotFound):
            resolve_units(twin, "acme", deployment(**{field: value}), ["discharge_pressure"])
    with pytest.raises(InvalidInput, match="exactly one target"):
        twin.targets("acme", asset=PUMPS[0], under="ulsan")
    with pytest.raises(InvalidInput, match="exactly one target"):
        twin.targets("acme")
    # a rule whose asset left the plant watches nothing (until it is back), as before
    gone = Rule("acme", RuleIn(name="r", kind="threshold", asset="ulsan/nowhere", signal="flow", value=1.0))
    assert rule_targets(twin, gone) == []


def many_pumps(twin: TwinService) -> None:
    """A plant of MANY pumps on 50 lines, each with its pressure bound, installed as one new version.

    Built from the parsed document (the same `_commit` that `load` ends in): the line-tracking YAML reader alone
    takes ~15 s for ten thousand assets, which the test budget cannot spend."""
    per_line = MANY // 50
    doc = {
        "types": {"Pump": {"extends": "Equipment", "sensors": {"pv": {"unit": "bar"}}}},
        "assets": [
            {
                "id": "site",
                "type": "Site",
                "children": [
                    {
                        "id": f"line-{k:02d}",
                        "type": "Line",
                        "children": [
                            {"id": f"p{u:03d}", "type": "Pump", "tags": {"pv": f"l{k}/p{u}/pv"}}
                            for u in range(per_line)
                        ],
                    }
                    for k in range(50)
                ],
            }
        ],
    }
    twin._commit(
        "acme", parse_document(doc, source="many.yaml"), actor=None, summary="many pumps", action="loaded", paths=[]
    )


def test_more_than_ten_thousand_assets_are_all_taken_in(platform: Platform) -> None:
    twin = platform.twin
    many_pumps(twin)
    pumps = twin.targets("acme", asset_type="Pump")
    assert len(pumps) == MANY and len(set(pumps)) == MANY
    assert len(twin.targets("acme", under="site")) == MANY + 51  # the site, its lines and their pumps
    # the scorer's units: every pump, none cut at a page
    units, skipped = resolve_units(twin, "acme", deployment(asset_type="Pump"), ["pv"])
    assert len(units) == MANY and not skipped
    units, skipped = resolve_units(twin, "acme", deployment(under="site"), ["pv"])
    assert len(units) == MANY and len(skipped) == 51  # the site and the lines have no pv
    # an alert rule on the type watches every pump
    rule = Rule("acme", RuleIn(name="hi", kind="threshold", asset_type="Equipment", signal="pv", value=1.0))
    watched = rule_targets(twin, rule)
    assert len(watched) == MANY and {tag for _, _, tag in watched} == {
        f"l{k}/p{u}/pv" for k in range(50) for u in range(MANY // 50)
    }
    # a search is a page of at most 10,000 that says how many there are in all
    page = twin.search("acme", type="Pump", limit=10_000)
    assert len(page["items"]) == 10_000 and page["total"] == MANY
