"""The point schema: (tag, time, value, quality), one Arrow schema for the wire, the buffer and the files."""

from __future__ import annotations

from enum import IntEnum

import pyarrow as pa

from taehwa.core.errors import InvalidInput


class Quality(IntEnum):
    """OPC UA's three quality classes, stored as one byte."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2

    @classmethod
    def parse(cls, value: object, *, where: str = "quality") -> Quality:
        """Accept a name (good/uncertain/bad), 0/1/2, or a 32-bit OPC UA status code."""
        if isinstance(value, Quality):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= 2:
                return cls(value)
            if 0 <= value <= 0xFFFFFFFF:
                return cls(min(value >> 30, 2))
        raise InvalidInput(f"quality must be good, uncertain or bad (or 0/1/2), got {value!r}", where=where)


# The storage schema: time as naive UTC microseconds (DuckDB reads it as TIMESTAMP without any extension).
STORE_SCHEMA = pa.schema(
    [
        pa.field("tag", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("quality", pa.uint8(), nullable=False),
    ]
)

# What callers get back: the same with time marked as UTC.
OUT_TIME = pa.timestamp("us", tz="UTC")
