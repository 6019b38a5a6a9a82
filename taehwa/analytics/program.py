"""A plant's analytics as one program: every calculated signal and event template of every type, resolved, with the
assets each runs on, grouped so that items reading the same inputs on the same assets share their rows.

`check_plant` is the check the twin runs on every new plant model (unknown names, units, cycles, templates), each
problem with its file and line; `build` is what the live engine and backfill run.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from taehwa.analytics.plan import Attr, Limit, P, Resolver, history_us, roles
from taehwa.analytics.records import CalcLineage
from taehwa.core.errors import InvalidInput, TaehwaError, ValidationFailed
from taehwa.core.names import RULE_NAME_PATTERN, label_kind_ok
from taehwa.core.timeutil import parse_duration
from taehwa.twin.model import Plant
from taehwa.twin.types import AssetType, EventDecl

MAX_EVENT_US = 366 * 24 * 3600 * 1_000_000
DEFAULT_MAX_EVENT = "1d"
TEMPLATE_KEYS = ("start", "end", "alert", "label", "max_duration", "stats", "reference", "description")
REFERENCE_KEYS = ("signal", "output", "band", "step")
MAX_REFERENCE_BAND = 100.0


@dataclass(frozen=True)
class Calc:
    """A calculated signal of a type."""

    type: str
    signal: str
    expr: str
    plan: P
    unit: str | None
    history_us: int
    version: str  # a short hash of the expression: lineage of every point written

    def lineage(self, inputs: list[str]) -> CalcLineage:
        """What a calculated tag's points come from."""
        return {
            "calculated": True,
            "expr": self.expr,
            "version": self.version,
            "type": self.type,
            "signal": self.signal,
            "inputs": inputs,
        }


@dataclass(frozen=True)
class RefDecl:
    """A template's live comparison: its events' `signal` scored against the template's reference profile (set by
    call from chosen events), the deviation written as the type's derived signal `output`."""

    signal: str
    output: str
    band: float
    step_us: int


@dataclass(frozen=True)
class Template:
    """An event template of a type: opens when `start` holds (for `held_us`), closes when `end` holds (or when
    `start` no longer does), and never stays open longer than `max_us`. Opened instead by an alert of rule
    `source` (closed when it resolves) or a label of kind `source` (over its span) when `opener` says so."""

    type: str
    name: str
    start: P | None
    held_us: int
    end: P | None
    max_us: int
    stats: tuple[str, ...]
    description: str | None
    version: str
    history_us: int
    opener: str = "condition"  # condition | alert | label
    source: str | None = None  # the alert rule or label kind that opens it
    reference: RefDecl | None = None


@dataclass
class Group:
    """Calculated signals and templates of one type that read the same inputs, with the assets they run on."""

    type: str
    calcs: list[Calc]
    templates: list[Template]
    assets: list[str]
    inputs: dict[str, list[str]]  # asset → the tags its rows are made of
    history_us: int = 0
    outputs: Any = field(default=None, repr=False, compare=False)  # (tags, bound?, asset → position), when built


