"""The sandboxed side of a code submission: started by `sandbox.run` as `python -I -m taehwa.academy.runner WORK`,
it confines itself, then trains the submitted model on the challenge's training part and predicts the inputs.

Confinement, in this order, before any submitted code is read:
1. resource limits: address space (memory), CPU seconds, size of files written, open files, no core dumps;
2. namespaces of its own (a user namespace too when not root): an empty network (not even loopback) and a mount
   namespace whose root is a read-only tmpfs holding bind mounts of the Python installation, Taehwa's code, a few
   system files and the work folder only: the platform's data, hidden labels included, are not there at all;
3. as root: every group dropped and a uid/gid of its own (chosen per run by the parent, owning only the work
   folder), which takes every capability away and makes RLIMIT_NPROC count; otherwise capabilities dropped;
4. RLIMIT_NPROC at its thread count plus a margin;
5. Landlock: read only the Python installation and Taehwa's code, write only the work folder, no TCP at all;
6. seccomp (`seccomp.py`): no new process (execve, fork, clone of a process, clone3), no setsid, ptrace, unshare,
   mount, sockets, bpf, io_uring …, in every thread;
7. an audit hook that stops the process at once, with the reason, on a socket, a new process, a file opened
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
import signal
import sys
import sysconfig
import time
import traceback
from pathlib import Path
from typing import Any

from taehwa.core.lifeline import parent_death_signal

EXIT_FORBIDDEN, EXIT_MEMORY, EXIT_OUTPUT = 86, 87, 88
_NATIVE_DENY = {
    "fork",
    "vfork",
    "clone",
    "clone3",
    "execve",
    "execv",
    "execvp",
    "system",
    "popen",
    "posix_spawn",
    "socket",
    "socketpair",
    "connect",
    "bind",
    "sendto",
    "sendmsg",
    "syscall",
    "unshare",
    "setns",
    "ptrace",
    "prctl",
    "kill",
    "open",
    "openat",
    "creat",
    "mount",
    "chroot",
    "dlopen",
    "setsid",
    "setpgid",
    "setpgrp",
    "daemon",
    "pivot_root",
    "seccomp",
    "bpf",
    "keyctl",
    "mprotect",
    "capset",
    "dlsym",
    "dlvsym",
    "dlmopen",
    "dl_open",
    "dl_sym",
}
# native names refused by their beginning too (after any leading underscores): every exec*, posix_spawn*, fork,
# clone, __libc_* (__libc_dlsym by hand would step around this very check), process_vm_*, io_uring_*, …
_NATIVE_DENY_PREFIX = (
    "exec",
    "fexecve",
    "posix_spawn",
    "spawn",
    "fork",
    "vfork",
    "clone",
    "libc_",
    "Fork",
    "process_vm",
    "io_uring",
    "setres",
    "setuid",
    "setgid",
    "setgroups",
    "umount",
    "tgkill",
    "pidfd",
    "perf_event",
    "userfaultfd",
    "socket",
    "connect",
    "syscall",
    "unshare",
    "setns",
)
_PROC_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.kill",
    "os.killpg",
}
_WRITE_EVENTS = {
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.link",
    "os.symlink",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.utime",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}
_NO_EVENT = (
    "setsid",
    "setpgid",
    "setpgrp",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "unshare",
    "setns",
)  # os functions Python raises no audit event for
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_MS_KEEP = _MS_NODEV | _MS_NOEXEC | 1024 | 2048 | 4096  # flags a bind keeps (noatime, nodiratime, relatime too)
_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000

_status: Any = None
_libc = ctypes.CDLL(None, use_errno=True)


def report(event: dict[str, Any]) -> None:
    """One line to the parent over the status pipe."""
    if _status is not None:
        _status.write(json.dumps(event, default=str) + "\n")
        _status.flush()


def _limits(job: dict[str, Any]) -> None:
    """The resource limits that need no privilege: memory, CPU, file size, open files, no core dumps."""
    mem = int(job["memory_mb"]) * 1024 * 1024
    cpu = int(job["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    out = int(job["output_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (out, out))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _namespaces() -> dict[str, bool]:
    """Move into an empty network namespace and a mount namespace of its own: as root directly, else inside a user
    namespace mapping our own ids. Falls back to less where the kernel refuses; says what it got."""
    uid, gid = os.geteuid(), os.getegid()
    root = uid == 0
    for flags in (
        (_CLONE_NEWNET | _CLONE_NEWNS, _CLONE_NEWNET)
        if root
        else (_CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWNS, _CLONE_NEWUSER | _CLONE_NEWNET)
    ):
        if _libc.unshare(flags) == 0:
            break
    else:
        return {"own_network": False, "own_mounts": False, "user_ns": False}
    if flags & _CLONE_NEWUSER:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with contextlib.suppress(OSError):
                Path(f"/proc/self/{name}").write_text(text)
    return {"own_network": True, "own_mounts": bool(flags & _CLONE_NEWNS), "user_ns": bool(flags & _CLONE_NEWUSER)}


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2), raising OSError with the path (never anything read from a file)."""

    def enc(v: str | None) -> bytes | None:
        return None if v is None else os.fsencode(v)

    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _own_root(new_root: Path, readable: list[str], writable: list[str]) -> None:
    """Make `new_root` a read-only tmpfs holding bind mounts of `readable` (read-only) and `writable` at their own
    paths, then chroot into it: nothing else of the machine's files is there to open, list or stat."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing done here reaches the machine's own mounts
    _mount("tmpfs", str(new_root), "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
    kept: list[str] = []
    for p in sorted(set(readable) | set(writable)):
        if os.path.exists(p) and not any(p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    for p in kept:
        target = str(new_root) + p
        if os.path.isdir(p):
            os.makedirs(target, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            Path(target).touch()
        _mount(p, target, None, _MS_BIND | _MS_REC)
        ro = 0 if p in writable else _MS_RDONLY
        with contextlib.suppress(OSError):  # Landlock is the wall for writes where a remount is refused
            keep = os.statvfs(p).f_flag & _MS_KEEP
            _mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_NOSUID | ro | keep)
    _mount(None, str(new_root), None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    cwd = os.getcwd()
    os.chroot(new_root)
    os.chdir(cwd)


def _drop_privileges(job: dict[str, Any]) -> int | None:
    """As root: no groups, the run's own gid and uid (all three of each), so no capability is left and the
    platform's files are out of reach by their permissions. Otherwise: drop the capabilities a user namespace
    gave. Returns the uid now run as when it changed."""
    uid = job.get("uid")
    changed = None
    if os.geteuid() == 0 and isinstance(uid, int) and uid > 0:
        gid = int(job.get("gid") or uid)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
            raise OSError("the sandbox could not leave root")
        changed = uid

    class _Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    data = (ctypes.c_uint32 * 6)()  # two zeroed __user_cap_data_struct: nothing effective, permitted, inherited
    if _libc.capset(ctypes.byref(_Header(0x20080522, 0)), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    return changed


def _tasks_of(uid: int) -> int:
    """How many threads run as `uid` on this machine, as far as /proc shows them."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, StopIteration):
                fields = dict(x.split(":", 1) for x in Path(entry.path, "status").read_text().splitlines() if ":" in x)
                if int(fields["Uid"].split()[0]) == uid:
                    count += int(fields["Threads"])
    return count


