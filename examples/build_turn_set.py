"""Build voiceloop's own set of assistant-style turns, with and without pauses inside the sentence.

    python examples/build_turn_set.py OUT_DIR

Each turn is synthesised with the embedded Piper voice; a turn with a pause is two
halves joined by 0.4-0.8 s of silence, which is where a naive endpointer cuts in.
Writes OUT_DIR/*.wav and OUT_DIR/manifest.tsv (file, pause_s, transcript) for
`voiceloop profile --reference OUT_DIR/manifest.tsv`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from voiceloop.audio.files import write_wav
from voiceloop.tts.piper import PiperTTS

TURNS: list[tuple[str, ...]] = [
    ("What's the weather like tomorrow?",),
    ("Set a timer for ten minutes.",),
    ("Can you recommend a good book?",),
    ("Turn off the lights in the kitchen.",),
    ("How far is the moon from the earth?",),
    ("Remind me to call my mother tonight.",),
    ("What is the capital of Japan?",),
    ("Play some relaxing music, please.",),
    ("I would like to book a table", "for two people at eight."),
    ("Call the dentist", "and move my appointment to Friday."),
    ("So the thing is", "my flight was cancelled."),
    ("Can you tell me", "how long it takes to boil an egg?"),
    ("I need to buy", "milk, eggs and bread."),
    ("Send a message to John", "saying I will be late."),
    ("What time does the store", "close on Sundays?"),
    ("Add a meeting with Sarah", "on Tuesday at three."),
]
PAUSES_S = [0.4, 0.5, 0.6, 0.7, 0.8, 0.45, 0.55, 0.65]


def _trim(pcm: np.ndarray, threshold: int = 500) -> np.ndarray:
    """Drop Piper's leading/trailing silence so a labelled pause is the real gap between words."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    return pcm[loud[0] : loud[-1] + 1] if loud.size else pcm


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tts = PiperTTS()
    rows = ["file\tpause_s\ttranscript"]
    k = 0
    for i, parts in enumerate(TURNS):
        pieces = []
        pause = 0.0
        for j, text in enumerate(parts):
            if j:
                pause = PAUSES_S[k % len(PAUSES_S)]
                k += 1
                pieces.append(np.zeros(int(pause * tts.sample_rate), dtype=np.int16))
            pieces.append(_trim(np.concatenate(list(tts.synthesize(text)))))
        name = f"turn_{i:02d}{'_pause' if pause else ''}.wav"
        edge = np.zeros(int(0.3 * tts.sample_rate), dtype=np.int16)  # a little room before and after
        write_wav(out / name, np.concatenate([edge, *pieces, edge]), tts.sample_rate)
        rows.append(f"{name}\t{pause}\t{' '.join(parts)}")
    (out / "manifest.tsv").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(TURNS)} turns to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "turn_set"))
