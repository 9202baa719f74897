"""Replies that copy an earlier reply: how a conversation degenerates.

A small base model continuing a transcript tends to answer every later turn with an earlier
answer ("I'm from the United States." to 24 different questions). A reply is flagged when it
says the same words as an earlier reply of the conversation although the user asked something
else; the same question asked twice may get the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .wer import normalize


@dataclass(frozen=True, slots=True)
class RepetitionReport:
    replies: int
    distinct: int
    repeats: tuple[int, ...]
    """Indices of replies flagged as copies of an earlier reply."""

    @property
    def distinct_ratio(self) -> float:
        return self.distinct / self.replies if self.replies else 1.0


def _key(text: str) -> tuple[str, ...]:
    return tuple(normalize(text))


def repetition(user_texts: Sequence[str], replies: Sequence[str]) -> RepetitionReport:
    """Flag every reply equal (in words) to an earlier reply given to a different user line."""
    seen: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    repeats = []
    keys = []
    for i, (user, reply) in enumerate(zip(user_texts, replies, strict=True)):
        r, u = _key(reply), _key(user)
        if not r:
            continue
        keys.append(r)
        asked = seen.setdefault(r, set())
        if asked and u not in asked:
            repeats.append(i)
        asked.add(u)
    return RepetitionReport(replies=len(keys), distinct=len(set(keys)), repeats=tuple(repeats))
