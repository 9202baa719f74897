"""End-of-turn evaluation on voiceloop's own turn set (examples/turns/turns.json) and the real recordings.

    # 1. speak the turns (Piper joe + espeak-ng voices) and splice pauses into the real recordings
    python examples/turn_eval.py synth OUT_DIR
    # 2. the decision's inputs at each pause, with the real engines (Whisper, the LLM, smart-turn)
    python examples/turn_eval.py features OUT_DIR [--llm NAME]
    # 3. fit the calibrated decision on the 'tune' items, score 'tune' and 'check', draw the trade-off curve,
    #    and (with --write) store the fitted decision in voiceloop/turn/calibration.json
    python examples/turn_eval.py fit OUT_DIR [--plot curve.png] [--write]
    # 4. the same decision live, through the whole pipeline: each clip its own conversation
    voiceloop profile OUT_DIR/*.wav --separate --json live.json
    python examples/turn_eval.py live OUT_DIR live.json

A paused item is one turn with a silence of ``pause_s`` where ``|`` stands, spoken two ways: with the voice going
on (Piper's sentence spliced at the word gap, espeak-ng's SSML break) and as a TTS-built test set makes it, the
words before the pause synthesised on their own (class ``fragment``: a final voice, only the words say it goes on).
A complete item ends where the text ends. At the first pause, "cut-in" means the policy's required silence is
shorter than the pause (the agent would have spoken); on a complete item, "wait" is the silence the policy requires.
Items are split by text: 'tune' texts fit the decision, 'check' texts are only scored.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TURNS = HERE / "turns" / "turns.json"
REAL = HERE.parent.parent / "shared" / "data" / "real_speech"
RATE = 16000
ESPEAK_VOICES = ("en-us+m3", "en-gb+f2")
DECISION_SILENCE_S = 0.032
"""Audio the decision sees after the last word: the pipeline decides at the first silent VAD window (one 32 ms
window) and gives the ASR and smart-turn the utterance through it. (Fitted on 200 ms before session 10: smart-turn
separates much worse there, AUC 0.67 against 0.76, and the pipeline never showed it that much.)"""
LATE_BUDGET = 0.05
"""Share of tune's paused turns the decision without the LLM's signals may end early (half the issue's 1 in 8 is
the whole bar; this path is one of two ways to end early)."""
VAD_ON, VAD_OFF = 0.5, 0.35
"""The pipeline's VAD hysteresis (``VADOptions``): speech starts at 0.5, a pause at the first window below 0.35."""


def load_turns() -> list[dict]:
    return json.loads(TURNS.read_text())["turns"]


def class_label(row: dict) -> str:
    """A clip's class for the tables; a fragment also names the pause it was cut at: after a complete clause
    ("Tell me a joke." | "about computers") its words are a whole sentence, in a final voice, so nothing heard
    before the pause can tell it from a finished turn; mid-clause ("Find me a hotel near" | ...) the words can."""
    if row["class"] != "fragment":
        return row["class"]
    return f"fragment_{_turn_classes().get(row['id'], '?')}"


@functools.cache
def _turn_classes() -> dict[str, str]:
    return {t["id"]: t["class"] for t in load_turns()}


# -- synth -------------------------------------------------------------------------------------------
def _to16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Float32 in [-1, 1] at 16 kHz (Piper gives int16-scaled samples, decoded files [-1, 1] floats)."""
    from voiceloop.audio.resample import resample

    x = pcm.astype(np.float32)
    if np.abs(x).max(initial=0.0) > 2.0:
        x = x / 32768.0
    return resample(x, rate, RATE)


def _write(path: Path, audio: np.ndarray) -> None:
    from voiceloop.audio.files import write_wav

    write_wav(path, (np.clip(audio, -1, 1) * 32767).astype(np.int16), RATE)


def _espeak(text: str, voice: str) -> np.ndarray:
    """espeak-ng's voice+variant, with an optional speed in words a minute after "@" ("en-us+f5@140"; 165)."""
    from voiceloop.audio.files import read_audio

    name, _, speed = voice.partition("@")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        # SSML: the pause sits inside the sentence, so the voice keeps a continuing intonation.
        cmd = ["espeak-ng", "-m", "-v", name, "-s", speed or "165", "-w", f.name, f"<speak>{text}</speak>"]
        subprocess.run(cmd, check=True)
        pcm, rate = read_audio(f.name)
    return _to16k(pcm, rate)