def _nproc(own_uid: bool) -> int:
    """RLIMIT_NPROC at the threads counted against it plus a margin for the thread pools of numpy, pyarrow and
    sklearn: this process's own with a uid of its own; else every thread of the uid (the count an older kernel
    checks; newer ones count per user namespace, which is fewer)."""
    now = len(os.listdir("/proc/self/task")) if own_uid else max(_tasks_of(os.getuid()), 1)
    limit = now + max(32, 2 * (os.cpu_count() or 1))
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    return limit


def _under(path: str, roots: list[str]) -> bool:
    """Whether `path` is one of `roots` or lies beneath one."""
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _denied_native(name: Any) -> bool:
    """A native function a submission may not look up by hand (by name or by how the name begins)."""
    text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    base = text.lstrip("_")
    return text in _NATIVE_DENY or base in _NATIVE_DENY or base.startswith(_NATIVE_DENY_PREFIX)


def native_roots() -> list[str]:
    """Where the shared libraries a submission may load by hand lie: the installed packages and lib-dynload."""
    paths = sysconfig.get_paths()
    roots = {paths.get("purelib"), paths.get("platlib")}
    if paths.get("platstdlib"):
        roots.add(os.path.join(paths["platstdlib"], "lib-dynload"))
    return sorted(os.path.realpath(r) for r in roots if r)


