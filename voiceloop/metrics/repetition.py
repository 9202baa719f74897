"""Replies that copy an earlier reply: how a conversation degenerates.

A small base model continuing a transcript tends to answer every later turn with an earlier
answer ("I'm from the United States." to 24 different questions). A reply is flagged when it
says the same words as an earlier reply of the conversation although the user asked something
else; the same question asked twice may get the same answer.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..core.words import surface_words
from .wer import normalize


@dataclass(frozen=True, slots=True)
class RepetitionReport:
    replies: int
    distinct: int
    repeats: tuple[int, ...]
    """Indices of replies flagged as copies of an earlier reply."""
    echoes: tuple[int, ...] = ()
    """Indices of replies that read the user's own line back (``reads_back``)."""
    formulas: tuple[int, ...] = ()
    """Indices of replies with a later sentence that opens (three words) like a sentence of an earlier reply: a
    closing formula ("Is there anything else you need ...?") said turn after turn."""
    templates: tuple[int, ...] = ()
    """Indices of replies that open with the first four words (as written, ``surface_words``) of an earlier,
    longer reply to another line: a template with a new last word ("What's the subject of this passage about?" ...
    "... by?")."""
    ruts: tuple[int, ...] = ()
    """Indices of replies that open with the same first two words as each of the two replies before them (not
    after a tool's result): a rut with a slot in it ("What does yes mean?", "What does no mean?", ...)."""

    @property
    def distinct_ratio(self) -> float:
        return self.distinct / self.replies if self.replies else 1.0


TEMPLATE_WORDS = 4
"""A reply that opens with this many words of an earlier one is a template (``RepetitionReport.templates``)."""
RUT_WORDS, RUT_RUN = 2, 3
"""A reply that opens with the same ``RUT_WORDS`` words as the ``RUT_RUN - 1`` replies before it is in a rut."""


def _key(text: str) -> tuple[str, ...]:
    return tuple(normalize(text))


def longest_run(a: Sequence[str], b: Sequence[str]) -> int:
    """The length of the longest run of words that ``a`` and ``b`` share, in order and unbroken."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def sentence_openings(text: str, words: int = 3) -> list[tuple[str, ...]]:
    """The first ``words`` words (normalised) of each sentence of ``text``; shorter sentences give fewer."""
    return [tuple(normalize(x)[:words]) for x in re.split(r"(?<=[.!?])[\"')\]]*\s+", text) if x.strip()]


# Question words: a reply that drops the one asked and puts a new word in its place answers by restating
# ("Who wrote Romeo and Juliet?" -> "William Shakespeare wrote Romeo and Juliet."). Closed-class words, not topics.
_WH = frozenset({"who", "whom", "whose", "what", "which", "where", "when", "why", "how"})


def reads_back(user: str, reply: str) -> bool:
    """The reply says the user's line back instead of answering it: it holds a run of at least 80 % of the
    user's words in order, which make at least half of the reply ("He was not an ill-disposed young man." -> the
    same; "What time is it?" -> the same).
    Lines of one or two words are not judged: a greeting is answered in kind ("Good night." -> "Good night!").
    Restating part of a request ("the living room lamp is on") is not a read-back."""
    u, r = _key(user), _key(reply)
    if len(u) <= 2 or not r:
        return False
    run = longest_run(u, r)
    # Most of the reply, too: "Ten of clubs is the rank of a card in poker." answers "ten of clubs".
    if not (run >= 0.8 * len(u) and run >= 0.5 * len(r)):
        return False
    return not answers_in_place(u, r)


def answers_in_place(user: Sequence[str], reply: Sequence[str]) -> bool:
    """The reply (normalised words) drops the question word the user asked and puts a new word of its own in
    the line: "Which animal is known as the king of the jungle?" -> "Lion is known as the king of the jungle."
    answers, though most of its words are the user's."""
    asked = (_WH & set(user)) - set(reply)
    return bool(asked) and any(w not in user and len(w) >= 4 for w in reply)


def repetition(user_texts: Sequence[str], replies: Sequence[str], tool_turns: Collection[int] = ()) -> RepetitionReport:
    """Flag every reply equal (in words) to an earlier reply given to a different user line.

    ``tool_turns``: replies that report a tool's result; they may open alike ("I've set a timer for ..."), so
    they are not judged as templates, nor held against later replies as one."""
    seen: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    repeats = []
    echoes = []
    formulas = []
    openings: set[tuple[str, ...]] = set()
    starts: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    templates = []
    ruts = []
    recent: list[tuple[str, ...] | None] = []  # the opening of each judged reply, None for one too short
    keys = []
    for i, (user, reply) in enumerate(zip(user_texts, replies, strict=True)):
        r, u = _key(reply), _key(user)
        if not r:
            continue
        keys.append(r)
        if reads_back(user, reply):
            echoes.append(i)
        said = sentence_openings(reply)
        if any(o in openings for o in said[1:]):  # the first sentence may open as any earlier one did
            formulas.append(i)
        openings.update(o for o in said if len(o) == 3)
        w = surface_words(reply)
        if len(w) > TEMPLATE_WORDS and i not in tool_turns:
            start = starts.setdefault(tuple(w[:TEMPLATE_WORDS]), set())
            if start and u not in start:
                templates.append(i)
            start.add(u)
        if i not in tool_turns:
            recent = [*recent[-(RUT_RUN - 1) :], tuple(w[:RUT_WORDS]) if len(w) > RUT_WORDS else None]
            if len(recent) == RUT_RUN and recent[0] is not None and len(set(recent)) == 1:
                ruts.append(i)
        asked = seen.setdefault(r, set())
        if asked and u not in asked:
            repeats.append(i)
        asked.add(u)
    return RepetitionReport(
        replies=len(keys),
        distinct=len(set(keys)),
        repeats=tuple(repeats),
        echoes=tuple(echoes),
        formulas=tuple(formulas),
        templates=tuple(templates),
        ruts=tuple(ruts),
    )