def _word_gap(audio: np.ndarray, n_words: int, asr) -> float | None:
    """Seconds into ``audio`` between word ``n_words`` and the next (Whisper word timestamps), at the
    quietest 10 ms there."""
    segments, _ = asr.model.transcribe(audio, language="en", word_timestamps=True, beam_size=1)
    words = [w for s in segments for w in (s.words or [])]
    if len(words) <= n_words:
        return None
    a, b = words[n_words - 1].end, words[n_words].start
    lo, hi = int(min(a, b) * RATE) - 960, int(max(a, b) * RATE) + 960
    lo, hi = max(lo, 0), min(hi, len(audio) - 160)
    frames = [(float(np.sqrt(np.mean(audio[i : i + 160] ** 2))), i) for i in range(lo, hi, 160)]
    return min(frames)[1] / RATE if frames else (a + b) / 2


def _splice(audio: np.ndarray, at_s: float, pause_s: float) -> np.ndarray:
    cut = int(at_s * RATE)
    return np.concatenate([audio[:cut], np.zeros(int(pause_s * RATE), np.float32), audio[cut:]])


def _trim(audio: np.ndarray, *, head: bool, tail: bool, margin_s: float = 0.02) -> np.ndarray:
    """``audio`` without the TTS's silence at its start and/or end: 10 ms frames quieter than 40 dB under the
    loudest one, keeping ``margin_s`` of it (a word's own release and onset)."""
    hop = RATE // 100
    n = len(audio) // hop
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 0.01)
    if len(loud) == 0:
        return audio
    keep = int(margin_s * RATE)
    start = max(0, loud[0] * hop - keep) if head else 0
    end = min(len(audio), (loud[-1] + 1) * hop + keep) if tail else len(audio)
    return audio[start:end]


def _say(text: str, voice: str, tts) -> np.ndarray:
    if voice == "piper-joe":
        return _to16k(np.concatenate(list(tts.synthesize(text))), tts.sample_rate)
    return _espeak(text, voice)


