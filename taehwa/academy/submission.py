"""What a participant may submit, checked before anything runs: predictions for the inputs (CSV or Parquet), a model
spec (the lab's features and model, trained by Taehwa next to the data), or a Python file with a class `Model`
(`fit(X, y)`, `predict(X)`), trained in the sandbox. Every problem is named with where it is."""

from __future__ import annotations

import ast
import io
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taehwa.core.errors import InvalidInput, ValidationFailed
from taehwa.lab.spec import FeatureSpec, ModelSpec

KINDS = ("predictions", "spec", "python")
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024
MAX_CODE_BYTES = 1024 * 1024
MAX_SPEC_BYTES = 64 * 1024  # a spec is a few lines of features and model parameters
MAX_SPEC_DEPTH = 20  # nesting of mappings and lists in a spec
MAX_SPEC_EVENTS = 20_000  # scalars, mappings and lists in all


class SpecSubmission(BaseModel):
    """A model the lab knows how to build: window features and a model kind with its parameters."""

    model_config = ConfigDict(extra="forbid")
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    model: ModelSpec
    normal_only: bool = True  # anomaly detectors learn from the rows labelled normal only


def parse_spec_submission(text: str, task: str | None = None) -> SpecSubmission:
    """A spec submission from YAML or JSON text, checked for size, depth and aliases before it is loaded."""
    check_spec_text(text)
    from taehwa.core.yamlio import load_yaml, plain
    from taehwa.lab.models import KINDS as MODEL_KINDS

    read = load_yaml(text, source="submission")  # lines kept, for where a problem is
    doc = plain(read)
    if not isinstance(doc, dict):
        raise InvalidInput("a spec submission is a mapping with features and model", where="submission")
    try:
        sub = SpecSubmission.model_validate(doc)
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "submission", sep=":", doc=read) from None
    cls = MODEL_KINDS.get(sub.model.kind)
    if cls is None:
        raise InvalidInput(
            f"model.kind {sub.model.kind!r} is unknown; known: {', '.join(sorted(MODEL_KINDS))}",
            where="submission:model.kind",
        )
    if task is not None and task not in cls.tasks:
        raise InvalidInput(f"model.kind {sub.model.kind!r} does not do task {task!r}", where="submission:model.kind")
    return sub


