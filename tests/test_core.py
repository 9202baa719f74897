"""Unit tests of the core (no models)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voiceloop import AudioFrame, Budgets, ManualClock, Pipeline, Stage, TurnRecord
from voiceloop.asr.streaming import StablePrefixTracker
from voiceloop.asr.whisper import clock_times, strip_repeats, strip_restart
from voiceloop.llm.stops import StopMatcher
from voiceloop.metrics.budget import LatencyBudgeter
from voiceloop.metrics.wer import wer
from voiceloop.pipeline.endpointing import AdaptiveEndpointing, FixedSilence, incomplete_cue, reads_incomplete
from voiceloop.pipeline.pacing import Pace
from voiceloop.tts.clauses import ClauseSplitter


def test_audio_frame_validates_and_converts():
    f = AudioFrame(pcm=np.array([0, 16384, -32768], dtype=np.int16), sample_rate=16000, timestamp_ns=5)
    assert f.num_samples == 3
    assert f.to_float32()[1] == pytest.approx(0.5)
    assert AudioFrame.from_bytes(f.to_bytes(), 16000).pcm.tolist() == f.pcm.tolist()
    with pytest.raises(ValueError, match="int16"):
        AudioFrame(pcm=np.zeros(3, dtype=np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match="even"):
        AudioFrame.from_bytes(b"abc", 16000)


def test_manual_clock():
    c = ManualClock(10)
    c.advance_ms(1.5)
    assert c.now_ns() == 10 + 1_500_000


class Doubler(Stage[int, int]):
    async def process(self, inputs):
        async for x in inputs:
            yield x * 2


class Slow(Stage[int, int]):
    def __init__(self) -> None:
        self.seen = 0
        self.cancelled = False

    async def process(self, inputs):
        try:
            async for x in inputs:
                self.seen += 1
                await asyncio.sleep(0.01)
                yield x
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def _count(n):
    for i in range(n):
        yield i


async def test_pipeline_runs_stages_in_order():
    out = [x async for x in Pipeline([Doubler(), Doubler()], queue_size=2).run(_count(5))]
    assert out == [0, 4, 8, 12, 16]


async def test_pipeline_cancellation_stops_stages_and_queues_are_bounded():
    slow = Slow()
    produced = 0

    async def source():
        nonlocal produced
        for i in range(10_000):
            produced += 1
            yield i

    async def consume():
        async for _ in Pipeline([slow], queue_size=4).run(source()):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slow.cancelled
    # Backpressure: the source could not run far ahead of the slow stage.
    assert produced < slow.seen + 20
    seen = slow.seen
    await asyncio.sleep(0.05)
    assert slow.seen == seen  # really stopped


def test_stop_matcher_holds_back_partial_stops():
    m = StopMatcher(("\nUser:",))
    assert m.feed("Hello") == "Hello"
    assert m.feed(" there\nUs") == " there"
    assert m.feed("er: hi") == ""
    assert m.stopped
    m2 = StopMatcher(("\nUser:",))
    assert m2.feed("a\n") == "a"
    assert m2.feed("b") == "\nb"


def test_clause_splitter_cuts_first_clause_early():
    s = ClauseSplitter()
    out = []
    for w in "Sure thing I can help you with that right away. It will rain, but later today".split(" "):
        out += s.feed(w + " ")
    out.append(s.flush())
    assert out[0] == "Sure thing"  # first clause: 2 words, no punctuation needed
    assert out[1] == "I can help you with that right away."
    assert " ".join(out).split() == "Sure thing I can help you with that right away. It will rain, but later today".split()


def test_first_clause_ends_at_its_punctuation_without_waiting_for_a_space():
    s = ClauseSplitter()
    assert s.feed("I") == [] and s.feed("'m") == [] and s.feed(" sorry") == []
    assert s.feed(",") == ["I'm sorry,"]
    s = ClauseSplitter()
    assert s.feed("10") == [] and s.feed(",") == []  # "10,000" is not over at the comma
    assert s.feed("000") == [] and s.feed(" people") == []
    assert s.feed(" came") == ["10,000 people"]


def test_a_clause_cut_early_keeps_a_number_with_its_unit_and_loses_no_word():
    s = ClauseSplitter()
    assert s.feed("Sure, ") == ["Sure,"]
    assert s.feed("the lamp in the liv") == []
    # Complete words only ("liv" is still being written), and not ending on words that lean on the next.
    assert s.cut_early() == "the lamp"
    assert s.pending == " in the liv"
    assert s.feed("ing room is ") == [] and s.cut_early(min_words=6) is None  # "in the living room is": 5 words
    assert s.feed("1,250 ") == [] and s.cut_early() == "in the living room is"  # never right after a number
    assert s.feed("km away.") == [] and s.flush() == "1,250 km away."
    assert ClauseSplitter().cut_early() is None


def test_a_clause_cut_early_ends_on_a_function_word_only_when_too_few_words_are_left():
    s = ClauseSplitter()
    assert s.feed("Yes. ") == ["Yes."]
    assert s.feed("Go to the ") == [] and s.cut_early() == "Go to the"  # two words are the least: kept as written
    assert s.feed("There are 1000 grams in a ") == [] and s.cut_early() == "There are 1000 grams"
    assert s.feed("kilogram.") == [] and s.flush() == "in a kilogram."


def test_pace_cuts_only_when_the_audio_left_is_shorter_than_a_token_and_the_words_synthesis():
    p = Pace(synth_ms_per_word=20, token_ms=40)
    assert p.must_cut(100, words=1) and not p.must_cut(120, words=1)  # 40 + 2 x 20 + 30 = 110 ms
    assert p.must_cut(140, words=3)  # more words take longer to voice: 40 + 4 x 20 + 30 = 150 ms
    for _ in range(30):
        p.saw_synth(300, words=6)  # a slow CPU (50 ms a word): learnt as it goes
        p.saw_token(100)
    p.saw_token(5000)  # the LLM held back (a tool call): not its speed
    assert p.must_cut(200, words=1) and not p.must_cut(250, words=1)  # 100 + 2 x 50 + 30 = 230 ms


def test_stable_prefix_grows_by_agreement():
    t = StablePrefixTracker()
    assert t.update("what time").stable == ""
    assert t.update("what time is").stable == "what time"
    assert t.update("What time is it?").stable == "What time is"
    assert t.update("what time is it").stable == "what time is it"


def test_clock_times_are_written_as_times_only_after_a_time_preposition():
    assert clock_times("At 7.15 remind me to leave.") == "At 7:15 remind me to leave."
    assert clock_times("Remind me at 6.30pm to water the plants.") == "Remind me at 6:30pm to water the plants."
    assert clock_times("wake me at 1230 a.m.") == "wake me at 12:30 a.m."
    assert clock_times("At 7 15 remind me.") == "At 7:15 remind me."
    # Numbers that are not clock times stay as they are.
    for keep in ("Bake at 350 degrees.", "It grew at 3.14 percent.", "at 7.5 meters", "It costs 7.15.", "at 9.75"):
        assert clock_times(keep) == keep


def test_strip_repeats_cuts_a_decoder_loop():
    looped = "I need to buy milk eggs and bread Milk eggs and bread Milk eggs"
    assert strip_repeats(looped) == "I need to buy milk eggs and bread"
    keep = "ask not what your country can do for you, ask what you can do for your country"
    assert strip_repeats(keep) == keep
    assert strip_repeats("no no no") == "no no no"  # short repeats are speech


def test_strip_restart_cuts_repeated_utterance():
    assert strip_restart("What time is it? What time is it?") == "What time is it?"
    # the decoder's lone restart word after the sentence's end
    assert strip_restart("What's the time in London right now? What") == "What's the time in London right now?"
    assert strip_restart("Can you turn on the hallway light? Can") == "Can you turn on the hallway light?"
    assert strip_restart("Yes. Yes.") == "Yes. Yes."
    assert strip_restart("4 queen of clothes 4 queen of") == "4 queen of clothes"
    # ... cut inside a word (seen on an espeak-ng voice)
    assert strip_restart("who painted the Mona Lisa who painted the Mon") == "who painted the Mona Lisa"
    keep = "ask not what your country can do for you, ask what you can do for your country"
    assert strip_restart(keep) == keep
    assert strip_restart("no no") == "no no"


def test_endpointing_policies():
    a = AdaptiveEndpointing()
    assert a.required_silence_ms("What time is it?") == a.complete_ms
    assert a.required_silence_ms("I would like to book a table for") == a.incomplete_ms
    assert a.required_silence_ms("Call the dentist and") == a.incomplete_ms
    assert a.required_silence_ms(None) == a.cap_ms
    assert a.complete_ms <= 250 and a.incomplete_ms >= 600 and a.incomplete_ms <= a.cap_ms
    assert FixedSilence(500).required_silence_ms("anything") == 500
    assert reads_incomplete("well, um,")
    # A short continuation of an unfinished sentence ("I need to buy ... milk,") waits longer.
    assert a.reason("I need to buy milk", previous=("I need to buy",)) == "short_continuation"
    assert a.required_silence_ms("I need to buy milk", previous=("I need to buy",)) == a.short_continuation_ms
    assert a.reason("I need to buy milk, eggs and bread.", previous=("I need to buy", "I need to buy milk")) == "complete"
    # A flicker pause right after "milk" does not reset what the unfinished pause said.
    assert a.reason("I need to buy milk", previous=("I need to buy", "I need to buy milk")) == "short_continuation"
    assert a.reason("Yes.", previous=(".",)) == "complete"  # a pause that heard no words
    assert a.reason("What time is it?", previous=("What time is it",)) == "complete"  # a finished previous pause
    assert a.reason("No.", end_of_turn=0.01) == "turn_detector"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        # generic syntax only: what the words are about never matters
        ("So the thing is", "trailing_word"),
        ("I need to buy", "open_infinitive"),
        ("in this regard...", "trailing_punctuation"),
        ("well, um,", "trailing_punctuation"),
        ("not worth thinking about.", "trailing_word"),
        ("It was", "trailing_word"),
        ("Call the dentist and", "trailing_word"),
        # complete: closing punctuation lets auxiliaries and pronouns end a sentence
        ("than he was.", None),
        ("How are you?", None),
        ("Thank you.", None),
        ("5 5", None),
        ("which chiefly induced people to buy.", None),
        ("I would like to book a table.", None),
        ("Can you tell me how long it takes to boil an egg?", None),
    ],
)
def test_incomplete_cues(text: str, cue: str | None) -> None:
    assert incomplete_cue(text) == cue


def test_turn_record_stages_add_up_to_v2v():
    r = TurnRecord(turn_id=1)
    ms = 1_000_000
    for name, t in [("speech_start", 0), ("speech_end", 1000), ("asr_start", 1040), ("transcript_ready", 1120),
                    ("first_token", 1150), ("first_clause", 1200), ("first_tts_audio", 1260), ("turn_end", 1230),
                    ("first_audio_out", 1265)]:  # fmt: skip
        r.mark(name, t * ms)
    st = r.stages_ms()
    chain = sum(st[s] for s in ("vad", "asr", "llm", "clause", "tts", "release"))
    assert chain == pytest.approx(r.v2v_ms) == pytest.approx(265)
    assert st["endpoint"] == pytest.approx(230)
    assert r.over_budget(Budgets(v2v=200, tts=10)) == ["tts", "v2v"]
    b = LatencyBudgeter()
    seen = []
    b.subscribe(seen.append)
    b.add(r)
    assert seen == [r]
    assert b.summary()["v2v_ms"]["p50"] == pytest.approx(265)


def test_budgets_parse():
    assert Budgets.parse("asr=80, v2v=300").asr == 80
    with pytest.raises(ValueError, match="unknown budget"):
        Budgets.parse("nope=1")


def test_wer_normalises():
    assert wer(["Mr. Quilter is here."], ["mister quilter is here"]) == 0
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(0.5)
    assert wer(["Lord, but I'm glad, it's late"], ["Lord but I am glad it is late"]) == 0  # contractions
    assert wer(["I can't go"], ["I can go"]) == pytest.approx(1 / 4)  # "can not" vs "can": one word lost


def test_profile_gives_a_turn_to_the_clip_its_speech_is_in():
    """A clip with no leading silence (espeak-ng's) starts speech up to one VAD window before its first sample;
    that turn is the clip's, not the previous clip's (it had been joined to it, transcript and all)."""
    from pathlib import Path

    from voiceloop.profile.runner import WINDOW_NS, InputSpan, _span_at

    a, b = InputSpan(path=Path("a.wav")), InputSpan(path=Path("b.wav"))
    a.start_ns, a.end_ns, b.start_ns, b.end_ns = 0, 5_177_000_000, 5_177_000_000, 10_000_000_000
    first_voiced_window_start = b.start_ns - 25_000_000
    assert _span_at([a, b], first_voiced_window_start + WINDOW_NS) is b
    assert _span_at([a, b], 1_000_000_000 + WINDOW_NS) is a


def test_the_repetition_metrics_leave_a_tool_turns_filler_out():
    from voiceloop.profile.runner import _said

    turn = {"reply": "One moment. The time in Tokyo is 9 pm.", "tools": [{"filler": "One moment."}, {"name": "t"}]}
    assert _said(turn) == "The time in Tokyo is 9 pm."
    assert _said({"reply": "One moment. Sure.", "tools": []}) == "One moment. Sure."


def test_history_tokens_is_a_cli_option_with_a_floor(capsys):
    from voiceloop.cli.llm_args import llama_options
    from voiceloop.cli.main import build_parser

    args = build_parser().parse_args(["profile", "a.wav", "--history-tokens", "2560"])
    assert llama_options(args).history_tokens == 2560
    assert llama_options(build_parser().parse_args(["profile", "a.wav"])).history_tokens is None
    for bad in ("100", "lots"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(["profile", "a.wav", "--history-tokens", bad])
        assert exc.value.code == 2 and "at least 256" in capsys.readouterr().err
