"""The city's twin: the city model loads like any plant; a company's site appears on the map only with what it
shares; aggregates below k and differencing patterns are refused (the attacks are tried); privacy settings are
applied and audited; each company sees its standing; quotas stop a lab run with a clear error."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from taehwa.api.app import create_app
from taehwa.city.compute import QuotaExceeded
from taehwa.city.live import follow_sites
from taehwa.city.policy import Privacy
from taehwa.city.records import Release
from taehwa.city.release import Figure, Refused, singles_out
from taehwa.core.errors import Forbidden, InvalidInput, NotFound, ValidationFailed
from taehwa.core.yamlio import dump_yaml
from taehwa.db import lab_runs
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as
from tests.conftest import TOKEN

CITY_FILE = Path(__file__).parents[1] / "taehwa" / "city" / "data" / "ulsan-city.yaml"
OFFICER = Principal("officer", roles={"city": "viewer"})
CITY_ADMIN = Principal("mayor", roles={"city": "tenant_admin"})
# company → (complex, industry, latitude, longitude)
COMPANIES = {
    "co-a": ("mipo", "petrochemical", 35.47, 129.35),
    "co-b": ("mipo", "automotive", 35.53, 129.37),
    "co-c": ("mipo", "shipbuilding", 35.50, 129.42),
    "co-d": ("onsan", "petrochemical", 35.43, 129.34),
}
TYPES = {
    "Pump": {
        "extends": "Equipment",
        "sensors": {"flow": {"unit": "m3/h", "interval": "1s", "limits": {"high_warning": 80, "high_alarm": 90}}},
    }
}


def plant(tenant: str, complex_: str, industry: str, lat: float, lon: float) -> str:
    pumps = [{"id": f"pump-{i}", "type": "Pump", "tags": {"flow": f"{tenant}/secret-pump-{i}/flow"}} for i in range(3)]
    return dump_yaml(
        {
            "types": TYPES,
            "assets": [
                {
                    "id": "works",
                    "type": "Site",
                    "name": f"{tenant} works",
                    "attributes": {"latitude": lat, "longitude": lon, "complex": complex_, "industry": industry},
                    "children": pumps,
                },
                {"id": "abroad", "type": "Site", "attributes": {"latitude": 1.0, "longitude": 2.0}},
            ],
        }
    )


def admin(tenant: str) -> Principal:
    return Principal(f"{tenant}-admin", roles={tenant: "tenant_admin"})


@pytest.fixture
def city(platform: Platform) -> Platform:
    platform.tenants.create("city", "Ulsan city office")
    platform.twin.load("city", CITY_FILE.read_text(), source="ulsan-city.yaml")
    for t, (cx, ind, lat, lon) in COMPANIES.items():
        platform.tenants.create(t)
        platform.twin.load(t, plant(t, cx, ind, lat, lon))
        flows = {"co-a": 10.0, "co-b": 85.0, "co-c": 95.0, "co-d": 20.0}[t]
        platform.historian.write(t, [(f"{t}/secret-pump-{i}/flow", datetime.now(UTC), flows) for i in range(2)])
    return platform


def share(p: Platform, tenant: str, shares: list[str], figures: list[str], site: str = "works") -> None:
    with acting_as(admin(tenant)):
        p.city.consents.set(tenant, site, shares=shares, figures=figures)


def test_the_city_model_loads_and_validates_like_any_plant(city: Platform) -> None:
    plant = city.twin.plant("city")
    assert plant.types["Substation"].is_a("Equipment") and plant.assets["ulsan/mipo/ai-datacentre"].type == "DataCentre"
    bad = CITY_FILE.read_text().replace('attributes: {code: "31110", name_ko: 중구}', "attributes: {name_ko: 중구}")
    bad = bad.replace("voltage_kv: 345", "voltage_kv: high")
    with pytest.raises(ValidationFailed) as exc:
        city.twin.load("city", bad, source="ulsan-city.yaml")
    text = str(exc.value.to_dict())
    assert "required attribute 'code'" in text and "voltage_kv" in text and "line" in text
    assert city.twin.plant("city") is plant  # refused whole: nothing changed


def test_a_site_appears_on_the_map_only_with_what_it_shares(city: Platform) -> None:
    share(city, "co-a", ["map"], [])
    share(city, "co-b", ["map", "state", "rate", "models", "alerts", "power"], [])
    share(city, "co-d", ["map", "state"], [], site="abroad")
    with acting_as(OFFICER):
        m = city.city.map()
    sites = {(s["tenant"], s["site"]): s for s in m["sites"]}
    assert set(sites) == {("co-a", "works"), ("co-b", "works"), ("co-d", "abroad")}  # co-c shares nothing
    a, b, d = sites["co-a", "works"], sites["co-b", "works"], sites["co-d", "abroad"]
    assert not {"state", "points_s", "models", "open_alerts", "power_kw"} & set(a)
    assert b["state"] == "warning" and b["models"] == 0 and b["open_alerts"] == 0 and "points_s" in b
    assert "x" in a and "x" not in d  # placed outside the city: listed, not drawn
    assert a["url"] is None  # the city officer has no access to the company
    body = orjson.dumps(m).decode()
    assert "secret-pump" not in body and "pump-0" not in body  # nothing below the site leaves
    assert len(m["districts"]) == 5 and {c["id"] for c in m["complexes"]} == {"mipo", "onsan"}
    assert {i["kind"] for i in m["infrastructure"]} == {"Substation", "DataCentre"}
    assert [(x["from"], x["kind"]) for x in m["links"]] == [("ulsan/mipo/mipo-substation", "powers")]
    with acting_as(Principal("both", roles={"city": "viewer", "co-a": "viewer"})):
        assert next(s for s in city.city.map()["sites"] if s["tenant"] == "co-a")["url"] == "/t/co-a/assets/works"
    with acting_as(admin("co-a")), pytest.raises(Forbidden):
        city.city.map()  # a company is not the city


def test_only_a_company_admin_decides_what_it_shares(city: Platform) -> None:
    for who in (Principal("eng", roles={"co-a": "engineer"}), OFFICER, CITY_ADMIN):
        with acting_as(who), pytest.raises(Forbidden):
            city.city.consents.set("co-a", "works", shares=["map"], figures=[])
    with acting_as(admin("co-a")):
        with pytest.raises(InvalidInput, match="share 'map'"):
            city.city.consents.set("co-a", "works", shares=["state"], figures=[])
        with pytest.raises(InvalidInput, match="no figure"):
            city.city.consents.set("co-a", "works", shares=[], figures=["payroll"])
        with pytest.raises(NotFound):
            city.city.consents.set("co-a", "works/pump-0", shares=["map"], figures=[])
        city.city.consents.set("co-a", "works", shares=["map"], figures=["alarm_share"])
        audit = [e for e in city.audit.entries("co-a") if e["action"] == "city.consent"]
    assert audit and audit[0]["after"]["shares"] == ["map"]


def test_an_aggregate_below_k_is_refused_without_saying_how_many(city: Platform) -> None:
    for t in ("co-a", "co-b"):
        share(city, t, ["map"], ["alarm_share"])
    with acting_as(OFFICER), pytest.raises(Refused, match="fewer than 3") as exc:
        city.city.aggregate("alarm_share")
    assert "2" not in exc.value.message
    share(city, "co-c", ["map"], ["alarm_share"])
    with acting_as(OFFICER):
        out = city.city.aggregate("alarm_share")
    assert out["companies"] == 3 and out["held_out"] == 0  # a 0 %, b and c 2 of 3 pumps (two flows written)
    assert out["statistic"] == "mean" and out["value"] == pytest.approx(400 / 9)
    assert out["p25"] is None and out["p75"] is None and "values" not in out
    with acting_as(CITY_ADMIN):
        log = [e for e in city.audit.entries("city") if e["action"].startswith("city.re")]
    assert [e["action"] for e in log][:2] == ["city.release", "city.refused"]  # newest first
    assert log[0]["after"]["inputs"] == 3 and log[0]["after"]["privacy"]["k"] == 3
    assert log[1]["after"]["inputs"] == "fewer than 3"
    with acting_as(admin("co-a")), pytest.raises(Forbidden):
        city.city.aggregate("alarm_share")  # a company never sees the city's aggregates directly


def test_the_differencing_attack_is_refused(city: Platform) -> None:
    for t in COMPANIES:
        share(city, t, ["map"], ["alarm_share", "data_completeness"])
    with acting_as(OFFICER):
        city.city.aggregate("alarm_share")  # a, b, c, d
        with pytest.raises(Refused, match="differencing"):
            city.city.aggregate("alarm_share", "complex", "mipo")  # a, b, c: the city minus it would be d
        # the other order on another figure: the complex first, then the city that adds one company
        mipo = city.city.aggregate("data_completeness", "complex", "mipo")
        whole = city.city.aggregate("data_completeness")  # d alone is new: held out until k have joined
        assert (whole["companies"], whole["held_out"], whole["value"]) == (3, 1, mipo["value"])
    # a company opting out and the same figure asked again is the same attack
    share(city, "co-d", ["map"], [])
    with acting_as(OFFICER), pytest.raises(Refused):
        city.city.aggregate("alarm_share")  # now a, b, c: differs from a, b, c, d by one


def test_no_sequence_of_allowed_queries_isolates_a_company(platform: Platform) -> None:
    """Eight companies over overlapping groups, queried in random orders: every pair of released sets of a figure
    differs by none or by at least k companies, and every piece their overlaps and differences cut out holds at
    least k, so no combination of releases is one company's figure."""
    p = platform
    p.tenants.create("city")
    p.twin.load("city", CITY_FILE.read_text())
    rnd = random.Random(7)
    names = [f"m{i}" for i in range(8)]
    for t in names:
        p.tenants.create(t)
        cx, ind = rnd.choice(["mipo", "onsan"]), rnd.choice(["petrochemical", "automotive", "shipbuilding"])
        p.twin.load(t, plant(t, cx, ind, 35.5, 129.3))
        p.historian.write(t, [(f"{t}/secret-pump-0/flow", datetime.now(UTC), rnd.uniform(0, 100))])
        share(p, t, ["map"], ["data_completeness"])
    queries = [
        ("city", None),
        ("complex", "mipo"),
        ("complex", "onsan"),
        ("industry", "petrochemical"),
        ("industry", "automotive"),
        ("industry", "shipbuilding"),
        ("asset_type", "Pump"),
        ("asset_type", "Equipment"),
    ]
    released = refused = 0
    for _ in range(3):
        rnd.shuffle(queries)
        for dim, group in queries:
            with acting_as(OFFICER):
                try:
                    p.city.aggregate("data_completeness", dim, group)
                    released += 1
                except Refused:
                    refused += 1
        withdrawn = rnd.choice(names)  # someone opts out or back in between rounds
        share(p, withdrawn, ["map"], [] if rnd.random() < 0.5 else ["data_completeness"])
    sets = [set(r["members"]) for r in p.city.gate.released("data_completeness")]
    assert released and refused
    for x, y in itertools.combinations(sets, 2):
        assert len(x ^ y) == 0 or len(x ^ y) >= 3
    assert all(len(s) >= 3 for s in sets)
    assert all(len(cell) >= 3 for cell in venn_cells(sets))  # nor does any combination of them