def _native_allowed(name: Any, roots: list[str]) -> bool:
    """A library named by a path inside the installed packages (never by a bare name, which the system's
    libraries answer)."""
    if not isinstance(name, str | bytes | os.PathLike):
        return False
    text = os.fsdecode(name)
    return "/" in text and _under(os.path.realpath(text), roots)


def _hook_for(work: str, readable: list[str]) -> Any:
    """The audit hook: the verdict, at once and with the reason, for what the kernel's walls would refuse."""
    writable = [work, "/dev/null"]
    native = native_roots()
    busy = [False]

    stop = _stop

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            if event.startswith("socket."):
                stop("opened a network socket: submissions run without any network")
            elif event in _PROC_EVENTS:
                stop(f"started a process ({event}): submissions run as one process")
            elif event in ("ctypes.dlsym", "ctypes.dlsym/handle") and _denied_native(args[1]):
                stop(f"looked up the native function {args[1]!r}: not allowed in a submission")
            elif event == "ctypes.dlopen":
                if args[0] is None or "libc." in str(args[0]):
                    stop("loaded the C library by hand: not allowed in a submission")
                if not _native_allowed(args[0], native):
                    stop(
                        f"loaded the native library {os.fsdecode(args[0])!r} by hand: a submission may load only "
                        "the libraries of the installed Python packages"
                    )
            elif event == "open":
                path, mode, flags = args
                if isinstance(path, int):
                    return
                full = os.path.realpath(os.fsdecode(path))
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC)
                )
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


def _fit_predict(job: dict[str, Any]) -> tuple[Any, float, float]:
    """Train and predict in the work folder (the current directory), by a spec or by the submitted Python."""
    import numpy as np
    import pandas as pd

    train = pd.read_parquet("train.parquet")
    inputs = pd.read_parquet("inputs.parquet")
    y = train.pop("target")
    X_in = inputs.drop(columns=["row"])
    t0 = time.perf_counter()
    if job["kind"] == "spec":
        from taehwa.academy.submission import parse_spec_submission
        from taehwa.lab.validation import Pipeline

        sub = parse_spec_submission(Path(job["entry"]).read_text())
        pipe = Pipeline(job["task"], sub.features, sub.model.kind, sub.model.params, job["signals"])
        frame = train.assign(target=y)
        rows = (y.to_numpy().astype(float) == 0) if job["task"] == "anomaly" and sub.normal_only else None
        pipe.fit(frame, rows)
        fit_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        pred, _ = pipe.predict(X_in)
    else:
        import importlib.util

        spec = importlib.util.spec_from_file_location("submission", job["entry"])
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
        raise _BadOutput(
            f"predict returned an array of shape {arr.shape}; expected one value per input row ({len(inputs)})"
        )
    if len(arr) != len(inputs):
        raise _BadOutput(f"predict returned {len(arr)} values for {len(inputs)} input rows")
    values = arr.astype(str) if arr.dtype.kind in "OUSb" and job["task"] == "fault" else arr
    if values.dtype.kind == "O":
        values = values.astype(str)
    return pd.DataFrame({"row": inputs["row"].to_numpy(), "prediction": values}), fit_s, predict_s


class _BadOutput(Exception):
    pass