class PlantBinder:
    """Binds plans to one plant's assets: tags, numbers (attributes, limits), children of a type."""

    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self._tags: dict[str, dict[str, str]] = {}
        self._members: dict[tuple[str, str, bool], list[str]] = {}

    def tag(self, asset: str, role: str) -> str | None:
        """The tag of an asset's signal."""
        tags = self._tags.get(asset)
        if tags is None:
            a = self.plant.assets.get(asset)
            tags = self.plant.signal_tags(a) if a is not None else {}
            self._tags[asset] = tags
        return tags.get(role)

    def number(self, asset: str, plan: Attr | Limit) -> float:
        """An attribute (or its default) or the limit in force, as a number (NaN when absent)."""
        a = self.plant.assets.get(asset)
        if a is None:
            return math.nan
        if isinstance(plan, Limit):
            value = getattr(self.plant.limits_of(a, plan.signal), plan.key)
        else:
            value = a.attributes.get(plan.name)
            t = self.plant.types.get(a.type)
            if value is None and t is not None and plan.name in t.attributes:
                value = t.attributes[plan.name].default
        if isinstance(value, bool):
            return float(value)
        return float(value) if isinstance(value, int | float) else math.nan

    def members(self, asset: str, type_name: str, deep: bool) -> list[str]:
        """Children (or all descendants) of an asset of a type or of a type extending it."""
        key = (asset, type_name, deep)
        got = self._members.get(key)
        if got is None:
            found = self.plant.subtree(asset)[1:] if deep else self.plant.children(asset)
            got = [m.path for m in found if (t := self.plant.types.get(m.type)) is not None and t.is_a(type_name)]
            self._members[key] = got
        return got

    def input_tags(self, asset: str, plans: list[P]) -> list[str]:
        """Every tag the plans read on an asset (its own signals and its members')."""
        out: set[str] = set()
        for plan in plans:
            own, kids = roles(plan)
            for role in own:
                if (tag := self.tag(asset, role)) is not None:
                    out.add(tag)
            for type_name, deep, role in kids:
                for member in self.members(asset, type_name, deep):
                    if (tag := self.tag(member, role)) is not None:
                        out.add(tag)
        return sorted(out)


@dataclass
class Program:
    """A tenant's analytics, built from its plant model."""

    plant: Plant
    binder: PlantBinder
    groups: list[Group] = field(default_factory=list)
    outputs: dict[str, tuple[str, Calc]] = field(default_factory=dict)  # calculated tag → (asset, calc)
    templates: dict[tuple[str, str], Template] = field(default_factory=dict)  # (type, name) → template

    def calcs_of(self, asset: str) -> dict[str, Calc]:
        """The calculated signals of one asset."""
        return {c.signal: c for g in self.groups if asset in g.inputs for c in g.calcs}


def _version(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]


def _template(r: Resolver, t: AssetType, decl: EventDecl) -> Template | None:
    spec, where = decl.spec, decl.where
    before = len(r.problems)
    for key in spec:
        if key not in TEMPLATE_KEYS:
            r.problems.append(
                (where, f"event template {decl.name!r}: unknown key {key!r}; use {', '.join(TEMPLATE_KEYS)}")
            )
    start_text, end_text = spec.get("start"), spec.get("end")
    opener, source = _opener(r, decl)
    if opener is None:
        return None
    start = end = None
    if opener == "condition":
        if not isinstance(start_text, str):
            r.problems.append(
                (where, f"event template {decl.name!r} needs a start condition (a text), an alert or a label")
            )
            return None
        start = r.condition(t, start_text, f"{where} (event {decl.name}, start)")
        if end_text is not None:
            if not isinstance(end_text, str):
                r.problems.append((where, f"event template {decl.name!r}: end must be a condition (a text)"))
            else:
                end = r.condition(t, end_text, f"{where} (event {decl.name}, end)")
    max_text = spec.get("max_duration", DEFAULT_MAX_EVENT)
    max_us = 0
    with contextlib.suppress(InvalidInput):
        max_us = int(parse_duration(str(max_text).replace("min", "m"), field="max_duration"))
    if not 0 < max_us <= MAX_EVENT_US:
        r.problems.append(
            (where, f"event template {decl.name!r}: max_duration must be a duration up to 366d, got {max_text!r}")
        )
    stats = spec.get("stats", [])
    if not isinstance(stats, list) or not all(isinstance(s, str) for s in stats):
        r.problems.append((where, f"event template {decl.name!r}: stats must be a list of signal names"))
        stats = []
    for s in stats:
        if s not in t.signals:
            r.problems.append(
                (
                    where,
                    f"event template {decl.name!r}: stats names unknown signal {s!r}; "
                    f"{t.name} has {', '.join(sorted(t.signals)[:30]) or 'none'}",
                )
            )
    ref = _reference(r, t, decl)
    if (opener == "condition" and start is None) or (end_text is not None and end is None):
        return None
    if len(r.problems) > before:
        return None
    if end is not None and end.held_us:
        r.problems.append((where, f"event template {decl.name!r}: 'for' belongs in the start condition"))
        return None
    desc = spec.get("description")
    hist = max(history_us(start.plan) if start else 0, history_us(end.plan) if end else 0)
    return Template(
        t.name,
        decl.name,
        start.plan if start else None,
        start.held_us if start else 0,
        end.plan if end else None,
        max_us,
        tuple(stats),
        str(desc) if desc is not None else None,
        _version(str(start_text), str(end_text), str(max_us), ",".join(stats), opener, str(source)),
        hist,
        opener,
        source,
        ref,
    )


