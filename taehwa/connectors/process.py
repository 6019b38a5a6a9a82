"""The server's side of a connector's own process (`worker`): start it, hand it its job, relay its reports to the
link, and start it again when it dies. It knows the link only by the few things it asks of it (`ForwardingLink`), so
the link and the worker do not import each other."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Protocol

from taehwa.core.lifeline import child_env

log = logging.getLogger(__name__)

RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0


class ForwardingLink(Protocol):
    """What a `SourceProcess` needs of its link (a `link.Link` in the "forward" role)."""

    tenant: str
    folder: Path
    stopping: threading.Event

    @property
    def historian(self) -> Any: ...

    @property
    def spec(self) -> Any: ...

    def new_process(self) -> None: ...

    def absorb(self, message: dict[str, Any]) -> None: ...

    def set_state(self, state: str, **detail: Any) -> None: ...

    def error(self, message: str) -> None: ...


class SourceProcess:
    """The server's side: start the worker, relay its reports to the link, start it again if it dies (backing off
    from 1 s to 30 s while it keeps dying young)."""

    def __init__(self, link: ForwardingLink) -> None:
        self.link = link
        settings = link.historian.settings
        self.job = {
            "tenant": link.tenant,
            "spec": link.spec.model_dump(mode="json"),
            "folder": str(link.folder),
            "earliest_time": settings.earliest_time,
            "future_tolerance_s": settings.future_tolerance_s,
            "log_level": logging.getLogger("taehwa").getEffectiveLevel(),
        }
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def run(self) -> None:
        """Thread body: one worker after another until the link stops."""
        backoff = RESTART_MIN_S
        while not self.link.stopping.is_set():
            started = time.monotonic()
            self.link.new_process()
            with self._lock:
                if self.link.stopping.is_set():
                    return
                proc = self._proc = start_process()
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(OSError):
                proc.stdin.write(json.dumps(self.job) + "\n")
                proc.stdin.flush()
            for line in proc.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self.link.absorb(message)
            code = proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            if self.link.stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff = RESTART_MIN_S
            self.link.set_state("disconnected")
            self.link.error(f"the connector's process ended (exit code {code}); starting it again in {backoff:.0f} s")
            self.link.stopping.wait(backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the worker to stop (it commits and acknowledges what it holds), and kill it if it does not."""
        with self._lock:
            proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.write("stop\n")
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("connector %s: its process did not stop in %.0f s; killed", self.link.spec.name, timeout_s)
            proc.kill()
            proc.wait()


def start_process(stdin: int | IO[Any] | None = subprocess.PIPE) -> subprocess.Popen[str]:
    """A worker process that ends with this one; started from the link's thread, which waits on it to the end."""
    return subprocess.Popen(
        [sys.executable, "-m", "taehwa.connectors.worker"],
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        env=child_env({**os.environ, "PYTHONUNBUFFERED": "1"}),
    )
