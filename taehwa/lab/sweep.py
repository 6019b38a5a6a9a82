"""A hyperparameter sweep: every combination of a grid of the spec's model parameters, each backtested the same
time-ordered way on the same dataset, fanned out over `fanout` (process pool or Ray). One dataset built once, many
small models: the shape of work that outgrows one core first."""

from __future__ import annotations

import itertools
from typing import Any

from taehwa.core.errors import InvalidInput
from taehwa.lab.datasets import Dataset
from taehwa.lab.models import KINDS, build
from taehwa.lab.spec import Spec
from taehwa.lab.validation import backtest

MAX_COMBINATIONS = 5000


def combinations(spec: Spec, grid: dict[str, Any]) -> list[dict[str, Any]]:
    """The grid's combinations over the spec's own parameters, each checked by building the model once."""
    if not isinstance(grid, dict) or not grid:
        raise InvalidInput(
            "a grid maps model parameters to lists of values, e.g. {num_leaves: [7, 15, 31]}", where="grid"
        )
    names = sorted(grid)
    for n in names:
        if not isinstance(grid[n], list) or not grid[n]:
            raise InvalidInput(f"grid.{n} must be a non-empty list of values", where=f"grid.{n}")
    count = 1
    for n in names:
        count *= len(grid[n])
    if count > MAX_COMBINATIONS:
        raise InvalidInput(f"the grid has {count} combinations; at most {MAX_COMBINATIONS}", where="grid")
    # each model on one thread, unless the spec or grid says otherwise: the fan-out is the parallelism (models that
    # each spread over every core, in several processes at once, fight for the cores: 10× slower, measured)
    base = dict(spec.model.params)
    if "threads" in KINDS[spec.model.kind].defaults:
        base.setdefault("threads", 1)
    out = [{**base, **dict(zip(names, values, strict=True))} for values in itertools.product(*(grid[n] for n in names))]
    for params in out[:1]:
        build(spec.model.kind, params, task=spec.task)  # an unknown parameter is named before anything runs
    return out


def job(shared: tuple[Spec, Dataset], params: dict[str, Any]) -> dict[str, Any]:
    """One combination's backtest figures (a pure function of the data and the parameters)."""
    spec, data = shared
    result = backtest(spec, data, spec.model.kind, params)
    return {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
