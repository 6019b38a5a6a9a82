"""The city service: the one entry for the API, the CLI and the web pages to the city's twin — its map (the city
office's own model and every company's sites as far as each shares them), the cross-company aggregates through
the release gate, each company's standing against the city's median, and the headquarters' view.

The city office is a tenant of its own (`city` by default): its members see the map and the aggregates, its
admins set the policy. A company's data enters only through what its admins consented to, and figures leave
only as aggregates the gate released."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taehwa.city import geo
from taehwa.city.adoption import adoption, talent
from taehwa.city.consents import Consent, ConsentBook
from taehwa.city.figures import DIMENSIONS, FIGURES, WINDOW_DAYS, Inputs, gain_of
from taehwa.city.records import Aggregate, CityMap, CompanySite, CompanyView, FigureInfo, HqView, Standing
from taehwa.city.release import Refused, ReleaseGate
from taehwa.core.errors import InvalidInput, NotFound, TaehwaError
from taehwa.tenancy.access import SYSTEM, acting_as, current

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from taehwa.city.compute import ComputeLedger, QuotaGuard
    from taehwa.city.policy import PolicyBook
    from taehwa.city.rates import SiteRates
    from taehwa.lab.service import LabService
    from taehwa.live.alerts import AlertBook
    from taehwa.live.deployments import DeploymentStore
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.model import Asset, Plant
    from taehwa.twin.service import TwinService

CITY_TENANT = "city"
INFRA_TYPES = ("Substation", "DataCentre", "UtilityPlant")
HQ_CACHE_S = 60.0  # the headquarters' view is computed (and its aggregates released) at most once a minute
MAX_GROUP = 100
NAMES_CACHE_S = 5.0


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class CityService:
    """The city's map, aggregates, standings and headquarters' view."""

    def __init__(
        self,
        *,
        city: str,
        engine: Engine,
        tenants: TenantService,
        twin: TwinService,
        consents: ConsentBook,
        policy: PolicyBook,
        gate: ReleaseGate,
        alerts: AlertBook,
        deployments: DeploymentStore,
        lab: LabService,
        rates: SiteRates,
        ledger: ComputeLedger,
        quotas: QuotaGuard,
    ) -> None:
        """Each collaborator named: the city's tenant id, the metadata database (the headquarters' counts),
        tenancy, the twin (models and live state), consents, policy, the release gate, alerts, deployments, the
        lab (validation figures), site data rates and the compute ledger with its quota guard."""
        self.city = city
        self._engine, self._tenants, self._twin = engine, tenants, twin
        self.consents, self.policy, self.gate = consents, policy, gate
        self._alerts, self._deployments, self._lab, self._rates = alerts, deployments, lab, rates
        self.ledger, self.quotas = ledger, quotas
        self._hq: tuple[float, str, HqView] | None = None
        self._names: tuple[float, dict[str, str]] | None = None
        self._hq_lock = threading.Lock()

    # -- who may look ------------------------------------------------------------------------------------------
    def require_city(self, action: str = "read") -> None:
        """The caller is a member of the city office (or a platform admin)."""
        self._tenants.require(self.city, action)

    def _companies(self) -> dict[str, str]:
        """Every company's name (kept for a few seconds: the map asks on every refresh)."""
        now = time.monotonic()
        if self._names is None or now - self._names[0] > NAMES_CACHE_S:
            with acting_as(SYSTEM):
                self._names = (now, {t.id: t.name for t in self._tenants.list() if t.id != self.city})
        return dict(self._names[1])

    def _consents(self) -> dict[str, list[Consent]]:
        out: dict[str, list[Consent]] = {}
        with acting_as(SYSTEM):
            for c in self.consents.everyone():
                if c.tenant != self.city:
                    out.setdefault(c.tenant, []).append(c)
        return out

    # -- the map -------------------------------------------------------------------------------------------------
    def city_plant(self) -> Plant:
        """The city office's own model."""
        self.require_city()
        return self._twin.plant(self.city)

    def map(self) -> CityMap:
        """Everything the map draws: districts (SVG paths), complexes, infrastructure and the sites companies
        share, each with the details its owner shares (state, data rate, power, models, open alerts)."""
        plant = self.city_plant()
        frame, districts = geo.districts()
        live = self._twin.live.get(self.city)
        by_code = {str(a.attributes.get("code")): a for a in plant.assets.values() if self._is(plant, a, "District")}
        out_districts = [
            {
                **d,
                "path_id": by_code[d["code"]].path if d["code"] in by_code else None,
                "name": by_code[d["code"]].name if d["code"] in by_code else d["name_en"],
            }
            for d in districts
        ]
        complexes, infra = [], []
        for a in plant.assets.values():
            lat, lon = _num(a.attributes.get("latitude")), _num(a.attributes.get("longitude"))
            if lat is None or lon is None:
                continue
            x, y = frame.xy(lon, lat)
            base = {
                "path": a.path,
                "id": a.id,
                "name": a.name,
                "name_ko": a.attributes.get("name_ko"),
                "type": a.type,
                "lat": lat,
                "lon": lon,
                "x": x,
                "y": y,
            }
            if self._is(plant, a, "IndustrialComplex"):
                t = plant.types[a.type]
                radius = (
                    _num(a.attributes.get("radius_km"))
                    or _num(t.attributes["radius_km"].default if "radius_km" in t.attributes else None)
                    or 3.0
                )
                complexes.append({**base, "r": frame.km(radius), "radius_km": radius})
            elif any(self._is(plant, a, k) for k in INFRA_TYPES):
                with self._twin.live.lock:
                    state = live.rolled.get(a.path, "unknown") if live else "unknown"
                infra.append(
                    {
                        **base,
                        "kind": next(k for k in INFRA_TYPES if self._is(plant, a, k)),
                        "state": state,
                        "attributes": {k: v for k, v in a.attributes.items() if k not in ("latitude", "longitude")},
                    }
                )
        placed = {i["path"]: i for i in infra}
        links = [
            {
                "from": r.source,
                "to": r.target,
                "kind": r.kind,
                "x1": placed[r.source]["x"],
                "y1": placed[r.source]["y"],
                "x2": placed[r.target]["x"],
                "y2": placed[r.target]["y"],
            }
            for r in plant.relations
            if r.source in placed and r.target in placed
        ]  # feeders between assets
        sites = self._sites(frame)
        names = {c["id"]: c for c in complexes}
        for s in sites:  # the complex a site names, as the city calls it
            c = names.get(str(s.get("complex")))
            s["complex_name"] = (c["name"], c["name_ko"]) if c else None
        return {
            "city": self.city,
            "frame": {"width": geo.WIDTH, "height": frame.height},
            "districts": out_districts,
            "complexes": complexes,
            "infrastructure": infra,
            "links": links,
            "sites": sites,
            "source": geo.source_note(),
            "counts": self._counts(sites),
        }

    @staticmethod
    def _is(plant: Plant, asset: Asset, type_name: str) -> bool:
        t = plant.types.get(asset.type)
        return bool(t and t.is_a(type_name))

    @staticmethod
    def _counts(sites: list[dict[str, Any]]) -> dict[str, int]:
        out = {"sites": len(sites), "companies": len({s["tenant"] for s in sites})}
        for s in sites:
            st = s.get("state")
            if st:
                out[st] = out.get(st, 0) + 1
        return out

    def _sites(self, frame: geo.Frame) -> list[dict[str, Any]]:
        names = self._companies()
        caller = current()
        out: list[dict[str, Any]] = []
        everyone = self._consents()
        wants = {s for cs in everyone.values() for c in cs if "map" in c.shares for s in c.shares}
        open_alerts: dict[str, list[str]] = {}
        deployments: dict[str, list[Any]] = {}
        if "alerts" in wants:  # one query for every company, not one each (500 sites in well under a second)
            for row in self._alerts.open_alerts():
                if row.asset:
                    open_alerts.setdefault(row.tenant, []).append(row.asset)
        if "models" in wants:
            for d in self._deployments.list(None):
                if d.enabled:
                    deployments.setdefault(d.tenant, []).append(d)
        for tenant, consents in everyone.items():
            if tenant not in names:
                continue
            shown = [c for c in consents if "map" in c.shares]
            if not shown:
                continue
            with acting_as(SYSTEM):
                plant = self._twin.plant(tenant)
            deps = deployments.get(tenant, [])
            live = self._twin.live.get(tenant)
            may_open = caller.may(tenant, "read")
            for c in shown:
                site = plant.assets.get(c.site)
                if site is None or site.parent is not None:
                    continue
                lat, lon = _num(site.attributes.get("latitude")), _num(site.attributes.get("longitude"))
                entry: dict[str, Any] = {
                    "tenant": tenant,
                    "company": names[tenant],
                    "site": site.path,
                    "name": site.name,
                    "complex": site.attributes.get("complex"),
                    "industry": site.attributes.get("industry"),
                    "lat": lat,
                    "lon": lon,
                    "shares": sorted(c.shares),
                }
                if lat is not None and lon is not None and frame.contains(lon, lat):
                    entry["x"], entry["y"] = frame.xy(lon, lat)
                if "state" in c.shares:
                    with self._twin.live.lock:
                        entry["state"] = live.rolled.get(site.path, "unknown") if live else "unknown"
                if "rate" in c.shares:
                    entry["points_s"] = round(self._rates.rate(tenant, site.path), 1)
                if "power" in c.shares:
                    with self._twin.live.lock:
                        sig = (live.signals.get(site.path) or {}).get("power") if live else None
                        entry["power_kw"] = sig.value if sig is not None else None
                if "models" in c.shares:
                    paths = [a.path for a in plant.subtree(site.path)]
                    entry["models"] = sum(1 for d in deps if any(d.covers(plant, p) for p in paths))
                if "alerts" in c.shares:
                    prefix = site.path + "/"
                    entry["open_alerts"] = sum(
                        1 for a in open_alerts.get(tenant, ()) if a == site.path or a.startswith(prefix)
                    )
                entry["url"] = f"/t/{tenant}/assets/{site.path}" if may_open else None
                out.append(entry)
        return out

    def visible_sites(self) -> dict[str, set[str]]:
        """The sites whose live state the caller may follow on the map: company → sites sharing `state`."""
        self.require_city()
        return {
            t: {c.site for c in cs if {"map", "state"} <= c.shares}
            for t, cs in self._consents().items()
            if any({"map", "state"} <= c.shares for c in cs)
        }

    # -- aggregates ----------------------------------------------------------------------------------------------
    def figures(self) -> list[FigureInfo]:
        """The figures companies may contribute to, with their units and whether they are sensitive."""
        return [
            {
                "name": n,
                "unit": f.unit,
                "sensitive": f.gate.sensitive,
                "higher_is_better": f.higher_is_better,
                "bounds": [f.gate.low, f.gate.high],
            }
            for n, f in FIGURES.items()
        ]

    def _spec(self, figure: str) -> Any:
        spec = FIGURES.get(figure)
        if spec is None:
            raise NotFound(f"no figure {figure!r}; the figures are {', '.join(FIGURES)}", where="figure")
        return spec

    def _inputs(self, tenant: str, figure: str) -> Inputs:
        with acting_as(SYSTEM):
            plant = self._twin.plant(tenant)
            live = self._twin.live.get(tenant)
            with self._twin.live.lock:
                own = dict(live.own) if live else {}
                signals = {
                    p: [s.state for s in sigs.values() if not s.derived]
                    for p, sigs in (live.signals.items() if live else ())
                }
            inp = Inputs(tenant, plant, own, signals, [], [])
            if figure == "alerts_per_asset_30d":
                since = (datetime.now(UTC) - timedelta(days=WINDOW_DAYS)).isoformat()
                inp.alerts = self._alerts.list(tenant, since=since, limit=100_000)
            if figure in ("models_in_production", "validated_gain"):
                inp.deployments = [d for d in self._deployments.list(tenant) if d.enabled]
            if figure == "validated_gain":
                for v in self._lab.versions(tenant):
                    if v["stage"] != "production":
                        continue
                    try:
                        gain = gain_of(self._lab.get_run(tenant, v["run_id"]))
                    except TaehwaError:
                        continue
                    if gain is not None:
                        inp.gains[(v["name"], v["version"])] = gain
                        inp.gains[(v["name"], None)] = gain  # a deployment that follows production
        return inp

    def _paths(self, plant: Plant, sites: list[str], dimension: str, group: str | None) -> list[str]:
        chosen = []
        for s in sites:
            site = plant.assets.get(s)
            if site is None:
                continue
            if dimension == "complex" and site.attributes.get("complex") != group:
                continue
            if dimension == "industry" and site.attributes.get("industry") != group:
                continue
            chosen.append(s)
        paths = [a.path for s in chosen for a in plant.subtree(s)]
        if dimension == "asset_type":
            paths = [p for p in paths if self._is(plant, plant.assets[p], str(group))]
        return paths

    def _values(self, figure: str, dimension: str, group: str | None, only: str | None = None) -> dict[str, float]:
        spec = self._spec(figure)
        values: dict[str, float] = {}
        for tenant, consents in self._consents().items():
            if only is not None and tenant != only:
                continue
            sites = [c.site for c in consents if figure in c.figures]
            if not sites:
                continue
            inp = self._inputs(tenant, figure)
            paths = self._paths(inp.plant, sites, dimension, group)
            if not paths:
                continue
            value = spec.compute(inp, paths)
            if value is not None:
                values[tenant] = float(value)
        return values

    def _check_group(self, dimension: str, group: str | None) -> str:
        if dimension not in DIMENSIONS:
            raise InvalidInput(f"group by one of {', '.join(DIMENSIONS)}", where="by")
        if dimension == "city":
            return "city"
        if not group or len(group) > MAX_GROUP:
            raise InvalidInput(f"name the {dimension.replace('_', ' ')} (1–{MAX_GROUP} characters)", where="group")
        return f"{dimension}={group}"

    def aggregate(self, figure: str, dimension: str = "city", group: str | None = None) -> Aggregate:
        """A figure's mean (with noise, its median and quartiles) over the companies that contribute, by complex,
        industry or asset type (the city's members only), through the release gate."""
        self.require_city()
        spec = self._spec(figure)
        label = self._check_group(dimension, group)
        values = self._values(figure, dimension, group)
        out = self.gate.release(spec.gate, label, values, self.policy.privacy(), by=current().user)
        return {**out, "unit": spec.unit, "higher_is_better": spec.higher_is_better}

    def standing(self, tenant: str, figure: str) -> Standing:
        """Where a company stands against the city's figure (the gate's mean, or noised median) on a figure it
        contributes to (its own members)."""
        self._tenants.require(tenant)
        spec = self._spec(figure)
        own = self._values(figure, "city", None, only=tenant)
        if tenant not in own:
            raise InvalidInput(
                f"tenant {tenant!r} contributes no value of {figure} (its admins opt sites in per "
                "figure: taehwa city share); a company sees the city's median of the figures it "
                "contributes to",
                where="figure",
            )
        city = self.gate.release(
            spec.gate, "city", self._values(figure, "city", None), self.policy.privacy(), by=current().user
        )
        mine = own[tenant]
        better = mine > city["value"] if spec.higher_is_better else mine < city["value"]
        return {
            "tenant": tenant,
            "figure": figure,
            "unit": spec.unit,
            "value": round(mine, 6),
            "city_value": city["value"],
            "city_statistic": city["statistic"],
            "city_p25": city["p25"],
            "city_p75": city["p75"],
            "companies": city["companies"],
            "privacy": city["privacy"],
            "position": "same" if mine == city["value"] else ("better" if better else "worse"),
        }

    def company(self, tenant: str) -> CompanyView:
        """A company's side of the city: each of its sites with what it shares, and where the company stands on
        each figure it contributes to (its members; its admins may change what is shared)."""
        self._tenants.require(tenant)
        plant = self._twin.plant(tenant)
        consents = self.consents.get(tenant)
        sites: list[CompanySite] = []
        for site in plant.children(None):
            c = consents.get(site.path)
            sites.append(
                {
                    "site": site.path,
                    "name": site.name,
                    "complex": site.attributes.get("complex"),
                    "placed": _num(site.attributes.get("latitude")) is not None
                    and _num(site.attributes.get("longitude")) is not None,
                    "shares": sorted(c.shares) if c else [],
                    "figures": sorted(c.figures) if c else [],
                }
            )
        standings: list[dict[str, Any]] = []
        for figure in sorted({f for c in consents.values() for f in c.figures}):
            try:
                standings.append({"ok": True, **self.standing(tenant, figure)})
            except (Refused, InvalidInput) as exc:
                standings.append({"ok": False, "figure": figure, "reason": exc.message})
        return {"tenant": tenant, "sites": sites, "standings": standings, "can_edit": current().may(tenant, "admin")}

    def _aggregates_for_hq(self, plant: Plant) -> list[dict[str, Any]]:
        complexes = [a.id for a in plant.assets.values() if self._is(plant, a, "IndustrialComplex")]
        industries = sorted(
            {
                str(s.attributes["industry"])
                for t, cs in self._consents().items()
                for c in cs
                if (s := self._site(t, c.site)) is not None and s.attributes.get("industry")
            }
        )
        groups: list[tuple[str, str | None]] = [
            ("city", None),
            *(("complex", c) for c in complexes),
            *(("industry", i) for i in industries),
        ]
        out = []
        for figure in FIGURES:
            for dim, group in groups:
                try:
                    out.append({"ok": True, **self.aggregate(figure, dim, group)})
                except Refused as exc:
                    out.append(
                        {"ok": False, "figure": figure, "group": self._check_group(dim, group), "reason": exc.message}
                    )
        return out

    def _site(self, tenant: str, site: str) -> Asset | None:
        with acting_as(SYSTEM):
            return self._twin.plant(tenant).assets.get(site)

    # -- the headquarters' view -------------------------------------------------------------------------------------
    def hq(self) -> HqView:
        """Adoption over time, talent, compute against quotas and the released aggregates (city members)."""
        self.require_city()
        key = current().user
        with self._hq_lock:
            if self._hq is not None and time.monotonic() - self._hq[0] < HQ_CACHE_S and self._hq[1] == key:
                return self._hq[2]
        names = self._companies()
        plant = self._twin.plant(self.city)
        compute = self.ledger.by_month()
        quotas = self.policy.quotas()
        with acting_as(SYSTEM):
            usage = {t: self.quotas.status(t) for t in names}
        doc: HqView = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "companies": names,
            "adoption": adoption(self._engine, sorted(names)),
            "talent": talent(self._engine),
            "compute": {"by_month": {t: compute.get(t, {}) for t in names}, "quotas": quotas, "this_month": usage},
            "privacy": self.policy.privacy().to_dict(),
            "aggregates": self._aggregates_for_hq(plant),
        }
        with self._hq_lock:
            self._hq = (time.monotonic(), key, doc)
        return doc
