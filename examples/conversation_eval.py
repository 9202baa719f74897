"""One conversation, text in, through the real LLM: how many replies read the user's line back, copy an
earlier reply or close with an earlier sentence's opening (``voiceloop.metrics.repetition``).

    # the lines of a text file (one user line each; # comments skipped) as one conversation
    python examples/conversation_eval.py examples/conversations/remarks.txt [--llm NAME] [--tools] [--json out.json]
    # the transcripts of a `voiceloop profile --json` run (what the recogniser heard), as one conversation
    python examples/conversation_eval.py q15.json

The history is kept as the agent keeps it (every exchange, trimmed by tokens in the backend), greedy replies of
at most the agent's ``max_reply_tokens``. ``--tools``: the built-in tools are offered, as in `voiceloop assistant`
(a call is run and its follow-up is the reply; the round stays in the history).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from voiceloop.metrics.repetition import repetition
from voiceloop.pipeline.agent import AgentOptions


def load_lines(path: Path) -> list[str]:
    if path.suffix == ".json":
        return [t["transcript"] for t in json.loads(path.read_text())["turns"] if t.get("transcript")]
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lines", type=Path)
    ap.add_argument("--llm", help="catalog name or GGUF path (default: the default LLM)")
    ap.add_argument("--tools", action="store_true", help="offer the built-in tools, as the assistant does")
    ap.add_argument("--no-recap", action="store_true", help="with --tools: earlier turns as chat turns, not recapped")
    ap.add_argument("--recap-turns", type=int, help="with --tools: how many earlier turns the recap tells (default all)")
    ap.add_argument("--json")
    args = ap.parse_args()

    from voiceloop.cli.llm_args import resolve_model
    from voiceloop.llm.backend import GenerationStats
    from voiceloop.llm.llama import LlamaBackend, LlamaOptions
    from voiceloop.llm.prompt import Message

    llm = LlamaBackend(LlamaOptions(model=resolve_model(args.llm)))
    if args.no_recap:
        import dataclasses

        llm.prompt = dataclasses.replace(llm.prompt, recap_with_tools=False)
    if args.recap_turns is not None:
        import dataclasses

        llm.prompt = dataclasses.replace(llm.prompt, recap_turns=args.recap_turns)
    lines = load_lines(args.lines)
    history: list[Message] = []
    replies: list[str] = []
    t0 = time.perf_counter()
    runner = schemas = None
    if args.tools:
        from voiceloop.tools import Timers, ToolRunner, builtin_tools

        runner = ToolRunner([*builtin_tools(), *Timers().tools()])
        schemas = runner.schemas()
    n = AgentOptions().max_reply_tokens
    redone = []  # replies decoded again because they read the line back (voiceloop.llm.readback)
    for line in lines:
        after: list[Message] = []
        st = GenerationStats()
        reply = "".join(llm.stream(history, line, max_tokens=n, stats=st, **({"tools": schemas} if schemas else {})))
        reply = reply.strip()
        if st.read_back_retries:
            redone.append(len(replies))
        if runner is not None:
            import asyncio

            from voiceloop.tools import ToolCallFilter

            f = ToolCallFilter()
            reply = (f.feed(reply) + f.flush()).strip()
            if f.calls:
                results = [asyncio.run(runner.run(c)) for c in f.calls]
                after = [Message("assistant", "\n".join(c.raw for c in f.calls))]
                after += [Message("tool", r.content) for r in results]
                reply = "".join(llm.stream(history, line, max_tokens=n, tools=schemas, after=after, tool_choice="none"))
                reply = f"[{', '.join(c.name for c in f.calls)}] " + reply.strip()
        replies.append(reply)
        history += [Message("user", line), *after, Message("assistant", reply.split("] ", 1)[-1])]
    rep = repetition(lines, replies, {i for i, r in enumerate(replies) if r.startswith("[")})
    for i, (line, reply) in enumerate(zip(lines, replies, strict=True)):
        marks = (("ECHO ", rep.echoes), ("COPY ", rep.repeats), ("FORM ", rep.formulas), ("TMPL ", rep.templates))
        marks += (("RUT  ", rep.ruts),)
        mark = next((m for m, idx in marks if i in idx), "     ")
        print(f"{mark}{line[:60]!r} -> {reply[:90]!r}{'  (decoded again: read the line back)' if i in redone else ''}")
    print(
        f"{llm.model_path.name}: {len(lines)} turns, {rep.distinct} distinct replies, {len(rep.repeats)} copied an "
        f"earlier reply, {len(rep.echoes)} read the user's line back, {len(rep.formulas)} closed with an earlier "
        f"sentence's opening, {len(rep.templates)} opened as an earlier reply did, "
        f"{len(rep.ruts)} opened as the two before; {len(redone)} decoded again unheard "
        f"after reading the line back ({time.perf_counter() - t0:.0f} s)"
    )
    if args.json:
        out = {"lines": lines, "replies": replies, "echoes": list(rep.echoes), "repeats": list(rep.repeats)}
        out["formulas"], out["templates"] = list(rep.formulas), list(rep.templates)
        out["ruts"] = list(rep.ruts)
        out["decoded_again"] = redone
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
