"""Frames: one type per kind of data that flows through a pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class AudioFrame:
    """Mono int16 PCM with its rate and the stream time of its first sample.

    ``timestamp_ns`` is on the pipeline clock (see :mod:`voiceloop.core.clock`):
    for a live microphone it is when the first sample was captured.
    """

    pcm: np.ndarray
    sample_rate: int
    timestamp_ns: int = 0

    def __post_init__(self) -> None:
        if self.pcm.dtype != np.int16 or self.pcm.ndim != 1:
            raise ValueError("AudioFrame.pcm must be a 1-D int16 array (mono PCM)")
        if self.sample_rate <= 0:
            raise ValueError("AudioFrame.sample_rate must be positive")

    @property
    def num_samples(self) -> int:
        return int(self.pcm.shape[0])

    @property
    def duration_ns(self) -> int:
        return self.num_samples * 1_000_000_000 // self.sample_rate

    @property
    def end_ns(self) -> int:
        return self.timestamp_ns + self.duration_ns

    def to_float32(self) -> np.ndarray:
        return self.pcm.astype(np.float32) / 32768.0

    def to_bytes(self) -> bytes:
        return self.pcm.astype("<i2", copy=False).tobytes()

    @classmethod
    def from_float32(cls, samples: np.ndarray, sample_rate: int, timestamp_ns: int = 0) -> AudioFrame:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        return cls(pcm=pcm, sample_rate=sample_rate, timestamp_ns=timestamp_ns)

    @classmethod
    def from_bytes(cls, data: bytes, sample_rate: int, timestamp_ns: int = 0) -> AudioFrame:
        if len(data) % 2:
            raise ValueError("pcm_s16le audio must have an even number of bytes")
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)
        return cls(pcm=pcm, sample_rate=sample_rate, timestamp_ns=timestamp_ns)


@dataclass(frozen=True, slots=True)
class TextFrame:
    """A piece of text (an LLM token, a clause) tagged with the turn it belongs to."""

    text: str
    turn_id: int = 0


@dataclass(frozen=True, slots=True)
class InterruptFrame:
    """A system frame: overtakes data frames and flushes what is queued."""

    reason: str = "barge_in"
    extra: dict = field(default_factory=dict)
