"""Units as products of named factors with powers ("m3/h" is m3¹·h⁻¹), enough to refuse `flow + pressure` or
an efficiency declared "1" that comes out in kW: additions, comparisons, min/max and branches need equal units;
products and quotients combine them. A number multiplying a signal is taken as a conversion factor, so the product's
unit becomes unknown and is not checked (`flow * head * 9.81 / (power * 1000)` is the engineer's to get right).
"""

from __future__ import annotations

import re

Unit = tuple[tuple[str, int], ...]
"""Sorted (factor, power) pairs; () is dimensionless."""

DIMENSIONLESS: Unit = ()
_ONE = {"", "1", "-", "ratio", "fraction"}
_FACTOR = re.compile(r"^([A-Za-z%°µ][A-Za-z0-9%°µ_]*?)(?:\^?(-?\d+))?$")


def parse_unit(text: str | None) -> Unit | None:
    """A unit from its declared text (None when undeclared or not understood: not checked)."""
    if text is None:
        return None
    text = text.strip()
    if text in _ONE:
        return DIMENSIONLESS
    powers: dict[str, int] = {}
    parts = re.split(r"([*/·])", text.replace(" ", ""))
    sign = 1
    for part in parts:
        if part in ("*", "·"):
            sign = 1
            continue
        if part == "/":
            sign = -1
            continue
        if part in ("", "1"):
            continue
        m = _FACTOR.match(part)
        if m is None:
            return None
        name, power = m.group(1), int(m.group(2) or 1)
        if re.fullmatch(r"[A-Za-z]+\d", part) and m.group(2) is None:
            name = part  # m3, m2: keep as written
        powers[name] = powers.get(name, 0) + sign * power
    return _norm(powers)


def _norm(powers: dict[str, int]) -> Unit:
    return tuple(sorted((k, v) for k, v in powers.items() if v != 0))


def multiply(a: Unit, b: Unit, sign: int = 1) -> Unit:
    """a · b (sign 1) or a / b (sign -1)."""
    powers = dict(a)
    for k, v in b:
        powers[k] = powers.get(k, 0) + sign * v
    return _norm(powers)


def show(unit: Unit) -> str:
    """A unit as text (1 for dimensionless)."""
    if not unit:
        return "1"
    num = [k if v == 1 else f"{k}^{v}" for k, v in unit if v > 0]
    den = [k if v == -1 else f"{k}^{-v}" for k, v in unit if v < 0]
    text = "·".join(num) or "1"
    return text + ("/" + "·".join(den) if den else "")


SECOND: Unit = (("s", 1),)