def quartiles(values: list[float]) -> dict[str, float]:
    """The quartiles an ungated release would answer (linear interpolation, as the gate computes them)."""
    p25, p50, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return {"p25": p25, "median": p50, "p75": p75}


def isolate(answers: dict[tuple[str, ...], dict[str, float]], target: str) -> float | None:
    """The attack on releases of three companies: their quartiles give the three values (p25 and p75 lie halfway
    between neighbours); the one value two releases share that share one company is that company's; a release
    whose other companies are known gives the last one's. None when the releases do not reveal the target."""
    values = {
        cohort: sorted(round(v, 6) for v in (2 * a["p25"] - a["median"], a["median"], 2 * a["p75"] - a["median"]))
        for cohort, a in answers.items()
        if len(cohort) == 3
    }
    known: dict[str, float] = {}
    for _ in range(len(values)):
        for (c1, v1), (c2, v2) in itertools.combinations(values.items(), 2):
            both, common = set(c1) & set(c2), set(v1) & set(v2)
            if len(both) == 1 and len(common) == 1:
                known[both.pop()] = common.pop()
        for cohort, vals in values.items():
            unknown = [c for c in cohort if c not in known]
            left = list(vals)
            for c in cohort:
                if c in known and known[c] in left:
                    left.remove(known[c])
            if len(unknown) == 1 and len(left) == 1:
                known[unknown[0]] = left[0]
    return known.get(target)


