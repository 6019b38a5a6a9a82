"""The shapes of what the analytics service answers (a plant file's check, a calculated tag's lineage), as typed
dictionaries: the JSON the API sends and the CLI reads, checked by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models, keys in
the order the service writes them. No `from __future__ import annotations` here, so which keys are required is
known at run time too.
"""

from typing import Any, NotRequired

from typing_extensions import TypedDict


class CheckProblem(TypedDict):
    """One problem of a plant file: where (file, line, field) and what."""

    where: str
    problem: str


class PlantCheck(TypedDict):
    """A plant file's analytics checked without loading it; the counts only once the file parses."""

    ok: bool
    problems: list[CheckProblem]
    calculated_signals: NotRequired[int]
    templates: NotRequired[int]


class CalcLineage(TypedDict):
    """What a calculated tag's points come from: the expression, its version, the type and signal, the inputs."""

    calculated: bool
    expr: str
    version: str
    type: str
    signal: str
    inputs: list[str]


class Lineage(TypedDict):
    """A calculated tag's lineage, the tag and its asset first (as `CalcLineage` after them)."""

    tag: str
    asset: str
    calculated: bool
    expr: str
    version: str
    type: str
    signal: str
    inputs: list[str]


class EvalPoint(TypedDict):
    """One point of an expression tried on an asset (no value where its quality is bad)."""

    time: str
    value: float | None
    quality: int


class EvalResult(TypedDict):
    """An expression tried on one asset over a range, nothing written: its inputs and points."""

    asset: str
    expr: str
    inputs: list[str]
    truncated: bool
    points: list[EvalPoint]


class AnalyticsStatus(TypedDict):
    """What live computation runs for a tenant: only `running` and `reason` outside a server; the engine's
    figures once it runs the tenant's program (groups, tags and templates only before)."""

    running: bool
    reason: NotRequired[str]
    groups: NotRequired[int]
    calculated_tags: NotRequired[int]
    templates: NotRequired[int]
    inputs: NotRequired[int]
    points_written: NotRequired[int]
    last_error: NotRequired[str | None]
    buffered_points: NotRequired[int]
    queued: NotRequired[int]
    at: NotRequired[int | None]
    events_scored_live: NotRequired[int]


class ReferenceView(TypedDict):
    """A template's reference: the events it was made of, its band and steps, the running events scored against it,
    and its profile (median and band per step) when asked for."""

    template: str
    signal: str
    output: str
    events: list[str]
    band: float
    step_s: float
    steps: int
    created_by: str
    scoring: list[dict[str, Any]]
    profile: NotRequired[dict[str, Any]]
