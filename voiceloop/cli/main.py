"""``voiceloop`` entry point: subcommands, logging setup, one readable line per error."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ..errors import VoiceloopError
from . import supervise

SUPERVISED = frozenset({"profile", "assistant", "serve", "bench"})
AUTOTUNED = frozenset({"profile", "assistant", "serve"})


def _first_run_tune(args: argparse.Namespace) -> None:
    """The first run on a machine measures engine threads once (VOICELOOP_AUTOTUNE=0 skips it)."""
    from ..core.machine import load_profile

    if os.environ.get("VOICELOOP_AUTOTUNE", "1") == "0" or getattr(args, "llm_url", None) or load_profile() is not None:
        return
    from ..doctor.tune import tune_and_save
    from ..models.registry import default_model, model_path

    try:
        from .llm_args import resolve_model

        llm = resolve_model(getattr(args, "llm", None)) or str(model_path(default_model("llm")))
    except VoiceloopError:
        return  # the command itself reports the missing model
    if not os.path.isfile(llm):
        return  # likewise
    print(
        "voiceloop: first run on this machine: measuring engine threads (once; `voiceloop doctor --tune` redoes it)",
        file=sys.stderr,
    )
    tune_and_save(report=lambda line: print(line, file=sys.stderr), llm_models=[llm])


def _configure_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("voiceloop")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def build_parser() -> argparse.ArgumentParser:
    from . import assistant_cmd, bench_cmd, doctor_cmd, models_cmd, profile_cmd, serve_cmd

    p = argparse.ArgumentParser(prog="voiceloop", description="Realtime voice agents, every millisecond shown.")
    p.add_argument("--log-level", default="warning", help="debug, info, warning (default), error")
    p.add_argument("--log-file", default=None, help="write logs to this file instead of stderr")
    sub = p.add_subparsers(dest="command", required=True)
    profile_cmd.add_parser(sub)
    models_cmd.add_parser(sub)
    serve_cmd.add_parser(sub)
    assistant_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    doctor_cmd.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level, args.log_file)
    if argv is None and args.command in SUPERVISED and not os.environ.get(supervise.CHILD_ENV):
        # From the command line, the commands that load native engines run in a child so that a
        # crash (SIGILL on an AMX Xeon, SIGSEGV) becomes one readable message.
        return supervise.run_supervised(sys.argv[1:])
    supervise.enable_crash_dump()
    if args.command in AUTOTUNED:
        _first_run_tune(args)
    try:
        return int(args.func(args) or 0)
    except VoiceloopError as exc:
        print(f"voiceloop: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("voiceloop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error worth a traceback.
        sys.stdout = open(os.devnull, "w")
        return 0
