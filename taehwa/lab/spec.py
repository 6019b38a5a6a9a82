"""The declarative lab spec: which data, which task, which model, how to validate. A YAML or JSON document, the
same from the CLI (`taehwa lab train SPEC.yaml`), Python and HTTP; unknown keys are refused so a typo never silently
falls back to a default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taehwa.core.errors import InvalidInput, ValidationFailed
from taehwa.core.timeutil import parse_duration, to_us
from taehwa.lab.models import KINDS
from taehwa.lab.protocol import TASKS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Historian tags, or every sensor of the assets of a type / under a path, or a CSV/Parquet file, or the closed
    event frames of a template (one row per event: its duration and its statistics as the features)."""

    source: Literal["historian", "file", "events"] = "historian"
    template: str | None = Field(None, min_length=1, max_length=127)  # source: events — whose event frames
    tags: list[str] | None = None
    asset_type: str | None = None
    under: str | None = None
    signals: list[str] | None = None  # of each asset: default all its sensors
    start: str | None = None
    end: str | None = None
    step: str = "1m"
    method: Literal["previous", "linear"] = "linear"
    file: str | None = None
    time_column: str = "time"
    unit_column: str | None = None
    columns: list[str] | None = None
    target_column: str | None = None
    changepoint_column: str | None = None
    separator: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.source == "events":
            if not self.template:
                raise ValueError("data.template names the event template when data.source is events")
            if not self.start or not self.end:
                raise ValueError("data.start and data.end are needed for event data")
            if self.tags:
                raise ValueError("data.tags is not for events: name data.signals (whose statistics) instead")
            return self
        if self.source == "file":
            if not self.file:
                raise ValueError("data.file is needed when data.source is file")
            for key in ("start", "end"):
                if getattr(self, key) is not None:
                    try:
                        to_us(getattr(self, key), field=f"data.{key}")
                    except InvalidInput as exc:
                        raise ValueError(str(exc)) from None
        else:
            if not (self.tags or self.asset_type or self.under):
                raise ValueError("name data.tags, data.asset_type or data.under")
            if self.tags and (self.asset_type or self.under):
                raise ValueError("give data.tags or assets (asset_type/under), not both")
            if not self.start or not self.end:
                raise ValueError("data.start and data.end are needed for historian data")
        return self


class LabelSpec(_Strict):
    """Which labels make the target: interval kinds (anomaly, fault), a point kind (failure → RUL), or a value kind
    (lab samples → soft sensor); `forecast` targets a signal `horizon` rows ahead."""

    kinds: list[str] = Field(default_factory=lambda: ["anomaly"])
    # event frames of these templates as labels too (anomaly: inside one is 1; fault: the template's name is the
    # class), closed ones of the data's range
    events: list[Annotated[str, Field(min_length=1, max_length=127)]] = Field(default_factory=list, max_length=50)
    asset: str | None = None
    failure_kind: str = "failure"
    value_kind: str | None = None
    forecast_signal: str | None = None
    horizon: int = Field(1, ge=1, le=100_000)
    rul_clip: float | None = Field(125.0, gt=0, le=1e9)
    normal_class: str = "normal"


ROWS = Annotated[int, Field(ge=1, le=100_000)]  # a window or a lag, in rows
WINDOW_STATS = {"mean", "std", "min", "max"}  # need a window (slope one of 3 rows or more); ewm and cummean do not


class FeatureSpec(_Strict):
    """What the model sees; every number range-checked, and a spec that makes no feature at all is refused here
    (an empty feature matrix was a 500 deep in the model)."""

    windows: list[ROWS] = Field(default_factory=lambda: [1], max_length=20)
    stats: list[str] = Field(default_factory=lambda: ["mean"], max_length=20)
    lags: list[ROWS] = Field(default_factory=list, max_length=50)
    ewm_alpha: float = Field(0.1, gt=0.0, le=1.0)
    spectrum_bands: int = Field(0, ge=0, le=64)
    include_raw: bool = False
    include_position: bool = False
    condition_columns: list[str] = Field(default_factory=list, max_length=100)
    conditions: int = Field(1, ge=1, le=100)
    drop_flat: bool = True
    # a seasonal part taken away before the features (classical decomposition learnt on the training rows):
    # the period ("1d", "7d"; at least 1 minute, at most a year) and how many phases it is cut into
    season: str | None = Field(None, max_length=20)
    season_bins: int = Field(96, ge=2, le=10_080)

    @model_validator(mode="after")
    def _season(self) -> FeatureSpec:
        if self.season is not None:
            try:
                period = parse_duration(self.season, field="features.season")
            except InvalidInput as exc:
                raise ValueError(f"features.season: {exc.message}") from None
            if not 60_000_000 <= period <= 366 * 86_400_000_000:
                raise ValueError("features.season is a period of 1 minute to 366 days (for example 1d or 7d)")
        return self

    @model_validator(mode="after")
    def _some_feature(self) -> FeatureSpec:
        if self.spectrum_bands and not self.windows:
            raise ValueError("features.spectrum_bands needs features.windows (the bands are of the last window)")
        if self.spectrum_bands and self.spectrum_bands > self.windows[-1] // 2:
            raise ValueError(f"features.spectrum_bands is at most half the last window ({self.windows[-1] // 2})")
        windowed = (bool(self.windows) and bool(WINDOW_STATS & set(self.stats))) or (
            "slope" in self.stats and any(w >= 3 for w in self.windows)
        )
        if not (
            windowed
            or {"ewm", "cummean"} & set(self.stats)
            or self.lags
            or self.include_raw
            or self.include_position
            or self.spectrum_bands
        ):
            raise ValueError(
                "features make no feature: give windows with stats (mean, std, min, max, slope), "
                "stats ewm or cummean, lags, include_raw or spectrum_bands"
            )
        return self