def cmd_synth(args: argparse.Namespace) -> None:
    from voiceloop.asr.whisper import WhisperASR
    from voiceloop.audio.files import read_audio
    from voiceloop.tts.piper import PiperTTS

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tts, asr = PiperTTS(), WhisperASR()
    rows = []
    for n, t in enumerate(load_turns()):
        before, _, after = t["text"].partition("|")
        plain = " ".join((before + " " + after).split())
        for voice in ("piper-joe", ESPEAK_VOICES[n % 2]):
            name = f"{t['id']}-{voice.replace('+', '-')}.wav"
            row = {"file": name, "id": t["id"], "kind": t["kind"], "class": t["class"], "split": t["split"], "voice": voice}
            if voice == "piper-joe":
                audio = _to16k(np.concatenate(list(tts.synthesize(plain))), tts.sample_rate)
                if t["kind"] == "paused":
                    at = _word_gap(audio, len(before.split()), asr)
                    if at is None:
                        # Whisper wrote a number as digits, so words do not line up: speak the two parts
                        # apart (the first one then ends with a falling, sentence-final intonation).
                        first = _to16k(np.concatenate(list(tts.synthesize(before.strip()))), tts.sample_rate)
                        rest = _to16k(np.concatenate(list(tts.synthesize(after.strip()))), tts.sample_rate)
                        at, audio, row["joined"] = len(first) / RATE, np.concatenate([first, rest]), True
                    row["pause_at_s"], audio = at, _splice(audio, at, t["pause_s"])
            elif t["kind"] == "paused":
                audio = _espeak(f'{before.strip()} <break time="{int(t["pause_s"] * 1000)}ms"/> {after.strip()}', voice)
            else:
                audio = _espeak(t["text"], voice)
            if t["kind"] == "paused":
                row["pause_s"] = t["pause_s"]
            _write(out / name, audio)
            rows.append(row)
            if t["kind"] == "paused":
                # The same pause as a TTS-built test set makes it: the words before it spoken on their own (so
                # with a falling, final voice), silence, then the rest. The voice says "done"; the words do not.
                # Each part's own leading/trailing silence is cut, so the pause heard is the item's pause_s (with
                # it, session 22's fragments paused 0.55-1.25 s, past the 1 s longest wait).
                first = _trim(_say(before.strip(), voice, tts), head=False, tail=True)
                rest = _trim(_say(after.strip(), voice, tts), head=True, tail=False)
                frag = np.concatenate([first, np.zeros(int(t["pause_s"] * RATE), np.float32), rest])
                fname = f"{t['id']}-{voice.replace('+', '-')}-frag.wav"
                _write(out / fname, frag)
                rows.append({**row, "file": fname, "class": "fragment", "pause_at_s": len(first) / RATE})
    # Real recordings: as they are (complete), and with a pause spliced at a word gap mid-sentence.
    rng = random.Random(14)
    manifest = [line.split("\t") for line in (REAL / "manifest.tsv").read_text().splitlines()[1:]]
    for k, (file, *_rest) in enumerate(manifest):
        pcm, rate = read_audio(REAL / file)
        audio = _to16k(pcm if pcm.ndim == 1 else pcm.mean(axis=1), rate)
        split = "tune" if k % 2 == 0 else "check"
        base = {"id": f"r{k:02d}", "split": split, "voice": "real"}
        _write(out / f"r{k:02d}-complete.wav", audio)
        rows.append({**base, "file": f"r{k:02d}-complete.wav", "kind": "complete", "class": "real"})
        n_words = len(_rest[-1].split())
        if n_words < 4:
            continue
        pause = round(rng.uniform(0.4, 0.9), 2)
        at = _word_gap(audio, rng.randint(2, n_words - 2), asr)
        if at is None:
            continue
        _write(out / f"r{k:02d}-paused.wav", _splice(audio, at, pause))
        rows.append(
            {**base, "file": f"r{k:02d}-paused.wav", "kind": "paused", "class": "real", "pause_at_s": at, "pause_s": pause}
        )
    (out / "clips.json").write_text(json.dumps(rows, indent=1))
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("paused", "complete")}
    print(f"{len(rows)} clips in {out}: {kinds}")


