"""Asset types: what a kind of equipment has (attributes, sensor roles with units and limits, derived signals,
allowed children), declared in YAML in the spirit of DTDL and OPC UA information models. Types extend types.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

from taehwa.core.errors import Location
from taehwa.core.timeutil import parse_duration
from taehwa.core.yamlio import line_of, plain

LEVELS = ("site", "area", "line", "equipment", "component")
ATTRIBUTE_KINDS = ("string", "number", "integer", "boolean", "date", "enum")
LIMIT_KEYS = ("low_alarm", "low_warning", "high_warning", "high_alarm")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
Where = str | Location  # a problem's place: a text (`body`, `asset x`), or file and line in a plant file
Problems = list[tuple[Where, str]]

# Built-in roots so a plant file can declare only its own equipment types.
BUILTIN_TYPES: dict[str, dict[str, Any]] = {
    "Site": {
        "level": "site",
        "description": "A plant site (a refinery, a car factory, a shipyard).",
        # where its owner places it on the city's map (taehwa/city), and its power demand where metered
        "attributes": {
            "latitude": {"type": "number", "unit": "deg"},
            "longitude": {"type": "number", "unit": "deg"},
            "complex": {"type": "string", "description": "the industrial complex it lies in"},
            "industry": {"type": "string", "description": "e.g. petrochemical, automotive"},
        },
        "sensors": {"power": {"unit": "kW", "description": "the site's electrical power demand"}},
    },
    "Area": {"level": "area", "description": "An area or unit of a site."},
    "Line": {"level": "line", "description": "A production line or train within an area."},
    "Equipment": {
        "level": "equipment",
        "description": "A piece of equipment.",
        "attributes": {
            "manufacturer": {"type": "string"},
            "model": {"type": "string"},
            "install_date": {"type": "date"},
        },
    },
    "Component": {"level": "component", "description": "A part of a piece of equipment."},
}


@dataclass(frozen=True)
class Attribute:
    """A typed attribute of an asset type."""

    name: str
    kind: str
    required: bool = False
    unit: str | None = None
    values: tuple[str, ...] = ()
    default: Any = None
    description: str | None = None

    def check(self, value: Any) -> str | None:
        """Why a value does not fit this attribute (None if it does)."""
        if self.kind == "string" and not isinstance(value, str):
            return f"attribute {self.name!r} must be text, got {value!r}"
        if self.kind == "number" and (
            isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
        ):
            return f"attribute {self.name!r} must be a finite number, got {value!r}"
        if self.kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
            return f"attribute {self.name!r} must be a whole number, got {value!r}"
        if self.kind == "boolean" and not isinstance(value, bool):
            return f"attribute {self.name!r} must be true or false, got {value!r}"
        if self.kind == "date":
            if isinstance(value, dt.date):
                return None
            try:
                dt.date.fromisoformat(str(value))
            except ValueError:
                return f"attribute {self.name!r} must be a date like 2019-04-01, got {value!r}"
        if self.kind == "enum" and value not in self.values:
            return f"attribute {self.name!r} must be one of {', '.join(self.values)}, got {value!r}"
        return None

    def to_dict(self) -> dict[str, Any]:
        """The YAML form."""
        out: dict[str, Any] = {"type": self.kind}
        for key in ("unit", "description", "default"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.required:
            out["required"] = True
        if self.values:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True)
class Limits:
    """Alarm and warning limits of a signal; any may be absent."""

    low_alarm: float | None = None
    low_warning: float | None = None
    high_warning: float | None = None
    high_alarm: float | None = None

    def state(self, value: float) -> str:
        """normal, warning or alarm for a value."""
        if (self.high_alarm is not None and value >= self.high_alarm) or (
            self.low_alarm is not None and value <= self.low_alarm
        ):
            return "alarm"
        if (self.high_warning is not None and value >= self.high_warning) or (
            self.low_warning is not None and value <= self.low_warning
        ):
            return "warning"
        return "normal"

    def merged(self, override: Limits) -> Limits:
        """These limits with an asset's own values taking precedence."""
        return Limits(
            *(getattr(override, k) if getattr(override, k) is not None else getattr(self, k) for k in LIMIT_KEYS)
        )

    def to_dict(self) -> dict[str, float]:
        """The YAML form (only limits that are set)."""
        return {k: getattr(self, k) for k in LIMIT_KEYS if getattr(self, k) is not None}


