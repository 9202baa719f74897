"""Speech-friendly text: markup never reaches Piper, numbers are said in words (checked on Piper's real input)."""

from __future__ import annotations

import random
import re
import threading

import numpy as np
import pytest

from voiceloop import AgentOptions, Engines, LLMBackend, PiperTTS, VoiceAgent
from voiceloop.audio.files import read_audio_16k
from voiceloop.core.clock import MonotonicClock
from voiceloop.core.events import TurnMetrics
from voiceloop.tts.clauses import ClauseSplitter
from voiceloop.tts.speech_text import MarkupFilter, cardinal, ordinal, speakable, year


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety-nine"),
        (105, "one hundred five"),
        (1250, "one thousand two hundred fifty"),
        (2_000_001, "two million one"),
        (-7, "minus seven"),
    ],
)
def test_cardinal(n, words):
    assert cardinal(n) == words


def test_ordinal_and_year():
    assert [ordinal(n) for n in (1, 2, 3, 12, 21, 40, 100)] == [
        "first",
        "second",
        "third",
        "twelfth",
        "twenty-first",
        "fortieth",
        "one hundredth",
    ]
    assert [year(y) for y in (1969, 2005, 2026, 1900, 1905)] == [
        "nineteen sixty-nine",
        "two thousand five",
        "twenty twenty-six",
        "nineteen hundred",
        "nineteen oh five",
    ]


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It is 1,250 km away.", "It is one thousand two hundred fifty kilometers away."),
        ("The time is 10:00 AM.", "The time is ten AM."),
        ("Meet me at 3:45 pm today.", "Meet me at three forty-five PM today."),
        ("At 7:05 a.m. sharp.", "At seven oh five AM sharp."),
        ("That costs $5.50.", "That costs five dollars and fifty cents."),
        ("It was on 2026-11-26.", "It was on November twenty-sixth, twenty twenty-six."),
        ("About 72°F and 20% rain.", "About seventy-two degrees Fahrenheit and twenty percent rain."),
        ("The 21st of June.", "The twenty-first of June."),
        ("It weighs 1 kg.", "It weighs one kilogram."),
        ("Pi is 3.14.", "Pi is three point one four."),
        ("In 1969, people landed.", "In nineteen sixty-nine, people landed."),
        ("Open 9-5 daily.", "Open nine to five daily."),
        ("I have 2 in my bag.", "I have two in my bag."),  # "in" is a word here, not inches
        ("No numbers here.", "No numbers here."),
    ],
)
def test_speakable(text, spoken):
    assert speakable(text) == spoken


def _filtered(text: str, seed: int) -> str:
    rng = random.Random(seed)
    f, out, i = MarkupFilter(), [], 0
    while i < len(text):  # the LLM's pieces have any length
        n = rng.randint(1, 5)
        out.append(f.feed(text[i : i + n]))
        i += n
    return "".join(out) + f.flush()


@pytest.mark.parametrize("seed", range(5))
def test_markup_filter_on_streamed_pieces(seed):
    text = "**Sure!** Here are ideas:\n1. Pasta 🍝\n2. *Rice* bowls\n- `tacos`\n```python\nprint(1)\n```\n## Enjoy\nDone."
    out = _filtered(text, seed)
    assert not re.search(r"[*`#🍝]|print|python", out), out
    for word in ("Sure!", "Here are ideas:", "Pasta", "Rice bowls", "tacos", "Enjoy", "Done."):
        assert word in out
    assert "1." not in out and "2." not in out  # list markers would end a clause and be read out


def test_plain_text_passes_unchanged():
    assert _filtered("The capital of France is Paris. It's 1,250 km away.", 1) == (
        "The capital of France is Paris. It's 1,250 km away."
    )


def test_first_clause_is_not_cut_between_a_number_and_its_unit():
    s = ClauseSplitter()
    out = []
    for piece in ["It's", " 1,250", " km", " from", " here", "."]:
        out += s.feed(piece)
    assert out[0] == "It's 1,250 km"


class ScriptedLLM(LLMBackend):
    """An LLM that answers in markdown, with numbers and an emoji, token by token."""

    REPLY = "**Sure!** 🙂 It's about 1,250 km, so:\n- leave at 7:30 am\n- budget $40.50"

    def stream(self, history, user_text, *, stop=None, max_tokens=64, stats=None):
        for tok in re.findall(r"\s*\S{1,3}", self.REPLY):
            if stop is not None and stop.is_set():
                return
            yield tok


class RecordingPiper(PiperTTS):
    """The real Piper voice; records exactly the text it is asked to speak."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[str] = []
        self._rec = threading.Lock()

    def synthesize(self, text, *, stop=None):
        with self._rec:
            self.inputs.append(text)
        yield from super().synthesize(text, stop=stop)


@pytest.mark.models
async def test_piper_hears_words_not_markup(engines, data_dir, paced_frames):
    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(3 * 16000, np.float32)])
    tts = RecordingPiper()
    eng = Engines(asr=engines.asr, llm=ScriptedLLM(), tts=tts)
    clock = MonotonicClock()
    agent = VoiceAgent(engines=eng, options=AgentOptions(prefill=False), clock=clock)

    events = [ev async for ev in agent.process(paced_frames(audio, clock))]
    assert any(isinstance(e, TurnMetrics) for e in events)
    spoken = " ".join(tts.inputs)
    assert tts.inputs, "Piper was never called"
    assert not re.search(r"[*#`\d$🙂]", spoken), spoken
    assert "one thousand two hundred fifty kilometers" in spoken
    assert "seven thirty AM" in spoken and "forty dollars and fifty cents" in spoken