def linear_attack(releases: list[tuple[set[str], float]], target: str) -> float | None:
    """What an analyst solves from released means (each times its count is a sum over its cohort): the target's
    figure when its indicator lies in the span of the released cohorts; None when no combination gives it."""
    names = sorted(set().union(*(m for m, _ in releases)))
    if target not in names:
        return None
    a = np.array([[1.0 if n in m else 0.0 for n in names] for m, _ in releases])
    b = np.array([v * len(m) for m, v in releases])
    e = np.array([1.0 if n == target else 0.0 for n in names])
    y = np.linalg.lstsq(a.T, e, rcond=None)[0]
    return float(y @ b) if np.abs(a.T @ y - e).max() < 1e-9 else None


def released_means(city: Platform, figure: str, answers: dict[str, Release]) -> list[tuple[set[str], float]]:
    """Each cohort the gate released a figure over (as it kept it) with the mean it answered."""
    return [(set(r["members"]), answers[r["groups"][-1]]["value"]) for r in city.city.gate.released(figure)]


def four_way() -> list[tuple[str, ...]]:
    """Four cohorts: x in all four, two companies in each other combination of them. Every two and every three
    of the cohorts leave no piece of fewer than 3 companies; only all four together single out x."""
    names = "ABCD"
    members: dict[str, list[str]] = {n: ["x"] for n in names}
    for size in (1, 2, 3):
        for combo in itertools.combinations(names, size):
            for i in range(2):
                for n in combo:
                    members[n].append(f"{''.join(combo).lower()}{i}")
    return [tuple(members[n]) for n in names]


