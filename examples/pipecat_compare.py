"""The same recorded speech through three local voice agents, measured the same way.

1. pipecat's stock local pipeline: WhisperSTTService (faster-whisper), OpenAILLMService against
   llama.cpp's server (the embedded Gemma, transcript chat format), PiperTTSService;
2. the same pipecat pipeline with voiceloop's services (streaming sized-window Whisper, the
   llama.cpp backend with KV reuse) in place of STT and LLM;
3. voiceloop's own pipeline (``voiceloop profile``, speculative strategy).

Each input is played in real time followed by 3 s of silence; v2v is the end of the user's speech
to the first reply audio handed to the output. Usage:

    python examples/pipecat_compare.py ../shared/data/real_speech/*.wav ../shared/data/real_speech/*.flac \
        --reference ../shared/data/real_speech/manifest.tsv --json pipecat-compare.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any


def file_v2v(report: dict[str, Any]) -> list[float]:
    """v2v against the file itself: first reply audio minus the last voiced sample (offline VAD),
    one definition for all three pipelines whatever their own VAD decided."""
    return [
        t["first_audio_ms"] - t["user_last_speech_ms"]
        for t in report["turns"]
        if t.get("first_audio_ms") is not None and t.get("user_last_speech_ms") is not None
    ]


def _row(name: str, report: dict[str, Any]) -> str:
    import numpy as np

    s = report["summary"]
    st = s["stages"]
    fv = file_v2v(report)
    v = {k: float(np.percentile(fv, q)) if fv else None for k, q in (("p50", 50), ("p90", 90), ("p95", 95))}

    def f(x: float | None) -> str:
        return f"{x:.0f}" if x is not None else "-"

    stages = " ".join(f"{f(st[k]['p50']):>6}" for k in ("vad", "asr", "llm", "clause", "tts", "endpoint"))
    wer = f"{s['wer']:.3f}" if "wer" in s else "-"
    return f"{name:<34} {s['answered']:>3}/{s['n']:<3} {f(v['p50']):>6} {f(v['p90']):>6} {f(v['p95']):>6} {stages} {wer:>6}"


def main() -> None:
    from voiceloop.integrations.pipecat.harness import profile_files
    from voiceloop.integrations.pipecat.pipelines import stock_pipeline, voiceloop_services_pipeline
    from voiceloop.llm.transcript_server import serve
    from voiceloop.models.registry import model_path
    from voiceloop.pipeline.engines import Engines
    from voiceloop.profile.runner import build_report, format_table, load_inputs, load_references, profile_inputs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", type=Path)
    ap.add_argument("--reference", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--only", choices=["stock", "services", "voiceloop"], action="append")
    args = ap.parse_args()
    logging.getLogger("pipecat").setLevel(logging.WARNING)
    try:
        from loguru import logger

        logger.remove()  # pipecat logs through loguru; keep the output to the tables
    except ImportError:
        pass
    refs = load_references(args.reference) if args.reference else None
    ways = args.only or ["stock", "services", "voiceloop"]
    reports: dict[str, dict[str, Any]] = {}
    if "stock" in ways:
        with serve(str(model_path("gemma-3-270m-q4_k_m"))) as url:
            reports["pipecat stock local pipeline"] = asyncio.run(
                profile_files(args.inputs, stock_pipeline(llm_url=url), strategy="pipecat-stock", references=refs)
            )
    if "services" in ways:
        reports["pipecat + voiceloop services"] = asyncio.run(
            profile_files(args.inputs, voiceloop_services_pipeline(), strategy="pipecat-voiceloop", references=refs)
        )
    if "voiceloop" in ways:
        engines = Engines.load()
        engines.warm_up()
        spans, budgeter = asyncio.run(profile_inputs(engines, load_inputs(list(args.inputs)), strategy="speculative"))
        reports["voiceloop pipeline (speculative)"] = build_report(
            spans, budgeter, strategy="speculative", system={}, references=refs
        )
        engines.close()
    for name, rep in reports.items():
        print(f"\n## {name}\n{format_table(rep)}")
    head = f"{'':<34} {'answered':>7} {'p50':>6} {'p90':>6} {'p95':>6} " + " ".join(
        f"{k:>6}" for k in ("vad", "asr", "llm", "clause", "tts", "endpt")
    )
    print("\nv2v ms from the end of speech in the file to the first reply audio (stages: p50 ms)  WER\n" + head)
    for name, rep in reports.items():
        print(_row(name, rep))
    if args.json:
        out = {k: v["summary"] | {"file_v2v_ms": file_v2v(v), "turns": v["turns"]} for k, v in reports.items()}
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
