"""The sandboxed side of a code submission: started by `sandbox.run` as `python -I -m taehwa.academy.runner WORK`,
it confines itself, then trains the submitted model on the challenge's training part and predicts the inputs.

Confinement, in this order, before any submitted code is read:
1. resource limits: address space (memory), CPU seconds, size of files written, open files, no core dumps;
2. a network namespace of its own when the kernel lets it make one (nothing to reach, not even loopback);
3. Landlock: read only the Python installation and Taehwa's code, write only the work folder, no TCP at all;
4. an audit hook that stops the process at once, with the reason, on a socket, a new process, a file opened
   outside what it may read or write, or native calls that would step around the rest.
The kernel's limits hold even where the hook is bypassed; the hook is what gives a plain verdict.

Exit codes the parent reads: 0 done, 86 stopped by a rule, 87 out of memory, 1 the submission failed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

EXIT_FORBIDDEN, EXIT_MEMORY, EXIT_OUTPUT = 86, 87, 88
_NATIVE_DENY = {"fork", "vfork", "clone", "clone3", "execve", "execv", "execvp", "system", "popen", "posix_spawn",
                "socket", "socketpair", "connect", "bind", "sendto", "sendmsg", "syscall", "unshare", "setns",
                "ptrace", "prctl", "kill", "open", "openat", "creat", "mount", "chroot", "dlopen"}
_PROC_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                "pty.spawn", "os.kill", "os.killpg"}
_WRITE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.link", "os.symlink", "os.truncate",
                 "os.chmod", "os.chown", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"}

_status: Any = None


def report(event: dict[str, Any]) -> None:
    """One line to the parent over the status pipe."""
    if _status is not None:
        _status.write(json.dumps(event, default=str) + "\n")
        _status.flush()


def _limits(job: dict[str, Any]) -> None:
    mem = int(job["memory_mb"]) * 1024 * 1024
    cpu = int(job["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    out = int(job["output_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (out, out))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _own_network() -> bool:
    """Move into an empty network namespace (as root directly, else inside a user namespace mapping our own ids)."""
    libc = ctypes.CDLL(None, use_errno=True)
    newnet, newuser = 0x40000000, 0x10000000
    if os.geteuid() == 0 and libc.unshare(newnet) == 0:
        return True
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(newuser | newnet) != 0:
        return False
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with contextlib.suppress(OSError):
            Path(f"/proc/self/{name}").write_text(text)
    return True


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _hook_for(work: str, readable: list[str]) -> Any:
    writable = [work, "/dev/null"]
    busy = [False]

    def stop(why: str) -> None:
        report({"event": "forbidden", "message": why})
        os._exit(EXIT_FORBIDDEN)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            if event.startswith("socket."):
                stop("opened a network socket: submissions run without any network")
            elif event in _PROC_EVENTS:
                stop(f"started a process ({event}): submissions run as one process")
            elif event == "ctypes.dlsym" and str(args[1]) in _NATIVE_DENY:
                stop(f"looked up the native function {args[1]!r}: not allowed in a submission")
            elif event == "ctypes.dlopen" and (args[0] is None or "libc." in str(args[0])):
                stop("loaded the C library by hand: not allowed in a submission")
            elif event == "open":
                path, mode, flags = args
                if isinstance(path, int):
                    return
                full = os.path.realpath(os.fsdecode(path))
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
                if writing and not _under(full, writable):
                    stop(f"tried to write {full}: a submission may write only in its own folder")
                if not writing and not _under(full, writable + readable):
                    stop(f"tried to read {full}: a submission sees only the challenge's training data and inputs")
            elif event in _WRITE_EVENTS:
                for a in args:
                    if isinstance(a, str | bytes) and not _under(os.path.realpath(os.fsdecode(a)), writable):
                        stop(f"tried to change {os.fsdecode(a)} ({event}): outside its own folder")
        finally:
            busy[0] = False

    return hook


def _fit_predict(job: dict[str, Any], work: Path) -> tuple[Any, float, float]:
    import numpy as np
    import pandas as pd

    train = pd.read_parquet(work / "train.parquet")
    inputs = pd.read_parquet(work / "inputs.parquet")
    y = train.pop("target")
    X_in = inputs.drop(columns=["row"])
    t0 = time.perf_counter()
    if job["kind"] == "spec":
        from taehwa.academy.submission import parse_spec_submission
        from taehwa.lab.validation import Pipeline

        sub = parse_spec_submission((work / job["entry"]).read_text())
        pipe = Pipeline(job["task"], sub.features, sub.model.kind, sub.model.params, job["signals"])
        frame = train.assign(target=y)
        rows = (y.to_numpy().astype(float) == 0) if job["task"] == "anomaly" and sub.normal_only else None
        pipe.fit(frame, rows)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        pred, _ = pipe.predict(X_in)
    else:
        import importlib.util

        spec = importlib.util.spec_from_file_location("submission", work / job["entry"])
        if spec is None or spec.loader is None:
            raise RuntimeError("the submission could not be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cls = getattr(module, "Model", None)
        if cls is None:
            raise RuntimeError("the submission defines no class named Model")
        model = cls()
        model.fit(train, y)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        pred = model.predict(X_in)
    predict_s = time.perf_counter() - t1
    try:
        arr = np.asarray(pred)
    except Exception as exc:
        raise _BadOutput(f"predict returned something that is not a sequence of values ({exc})") from None
    if arr.ndim != 1:
        raise _BadOutput(f"predict returned an array of shape {arr.shape}; expected one value per input row "
                         f"({len(inputs)})")
    if len(arr) != len(inputs):
        raise _BadOutput(f"predict returned {len(arr)} values for {len(inputs)} input rows")
    values = arr.astype(str) if arr.dtype.kind in "OUSb" and job["task"] == "fault" else arr
    if values.dtype.kind == "O":
        values = values.astype(str)
    return pd.DataFrame({"row": inputs["row"].to_numpy(), "prediction": values}), fit_s, predict_s


class _BadOutput(Exception):
    pass


def main(argv: list[str]) -> int:
    global _status
    work = Path(argv[1]).resolve()
    job = json.loads((work / "job.json").read_text())
    _status = os.fdopen(int(job["status_fd"]), "w", buffering=1)
    _limits(job)
    import numpy  # noqa: F401 - loaded before confinement: the libraries the runner itself needs
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    netns = _own_network()
    from taehwa.academy import landlock

    readable = [str(Path(p).resolve()) for p in job["read"]] + [f"/proc/{os.getpid()}"]
    try:
        abi = landlock.restrict([Path(p) for p in readable], [work, Path("/dev/null")])
    except OSError as exc:
        abi = 0
        report({"event": "note", "message": f"Landlock not applied: {exc}"})
    # import paths outside what it may read (an editable install's checkout) go: taehwa's own modules are found
    # through the package already imported, never through the checkout (where a data directory may lie)
    sys.path[:] = [p for p in sys.path if _under(os.path.realpath(p or "."), readable)]
    sys.addaudithook(_hook_for(str(work), readable))
    report({"event": "confined", "landlock_abi": abi, "own_network": netns})
    try:
        table, fit_s, predict_s = _fit_predict(job, work)
        table.to_parquet(work / "predictions.parquet", index=False)
    except MemoryError:
        report({"event": "error", "kind": "memory", "message": f"ran out of its {job['memory_mb']} MB of memory"})
        return EXIT_MEMORY
    except _BadOutput as exc:
        report({"event": "error", "kind": "output", "message": str(exc)})
        return EXIT_OUTPUT
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.endswith("runner.py")]
        tb = "".join(traceback.format_list(frames))
        report({"event": "error", "kind": "crash", "message": f"{type(exc).__name__}: {exc}",
                "traceback": tb[-4000:]})
        return 1
    report({"event": "done", "fit_s": round(fit_s, 3), "predict_s": round(predict_s, 3)})
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    os._exit(code)
