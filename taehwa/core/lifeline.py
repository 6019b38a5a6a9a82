"""Child processes that end with the process that started them.

A parent starts its child with `child_env()`, which names the parent in `TAEHWA_PARENT_PID`; the child calls
`end_with_parent()` first thing. Two watches then end the child when its parent is gone, however it went (SIGKILL
included), so no worker is left running with parent pid 1:

- on Linux the kernel's parent-death signal (`prctl(PR_SET_PDEATHSIG)`), at once. It fires when the *thread* that
  started the child ends, not the process: a parent starts such children only from a thread that outlives them
  (the main thread, or one that waits on the child);
- everywhere, a thread that checks the parent pid twice a second (the portable belt), which sends the same signal
  and, if the child has not ended `grace_s` later, ends it outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

PARENT_ENV = "TAEHWA_PARENT_PID"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that must end with this process: `base` (else ours) naming this process."""
    return {**(os.environ if base is None else base), PARENT_ENV: str(os.getpid())}


def parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send `sig` to this process when its parent (thread) ends; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def end_with_parent(*, sig: int = signal.SIGTERM, grace_s: float = 10.0, poll_s: float = 0.5) -> int | None:
    """In a child: receive `sig` when the parent named by `child_env` is gone, and end `grace_s` after it at the
    latest. Returns the parent's pid, or None when started by hand (no parent named: nothing is watched)."""
    named = os.environ.pop(PARENT_ENV, "")  # not handed on to this process's own children
    if not named.isdigit():
        return None
    parent = int(named)
    parent_death_signal(sig)
    threading.Thread(target=_watch, args=(parent, sig, grace_s, poll_s), name="end-with-parent", daemon=True).start()
    return parent


def _watch(parent: int, sig: int, grace_s: float, poll_s: float) -> None:
    """Thread body: wait until the parent is gone (already, too: it may have died before the kernel's watch was
    set), then signal this process, and end it if the signal did not within `grace_s`."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    log.warning("the parent process %d is gone; ending", parent)
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), sig)
    time.sleep(grace_s)
    os._exit(1)