def _refuse_unaudited(stop: Any) -> None:
    """Replace the os functions Python raises no audit event for (setsid and friends) by ones that give the
    verdict; seccomp refuses the calls themselves whichever way they are reached."""
    import posix

    for name in _NO_EVENT:

        def refused(*_: Any, _name: str = name) -> None:
            stop(f"called os.{_name}: a submission stays in the sandbox's session, group and identity")

        for module in (os, posix):
            if hasattr(module, name):
                setattr(module, name, refused)


def _stop(why: str) -> None:
    """Report the rule a submission broke and end the process with EXIT_FORBIDDEN."""
    report({"event": "forbidden", "message": why})
    os._exit(EXIT_FORBIDDEN)


def _end_with_server(parent: Any) -> None:
    """SIGKILL this run when the server that started it dies (the clock there is gone too): set after the last
    change of credentials, which clears it, and before seccomp; a server already gone ends the run now."""
    parent_death_signal(signal.SIGKILL)
    if isinstance(parent, int) and os.getppid() != parent:
        os._exit(1)


def confine(job: dict[str, Any], work: Path) -> dict[str, Any]:
    """Everything but the audit hook, in order (see the module's text); returns what was applied. Raises OSError
    where a wall that must hold (leaving root, seccomp) could not be raised."""
    from taehwa.academy import landlock, seccomp

    os.chdir(work)
    readable = [str(Path(p).resolve()) for p in job["read"]]
    writable = [str(work), "/dev/null"]
    ns = _namespaces()
    own_root = False
    if ns["own_mounts"] and job.get("root"):
        try:
            _own_root(Path(job["root"]), [*readable, "/proc"], writable)
            own_root = True
        except OSError as exc:
            report({"event": "note", "message": f"no root of its own: {exc}"})
    import numpy  # noqa: F401 - loaded before the rest: the libraries the runner itself needs
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    uid = _drop_privileges(job)
    nproc = _nproc(uid is not None) if uid is not None or ns["user_ns"] else None
    readable.append(f"/proc/{os.getpid()}")
    try:
        abi = landlock.restrict([Path(p) for p in readable], [Path(p) for p in writable])
    except OSError as exc:
        abi = 0
        report({"event": "note", "message": f"Landlock not applied: {exc}"})
    _end_with_server(job.get("parent"))
    refused = seccomp.apply()
    return {
        "landlock_abi": abi,
        "own_network": ns["own_network"],
        "own_root": own_root,
        "uid": os.getuid(),
        "user_ns": ns["user_ns"],
        "nproc": nproc,
        "seccomp": refused,
        "readable": readable,
    }


def main(argv: list[str]) -> int:
    global _status
    work = Path(argv[1]).resolve()
    job = json.loads((work / "job.json").read_text())
    _status = os.fdopen(int(job["status_fd"]), "w", buffering=1)
    _limits(job)
    try:
        confined = confine(job, work)
    except OSError as exc:
        report({"event": "error", "kind": "crash", "message": f"the sandbox could not be set up: {exc}"})
        return 1
    readable = confined.pop("readable")
    # import paths outside what it may read (an editable install's checkout) go: taehwa's own modules are found
    # through the package already imported, never through the checkout (where a data directory may lie)
    sys.path[:] = [p for p in sys.path if _under(os.path.realpath(p or "."), readable)]
    _refuse_unaudited(_stop)
    sys.addaudithook(_hook_for(str(work), readable))
    report({"event": "confined", **confined})
    try:
        table, fit_s, predict_s = _fit_predict(job)
        table.to_parquet("predictions.parquet", index=False)  # relative: the run's uid may not reach it by path
    except MemoryError:
        report({"event": "error", "kind": "memory", "message": f"ran out of its {job['memory_mb']} MB of memory"})
        return EXIT_MEMORY
    except _BadOutput as exc:
        report({"event": "error", "kind": "output", "message": str(exc)})
        return EXIT_OUTPUT
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.endswith("runner.py")]
        tb = "".join(traceback.format_list(frames))
        report({"event": "error", "kind": "crash", "message": f"{type(exc).__name__}: {exc}", "traceback": tb[-4000:]})
        return 1
    report({"event": "done", "fit_s": round(fit_s, 3), "predict_s": round(predict_s, 3)})
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    os._exit(code)
