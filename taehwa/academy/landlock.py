"""Linux Landlock, called through ctypes: a process limits itself (and every child it starts) to the files it names
and to no TCP at all. Unprivileged, kernel-enforced and irrevocable once applied; the academy's sandbox applies it
before any submitted code runs. See the kernel's Documentation/userspace-api/landlock.rst for the ABI."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterable
from pathlib import Path

# syscall numbers: the same on x86_64 and aarch64 (both use the generic table for new calls)
_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446
_VERSION_FLAG = 1  # LANDLOCK_CREATE_RULESET_VERSION
_RULE_PATH_BENEATH, _PR_SET_NO_NEW_PRIVS = 1, 38

# filesystem rights, and the ABI each appeared in
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights that apply to a plain file
READ = EXECUTE | READ_FILE | READ_DIR
WRITE = READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM | MAKE_FIFO | TRUNCATE | REFER
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    r = _libc.syscall(_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION_FLAG))
    return int(r) if r > 0 else 0


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"landlock {what}: {os.strerror(err)}")


def restrict(read: Iterable[Path], write: Iterable[Path]) -> int:
    """Confine this process: read (and execute) only beneath `read`, read and write only beneath `write`, no TCP
    bind or connect (ABI ≥ 4), no abstract Unix sockets or signals outside (ABI ≥ 6). Paths that do not exist are
    skipped. Returns the ABI applied; raises OSError when the kernel has no Landlock."""
    version = abi()
    if version < 1:
        raise OSError("this kernel has no Landlock (or it is disabled)")
    fs = _FS_BY_ABI.get(version, _FS_BY_ABI[5])
    net = NET_BIND_TCP | NET_CONNECT_TCP if version >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if version >= 6 else 0
    attr = (
        struct.pack("=QQQ", fs, net, scoped)
        if version >= 6
        else (struct.pack("=QQ", fs, net) if version >= 4 else struct.pack("=Q", fs))
    )
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = _libc.syscall(_CREATE, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("create_ruleset")
    try:
        for paths, rights in ((read, READ), (write, WRITE)):
            for p in paths:
                _allow(int(ruleset), Path(p), rights & fs)
        if _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _fail("no_new_privs")
        if _libc.syscall(_RESTRICT, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise _fail("restrict_self")
    finally:
        os.close(int(ruleset))
    return version


def _allow(ruleset: int, path: Path, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not path.is_dir():
            rights &= _FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)  # the kernel's struct is packed
        if (
            _libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), rule, ctypes.c_uint32(0))
            != 0
        ):
            raise _fail(f"add_rule {path}")
    finally:
        os.close(fd)
