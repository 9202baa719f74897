"""Fit the second opinion: when is Whisper tiny.en unsure enough to ask Whisper base, and whose text to keep?

    python examples/asr_second_opinion.py /tmp/toolset/manifest.tsv /tmp/qset/manifest.tsv [--json out.json]

Each clip is transcribed by tiny.en (with its mean token log-probability) and by base. For every threshold tiny's
text stands when its confidence is at or above the threshold; below it base re-hears the clip. Base's text
is kept only when it is surer than tiny's by a margin. The table gives WER per split and the share of clips
re-heard (each costs one base pass, ~100 ms on one thread here). The split of a clip comes from its id (`tNN` in
examples/tools/requests.json, `qNN` in examples/questions). Both are chosen on the tune split only: the margin with
the lowest tune WER when every clip is re-heard, then the lowest threshold within 0.005 of it, so the fewest turns
pay for base. Clips come from `tool_eval.py synth` and `answer_eval.py synth` (Piper + espeak-ng).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np

from voiceloop.asr.whisper import WhisperASR, WhisperOptions
from voiceloop.audio.files import read_audio_16k
from voiceloop.metrics.wer import wer
from voiceloop.profile.runner import load_references

HERE = Path(__file__).resolve().parent


def splits() -> dict[str, str]:
    out = {r["id"]: r["split"] for r in json.loads((HERE / "tools" / "requests.json").read_text())["requests"]}
    for q in json.loads((HERE / "questions" / "questions.json").read_text())["questions"]:
        out[q["id"]] = q["split"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifests", nargs="+", type=Path)
    ap.add_argument("--json")
    args = ap.parse_args()
    split_of = splits()
    tiny = WhisperASR(WhisperOptions(cpu_threads=1))
    base = WhisperASR(WhisperOptions(model="whisper-base", cpu_threads=1))
    rows = []
    for man in args.manifests:
        for name, ref in sorted(load_references(man).items()):
            audio = read_audio_16k(man.parent / name)
            t, b = tiny.transcribe(audio), base.transcribe(audio)
            cid = re.match(r"^([a-z]+\d+)", name)
            split = split_of.get(cid.group(1), "tune") if cid else "tune"
            rows.append(
                {
                    "clip": name,
                    "split": split,
                    "ref": ref,
                    "tiny": t.text,
                    "conf": t.avg_logprob,
                    "base": b.text,
                    "base_conf": b.avg_logprob,
                    "tiny_ms": t.elapsed_ms,
                    "base_ms": b.elapsed_ms,
                }
            )
    print(f"{len(rows)} clips; CPU: {os.cpu_count()} logical CPUs; one Whisper thread each")
    grid = [round(x, 2) for x in np.arange(-1.2, 0.01, 0.05)]

    def at(th: float, margin: float, split: str) -> tuple[float, float]:
        """WER and the share re-heard when tiny below ``th`` asks base, and base's text is kept when it is
        surer than tiny's by ``margin``."""
        sel = [r for r in rows if r["split"] == split]
        hyp = [
            r["base"] if r["conf"] < th and r["base"] and r["base_conf"] >= r["conf"] + margin else r["tiny"] for r in sel
        ]
        return wer([r["ref"] for r in sel], hyp), float(np.mean([r["conf"] < th for r in sel]))

    for s in ("tune", "check"):
        sel = [r for r in rows if r["split"] == s]
        refs = [r["ref"] for r in sel]
        tiny_w, base_w = wer(refs, [r["tiny"] for r in sel]), wer(refs, [r["base"] for r in sel])
        print(f"{s}: tiny alone {tiny_w:.3f}, base alone {base_w:.3f}")
    # The margin: the lowest tune WER when every clip is re-heard; then the threshold: the lowest one within
    # 0.005 of that, so the fewest turns pay for the second pass.
    margins = [round(x, 2) for x in np.arange(-0.2, 0.31, 0.05)]
    margin = min(margins, key=lambda m: (at(0.01, m, "tune")[0], m))
    best = at(0.01, margin, "tune")[0]
    chosen = min(th for th in grid if at(th, margin, "tune")[0] <= best + 0.005)
    curve = {s: [(th, *at(th, margin, s)) for th in grid] for s in ("tune", "check")}
    print(f"margin {margin} (tune WER {best:.3f} with every clip re-heard)")
    print("threshold   tune: WER  re-heard    check: WER  re-heard")
    for (th, w1, e1), (_, w2, e2) in zip(curve["tune"], curve["check"], strict=True):
        print(f"  {th:6.2f}        {w1:.3f}  {e1:5.0%}            {w2:.3f}  {e2:5.0%}")
    (tw, te), (cw, ce) = at(chosen, margin, "tune"), at(chosen, margin, "check")
    print(f"chosen on tune: threshold {chosen}, margin {margin}")
    print(f"  tune WER {tw:.3f} ({te:.0%} re-heard), check WER {cw:.3f} ({ce:.0%} re-heard)")
    t_ms, b_ms = np.median([r["tiny_ms"] for r in rows]), np.median([r["base_ms"] for r in rows])
    print(f"a pass p50: tiny {t_ms:.0f} ms, base {b_ms:.0f} ms")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "curve": curve, "threshold": chosen, "margin": margin}, indent=1)
        )


if __name__ == "__main__":
    main()
