"""Moved to ``voiceloop.turn``; re-exported here for code written against the old path."""

from ..turn.base import EndOfTurnEvidence, EndpointingPolicy, FixedSilence
from ..turn.cues import AdaptiveEndpointing, incomplete_cue, reads_incomplete

__all__ = [
    "AdaptiveEndpointing",
    "EndOfTurnEvidence",
    "EndpointingPolicy",
    "FixedSilence",
    "incomplete_cue",
    "reads_incomplete",
]