# -- features ----------------------------------------------------------------------------------------
def _pauses(audio: np.ndarray, vad) -> list[tuple[int, float, bool]]:
    """Each silence of >= 300 ms after speech, found as the pipeline finds it (speech from 0.5, a pause from the
    first window below 0.35): (its first sample, its length in s, speech follows)."""
    from voiceloop.audio.vad import WINDOW_SAMPLES

    vad.reset()
    probs = [vad(audio[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES]) for i in range(len(audio) // WINDOW_SAMPLES)]
    out, i, speech = [], 0, False
    while i < len(probs):
        if probs[i] >= (VAD_OFF if speech else VAD_ON):
            speech = True
            i += 1
            continue
        j = i
        while j < len(probs) and probs[j] < VAD_OFF:
            j += 1
        if j == i:  # between the thresholds before speech started: not speech yet, not a pause
            i += 1
            continue
        if speech and (j - i) * WINDOW_SAMPLES >= 0.3 * RATE:
            out.append((i * WINDOW_SAMPLES, (j - i) * WINDOW_SAMPLES / RATE, j < len(probs)))
        i = j
    return out


def cmd_features(args: argparse.Namespace) -> None:
    from voiceloop.asr.second_opinion import load_asr
    from voiceloop.audio.files import read_audio
    from voiceloop.audio.vad import SileroVAD, silero_v6_path
    from voiceloop.cli.llm_args import resolve_model
    from voiceloop.llm.llama import LlamaBackend, LlamaOptions
    from voiceloop.turn.smart_turn import SmartTurn

    out = Path(args.out)
    rows = json.loads((out / args.clips).read_text())
    # The pipeline's recogniser (tiny.en, and Whisper base for an unsure final pass): the text it decides on.
    asr, vad = load_asr(), SileroVAD(silero_v6_path())
    llm = LlamaBackend(LlamaOptions(model=resolve_model(args.llm)))
    smart = SmartTurn()
    schemas = None
    if args.tools:
        # The assistant's prompt: the built-in tools' schemas in the system turn (calibrated apart).
        from voiceloop.tools import Timers, builtin_tools

        schemas = [t.schema() for t in [*builtin_tools(), *Timers().tools()]]
    samples = []
    for r in rows:
        # Heard with a second of silence after it, as the pipeline hears a clip (Piper's files end at the last
        # speech sample): a finished turn is then read at its first silent window, not at the file's end, which
        # gave the audio models a point the pipeline never produces (session 21).
        audio = np.concatenate([read_audio(out / r["file"])[0], np.zeros(RATE, np.float32)])
        pauses = _pauses(audio, vad)
        points = []
        if r["kind"] == "paused":
            # The VAD's first pause must be the spliced one (as long, speech after it) for the item to count.
            first = pauses[0] if pauses else None
            found = first is not None and first[2] and abs(first[1] - r["pause_s"]) < 0.2
            if r["class"] == "fragment" and first is not None and first[2]:
                # The TTS's own silence at the parts' edges adds to the pause: its length is the one heard.
                found, r = True, {**r, "pause_s": round(first[1], 3)}
            points.append(({**r, "pause_found": found}, first[0] if first else len(audio)))
        else:
            ends = [p for p in pauses if not p[2]]
            points.append((r, ends[-1][0] if ends else len(audio)))
            # A real recording's own mid-turn pauses are natural paused samples.
            for start, length, more in pauses:
                if more and r["voice"] == "real":
                    nat = {**r, "file": r["file"], "kind": "paused", "class": "natural", "pause_s": length}
                    points.append(({**nat, "pause_found": True}, start))
        for row, end in points:
            heard = audio[: end + int(DECISION_SILENCE_S * RATE)]
            row = {**row, "decision_at_s": end / RATE}
            result = asr.transcribe(heard)
            if asr.wants_second_opinion(result):
                result = asr.second_opinion(heard, result)
            text = result.text
            row["transcript"] = text
            if text:
                list(llm.stream([], text, max_tokens=1, **({"tools": schemas} if schemas else {})))
                row["signals"] = llm.turn_signals([], text) or {}
            else:
                row["signals"] = {}
            row["audio_p"] = smart.probability(heard)
            row["model"] = llm.model_path.name + ("+tools" if schemas else "")
            samples.append(row)
            print(
                f"{row['file']:<24} {row['kind']:<8} {text[-40:]!r:<44} "
                f"{ {k: round(v, 3) for k, v in row['signals'].items()} } audio {row['audio_p']:.2f}"
            )
    rows = samples
    (out / args.name).write_text(json.dumps(rows, indent=1))


# -- fit ---------------------------------------------------------------------------------------------
def cmd_fit(args: argparse.Namespace) -> None:
    from voiceloop.turn.policy import Calibration, EndOfTurnEvidence, features, fit_logistic

    out = Path(args.out)
    feats = json.loads((out / args.features).read_text())
    rows = [r for r in feats if r["kind"] == "complete" or r.get("pause_found")]
    skipped = sum(1 for r in feats if r["kind"] == "paused" and not r.get("pause_found"))

    def evidence(r: dict) -> EndOfTurnEvidence:
        s = r["signals"]
        return EndOfTurnEvidence(r["transcript"], s.get("eom"), s.get("punct"), r["audio_p"], model=r.get("model"))

    model = rows[0].get("model")
    keys = [f"text+audio@{model}", f"text@{model}", "audio", "syntax"]
    tune = [r for r in rows if r["split"] == "tune"]
    results = {}
    for key in keys:
        x = np.array([features(evidence(r), key) for r in tune])
        y = np.array([r["kind"] == "complete" for r in tune], dtype=float)
        results[key] = fit_logistic(x, y, l2=args.l2)
    report = {"model": model, "skipped_paused_items": skipped, "models": {}}
    curves = {}
    for key, w in results.items():
        cal = Calibration(weights={key: w.tolist()})
        for split in ("tune", "check"):
            sel = [r for r in rows if r["split"] == split]
            curves[(key, split)] = (sel, [cal.probability(evidence(r), key) for r in sel])
    # Operating point: the levels of silence are fixed (a confident end, an unsure one, the cap); the
    # thresholds are chosen on 'tune' to minimise cut-ins with complete turns' p90 wait <= 400 ms and p50 wait
    # <= 210 ms.
    levels = (args.short_ms, args.mid_ms, args.long_ms)

    def score(sel: list[dict], ps: list[float], hi: float, lo: float) -> dict:
        def silence(p: float) -> float:
            return levels[0] if p >= hi else (levels[1] if p >= lo else levels[2])

        paused = [(r, silence(p)) for r, p in zip(sel, ps, strict=True) if r["kind"] == "paused"]
        done = [(r, silence(p)) for r, p in zip(sel, ps, strict=True) if r["kind"] == "complete"]
        cut = [r for r, s in paused if s < r["pause_s"] * 1000]
        waits = [s for _, s in done]
        by_class: dict[str, dict] = {}
        for r, s in paused:
            for label in {r["class"], class_label(r)}:
                c = by_class.setdefault("paused/" + label, {"n": 0, "cut_ins": 0})
                c["n"] += 1
                c["cut_ins"] += s < r["pause_s"] * 1000
        for r, s in done:
            c = by_class.setdefault("complete/" + r["class"], {"n": 0, "waits": []})
            c["n"] += 1
            c["waits"].append(s)
        for c in by_class.values():
            if "waits" in c:
                w = c.pop("waits")
                c["wait_p50_ms"], c["wait_p90_ms"] = float(np.percentile(w, 50)), float(np.percentile(w, 90))
        return {
            "wait_mean_ms": float(np.mean(waits)) if waits else None,
            "paused": len(paused),
            "cut_ins": len(cut),
            "cut_in_rate": len(cut) / max(1, len(paused)),
            "complete": len(done),
            "wait_p50_ms": float(np.percentile(waits, 50)) if waits else None,
            "wait_p90_ms": float(np.percentile(waits, 90)) if waits else None,
            "by_class": by_class,
        }

    grid = [round(v, 3) for v in np.linspace(0.02, 0.98, 49)]
    chosen = {}
    for name in results:
        sel, ps = curves[(name, "tune")]
        best = None
        for hi in grid:
            for lo in [g for g in grid if g <= hi]:
                s = score(sel, ps, hi, lo)
                over = s["wait_p90_ms"] > args.max_wait_p90 or s["wait_p50_ms"] > args.max_wait_p50
                key = (over, s["cut_ins"], s["wait_p90_ms"], s["wait_p50_ms"])
                if best is None or key < best[0]:
                    best = (key, hi, lo)
        assert best is not None
        _, hi, lo = best
        chosen[name] = (hi, lo)
        report["models"][name] = {
            "weights": results[name].tolist(),
            "threshold_short": hi,
            "threshold_mid": lo,
            "tune": score(*curves[(name, "tune")], hi, lo),
            "check": score(*curves[(name, "check")], hi, lo),
        }
    for name, m in report["models"].items():
        for split in ("tune", "check"):
            s = m[split]
            print(
                f"{name:<11} {split:<6} cut-ins {s['cut_ins']}/{s['paused']} ({s['cut_in_rate']:.0%})  "
                f"complete wait p50 {s['wait_p50_ms']:.0f} p90 {s['wait_p90_ms']:.0f} ms  (n={s['complete']})"
            )
    best_name = keys[0]
    hi, lo = chosen[best_name]
    print(f"\nper class (chosen: {best_name}, thresholds {hi:.2f} / {lo:.2f}):")
    for split in ("tune", "check"):
        for cls, c in sorted(report["models"][best_name][split]["by_class"].items()):
            extra = (
                f"cut-ins {c['cut_ins']}/{c['n']}"
                if "cut_ins" in c
                else f"wait p50 {c['wait_p50_ms']:.0f} p90 {c['wait_p90_ms']:.0f} ms (n={c['n']})"
            )
            print(f"  {split:<6} {cls:<34} {extra}")
    # The trade-off curve: one threshold swept between the short wait and the cap, on both splits.
    curve = {}
    for name in results:
        for split in ("tune", "check"):
            sel, ps = curves[(name, split)]
            pts = []
            for t in grid:
                s = score(sel, ps, t, t)
                pts.append((t, s["cut_in_rate"], s["wait_mean_ms"], s["wait_p90_ms"]))
            curve[f"{name}/{split}"] = pts
    report["curve"] = curve
    report["levels_ms"] = levels
    # Deciding before the LLM's signals arrive (they are late: a slow CPU, the LLM busy): the audio model's P and the
    # words alone. The text comes a few hundred ms later and waiting for it costs little, so this threshold is the
    # lowest at which at most LATE_BUDGET of tune's paused turns would end early (at least the short-wait one).
    from voiceloop.turn.cues import reads_incomplete

    cal = Calibration(weights={"audio": results["audio"].tolist()})
    late_rows = {}
    for split in ("tune", "check"):
        sel = [r for r in rows if r["split"] == split]
        pa = [cal.probability(EndOfTurnEvidence(r["transcript"], audio=r["audio_p"]), "audio") for r in sel]
        for t in grid:
            sure = [p >= t and not reads_incomplete(r["transcript"]) for r, p in zip(sel, pa, strict=True)]
            n_p = sum(1 for r in sel if r["kind"] == "paused")
            ended = sum(1 for r, x in zip(sel, sure, strict=True) if x and r["kind"] == "paused")
            done = sum(1 for r, x in zip(sel, sure, strict=True) if x and r["kind"] == "complete")
            late_rows.setdefault(t, {})[split] = (ended, n_p, done, len(sel) - n_p)
    n_tune = late_rows[grid[0]]["tune"][1]
    late = next(t for t in grid if t >= chosen["audio"][0] and late_rows[t]["tune"][0] <= LATE_BUDGET * n_tune)
    print(f"\nwithout the LLM's signals (audio + words), the threshold chosen on tune: {late:.2f}")
    for t in [g for g in grid if abs(g - late) <= 0.2 + 1e-9]:
        (a, b, c, d), (e, f, g_, h) = late_rows[t]["tune"], late_rows[t]["check"]
        mark = " <-" if t == late else ""
        print(f"  P >= {t:.2f}: paused ended early tune {a}/{b} check {e}/{f}; complete ended {c}/{d}, {g_}/{h}{mark}")
    report["late"] = {"audio": late, "table": {str(t): v for t, v in late_rows.items()}}
    (out / "fit.json").write_text(json.dumps(report, indent=1))
    if args.plot:
        _plot(report, chosen, Path(args.plot))
    if args.write:
        # Syntax alone is reported, not shipped: without a signal the policy uses the generic cues. Other
        # models' entries in the file are kept.
        path = Path(__file__).resolve().parent.parent / "voiceloop" / "turn" / "calibration.json"
        old = Calibration.load(path) if path.is_file() else Calibration()
        weights = {**old.weights, **{k: v.tolist() for k, v in results.items() if k != "syntax"}}
        thresholds = {**old.thresholds, **{k: list(v) for k, v in chosen.items() if k != "syntax"}}
        cal = Calibration(weights=weights, thresholds=thresholds, levels_ms=levels, late={**old.late, "audio": late})
        cal.save(path)
        print(f"wrote {path}")


# -- live --------------------------------------------------------------------------------------------
def score_live(clips: list[dict], turns: list[dict]) -> dict[tuple[str, str], dict]:
    """Score a ``voiceloop profile --separate`` run of the clips, per (split, kind/group). A paused clip is talked
    over when the agent's first audio came before the user's last word (the runner's ``cut_in``); its turn "ended
    inside the pause" when the input was split into more than one turn, heard or not (a slow CPU hides the
    mistake when the reply is not ready before the user goes on). A complete clip's ``required`` is the silence
    the decision asked for, ``waited`` the silence before the turn ended."""
    by_file = {Path(t["input"]).name: t for t in turns}
    groups: dict[tuple[str, str], dict] = {}
    for c in clips:
        t = by_file.get(c["file"])
        if t is None:
            continue
        voice = "real" if c["voice"] == "real" else ("piper" if c["voice"].startswith("piper") else "espeak-ng")
        release = (t.get("extra") or {}).get("release") or {}
        labels = [f"{c['kind']}/all", f"{c['kind']}/{class_label(c)}", f"{c['kind']}/voice:{voice}"]
        if c["class"] == "fragment":
            labels.append(f"{c['kind']}/fragment")
        for label in labels:
            g = groups.setdefault(
                (c["split"], label), {"n": 0, "heard": 0, "inside": 0, "required": [], "waited": [], "v2v": []}
            )
            g["n"] += 1
            g["heard"] += bool(t["cut_in"])
            g["inside"] += bool(t["cut_in"] or t["turns_in_input"] > 1)
            if c["kind"] == "complete":
                for key, ms in (
                    ("required", release.get("required_ms")),
                    ("waited", release.get("waited_ms")),
                    ("v2v", t.get("v2v_ms")),
                ):
                    if ms is not None:
                        g[key].append(ms)
    return groups


def cmd_live(args: argparse.Namespace) -> None:
    clips = json.loads((Path(args.out) / "clips.json").read_text())
    turns = json.loads(Path(args.json).read_text())["turns"]
    groups = score_live(clips, turns)

    def pct(xs: list[float], q: float) -> str:
        return f"{np.percentile(xs, q):.0f}" if xs else "-"

    for (split, label), g in sorted(groups.items()):
        if label.startswith("paused"):
            print(
                f"{split:<6} {label:<32} talked over {g['heard']}/{g['n']}  "
                f"turn ended inside the pause {g['inside']}/{g['n']}"
            )
        else:
            print(
                f"{split:<6} {label:<32} silence required p50 {pct(g['required'], 50)} p90 {pct(g['required'], 90)}, "
                f"waited p50 {pct(g['waited'], 50)} p90 {pct(g['waited'], 90)} ms  "
                f"v2v p50 {pct(g['v2v'], 50)} p90 {pct(g['v2v'], 90)} ms  cut into {g['heard']}/{g['n']}"
            )
    missing = sorted({c["file"] for c in clips} - {Path(t["input"]).name for t in turns})
    if missing:
        print(f"{len(missing)} clips not in the run: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")


def _plot(report: dict, chosen: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {"text+audio": "tab:blue", "text": "tab:orange", "audio": "tab:green", "syntax": "tab:grey"}
    for key, pts in report["curve"].items():
        name, split = key.rsplit("/", 1)
        name = name.split("@")[0]
        ax.plot(
            [p[2] for p in pts],
            [100 * p[1] for p in pts],
            "-" if split == "check" else ":",
            color=colors[name],
            label=f"{name} ({split})",
            marker="." if split == "check" else None,
        )
    for name, m in report["models"].items():
        s = m["check"]
        color = colors[name.split("@")[0]]
        ax.plot([s["wait_mean_ms"]], [100 * s["cut_in_rate"]], "*", color=color, markersize=14)
    ax.axhline(12.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("complete turns: mean silence waited (ms)")
    ax.set_ylabel("paused turns talked over (%)")
    ax.set_title(
        "End-of-turn trade-off: P(end) threshold swept (170 ms above it, 1000 ms below)\n"
        "* = the chosen operating point (3 waits) on the check split; dashed: 1 in 8",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("synth")
    p.add_argument("out")
    p.set_defaults(fn=cmd_synth)
    p = sub.add_parser("features")
    p.add_argument("out")
    p.add_argument("--llm")
    p.add_argument("--tools", action="store_true", help="with the built-in tools in the prompt (the assistant's)")
    p.add_argument("--name", default="features.json", help="output file in OUT_DIR")
    p.add_argument("--clips", default="clips.json", help="the clips to read, in OUT_DIR")
    p.set_defaults(fn=cmd_features)
    p = sub.add_parser("fit")
    p.add_argument("out")
    p.add_argument("--features", default="features.json", help="the features file in OUT_DIR")
    p.add_argument("--plot")
    p.add_argument("--write", action="store_true")
    p.add_argument("--l2", type=float, default=1.0)
    p.add_argument("--short-ms", type=float, default=170.0)
    p.add_argument("--mid-ms", type=float, default=400.0)
    p.add_argument("--long-ms", type=float, default=1000.0)
    p.add_argument("--max-wait-p90", type=float, default=400.0)
    # A typical complete turn must keep the short wait: the issue allows v2v p50 +40 ms, and a middle wait for
    # most turns buys only the few pauses of exactly its length.
    p.add_argument("--max-wait-p50", type=float, default=210.0)
    p.set_defaults(fn=cmd_fit)
    p = sub.add_parser("live")
    p.add_argument("out")
    p.add_argument("json", help="a `voiceloop profile OUT_DIR/*.wav --separate --json` report")
    p.set_defaults(fn=cmd_live)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
