"""A seccomp filter for the academy's sandbox, written as a classic BPF program and loaded through ctypes (no
libseccomp needed): it refuses every way to start a process (execve, fork, clone without CLONE_THREAD, clone3),
to leave or rebuild the sandbox (setsid, unshare, mount, chroot, ptrace, …) and the kernel interfaces most used by
exploits (bpf, io_uring, userfaultfd, keyctl, perf_event_open). Threads still work. Refused calls fail with EPERM
(clone3 with ENOSYS, so that glibc falls back to clone), so Python code sees an OSError; a foreign ABI is killed."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

# AUDIT_ARCH_* values (linux/audit.h) and the syscall numbers of each machine
_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000  # x86_64's x32 ABI: same kernel, other numbers; refused outright
_NR: dict[str, dict[str, int]] = {
    "x86_64": {
        "execve": 59,
        "execveat": 322,
        "fork": 57,
        "vfork": 58,
        "clone": 56,
        "clone3": 435,
        "ptrace": 101,
        "setsid": 112,
        "setpgid": 109,
        "unshare": 272,
        "setns": 308,
        "mount": 165,
        "umount2": 166,
        "pivot_root": 155,
        "chroot": 161,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "bpf": 321,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "perf_event_open": 298,
        "socket": 41,
        "socketpair": 53,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "kexec_load": 246,
        "kexec_file_load": 320,
        "init_module": 175,
        "finit_module": 313,
        "delete_module": 176,
        "userfaultfd": 323,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "pidfd_getfd": 438,
        "seccomp": 317,
    },
    "aarch64": {
        "execve": 221,
        "execveat": 281,
        "clone": 220,
        "clone3": 435,
        "ptrace": 117,
        "setsid": 157,
        "setpgid": 154,
        "unshare": 97,
        "setns": 268,
        "mount": 40,
        "umount2": 39,
        "pivot_root": 41,
        "chroot": 51,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "bpf": 280,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "perf_event_open": 241,
        "socket": 198,
        "socketpair": 199,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "kexec_load": 104,
        "kexec_file_load": 294,
        "init_module": 105,
        "finit_module": 273,
        "delete_module": 106,
        "userfaultfd": 282,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "pidfd_getfd": 438,
        "seccomp": 277,
    },
}
# what the sandbox refuses (clone is refused only when it would make a process; seccomp itself stays callable
# through prctl for further, stricter filters, but the seccomp() syscall is how we install ours, so it goes last)
DENIED = (
    "execve",
    "execveat",
    "fork",
    "vfork",
    "ptrace",
    "setsid",
    "setpgid",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "perf_event_open",
    "socket",
    "socketpair",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "pidfd_getfd",
)
CLONE_THREAD = 0x00010000

# classic BPF (linux/filter.h, linux/seccomp.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_KILL_PROCESS, _RET_ERRNO, _RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data; arg0's low word first (little-endian machines)
_PR_SET_NO_NEW_PRIVS, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC = 38, 1, 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def machine() -> str:
    """This machine's name as the filter knows it; OSError where the filter has no syscall table for it."""
    m = platform.machine()
    m = {"amd64": "x86_64", "arm64": "aarch64"}.get(m.lower(), m)
    if m not in _NR:
        raise OSError(errno.ENOSYS, f"no seccomp syscall table for {m}")
    return m


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    """One struct sock_filter, as the kernel reads it."""
    return struct.pack("=HBBI", code, jt, jf, k)


def program(arch: str) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions: check the ABI, refuse the denied calls, let threads through."""
    nr = _NR[arch]
    eperm, enosys = _RET_ERRNO | errno.EPERM, _RET_ERRNO | errno.ENOSYS
    denied = sorted({nr[n] for n in DENIED if n in nr})
    out: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, _ARCH[arch]),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch == "x86_64":
        out += [(_JGE_K, 0, 1, _X32_BIT), (_RET_K, 0, 0, _RET_KILL_PROCESS)]
    out += [(_JEQ_K, 0, 1, nr["clone3"]), (_RET_K, 0, 0, enosys)]
    # clone: a thread (CLONE_THREAD, which needs CLONE_VM and CLONE_SIGHAND) passes, a new process does not
    out += [
        (_JEQ_K, 0, 4, nr["clone"]),
        (_LD_W_ABS, 0, 0, _OFF_ARG0),
        (_JSET_K, 0, 1, CLONE_THREAD),
        (_RET_K, 0, 0, _RET_ALLOW),
        (_RET_K, 0, 0, eperm),
    ]
    for n in denied:
        out += [(_JEQ_K, 0, 1, n), (_RET_K, 0, 0, eperm)]
    out.append((_RET_K, 0, 0, _RET_ALLOW))
    return [(c, jt, jf, k) for c, jt, jf, k in out]


def apply() -> int:
    """Load the filter into every thread of this process (no_new_privs first, as the kernel asks of an
    unprivileged caller). Irrevocable. Returns the number of syscalls refused; raises OSError when it cannot."""
    arch = machine()
    insns = program(arch)
    code = b"".join(_insn(c, k, jt, jf) for c, jt, jf, k in insns)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(insns), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"no_new_privs: {os.strerror(err)}")
    if (
        libc.syscall(
            ctypes.c_long(_NR[arch]["seccomp"]),
            ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
            ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC),
            ctypes.byref(prog),
        )
        != 0
    ):
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter: {os.strerror(err)}")
    return len({_NR[arch][n] for n in DENIED if n in _NR[arch]}) + 2  # with clone (for processes) and clone3
