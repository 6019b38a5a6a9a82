"""A challenge's definition (YAML, checked strictly) and its data cut into parts: a public training part with labels,
inputs to predict (a validation part scored on the public board while the challenge runs, and a hidden test part
scored only at the end), and the hidden labels of both. Each part is a time split: the model always predicts
later than it learnt."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taehwa.core.errors import InvalidInput, ValidationFailed
from taehwa.lab.spec import DataSpec, LabelSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reference(_Strict):
    """A figure for comparison shown on the board: a published result, with where it was published."""

    name: str
    score: float
    source: str


class Limits(_Strict):
    seconds: float = Field(300.0, gt=0, le=3600)
    memory_mb: int = Field(3072, ge=256, le=65536)
    daily: int = Field(5, ge=1, le=1000)  # submissions per participant per UTC day


class Source(_Strict):
    """Where the data comes from: a ready benchmark in ../shared/data, or the owner's historian (pseudonymised
    through a sharing grant)."""

    builder: Literal["skab", "cmapss", "tep", "historian"]
    subset: str | None = None  # C-MAPSS: FD001…FD004
    validation_from: str | None = None  # time splits: inputs from here on are the validation part …
    test_from: str | None = None  # … and from here on the hidden test part
    validation_units: int | None = None  # C-MAPSS: how many test engines form the validation part
    data: DataSpec | None = None  # historian: which tags and range
    labels: LabelSpec | None = None
    grant_days: float = Field(365.0, gt=0, le=3650)

    @model_validator(mode="after")
    def _complete(self) -> Source:
        if self.builder in ("skab", "historian") and not (self.validation_from and self.test_from):
            raise ValueError(f"source.validation_from and source.test_from are needed for {self.builder}")
        if self.builder == "historian" and (self.data is None or not self.data.tags):
            raise ValueError("a historian challenge names its tags in source.data.tags")
        return self


class Definition(_Strict):
    id: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9\-]*$")
    title: dict[str, str]
    summary: dict[str, str] = Field(default_factory=dict)
    task: Literal["anomaly", "fault", "rul", "soft_sensor"]
    source: Source
    inputs_public: bool = False  # may participants download the inputs and submit predictions?
    closes: str  # ISO time: the board turns to the hidden scores then
    audience: list[str] | None = None  # tenants whose members may take part; None: every signed-in user
    limits: Limits = Field(default_factory=Limits)
    published: list[Reference] = Field(default_factory=list)
    published_note: dict[str, str] | None = None  # en, ko
    # a file in the definition's folder (relative, never climbing out of it): the platform's own entry, run like
    # any other
    baseline: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*(\.?[A-Za-z0-9_/\-]+)*$")
    normal_class: str = "normal"
    # columns the leak probe may find informative, each with the reason (en, ko) the board shows; only a row's place
    # in its unit (position_in_unit) may be named, where a benchmark's protocol needs whole runs
    known_leaks: dict[Literal["position_in_unit"], dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _languages(self) -> Definition:
        missing = [lang for lang in ("en", "ko") if not self.title.get(lang)]
        if missing:
            raise ValueError(f"title needs English and Korean (missing: {', '.join(missing)})")
        for column, reason in self.known_leaks.items():
            if not (reason.get("en") and reason.get("ko")):
                raise ValueError(f"known_leaks.{column} needs its reason in English and Korean")
        closes_at(self.closes)
        return self


def closes_at(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"closes: {text!r} is not an ISO date and time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_definition(doc: Any, source: str = "challenge", *, lines: Any = None) -> Definition:
    """A challenge definition checked; each problem named by its field, and its line when `lines` (or `doc`) is the
    YAML document as read, lines kept."""
    if not isinstance(doc, dict):
        raise InvalidInput("a challenge is a mapping (id, title, task, source, closes, …)", where=source)
    try:
        return Definition.model_validate(doc)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, source, sep=":", doc=doc if lines is None else lines) from None


READY = Path(__file__).parent / "challenges"


def ready_names() -> list[str]:
    """The challenges that ship with Taehwa, built from ../shared/data."""
    return sorted(p.stem for p in READY.glob("*.yaml"))


def load_definition(path_or_name: str | Path) -> tuple[Definition, Path]:
    """A definition from a YAML file, or a ready one by name; with the folder its baseline file lies in."""
    from taehwa.core.yamlio import load_yaml, plain

    path = Path(path_or_name)
    if not path.exists() and str(path_or_name) in ready_names():
        path = READY / f"{path_or_name}.yaml"
    if not path.is_file():
        raise InvalidInput(f"no challenge file at {path} (ready ones: {', '.join(ready_names())})", where=str(path))
    doc = load_yaml(path.read_text(), source=path.name)
    return parse_definition(plain(doc), source=path.name, lines=doc), path.parent
