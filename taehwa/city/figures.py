"""The cross-company figures: what each company's value of a figure is, over a subset of its assets (a complex's
sites, an industry's, a type's assets). Computed inside the platform from the company's own twin, alerts, models
and runs; only the gate in `release` lets an aggregate of them out.

- data_completeness (%): measured signals with a fresh, good value now, of those bound to tags;
- alarm_share (%): assets in warning or alarm now, of those with signals;
- alerts_per_asset_30d: alerts raised in the last 30 days per asset with signals (sensitive);
- validated_gain (%): production models' validation figure against their baseline, as improvement (sensitive);
- models_in_production: enabled deployments on the assets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taehwa.city.release import Figure
from taehwa.lab.validation import lower_is_better
from taehwa.live.records import AlertRecord
from taehwa.twin.model import Plant

WINDOW_DAYS = 30


@dataclass
class Inputs:
    """One company's data the figures read (gathered once per request, inside the platform)."""

    tenant: str
    plant: Plant
    own_states: dict[str, str]  # asset → own state
    signals: dict[str, list[str]]  # asset → the states of its measured, bound signals
    alerts: list[AlertRecord]  # raised in the window
    deployments: list[Any]  # enabled deployments (with .covers(plant, path) and .model/.version)
    gains: dict[tuple[str, int | None], float] = field(default_factory=dict)  # production (model, version) → gain %


Compute = Callable[[Inputs, list[str]], float | None]


def _with_signals(inp: Inputs, paths: list[str]) -> list[str]:
    return [p for p in paths if inp.signals.get(p)]


def data_completeness(inp: Inputs, paths: list[str]) -> float | None:
    states = [s for p in paths for s in inp.signals.get(p, [])]
    if not states:
        return None
    return 100.0 * sum(s not in ("unknown", "stale") for s in states) / len(states)


def alarm_share(inp: Inputs, paths: list[str]) -> float | None:
    assets = _with_signals(inp, paths)
    if not assets:
        return None
    return 100.0 * sum(inp.own_states.get(p) in ("warning", "alarm") for p in assets) / len(assets)


def alerts_per_asset(inp: Inputs, paths: list[str]) -> float | None:
    assets = _with_signals(inp, paths)
    if not assets:
        return None
    inside = set(paths)
    return sum(1 for a in inp.alerts if a.get("asset") in inside) / len(assets)


def _covering(inp: Inputs, paths: list[str]) -> list[Any]:
    return [d for d in inp.deployments if any(d.covers(inp.plant, p) for p in paths)]


def models_in_production(inp: Inputs, paths: list[str]) -> float | None:
    return float(len(_covering(inp, paths))) if paths else None


def validated_gain(inp: Inputs, paths: list[str]) -> float | None:
    gains = [inp.gains[(d.model, d.version)] for d in _covering(inp, paths) if (d.model, d.version) in inp.gains]
    return sum(gains) / len(gains) if gains else None


def gain_of(run: dict[str, Any]) -> float | None:
    """A run's validation figure against its baseline, as an improvement in % (positive is better)."""
    metric = run.get("primary_metric")
    ours = (run.get("metrics") or {}).get(metric)
    base = ((run.get("baseline") or {}).get("metrics") or {}).get(metric)
    if not isinstance(ours, int | float) or not isinstance(base, int | float) or base == 0:
        return None
    change = (base - ours) if lower_is_better(str(metric)) else (ours - base)
    return max(-100.0, min(1000.0, 100.0 * change / abs(base)))


@dataclass(frozen=True)
class FigureSpec:
    """A figure: how the gate treats it, its unit and how a company's value is computed."""

    gate: Figure
    unit: str
    compute: Compute
    higher_is_better: bool


FIGURES: dict[str, FigureSpec] = {
    "data_completeness": FigureSpec(Figure("data_completeness", 0.0, 100.0, False), "%", data_completeness, True),
    "alarm_share": FigureSpec(Figure("alarm_share", 0.0, 100.0, False), "%", alarm_share, False),
    "alerts_per_asset_30d": FigureSpec(
        Figure("alerts_per_asset_30d", 0.0, 50.0, True), "/asset", alerts_per_asset, False
    ),
    "validated_gain": FigureSpec(Figure("validated_gain", -100.0, 200.0, True), "%", validated_gain, True),
    "models_in_production": FigureSpec(
        Figure("models_in_production", 0.0, 50.0, False), "", models_in_production, True
    ),
}
DIMENSIONS = ("city", "complex", "industry", "asset_type")