ATTACKS: dict[str, list[tuple[str, ...]]] = {
    # every two differ by 4 or 6 companies (what a pairwise guard checks), yet the overlaps name a's and b's
    # values and what is left of the first is x's
    "three small cohorts": [("a", "b", "x"), ("a", "c", "d"), ("b", "e", "f")],
    # no two cohorts overlap or differ by fewer than 3 companies, but x alone is in all three (A ∩ B ∩ C)
    "a triple overlap": [
        ("ab1", "ab2", "ac1", "ac2", "a1", "x"),
        ("ab1", "ab2", "b1", "bc1", "bc2", "x"),
        ("ac1", "ac2", "bc1", "bc2", "c1", "x"),
    ],
    "four cohorts": four_way(),
}


def venn_cells(sets: list[set[str]]) -> list[set[str]]:
    """The companies grouped by which of the sets they are in: the smallest pieces that unions, intersections and
    differences of the sets can express."""
    cells: dict[frozenset[int], set[str]] = {}
    for member in set().union(*sets):
        cells.setdefault(frozenset(i for i, s in enumerate(sets) if member in s), set()).add(member)
    return list(cells.values())


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_attack_by_three_or_more_queries_is_refused(city: Platform, attack: str) -> None:
    """Cohorts no two of which differ by fewer than k companies, but whose overlaps and differences together
    single out one company: the gate refuses a query of the pattern, and what it released reveals nothing of x."""
    cohorts = ATTACKS[attack]
    for x, y in itertools.combinations(cohorts, 2):
        assert len(set(x) ^ set(y)) >= 3  # each pair passes a pairwise guard
    if attack != "three small cohorts":
        for n in range(2, len(cohorts)):
            for some in itertools.combinations(cohorts, n):
                assert all(len(c) >= 3 for c in venn_cells([set(s) for s in some]))  # so does every smaller set
    assert min(len(c) for c in venn_cells([set(s) for s in cohorts])) == 1  # all together single out x
    figure = Figure("attack_probe", 0.0, 1000.0, sensitive=False)
    values = {c: float(10 + 7 * i) for i, c in enumerate(sorted({c for co in cohorts for c in co}))}
    if attack == "three small cohorts":  # released ungated, the three answers give x's figure
        assert isolate({c: quartiles([values[m] for m in c]) for c in cohorts}, "x") == values["x"]
    answers: dict[str, Release] = {}
    refused = []
    for cohort in cohorts:
        try:
            answers["+".join(cohort[:3])] = city.city.gate.release(
                figure, "+".join(cohort[:3]), {c: values[c] for c in cohort}, Privacy(3, None), by="officer"
            )
        except Refused as exc:
            assert "differencing" in exc.message
            refused.append(cohort)
    assert refused, f"all {len(cohorts)} released: together they single out x"
    assert all(a["p25"] is None and a["p75"] is None for a in answers.values())  # exact: the mean alone
    releases = released_means(city, "attack_probe", answers)
    assert len(releases) == len(answers) and all(len(c) >= 3 for c in venn_cells([m for m, _ in releases]))
    assert all(linear_attack(releases, c) is None for c in values)  # no company's figure solves out of them


