"""The shapes of what the lab's registry answers (a run in a list, a model version, a registry event, the gate's
verdict, a promotion, a rollback, a model card), as typed dictionaries: the JSON the API sends and the CLI and web
pages read, checked by mypy where they are used. A run's own document (`LabService.run`, `get_run`, `sweep`) is
the report kept beside the run, free-form JSON, and stays a plain mapping.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models, keys in
the order the service writes them. No `from __future__ import annotations` here, so which keys are required is
known at run time too. Figures read back from JSON are `int | float`: a plain `float` would turn 5 into 5.0.
"""

from typing import Any

from typing_extensions import TypedDict


class RunSummary(TypedDict):
    """A lab run in a list: what it trained, its primary figure and the baseline's, who ran it, how long it took."""

    run_id: str
    name: str
    mode: str
    task: str
    model: str
    primary: int | float | None
    baseline: int | float | None
    created_by: str
    created_at: str
    seconds: int | float


class RegisteredVersion(TypedDict):
    """A new candidate version, as registering a run answers."""

    name: str
    version: int
    stage: str
    run_id: str


class ModelVersion(TypedDict):
    """A version of a registered model: its stage, the asset type it is for, the run it came from."""

    name: str
    version: int
    stage: str
    asset_type: str | None
    run_id: str
    created_by: str
    created_at: str


class ModelEvent(TypedDict):
    """One step of a model's history: a registration, promotion, refusal or rollback, by whom, why."""

    version: int
    action: str
    actor: str
    reason: str | None
    detail: dict[str, Any]
    at: str


class ModelHistory(TypedDict):
    """A model's versions and its history."""

    versions: list[ModelVersion]
    history: list[ModelEvent]


class GateReport(TypedDict):
    """Whether a version may go to production, by which criterion, and why not."""

    passed: bool
    criterion: str
    metric: str
    text: str
    notes: list[str]
    reasons: list[str]


class PromotionGate(TypedDict):
    """The gate's verdict as a promotion records it (`forced`: promoted by an admin past a refusal)."""

    passed: bool
    forced: bool
    criterion: str
    judged: str
    notes: list[str]
    reasons: list[str]


class Promotion(TypedDict):
    """A version put in production, the one it replaced, and the gate's verdict."""

    name: str
    version: int
    stage: str
    previous: int | None
    gate: PromotionGate


Rollback = TypedDict("Rollback", {"name": str, "version": int, "stage": str, "from": int})
"""The version put back in production, and the one it replaced."""


class CardValidation(TypedDict):
    """How a version was validated: the split, the folds, its figures, the baseline's and production's."""

    split: Any
    folds: Any
    primary_metric: str
    metrics: dict[str, Any]
    baseline: Any
    production: Any


class ModelCard(TypedDict):
    """What a version is for, what it learnt from, how well it did against what, its limits and its history."""

    model: str
    version: int
    stage: str
    asset_type: str | None
    task: str
    description: str | None
    kind: str
    parameters: dict[str, Any]
    features: Any
    trained_by: str
    trained_at: str
    data: Any
    validation: CardValidation
    limitations: list[str]
    history: list[ModelEvent]
    report: str
