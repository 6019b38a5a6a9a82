"""The shapes of what the analytics service answers (a plant file's check, its listing of calculated signals and event
templates, a calculated tag's lineage, a backfill, an event frame, references and live scoring), as typed
dictionaries: the JSON the API sends and the CLI reads, checked by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models, keys in
the order the service writes them. No `from __future__ import annotations` here, so which keys are required is
known at run time too.
"""

from typing import Any, Literal, NotRequired, final

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


class RefSpec(TypedDict):
    """A template's declared live comparison, as the plant's listing shows it: the signal scored, the tag the
    deviation is written to, the band (in spreads) and the step."""

    signal: str
    output: str
    band: float
    step_s: float


@final
class SignalCalc(TypedDict):
    """A calculated signal of a type in the plant's listing: its expression, unit, version and window, and how
    many assets run it."""

    kind: Literal["signal"]
    type: str
    name: str
    expr: str
    unit: str | None
    version: str
    window_s: float
    assets: int


@final
class ConditionTemplate(TypedDict):
    """An event template opened by a condition in the plant's listing: how long the condition must hold, the
    longest an event stays open, its statistics, how many assets run it, its reference if it declares one."""

    kind: Literal["event"]
    type: str
    name: str
    version: str
    held_s: float
    max_duration_s: float
    stats: list[str]
    assets: int
    reference: NotRequired[RefSpec]


@final
class SourcedTemplate(TypedDict):
    """An event template opened by an alert rule or a label kind (`opened_by`: opener → its rule or kind) in the
    plant's listing; `problem` when the tenant has no such rule or label yet."""

    kind: Literal["event"]
    type: str
    name: str
    version: str
    opened_by: dict[str, str]
    max_duration_s: float
    stats: list[str]
    assets: int
    reference: NotRequired[RefSpec]
    problem: NotRequired[str]


Calculation = SignalCalc | ConditionTemplate | SourcedTemplate
"""One row of the plant's listing: the three shapes told apart by `kind`, then by `opened_by`."""


class BackfillCounts(TypedDict):
    """What a backfill did: points written (and how many bad), events made, deviation points of closed events
    scored again against their references, day chunks, the signals and templates it recomputed."""

    points: int
    bad_points: int
    events: int
    reference_points: int
    chunks: int
    signals: list[str]
    templates: list[str]


class BackfillResult(BackfillCounts):
    """A backfill's counts, the seconds it took, and the range it covered."""

    seconds: float
    start: str
    end: str


class EventFrame(TypedDict):
    """One event frame: where and of what, its span (text and µs; no end while open), why it closed, its
    template's statistics per signal and what opened it."""

    id: str
    asset: str
    template: str
    kind: str
    start: str
    end: str | None
    start_us: int
    end_us: int | None
    duration_s: int | float | None
    close_reason: str | None
    state: str
    stats: dict[str, Any]
    info: dict[str, Any]


class ReferenceSummary(TypedDict):
    """A template's stored reference without its profile: the events it was made of, its step and band."""

    type: str
    template: str
    signal: str
    events: list[str]
    step_s: float
    band: int | float
    created_by: str


class Scoring(TypedDict):
    """A running event scored live against its template's reference: where it stands (no share or deviation
    before its first step)."""

    event: str
    asset: str
    template: str
    output: str
    steps: int
    outside_share: float | None
    max_abs_deviation: float | None
    profile_events: int


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
    scoring: list[Scoring]
    profile: NotRequired[dict[str, Any]]


class EventSearch(TypedDict):
    """Event frames found, newest first: at most the limit, whether more passed, and whether the statistic filters
    met the scan's limit (so more may exist than were tested)."""

    events: list[EventFrame]
    truncated: bool
    scan_limit_hit: bool


class ProfileCurve(TypedDict):
    """A reference profile over time since an event's start: its step, how many events made it, and the median
    with its band per step (None where no event had a value)."""

    step_s: float
    events: int
    offset_s: list[float]
    median: list[float | None]
    low: list[float | None]
    high: list[float | None]


class CurveComparison(TypedDict):
    """An event's curve against a profile: the steps compared, the share outside the band, the largest deviation
    and the deviation at each step."""

    steps: int
    outside_share: float | None
    max_abs_deviation: float | None
    deviation: list[float | None]


class EventComparison(TypedDict):
    """An event against a profile made of reference events: which, on what signal, the profile, then the
    comparison's figures (CurveComparison's keys, in its order)."""

    event: str
    signal: str
    reference: list[str]
    profile: ProfileCurve
    steps: int
    outside_share: float | None
    max_abs_deviation: float | None
    deviation: list[float | None]


class QualityFinding(TypedDict):
    """One data-quality finding of a tag: the check, its span and the points it covers."""

    check: str
    start: str
    end: str
    points: int
    detail: str


class TagQuality(TypedDict):
    """A tag's quality over a range: its figure (percent of the range clean), its first 200 findings and their
    count."""

    tag: str
    quality: float
    findings: list[QualityFinding]
    count: int


class AssetQuality(TypedDict):
    """An asset's quality: the mean of its tags' figures, the worst of them, and each tag's, by signal."""

    quality: float
    worst: float
    tags: dict[str, TagQuality]


class QualityReport(TypedDict):
    """The quality checks of a range: per asset, the findings counted, and how many were stored as events."""

    start: str
    end: str
    assets: dict[str, AssetQuality]
    findings: int
    events_written: int
