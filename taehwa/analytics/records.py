"""The shapes of what the analytics service answers (a plant file's check, a calculated tag's lineage), as typed
dictionaries: the JSON the API sends and the CLI reads, checked by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models, keys in
the order the service writes them. No `from __future__ import annotations` here, so which keys are required is
known at run time too.
"""

from typing import NotRequired

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
