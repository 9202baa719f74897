"""voiceloop's services inside pipecat: pipecat's own test helper, then a full pipeline on speech files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pipecat", reason='the pipecat extra: pip install ".[pipecat]"')

from pipecat.frames.frames import (
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from voiceloop.audio.files import read_audio
from voiceloop.audio.resample import resample
from voiceloop.integrations.pipecat import LatencyObserver, VoiceloopLLMService, VoiceloopSTTService
from voiceloop.integrations.pipecat.harness import profile_files
from voiceloop.integrations.pipecat.pipelines import voiceloop_services_pipeline
from voiceloop.metrics.budget import CHAIN
from voiceloop.metrics.wer import wer

pytestmark = pytest.mark.models

DATA = Path(__file__).parent / "data"
LIVING_ROOM = DATA / "voice2json_would_you_please_turn_on_living_room_lamp.wav"


@pytest.fixture
def llm_service(engines):
    # Per test: pipecat processors hold asyncio objects of the loop they first ran in.
    return VoiceloopLLMService(backend=engines.llm)


def _context(*messages: tuple[str, str]) -> LLMContextFrame:
    return LLMContextFrame(context=LLMContext(messages=[{"role": r, "content": c} for r, c in messages]))


async def test_llm_service_emits_pipecats_response_frames(llm_service):
    down, _ = await run_test(
        llm_service,
        frames_to_send=[_context(("system", "Be brief."), ("user", "What is the capital of France?"))],
    )
    kinds = [type(f) for f in down if isinstance(f, (LLMFullResponseStartFrame, LLMTextFrame, LLMFullResponseEndFrame))]
    assert kinds[0] is LLMFullResponseStartFrame and kinds[-1] is LLMFullResponseEndFrame
    assert kinds.count(LLMTextFrame) >= 2
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert "Paris" in text and "User:" not in text
    assert llm_service.last_stats is not None and llm_service.last_stats.finish_reason in ("stop", "eos")


async def test_llm_service_follow_up_reuses_the_kv_cache(llm_service):
    first = ("user", "What is the capital of France?")
    await run_test(llm_service, frames_to_send=[_context(first)])
    reply = "The capital of France is Paris."
    await run_test(llm_service, frames_to_send=[_context(first, ("assistant", reply), ("user", "And of Italy?"))])
    st = llm_service.last_stats
    # The system prompt and the first exchange come from the cache; only the new turn is evaluated.
    assert st is not None and st.reused_tokens >= 40 and st.evaluated_tokens < 25


async def test_llm_generation_really_stops_on_interruption(llm_service):
    before = llm_service.cancelled_replies
    down, _ = await run_test(
        llm_service,
        frames_to_send=[
            # A reply of max_tokens (~0.8 s): the interruption lands in the middle of it.
            _context(("user", "List the numbers from one to fifty, separated by commas.")),
            SleepFrame(sleep=0.3),
            InterruptionFrame(),
        ],
    )
    st = llm_service.last_stats
    assert llm_service.cancelled_replies == before + 1
    # The worker thread saw the stop flag and ended the reply well short of max_tokens.
    assert st is not None and st.cancelled and st.finish_reason == "cancelled"
    assert st.decode_tokens < llm_service.max_tokens
    texts = [f for f in down if isinstance(f, LLMTextFrame)]
    assert len(texts) <= st.decode_tokens
    i_int = next(i for i, f in enumerate(down) if isinstance(f, InterruptionFrame))
    assert not any(isinstance(f, LLMTextFrame) for f in down[i_int:])


def _speech_frames(path: Path, *, pace_every_ms: int = 300) -> list:
    samples, rate = read_audio(path)
    pcm = (np.clip(resample(samples, rate, 16000), -1, 1) * 32767).astype(np.int16)
    frames: list = [VADUserStartedSpeakingFrame()]
    step = 320  # 20 ms
    for i in range(0, len(pcm) - step + 1, step):
        frames.append(InputAudioRawFrame(audio=pcm[i : i + step].tobytes(), sample_rate=16000, num_channels=1))
        if (i // step) % (pace_every_ms // 20) == 0 and i:
            frames.append(SleepFrame(sleep=0.15))  # room for an interim pass, as real time would give
    frames += [VADUserStoppedSpeakingFrame(stop_secs=0.2), SleepFrame(sleep=1.0)]
    return frames


async def test_stt_service_emits_interim_and_final_transcripts(engines):
    stt = VoiceloopSTTService(asr=engines.asr, audio_passthrough=False)
    down, _ = await run_test(stt, frames_to_send=_speech_frames(LIVING_ROOM))
    interims = [f for f in down if isinstance(f, InterimTranscriptionFrame)]
    finals = [f for f in down if isinstance(f, TranscriptionFrame)]
    assert len(interims) >= 2, [type(f).__name__ for f in down]
    assert len(finals) == 1 and finals[0].finalized
    assert wer(["would you please turn on the living room lamp"], [finals[0].text]) <= 0.15, finals[0].text
    assert down.index(finals[0]) > down.index(interims[-1])
    assert stt.last_final_ms > 0


def test_a_full_pipecat_pipeline_on_speech_files(engines):
    files = [LIVING_ROOM, DATA / "cmu_arctic_a0024.wav"]
    build = voiceloop_services_pipeline(backend=engines.llm)
    # settle_s: room for smart-turn's timeout if it judges the last sentence unfinished.
    report = asyncio.run(profile_files(files, build, strategy="pipecat-voiceloop", settle_s=4.0))
    s = report["summary"]
    assert s["answered"] == 2, report["turns"]
    for t in report["turns"]:
        assert t["reply"] and t["transcript"]
        chain = sum(t["stages"][k] for k, _, _ in CHAIN)
        assert chain == pytest.approx(t["v2v_ms"], abs=0.01)  # the stages add up to v2v
        # A sanity range, not a speed target (those live in benchmarks): 7 s on a 2-core AVX2 EPYC, ~1 s on a fast one.
        assert 150 < t["v2v_ms"] < 30_000
    assert wer(["would you please turn on the living room lamp"], [report["turns"][0]["transcript"]]) <= 0.15


def test_observer_table_matches_profiles(engines):
    from voiceloop.metrics.budget import TurnRecord

    obs = LatencyObserver(strategy="pipecat")
    rec = TurnRecord(turn_id=1, transcript="hello", reply="hi")
    for i, k in enumerate(["speech_start", "speech_end", "asr_start", "transcript_ready", "turn_end", "first_token",
                           "first_clause", "first_tts_audio", "first_audio_out"]):  # fmt: skip
        rec.marks[k] = i * 10_000_000
    obs.budgeter.add(rec)
    table = obs.table()
    assert "strategy=pipecat answered 1/1" in table and "v2v ms p50 70" in table


async def test_observer_ignores_a_noise_blip_after_the_transcript():
    from pipecat.frames.frames import LLMTextFrame as Text
    from pipecat.frames.frames import TTSAudioRawFrame, TTSStartedFrame
    from pipecat.observers.base_observer import FramePushed
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

    a, sink = FrameProcessor(), FrameProcessor()
    obs = LatencyObserver(output=sink)
    ms = 1_000_000
    events = [
        (VADUserStartedSpeakingFrame(), 0),
        (VADUserStoppedSpeakingFrame(stop_secs=0.2), 1200 * ms),
        (TranscriptionFrame(text="what time is it", user_id="", timestamp=""), 1300 * ms),
        (VADUserStartedSpeakingFrame(), 1500 * ms),  # a cough: VAD start/stop, no words
        (VADUserStoppedSpeakingFrame(stop_secs=0.2), 1900 * ms),
        (_context(("user", "what time is it")), 2000 * ms),
        (Text(text="It is"), 2050 * ms),
        (TTSStartedFrame(), 2100 * ms),
        (TTSAudioRawFrame(audio=b"\0\0" * 160, sample_rate=16000, num_channels=1), 2150 * ms),
    ]
    for frame, ts in events:
        await obs.on_push_frame(FramePushed(source=a, destination=sink, frame=frame, direction=FrameDirection.DOWNSTREAM,
                                            timestamp=ts))  # fmt: skip
    (rec,) = obs.budgeter.records
    assert rec.marks["speech_end"] == 1000 * ms  # the stop the transcript followed, minus stop_secs
    st = rec.stages_ms()
    assert st["vad"] == 200 and st["asr"] == 100 and st["llm"] == 750 and st["endpoint"] == 1000
    assert rec.v2v_ms == 1150 and rec.transcript == "what time is it" and rec.reply == "It is"


def _pcm(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()


async def test_turn_analyzer_decides_from_the_transcript_and_sets_the_wait(engines):
    """voiceloop's decision as pipecat's turn analyzer: a finished question ends the turn at once; a
    sentence cut after "the" gets the long wait as this turn's stop time. (A question: the text model's margin
    is wide there; short commands are its weak class, P(end) 0.19-0.75 across Piper's renderings of the lamp
    request, measured in the turn evaluation, not here.)"""
    from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState

    from voiceloop.integrations.pipecat import VoiceloopTurnAnalyzer

    analyzer = VoiceloopTurnAnalyzer(asr=engines.asr, llm=engines.llm)
    analyzer.set_sample_rate(16000)
    tts = engines.tts

    def say(text: str) -> np.ndarray:
        pcm = np.concatenate(list(tts.synthesize(text))).astype(np.float32) / 32768.0
        return resample(pcm, tts.sample_rate, 16000)

    results = {}
    for text in ("What time is it in Tokyo right now?", "What time does the"):
        audio = np.concatenate([say(text), np.zeros(3200, np.float32)])
        for i in range(0, len(audio) - 320 + 1, 320):
            analyzer.append_audio(_pcm(audio[i : i + 320]), is_speech=i < len(audio) - 3200)
        state, metrics = await analyzer.analyze_end_of_turn()
        results[text] = (state, analyzer.last_decision, analyzer._stop_ms, metrics)
        analyzer.clear()
    done, open_ = results["What time is it in Tokyo right now?"], results["What time does the"]
    assert done[0] == EndOfTurnState.COMPLETE and done[1].reason == "confident"
    assert open_[0] == EndOfTurnState.INCOMPLETE and open_[1].reason == "unfinished"
    assert open_[2] == open_[1].silence_ms >= 1000  # pipecat now waits the policy's silence for this turn
    assert analyzer._stop_ms == analyzer._default_stop_ms  # reset for the next turn
    assert 0 <= open_[3].probability < done[3].probability <= 1


def test_a_pipecat_pipeline_with_voiceloops_turn_decision(engines):
    build = voiceloop_services_pipeline(backend=engines.llm, voiceloop_turns=True)
    report = asyncio.run(profile_files([LIVING_ROOM], build, strategy="pipecat-voiceloop-turns", settle_s=4.0))
    assert report["summary"]["answered"] == 1, report["turns"]
    t = report["turns"][0]
    assert t["reply"] and wer(["would you please turn on the living room lamp"], [t["transcript"]]) <= 0.15


async def test_llm_service_runs_voiceloop_tools(engines):
    """voiceloop tools on the pipecat service: the call is run inside it and only the answer is pushed."""
    from voiceloop.tools.builtin.calculator import calculate

    service = VoiceloopLLMService(backend=engines.llm, tools=[calculate])
    down, _ = await run_test(service, frames_to_send=[_context(("user", "What is 348 plus 1297? Use the calculator."))])
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert "<tool_call>" not in text and "tool_call" not in text
    calls = [r for r in service.tool_records if "name" in r]
    assert calls and calls[0]["name"] == "calculate" and "1645" in calls[0]["result"], service.tool_records
    assert "1645" in text.replace(",", "").replace("1 645", "1645") or "thousand" in text.lower(), text


def test_stt_service_defaults_to_the_pipelines_recogniser():
    from voiceloop.asr.second_opinion import SecondOpinionASR

    # The same recogniser as voiceloop's own pipeline: tiny.en, with Whisper base (the models extra) for unsure turns.
    stt = VoiceloopSTTService(audio_passthrough=False)
    assert isinstance(stt.asr, SecondOpinionASR) and stt.asr.strong.model_path.name == "whisper-base"


async def test_llm_service_checks_the_answer_after_a_tool_against_its_result():
    """The follow-up check of VoiceAgent on the pipecat service too: an answer after a tool result that says a
    number from nowhere ("The answer is 1025." after set_timer(5)) is not pushed; the result is."""
    from voiceloop.llm.backend import LLMBackend
    from voiceloop.tools import tool

    @tool
    def set_timer(minutes: float) -> str:
        """Start a timer."""
        return f"timer set for {minutes:g} minutes"

    class Imitating(LLMBackend):
        def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None, after=None, **kw):
            if not after:
                yield '<tool_call>\n{"name": "set_timer", "arguments": {"minutes": 5}}\n</tool_call>'
                return
            for piece in ["The answer", " is 1025.", " It", " goes", " on."]:
                if stop is not None and stop.is_set():
                    return
                yield piece

    service = VoiceloopLLMService(backend=Imitating(), tools=[set_timer])
    down, _ = await run_test(service, frames_to_send=[_context(("user", "Start a 5 minute timer."))])
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert "1025" not in text and "Timer set for 5 minutes." in text, text
    assert {"unfaithful": "The answer is 1025.", "numbers": [1025.0]} in service.tool_records, service.tool_records
