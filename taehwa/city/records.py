"""The shapes of what the city answers (the map, the figures, a company's standing and its side of the city, the
headquarters' view, the privacy setting, consents, compute), as typed dictionaries: the JSON the API sends and the
web pages read, checked by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models, keys in
the order the service writes them. No `from __future__ import annotations` here, so which keys are required is
known at run time too. The release gate's answers are typed (`Release`, `Aggregate`, `ReleasedCohort`); the
headquarters' list of aggregates (each one released or refused) and what each site's owner shares on the map vary by
case and stay plain mappings inside these; settings read back from JSON are `int | float` (a plain `float` would
turn 1 into 1.0).
"""

from datetime import datetime
from typing import Any

from typing_extensions import TypedDict


class FigureInfo(TypedDict):
    """A figure companies may contribute to: its unit, whether it is sensitive, its plausible bounds."""

    name: str
    unit: str
    sensitive: bool
    higher_is_better: bool
    bounds: list[Any]


class PrivacyRecord(TypedDict):
    """The city's privacy setting: the smallest group released, and the noise (ε) where differential privacy is on."""

    k: int
    dp: bool
    epsilon: int | float | None
    dp_scope: str


class Release(TypedDict):
    """An aggregate of one figure over one group, as the release gate lets it out: how many companies it is over
    (and how many were held out since an earlier release), the statistic (an exact mean, or a noised median with
    its quartiles) and the privacy setting it was released under."""

    figure: str
    group: str
    companies: int
    held_out: int
    statistic: str
    value: int | float
    p25: int | float | None
    p75: int | float | None
    privacy: PrivacyRecord


class Aggregate(Release):
    """A released aggregate with its figure's unit and which way is better."""

    unit: str
    higher_is_better: bool


class ReleasedCohort(TypedDict):
    """A set of companies a figure was released over: the groups asked for over it, how often, the ε spent on it,
    and when it was first and last released."""

    members: list[str]
    groups: list[str]
    releases: int
    epsilon_spent: int | float
    first_at: datetime
    last_at: datetime


class ConsentRecord(TypedDict):
    """What a company shares of a site on the city's map, and which figures it contributes to."""

    tenant: str
    site: str
    shares: list[str]
    figures: list[str]
    set_by: str
    set_at: str


class ComputeStatus(TypedDict):
    """A company's lab compute this month against its quota, in CPU hours."""

    tenant: str
    month: str
    used_hours: dict[str, float]
    quota_hours: int | float | None
    left_hours: int | float | None


class Standing(TypedDict):
    """Where a company stands on a figure against the city's released value."""

    tenant: str
    figure: str
    unit: str
    value: float
    city_value: Any
    city_statistic: Any
    city_p25: Any
    city_p75: Any
    companies: Any
    privacy: Any
    position: str


class CompanySite(TypedDict):
    """One of a company's sites: where it is, what it shares and contributes to."""

    site: str
    name: str
    complex: Any
    placed: bool
    shares: list[str]
    figures: list[str]


class CompanyView(TypedDict):
    """A company's side of the city: its sites, its standing on each figure (or why none), whether it may edit."""

    tenant: str
    sites: list[CompanySite]
    standings: list[dict[str, Any]]
    can_edit: bool


class MapFrame(TypedDict):
    """The map's drawing size."""

    width: int | float
    height: int | float


class CityMap(TypedDict):
    """Everything the map draws: districts, complexes, infrastructure and its links, the sites companies share."""

    city: str
    frame: MapFrame
    districts: list[dict[str, Any]]
    complexes: list[dict[str, Any]]
    infrastructure: list[dict[str, Any]]
    links: list[dict[str, Any]]
    sites: list[dict[str, Any]]
    source: Any
    counts: dict[str, int]


class HqCompute(TypedDict):
    """Compute by company and month, the quotas, this month's use."""

    by_month: dict[str, Any]
    quotas: dict[str, float]
    this_month: dict[str, ComputeStatus]


class HqView(TypedDict):
    """The headquarters' view: adoption over time, talent, compute against quotas, the released aggregates."""

    generated_at: str
    companies: dict[str, str]
    adoption: dict[str, Any]
    talent: dict[str, Any]
    compute: HqCompute
    privacy: PrivacyRecord
    aggregates: list[dict[str, Any]]


class CityPolicy(PrivacyRecord):
    """The privacy setting with every company's compute quota (CPU hours a month)."""

    quotas: dict[str, float]
