"""``voiceloop doctor --tune``: each engine's cost per call at 1, 2, ... threads, on this machine.

Runs in a child process (a crash while measuring is reported like any doctor check) and writes
the machine profile (voiceloop.core.machine) that the engines read their thread counts from.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.machine import MachineProfile, choose_threads, machine_key, save_profile

MAX_THREADS = 4


def thread_counts() -> list[int]:
    return list(range(1, min(os.cpu_count() or 1, MAX_THREADS) + 1))


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # first call pays allocations
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return statistics.median(times)


def measure(llm_models: list[str] | None = None) -> dict[str, Any]:
    """ms per call: Whisper on the bundled 1.7 s clip, Piper on one clause, each LLM per decoded token."""
    import llama_cpp

    from ..asr.whisper import WhisperASR, WhisperOptions
    from ..audio.files import read_audio_16k
    from ..llm.cpu_policy import install
    from ..models.registry import catalog, model_path, model_status
    from ..tts.piper import PiperOptions, PiperTTS

    install()
    clip = read_audio_16k(Path(__file__).resolve().parent.parent / "assets" / "what_time_is_it.wav")
    out: dict[str, Any] = {"whisper": {}, "piper": {}, "llm": {}}
    for n in thread_counts():
        asr = WhisperASR(WhisperOptions(cpu_threads=n))
        out["whisper"][n] = _median_ms(lambda asr=asr: asr.transcribe(clip), 5)
        tts = PiperTTS(PiperOptions(threads=n))
        out["piper"][n] = _median_ms(lambda tts=tts: list(tts.synthesize("It is a quarter past eleven.")), 5)
    if llm_models is None:
        llm_models = [
            str(model_path(name))
            for name, e in catalog().items()
            if e.kind == "llm" and e.chunks and model_status(name).value in ("installed", "not verified")
        ]
    for path in llm_models:
        per: dict[int, float] = {}
        for n in thread_counts():
            llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=n, n_threads_batch=n, verbose=False)
            prompt = llm.tokenize(b"The weather today is", add_bos=True)
            llm.eval(prompt)
            base = llm.n_tokens

            def decode(llm=llm, base=base) -> None:
                llm.n_tokens = base  # rewind the KV cache: every repeat decodes the same 16 tokens
                for _ in range(16):
                    llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])

            per[n] = _median_ms(decode, 3) / 16
            del llm
        out["llm"][Path(path).name] = per
    return out


def profile_from(measured: dict[str, Any]) -> MachineProfile:
    def ints(d: dict) -> dict[int, float]:
        return {int(k): float(v) for k, v in d.items()}

    return MachineProfile(
        cpu=machine_key(),
        whisper_threads=choose_threads(ints(measured["whisper"])),
        piper_threads=choose_threads(ints(measured["piper"])),
        llm_threads={name: choose_threads(ints(per)) for name, per in measured["llm"].items()},
        measured=measured,
    )


def probe() -> tuple[bool, str, str, dict[str, Any]]:
    """The doctor probe: measure in this (child) process."""
    models = os.environ.get("VOICELOOP_TUNE_MODELS")
    measured = measure(models.split(os.pathsep) if models else None)
    return True, "measured", "", measured


def tune_and_save(*, report: Callable[[str], object] = print, llm_models: list[str] | None = None) -> MachineProfile | None:
    from .runner import Check, run_check

    env_models = os.pathsep.join(llm_models) if llm_models else None
    if env_models:
        os.environ["VOICELOOP_TUNE_MODELS"] = env_models
    try:
        res = run_check(Check("tune", "voiceloop.doctor.tune:probe", engine=None, timeout_s=900))
    finally:
        os.environ.pop("VOICELOOP_TUNE_MODELS", None)
    if not res.ok:
        report(f"FAIL  tune       {res.detail}" + (f"\n                 fix: {res.fix}" if res.fix else ""))
        return None
    prof = profile_from(res.data)

    def row(label: str, per: dict, chosen: int) -> str:
        cells = "  ".join(f"{k}t {float(v):6.1f}" for k, v in sorted(per.items(), key=lambda kv: int(kv[0])))
        return f"tune  {label:<42} {cells}  -> {chosen} thread{'s' if chosen > 1 else ''}"

    report(f"tune  machine: {prof.cpu}  (ms per call; LLM: ms per decoded token)")
    report(row("whisper (1.7 s clip)", res.data["whisper"], prof.whisper_threads))
    report(row("piper (one clause)", res.data["piper"], prof.piper_threads))
    for name, per in res.data["llm"].items():
        report(row(f"llm {name}", per, prof.llm_threads[name]))
        # A floor for the reply's first audio on this CPU: the last Whisper pass, ~11 LLM tokens (the turn's
        # tail and a first clause), one Piper clause. Measured v2v p50 sits at 1.0-1.5x this floor.
        fastest = {k: float(min(v.values())) for k, v in (("whisper", res.data["whisper"]), ("piper", res.data["piper"]))}
        floor = fastest["whisper"] + 11 * float(min(per.values())) + fastest["piper"]
        if floor > 600:
            report(
                f"tune  note: with {name} a reply's first audio needs at least ~{floor:.0f} ms on this CPU "
                "(a smaller model, `--llm NAME` from `voiceloop models`, is faster and less often right)"
            )
    path = save_profile(prof)
    report(f"tune  saved {path}")
    return prof
