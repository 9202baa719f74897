"""Whisper's own sentence end as an end-of-turn signal (session 18: measured, not shipped).

At each decision point of the turn set (as ``turn_eval.py features`` finds them), the final ASR pass's encoder
output is decoded once more with the transcript minus its final mark forced as the prefix; Whisper's P(. ? !) at the
next token is the signal (it hears the prosody). Reports its AUC alone and per class, and what it adds to the
shipped text + audio regression at the fitted operating point.

    python examples/turn_eval.py synth OUT && python examples/turn_eval.py features OUT
    python examples/turn_whisper_end.py OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import turn_eval as te


def _auc(pos: list[float], neg: list[float]) -> float:
    a, b = np.array(pos)[:, None], np.array(neg)[None, :]
    return float(((a > b).sum() + 0.5 * (a == b).sum()) / (a.size * b.size))


def whisper_end(asr, audio: np.ndarray, final_ids: list[int]) -> float:
    from faster_whisper.transcribe import get_ctranslate2_storage

    from voiceloop.asr.whisper import SAMPLE_RATE

    tok, model = asr._tokenizer, asr.model.model
    frames = asr.window_frames_for(len(audio))
    feats = asr.model.feature_extractor(audio)[..., :-1][:, :frames]
    feats = np.pad(feats, ((0, 0), (0, frames - feats.shape[1])))
    enc = model.encode(get_ctranslate2_storage(np.ascontiguousarray(feats[None])))
    budget = int(len(audio) / SAMPLE_RATE * 6) + 8
    res = model.generate(enc, [asr._prompt], beam_size=3, max_length=len(asr._prompt) + budget)[0]
    toks = [t for t in res.sequences_ids[0] if t < tok.eot]
    if toks and tok.decode([toks[-1]]).strip()[:1] in (".", "?", "!", ","):
        toks = toks[:-1]
    # The forced prefix's steps come back with their logits: the one after the last word is the sentence end's.
    r = model.generate(
        enc,
        [asr._prompt + toks],
        beam_size=1,
        max_length=len(asr._prompt) + 2 * len(toks) + 4,
        suppress_blank=False,
        suppress_tokens=[],
        return_logits_vocab=True,
    )[0]
    z = np.array(r.logits[0][len(toks)], dtype=np.float64).ravel()
    p = np.exp(z - z.max())
    return float(p[final_ids].sum() / p.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the turn set (clips.json and features.json from turn_eval.py)")
    args = ap.parse_args()
    from voiceloop.asr.whisper import WhisperASR
    from voiceloop.audio.files import read_audio
    from voiceloop.turn.policy import EndOfTurnEvidence, _logit, features, fit_logistic

    out = Path(args.out)
    rows = json.loads((out / "features.json").read_text())
    asr = WhisperASR()
    tok = asr._tokenizer
    final_ids = [i for i in range(tok.eot) if (w := tok.decode([i]).strip())[:1] in ".?!" and not w.startswith("..")]
    cache: dict[str, np.ndarray] = {}
    for r in rows:
        if r["file"] not in cache:
            cache[r["file"]] = read_audio(out / r["file"])[0]
        end = int(r["decision_at_s"] * te.RATE) + int(te.DECISION_SILENCE_S * te.RATE)
        r["whisper_end"] = whisper_end(asr, cache[r["file"]][:end], final_ids)
    rows = [r for r in rows if r["kind"] == "complete" or r.get("pause_found")]
    done = [r["whisper_end"] for r in rows if r["kind"] == "complete"]
    print(f"AUC alone: {_auc(done, [r['whisper_end'] for r in rows if r['kind'] == 'paused']):.3f}")
    for c in sorted({r["class"] for r in rows if r["kind"] == "paused"}):
        paused = [r["whisper_end"] for r in rows if r["kind"] == "paused" and r["class"] == c]
        print(f"  complete vs paused/{c}: {_auc(done, paused):.3f}")

    def ev(r: dict) -> EndOfTurnEvidence:
        s = r["signals"]
        return EndOfTurnEvidence(r["transcript"], s.get("eom"), s.get("punct"), r["audio_p"], model=r.get("model"))

    key = f"text+audio@{rows[0]['model']}"
    for extra in (False, True):
        x = {
            split: np.array(
                [
                    features(ev(r), key) + ([_logit(r["whisper_end"]) / 4] if extra else [])
                    for r in rows
                    if r["split"] == split
                ]
            )
            for split in ("tune", "check")
        }
        y = {split: np.array([r["kind"] == "complete" for r in rows if r["split"] == split], float) for split in x}
        w = fit_logistic(x["tune"], y["tune"])
        aucs = []
        for split in ("tune", "check"):
            p = 1 / (1 + np.exp(-(x[split] @ w)))
            aucs.append(_auc(list(p[y[split] == 1]), list(p[y[split] == 0])))
        print(f"text + audio{' + whisper end' if extra else ''}: AUC tune {aucs[0]:.3f} check {aucs[1]:.3f}")


if __name__ == "__main__":
    main()
