"""Silero VAD v6, streaming, from the ONNX file bundled with faster-whisper.

The model takes 512-sample windows at 16 kHz (32 ms) plus 64 samples of context
from the previous window, and carries an LSTM state between calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import ModelNotFoundError

WINDOW_SAMPLES = 512
CONTEXT_SAMPLES = 64
SAMPLE_RATE = 16_000
WINDOW_MS = WINDOW_SAMPLES * 1000 / SAMPLE_RATE


def silero_v6_path() -> Path:
    try:
        import faster_whisper
    except ImportError:
        raise ModelNotFoundError(
            "Silero VAD ships with faster-whisper, which is not installed: pip install faster-whisper"
        ) from None
    path = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise ModelNotFoundError(f"Silero VAD v6 not found at {path}; reinstall faster-whisper>=1.2")
    return path


@dataclass(frozen=True, slots=True)
class VADOptions:
    threshold: float = 0.5
    """Speech probability that starts (or continues) speech."""
    neg_threshold: float = 0.35
    """Below this a window counts as silence (hysteresis against flicker)."""
    min_speech_ms: float = 64.0
    """Voiced time needed before speech counts as started (drops clicks)."""
    pre_roll_ms: float = 480.0
    """Audio kept before the detected onset so ASR hears the first phoneme."""


class SileroVAD:
    """Stateful per-stream VAD. One instance per audio stream; the ONNX session is shared."""

    _sessions: ClassVar[dict[str, object]] = {}
    _lock = threading.Lock()

    def __init__(self, model_path: str | Path | None = None) -> None:
        path = str(model_path or silero_v6_path())
        if not Path(path).is_file():
            raise ModelNotFoundError(f"VAD model not found: {path}")
        with SileroVAD._lock:
            session = SileroVAD._sessions.get(path)
            if session is None:
                import onnxruntime

                opts = onnxruntime.SessionOptions()
                opts.inter_op_num_threads = 1
                opts.intra_op_num_threads = 1
                opts.log_severity_level = 4
                session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)
                SileroVAD._sessions[path] = session
        self._session = session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def __call__(self, window: np.ndarray) -> float:
        """Speech probability of one 512-sample float32 window at 16 kHz."""
        if window.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"Silero VAD takes {WINDOW_SAMPLES}-sample windows at 16 kHz")
        x = np.concatenate([self._context, window.astype(np.float32, copy=False)])[None, :]
        out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = x[0, -CONTEXT_SAMPLES:]
        return float(np.asarray(out).reshape(-1)[0])
