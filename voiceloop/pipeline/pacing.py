"""When to cut a clause early so the speaker does not run dry inside a reply.

Clauses are cut at sentence and clause ends so Piper reads them as phrases. On a slow CPU the next clause can
take longer to write and voice than the audio before it lasts ("Sure," then silence while "I'll turn on the
living room lamp." is written): a stall the listener hears. The cure is to voice the words written so far a
little before the audio runs out. How early depends on this machine's speed, so it is measured as the
conversation goes (no CPU's speed is assumed): Piper's time per spoken word and the time between tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

SLACK_MS = 30.0
"""Scheduling and device jitter on top of the two estimates."""


@dataclass(slots=True)
class Pace:
    """Running estimates (exponential averages) of this machine's synthesis time per word and token time."""

    synth_ms_per_word: float = 30.0
    """Piper's time per spoken word, measured on every clause (a guess until the first one). Per word, because
    a clause cut early is longer than the two-word first one, and it is voiced while the LLM runs beside it:
    measured here, 46 ms for "kilogram." and 162 ms for "1000 grams in a" on the same reply."""
    token_ms: float = 30.0
    """The LLM's time between two streamed tokens."""
    alpha: float = 0.3

    def saw_synth(self, ms: float, words: int) -> None:
        self.synth_ms_per_word += self.alpha * (ms / max(words, 1) - self.synth_ms_per_word)

    def saw_token(self, ms: float) -> None:
        # A gap longer than a second is the LLM held back (a tool call), not its speed.
        if 0 <= ms < 1000:
            self.token_ms += self.alpha * (ms - self.token_ms)

    def must_cut(self, audio_left_ms: float, words: int) -> bool:
        """True when waiting for one more token and then voicing the ``words`` written so far and that token's
        would let the audio run out."""
        return audio_left_ms < self.token_ms + self.synth_ms_per_word * (words + 1) + SLACK_MS
