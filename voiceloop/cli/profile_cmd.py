"""``voiceloop profile``: real audio through the real pipeline, where did the time go."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..metrics.budget import Budgets
from .asr_args import add_asr_args, second_opinion, whisper_options
from .llm_args import add_llm_args, llama_options
from .tool_args import add_tool_args, tool_factory
from .turn_args import add_turn_args, endpointing, turn_audio


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="stream recorded speech through the real pipeline in real time")
    p.add_argument("inputs", nargs="*", type=Path, help="WAV/FLAC files (default: a bundled sample)")
    p.add_argument("--json", dest="json_out", type=Path, help="write the report as JSON here")
    p.add_argument("--save-replies", type=Path, help="write each reply's audio as WAV into this folder")
    p.add_argument("--plot", type=Path, help="draw a latency waterfall PNG")
    p.add_argument("--strategy", choices=["speculative", "sequential", "both"], default="speculative")
    p.add_argument("--separate", action="store_true", help="each input is its own conversation")
    p.add_argument("--reference", type=Path, help="manifest.tsv or JSON {file: transcript} for WER")
    p.add_argument("--budgets", default="", help='override budgets, e.g. "asr=80,v2v=300"')
    add_asr_args(p)
    add_llm_args(p)
    add_turn_args(p)
    add_tool_args(p, default_on=False)
    p.add_argument("--voice", help="a Piper voice .onnx")
    p.add_argument("--llm-url", help="use an OpenAI-compatible server instead of the local GGUF, e.g. http://host:8080/v1")
    p.add_argument(
        "--llm-api", choices=["chat", "completions"], default="chat", help="with --llm-url (completions: base models)"
    )
    p.add_argument("--llm-model", default="default", help="model name sent to the --llm-url server")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pipeline.engines import Engines
    from ..profile.runner import (
        BUNDLED_SAMPLE,
        build_report,
        format_table,
        load_inputs,
        load_references,
        profile_inputs,
        save_replies,
        system_info,
    )
    from ..tts.piper import PiperOptions

    inputs = load_inputs(args.inputs or [BUNDLED_SAMPLE])
    try:
        budgets = Budgets.parse(args.budgets)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    references = load_references(args.reference) if args.reference else None
    print("loading models ...", file=sys.stderr)
    remote = None
    if args.llm_url:
        from ..llm.remote import RemoteBackend, RemoteOptions

        remote = RemoteBackend(RemoteOptions(url=args.llm_url, api=args.llm_api, model=args.llm_model))
    engines = Engines.load(
        whisper=whisper_options(args),
        second_opinion=second_opinion(args),
        llama=llama_options(args),
        piper=PiperOptions(model=args.voice),
        llm=remote,
        turn_audio=turn_audio(args),
    )
    engines.warm_up(tools=(make := tool_factory(args)) and make())
    system = system_info(engines)
    strategies = ["speculative", "sequential"] if args.strategy == "both" else [args.strategy]
    reports = {}
    for strategy in strategies:
        print(f"profiling {len(inputs)} input(s), strategy={strategy}, in real time ...", file=sys.stderr)
        spans, budgeter = asyncio.run(
            profile_inputs(
                engines,
                inputs,
                strategy=strategy,
                budgets=budgets,
                separate=args.separate,
                system=args.system,
                endpointing=endpointing(args),
                tools=tool_factory(args),
            )
        )
        report = build_report(
            spans, budgeter, strategy=strategy, system=system, references=references, separate=args.separate
        )
        reports[strategy] = report
        print(format_table(report))
        print()
        if args.save_replies:
            save_replies(spans, args.save_replies / strategy if len(strategies) > 1 else args.save_replies)
    out = reports[strategies[0]]
    if len(strategies) > 1:
        a, b = (reports[s]["summary"]["v2v_ms"] for s in strategies)
        ratio = {k: (b[k] / a[k] if a[k] and b[k] else None) for k in ("p50", "p90")}
        print(f"sequential / speculative v2v: p50 x{ratio['p50']:.2f}  p90 x{ratio['p90']:.2f}")
        out = dict(out)
        out["strategies"] = {s: r["summary"] for s, r in reports.items()}
        out["strategies_turns"] = {s: r["turns"] for s, r in reports.items()}
        out["ratio_sequential_over_speculative"] = ratio
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json_out}", file=sys.stderr)
    if args.plot:
        from ..profile.plot import plot_waterfall

        plot_waterfall(out, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    engines.close()
    return 0 if all(r["summary"]["answered"] for r in reports.values()) else 1
