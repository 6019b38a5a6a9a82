"""The processes of a test run, read from /proc: which are alive, whose children they are, which were left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

RUN_MARK = "TAEHWA_TEST_RUN"  # in the environment of every process this run starts (but the sandbox's runs)
WORKER_MODULES = ("taehwa.api.workers", "taehwa.connectors.worker", "taehwa.academy.runner")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended but not yet reaped by whoever adopted it, does not)."""
    found = _stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def _cmdline(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ('' when unreadable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    """Every process id on the machine."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(parent: int, module: str) -> list[int]:
    """The live children of `parent` running `python -m <module>`."""
    return sorted(
        pid
        for pid in _pids()
        if (s := _stat(pid)) is not None
        and s[1] == parent
        and s[0] not in ("Z", "X")
        and f"-m {module}" in _cmdline(pid)
    )


def _marked(pid: int, mark: str) -> bool:
    """Whether a process's environment carries this run's mark (False where it cannot be read: another user)."""
    try:
        return f"{RUN_MARK}={mark}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def left_behind(mark: str, base: str) -> dict[int, str]:
    """This run's worker processes still alive: marked in their environment, or (a sandbox run, whose environment
    is its own) naming a folder under this run's temporary base."""
    out = {}
    for pid in _pids():
        cmd = _cmdline(pid)
        if (
            pid != os.getpid()
            and any(f"-m {m}" in cmd for m in WORKER_MODULES)
            and alive(pid)
            and (base in cmd or _marked(pid, mark))
        ):
            out[pid] = cmd
    return out


def gone_within(pids: list[int], timeout_s: float) -> float | None:
    """Seconds until none of `pids` runs any more, None if some still run after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if not any(alive(p) for p in pids):
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def end(pids: list[int]) -> None:
    """SIGKILL processes of this run, by their ids (left behind: the check that found them fails)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
