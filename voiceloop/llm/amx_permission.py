"""Withhold Intel AMX from this process, so that ggml skips its AMX kernels and keeps its repacked ones.

On Linux a process must ask for AMX's tile state before it may use it (``arch_prctl(ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA)``), and ggml registers its AMX buffer type only when that request succeeds
(``ggml_amx_init`` in ggml-cpu/amx/amx.cpp; otherwise it prints "AMX is not ready to be used!" and goes on
without it). ggml's AMX kernels crash with SIGILL on the Xeons they target (see ``cpu_policy``), and the only
switch llama.cpp offers, ``use_extra_bufts``, also drops the repacked Q4_K/Q4_0 kernels: on a 2-vCPU Zen 4 a
1.5B model's 8-token prompt batch takes ~35 % longer without them.

A seccomp filter that answers exactly that request with EPERM removes AMX alone: the repacked kernels stay. It is
installed once, for every thread of the process (``SECCOMP_FILTER_FLAG_TSYNC``), before any model is loaded. What
it costs: nothing in this process can use AMX (onnxruntime, CTranslate2 and oneDNN then use their AVX-512 paths,
as on any CPU without AMX), and a filter cannot be removed. Without CAP_SYS_ADMIN the kernel requires
``no_new_privs`` first, which children inherit (a setuid program run from this process gains no privileges).
Linux x86-64 only; everywhere else ``withhold_amx`` reports why it did nothing.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import platform
import struct
import sys
import threading
from dataclasses import dataclass

log = logging.getLogger("voiceloop.llm")

SYS_ARCH_PRCTL = 158  # x86-64
SYS_SECCOMP = 317
ARCH_GET_XCOMP_PERM = 0x1022
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
AUDIT_ARCH_X86_64 = 0xC000003E
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000


@dataclass(frozen=True, slots=True)
class Withheld:
    ok: bool
    """True when AMX can no longer be granted to this process."""
    reason: str


def _bpf_program() -> bytes:
    """Classic BPF over ``struct seccomp_data`` (nr at 0, arch at 4, args[0] from 16): arch_prctl with
    ARCH_REQ_XCOMP_PERM gets EPERM, every other call (and every other arch_prctl) is allowed."""

    def stmt(code: int, k: int) -> bytes:
        return struct.pack("HBBI", code, 0, 0, k)

    def jeq(k: int, skip_if_not: int) -> bytes:
        return struct.pack("HBBI", 0x05 | 0x10, 0, skip_if_not, k)  # BPF_JMP | BPF_JEQ | BPF_K

    load = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
    ret = 0x06  # BPF_RET | BPF_K
    return b"".join(
        [
            stmt(load, 4),
            jeq(AUDIT_ARCH_X86_64, 5),
            stmt(load, 0),
            jeq(SYS_ARCH_PRCTL, 3),
            stmt(load, 16),  # the low 32 bits of args[0] (little-endian)
            jeq(ARCH_REQ_XCOMP_PERM, 1),
            stmt(ret, SECCOMP_RET_ERRNO | errno.EPERM),
            stmt(ret, SECCOMP_RET_ALLOW),
        ]
    )


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def supported() -> bool:
    return sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")


def amx_granted() -> bool | None:
    """Whether this process may already use AMX's tile data (then nothing can withhold it); None if unknown."""
    if not supported():
        return None
    mask = ctypes.c_ulong(0)
    libc = _libc()
    if libc.syscall(SYS_ARCH_PRCTL, ctypes.c_long(ARCH_GET_XCOMP_PERM), ctypes.byref(mask)) != 0:
        return None
    return bool(mask.value & (1 << XFEATURE_XTILEDATA))


def request_amx() -> int:
    """Ask for AMX as ggml does; 0 when granted, else the errno (EPERM once withheld; EOPNOTSUPP or EINVAL on a
    CPU or kernel without AMX)."""
    libc = _libc()
    ctypes.set_errno(0)
    r = libc.syscall(SYS_ARCH_PRCTL, ctypes.c_long(ARCH_REQ_XCOMP_PERM), ctypes.c_ulong(XFEATURE_XTILEDATA))
    return 0 if r == 0 else ctypes.get_errno()


_lock = threading.Lock()
_done: Withheld | None = None


def withhold_amx() -> Withheld:
    """Install the filter (once per process) and check that it holds."""
    global _done
    with _lock:
        if _done is None:
            _done = _withhold()
            log.info("AMX for this process: %s", _done.reason)
        return _done


def _withhold() -> Withheld:
    if not supported():
        return Withheld(False, f"seccomp filter not available on {sys.platform}/{platform.machine()}")
    if amx_granted():
        return Withheld(False, "AMX was already granted to this process (a library asked before the models loaded)")
    libc = _libc()
    prog = _bpf_program()
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))

    def install() -> int:
        ctypes.set_errno(0)
        r = libc.syscall(
            ctypes.c_long(SYS_SECCOMP),
            ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
            ctypes.c_ulong(SECCOMP_FILTER_FLAG_TSYNC),
            ctypes.byref(fprog),
        )
        return 0 if r == 0 else (ctypes.get_errno() or -1)

    err = install()
    if err == errno.EACCES:
        # Unprivileged: the kernel wants no_new_privs first (so that a filter cannot fool a setuid program).
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return Withheld(False, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {errno.errorcode.get(ctypes.get_errno(), '?')}")
        err = install()
    if err:
        name = errno.errorcode.get(err, str(err)) if err > 0 else "a thread could not be synchronised"
        return Withheld(False, f"seccomp filter refused ({name})")
    got = request_amx()
    if got != errno.EPERM:
        return Withheld(False, f"seccomp filter installed but AMX requests still answer {errno.errorcode.get(got, got)}")
    return Withheld(True, "AMX withheld (a seccomp filter answers arch_prctl(ARCH_REQ_XCOMP_PERM) with EPERM)")
