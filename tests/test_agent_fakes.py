"""The agent's turn logic with fake ASR/LLM/TTS engines (subclasses of the real ones) and the real VAD."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from voiceloop import AgentOptions, Engines, LLMBackend, PiperTTS, VoiceAgent, WhisperASR
from voiceloop.asr.second_opinion import SecondOpinionASR, SecondOpinionOptions
from voiceloop.asr.whisper import Transcript as AsrResult
from voiceloop.audio.files import read_audio_16k
from voiceloop.core.clock import MonotonicClock
from voiceloop.core.events import Interrupted, ReplyAudio, TurnMetrics
from voiceloop.core.frames import AudioFrame
from voiceloop.pipeline.pacing import Pace
from voiceloop.turn.smart_turn import SmartTurn


class FakeASR(WhisperASR):
    def __init__(self, split_s: float) -> None:  # no model
        self.split_s = split_s
        self.model_path = "fake"

    def transcribe(self, audio, *, window_frames=None):
        text = "Would you please turn on" if audio.shape[0] < self.split_s * 16000 else "Would you please turn on the lamp?"
        return AsrResult(text=text, audio_s=audio.shape[0] / 16000, window_frames=600, elapsed_ms=1.0)

    transcribe_full = transcribe


class FakeLLM(LLMBackend):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        self.calls.append(user_text)
        for word in "Sure, the lamp is on now.".split(" "):
            if stop is not None and stop.is_set():
                return
            yield word + " "


class FakeTTS(PiperTTS):
    def __init__(self) -> None:  # no model
        self.sample_rate = 22050
        self.model_path = "fake"

    def synthesize(self, text, *, stop: threading.Event | None = None):
        yield np.full(2205, 1000, dtype=np.int16)


async def _frames(audio: np.ndarray, clock: MonotonicClock):
    t0 = clock.now_ns()
    step = 320
    for i in range(0, audio.shape[0] - step + 1, step):
        due = t0 + (i + step) * 62_500  # ns per sample at 16 kHz
        delay = (due - clock.now_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        yield AudioFrame.from_float32(audio[i : i + step], 16000, t0 + i * 62_500)


async def _lamp_with_a_pause(data_dir, llm: LLMBackend) -> tuple[list, Engines]:
    """The lamp request ("Would you please turn on … the lamp?") with a 500 ms pause inside: long enough for a
    preemptive start, shorter than the 700 ms the policy waits after an unfinished-sounding transcript. Returns the
    agent's events."""
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    half = speech.shape[0] // 2
    audio = np.concatenate([speech[:half], np.zeros(8000, np.float32), speech[half:], np.zeros(3 * 16000, np.float32)])
    engines = Engines(asr=FakeASR(split_s=half / 16000 + 0.4), llm=llm, tts=FakeTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    return [ev async for ev in agent.process(_frames(audio, clock))], engines


async def test_pause_inside_sentence_discards_preemption_then_commits(data_dir):
    events, engines = await _lamp_with_a_pause(data_dir, FakeLLM())
    metrics = [e for e in events if isinstance(e, TurnMetrics)]
    assert len(metrics) == 1, [e.type for e in events]
    rec = metrics[0].record
    assert rec.transcript == "Would you please turn on the lamp?"
    assert rec.discarded >= 1 and rec.preemption == "restarted"
    assert rec.reply == "Sure, the lamp is on now."
    assert not any(isinstance(e, Interrupted) for e in events)
    audio_out = [e for e in events if isinstance(e, ReplyAudio)]
    assert audio_out and audio_out[0].frame.sample_rate == 22050
    # The reply audio is released only after the turn end, never inside the pause.
    assert rec.marks["first_audio_out"] >= rec.marks["turn_end"]
    assert rec.v2v_ms is not None and rec.v2v_ms > 0
    stages = rec.stages_ms()
    assert sum(stages[s] for s in ("vad", "asr", "llm", "clause", "tts", "release")) == pytest.approx(rec.v2v_ms)
    engines.close()


class YieldingLLM(FakeLLM):
    """Records when the agent asks background work to yield to a reply, and when it lets it go on."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []

    def yield_to_reply(self) -> None:
        self.log.append("yield")

    def resume_background(self) -> None:
        self.log.append("resume")

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        self.log.append("stream")
        yield from super().stream(history, user_text, stop=stop, max_tokens=max_tokens, stats=stats)


async def test_a_pause_stops_background_prefill_and_going_on_lets_it_run_again(data_dir):
    """At a pause the final ASR pass and the audio model are on the critical path, so a prefill of the words so
    far must yield at once, before the reply asks for the model; when the user goes on, no reply comes, and the
    prefill of the rest of the sentence may run again (otherwise it would stay off until the next reply)."""
    llm = YieldingLLM()
    events, engines = await _lamp_with_a_pause(data_dir, llm)
    rec = next(e.record for e in events if isinstance(e, TurnMetrics))
    assert rec.discarded >= 1
    log = llm.log
    # Every pause yields before anything else; the pause the user spoke through is followed by a resume.
    assert log[0] == "yield" and "resume" in log, log
    first_resume = log.index("resume")
    assert "yield" in log[first_resume:], log  # the final pause yields again
    assert log[-1] == "stream" and log[-2] in ("yield", "stream"), log
    engines.close()


class BusyLLM(FakeLLM):
    """Reads end-of-turn signals with its prompt (like the llama backend) and is still busy with earlier work
    when the first reply is asked for."""

    def __init__(self, busy_s: float) -> None:
        super().__init__()
        self.busy_s = busy_s

    def turn_signals(self, history, user_text):
        return {}

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        if not self.calls:
            end = time.monotonic() + self.busy_s
            while time.monotonic() < end and not (stop is not None and stop.is_set()):
                time.sleep(0.01)
        yield from super().stream(history, user_text, stop=stop, max_tokens=max_tokens, stats=stats)


async def test_a_turn_ends_without_the_text_signals_when_the_llm_is_too_busy_to_score_it(data_dir):
    """The LLM's end-of-turn signals come with the reply's prompt; when the LLM is still busy (a slow CPU, the
    previous reply) the turn is decided without them once ``text_signal_wait_ms`` of silence have passed, on
    the words (and the audio model when there is one), not on the 1.5 s cap (every turn of a spoken session
    waited the cap on a 2-core AVX2 EPYC). The user's next request, 2.2 s later, is a turn of its own."""
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    gap = np.zeros(int(2.2 * 16000), np.float32)
    audio = np.concatenate([speech, gap, speech, np.zeros(3 * 16000, np.float32)])
    engines = Engines(asr=FakeASR(split_s=0.0), llm=BusyLLM(busy_s=6.0), tts=FakeTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    events = [ev async for ev in agent.process(_frames(audio, clock))]
    metrics = [e.record for e in events if isinstance(e, TurnMetrics)]
    assert len(metrics) == 2, [(r.transcript, r.extra.get("continued_after_cut_in")) for r in metrics]
    first = metrics[0]
    waited = (first.marks["turn_end"] - first.marks["speech_end"]) / 1e6
    assert AgentOptions().text_signal_wait_ms - 40 <= waited < 1000
    assert first.extra["release"]["text_late"] is True
    assert first.extra["release"]["signals"]["text_eom"] is None
    assert not metrics[1].extra.get("continued_after_cut_in")
    engines.close()


class FixedASR(FakeASR):
    def __init__(self, text: str) -> None:
        super().__init__(split_s=0.0)
        self.text = text

    def transcribe(self, audio, *, window_frames=None):
        return AsrResult(self.text, audio.shape[0] / 16000, 700, 1.0)

    transcribe_full = transcribe


class FakeSmartTurn(SmartTurn):
    """The audio model's interface with a fixed answer (no ONNX session)."""

    def __init__(self, p: float) -> None:
        self.p, self.model_path, self.last_ms = p, "fake", 0.0

    def probability(self, audio16k):
        return self.p


@pytest.mark.parametrize(
    ("heard", "audio_p", "ends_early"),
    [
        ("Would you please turn on the lamp?", 0.995, True),
        ("My daughter's birthday is on.", 0.995, False),
        ("Would you please turn on the lamp?", 0.97, False),
    ],
)
async def test_without_the_text_signals_a_turn_ends_early_only_when_audio_and_words_agree(
    data_dir, heard, audio_p, ends_early
):
    """The LLM is busy: at ``text_signal_wait_ms`` the audio model (sure the user is done) and the words decide. A
    sentence that reads unfinished (a trailing preposition) is not ended on the audio alone, which called this
    very pause done on the real model; it waits for the LLM, here busy past the 1.5 s cap. Nor is a turn the audio
    model is merely fairly sure of (0.97 reads P 0.59 in the shipped calibration, under its 0.70 threshold for
    deciding without the text: TTS-said fragments such as "Explain how a" read that high)."""
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(3 * 16000, np.float32)])
    engines = Engines(asr=FixedASR(heard), llm=BusyLLM(busy_s=4.0), tts=FakeTTS(), turn_audio=FakeSmartTurn(audio_p))
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    (rec,) = [e.record for e in [ev async for ev in agent.process(_frames(audio, clock))] if isinstance(e, TurnMetrics)]
    waited = (rec.marks["turn_end"] - rec.marks["speech_end"]) / 1e6
    if ends_early:
        assert waited < 700 and rec.extra["release"]["text_late"] is True
        assert rec.extra["release"]["signals"]["audio"] == audio_p
    else:
        assert waited >= 1400 and rec.extra["release"]["text_late"] is False
    engines.close()