def test_an_exact_release_is_no_single_companys_figure(city: Platform) -> None:
    """Without noise the gate answers the mean of the companies it releases over: never one company's figure
    (the median of an odd count was), and a contributor who knows its own figure learns only the sum of at least
    two others'; two companies are released only with noise, since each would learn the other's figure."""
    figure, gate = Figure("exact_probe", 0.0, 100.0, sensitive=False), city.city.gate
    for n in (3, 4, 5, 7):  # disjoint groups: none is set against another
        values = {f"n{n}-{i}": 10.0 + 7 * i + 0.5 * i * i for i in range(n)}  # distinct figures
        if n % 2:
            assert statistics.median(values.values()) in values.values()  # what the median would have told
        out = gate.release(figure, f"group of {n}", values, Privacy(3, None), by="officer")
        assert out["statistic"] == "mean" and out["value"] == pytest.approx(statistics.fmean(values.values()))
        assert min(abs(out["value"] - v) for v in values.values()) > 1e-3
        assert out["p25"] is None and out["p75"] is None and out["companies"] == n
    with pytest.raises(Refused, match="only with noise"):
        gate.release(figure, "a pair", {"p": 20.0, "q": 30.0}, Privacy(2, None), by="officer")


def test_churn_of_fewer_than_k_is_released_over_a_part_no_difference_across_periods_reveals(city: Platform) -> None:
    """A company leaves the city's group between release periods (figures unchanged: the worst case for
    differencing). The whole group would single it out (the gate used to refuse it for good); it is released over
    a part that leaves k out, so period 1 minus period 2 is the sum of three companies. A company that joins is
    held out until k have; no company's figure ever solves out of the released means."""
    figure, gate, privacy = Figure("churn_probe", 0.0, 100.0, sensitive=False), city.city.gate, Privacy(3, None)
    values = dict(zip("abcdef", (12.0, 31.0, 47.0, 58.0, 66.0, 90.0), strict=True))
    answers: dict[str, Release] = {}

    def period(name: str, figures: dict[str, float]) -> Release:
        with acting_as(OFFICER):
            answers[name] = gate.release(figure, name, figures, privacy, by="officer")
        return answers[name]

    first = period("city 2026-10", values)
    assert (first["companies"], first["held_out"]) == (6, 0)
    left = {c: v for c, v in values.items() if c != "d"}
    assert singles_out([set(values)], set(left), 3) is not None  # the whole group would single out d
    ungated = [(set(values), first["value"]), (set(left), statistics.fmean(left.values()))]
    assert linear_attack(ungated, "d") == pytest.approx(values["d"])  # the attack it would let through
    second = period("city 2026-11", left)
    assert (second["companies"], second["held_out"]) == (3, 2)
    kept = next(set(r["members"]) for r in gate.released("churn_probe") if "city 2026-11" in r["groups"])
    assert 6 * first["value"] - 3 * second["value"] == pytest.approx(
        sum(values.values()) - sum(values[c] for c in kept)
    )
    third = period("city 2026-12", {**left, "g": 40.0})  # one joins: held out with the two
    assert (third["companies"], third["held_out"], third["value"]) == (3, 3, second["value"])
    fourth = period("city 2027-01", {**left, "g": 40.0, "h": 70.0, "i": 20.0})  # k have joined
    assert (fourth["companies"], fourth["held_out"]) == (6, 2)
    releases = released_means(city, "churn_probe", answers)
    assert len(releases) == 3 and all(len(c) >= 3 for c in venn_cells([m for m, _ in releases]))
    assert all(linear_attack(releases, c) is None for c in [*values, "g", "h", "i"])
    with acting_as(CITY_ADMIN):
        log = [e["after"] for e in city.audit.entries("city") if e["target"].startswith("churn_probe")]
    assert [e["held_out"] for e in log] == [2, 3, 2, 0]  # newest first


