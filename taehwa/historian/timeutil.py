"""Time parsing and conversion: everything inside the historian is UTC microseconds since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taehwa.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_S = 1_000_000


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


def parse_duration(value: str | float | int, *, field: str = "every") -> int:
    """Parse `1s`, `500ms`, `1m`, `15min`, `1h`, `1d`, or plain seconds, into microseconds (> 0)."""
    units = {"us": 1, "ms": 1_000, "s": US_PER_S, "m": 60 * US_PER_S, "min": 60 * US_PER_S,
             "h": 3_600 * US_PER_S, "d": 86_400 * US_PER_S}
    if isinstance(value, int | float) and not isinstance(value, bool):
        us = round(float(value) * US_PER_S)
    else:
        text = str(value).strip().lower()
        number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(number):] or "s"
        if unit not in units:
            raise InvalidInput(f"unknown unit {unit!r} in duration {value!r}; use us, ms, s, m, h or d",
                               where=field)
        try:
            us = round(float(number) * units[unit])
        except ValueError as exc:
            raise InvalidInput(f"cannot parse duration {value!r}; e.g. 1s, 1m, 1h", where=field) from exc
    if us <= 0:
        raise InvalidInput(f"duration must be positive, got {value!r}", where=field)
    return us
