"""Closed-class English words, shared by the end-of-turn cues and the clause splitter.

Grammar, not phrases: no word here says what a user asks for.
"""

from __future__ import annotations

FUNCTION_WORDS = frozenset(
    """and or but so because than that which whose where while if unless until although though
    since as to of in on at by for with from into onto about after before between through during
    without under over near like the a an my your his her our their its these those some any every
    each i we um uh er erm hmm let's""".split()
)
"""Words that lean on what follows: conjunctions, prepositions, articles, possessives, fillers. A sentence rarely
ends on one (the end-of-turn cue), and a phrase that Piper voices should not either (its falling tone lands on the
word: "in a." then "kilogram.")."""