def test_privacy_settings_are_applied_and_audited(city: Platform) -> None:
    for t in COMPANIES:
        share(city, t, ["map"], ["alerts_per_asset_30d", "alarm_share"])
    with acting_as(OFFICER), pytest.raises(Forbidden):
        city.city.policy.set_privacy(k=2)  # a viewer of the city sets nothing
    with acting_as(CITY_ADMIN):
        with pytest.raises(InvalidInput, match="k is"):
            city.city.policy.set_privacy(k=1)
        with pytest.raises(InvalidInput, match="epsilon"):
            city.city.policy.set_privacy(epsilon=0.0)
        city.city.policy.set_privacy(epsilon=1.0)
    with acting_as(OFFICER):
        noised = city.city.aggregate("alerts_per_asset_30d")  # sensitive: noised
        again = city.city.aggregate("alerts_per_asset_30d")
        plain = city.city.aggregate("alarm_share")  # not sensitive: exact under the default scope
    assert noised["privacy"]["dp"] and noised["privacy"]["epsilon"] == 1.0 and not plain["privacy"]["dp"]
    grid = [50.0 * i / 200 for i in range(201)]  # noised quartiles come from the grid over the figure's bounds
    assert noised["statistic"] == "median" and plain["statistic"] == "mean"
    quartiles_noised = [noised["p25"], noised["value"], noised["p75"]]
    assert all(q is not None and min(abs(q - g) for g in grid) < 1e-9 for q in quartiles_noised)
    assert again["value"] == noised["value"]  # the same inputs: the same answer, no further ε spent
    spent = {tuple(r["members"]): r["epsilon_spent"] for r in city.city.gate.released("alerts_per_asset_30d")}
    assert list(spent.values()) == [1.0]
    with acting_as(CITY_ADMIN):
        rel = next(
            e
            for e in city.audit.entries("city")
            if e["action"] == "city.release" and e["target"].startswith("alerts_per_asset_30d")
        )
        assert rel["after"]["privacy"]["epsilon"] == 1.0 and rel["after"]["inputs"] == 4
        city.city.policy.set_privacy(k=5)
    with acting_as(OFFICER), pytest.raises(Refused, match="fewer than 5"):
        city.city.aggregate("alarm_share")


def test_a_company_sees_where_it_stands_against_the_city_median(city: Platform) -> None:
    for t in ("co-a", "co-b", "co-c"):
        share(city, t, ["map"], ["alarm_share"])
    with acting_as(Principal("viewer-a", roles={"co-a": "viewer"})):
        s = city.city.standing("co-a", "alarm_share")
        assert s["value"] == 0.0 and s["city_value"] == pytest.approx(400 / 9) and s["position"] == "better"
        with pytest.raises(Forbidden):
            city.city.standing("co-b", "alarm_share")
    with acting_as(admin("co-d")), pytest.raises(InvalidInput, match="contributes no value"):
        city.city.standing("co-d", "alarm_share")  # give to get: a company that does not contribute sees nothing


