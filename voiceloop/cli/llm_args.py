"""The local-LLM options shared by profile, serve and assistant."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..llm.llama import LlamaOptions


def add_llm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--llm",
        help="a GGUF file or a catalog name (`voiceloop models list`); default: the catalog's default LLM, "
        "Qwen2.5-Coder 1.5B Instruct",
    )
    p.add_argument(
        "--speculative",
        choices=["none", "prompt_lookup", "draft"],
        default="none",
        help="speculative decoding (lossless); draft needs --draft-model (see `voiceloop bench llm`)",
    )
    p.add_argument("--draft-model", help="a smaller GGUF (file or catalog name) with the --llm model's tokenizer")
    p.add_argument("--system", help="the system prompt / persona (default: a prompt written for speech)")
    p.add_argument(
        "--history-tokens",
        type=_history_tokens,
        help="the prompt's token budget for the conversation, the system turn included (default: the context "
        "less 512); a smaller one remembers fewer turns",
    )


def _history_tokens(value: str) -> int:
    n = int(value) if value.isdigit() else 0
    if n < 256:
        # The backend's own floor; a budget under the system turn's size (with tools ~1,300) keeps no turn at all.
        raise argparse.ArgumentTypeError(f"a token count of at least 256, not {value!r}")
    return n


def resolve_model(value: str | None) -> str | None:
    """A GGUF path, or a catalog name turned into its path (assembled on first use)."""
    if value is None or Path(value).suffix == ".gguf" or Path(value).exists():
        return value
    from ..models.registry import catalog, model_path

    if value in catalog():
        return str(model_path(value))
    return value  # the backend reports the missing file


def llama_options(args: argparse.Namespace) -> LlamaOptions:
    return LlamaOptions(
        model=resolve_model(args.llm),
        speculative=args.speculative,
        draft_model=resolve_model(args.draft_model),
        history_tokens=getattr(args, "history_tokens", None),
    )
