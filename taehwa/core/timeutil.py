"""Time parsing and conversion: everything inside the historian is UTC microseconds since the epoch."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from taehwa.core.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_S = 1_000_000
MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
"""The earliest time a datetime can hold (0001-01-01), in microseconds since the epoch."""
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
"""The latest time a datetime can hold (9999-12-31), in microseconds since the epoch."""
MAX_DURATION_US = 36_500 * 86_400 * US_PER_S
"""Longest duration accepted (100 years): longer ones overflow the arithmetic of buckets and grids."""


def parse_time(value: str | datetime | int | float, *, field: str = "time") -> datetime:
    """Parse ISO 8601 text, a datetime or epoch seconds into an aware UTC datetime.

    Text without an offset is taken as UTC, because plant historians and CSV exports usually are.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise InvalidInput(f"not a time: {value!r}", where=field)
    if isinstance(value, int | float):
        try:
            return _EPOCH + timedelta(seconds=float(value))
        except (OverflowError, ValueError) as exc:
            raise InvalidInput(f"epoch seconds out of range: {value!r}", where=field) from exc
    text = str(value).strip()
    if text.lower() == "now":
        return datetime.now(UTC)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(
            f"cannot parse time {value!r}; use ISO 8601 such as 2024-05-01T12:00:00Z", where=field
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def to_us(value: str | datetime | int | float, *, field: str = "time") -> int:
    """Microseconds since the epoch (UTC) for any accepted time input."""
    dt = parse_time(value, field=field)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def from_us(us: int) -> datetime:
    """Aware UTC datetime for microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=int(us))


def show_us(us: int) -> str:
    """A time in microseconds as ISO 8601 text, or as the raw number where no datetime can hold it (for errors)."""
    if MIN_US <= us <= MAX_US:
        return from_us(us).isoformat()
    return f"{us} µs since 1970 (outside the years 1 to 9999)"


def parse_duration(value: str | float | int, *, field: str = "every") -> int:
    """Parse `1s`, `500ms`, `1m`, `15min`, `1h`, `1d`, or plain seconds, into microseconds: at least 1 µs, at
    most MAX_DURATION_US (100 years), finite; anything else is InvalidInput naming the field."""
    units = {
        "us": 1,
        "ms": 1_000,
        "s": US_PER_S,
        "m": 60 * US_PER_S,
        "min": 60 * US_PER_S,
        "h": 3_600 * US_PER_S,
        "d": 86_400 * US_PER_S,
    }
    if isinstance(value, int | float) and not isinstance(value, bool):
        number, scale = float(value), US_PER_S
    else:
        text = str(value).strip().lower()
        if len(text) > 64:
            raise InvalidInput("a duration is at most 64 characters, e.g. 1s, 1m, 1h", where=field)
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits) :] or "s"
        if unit not in units:
            raise InvalidInput(f"unknown unit {unit!r} in duration {value!r}; use us, ms, s, m, h or d", where=field)
        try:
            number = float(digits)
        except ValueError as exc:
            raise InvalidInput(f"cannot parse duration {value!r}; e.g. 1s, 1m, 1h", where=field) from exc
        scale = units[unit]
    if not math.isfinite(number):
        raise InvalidInput(f"duration must be a finite number, got {value!r}", where=field)
    us = number * scale
    if us < 0.5:
        raise InvalidInput(f"duration must be positive (at least 1us), got {value!r}", where=field)
    if us > MAX_DURATION_US:
        raise InvalidInput(f"duration {value!r} is longer than 100 years (36500d), the most accepted", where=field)
    return round(us)