def _opener(r: Resolver, decl: EventDecl) -> tuple[str | None, str | None]:
    """What opens a template's events: its start condition, an alert rule (by name) or a label kind; one of them."""
    spec, where = decl.spec, decl.where
    given = [k for k in ("start", "alert", "label") if spec.get(k) is not None]
    if len(given) > 1:
        r.problems.append((where, f"event template {decl.name!r}: give one of start, alert or label, not {given}"))
        return None, None
    if not given or given == ["start"]:
        return "condition", None
    key = given[0]
    if spec.get("end") is not None:
        closes = "the alert resolves" if key == "alert" else "the label's span ends"
        r.problems.append((where, f"event template {decl.name!r}: an {key} event has no end condition ({closes})"))
        return None, None
    name = spec[key]
    if key == "alert" and not (isinstance(name, str) and RULE_NAME_PATTERN.match(name)):
        r.problems.append(
            (where, f"event template {decl.name!r}: alert must name an alert rule (lower-case id), got {name!r}")
        )
        return None, None
    if key == "label" and not (isinstance(name, str) and label_kind_ok(name)):
        r.problems.append(
            (
                where,
                f"event template {decl.name!r}: label must name a label kind (1-64 letters, digits, - _ .), "
                f"got {name!r}",
            )
        )
        return None, None
    return key, str(name)


def _reference(r: Resolver, t: AssetType, decl: EventDecl) -> RefDecl | None:
    """A template's `reference: {signal, output, band, step}`, checked against its type."""
    raw, where = decl.spec.get("reference"), decl.where
    if raw is None:
        return None
    what = f"event template {decl.name!r}: reference"
    if not isinstance(raw, dict):
        r.problems.append((where, f"{what} must be a mapping of {', '.join(REFERENCE_KEYS)}"))
        return None
    before = len(r.problems)
    for key in raw:
        if key not in REFERENCE_KEYS:
            r.problems.append((where, f"{what}: unknown key {key!r}; use {', '.join(REFERENCE_KEYS)}"))
    signal, output = raw.get("signal"), raw.get("output")
    if not isinstance(signal, str) or signal not in t.signals:
        r.problems.append(
            (where, f"{what} names unknown signal {signal!r}; {t.name} has {', '.join(sorted(t.signals)[:30])}")
        )
    out_spec = t.signals.get(output) if isinstance(output, str) else None
    if out_spec is None or not out_spec.derived or out_spec.expr is not None:
        r.problems.append(
            (
                where,
                f"{what}: output {output!r} must be a derived signal of {t.name} without an expr "
                "(where the deviation is written)",
            )
        )
    elif output == signal:
        r.problems.append((where, f"{what}: output must differ from the signal scored"))
    band = raw.get("band", 3.0)
    if isinstance(band, bool) or not isinstance(band, int | float) or not 0 < band <= MAX_REFERENCE_BAND:
        r.problems.append((where, f"{what}: band must be a number above 0 and at most 100, got {band!r}"))
    step_us = 0
    with contextlib.suppress(InvalidInput):
        step_us = int(parse_duration(str(raw.get("step", "1s")).replace("min", "m"), field="step"))
    if step_us <= 0:
        r.problems.append((where, f"{what}: step must be a positive duration, got {raw.get('step')!r}"))
    if len(r.problems) > before:
        return None
    return RefDecl(str(signal), str(output), float(band), step_us)


