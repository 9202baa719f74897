"""Whisper options side by side on one machine: WER per voice and time per pass (one thread, whole clips).

    python examples/asr_compare.py MANIFEST.tsv [--configs "tiny.en b1" "tiny.en b3" ...]

MANIFEST is a `file<TAB>transcript` table (the real-speech set's, or the question set's from
`answer_eval.py synth`). Clips named `NAME-VOICE.wav` are also scored per voice. Each pass is
`WhisperASR.transcribe`, the sized window the pipeline uses.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import numpy as np

from voiceloop.asr.whisper import WhisperASR, WhisperOptions
from voiceloop.audio.files import read_audio_16k
from voiceloop.metrics.wer import wer
from voiceloop.profile.runner import load_references

CONFIGS = {
    "tiny.en b1": WhisperOptions(beam_size=1),
    "tiny.en b3": WhisperOptions(beam_size=3),
    "tiny.en b5": WhisperOptions(beam_size=5),
    "base b1": WhisperOptions(model="whisper-base", beam_size=1),
    "base b3": WhisperOptions(model="whisper-base", beam_size=3),
    "base b5": WhisperOptions(model="whisper-base", beam_size=5),
}


def _voice(name: str) -> str:
    """The voice of an evaluation clip ("q04-piper-joe.wav", "t12-espeak-en-gb-f2.wav"), else "all"."""
    m = re.match(r"^[a-z]+\d+-(.+)$", Path(name).stem)
    return m.group(1) if m else "all"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = ap.parse_args()
    refs = load_references(args.manifest)
    names = sorted(refs)
    audio = {n: read_audio_16k(args.manifest.parent / n) for n in names}
    print(f"{len(names)} clips; CPU: {os.cpu_count()} logical CPUs; one Whisper thread")
    for label in args.configs:
        asr = WhisperASR(CONFIGS[label])
        asr.transcribe(audio[names[0]])  # warm-up
        hyps, ms = {}, []
        for n in names:
            r = asr.transcribe(audio[n])
            hyps[n] = r.text
            ms.append(r.elapsed_ms)
        voices: dict[str, list[str]] = {}
        for n in names:
            voices.setdefault(_voice(n), []).append(n)
        per = ", ".join(f"{v} {wer([refs[n] for n in g], [hyps[n] for n in g]):.3f}" for v, g in sorted(voices.items()))
        total = wer([refs[n] for n in names], [hyps[n] for n in names])
        p50, p90 = np.percentile(ms, [50, 90])
        print(f"{label:<11} WER {total:.3f} ({per}); a pass p50 {p50:.0f} ms, p90 {p90:.0f} ms")


if __name__ == "__main__":
    main()