@dataclass(frozen=True)
class Signal:
    """A sensor role (bound to a measured tag) or a derived signal (written by models: health, anomaly score, RUL)."""

    name: str
    derived: bool = False
    unit: str | None = None
    description: str | None = None
    low: float | None = None  # engineering range
    high: float | None = None
    limits: Limits = field(default_factory=Limits)
    interval_s: float | None = None  # expected sampling interval, for staleness
    required: bool = False
    expr: str | None = None  # a calculated signal's expression (taehwa.analytics), derived signals only
    where: str | None = field(default=None, compare=False)  # where it was declared (file, line), for errors

    def to_dict(self) -> dict[str, Any]:
        """The YAML form."""
        out: dict[str, Any] = {}
        if self.unit is not None:
            out["unit"] = self.unit
        if self.description is not None:
            out["description"] = self.description
        if self.low is not None and self.high is not None:
            out["range"] = [self.low, self.high]
        if self.limits.to_dict():
            out["limits"] = self.limits.to_dict()
        if self.interval_s is not None:
            out["interval"] = f"{self.interval_s:g}s"
        if self.required:
            out["required"] = True
        if self.expr is not None:
            out["expr"] = self.expr
        return out


@dataclass(frozen=True)
class EventDecl:
    """An event template as declared on a type (start/end conditions, …), checked by taehwa.analytics."""

    name: str
    spec: dict[str, Any]
    where: str


@dataclass
class AssetType:
    """A type with everything inherited from its ancestors already merged in."""

    name: str
    level: str
    extends: str | None = None
    description: str | None = None
    attributes: dict[str, Attribute] = field(default_factory=dict)
    signals: dict[str, Signal] = field(default_factory=dict)
    children: tuple[str, ...] | None = None  # None: any child type
    ancestry: tuple[str, ...] = ()  # this type, then its parent, … up to a built-in root
    source: dict[str, Any] = field(default_factory=dict)  # as declared (for export)
    events: dict[str, EventDecl] = field(default_factory=dict)  # event templates, inherited ones included

    def is_a(self, type_name: str) -> bool:
        """Whether this type is `type_name` or extends it."""
        return type_name in self.ancestry


