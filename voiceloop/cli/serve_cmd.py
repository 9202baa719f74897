"""``voiceloop serve``: the websocket audio bridge and its browser page."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from .asr_args import add_asr_args, second_opinion, whisper_options
from .llm_args import add_llm_args, llama_options, resolve_model
from .tool_args import add_tool_args, tool_factory
from .turn_args import add_turn_args, endpointing, turn_audio


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="websocket audio bridge with a browser page at /")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=os.environ.get("VOICELOOP_TOKEN"), help="required off loopback (or VOICELOOP_TOKEN)")
    p.add_argument("--max-sessions", type=int, default=4)
    p.add_argument("--idle-timeout", type=float, default=60.0, help="close a connection silent for this many seconds")
    p.add_argument("--allow-origin", action="append", default=[], help="extra browser Origin to accept (repeatable)")
    add_asr_args(p)
    add_llm_args(p)
    p.add_argument(
        "--offer-llm",
        action="append",
        default=[],
        metavar="LLM",
        help="also load this LLM (GGUF or catalog name); clients may choose it in hello's model (repeatable)",
    )
    add_turn_args(p)
    add_tool_args(p, default_on=False)
    p.add_argument("--voice", help="a Piper voice .onnx")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..io.websocket_server import BridgeOptions, BridgeServer, is_loopback
    from ..llm.llama import LlamaBackend
    from ..pipeline.agent import AgentOptions
    from ..pipeline.engines import Engines
    from ..tts.piper import PiperOptions

    options = BridgeOptions(
        host=args.host,
        port=args.port,
        token=args.token,
        max_sessions=args.max_sessions,
        idle_timeout_s=args.idle_timeout,
        allowed_origins=tuple(args.allow_origin),
        agent=AgentOptions(system=args.system),
        endpointing=endpointing(args),
        tools=tool_factory(args, always=True),
        tools_on=args.tools,
    )
    if not is_loopback(args.host) and not args.token:
        # Check before loading models: the answer does not depend on them.
        from ..errors import ConfigError

        raise ConfigError(f"refusing to listen on non-loopback address {args.host!r} without --token")
    print("loading models ...", file=sys.stderr)
    engines = Engines.load(
        whisper=whisper_options(args),
        second_opinion=second_opinion(args),
        llama=llama_options(args),
        piper=PiperOptions(model=args.voice),
        turn_audio=turn_audio(args),
    )
    engines.warm_up(tools=(make := tool_factory(args)) and make())
    offered = {}
    for name in args.offer_llm:
        base = llama_options(args)
        # A draft model pairs with one target's tokenizer: an offered LLM decodes without it.
        spec = "none" if base.speculative == "draft" else base.speculative
        opts = replace(base, model=resolve_model(name), speculative=spec, draft_model=None)
        other = engines.with_llm(LlamaBackend(opts))
        other.warm_up()
        offered[other.llm_name] = other
    server = BridgeServer(engines, options, models=offered)
    print(f"voiceloop bridge: open http://{args.host}:{args.port}/ in a browser (Ctrl-C stops)", file=sys.stderr)
    try:
        asyncio.run(server.serve_forever())
    except OSError as exc:
        from ..errors import VoiceloopError

        raise VoiceloopError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    finally:
        for e in (engines, *offered.values()):
            e.close()
    return 0
