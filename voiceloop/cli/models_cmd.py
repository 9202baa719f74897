"""``voiceloop models list|path``."""

from __future__ import annotations

import argparse

from ..models import catalog, model_path, model_status


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list known models and their status, or print a model's path")
    msub = p.add_subparsers(dest="models_command", required=True)
    ls = msub.add_parser("list", help="every catalog model with its status")
    ls.set_defaults(func=_list)
    path = msub.add_parser("path", help="print a usable path for a model (assembles the Gemma GGUF once)")
    path.add_argument("name")
    path.set_defaults(func=_path)
    pull = msub.add_parser("pull", help="fetch a catalog model whose source is the Hugging Face hub (resumable, sha256)")
    pull.add_argument("name")
    pull.set_defaults(func=_pull)


def _list(args: argparse.Namespace) -> int:
    print(f"{'name':<28} {'kind':<4} {'status':<13} {'size':>8}  {'licence':<28} source")
    for name, e in catalog().items():
        status = model_status(name).value
        print(f"{name:<28} {e.kind:<4} {status:<13} {e.size_mb:>6.0f}MB  {e.licence[:28]:<28} {e.source}")
    return 0


def _path(args: argparse.Namespace) -> int:
    print(model_path(args.name))
    return 0


def _pull(args: argparse.Namespace) -> int:
    import sys

    from ..models.pull import pull

    print(pull(args.name, progress=sys.stderr.isatty()))
    return 0
