"""Interim transcripts with a stable prefix, from repeated passes over a growing utterance."""

from __future__ import annotations

import re
from dataclasses import dataclass


def words_of(text: str) -> list[str]:
    return text.split()


def norm_word(word: str) -> str:
    """A word without case and punctuation, for comparing transcripts word by word."""
    return re.sub(r"[^\w']", "", word.lower())


@dataclass(frozen=True, slots=True)
class Interim:
    text: str
    stable: str
    """The words two consecutive passes agree on (local agreement): these rarely change."""
    unstable: str


class StablePrefixTracker:
    """Local agreement between consecutive passes.

    A word is stable once two passes in a row transcribe it the same way at the
    same position; the stable prefix only grows within an utterance.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._previous: list[str] = []
        self._stable: list[str] = []
        self.passes = 0

    def update(self, text: str) -> Interim:
        current = words_of(text)
        agreed = 0
        for a, b in zip(self._previous, current, strict=False):
            if norm_word(a) != norm_word(b):
                break
            agreed += 1
        if agreed > len(self._stable):
            self._stable = current[:agreed]
        self._previous = current
        self.passes += 1
        n = len(self._stable)
        return Interim(text=text, stable=" ".join(self._stable), unstable=" ".join(current[n:]))
