"""``voiceloop bench llm``: speculative decoding modes measured side by side."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (llm: speculative decoding modes side by side)")
    which = p.add_subparsers(dest="bench", required=True)
    llm = which.add_parser("llm", help="none / prompt_lookup / draft on one target: ttft, tok/s, acceptance, losslessness")
    llm.add_argument("--target", default=None, help="target GGUF (default: Gemma 3 270M F32 written from the Q4_K_M)")
    llm.add_argument("--draft", default=None, help="draft GGUF with the same tokenizer (default: the embedded Q4_K_M)")
    llm.add_argument("--prompts", default=None, help="conversations JSON (default: the bundled set of 24)")
    llm.add_argument("--max-tokens", type=int, default=48)
    llm.add_argument("--repeats", type=int, default=2, help="passes over the set (modes interleaved in each)")
    llm.add_argument("--limit", type=int, default=None, help="only the first N conversations")
    llm.add_argument(
        "--no-gate",
        action="store_true",
        help="run every mode even where pricing says it cannot pay on this machine (to measure the loss)",
    )
    llm.add_argument("--json", dest="json_out", default=None, help="write the results as JSON to this file")
    llm.set_defaults(func=run_llm)


def run_llm(args: argparse.Namespace) -> int:
    from ..bench.llm import LLMBenchOptions, format_report, run_llm_bench

    gate = {} if not args.no_gate else {"gate": None}
    opts = LLMBenchOptions(
        target=args.target,
        draft=args.draft,
        prompts=args.prompts,
        max_tokens=args.max_tokens,
        repeats=args.repeats,
        limit=args.limit,
        **gate,
    )
    res = run_llm_bench(opts, progress=lambda m: print(m, file=sys.stderr))
    print(format_report(res))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=2)
    return 0
