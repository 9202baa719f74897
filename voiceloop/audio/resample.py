"""Resampling and channel mixing, done once at the pipeline's edges."""

from __future__ import annotations

import numpy as np
import soxr

PIPELINE_RATE = 16_000
"""Everything inside the pipeline (VAD, ASR) runs at 16 kHz mono."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) float -> (n,) float32."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    if samples.ndim == 2:
        return samples.mean(axis=1).astype(np.float32)
    raise ValueError(f"audio must be 1-D or 2-D, got shape {samples.shape}")


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float32 or int16 mono audio; returns the input dtype."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    if samples.dtype == np.int16:
        out = soxr.resample(samples.astype(np.float32) / 32768.0, from_rate, to_rate, quality="HQ")
        return (np.clip(out, -1.0, 1.0) * 32767.0).astype(np.int16)
    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ")


class StreamResampler:
    """Chunk-by-chunk resampler for live streams (keeps filter state between chunks)."""

    def __init__(self, from_rate: int, to_rate: int, *, quality: str = "QQ") -> None:
        # Live input uses soxr's quick (cubic) resampler: it holds nothing back, while its
        # band-limited filters hold back audio that every turn waits for (LQ: 20 ms at 22.05
        # and 44.1 kHz, 6 ms at 48 kHz). VAD and Whisper do not mind the mild aliasing: on 21
        # recordings at those rates the transcripts matched LQ's but for one word each in two.
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._rs = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality=quality)
        )

    def __call__(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return samples.astype(np.float32, copy=False)
        return self._rs.resample_chunk(samples.astype(np.float32, copy=False), last=last)
