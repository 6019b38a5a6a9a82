"""The shapes of what live scoring answers (a deployment and how it is doing, a prediction, a backfill, a drift
report, an alert, a webhook), as typed dictionaries: the JSON the API sends and the CLI and web pages read, checked
by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models, keys in
the order the services write them (a response model writes its keys in its own order). No
`from __future__ import annotations` here, so which keys are required is known at run time too. Numbers that may
be whole are `int | float` where a plain `float` would turn 5 into 5.0 in the JSON.
"""

from typing import Any, NotRequired

from typing_extensions import TypedDict


class ModelRef(TypedDict):
    """Which registered model version a deployment or a call uses."""

    name: str
    version: int
    run_id: str
    stage: str


class ScorerStatus(TypedDict):
    """How a deployment is doing; only `running` (False) when the scorer does not run it."""

    running: bool
    model: NotRequired[ModelRef]
    task: NotRequired[str]
    assets: NotRequired[int]
    skipped: NotRequired[dict[str, str]]
    outputs: NotRequired[dict[str, str]]
    step_s: NotRequired[float]
    rows_scored: NotRequired[int]
    history_rows: NotRequired[int]
    last_row: NotRequired[str | None]
    late_points: NotRequired[int]
    last_error: NotRequired[str | None]
    error_at: NotRequired[str | None]


class DeploymentRecord(TypedDict):
    """A stored deployment. Its row-making parameters sit among its fields, as callers have always read them (a
    deployment stored before a parameter existed lacks it): hence not required."""

    name: str
    model: str
    version: int | None
    target: dict[str, str]
    outputs: NotRequired[dict[str, str | None]]
    step: NotRequired[str | None]
    hold_s: NotRequired[int | float | None]
    wait_s: NotRequired[int | float | None]
    every_s: NotRequired[int | float | None]
    enabled: bool
    created_by: str
    created_at: str


class DeploymentView(DeploymentRecord):
    """A deployment with how it is doing."""

    status: ScorerStatus


class PredictResult(TypedDict):
    """Rows scored on demand: each row's outputs (None where not finite; `fault` the class for fault models)."""

    model: ModelRef
    task: str
    inputs: list[str]
    rows: list[dict[str, Any]]


class BackfillResult(TypedDict):
    """A past range scored: how many rows, how fast, what was written where, and each output's summary."""

    model: ModelRef
    task: str
    assets: int
    skipped: dict[str, str]
    rows: int
    seconds: float
    rows_per_s: int | None
    written_points: int
    write: str
    backend: str
    outputs: list[str]
    tags: str
    summary: dict[str, Any]


class SeriesDrift(TypedDict):
    """PSI and KS of one series against the training reference, with its verdict."""

    name: str
    psi: float | None
    ks: float | None
    p_value: float | None
    reference_mean: float | None
    live_mean: float | None
    status: str


class DriftThresholds(TypedDict):
    """The PSI levels of drift and of watch."""

    psi_drift: float
    psi_watch: float


class DriftReport(TypedDict):
    """A running deployment's drift now: each input's and the score's."""

    deployment: str
    model: ModelRef
    live_rows: int
    checked_at: str
    thresholds: DriftThresholds
    drifted: bool
    status: str
    inputs: list[SeriesDrift]
    output: SeriesDrift | None


class AlertRecord(TypedDict):
    """An alert: what raised it, its state, when, and the chain from the model that led to it."""

    id: int
    rule: str
    asset: str | None
    tag: str | None
    severity: str
    state: str
    message: str
    value: int | float | None
    count: int
    raised_at: str
    last_at: str
    resolved_at: str | None
    shelved_until: str | None
    chain: dict[str, Any]


class WebhookRecord(TypedDict):
    """A webhook (its secret never shown, only whether it signs) with its undelivered messages."""

    name: str
    url: str
    events: list[str]
    signed: bool
    pending: int
    last_error: str | None
    attempts: int


class AlertAction(TypedDict):
    """One step of an alert's history: who did what, when, with which note."""

    action: str
    actor: str
    note: str | None
    at: str | None


class AlertDetail(AlertRecord):
    """One alert with its history and the analytics events it belongs to."""

    history: list[AlertAction]
    events: list[dict[str, Any]]


class RuleRecord(TypedDict):
    """An alert rule as it was given, its defaults filled and unset options left out (`RuleIn`'s fields, in its
    order)."""

    name: str
    kind: str
    asset_type: NotRequired[str]
    asset: NotRequired[str]
    tag: NotRequired[str]
    signal: NotRequired[str]
    op: str
    value: NotRequired[float]
    hysteresis: float
    min_duration_s: float
    quiet_s: float
    rate_per_s: NotRequired[float]
    stale_s: NotRequired[float]
    severity: str
    auto_resolve: bool
    message: NotRequired[str]
    enabled: bool


class ConditionState(TypedDict):
    """Where a rule's condition stands on one of its tags: on or off, raised, since when, its alert, the last value."""

    asset: str | None
    tag: str
    on: bool
    raised: bool
    since: str | None
    alert: int | None
    last_value: float | None


class RuleDetail(RuleRecord):
    """A rule with where its conditions stand."""

    conditions: list[ConditionState]


class OutputOwner(TypedDict):
    """The deployment and model version whose output a tag is, with its row step and history (an alert's chain)."""

    deployment: str
    name: str
    version: int
    run_id: str
    stage: str
    step_s: float
    history_rows: int