class ModelSpec(_Strict):
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class SplitSpec(_Strict):
    """Time-ordered only: rolling-origin folds, a holdout at a point in time, folds of whole units for fleets, or
    the first `train_rows` of every unit (each unit its own model, as SKAB's protocol does)."""

    method: Literal["rolling", "holdout", "by_unit", "per_unit"] = "rolling"
    folds: int = Field(3, ge=1, le=20)
    train_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    train_rows: int = Field(400, ge=2, le=1_000_000_000)
    at: str | None = None  # holdout: learn before this time, judge from it (instead of train_fraction)
    normal_only: bool = True
    fit_on: Literal["all", "train"] = "all"  # train: the kept model learns from the split's training part only


class GateSpec(_Strict):
    """How the promotion gate judges an anomaly model. `auto`: by labelled anomalies when the data holds any, else
    by its false alarms on held-out normal running (`false_alarms`, also for a spec that says its data has no
    labelled anomalies): at most `false_alarms_per_day` alarm episodes a day and at most `max_alarm_share` of the
    normal running in alarm. An alarm episode counts once it has lasted `min_alarm_s` (as an alert rule's
    min_duration_s would wait)."""

    criterion: Literal["auto", "labelled", "false_alarms"] = "auto"
    false_alarms_per_day: float = Field(1.0, ge=0, le=1e6)
    max_alarm_share: float = Field(0.01, ge=0, le=1)
    min_alarm_s: float = Field(0.0, ge=0, le=1e7)


class AlarmSpec(_Strict):
    """Event-level decisions of an anomaly model (`taehwa.lab.alarms`, the same state machine as the live alert
    rules): the limit is calibrated on training normal running (out-of-fold scores where the training part allows)
    to at most `false_alarms_per_week` and at most `max_alarm_share` of that running in alarm; the alarm is raised
    once the score has stayed over it for `min_duration_s` (default 3 steps of the data) and stays raised for
    `quiet_s` after it falls back below the limit less the hysteresis (default 10 steps). `enabled: false` decides
    row by row (score over 1.0)."""

    enabled: bool = True
    false_alarms_per_week: float = Field(1.0, ge=0, le=1e5)
    min_duration_s: float | None = Field(None, ge=0, le=1e7)
    quiet_s: float | None = Field(None, ge=0, le=1e7)
    hysteresis_share: float = Field(0.1, ge=0, le=1)
    max_alarm_share: float = Field(0.01, ge=0, le=1)
    min_limit: float | None = Field(
        None, ge=0, le=1e9, description="The limit never below this (e.g. 1.0, the model's own control limit)"
    )
    calibrate_on: Literal["out_of_fold", "training"] = "out_of_fold"


class RegisterSpec(_Strict):
    name: str
    asset_type: str | None = None


class Spec(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    task: Literal["anomaly", "fault", "rul", "soft_sensor", "forecast"]
    description: str | None = None
    data: DataSpec
    labels: LabelSpec = Field(default_factory=LabelSpec)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    model: ModelSpec
    baseline: ModelSpec | None = None
    split: SplitSpec = Field(default_factory=SplitSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    alarm: AlarmSpec = Field(default_factory=AlarmSpec)
    register_as: RegisterSpec | None = None

    @model_validator(mode="after")
    def _model_fits_task(self) -> Spec:
        for where, m in (("model", self.model), ("baseline", self.baseline)):
            if m is None:
                continue
            cls = KINDS.get(m.kind)
            if cls is None:
                raise ValueError(f"{where}.kind {m.kind!r} is unknown; known: {', '.join(sorted(KINDS))}")
            if self.task not in cls.tasks:
                raise ValueError(f"{where}.kind {m.kind!r} does not do task {self.task!r}")
        assert self.task in TASKS
        return self


def parse_spec(doc: Any, *, source: str = "spec", lines: Any = None) -> Spec:
    """A Spec from a parsed document; every problem listed with where it is (its line too when `lines`, or `doc`,
    is the YAML document as read)."""
    if not isinstance(doc, dict):
        raise InvalidInput("a lab spec is a mapping (name, task, data, model, …)", where=source)
    try:
        return Spec.model_validate(doc)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, source, sep=":", doc=doc if lines is None else lines) from None


READY = Path(__file__).parent / "specs"


def ready_specs() -> list[str]:
    """Names of the specs that ship with Taehwa (for the demo plant)."""
    return sorted(p.stem for p in READY.glob("*.yaml"))


def load_spec(path: Path) -> Spec:
    """A Spec from a YAML or JSON file, or one of the ready specs by name."""
    from taehwa.core.yamlio import load_yaml, plain

    if not path.exists() and str(path) in ready_specs():
        path = READY / f"{path}.yaml"
    if not path.is_file():
        raise InvalidInput(f"no spec file at {path}", where=str(path))
    read = load_yaml(path.read_text(), source=path.name)
    spec = parse_spec(plain(read), source=path.name, lines=read)
    if spec.data.file and not Path(spec.data.file).is_absolute():
        spec.data.file = str((path.parent / spec.data.file).resolve())  # relative to the spec, not the shell
    return spec