def test_a_quota_stops_a_lab_run_that_would_exceed_it(city: Platform) -> None:
    with city.engine.begin() as c:  # an hour of lab compute already used this month (as the lab records a run)
        c.execute(
            insert(lab_runs).values(
                id="r1",
                tenant="co-a",
                name="pumps",
                mode="train",
                task="anomaly",
                model_kind="iforest",
                spec={},
                lineage={},
                metrics={},
                baseline={},
                created_by="eng",
                created_at=datetime.now(UTC),
                seconds=3600.0,
            )
        )
    with acting_as(OFFICER), pytest.raises(Forbidden):
        city.city.policy.set_quota("co-a", 1.5)
    with acting_as(CITY_ADMIN):
        city.city.policy.set_quota("co-a", 1.5)  # 1 h used + a typical run of 1 h would pass 1.5 h
        with pytest.raises(InvalidInput):
            city.city.policy.set_quota("co-a", -1)
    spec = {
        "name": "pumps",
        "task": "anomaly",
        "data": {"tags": ["co-a/secret-pump-0/flow"]},
        "model": {"kind": "iforest"},
    }
    with pytest.raises(QuotaExceeded, match=r"1\.00 of its 1\.5 CPU hours") as exc:
        city.lab.run("co-a", spec)
    assert exc.value.http_status == 429 and "city" in exc.value.message
    with pytest.raises(QuotaExceeded):
        city.lab.sweep("co-a", spec, {"n_estimators": [10, 20]})
    status = city.city.quotas.status("co-a")
    assert status["used_hours"]["lab"] == 1.0 and status["quota_hours"] == 1.5
    with pytest.raises(QuotaExceeded):
        city.lab.run("co-a", spec)
    with acting_as(CITY_ADMIN):
        city.city.policy.set_quota("co-a", None)  # lifted: the run gets past the quota (to the spec's own checks)
    with pytest.raises(Exception) as other:
        city.lab.run("co-a", {"name": "x"})
    assert not isinstance(other.value, QuotaExceeded)


def test_the_map_follows_site_states_live(city: Platform) -> None:
    share(city, "co-a", ["map", "state"], [])
    share(city, "co-b", ["map"], [])  # placement only: its state changes are not sent
    with acting_as(OFFICER):
        visible = city.city.visible_sites()
    assert visible == {"co-a": {"works"}}

    async def run() -> list[dict[str, object]]:
        got: list[dict[str, object]] = []
        stream = follow_sites(city.twin.hub, visible, lifetime_s=10)
        ready = asyncio.Event()

        def write() -> None:
            city.historian.write("co-b", [("co-b/secret-pump-0/flow", datetime.now(UTC), 99.0)])
            city.historian.write("co-a", [("co-a/secret-pump-0/flow", datetime.now(UTC), 99.0)])

        async def consume() -> None:
            async for batch in stream:
                ready.set()
                if batch:
                    got.extend(batch)
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        threading.Thread(target=write).start()
        await asyncio.wait_for(task, 10)
        await stream.aclose()
        return got

    got = asyncio.run(run())
    assert got == [{"tenant": "co-a", "site": "works", "state": "alarm"}]