def _resolve_type(r: Resolver, t: AssetType) -> tuple[list[Calc], list[Template]]:
    calcs = []
    for name, spec in t.signals.items():
        if spec.derived and spec.expr is not None:
            got = r.calc(t, name)
            if got is not None:
                plan, _ = got
                calcs.append(
                    Calc(
                        t.name, name, spec.expr, plan, spec.unit, history_us(plan), _version(spec.expr, spec.unit or "")
                    )
                )
    templates = [tp for decl in t.events.values() if (tp := _template(r, t, decl)) is not None]
    return calcs, templates


def check_plant(plant: Plant) -> list[tuple[str, str]]:
    """Every problem of a plant's calculated signals and event templates (the twin's extra check)."""
    r = Resolver(plant.types)
    for t in plant.types.values():
        _resolve_type(r, t)
    seen: set[tuple[str, str]] = set()
    return [p for p in r.problems if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def build(plant: Plant) -> Program:
    """The program of a plant (ValidationFailed if any of its analytics has a problem)."""
    r = Resolver(plant.types)
    prog = Program(plant, PlantBinder(plant))
    by_type: dict[str, list[str]] = {}
    for path, asset in plant.assets.items():
        by_type.setdefault(asset.type, []).append(path)
    for type_name, assets in by_type.items():
        t = plant.types.get(type_name)
        if t is None:
            continue
        calcs, templates = _resolve_type(r, t)
        for tp in templates:
            prog.templates[(type_name, tp.name)] = tp
        keyed: dict[tuple[Any, ...], Group] = {}
        items: list[Calc | Template] = [*calcs, *(tp for tp in templates if tp.start is not None)]
        for item in items:
            plans = [item.plan] if isinstance(item, Calc) else [p for p in (item.start, item.end) if p is not None]
            own, kids = set(), set()
            for p in plans:
                o, k = roles(p)
                own |= o
                kids |= k
            key = (tuple(sorted(own)), tuple(sorted(kids)))
            g = keyed.get(key)
            if g is None:
                g = keyed[key] = Group(
                    type_name, [], [], list(assets), {a: prog.binder.input_tags(a, plans) for a in assets}
                )
            if isinstance(item, Calc):
                g.calcs.append(item)
            else:
                g.templates.append(item)
            g.history_us = max(g.history_us, item.history_us)
        for g in keyed.values():
            g.assets = [a for a in g.assets if g.inputs[a]]  # nothing to read: nothing to compute
            prog.groups.append(g)
            for c in g.calcs:
                for a in g.assets:
                    tag = prog.binder.tag(a, c.signal)
                    if tag is not None:
                        prog.outputs[tag] = (a, c)
    if r.problems:
        raise ValidationFailed(r.problems)
    return prog


class ProgramCache:
    """Each tenant's program, built once per plant model (a new model object, a new program) and shared by the
    live engine and the service's other parts, so a plant's analytics are built and held once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_tenant: dict[str, tuple[Plant, Program | None, TaehwaError | None]] = {}

    def get(self, tenant: str, plant: Plant) -> tuple[Program | None, TaehwaError | None]:
        """The tenant's program for this plant, or None and why it cannot be built."""
        with self._lock:
            got = self._by_tenant.get(tenant)
            if got is not None and got[0] is plant:  # the model held: its id cannot be reused
                return got[1], got[2]
        try:
            prog: Program | None = build(plant)
            err: TaehwaError | None = None
        except TaehwaError as exc:
            prog, err = None, exc
        with self._lock:
            self._by_tenant[tenant] = (plant, prog, err)
        return prog, err
