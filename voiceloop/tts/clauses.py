"""Cuts streamed LLM text into speakable clauses.

The first clause is cut early (at any punctuation, or after a few words) because
it gates the first sound of the reply; later clauses are cut at sentence or
clause ends so the prosody stays natural while earlier audio plays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.words import FUNCTION_WORDS

_SENTENCE_END = re.compile(r"[.!?;:](?=\s)|[.!?](?=[\"')\]]\s)")
_CLAUSE_END = re.compile(r"[,\u2014](?=\s)")
_WORD = re.compile(r"\S+(?=\s)")
_OPEN_END = re.compile(r"[A-Za-z][,.!?;:]$")


def _bare(word: str) -> str:
    return word.strip("\"'()[],;:").lower()


@dataclass(frozen=True, slots=True)
class ClauseOptions:
    first_max_words: int = 2
    """Cut the first clause after this many words even without punctuation. Two words cost one
    LLM token (~13 ms) and a little Piper time less than three, at a small prosody cost:
    Piper reads each clause as its own phrase."""
    min_words: int = 3
    """A comma only ends a (later) clause once it has this many words."""
    max_words: int = 24


class ClauseSplitter:
    def __init__(self, options: ClauseOptions | None = None) -> None:
        self.options = options or ClauseOptions()
        self._buf = ""
        self._emitted = 0

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while (clause := self._next()) is not None:
            out.append(clause)
        return out

    def _next(self) -> str | None:
        buf = self._buf
        o = self.options
        first = self._emitted == 0
        cut = None
        m = _SENTENCE_END.search(buf)
        if m:
            cut = m.end()
        c = _CLAUSE_END.search(buf)
        if c and (cut is None or c.end() < cut):
            if first or len(buf[: c.end()].split()) >= o.min_words:
                cut = c.end()
        if cut is None and first and _OPEN_END.search(buf):
            # The first clause gates the first sound: "Sure," or "I'm sorry," is over at its
            # punctuation, without waiting one more token for the space after it (a digit
            # before it, as in "10,000" or "3.5", waits).
            cut = len(buf)
        if cut is None:
            limit = o.first_max_words if first else o.max_words
            complete = list(_WORD.finditer(buf))  # words already followed by a space
            if len(complete) >= limit:
                idx = limit - 1
                # Never cut right after a number: its unit or scale ("1,250 km", "3 million") follows.
                while idx < len(complete) and any(ch.isdigit() for ch in complete[idx].group()):
                    idx += 1
                if idx < len(complete):
                    cut = complete[idx].end()
        if cut is None:
            return None
        clause, self._buf = buf[:cut].strip(), buf[cut:]
        if not clause:
            return None
        self._emitted += 1
        return clause

    @property
    def pending(self) -> str:
        """The text written since the last clause."""
        return self._buf

    def cut_early(self, min_words: int = 2) -> str | None:
        """The words written so far as a clause, when the speaker would otherwise run dry: at least
        ``min_words`` complete words, cut after the last one that is not a number (its unit follows) and, where
        enough words remain, not a word that leans on the next ("in a" waits for "kilogram": Piper ends each
        clause on a falling tone)."""
        complete = list(_WORD.finditer(self._buf))
        idx = len(complete) - 1
        while idx >= 0 and any(ch.isdigit() for ch in complete[idx].group()):
            idx -= 1
        if idx + 1 < min_words:
            return None
        lean = idx
        while lean + 1 > min_words and _bare(complete[lean].group()) in FUNCTION_WORDS:
            lean -= 1
        if _bare(complete[lean].group()) not in FUNCTION_WORDS:
            idx = lean
        cut = complete[idx].end()
        clause, self._buf = self._buf[:cut].strip(), self._buf[cut:]
        self._emitted += 1
        return clause

    def flush(self) -> str | None:
        rest, self._buf = self._buf.strip(), ""
        if rest:
            self._emitted += 1
            return rest
        return None
