"""Stop-string handling for streamed text."""

from __future__ import annotations

import re
from collections.abc import Iterable


class StopMatcher:
    """Feeds text pieces; releases only text that cannot be the start of a stop string."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._pending += piece
        cut = min((i for i in (self._pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self._pending = self._pending[:cut], ""
            return out
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self._pending)), 0, -1):
                if self._pending.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        out = self._pending[: len(self._pending) - hold]
        self._pending = self._pending[len(out) :]
        return out

    def flush(self) -> str:
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out


_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+")
_OPENING_KNOWN = r"^\s*(?:[\w']+[^\w']+){%d}"  # a template: the opening's first ``words`` words, each ended


class RepeatedSentenceStop:
    """Ends a reply before a later sentence that opens the way a sentence of an earlier reply did.

    Small models settle into a closing formula ("Is there anything else you need?") and vary its last word from
    turn to turn ("... help with?", "... to do?"), so a copy guard of n tokens never fires. The reply's first
    sentence always goes out; each later one is held until its first ``words`` words are known, then released,
    or the reply ends before it. Only later sentences are held, so the first audio never waits for this.
    """

    def __init__(self, earlier: Iterable[str], words: int = 3) -> None:
        self.words = words
        from ..metrics.repetition import sentence_openings

        self.openings = {o for text in earlier for o in sentence_openings(text, words) if len(o) == words}
        self._known = re.compile(_OPENING_KNOWN % words)
        self._text = ""
        self._out = 0
        self._checked = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._text += piece
        return self._release(final=False)

    def flush(self) -> str:
        return "" if self.stopped else self._release(final=True)

    def _release(self, *, final: bool) -> str:
        safe = len(self._text)
        for m in _SENTENCE_END.finditer(self._text, self._checked):
            start = m.end()
            rest = self._text[start:]
            if not final and not self._known.match(rest) and not _SENTENCE_END.search(rest):
                safe = start  # this sentence's opening is not known yet: hold it
                break
            if _opening(rest, self.words) in self.openings:
                self.stopped = True
                safe = start
                break
            self._checked = start
        out, self._out = self._text[self._out : safe], max(self._out, safe)
        return out.rstrip() if self.stopped else out


def _opening(sentence: str, words: int) -> tuple[str, ...]:
    from ..metrics.wer import normalize

    return tuple(normalize(sentence)[:words])
