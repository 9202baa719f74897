"""Generic syntactic cues that a sentence is unfinished, and a policy that uses them alone.

Only syntax: a trailing comma or ellipsis, a trailing conjunction, preposition, article or filler,
an auxiliary or pronoun left hanging, an open infinitive. No phrase lists about what users ask for:
the learned decision (``policy.CalibratedEndpointing``) reads meaning from the LLM instead. This
policy is the fallback when no probability is available (e.g. a remote LLM without logits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.words import FUNCTION_WORDS
from .base import EndOfTurnEvidence, EndpointingPolicy

# Auxiliaries and pronouns end sentences often ("...than he was.", "Yes, I can."): they count only
# when the ASR did not close the sentence (its punctuation follows the speaker's intonation).
WEAK_WORDS = frozenset(
    """is are was were be been am do does did have has had will would can could should shall may
    might must you he she they it's i'm this then also just really very please maybe who whom
    when""".split()
)
OPEN_MARKS = ("...", "\u2026", ",", "-", "\u2014", ";", ":")


def incomplete_cue(transcript: str) -> str | None:
    """Which generic cue says this transcript is unfinished, or None when none does."""
    text = transcript.strip().lower()
    words = re.findall(r"[a-z0-9']+", text)
    if not text or not words:
        return "empty"
    if text.endswith(OPEN_MARKS):
        return "trailing_punctuation"
    closed = text.endswith((".", "?", "!"))
    last = words[-1]
    if last in FUNCTION_WORDS or (not closed and last in WEAK_WORDS):
        return "trailing_word"
    if not closed and len(words) >= 2 and words[-2] == "to":
        return "open_infinitive"
    return None


def reads_incomplete(transcript: str) -> bool:
    return incomplete_cue(transcript) is not None


@dataclass(frozen=True, slots=True)
class AdaptiveEndpointing(EndpointingPolicy):
    """Short silence when no generic cue says the sentence is unfinished, long when one does.

    170 ms after a sentence that reads complete; 1,000 ms after an unfinished one (mid-sentence pauses
    run to ~0.8 s); 450 ms after a *short continuation* (the user paused unfinished, went on for at most
    ``short_continuation_words`` words and paused again: a list's comma pause is ~0.4 s); 1,500 ms at
    most. A probability below ``unfinished_below`` (``end_of_turn``) also reads unfinished.
    """

    complete_ms: float = 170.0
    short_continuation_ms: float = 450.0
    incomplete_ms: float = 1000.0
    cap_ms: float = 1500.0
    short_continuation_words: int = 2
    unfinished_below: float = 0.1

    def reason(
        self,
        transcript: str | None,
        *,
        end_of_turn: float | None = None,
        previous: tuple[str, ...] = (),
        evidence: EndOfTurnEvidence | None = None,
    ) -> str:
        if transcript is None:
            return "no_transcript"
        cue = incomplete_cue(transcript)
        if cue is not None:
            return cue
        if end_of_turn is not None and end_of_turn < self.unfinished_below:
            return "turn_detector"
        unfinished = [p for p in previous if incomplete_cue(p) not in (None, "empty")]
        if unfinished:
            added = len(transcript.split()) - len(unfinished[-1].split())
            if added <= self.short_continuation_words:
                return "short_continuation"
        return "complete"

    def required_silence_ms(
        self,
        transcript: str | None,
        *,
        end_of_turn: float | None = None,
        previous: tuple[str, ...] = (),
        evidence: EndOfTurnEvidence | None = None,
    ) -> float:
        why = self.reason(transcript, end_of_turn=end_of_turn, previous=previous)
        if why == "no_transcript":
            return self.cap_ms
        if why == "complete":
            return self.complete_ms
        return self.short_continuation_ms if why == "short_continuation" else self.incomplete_ms

    @property
    def max_silence_ms(self) -> float:
        return self.cap_ms

    @property
    def confident_silence_ms(self) -> float:
        return self.complete_ms
