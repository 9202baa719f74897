"""When is the user's turn over? Pluggable policies.

``required_silence_ms(transcript)`` returns how much VAD silence ends the turn,
given what the user has said so far (None while the transcript is not known yet).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

# A sentence rarely ends on these, whatever the punctuation: conjunctions, prepositions,
# articles, possessives, determiners and fillers ("...book a table for", "and the", "um").
STRONG_TRAILING = frozenset(
    """and or but so because than that which whose where while if unless until although though
    since as to of in on at by for with from into onto about after before between through during
    without under over near like the a an my your his her our their its these those some any every
    each i we um uh er erm hmm let's""".split()
)
# These end sentences often enough ("...than he was.", "Thank you.", "Yes, I can."): they
# count only when the ASR did not close the sentence with . ? or ! (its punctuation follows
# the speaker's intonation).
WEAK_TRAILING = frozenset(
    """is are was were be been am do does did have has had will would can could should shall may
    might must you he she they it's i'm this then also just really very please maybe who whom
    when""".split()
)
OPENERS = (
    "so the thing is",
    "the thing is",
    "what i want",
    "what i need",
    "i was wondering",
    "i was thinking",
    "the problem is",
    "the question is",
)
_TIME_WORDS = frozenset(
    """tomorrow today tonight morning afternoon evening noon midnight next monday tuesday wednesday
    thursday friday saturday sunday weekend week month am pm o'clock one two three four five six
    seven eight nine ten eleven twelve half quarter""".split()
)
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # "Can you tell me", "show us": a verb of giving or telling without the thing given.
    (
        "missing_object",
        re.compile(r"\b(tell|show|give|send|bring|get|find|teach|buy|order|read|play) (me|us|him|her|them)$"),
    ),
    # "What time does the store", "when will the bank": the question's main verb is still to come.
    (
        "missing_verb",
        re.compile(r"\b(do|does|did|will|would|can|could|should) (the|a|an|this|that|my|your|our|their|his|her) \w+$"),
    ),
)
_MESSAGE = re.compile(r"^(please )?(send|text|email|message|write)\b(?! (it|that|this|them)$)")
_MESSAGE_CONTENT = re.compile(r"\b(saying|that|telling|asking|about|to say)\b")
# A meeting or appointment named without its time, whatever the verb: the verb is the word
# Whisper mishears most at the start of a command ("add a meeting" -> "at a meeting", "had a meeting").
_APPOINTMENT = re.compile(r"\b(meeting|appointment|reservation)\b")
_NOT_BOOKING = re.compile(r"^(when|what|where|which|who|how|is|are|do|does|did)\b|\b(cancel|delete|remove|clear)\b")
_BOOKING = re.compile(
    r"\b(book|reserve|schedule|add|set up|arrange|make|plan)\b.*\b(table|meeting|appointment|reservation|event|"
    r"call|flight|room|visit)\b"
)


def incomplete_cue(transcript: str) -> str | None:
    """Why this transcript sounds unfinished (the name of the cue), or None when it reads complete.

    The cues are cheap text checks, each for a way people pause mid-sentence: trailing
    punctuation or a trailing conjunction/preposition/article/filler, an opener ("so the
    thing is"), an open infinitive ("I need to buy"), a verb missing its object ("Can you
    tell me") or a question missing its verb ("What time does the store"), and, for an
    assistant, a command missing the detail it needs (a message without its text, a
    booking without its time: "I would like to book a table").
    """
    text = transcript.strip().lower()
    if not text:
        return "empty"
    if text.endswith(("...", "\u2026", ",", "-", "\u2014", ";", ":")):
        return "trailing_punctuation"
    closed = text.endswith((".", "?", "!"))
    words = re.findall(r"[a-z0-9']+", text)
    if not words:
        return "empty"
    last = words[-1]
    if last in STRONG_TRAILING:
        return "trailing_word"
    if not closed and last in WEAK_TRAILING:
        return "trailing_word"
    bare = " ".join(words)
    if any(bare == o or bare.endswith(" " + o) for o in OPENERS):
        return "opener"
    if not closed and len(words) >= 2 and words[-2] == "to":
        return "open_infinitive"
    for name, pattern in _CUES:
        if pattern.search(bare):
            return name
    if _MESSAGE.search(bare) and not _MESSAGE_CONTENT.search(bare) and len(words) <= 8:
        return "message_without_text"
    if (_BOOKING.search(bare) or _APPOINTMENT.search(bare)) and not _NOT_BOOKING.search(bare):
        if not any(w in _TIME_WORDS or w[0].isdigit() for w in words):
            return "booking_without_time"
    return None


def reads_incomplete(transcript: str) -> bool:
    """A cheap text check: does this sound like the speaker has more to say?"""
    return incomplete_cue(transcript) is not None


class EndpointingPolicy(ABC):
    @abstractmethod
    def required_silence_ms(
        self, transcript: str | None, *, end_of_turn: float | None = None, previous: tuple[str, ...] = ()
    ) -> float:
        """Silence that ends the turn.

        ``end_of_turn``: a turn detector's P(sentence over), if any. ``previous``: the
        transcripts at this utterance's earlier pauses (the user went on after each), oldest first.
        """

    @property
    @abstractmethod
    def max_silence_ms(self) -> float: ...

    def reason(self, transcript: str | None, *, end_of_turn: float | None = None, previous: tuple[str, ...] = ()) -> str:
        """Why ``required_silence_ms`` chose its value (reported per turn)."""
        return "policy"


@dataclass(frozen=True, slots=True)
class FixedSilence(EndpointingPolicy):
    """The conventional rule: a fixed silence ends the turn, whatever was said."""

    silence_ms: float = 500.0

    def required_silence_ms(
        self, transcript: str | None, *, end_of_turn: float | None = None, previous: tuple[str, ...] = ()
    ) -> float:
        return self.silence_ms

    @property
    def max_silence_ms(self) -> float:
        return self.silence_ms

    def reason(self, transcript: str | None, *, end_of_turn: float | None = None, previous: tuple[str, ...] = ()) -> str:
        return "fixed"


@dataclass(frozen=True, slots=True)
class AdaptiveEndpointing(EndpointingPolicy):
    """Short silence when the transcript reads complete, long when it reads unfinished.

    Defaults: 170 ms after a complete-sounding sentence; 1,000 ms after an unfinished
    one (see ``incomplete_cue``: "...book a table for", "so the thing is", "Can you
    tell me"), because mid-sentence pauses run to about 0.8 s and the long wait must
    outlast them; 450 ms after a *short continuation*: the user paused on an unfinished
    sentence, went on for at most ``short_continuation_words`` words and paused again
    ("I need to buy ... milk, eggs and bread": the list's comma pause is ~0.4 s);
    1,500 ms at most. With a language-model turn detector (optional, off by default) a
    P(sentence over) below ``unfinished_below`` also reads unfinished.
    """

    complete_ms: float = 170.0
    short_continuation_ms: float = 450.0
    incomplete_ms: float = 1000.0
    cap_ms: float = 1500.0
    short_continuation_words: int = 2
    unfinished_below: float = 0.1

    def reason(self, transcript: str | None, *, end_of_turn: float | None = None, previous: tuple[str, ...] = ()) -> str:
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
        self, transcript: str | None, *, end_of_turn: float | None = None, previous: tuple[str, ...] = ()
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