def check_spec_text(text: str) -> None:
    """Refuse a spec before anything is built from it when it is too big, nests too deep or uses aliases (a
    454-byte "billion laughs" of nested aliases would expand to gigabytes): a walk over the parser's events, which
    never expands an alias, costs microseconds per event and stops at the first excess."""
    import yaml

    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise InvalidInput(
            f"the spec is {size} bytes; a spec submission is at most {MAX_SPEC_BYTES}", where="submission"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = events = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            line = f"submission:{event.start_mark.line + 1}" if event.start_mark is not None else "submission"
            events += 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise InvalidInput(
                    "anchors and aliases (&name, *name) are not allowed in a spec submission", where=line
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_SPEC_DEPTH:
                    raise InvalidInput(f"the spec nests deeper than {MAX_SPEC_DEPTH} levels", where=line)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if events > MAX_SPEC_EVENTS:
                raise InvalidInput(f"the spec has more than {MAX_SPEC_EVENTS} values", where=line)
    except yaml.YAMLError as exc:  # the problem and its line only: the parser's own text quotes the document
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "it could not be parsed"
        raise InvalidInput(
            f"not valid YAML or JSON: {problem}",
            where=f"submission:{mark.line + 1}" if mark is not None else "submission",
        ) from None


def check_python(code: bytes) -> str:
    """The text of a Python submission, refused at once when it is not Python or defines no class Model."""
    if len(code) > MAX_CODE_BYTES:
        raise InvalidInput(
            f"the file is {len(code)} bytes; code submissions are at most {MAX_CODE_BYTES}", where="submission"
        )
    try:
        text = code.decode("utf-8")
        tree = ast.parse(text, filename="submission.py")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the file is not UTF-8 text (byte {exc.start})", where="submission") from None
    except SyntaxError as exc:
        raise InvalidInput(f"not valid Python: {exc.msg}", where=f"submission.py:{exc.lineno}") from None
    if not any(isinstance(n, ast.ClassDef) and n.name == "Model" for n in tree.body):
        raise InvalidInput("define a class named Model with fit(X, y) and predict(X)", where="submission.py")
    return text


def read_predictions(data: bytes, filename: str | None = None) -> pd.DataFrame:
    """A predictions table (columns `row`, `prediction`) from CSV or Parquet bytes."""
    if len(data) > MAX_SUBMISSION_BYTES:
        raise InvalidInput(f"the file is {len(data)} bytes; at most {MAX_SUBMISSION_BYTES}", where="submission")
    where = filename or "predictions"
    if data[:4] == b"PAR1":
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:
            raise InvalidInput(f"not a readable Parquet file ({exc})", where=where) from None
    else:
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype={"prediction": str})
        except Exception as exc:
            raise InvalidInput(f"not a readable CSV file ({exc})", where=where) from None
    missing = [c for c in ("row", "prediction") if c not in frame.columns]
    if missing:
        raise InvalidInput(f"column {missing[0]!r} is missing; the file needs columns row and prediction", where=where)
    return frame[["row", "prediction"]]


Task = Literal["anomaly", "fault", "rul", "soft_sensor", "forecast"]


def check_predictions(
    frame: pd.DataFrame, rows: np.ndarray, task: str, classes: list[str] | None, where: str = "predictions"
) -> pd.Series:
    """The predictions as one value per input row (indexed by row id), or InvalidInput naming the first bad row.
    Anomaly flags are 0/1 (or true/false); fault classes must be among the challenge's classes; values are
    finite numbers."""
    ids = pd.to_numeric(frame["row"], errors="coerce")
    bad = np.flatnonzero(ids.isna().to_numpy() | (ids.to_numpy(float) % 1 != 0))
    if len(bad):
        raise InvalidInput(
            f"row id {frame['row'].iloc[bad[0]]!r} is not a whole number", where=f"{where}: line {bad[0] + 2}"
        )
    ids = ids.astype("int64")
    dup = ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InvalidInput(f"row {int(ids.iloc[i])} is predicted twice", where=f"{where}: line {i + 2}")
    expected = pd.Index(rows)
    extra = pd.Index(ids).difference(expected)
    if len(extra):
        raise InvalidInput(f"row {int(extra[0])} is not one of the inputs", where=where)
    lacking = expected.difference(pd.Index(ids))
    if len(lacking):
        raise InvalidInput(
            f"{len(lacking)} input rows have no prediction (the first: row {int(lacking[0])})", where=where
        )
    raw = pd.Series(frame["prediction"].to_numpy(), index=ids.to_numpy())
    if task == "fault":
        values = raw.astype(str).str.strip()
        known = set(classes or [])
        unknown = ~values.isin(known) if known else pd.Series(False, index=values.index)
        if unknown.any():
            first = values[unknown].iloc[0]
            raise InvalidInput(
                f"{first!r} is not a class of this challenge; classes: {', '.join(sorted(known))}",
                where=f"{where}: row {int(values[unknown].index[0])}",
            )
        return values.loc[rows]
    text = raw.astype(str).str.strip().str.lower()
    if task == "anomaly":
        text = text.replace({"true": "1", "false": "0", "1.0": "1", "0.0": "0"})
        ok = text.isin(["0", "1"])
        if not ok.all():
            raise InvalidInput(
                f"{raw[~ok].iloc[0]!r} is not an anomaly flag (0 or 1)", where=f"{where}: row {int(raw[~ok].index[0])}"
            )
        return text.astype(int).loc[rows]
    nums = pd.to_numeric(raw, errors="coerce").astype(float)
    bad_num = ~np.isfinite(nums.to_numpy())
    if bad_num.any():
        i = int(np.flatnonzero(bad_num)[0])
        raise InvalidInput(f"{raw.iloc[i]!r} is not a finite number", where=f"{where}: row {int(raw.index[i])}")
    return nums.loc[rows]
