"""Catching a reply that reads the user's short line back, before anyone hears it.

The copy guard's n-gram ban on the user's line is long (``CopyGuard(n_user=10)``) so that restating a request
stays possible ("Added milk, eggs and bread."); a line shorter than that can be said back whole. Live, the 1.5B
answered "Seven of clubs." with "7 of clubs." and "She had your dog suit in greasy wash for all year." with the
same sentence. Banning the line's last word, as the opening ban does, would only bend the copy ("Seven of
hearts."), so the reply's text is held while its first sentence still follows the line, and a first sentence that
turns out to be the line (as many word edits as ``same_request`` allows) is thrown away before any of it is
released: the backend rolls the KV cache back to the prompt and decodes again with the line's first word refused
as the opening, in every spelling.
A first sentence that is mostly the line ("10 of close is 10.", as ``metrics.repetition.reads_back`` judges) goes
the same way. Only a reply that opens with the line's first word (or an article before it) is held, and only
while it may still be one.
"""

from __future__ import annotations

import re

from ..core.words import surface_words
from ..metrics.repetition import answers_in_place, longest_run, reads_back
from ..metrics.wer import edit_distance, normalize

MIN_WORDS = 3
"""Lines of one or two words are answered in kind ("Good night." -> "Good night!"), as ``reads_back`` judges."""

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")
_LEADS = frozenset({"the", "a", "an"})
"""Words a read-back may open with before the line ("The seven of clubs."): the articles, a closed class."""
_LEAD_SET_OFF = re.compile(r"\W*[\w']+\W*?[,;:\u2013\u2014-]")


def prefix_distance(line: list[str], words: list[str]) -> int:
    """The fewest word edits that turn ``words`` into some beginning of ``line``."""
    prev = list(range(len(line) + 1))  # words[:0] against line[:j]: j insertions
    for i, w in enumerate(words, 1):
        cur = [i] + [0] * len(line)
        for j, x in enumerate(line, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (w != x))
        prev = cur
    return min(prev)


class ReadBackCheck:
    """Reads a reply's text as it grows: is its first sentence the user's line said back?

    ``verdict(text)`` is None while that is still open (the text so far follows the line), True once the first
    sentence is closed and is the line, False as soon as it is not."""

    def __init__(self, user_text: str) -> None:
        self.line = normalize(user_text)
        # The same slack as a repeated request: a word in five heard or said differently.
        self.budget = len(self.line) // 5
        written = surface_words(user_text)
        self.first_forms = frozenset({self.line[0].replace("'", ""), written[0]} if self.line and written else ())
        """The line's first word as written and as normalised ("seven", "7"): a read-back opens with it."""

    @property
    def applies(self) -> bool:
        return len(self.line) >= MIN_WORDS

    def verdict(self, text: str, *, final: bool = False) -> bool | None:
        end = _SENTENCE_END.search(text)
        if end is None and not final:
            return self._open(text)
        sentence = text[: end.end()] if end is not None else text
        words = normalize(sentence)
        close = edit_distance(self.line, words) <= self.budget and not answers_in_place(self.line, words)
        return close or reads_back(" ".join(self.line), sentence)

    def _open(self, text: str) -> bool | None:
        """Whether the sentence so far may still turn out to be the line said back (None) or not (False)."""
        words = normalize(text)
        partial = None
        if words and not text[-1:].isspace() and text[-1:] not in ".,;:!?":
            *words, partial = words  # the last word may not be whole yet ("Sev" of "Seven")
        if not words:  # the first word is being written: held while it may be the line's or an article
            return None if partial is None or any(f.startswith(partial) for f in self.first_forms | _LEADS) else False
        if words[0] in self.first_forms and self._follows(words):
            return None
        # An article may lead in ("The seven of clubs."); other words go out at once, not to hold every reply.
        if words[0] not in _LEADS or _LEAD_SET_OFF.match(text):
            return False
        if len(words) == 1:
            if partial is None:
                return None  # the second word has not begun
            return None if any(f.startswith(partial) for f in self.first_forms) else False
        return None if words[1] in self.first_forms and self._follows(words[1:], lead=1) else False

    def _follows(self, words: list[str], lead: int = 0) -> bool:
        if prefix_distance(self.line, words) <= self.budget:
            return True
        # Past the line: still open while the line could make most of the sentence ("10 of close is 10."), as
        # ``reads_back`` judges (a run of 80 % of the line that is at least half of the reply).
        run = longest_run(self.line, words)
        return run >= 0.8 * len(self.line) and len(words) + lead < 2 * run
