"""When to cut a clause early so the speaker does not run dry inside a reply.

Clauses are cut at sentence and clause ends so Piper reads them as phrases. On a slow CPU the next clause can
take longer to write and voice than the audio before it lasts ("Sure," then silence while "I'll turn on the
living room lamp." is written): a stall the listener hears. The cure is to voice the words written so far a
little before the audio runs out. How early depends on this machine's speed, so it is measured as the
conversation goes (no CPU's speed is assumed): the time Piper takes for a clause and the time between tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

SLACK_MS = 30.0
"""Scheduling and device jitter on top of the two estimates."""


@dataclass(slots=True)
class Pace:
    """Running estimates (exponential averages) of this machine's clause synthesis and token times."""

    synth_ms: float = 60.0
    """Piper's time for one clause; starts as a guess and follows what is measured from the first clause on."""
    token_ms: float = 30.0
    """The LLM's time between two streamed tokens."""
    alpha: float = 0.3

    def saw_synth(self, ms: float) -> None:
        self.synth_ms += self.alpha * (ms - self.synth_ms)

    def saw_token(self, ms: float) -> None:
        # A gap longer than a second is the LLM held back (first clause, a tool), not its speed.
        if 0 <= ms < 1000:
            self.token_ms += self.alpha * (ms - self.token_ms)

    def must_cut(self, audio_left_ms: float) -> bool:
        """True when waiting one more token and then voicing the words would let the audio run out."""
        return audio_left_ms < self.synth_ms + self.token_ms + SLACK_MS
