"""Queries over the write buffer skip the buffered batches whose times and tags miss the query, and answer as they
would with every point in files: rewrites in the buffer of points in files, over several days and tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from taehwa.core.settings import Settings
from taehwa.historian.store import Historian

T0 = np.datetime64("2024-03-01T00:00:00", "us")
HOUR = np.timedelta64(3600, "s")


def test_reads_beside_many_buffered_batches_equal_reads_after_flush(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_token="t", buffer_max_points=1_000_000)
    rng = np.random.default_rng(5)
    tags = [f"u/{i}" for i in range(12)]
    with Historian(settings, background=False) as h:
        h.tenants.create("acme")
        base = pa.table({"tag": np.repeat(tags[:6], 72), "time": np.tile(T0 + np.arange(72) * HOUR, 6)})
        h.write("acme", base.append_column("value", pa.array(np.zeros(base.num_rows))))
        h.flush()
        for k in range(40):  # each batch a few tags over a few hours: some rewrite points in the files
            n = int(rng.integers(1, 30))
            group = rng.choice(len(tags), 3, replace=False)
            which = group[rng.integers(0, 3, n)]
            hours = int(rng.integers(0, 70)) + rng.integers(0, 3, n)
            h.write(
                "acme",
                pa.table(
                    {
                        "tag": [tags[w] for w in which.tolist()],
                        "time": T0 + hours * HOUR,
                        "value": np.full(n, float(k + 1)) + rng.random(n),
                    }
                ),
            )
        queries = []
        for _ in range(30):
            some = sorted(rng.choice(tags, int(rng.integers(1, 5)), replace=False).tolist())
            lo = int(rng.integers(0, 70))
            queries.append((some, T0 + lo * HOUR, T0 + (lo + int(rng.integers(1, 30))) * HOUR))
        before = [h.read("acme", q, s, e) for q, s, e in queries]
        aggs = [h.downsample("acme", q, s, e, "1h", ["avg", "max"]) for q, s, e in queries]
        assert h.snapshot("acme").spans is not None
        h.flush()
        h.compact("acme")
        assert h.snapshot("acme").buffer is None
        for (q, s, e), got, agg in zip(queries, before, aggs, strict=True):
            assert got.equals(h.read("acme", q, s, e)), (q, s, e)
            assert agg.equals(h.downsample("acme", q, s, e, "1h", ["avg", "max"])), (q, s, e)
