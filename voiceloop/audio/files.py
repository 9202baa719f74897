"""Reading speech files (WAV, FLAC, any rate, mono or stereo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AudioFormatError
from .resample import PIPELINE_RATE, resample, to_mono


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 mono at its own sample rate."""
    p = Path(path)
    if not p.is_file():
        raise AudioFormatError(f"audio file not found: {p}")
    try:
        import av

        with av.open(str(p)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise AudioFormatError(f"{p} has no audio stream")
            rate = int(stream.codec_context.sample_rate)
            chunks = []
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                # Planar formats are (channels, n); packed ones (1, n*channels).
                if frame.format.is_planar:
                    arr = arr.T
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels))
                if arr.dtype.kind == "i":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
                chunks.append(arr.astype(np.float32))
    except AudioFormatError:
        raise
    except Exception as exc:  # av raises many types; one message is enough
        raise AudioFormatError(f"cannot decode {p}: {exc}") from None
    if not chunks:
        raise AudioFormatError(f"{p} contains no audio samples")
    return to_mono(np.concatenate(chunks, axis=0)), rate


def read_audio_16k(path: str | Path) -> np.ndarray:
    """Decode and resample to the pipeline rate (16 kHz mono float32)."""
    samples, rate = read_audio(path)
    return resample(samples, rate, PIPELINE_RATE)


def write_wav(path: str | Path, pcm: np.ndarray, sample_rate: int) -> None:
    """Write int16 mono PCM as a WAV file."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.astype("<i2").tobytes())
