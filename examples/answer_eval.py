"""Answer accuracy on voiceloop's own question set (examples/questions/questions.json).

Three steps, each usable alone:

    # 1. speak the questions: the embedded Piper voice and espeak-ng voices (apt-get install espeak-ng)
    python examples/answer_eval.py synth OUT_DIR
    # 2. run them through the real pipeline, one conversation per question (or all as one conversation)
    voiceloop profile OUT_DIR/*.wav --separate --json out.json --reference OUT_DIR/manifest.tsv [--llm NAME]
    # 3. score the replies
    python examples/answer_eval.py score out.json

    # or ask the LLM directly with the text (no ASR), for a quick model ladder:
    python examples/answer_eval.py text --llm qwen2.5-coder-0.5b-instruct-q4_k_m [--speculative prompt_lookup]

Scores are reported per split: 'tune' questions were looked at while writing the system prompt,
'check' questions only at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions" / "questions.json"
ESPEAK_VOICES = ("en-us+m3", "en-gb+f2")


def load_questions() -> list[dict]:
    return json.loads(QUESTIONS.read_text())["questions"]


def correct(question: dict, reply: str) -> bool:
    text = reply.lower()
    if any(re.search(p, text) for p in question.get("reject", [])):
        return False
    return any(re.search(p, text) for p in question["accept"])


def report(rows: list[tuple[dict, str]], label: str) -> dict:
    out = {"label": label}
    for split in ("tune", "check", "all"):
        sel = [(q, r) for q, r in rows if split == "all" or q["split"] == split]
        ok = sum(correct(q, r) for q, r in sel)
        out[split] = {"correct": ok, "n": len(sel), "accuracy": ok / len(sel) if sel else None}
    a = out["all"]
    print(
        f"{label}: {a['correct']}/{a['n']} = {a['accuracy']:.0%}  "
        f"(tune {out['tune']['correct']}/{out['tune']['n']}, check {out['check']['correct']}/{out['check']['n']})"
    )
    return out


def cmd_synth(args: argparse.Namespace) -> None:
    from voiceloop.audio.files import write_wav
    from voiceloop.tts.piper import PiperTTS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tts = PiperTTS()
    manifest = []
    for q in load_questions():
        import numpy as np

        pcm = np.concatenate(list(tts.synthesize(q["text"])))
        name = f"{q['id']}-piper-joe.wav"
        write_wav(out / name, pcm, tts.sample_rate)
        manifest.append((name, q["text"]))
        for voice in ESPEAK_VOICES if not args.piper_only else ():
            name = f"{q['id']}-espeak-{voice.replace('+', '-')}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(out / name), q["text"]], check=True)
            manifest.append((name, q["text"]))
    (out / "manifest.tsv").write_text("file\ttranscript\n" + "".join(f"{n}\t{t}\n" for n, t in manifest))
    print(f"{len(manifest)} clips in {out} (manifest.tsv for `voiceloop profile --reference`)")


def cmd_score(args: argparse.Namespace) -> None:
    by_id = {q["id"]: q for q in load_questions()}
    rows_by_voice: dict[str, list[tuple[dict, str]]] = {}
    for path in args.profiles:
        data = json.loads(Path(path).read_text())
        for t in data["turns"]:
            stem = Path(t["input"]).stem
            qid, _, voice = stem.partition("-")
            if qid in by_id:
                rows_by_voice.setdefault(voice or "?", []).append((by_id[qid], t.get("reply") or ""))
    results = [report(rows, f"{Path(args.profiles[0]).stem} voice={v}") for v, rows in sorted(rows_by_voice.items())]
    every = [r for rows in rows_by_voice.values() for r in rows]
    results.append(report(every, "all voices"))
    if args.show_wrong:
        for q, r in every:
            if not correct(q, r):
                print(f"  wrong {q['id']} {q['text']!r} -> {r!r}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def cmd_text(args: argparse.Namespace) -> None:
    from voiceloop.cli.llm_args import resolve_model
    from voiceloop.llm.llama import LlamaBackend, LlamaOptions
    from voiceloop.llm.prompt import Message

    opts = LlamaOptions(
        model=resolve_model(args.llm), speculative=args.speculative, draft_model=resolve_model(args.draft_model)
    )
    backend = LlamaBackend(opts)
    system = [Message("system", args.system)] if args.system else []
    rows = []
    history: list[Message] = []
    for q in load_questions():
        ctx = system + (history if args.conversation else [])
        reply = "".join(backend.stream(ctx, q["text"], max_tokens=48)).strip()
        rows.append((q, reply))
        history += [Message("user", q["text"]), Message("assistant", reply)]
        if args.verbose or (args.show_wrong and not correct(q, reply)):
            print(f"  {'ok   ' if correct(q, reply) else 'wrong'} {q['id']} {q['text']!r} -> {reply!r}")
    res = report(rows, f"{backend.model_path.name} speculative={args.speculative}")
    if args.conversation:
        from voiceloop.metrics.repetition import repetition

        rep = repetition([q["text"] for q, _ in rows], [r for _, r in rows])
        print(f"replies: {rep.distinct} distinct of {rep.replies}, {len(rep.repeats)} copied an earlier reply")
        res["repeats"] = len(rep.repeats)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth", help="speak the questions into WAV files plus manifest.tsv")
    s.add_argument("out")
    s.add_argument("--piper-only", action="store_true")
    s.set_defaults(func=cmd_synth)
    s = sub.add_parser("score", help="score the replies of `voiceloop profile --json` runs")
    s.add_argument("profiles", nargs="+")
    s.add_argument("--show-wrong", action="store_true")
    s.add_argument("--json")
    s.set_defaults(func=cmd_score)
    s = sub.add_parser("text", help="ask the LLM the questions as text (no ASR)")
    s.add_argument("--llm")
    s.add_argument("--speculative", default="none", choices=["none", "prompt_lookup", "draft"])
    s.add_argument("--draft-model")
    s.add_argument("--system")
    s.add_argument("--conversation", action="store_true", help="all questions as one conversation")
    s.add_argument("--show-wrong", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true")
    s.add_argument("--json")
    s.set_defaults(func=cmd_text)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
