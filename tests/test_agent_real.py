"""The speculative agent on the real models: preemption, adaptive endpointing, no cut-in on a pause."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import _paced  # the tests' shared real-time frame source

from voiceloop import ReplyAudio, Transcript, TurnMetrics, VoiceAgent
from voiceloop.audio.resample import resample
from voiceloop.core.clock import MonotonicClock

pytestmark = pytest.mark.models


def _speech(engines, text: str) -> np.ndarray:
    pcm = np.concatenate(list(engines.tts.synthesize(text)))
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 500)
    pcm = pcm[loud[0] : loud[-1] + 1]
    return resample(pcm.astype(np.float32) / 32768.0, engines.tts.sample_rate, 16000)


async def _run(engines, audio: np.ndarray):
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, clock=clock)
    t0 = clock.now_ns()
    events = [ev async for ev in agent.process(_paced(audio, clock, t0))]
    return t0, events


async def test_pause_inside_sentence_waits_for_the_rest(engines):
    # A pause after a preposition. ("So the thing is … my flight was cancelled." was held by an opener phrase
    # list; with the calibrated decision that opener is not reliably held: see the README's turn-taking table.)
    first, second = _speech(engines, "My daughter's birthday is on"), _speech(engines, "the fourteenth of March.")
    lead = np.zeros(8000, np.float32)
    audio = np.concatenate([lead, first, np.zeros(9600, np.float32), second, np.zeros(48000, np.float32)])
    second_end_ns = int((lead.size + first.size + 9600 + second.size) * 62_500)
    t0, events = await _run(engines, audio)
    turns = [e.record for e in events if isinstance(e, TurnMetrics)]
    assert len(turns) == 1, [(r.transcript, r.extra.get("release")) for r in turns]
    rec = turns[0]
    assert "birthday" in rec.transcript.lower() and "march" in rec.transcript.lower()
    assert rec.reply
    assert rec.preemptions >= 2 and rec.discarded >= 1  # a reply was started in the pause and dropped
    first_audio = next(e for e in events if isinstance(e, ReplyAudio))
    assert first_audio.frame.timestamp_ns - t0 > second_end_ns  # no cut-in: nothing played in the pause
    assert any(isinstance(e, Transcript) and not e.final for e in events)  # streamed interim transcripts


async def test_complete_question_ends_on_short_silence(engines):
    q = _speech(engines, "What is the capital of France?")
    audio = np.concatenate([np.zeros(8000, np.float32), q, np.zeros(48000, np.float32)])
    _, events = await _run(engines, audio)
    (rec,) = [e.record for e in events if isinstance(e, TurnMetrics)]
    assert "france" in rec.transcript.lower()
    assert "Paris" in rec.reply
    st = rec.stages_ms()
    # The policy asked for its short silence (a complete question), not the long one. The silence actually
    # waited is a speed figure: on a slow CPU the decision's signals come later (benchmarks report it).
    assert rec.extra["release"]["required_ms"] <= 170, rec.extra["release"]
    assert st["endpoint"] < 1400  # ... and it did not wait for the cap
    assert sum(st[s] for s in ("vad", "asr", "llm", "clause", "tts", "release")) == pytest.approx(rec.v2v_ms)
