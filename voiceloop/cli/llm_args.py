"""The local-LLM options shared by profile, serve and assistant."""

from __future__ import annotations

import argparse

from ..llm.llama import LlamaOptions


def add_llm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", help="a GGUF model file (default: the embedded Gemma 3 270M Q4_K_M)")
    p.add_argument(
        "--speculative",
        choices=["none", "prompt_lookup", "draft"],
        default="none",
        help="speculative decoding (lossless); draft needs --draft-model. Default none: on the embedded "
        "Q4_K_M a verify batch costs about 2 tokens, so drafting does not pay (see `voiceloop bench llm`)",
    )
    p.add_argument("--draft-model", help="a smaller GGUF with the --llm model's tokenizer, for --speculative draft")


def llama_options(args: argparse.Namespace) -> LlamaOptions:
    return LlamaOptions(model=args.llm, speculative=args.speculative, draft_model=args.draft_model)