class ScoredASR(FakeASR):
    """A fast model with a fixed confidence, or the strong model with its own text; counts its passes."""

    def __init__(self, text: str, confidence: float) -> None:
        super().__init__(split_s=0.0)
        self.text, self.confidence, self.passes = text, confidence, 0

    def transcribe(self, audio, *, window_frames=None):
        self.passes += 1
        return AsrResult(self.text, audio.shape[0] / 16000, 700, 1.0, avg_logprob=self.confidence)


@pytest.mark.parametrize("confidence", [-1.2, -0.1])
async def test_an_unsure_turn_is_reheard_by_the_stronger_model(data_dir, confidence):
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(3 * 16000, np.float32)])
    fast = ScoredASR("Would you please turn on the ramp?", confidence)
    strong = ScoredASR("Would you please turn on the lamp?", -0.2)
    asr = SecondOpinionASR(fast, strong, SecondOpinionOptions(threshold=-0.45))
    llm = FakeLLM()
    engines = Engines(asr=asr, llm=llm, tts=FakeTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    records = [e.record for e in [ev async for ev in agent.process(_frames(audio, clock))] if isinstance(e, TurnMetrics)]
    assert len(records) == 1
    rec = records[0]
    if confidence < -0.45:
        # The stronger model heard the final utterance once; its text is the turn's, and the record says why.
        assert strong.passes == 1
        assert rec.transcript == "Would you please turn on the lamp?" == llm.calls[-1]
        assert rec.extra["asr_second_opinion"] == {
            "first": "Would you please turn on the ramp?",
            "first_confidence": -1.2,
            "second": "Would you please turn on the lamp?",
            "second_confidence": -0.2,
            "kept": "second",
        }
        assert rec.marks["asr_second_start"] <= rec.marks["transcript_ready"]
    else:
        assert strong.passes == 0 and "asr_second_opinion" not in rec.extra
        assert rec.transcript == "Would you please turn on the ramp?"
    engines.close()


@pytest.mark.parametrize(
    ("second", "second_confidence", "kept"),
    [("", -0.1, "first"), ("lights off in the office", -0.75, "first"), ("lights off in the office", -0.7, "second")],
)
def test_second_opinion_keeps_the_stronger_text_only_when_it_is_surer(second, second_confidence, kept):
    fast, strong = ScoredASR("Life's off in the office", -0.8), ScoredASR(second, second_confidence)
    asr = SecondOpinionASR(fast, strong, SecondOpinionOptions(threshold=-0.35, margin=0.1))
    first = asr.transcribe(np.zeros(16000, np.float32))
    assert asr.wants_second_opinion(first)
    out = asr.second_opinion(np.zeros(16000, np.float32), first)
    assert out.second_opinion["kept"] == kept
    assert out.text == (second if kept == "second" else "Life's off in the office")
    # Asked once per turn: a transcript that already has a second opinion is not re-heard again.
    assert not asr.wants_second_opinion(out)
    # Nothing heard is not "unsure": no second pass for silence.
    assert not asr.wants_second_opinion(AsrResult("", 1.0, 700, 1.0, avg_logprob=-3.0))


class LateFirstTokenLLM(FakeLLM):
    """Reads the end-of-turn signals with its prompt, then takes 1.2 s to its first token (as when an unsure
    tool call is written unseen before it is kept or dropped)."""

    def turn_signals(self, history, user_text):
        return {"eom": 0.95, "punct": 0.9}

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        if stats is not None and stats.on_prompt is not None:
            stats.on_prompt()
        end = time.monotonic() + 1.2
        while time.monotonic() < end and not (stop is not None and stop.is_set()):
            time.sleep(0.01)
        yield from super().stream(history, user_text, stop=stop, max_tokens=max_tokens, stats=stats)


async def test_the_turn_end_does_not_wait_for_a_late_first_token(data_dir):
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(4 * 16000, np.float32)])
    engines = Engines(asr=FakeASR(split_s=0.0), llm=LateFirstTokenLLM(), tts=FakeTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    records = [e.record for e in [ev async for ev in agent.process(_frames(audio, clock))] if isinstance(e, TurnMetrics)]
    assert len(records) == 1
    rec = records[0]
    # Scored when the prompt was evaluated: the turn ended on the policy's silence, not 1.2 s later (or at the
    # 1.5 s silence an unscored turn waits).
    assert rec.extra["release"]["signals"]["text_eom"] == 0.95
    assert rec.extra["release"]["text_late"] is False
    assert (rec.marks["turn_end"] - rec.marks["speech_end"]) / 1e6 < 1000
    assert rec.marks["first_token"] > rec.marks["turn_end"]
    engines.close()


class SecondClauseLLM(FakeLLM):
    """Says "Sure," at once and the rest ``delay_s`` later (a slow CPU writing clause two)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        yield "Sure, "
        if stop is None or not stop.wait(self.delay_s):
            yield from ("the ", "lamp ", "is ", "on.")


class TenthTTS(FakeTTS):
    def synthesize(self, text, *, stop: threading.Event | None = None):
        yield np.full(2205, 1000, dtype=np.int16)  # 0.1 s a clause


@pytest.mark.parametrize("delay_s", [0.0, 0.8])
async def test_silence_inside_a_reply_is_measured_as_a_stall(data_dir, delay_s):
    """The first clause plays 0.1 s; when clause two comes later than that, the listener hears the difference as
    silence inside the reply, and the record says so (the profile's "reply stalls" line)."""
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(3 * 16000, np.float32)])
    engines = Engines(asr=FakeASR(split_s=0.0), llm=SecondClauseLLM(delay_s), tts=TenthTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    records = [e.record for e in [ev async for ev in agent.process(_frames(audio, clock))] if isinstance(e, TurnMetrics)]
    assert len(records) == 1
    rec = records[0]
    assert rec.reply == "Sure, the lamp is on."
    if delay_s:
        # Clause two comes delay_s after the first token; "Sure," began at the release and ran 0.1 s.
        expected = (rec.marks["first_token"] + delay_s * 1e9 - rec.marks["first_audio_out"]) / 1e6 - 100
        assert rec.stalls == 1 and abs(rec.stall_ms - expected) < 50, (rec.stall_ms, expected)
    else:
        assert rec.stalls == 0 and rec.stall_ms == 0
    assert rec.to_dict()["stall_ms"] == rec.stall_ms
    engines.close()


class SteadyLLM(FakeLLM):
    """A word every 80 ms: after "Sure," a clause that takes ~0.8 s to write."""

    REPLY = "Sure, the lamp in the living room is on now, and it stays on until you say so."

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        for word in self.REPLY.split(" "):
            if stop is not None and stop.wait(0.08):
                return
            yield word + " "


class WordsTTS(FakeTTS):
    def synthesize(self, text, *, stop: threading.Event | None = None):
        yield np.full(int(0.3 * 22050) * len(text.split()), 1000, dtype=np.int16)  # 0.3 s a word, at once


class NeverCut(Pace):
    def must_cut(self, audio_left_ms: float, words: int) -> bool:
        return False


@pytest.mark.parametrize("pacing", [True, False])
async def test_a_clause_is_voiced_early_when_the_speaker_would_run_dry(data_dir, pacing):
    """ "Sure," lasts 0.3 s and the next clause takes ~0.5 s more to write: waiting for its comma leaves the
    speaker silent; voicing the words written so far when the audio runs low keeps it going, same words."""
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(4 * 16000, np.float32)])
    engines = Engines(asr=FakeASR(split_s=0.0), llm=SteadyLLM(), tts=WordsTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    if not pacing:
        agent.pace = NeverCut()
    records = [e.record for e in [ev async for ev in agent.process(_frames(audio, clock))] if isinstance(e, TurnMetrics)]
    assert len(records) == 1
    rec = records[0]
    assert rec.reply == SteadyLLM.REPLY
    if pacing:
        assert rec.extra["clauses_cut_early"] >= 1
        assert rec.stall_ms < 60, rec.stall_ms
    else:
        assert "clauses_cut_early" not in rec.extra
        assert rec.stall_ms > 150, rec.stall_ms
    engines.close()


class HistoryLLM(FakeLLM):
    """A reply of three one-second clauses (with ``ClauseTTS``); it keeps each prompt's history."""

    REPLY = "Sure, the living room lamp is on now. It stays on until you ask. Anything else?"

    def __init__(self) -> None:
        super().__init__()
        self.histories: list[list] = []

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        self.calls.append(user_text)
        self.histories.append(list(history))
        for word in self.REPLY.split(" "):
            if stop is not None and stop.is_set():
                return
            yield word + " "


class ClauseTTS(FakeTTS):
    """One second of audio per clause, made in real time (a slow CPU): the reply is still being made when the
    user talks over it, so it is cut to the clauses handed over."""

    def synthesize(self, text, *, stop: threading.Event | None = None):
        if stop is None or not stop.wait(0.9):
            yield np.full(22050, 1000, dtype=np.int16)


@pytest.mark.parametrize("again", [True, False])
async def test_a_request_asked_again_after_a_barge_in_replaces_the_cut_exchange(data_dir, again):
    """The user talks over the reply, then asks the same again: the prompt must not show the request answered
    with the fragment that played (a small model copies it: "Sure," as the whole answer). A new request keeps it."""
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    asked = "Would you please turn on the lamp?"
    llm = HistoryLLM()
    asr = FixedASR(asked)
    engines = Engines(asr=asr, llm=llm, tts=ClauseTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock)
    first_audio = asyncio.Event()
    step = 320

    async def frames():
        t0 = clock.now_ns()
        sent = 0

        async def send(chunk: np.ndarray):
            nonlocal sent
            for i in range(0, chunk.shape[0] - step + 1, step):
                due = t0 + (sent + step) * 62_500
                if (delay := (due - clock.now_ns()) / 1e9) > 0:
                    await asyncio.sleep(delay)
                yield AudioFrame.from_float32(chunk[i : i + step], 16000, t0 + sent * 62_500)
                sent += step

        silence = np.zeros(step, np.float32)
        async for f in send(speech):
            yield f
        while not first_audio.is_set():
            async for f in send(silence):
                yield f
        if not again:
            asr.text = "What time is it in Tokyo?"
        barge_at = clock.now_ns() + 1_600_000_000  # past continuation_ms: a new turn, not the same one
        while clock.now_ns() < barge_at:
            async for f in send(silence):
                yield f
        async for f in send(np.concatenate([speech, np.zeros(5 * 16000, np.float32)])):
            yield f

    events = []
    async for ev in agent.process(frames()):
        events.append(ev)
        if isinstance(ev, ReplyAudio):
            first_audio.set()
    records = [e.record for e in events if isinstance(e, TurnMetrics)]
    assert len(records) == 2 and any(isinstance(e, Interrupted) for e in events), [e.type for e in events]
    first, second = records
    assert first.interrupted and not second.interrupted
    assert first.reply and len(first.reply) < len(HistoryLLM.REPLY.strip()), first.reply  # cut: not all handed over
    cut = [m.role for m in llm.histories[-1]], [m.content for m in llm.histories[-1]]
    whole = HistoryLLM.REPLY.strip()
    if again:
        assert llm.histories[-1] == [], cut  # asked afresh
        assert second.extra.get("retry_of_cut_reply") is True
        assert [(m.role, m.content, m.cut) for m in agent.history] == [("user", asked, False), ("assistant", whole, False)]
    else:
        assert [(m.role, m.content, m.cut) for m in llm.histories[-1]] == [
            ("user", asked, False),
            ("assistant", first.reply, True),
        ], cut
        assert "retry_of_cut_reply" not in second.extra
        assert len(agent.history) == 4 and agent.history[1].cut and not agent.history[3].cut
    engines.close()


def test_a_cut_exchange_is_left_out_only_for_the_same_request():
    from voiceloop.llm.prompt import Message
    from voiceloop.pipeline.history import without_cut_retry

    req, call, result = (
        Message("user", "Set a timer for ten minutes."),
        Message("assistant", "<tool_call>"),
        Message("tool", "ok"),
    )
    cut = Message("assistant", "Sure,", cut=True)
    head = [Message("system", "Be brief."), Message("user", "Hi."), Message("assistant", "Hello!")]
    assert without_cut_retry([*head, req, call, result, cut], "set a timer for 10 minutes") == (head, 4)
    assert without_cut_retry([*head, req, cut], "Set the timer for ten minutes please.") == (
        [*head, req, cut],
        0,
    )  # 2 of 7 words differ
    assert without_cut_retry([*head, req, Message("assistant", "Sure,")], req.content)[1] == 0  # not cut
    assert without_cut_retry([], "hello") == ([], 0)
