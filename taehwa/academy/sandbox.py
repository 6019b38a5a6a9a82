"""Run submitted code next to the data, safely: a separate process in a folder of its own that holds only the
challenge's training part and inputs, confined by `runner` (limits, its own network namespace, Landlock, an audit
hook), watched by the clock here. Whatever the code does, the platform gets an `Outcome` with a plain verdict."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import taehwa
from taehwa.academy.runner import EXIT_FORBIDDEN, EXIT_MEMORY, EXIT_OUTPUT
from taehwa.core.errors import InvalidInput

VERDICTS = ("scored", "invalid_output", "crashed", "timed_out", "out_of_memory", "forbidden")
_UID_BASE, _UID_SPAN = 0x5A000000, 1 << 24  # uids 1509949440 … for runs as root (no account lives there)
_SYSTEM_READ = [
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/dev/urandom",
    "/dev/zero",
    "/sys/devices/system/cpu",
]


@dataclass(frozen=True)
class Limits:
    """What one code submission may use."""

    seconds: float = 300.0  # wall clock, start to finish
    memory_mb: int = 3072
    output_mb: int = 256  # biggest file it may write


@dataclass
class Outcome:
    """What became of one run: the verdict, a message for the participant, and the predictions when it worked."""

    verdict: str
    message: str
    predictions: pd.DataFrame | None = None
    seconds: float = 0.0
    sandbox: dict[str, Any] = field(default_factory=dict)
    log: str = ""


def readable_roots() -> list[str]:
    """Everything a submission may read besides its own folder: the Python installation and Taehwa's code."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(taehwa.__file__).parent)}
    roots |= {p for k in ("stdlib", "platstdlib", "purelib", "platlib") if (p := sysconfig.get_paths().get(k))}
    return sorted({str(Path(r).resolve()) for r in roots} | set(_SYSTEM_READ))


def check_hidden(hidden: Path) -> None:
    """Refuse to run code at all if the hidden data would lie inside what the sandbox leaves readable."""
    h = str(hidden.resolve())
    for r in readable_roots():
        if h == r or h.startswith(r.rstrip("/") + "/"):
            raise InvalidInput(
                f"the academy's hidden data ({h}) lies inside {r}, which submitted code may read; "
                "set TAEHWA_DATA_DIR outside the Python installation",
                where="data_dir",
            )


def run(
    *, kind: str, code: str, task: str, signals: list[str], train: Path, inputs: Path, scratch: Path, limits: Limits
) -> Outcome:
    """Train and predict with submitted code (`kind` python or spec) in the sandbox."""
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    work, new_root = folder / "work", folder / "root"  # the run's files; where the runner mounts its own root
    entry = "submission.py" if kind == "python" else "submission.yaml"
    uid = run_uid() if os.geteuid() == 0 else None
    r, w = os.pipe()
    started = time.perf_counter()
    try:
        work.mkdir(mode=0o700)
        new_root.mkdir(mode=0o700)
        shutil.copyfile(train, work / "train.parquet")
        shutil.copyfile(inputs, work / "inputs.parquet")
        (work / entry).write_text(code)
        (work / "job.json").write_text(
            json.dumps(
                {
                    "kind": kind,
                    "entry": entry,
                    "task": task,
                    "signals": signals,
                    "status_fd": w,
                    "memory_mb": limits.memory_mb,
                    "cpu_seconds": int(limits.seconds) + 1,
                    "output_mb": limits.output_mb,
                    "read": readable_roots(),
                    "root": str(new_root),
                    "uid": uid,
                    "gid": uid,
                    "parent": os.getpid(),
                }
            )
        )  # the run ends with this process (runner: PR_SET_PDEATHSIG)
        if uid is not None:  # the run's own user owns its folder and nothing else
            for path in (work, *work.iterdir()):
                os.chown(path, uid, uid)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "TMPDIR": str(work),
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "ARROW_DEFAULT_MEMORY_POOL": "system",
            "MALLOC_ARENA_MAX": "2",
            "JOBLIB_MULTIPROCESSING": "0",
        }
        with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", "-m", "taehwa.academy.runner", str(work)],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(w,),
                start_new_session=True,
            )
        os.close(w)
        w = -1
        events: list[dict[str, Any]] = []
        reader = threading.Thread(target=_read_events, args=(r, events), daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limits.seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
        if uid is not None:
            _kill_uid(uid)  # whatever escaped the group (seccomp should have let nothing start) goes too
        reader.join(timeout=5)
        seconds = time.perf_counter() - started
        log = _tail(work / "stdout.txt") + _tail(work / "stderr.txt")
        out_ = _verdict(proc.returncode, timed_out, events, limits, work)
        out_.seconds, out_.log = round(seconds, 3), log
        out_.sandbox = next(
            ({k: v for k, v in e.items() if k != "event"} for e in events if e.get("event") == "confined"), {}
        )
        return out_
    finally:
        if w >= 0:
            os.close(w)
        shutil.rmtree(folder, ignore_errors=True)


def run_uid() -> int:
    """A uid (and gid) for one run when the server is root: drawn from a range no account uses, so each run owns
    only its own folder, counts only its own threads against RLIMIT_NPROC and shares nothing with another run."""
    return _UID_BASE + secrets.randbelow(_UID_SPAN)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process whose real uid is the run's: a process that left the group (setsid) goes too."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as fh:
                line = next((x for x in fh if x.startswith("Uid:")), "")
            if line and int(line.split()[1]) == uid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run's process group and wait for its leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_events(fd: int, events: list[dict[str, Any]]) -> None:
    """Status lines from the child, at most 1 MB of them (a chatty child cannot fill memory here)."""
    budget = 1 << 20
    with os.fdopen(fd, "rb") as fh:
        for line in fh:
            budget -= len(line)
            if budget < 0:
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                events.append(doc)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _verdict(code: int | None, timed_out: bool, events: list[dict[str, Any]], limits: Limits, work: Path) -> Outcome:
    last = {e.get("event"): e for e in events}
    if timed_out:
        return Outcome("timed_out", f"stopped after {limits.seconds:g} s: the time limit of this challenge")
    if code == -signal.SIGXCPU:
        return Outcome("timed_out", f"used more than {limits.seconds:g} s of CPU: the time limit of this challenge")
    if code == EXIT_FORBIDDEN:
        return Outcome("forbidden", "stopped: " + str(last.get("forbidden", {}).get("message", "a sandbox rule")))
    if code == EXIT_MEMORY:
        return Outcome("out_of_memory", str(last.get("error", {}).get("message", "ran out of memory")))
    if code == EXIT_OUTPUT:
        return Outcome("invalid_output", str(last.get("error", {}).get("message", "the output was not usable")))
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        hint = (
            " (often a sign of running out of memory)"
            if -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT)
            else ""
        )
        return Outcome("crashed", f"the process died of signal {name}{hint}")
    if code != 0 or "done" not in last:
        err = last.get("error", {})
        msg = err.get("message") or f"the process exited with code {code} before finishing"
        tb = err.get("traceback", "")
        return Outcome("crashed", f"{msg}\n{tb}".strip())
    path = work / "predictions.parquet"
    try:
        preds = pd.read_parquet(path)
    except Exception as exc:
        return Outcome("invalid_output", f"its predictions could not be read ({exc})")
    return Outcome(
        "scored",
        f"trained in {last['done'].get('fit_s')} s, predicted in {last['done'].get('predict_s')} s",
        predictions=preds,
    )
