"""The speech-recognition interface the pipeline talks to: swap the engine without editing the pipeline."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .whisper import Transcript


class ASR(ABC):
    """Blocking calls; the pipeline runs them on the ASR worker thread."""

    model_path: Path

    @abstractmethod
    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Float32 16 kHz mono audio (one utterance so far) -> its text. Used for interim and final passes."""

    def transcribe_full(self, audio: np.ndarray) -> Transcript:
        """The conventional whole-utterance pass (the sequential strategy); by default the same as ``transcribe``."""
        return self.transcribe(audio)

    def wants_second_opinion(self, result: Transcript) -> bool:
        """Should the turn's final transcript be checked by ``second_opinion``? Cheap: called on the event loop."""
        return False

    def second_opinion(self, audio: np.ndarray, first: Transcript) -> Transcript:
        """A better transcript of the final utterance when the first pass was unsure; by default the first."""
        return first
