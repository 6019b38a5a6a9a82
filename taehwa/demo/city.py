"""The demo city: Ulsan's city office (tenant `city`) with its model (districts, the Mipo and Onsan national
industrial complexes, two substations, the AI data centre), the demo's sites placed in those complexes, and two
more demo companies — a shipyard in Mipo and a petrochemical works in Onsan — so that the cross-company figures
have three contributors. Their pumps carry real SKAB test-bed rows (other runs than the demo's live pump), written
once. Every demo site shares everything with the city; a company's admins can change that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from taehwa.city.consents import SHARES
from taehwa.city.figures import FIGURES
from taehwa.city.service import CITY_TENANT
from taehwa.core.errors import NotFound
from taehwa.core.yamlio import dump_yaml
from taehwa.demo import skab_files
from taehwa.demo.plant import (
    DEMO_PLACES,
    MOTOR_POWER,
    SKAB_COLUMNS,
    _limits,
    pump_history_rows,
    pumped_site,
    skab_rows,
)
from taehwa.tenancy.access import SYSTEM, acting_as

if TYPE_CHECKING:
    from taehwa.server.platform import Platform

CITY_FILE = Path(__file__).parents[1] / "city" / "data" / "ulsan-city.yaml"
CITY_NAME = "Ulsan city office (demo) · 울산광역시 AI 본부(데모)"
# the two other demo companies: tenant → (name, site id, site name, placement, SKAB runs for their three pumps)
COMPANIES: dict[str, tuple[str, str, str, dict[str, Any], tuple[str, ...]]] = {
    "mipo-shipyard": (
        "Mipo shipyard (demo) · 미포 조선소(데모)",
        "dong-gu-yard",
        "Dong-gu shipyard",
        {"latitude": 35.506, "longitude": 129.428, "complex": "mipo", "industry": "shipbuilding"},
        ("valve2-0", "valve2-1", "other-1"),
    ),
    "onsan-chem": (
        "Onsan chemicals (demo) · 온산 화학(데모)",
        "onsan-works",
        "Onsan works",
        {"latitude": 35.424, "longitude": 129.326, "complex": "onsan", "industry": "petrochemical"},
        ("valve1-8", "other-2", "anomaly-free"),
    ),
}
ROWS = 120  # the last two minutes of each run, ending at load time


def _pump_type(shared: Path) -> dict[str, Any]:
    normal = pump_history_rows(shared)
    sensors = {
        sig: {"unit": unit, "description": f"SKAB {col}", **({"limits": lim} if (lim := _limits(normal[:, i])) else {})}
        for i, (col, (_, sig, unit)) in enumerate(SKAB_COLUMNS.items())
    }
    return {
        "extends": "Equipment",
        "description": "A cooling-water pump (SKAB test-bed signals).",
        "sensors": sensors,
        "derived": {"electric_power": MOTOR_POWER},
    }


def _plant(site: str, name: str, place: dict[str, Any], pump_type: dict[str, Any]) -> dict[str, Any]:
    pumps = [
        {
            "id": f"pump-{i + 1}",
            "type": "CoolingPump",
            "name": f"Cooling pump {i + 1}",
            "tags": {sig: f"cooling/pump-{i + 1}/{sig}" for _, sig, _ in SKAB_COLUMNS.values()},
        }
        for i in range(3)
    ]
    return {
        "types": {"CoolingPump": pump_type, "PumpedSite": pumped_site("CoolingPump")},
        "assets": [
            {
                "id": site,
                "type": "PumpedSite",
                "name": name,
                "attributes": place,
                "children": [{"id": "cooling", "type": "Area", "name": "Cooling water", "children": pumps}],
            }
        ],
    }


def _write_pumps(platform: Platform, tenant: str, runs: tuple[str, ...], shared: Path) -> None:

    if any(n.startswith("cooling/") for n in platform.historian.catalog.ids(tenant)):
        return  # written once
    paths = dict(skab_files(shared))
    end = datetime.now(UTC).replace(microsecond=0)
    points = []
    for i, run in enumerate(runs):
        rows = skab_rows(paths[run])[-ROWS:]
        for j, row in enumerate(rows):
            t = end - timedelta(seconds=len(rows) - j)
            points += [
                (f"cooling/pump-{i + 1}/{sig}", t, float(v))
                for (_, sig, _), v in zip(SKAB_COLUMNS.values(), row, strict=True)
                if np.isfinite(v)
            ]
    platform.historian.write(tenant, points, source="demo-city")
    # their calculated signals (the pumps' electric power, the site's power demand on the city's map) over the rows
    # just written: the live analytics computes only what arrives after it follows the tenant's new plant
    platform.analytics.backfill(tenant, end - timedelta(seconds=ROWS + 1), end + timedelta(seconds=1))


def _share_all(platform: Platform, tenant: str, sites: list[str]) -> None:
    have = platform.city.consents.get(tenant)
    for site in sites:
        if site not in have:  # what a company's admins changed stays
            platform.city.consents.set(tenant, site, shares=list(SHARES), figures=list(FIGURES))


def load_demo_city(platform: Platform, shared: Path, demo_tenant: str = "demo") -> None:
    """The city office, its model, the two other companies with their pumps, and every demo site shared."""
    with acting_as(SYSTEM):
        for tenant, name in ((CITY_TENANT, CITY_NAME), *((t, c[0]) for t, c in COMPANIES.items())):
            try:
                platform.tenants.get(tenant)
            except NotFound:
                platform.tenants.create(tenant, name)
        platform.twin.load(CITY_TENANT, CITY_FILE.read_text(encoding="utf-8"), source=CITY_FILE.name, actor="demo")
        pump_type = _pump_type(shared)
        for tenant, (_, site, site_name, place, runs) in COMPANIES.items():
            platform.twin.load(
                tenant, dump_yaml(_plant(site, site_name, place, pump_type)), source=f"{tenant}.yaml", actor="demo"
            )
            _write_pumps(platform, tenant, runs, shared)
            _share_all(platform, tenant, [site])
        _share_all(platform, demo_tenant, [s for s in DEMO_PLACES if s in platform.twin.plant(demo_tenant).assets])