def test_the_http_routes_and_the_report(city: Platform) -> None:
    for t in ("co-a", "co-b", "co-c"):
        share(city, t, ["map", "state"], ["alarm_share"])
    with TestClient(create_app(city), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.get("/api/v1/city/map")
        assert r.status_code == 200 and len(r.json()["sites"]) == 3
        assert c.get("/api/v1/city/aggregates/alarm_share").json()["companies"] == 3
        r = c.get("/api/v1/city/aggregates/alarm_share", params={"by": "complex", "group": "onsan"})
        assert r.status_code == 403 and "fewer than 3" in r.json()["message"]
        assert c.get("/api/v1/city/aggregates/nope").status_code == 404
        assert c.get("/api/v1/city/aggregates/alarm_share", params={"by": "zip"}).status_code == 422
        r = c.put("/api/v1/co-d/city/consents/works", json={"shares": ["map"], "figures": [], "extra": 1})
        assert r.status_code == 422
        assert c.put("/api/v1/co-d/city/consents/works", json={"shares": ["map"]}).status_code == 200
        assert c.get("/api/v1/co-a/city/standing/alarm_share").json()["position"] == "better"
        assert c.put("/api/v1/city/policy", json={"k": 1}).status_code == 422
        r = c.get("/api/v1/city/report.pdf", params={"lang": "ko"})  # in English: tests/test_city_web.py
        assert r.status_code == 200 and r.content.startswith(b"%PDF-") and len(r.content) > 10_000
        assert r.headers["content-type"] == "application/pdf"
        assert b"NanumGothic" in r.content  # the font that carries Hangul, embedded
        assert c.get("/api/v1/city/report.pdf", params={"lang": "fr"}).status_code == 422
        hq = c.get("/api/v1/city/hq").json()
        assert set(COMPANIES) <= set(hq["companies"]) and hq["privacy"]["k"] == 3
        assert any(a["ok"] and a["figure"] == "alarm_share" for a in hq["aggregates"])
        # the typed answers (city.records) are the routes' response models: each answer is the service's, whole
        with acting_as(Principal("admin", platform_admin=True)):
            svc = city.city
            assert {**hq, "generated_at": ""} == {**svc.hq(), "generated_at": ""} and list(hq) == list(svc.hq())
            got, want = c.get("/api/v1/city/map").json(), svc.map()
            assert {**got, "sites": []} == {**want, "sites": []} and list(got) == list(want)
            assert [list(s) for s in got["sites"]] == [list(s) for s in want["sites"]]
            assert c.get("/api/v1/city/figures").json() == svc.figures()
            got_a, want_a = c.get("/api/v1/city/aggregates/alarm_share").json(), svc.aggregate("alarm_share")
            assert got_a == want_a and list(got_a) == list(want_a) and list(got_a["privacy"]) == list(want_a["privacy"])
            assert c.get("/api/v1/co-a/city/standing/alarm_share").json() == svc.standing("co-a", "alarm_share")
            policy = {**svc.policy.privacy().to_dict(), "quotas": svc.policy.quotas()}
            assert c.get("/api/v1/city/policy").json() == policy
            consents = [x.to_dict() for x in svc.consents.get("co-a").values()]
            assert c.get("/api/v1/co-a/city/consents").json() == consents
            assert c.get("/api/v1/co-a/city/compute").json() == svc.quotas.status("co-a")


def test_the_cli_speaks_for_the_city(city: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from taehwa.cli.main import app

    monkeypatch.setenv("TAEHWA_DATA_DIR", str(city.settings.data_dir))
    monkeypatch.setenv("TAEHWA_API_TOKEN", TOKEN)
    run = CliRunner().invoke
    r = run(app, ["city", "share", "works", "-t", "co-a", "--items", "map,state", "--figures", "alarm_share"])
    assert r.exit_code == 0 and "shares map, state" in r.output
    for t in ("co-b", "co-c"):
        r = run(app, ["city", "share", "works", "-t", t, "--items", "map", "--figures", "alarm_share"])
        assert r.exit_code == 0
    r = run(app, ["city", "aggregate", "alarm_share", "--json"])
    assert r.exit_code == 0 and orjson.loads(r.output)["companies"] == 3
    r = run(app, ["city", "aggregate", "alarm_share", "--by", "complex", "--group", "onsan"])
    assert r.exit_code != 0 and "fewer than 3" in r.output
    assert run(app, ["city", "share", "works", "-t", "co-a", "--items", "state"]).exit_code != 0  # state needs map
    r = run(app, ["city", "quota", "co-a", "--cpu-hours", "2", "--json"])
    assert r.exit_code == 0 and orjson.loads(r.output)["quota_hours"] == 2.0
    assert '"co-b"' in run(app, ["city", "map", "--json"]).output
