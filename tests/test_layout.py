"""docs/historian-layout.md is a contract: plain DuckDB, reading the manifest's files by the documented rule
(newest `seq` wins per tag and time), gets exactly what the historian answers, rewrites included."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from taehwa.historian.store import Historian


def frame(sql: str) -> pd.DataFrame:
    """Runs `sql` in plain DuckDB, as an outside engine would, and returns its rows as a frame."""
    relation = duckdb.sql(sql)
    assert relation is not None, "a SELECT returns a relation"
    rows: pd.DataFrame = relation.df()
    return rows


def test_outside_engines_read_the_store_by_the_documented_recipe(hist: Historian) -> None:
    t = pd.date_range("2024-03-01T00:00:00Z", periods=100, freq="1s")
    hist.write("acme", pd.DataFrame({"time": t, "a/pv": range(100), "b/pv": range(100, 200)}), layout="wide")
    hist.flush()
    hist.write("acme", pd.DataFrame({"time": t[:10], "a/pv": [-1.0] * 10}), layout="wide")  # a correction
    hist.flush()
    tenant = Path(hist.root) / "acme"
    files = [str(tenant / f["path"]) for f in json.loads((tenant / "manifest.json").read_text())["files"]]
    assert len(files) == 2  # the day holds both writes until compaction
    outside = frame(f"""
        SELECT tag, time, value FROM read_parquet({files!r})
        QUALIFY row_number() OVER (PARTITION BY tag_id, time ORDER BY seq DESC) = 1
        ORDER BY tag, time""")
    ours = hist.read("acme", ["a/pv", "b/pv"], "2024-03-01", "2024-03-02").to_pandas()
    assert len(outside) == len(ours) == 200
    assert outside["value"].tolist() == ours.sort_values(["tag", "time"])["value"].tolist()
    assert outside["value"].tolist()[:11] == [-1.0] * 10 + [10.0]
    hist.compact("acme")
    files = [str(tenant / f["path"]) for f in json.loads((tenant / "manifest.json").read_text())["files"]]
    compacted = frame(f"SELECT tag, time, value FROM read_parquet({files!r}) ORDER BY tag, time")
    assert len(files) == 1 and compacted["value"].tolist() == outside["value"].tolist()  # no duplicates left
