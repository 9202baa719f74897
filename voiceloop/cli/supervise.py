"""Run a command in a child process and turn a native crash into one readable message.

A SIGILL or SIGSEGV inside llama.cpp, CTranslate2 or onnxruntime cannot be caught in the process
it kills. The parent here only waits: the child inherits the terminal (so Ctrl+C, prompts and
output behave as if it ran directly) and writes a faulthandler dump to a temporary file, from which
the parent names the engine that crashed (voiceloop.doctor.crash).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from ..doctor.crash import crash_from_returncode

CHILD_ENV = "VOICELOOP_SUPERVISED"
DUMP_ENV = "VOICELOOP_CRASH_DUMP"
_dump_file = None


def enable_crash_dump() -> None:
    """In a supervised child: on a fatal signal, dump the Python stacks where the parent reads them."""
    global _dump_file
    path = os.environ.get(DUMP_ENV)
    if path and _dump_file is None:
        _dump_file = open(path, "w")
        faulthandler.enable(file=_dump_file, all_threads=True)


def run_supervised(argv: Sequence[str], *, python: str | None = None) -> int:
    """Run ``python -m voiceloop ARGV`` as a child; its exit code, or 3 with a message after a crash."""
    fd, dump_path = tempfile.mkstemp(prefix="voiceloop-crash-", suffix=".txt")
    os.close(fd)
    env = {**os.environ, CHILD_ENV: "1", DUMP_ENV: dump_path}
    try:
        # The child gets its own process group, so a signal reaches it exactly once: the parent forwards
        # Ctrl+C (which the terminal sends to the parent's group) and a SIGINT/SIGTERM sent to the parent
        # alone (a service manager, a test). voiceloop never reads the terminal, so a background group is fine.
        proc = subprocess.Popen([python or sys.executable, "-m", "voiceloop", *argv], env=env, process_group=0)

        def forward(signum: int, _frame: object) -> None:
            if proc.poll() is None:
                proc.send_signal(signum)

        previous_int = signal.signal(signal.SIGINT, forward)
        previous_term = signal.signal(signal.SIGTERM, forward)
        try:
            rc = proc.wait()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
        if rc < 0 and -rc in (signal.SIGINT, signal.SIGTERM):
            return 128 - rc  # stopped on request: the shell's convention, no crash report
        try:
            with open(dump_path, errors="replace") as f:
                dump = f.read()
        except OSError:
            dump = ""
        crash = crash_from_returncode(rc, dump)
        if crash is None:
            return rc
        print(f"voiceloop: error: {crash.message()}", file=sys.stderr)
        return 3
    finally:
        try:
            os.unlink(dump_path)
        except OSError:
            pass
