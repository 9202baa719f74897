"""Turn-taking: the end-of-turn evidence, the policies that map it to a silence, and the detectors."""

from .base import EndOfTurnEvidence, EndpointingPolicy, FixedSilence
from .cues import AdaptiveEndpointing, incomplete_cue, reads_incomplete
from .policy import CalibratedEndpointing, Calibration, Decision

__all__ = [
    "AdaptiveEndpointing",
    "CalibratedEndpointing",
    "Calibration",
    "Decision",
    "EndOfTurnEvidence",
    "EndpointingPolicy",
    "FixedSilence",
    "incomplete_cue",
    "reads_incomplete",
]
