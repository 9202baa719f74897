"""When is the user's turn over? Pluggable policies.

``required_silence_ms(transcript)`` returns how much VAD silence ends the turn,
given what the user has said so far (None while the transcript is not known yet).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

# Words after which a sentence is rarely over: conjunctions, prepositions, articles,
# auxiliaries, possessives and fillers.
TRAILING_INCOMPLETE = frozenset(
    """and or but so because than that which who whom whose where when while if unless until
    although though since as to of in on at by for with from into onto about after before
    between through during without under over near like the a an my your his her our their its this
    these those some any every each is are was were be been am do does did have has had will would
    can could should shall may might must i we you he she they it's i'm let's um uh er erm hmm
    then also just really very please maybe""".split()
)
OPENERS_INCOMPLETE = (
    "so the thing is",
    "the thing is",
    "what i want",
    "what i need",
    "i was wondering",
)


def reads_incomplete(transcript: str) -> bool:
    """A cheap text check: does this sound like the speaker has more to say?"""
    text = transcript.strip().lower()
    if not text:
        return True
    if text.endswith(("...", ",", "-", "\u2014", ";", ":")):
        return True
    words = re.findall(r"[a-z']+", text)
    if not words:
        return True
    if words[-1] in TRAILING_INCOMPLETE:
        return True
    bare = " ".join(words)
    return any(bare == o or bare.endswith(" " + o) for o in OPENERS_INCOMPLETE)


class EndpointingPolicy(ABC):
    @abstractmethod
    def required_silence_ms(self, transcript: str | None, *, end_of_turn: float | None = None) -> float:
        """Silence that ends the turn. ``end_of_turn``: a turn detector's P(sentence over), if any."""

    @property
    @abstractmethod
    def max_silence_ms(self) -> float: ...


@dataclass(frozen=True, slots=True)
class FixedSilence(EndpointingPolicy):
    """The conventional rule: a fixed silence ends the turn, whatever was said."""

    silence_ms: float = 500.0

    def required_silence_ms(self, transcript: str | None, *, end_of_turn: float | None = None) -> float:
        return self.silence_ms

    @property
    def max_silence_ms(self) -> float:
        return self.silence_ms


@dataclass(frozen=True, slots=True)
class AdaptiveEndpointing(EndpointingPolicy):
    """Short silence when the transcript reads complete, long when it reads unfinished.

    Defaults: 200 ms after a complete-sounding sentence, 700 ms after an unfinished
    one ("...book a table for", "so the thing is"), 1,200 ms at most. Unfinished means
    a trailing conjunction, preposition, article or filler, or a language-model turn
    detector putting less than ``unfinished_below`` on the sentence ending here
    ("Can you tell me", "What time does the store").
    """

    complete_ms: float = 200.0
    incomplete_ms: float = 700.0
    cap_ms: float = 1200.0
    unfinished_below: float = 0.1

    def required_silence_ms(self, transcript: str | None, *, end_of_turn: float | None = None) -> float:
        if transcript is None:
            return self.cap_ms
        if reads_incomplete(transcript) or (end_of_turn is not None and end_of_turn < self.unfinished_below):
            return self.incomplete_ms
        return self.complete_ms

    @property
    def max_silence_ms(self) -> float:
        return self.cap_ms
