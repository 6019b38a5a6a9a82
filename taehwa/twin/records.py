"""The shapes of what the twin service answers (an asset, a search, a live state, a type, the state tree), as
typed dictionaries: the JSON the API sends and the CLI and web pages read, checked by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models; no
`from __future__ import annotations` here, so which keys are required is known at run time too.
"""

from typing import Any, NotRequired

from typing_extensions import TypedDict


class AssetRecord(TypedDict):
    """One asset's own fields, flat (what the store keeps; limits and description only when set)."""

    path: str
    parent: str | None
    id: str
    type: str
    name: str
    attributes: dict[str, Any]
    tags: dict[str, str]
    limits: NotRequired[dict[str, dict[str, Any]]]
    description: NotRequired[str]


class AssetListing(AssetRecord):
    """An asset in a list (children, search results) with its rolled-up state."""

    state: str


class SearchResult(TypedDict):
    """One page of a search: how many assets match in all, and this page of them."""

    total: int
    items: list[AssetListing]


RelationRecord = TypedDict("RelationRecord", {"from": str, "kind": str, "to": str})
"""A relation beside the hierarchy, as plant files write it."""


class SignalRecord(TypedDict):
    """A bound signal's newest point and what it makes of it."""

    tag: str
    value: float | None
    quality: str
    time: str | None
    limit_state: str
    stale: bool
    state: str
    derived: bool


class SignalQuality(TypedDict):
    """Points a signal received since the server started, how many of bad and uncertain quality, percent good."""

    points: int
    bad: int
    uncertain: int
    figure: float | None


class AssetQuality(TypedDict):
    """An asset's quality figure (the mean of its signals' that received any) and each signal's."""

    figure: float | None
    signals: dict[str, SignalQuality]


class SignalCounts(TypedDict):
    """A plant's measured signals now: how many have good and fresh data, are stale, last sent a bad or an
    uncertain point, or have sent nothing yet; `good_pct` the good share of those that sent any (None before)."""

    measured: int
    good: int
    stale: int
    bad: int
    uncertain: int
    no_data: int
    good_pct: float | None


class AssetState(TypedDict):
    """An asset's state: rolled up over its subtree, its own, each signal's; `quality` for the live state,
    `at` for a state rebuilt at a past time."""

    path: str
    state: str
    own_state: str
    signals: dict[str, SignalRecord]
    quality: NotRequired[AssetQuality]
    at: NotRequired[str]


class AssetView(AssetRecord):
    """One asset as `TwinService.get` answers it: its fields, its children's paths, its relations, its bound
    signals (name → tag) and, for now rather than a past time, its live state."""

    children: list[str]
    relations: list[RelationRecord]
    signals: dict[str, str]
    live: NotRequired[AssetState | None]


class StateNode(TypedDict):
    """An asset in the state tree, with its rolled-up state and the assets under it."""

    path: str
    name: str
    type: str
    state: str
    children: list["StateNode"]


class AssetTypeView(TypedDict):
    """An asset type with its inherited members merged in; sensors and derived signals apart."""

    name: str
    extends: str | None
    level: str
    description: str | None
    ancestry: list[str]
    children: list[str] | None
    attributes: dict[str, dict[str, Any]]
    sensors: dict[str, dict[str, Any]]
    derived: dict[str, dict[str, Any]]


class PlantDocument(TypedDict):
    """A whole plant as a plant file writes it (types, nested assets, relations when any)."""

    types: dict[str, Any]
    assets: list[dict[str, Any]]
    relations: NotRequired[list[RelationRecord]]
