"""Bad input gets a clear error naming the row and column; good input in every accepted shape is converted."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from taehwa.core.errors import InvalidInput
from taehwa.core.timeutil import parse_duration, to_us
from taehwa.historian.normalize import normalize


def test_long_rows_and_tuples_convert() -> None:
    t = normalize(
        [
            {"tag": "a/b", "time": "2024-01-01T00:00:00Z", "value": 1, "quality": "bad"},
            ("a/c", "2024-01-01T09:00:00+09:00", 2.5),
        ]
    )
    assert t.column("tag").to_pylist() == ["a/b", "a/c"]
    assert t.column("value").to_pylist() == [1.0, 2.5]
    assert t.column("quality").to_pylist() == [2, 0]
    # both times are the same UTC instant
    assert t.column("time").cast(pa.int64()).to_pylist() == [to_us("2024-01-01T00:00:00Z")] * 2


def test_wide_pandas_frame_becomes_long() -> None:
    df = pd.DataFrame(
        {
            "time": pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:01"], utc=True),
            "p/1": [1.0, None],
            "p/2": [3.0, 4.0],
        }
    )
    t = normalize(df)
    assert t.num_rows == 3  # the empty cell is no reading
    assert sorted(t.column("tag").to_pylist()) == ["p/1", "p/2", "p/2"]


@pytest.mark.parametrize(
    ("rows", "message", "where"),
    [
        (
            [("a", "2024-01-01T00:00:00Z", 1.0), ("a", "2024-01-01T00:00:01Z", "abc")],
            "the value is not a number",
            "row 2, column 'value'",
        ),
        (
            [("a", "2024-01-01T00:00:00Z", 1.0), ("a", "yesterday-ish", 2.0)],
            "cannot parse time",
            "row 2, column 'time'",
        ),
        ([("a", "2024-01-01T00:00:00Z", float("nan"))], "not finite", "row 1, column 'value'"),
        (
            [("a", "2024-01-01T00:00:00Z", 1.0), ("a", "2024-01-01T00:00:01Z", float("inf"))],
            "not finite",
            "row 2, column 'value'",
        ),
        ([("a", "2024-01-01T00:00:00Z", None)], "missing value", "row 1, column 'value'"),
        ([("bad tag!", "2024-01-01T00:00:00Z", 1.0)], "invalid tag", "row 1, column 'tag'"),
        ([("a", "2024-01-01T00:00:00Z", 1.0, "excellent")], "quality must be", "row 1, column 'quality'"),
        ([("a", None, 1.0)], "missing time", "row 1, column 'time'"),
    ],
)
def test_bad_rows_are_named(rows: list[tuple[object, ...]], message: str, where: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize(rows, source="batch")
    assert message in info.value.message
    assert info.value.where == f"batch, {where}"


def test_missing_and_unknown_columns() -> None:
    with pytest.raises(InvalidInput, match="missing column 'value'"):
        normalize(pa.table({"tag": ["a"], "time": ["2024-01-01T00:00:00Z"], "quality": ["good"]}), layout="long")
    with pytest.raises(InvalidInput, match=r"unknown column\(s\) \['unit'\]"):
        normalize(pa.table({"tag": ["a"], "time": ["2024-01-01T00:00:00Z"], "value": [1.0], "unit": ["bar"]}))
    with pytest.raises(InvalidInput, match="unknown field"):
        normalize([{"tag": "a", "time": "2024-01-01T00:00:00Z", "value": 1.0, "colour": "red"}])
    with pytest.raises(InvalidInput, match="no time column"):
        normalize(pa.table({"a": [1.0]}))


def test_time_window() -> None:
    earliest, latest = to_us("2000-01-01T00:00:00Z"), to_us(datetime.now(UTC))
    with pytest.raises(InvalidInput, match="before the accepted window") as info:
        normalize(
            [("a", "2024-01-01T00:00:00Z", 1.0), ("a", "1999-12-31T23:59:59Z", 1.0)],
            earliest_us=earliest,
            latest_us=latest,
        )
    assert "row 2" in str(info.value)
    with pytest.raises(InvalidInput, match="too far in the future"):
        normalize([("a", "2999-01-01T00:00:00Z", 1.0)], earliest_us=earliest, latest_us=latest)


def test_epoch_seconds_and_microseconds_kept() -> None:
    t = normalize([("a", 1_700_000_000.123456, 1.0)])
    assert t.column("time").cast(pa.int64())[0].as_py() == 1_700_000_000_123_456
    t = normalize([("a", "2024-01-01T00:00:00.000001Z", 1.0)])
    assert t.column("time").cast(pa.int64())[0].as_py() % 1_000_000 == 1


def test_durations() -> None:
    assert parse_duration("1m") == 60_000_000
    assert parse_duration("500ms") == 500_000
    assert parse_duration(2) == 2_000_000
    with pytest.raises(InvalidInput, match="unknown unit"):
        parse_duration("3 fortnights")
    with pytest.raises(InvalidInput, match="positive"):
        parse_duration("0s")


def test_wide_errors_name_the_tag_column() -> None:
    wide = pa.table({"time": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z"], "p/1": ["1", "2"], "p/2": ["3", "x"]})
    with pytest.raises(InvalidInput) as info:
        normalize(wide, source="plant.csv")
    assert info.value.where == "plant.csv, row 2, column 'p/2'"
