"""The machine profile: engine thread counts measured on this CPU (``voiceloop doctor --tune``).

Thread counts that are right on one CPU are wrong on another (a 270M model decodes as fast on
one EPYC core as on two, but not on a Xeon at twice the cost per token). So they are measured,
not assumed, and kept per CPU in ``$VOICELOOP_HOME/machine.json``; a profile written on another
CPU (a shared home directory) is ignored. Without a profile the built-in defaults apply.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("voiceloop.machine")

# Built-in defaults, used until a profile exists (measured on a 2-core AMD EPYC).
DEFAULT_LLM_THREADS = 1
DEFAULT_WHISPER_THREADS = 1
DEFAULT_PIPER_THREADS = 2


@dataclass(frozen=True, slots=True)
class MachineProfile:
    cpu: str
    """CPU model and logical CPU count: the profile applies only to this machine."""
    whisper_threads: int
    piper_threads: int
    llm_threads: dict[str, int] = field(default_factory=dict)
    """Decode threads per GGUF file name."""
    measured: dict[str, Any] = field(default_factory=dict)
    """The timings the choice came from (ms per call at each thread count)."""


def machine_key() -> str:
    from ..llm.cpu_policy import read_cpu_info

    return read_cpu_info().describe()


def profile_path() -> Path:
    """``$VOICELOOP_MACHINE_PROFILE``, else ``$VOICELOOP_HOME/machine.json``."""
    explicit = os.environ.get("VOICELOOP_MACHINE_PROFILE")
    if explicit:
        return Path(explicit)
    from ..models.registry import voiceloop_home

    return voiceloop_home() / "machine.json"


def load_profile() -> MachineProfile | None:
    try:
        data = json.loads(profile_path().read_text())
        prof = MachineProfile(**data)
    except (OSError, ValueError, TypeError):
        return None
    if prof.cpu != machine_key():
        log.info("machine profile %s is for %s, not this machine: ignored", profile_path(), prof.cpu)
        return None
    return prof


def save_profile(prof: MachineProfile) -> Path:
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(asdict(prof), indent=2))
    os.replace(tmp, path)
    return path


def llm_threads(model_file: str | Path) -> int:
    prof = load_profile()
    if prof is None:
        return DEFAULT_LLM_THREADS
    name = Path(model_file).name
    if name in prof.llm_threads:
        return prof.llm_threads[name]
    # An unmeasured model: the most threads any measured model chose (bigger models want more, never fewer).
    return max(prof.llm_threads.values(), default=DEFAULT_LLM_THREADS)


def whisper_threads() -> int:
    prof = load_profile()
    return prof.whisper_threads if prof else DEFAULT_WHISPER_THREADS


def piper_threads() -> int:
    prof = load_profile()
    return prof.piper_threads if prof else DEFAULT_PIPER_THREADS


def choose_threads(ms_by_threads: dict[int, float], *, min_gain: float = 0.10) -> int:
    """Fewest threads within reach of the fastest: one more thread must save at least ``min_gain``.

    Engines share the cores (ASR and the LLM overlap during speech, TTS and the LLM after it), so
    a thread that buys 3 % is worth less than the core it takes from the others.
    """
    best = min(ms_by_threads)
    for n in sorted(ms_by_threads)[1:]:
        if ms_by_threads[n] <= ms_by_threads[best] * (1 - min_gain):
            best = n
    return best
