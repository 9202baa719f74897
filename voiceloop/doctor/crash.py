"""A native crash told in words: which engine, which signal, what to do.

Native engines (llama.cpp, CTranslate2, onnxruntime, PortAudio) can kill the process with a
signal no Python code can catch. So work that may crash runs in a child process; when the child
dies of a signal, the parent names the engine from the child's faulthandler dump (the Python
frames that were running) and prints one readable message instead of "Illegal instruction".
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

# Python-side paths that identify each engine in a faulthandler stack, most specific first.
ENGINE_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the LLM (llama.cpp)", ("llama_cpp/", "voiceloop/llm/")),
    ("Whisper ASR (CTranslate2)", ("faster_whisper/", "ctranslate2/", "voiceloop/asr/")),
    ("Piper TTS (onnxruntime)", ("piper/", "voiceloop/tts/")),
    ("the VAD (onnxruntime)", ("voiceloop/audio/vad.py",)),
    ("the audio devices (PortAudio)", ("sounddevice.py", "voiceloop/io/local_audio.py")),
)

SIGNAL_WORDS = {
    signal.SIGILL: "illegal instruction",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "arithmetic fault",
    signal.SIGABRT: "abort",
    signal.SIGKILL: "killed (often the kernel's out-of-memory killer)",
}

_FIXES = {
    ("the LLM (llama.cpp)", signal.SIGILL): (
        "llama.cpp ran a CPU instruction this machine refuses (on Intel Xeons with AMX, ggml's AMX kernels). "
        "Run `voiceloop doctor`; to work around it now, set VOICELOOP_LLAMA_EXTRA_BUFTS=0, or rebuild without AMX: "
        "CMAKE_ARGS=\"-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' "
        "-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'\" "
        "pip install --no-cache-dir --force-reinstall llama-cpp-python"
    ),
    ("the LLM (llama.cpp)", None): (
        "reinstall llama-cpp-python without pip's cache (pip install --no-cache-dir --force-reinstall "
        "llama-cpp-python), check the model with `voiceloop models list`, then run `voiceloop doctor`"
    ),
    (None, signal.SIGILL): (
        "a native library was built for a newer CPU than this one; reinstall it without pip's cache "
        "(pip install --no-cache-dir --force-reinstall PACKAGE) and run `voiceloop doctor`"
    ),
    (None, signal.SIGKILL): "free memory or use a smaller model (`voiceloop models list`), then run `voiceloop doctor`",
    (None, None): "run `voiceloop doctor` to find the broken part; reinstalling it without pip's cache usually helps",
}


@dataclass(frozen=True, slots=True)
class Crash:
    engine: str | None
    signal: int

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    def message(self) -> str:
        what = self.engine or "a native library"
        words = SIGNAL_WORDS.get(self.signal)
        sig = f"{self.signal_name} ({words})" if words else self.signal_name
        fix = (
            _FIXES.get((self.engine, self.signal))
            or _FIXES.get((self.engine, None))
            or _FIXES.get((None, self.signal))
            or _FIXES[(None, None)]
        )
        return f"{what} crashed with {sig}. Fix: {fix}"


def engine_from_dump(dump: str) -> str | None:
    """The engine whose code was running in the crashing thread of a faulthandler dump.

    faulthandler lists the crashing thread first ("Current thread ...", most recent call first);
    the first frame that belongs to an engine names it.
    """
    blocks = re.split(r"\n(?=(?:Current thread|Thread) 0x)", dump)
    current = next((b for b in blocks if "Current thread" in b), dump)
    for line in current.splitlines():
        m = re.search(r'File "([^"]+)"', line)
        if not m:
            continue
        path = m.group(1).replace("\\", "/")
        for engine, needles in ENGINE_PATHS:
            if any(n in path for n in needles):
                return engine
    return None


def crash_from_returncode(returncode: int, dump: str = "", engine: str | None = None) -> Crash | None:
    """A Crash when a child's return code says it died of a signal (negative on POSIX)."""
    if returncode >= 0:
        # A shell reports 128+N; Python's subprocess gives -N.
        if returncode > 128 and returncode - 128 in SIGNAL_WORDS:
            returncode = -(returncode - 128)
        else:
            return None
    return Crash(engine=engine or engine_from_dump(dump), signal=-returncode)
