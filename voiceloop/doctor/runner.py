"""Runs each doctor probe in its own child process and reads its verdict, or its crash."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .crash import crash_from_returncode


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    probe: str
    """A name in probes.PROBES, or "package.module:function"."""
    engine: str | None = None
    """Named in a crash message when the child dies of a signal."""
    required: bool = True
    """Needed by the main job (`voiceloop profile`); a failure makes the doctor exit non-zero."""
    timeout_s: float = 300.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    ok: bool
    detail: str
    fix: str = ""
    ms: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        return "FAIL" if self.check.required else "warn"


CHECKS: tuple[Check, ...] = (
    Check("cpu", "cpu"),
    Check("llama.cpp", "llama.cpp", engine="the LLM (llama.cpp)"),
    Check("models", "models"),
    Check("vad", "vad", engine="the VAD (onnxruntime)"),
    Check("whisper", "whisper", engine="Whisper ASR (CTranslate2)"),
    Check("llm", "llm", engine="the LLM (llama.cpp)"),
    Check("piper", "piper", engine="Piper TTS (onnxruntime)"),
    # Only `voiceloop assistant` needs sound devices; profile and serve run without them.
    Check("portaudio", "portaudio", engine="the audio devices (PortAudio)", required=False),
    Check("devices", "devices", engine="the audio devices (PortAudio)", required=False),
)


def run_check(check: Check, *, python: str | None = None) -> CheckResult:
    t0 = time.perf_counter_ns()
    try:
        proc = subprocess.run(
            [python or sys.executable, "-m", "voiceloop.doctor.probes", check.probe],
            capture_output=True,
            text=True,
            timeout=check.timeout_s,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(
            check,
            False,
            f"no answer in {check.timeout_s:.0f} s",
            "run `voiceloop doctor` again; if it hangs again, reinstall the engine's package",
        )
    ms = (time.perf_counter_ns() - t0) / 1e6
    crash = crash_from_returncode(proc.returncode, proc.stderr, engine=check.engine)
    if crash is not None:
        msg = crash.message()
        detail, _, fix = msg.partition(" Fix: ")
        return CheckResult(check, False, detail, fix, ms, {"signal": crash.signal_name})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return CheckResult(check, False, f"probe exited with code {proc.returncode}: {tail}", "", ms)
    verdict = json.loads(lines[-1])
    return CheckResult(check, bool(verdict["ok"]), verdict["detail"], verdict.get("fix", ""), ms, verdict.get("data", {}))


def run_checks(checks: tuple[Check, ...] = CHECKS) -> Iterator[CheckResult]:
    for check in checks:
        yield run_check(check)