def _where(source: str, node: Any, key: str | None = None) -> Location:
    """The file and line a node (or its key) was read from; the file alone for a value built in code (JSON)."""
    return Location(source or None, line=line_of(node, key) or None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _parse_limits(raw: Any, where: Where, problems: Problems) -> Limits:
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        problems.append((where, "limits must be a mapping of low_alarm, low_warning, high_warning, high_alarm"))
        return Limits()
    values: dict[str, float | None] = {}
    for key, value in raw.items():
        if key not in LIMIT_KEYS:
            problems.append((where, f"unknown limit {key!r}; use {', '.join(LIMIT_KEYS)}"))
            continue
        number = _number(value)
        if number is None:
            problems.append((where, f"limit {key!r} must be a number, got {value!r}"))
        values[key] = number
    limits = Limits(**values)
    ordered = [
        v for v in (limits.low_alarm, limits.low_warning, limits.high_warning, limits.high_alarm) if v is not None
    ]
    if ordered != sorted(ordered):
        problems.append((where, "limits must rise: low_alarm ≤ low_warning ≤ high_warning ≤ high_alarm"))
    return limits


def parse_signal(name: str, raw: Any, *, derived: bool, where: Where, problems: Problems) -> Signal:
    """A sensor role or derived signal from its YAML mapping."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append((where, f"signal {name!r} must be a mapping (unit, range, limits, interval)"))
        return Signal(name, derived)
    known = {"unit", "description", "range", "limits", "interval", "required", *(("expr",) if derived else ())}
    for key in raw:
        if key not in known:
            problems.append((where, f"signal {name!r}: unknown key {key!r}; use {', '.join(sorted(known))}"))
    low = high = None
    if "range" in raw:
        rng = raw["range"]
        if (
            not isinstance(rng, list)
            or len(rng) != 2
            or _number(rng[0]) is None
            or _number(rng[1]) is None
            or float(rng[0]) >= float(rng[1])
        ):
            problems.append((where, f"signal {name!r}: range must be [low, high] with low < high, got {rng!r}"))
        else:
            low, high = float(rng[0]), float(rng[1])
    interval = None
    if raw.get("interval") is not None:
        try:
            interval = parse_duration(raw["interval"]) / 1e6
        except Exception:
            problems.append(
                (where, f"signal {name!r}: interval must be a duration like 1s or 5min, got {raw['interval']!r}")
            )
    unit, description, expr = raw.get("unit"), raw.get("description"), raw.get("expr")
    if expr is not None and not isinstance(expr, str):
        problems.append((where, f"signal {name!r}: expr must be a text, got {type(expr).__name__}"))
        expr = None
    return Signal(
        name,
        derived,
        None if unit is None else str(unit),
        None if description is None else str(description),
        low,
        high,
        _parse_limits(raw.get("limits"), where, problems),
        interval,
        bool(raw.get("required")),
        expr,
        str(where),  # as text: the analytics' checks quote it
    )


def _parse_attribute(name: str, raw: Any, where: Where, problems: Problems) -> Attribute:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        problems.append((where, f"attribute {name!r} must be a type name or a mapping with 'type'"))
        return Attribute(name, "string")
    kind = raw.get("type", "string")
    if kind not in ATTRIBUTE_KINDS:
        problems.append((where, f"attribute {name!r}: unknown type {kind!r}; use {', '.join(ATTRIBUTE_KINDS)}"))
        kind = "string"
    values = tuple(str(v) for v in raw.get("values", ()) or ())
    if kind == "enum" and not values:
        problems.append((where, f"attribute {name!r}: an enum needs 'values'"))
    attr = Attribute(
        name,
        kind,
        bool(raw.get("required", False)),
        raw.get("unit"),
        values,
        raw.get("default"),
        raw.get("description"),
    )
    if attr.default is not None and (msg := attr.check(attr.default)):
        problems.append((where, f"default: {msg}"))
    return attr


def resolve_types(declared: dict[str, Any], *, source: str) -> tuple[dict[str, AssetType], Problems]:
    """Resolve declared types (name → YAML mapping) over the built-in roots, merging inherited members."""
    problems: Problems = []
    raw_all: dict[str, Any] = {**BUILTIN_TYPES}
    for name, raw in declared.items():
        where = _where(source, declared, name)
        if not NAME_RE.match(name):
            problems.append((where, f"type name {name!r} must start with a letter and use letters, digits and _"))
        if name in BUILTIN_TYPES:
            problems.append((where, f"type {name!r} is built in; extend it instead"))
            continue
        if not isinstance(raw, dict):
            problems.append((where, f"type {name!r} must be a mapping"))
            continue
        raw_all[name] = raw
    resolved: dict[str, AssetType] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> AssetType | None:
        if name in resolved:
            return resolved[name]
        raw = raw_all[name]
        where = _where(source, declared, name) if name in declared else f"built-in type {name}"
        known = {"extends", "level", "description", "attributes", "sensors", "derived", "children", "events"}
        for key in raw:
            if key not in known:
                problems.append(
                    (_where(source, raw, key), f"type {name!r}: unknown key {key!r}; use {', '.join(sorted(known))}")
                )
        parent: AssetType | None = None
        extends = raw.get("extends")
        if extends is None and name not in BUILTIN_TYPES:
            extends = {"site": "Site", "area": "Area", "line": "Line", "component": "Component"}.get(
                str(raw.get("level", "")), "Equipment"
            )
        if extends is not None:
            if extends in chain:
                problems.append((where, f"type {name!r} extends itself through {' → '.join((*chain, extends))}"))
                return None
            if extends not in raw_all:
                problems.append((_where(source, raw, "extends"), f"type {name!r} extends unknown type {extends!r}"))
                return None
            parent = resolve(extends, (*chain, extends))
            if parent is None:
                return None
        level = raw.get("level", parent.level if parent else "equipment")
        if level not in LEVELS:
            problems.append((_where(source, raw, "level"), f"type {name!r}: level must be one of {', '.join(LEVELS)}"))
            level = "equipment"
        if parent is not None and level != parent.level:
            problems.append(
                (
                    _where(source, raw, "level"),
                    f"type {name!r} is at level {level!r} but extends {parent.name!r} at {parent.level!r}",
                )
            )
        t = AssetType(
            name,
            level,
            extends,
            raw.get("description") or (parent.description if parent else None),
            dict(parent.attributes) if parent else {},
            dict(parent.signals) if parent else {},
            parent.children if parent else None,
            (name, *(parent.ancestry if parent else ())),
            raw,
            dict(parent.events) if parent else {},
        )
        events = raw.get("events") or {}
        if not isinstance(events, dict):
            problems.append((_where(source, raw, "events"), f"type {name!r}: events must be a mapping"))
            events = {}
        for ev_name, ev_raw in events.items():
            ev_where = _where(source, events, ev_name)
            if not NAME_RE.match(str(ev_name)) or not isinstance(ev_raw, dict):
                problems.append(
                    (
                        ev_where,
                        f"event template {ev_name!r} must be a name (letters, digits, _) "
                        "mapped to start, end, max_duration, stats",
                    )
                )
                continue
            t.events[str(ev_name)] = EventDecl(str(ev_name), ev_raw, str(ev_where))
        for section, derived in (("sensors", False), ("derived", True)):
            members = raw.get(section) or {}
            if not isinstance(members, dict):
                problems.append((_where(source, raw, section), f"type {name!r}: {section} must be a mapping"))
                continue
            for sig_name, sig_raw in members.items():
                sig_where = _where(source, members, sig_name)
                if not NAME_RE.match(str(sig_name)):
                    problems.append((sig_where, f"signal name {sig_name!r} must use letters, digits and _"))
                t.signals[str(sig_name)] = parse_signal(
                    str(sig_name), sig_raw, derived=derived, where=sig_where, problems=problems
                )
        attrs = raw.get("attributes") or {}
        if not isinstance(attrs, dict):
            problems.append((_where(source, raw, "attributes"), f"type {name!r}: attributes must be a mapping"))
            attrs = {}
        for attr_name, attr_raw in attrs.items():
            t.attributes[str(attr_name)] = _parse_attribute(
                str(attr_name), attr_raw, _where(source, attrs, attr_name), problems
            )
        if "children" in raw:
            kids = raw["children"]
            if not isinstance(kids, list) or not all(isinstance(k, str) for k in kids):
                problems.append((_where(source, raw, "children"), f"type {name!r}: children must be a list of types"))
            else:
                for kid in kids:
                    if kid not in raw_all:
                        problems.append(
                            (
                                _where(source, raw, "children"),
                                f"type {name!r}: allowed child type {kid!r} is not declared",
                            )
                        )
                t.children = tuple(kids)
        resolved[name] = t
        return t

    for name in raw_all:
        resolve(name, (name,))
    return resolved, problems


def export_types(types: dict[str, AssetType]) -> dict[str, Any]:
    """Declared (non built-in) types as they were written, for export."""
    return {name: plain(t.source) for name, t in types.items() if name not in BUILTIN_TYPES}
