"""A connector's protocol client in a process of its own: `python -m taehwa.connectors.worker`.

The server (`process.SourceProcess`, in the link's "forward" role) starts the worker, sends it one line of JSON
(the tenant, the definition, the folder of its queue and the historian's time window) and reads its reports, one
JSON line each:
`{"status": {...}}` every second and `{"committed": n, "status": {...}}` after each batch it commits to the queue.
The worker decodes, checks and commits to the durable queue and acknowledges the source, exactly as a link in the
server would; the server's forwarder drains that queue into the historian. So the protocol client and its decoding
run on a core of their own (Python's GIL is per process), and a client that crashes or hangs takes only its worker,
which the server starts again.

The worker stops on "stop" or at the end of its input: when the server exits, even by SIGKILL, the pipe closes and
the worker commits what it holds, acknowledges it and leaves. Where the pipe stays open (its end inherited by
another process), the server's death still reaches it (`lifeline`: SIGTERM, here the same graceful stop).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from taehwa.connectors.config import parse_connectors
from taehwa.core.lifeline import end_with_parent
from taehwa.historian.normalize import normalize, window_us

log = logging.getLogger(__name__)


class WindowChecker:
    """The historian's checks (`Historian.normalize`) without the historian: schema and accepted time window."""

    def __init__(self, earliest_time: str, future_tolerance_s: float) -> None:
        self.earliest_time, self.future_tolerance_s = earliest_time, future_tolerance_s

    def normalize(self, data: Any, *, source: str = "input", layout: str = "auto") -> pa.Table:
        earliest, latest = window_us(self.earliest_time, self.future_tolerance_s)
        return normalize(data, source=source, earliest_us=earliest, latest_us=latest, layout=layout)


def _wait_for_stop(terminated: list[int]) -> None:
    """Until "stop" or the end of the input (read by a thread), or a SIGTERM noted in `terminated`."""
    told = threading.Event()

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.readline()
        told.set()

    threading.Thread(target=read, name="worker-input", daemon=True).start()
    while not told.wait(0.2) and not terminated:
        pass


def main() -> int:
    """The worker: read the job, run the source side of the link until told to stop or the server is gone."""
    terminated: list[int] = []  # SIGTERM (the server gone, see `lifeline`) is only noted: the link stops below
    signal.signal(signal.SIGTERM, lambda sig, _frame: terminated.append(sig))
    end_with_parent()
    reports: IO[str] = os.fdopen(os.dup(1), "w", buffering=1)  # the reports' own channel
    os.dup2(2, 1)  # anything else printed goes to the log, not into the reports
    job = json.loads(sys.stdin.readline() or "null")
    if not isinstance(job, dict):
        print("taehwa.connectors.worker: started without a job; the server starts this", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=job.get("log_level", logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    lock = threading.Lock()

    def report(message: dict[str, Any]) -> None:
        with lock, contextlib.suppress(OSError, ValueError):  # the server is gone: its input closes too
            reports.write(json.dumps(message) + "\n")

    spec = parse_connectors(job["spec"], source="connector")[0]
    checker = WindowChecker(job["earliest_time"], float(job["future_tolerance_s"]))
    # the protocol libraries load after the lifeline is set: a server killed meanwhile still takes this worker along
    from taehwa.connectors.link import make_link

    link = make_link(job["tenant"], spec, None, Path(job["folder"]), role="source", checker=checker, report=report)
    link.start()
    _wait_for_stop(terminated)  # "stop", or nothing (or SIGTERM) when the server has gone
    link.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
