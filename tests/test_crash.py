"""Crash safety: SIGKILL the writing process mid-stream; every acknowledged point is there exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from taehwa.core.settings import Settings
from taehwa.historian.store import Historian

WRITER = r"""
import sys, numpy as np, pyarrow as pa
from taehwa.historian.store import Historian
from taehwa.core.settings import Settings
s = Settings(data_dir=sys.argv[1], buffer_max_points=2000, buffer_max_age_s=0.01, compact_after_s=0)
h = Historian(s)
try:
    h.tenants.create("acme")
except Exception:
    pass
t0 = 1_709_251_200_000_000  # 2024-03-01
batch = 0
while True:
    n = 3000 if batch % 7 == 6 else 100  # now and then a large write that goes straight to files
    ids = batch * 10_000 + np.arange(n)
    h.write("acme", pa.table({"tag": ["crash/x"] * n, "time": (t0 + ids * 1_000_000).astype("datetime64[us]"),
                              "value": ids.astype(float)}))
    if batch:  # rewrite the previous batch's first point with the same value: must not duplicate
        prev = (batch - 1) * 10_000
        h.write("acme", [("crash/x", (t0 + prev * 1_000_000) / 1e6, float(prev))])
    print(f"ACK {batch} {n}", flush=True)
    batch += 1
"""


def test_sigkill_mid_stream_loses_no_acknowledged_point(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acked: dict[int, int] = {}
    for _round in range(2):  # kill twice: the second time on a store that was itself recovered
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout is not None
        for seen, line in enumerate(proc.stdout, start=1):
            _, batch_id, n_acked = line.split()
            acked[int(batch_id)] = int(n_acked)
            if seen >= 60:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    h = Historian(Settings(data_dir=data), background=False)
    got = h.read("acme", "crash/x", "2024-01-01", "2030-01-01")
    values = np.array(got.column("value").to_pylist())
    assert len(np.unique(values)) == len(values), "a point is stored twice"
    present = set(values.astype(np.int64).tolist())
    for batch, n in acked.items():
        expected = set(range(batch * 10_000, batch * 10_000 + n))
        assert expected <= present, f"acknowledged batch {batch} lost {len(expected - present)} points"
    # nothing half-written: every batch present is present whole
    batches = {v // 10_000 for v in present}
    for batch in batches:
        count = sum(1 for v in present if v // 10_000 == batch)
        assert count in (100, 3000), f"batch {batch} is partly stored ({count} points)"
    assert h.latest("acme")["value"][0].as_py() == float(values.max())
    h.close()
