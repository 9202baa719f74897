"""Words as the pipeline compares them, and closed-class English words (the end-of-turn cues, the clause splitter).

Grammar, not phrases: no word here says what a user asks for.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def surface_words(text: str) -> list[str]:
    """The words of ``text`` as written, lower case, letters and digits only: "What's" is one word, "whats"
    (so a reply's opening compares the same while it streams in, whatever tokens spell it)."""
    return ["".join(ch for ch in w.lower() if ch.isalnum()) for w in _WORD.findall(text)]


FUNCTION_WORDS = frozenset(
    """and or but so because than that which whose where while if unless until although though
    since as to of in on at by for with from into onto about after before between through during
    without under over near like the a an my your his her our their its these those some any every
    each i we um uh er erm hmm let's""".split()
)
"""Words that lean on what follows: conjunctions, prepositions, articles, possessives, fillers. A sentence rarely
ends on one (the end-of-turn cue), and a phrase that Piper voices should not either (its falling tone lands on the
word: "in a." then "kilogram.")."""
