"""A linear probe on smart-turn's encoder: does the voice sound finished?

smart-turn's own head was trained on human speech; on synthetic and read voices it hears a cut inside a
sentence about as "complete" as a sentence's end (AUC 0.61 after a complete clause on the turn set). Its
encoder's last frames still carry the intonation, and reading them costs nothing: they come out of the same
ONNX run (``SmartTurn.probability_and_embedding``). The probe's weights are fitted by
``examples/turn_prosody.py`` on LLM-written sentences spoken by voices that the turn set does not contain,
and stored beside the calibration. They are fitted on the float-activation graph (``SmartTurn``'s default
``precision``): the int8 graph's frames move with inaudible noise, and a probe fitted on them did worse live than
offline (session 21).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .policy import fit_logistic

PROBE = Path(__file__).resolve().parent / "prosody_probe.json"


@dataclass(frozen=True, slots=True)
class ProsodyProbe:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    """Bias first, then one weight per standardised embedding dimension."""

    def probability(self, embedding: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(np.asarray(embedding, np.float64)) - self.mean) / self.scale
        return 1 / (1 + np.exp(-(self.weights[0] + z @ self.weights[1:])))

    @staticmethod
    def path() -> Path:
        return PROBE

    def save(self, path: str | Path = PROBE) -> None:
        data = {k: [round(float(v), 6) for v in getattr(self, k)] for k in ("mean", "scale", "weights")}
        Path(path).write_text(json.dumps(data))

    @classmethod
    def load(cls, path: str | Path = PROBE) -> ProsodyProbe | None:
        """The shipped probe, or None when there is none (the audio signal is then smart-turn's own)."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            return None
        return cls(*(np.asarray(data[k], np.float64) for k in ("mean", "scale", "weights")))


def fit_probe(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0) -> ProsodyProbe:
    """L2 logistic regression on standardised embeddings (y: 1 = finished)."""
    x = np.asarray(x, np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    w = fit_logistic(np.hstack([np.ones((len(z), 1)), z]), np.asarray(y, np.float64), l2=l2)
    return ProsodyProbe(mean, scale, w)
