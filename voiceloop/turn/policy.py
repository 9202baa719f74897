"""A learned, calibrated end-of-turn decision: P(the user is done) -> the silence to wait.

The evidence at a pause: the transcript so far, the LLM's probability that the user's message ends
there (the chat template's end-of-message token right after the words; and, when Whisper closed the
sentence, the probability of that final mark right before it), and optionally an audio model's
probability (smart-turn). A logistic regression over those, plus a few generic syntactic features
(a trailing comma, conjunction or preposition), gives P(end); two thresholds map it to three waits.
The weights and thresholds are fitted on voiceloop's own turn set (``examples/turn_eval.py fit``) and
ship as ``calibration.json``; there are no phrase lists.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .base import EndOfTurnEvidence, EndpointingPolicy
from .cues import FUNCTION_WORDS, OPEN_MARKS, WEAK_WORDS, AdaptiveEndpointing

CALIBRATION = Path(__file__).resolve().parent / "calibration.json"
FEATURES = (
    "bias",
    "closed",
    "closed*text_eom",
    "closed*text_punct",
    "unclosed*text_punct",
    "audio",
    "function_word",
    "weak_word",
    "open_mark",
    "short",
)


def _logit(p: float | None) -> float:
    if p is None:
        return 0.0
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def features(ev: EndOfTurnEvidence, key: str | None = None) -> list[float]:
    """The logistic regression's inputs; signals the model ``key`` was not fitted with count as absent."""
    kind = (key or ev.kind).split("@")[0]
    if "text" not in kind:
        ev = EndOfTurnEvidence(ev.transcript, audio=ev.audio, model=ev.model)
    if "audio" not in kind:
        ev = EndOfTurnEvidence(ev.transcript, ev.text_eom, ev.text_punct, model=ev.model)
    text = ev.transcript.strip().lower()
    words = re.findall(r"[a-z0-9']+", text)
    last = words[-1] if words else ""
    closed = text.endswith((".", "?", "!")) and not text.endswith("...")
    open_mark = text.endswith(OPEN_MARKS)
    # The ASR's final mark changes what the LLM's probabilities mean (the probe: with a period
    # P(end-of-message) separates; without one it is ~0 everywhere and P(. ? !) separates instead).
    c = float(closed)
    return [
        1.0,
        c,
        c * _logit(ev.text_eom) / 4,
        c * _logit(ev.text_punct) / 4,
        (1 - c) * _logit(ev.text_punct) / 4,
        _logit(ev.audio) / 4,
        float(last in FUNCTION_WORDS),
        float(last in WEAK_WORDS and not closed),
        float(open_mark),
        # One or two words ("Yes.", "Next.", "Stop it."): the LLM's P(. ? !) is low after them (it expects "Yes,
        # ..."), so the punctuation signal means something else there. Fitted: check-split complete-turn p90
        # wait 1000 -> 400 ms, cut-ins 24 -> 21 of 93 (session 23).
        float(len(words) <= 2),
    ]


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """Newton's method on the L2-regularised log loss (the bias is not regularised)."""
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[0] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


@dataclass(frozen=True, slots=True)
class Calibration:
    weights: dict[str, list[float]] = field(default_factory=dict)
    """Per model key: logistic weights over FEATURES. Keys: "text+audio@<gguf>", "text@<gguf>" (the LLM's
    signals are calibrated per model), "audio"."""
    thresholds: dict[str, list[float]] = field(default_factory=dict)
    """Per key: [P for the short wait, P for the middle wait]."""
    levels_ms: tuple[float, float, float] = (170.0, 400.0, 1000.0)
    late: dict[str, float] = field(default_factory=dict)
    """Per key without the LLM's signals ("audio"): the P at which the turn may end before those signals arrive.
    Higher than the short-wait threshold: the text comes a few hundred ms later, and waiting for it costs little,
    while ending early on the voice alone ends a TTS-said fragment ("Explain how a") inside its pause."""

    def key(self, ev: EndOfTurnEvidence) -> str | None:
        """The fitted model for this evidence: the LLM's own calibration if there is one, else the audio
        model's (an uncalibrated LLM's probabilities are not used); None = nothing calibrated applies."""
        kind = ev.kind
        candidates = [f"{kind}@{ev.model}"] if "text" in kind else []
        candidates += ["audio"] if ev.audio is not None else []
        return next((k for k in candidates if k in self.weights), None)

    def probability(self, ev: EndOfTurnEvidence, key: str | None = None) -> float | None:
        key = key or self.key(ev)
        w = self.weights.get(key) if key else None
        if w is None:
            return None
        z = float(np.dot(w, features(ev, key)))
        return 1 / (1 + math.exp(-max(min(z, 40.0), -40.0)))

    def silence_ms(self, p: float, key: str) -> float:
        hi, lo = self.thresholds.get(key, (0.5, 0.5))
        short, mid, long = self.levels_ms
        return short if p >= hi else (mid if p >= lo else long)

    @classmethod
    def load(cls, path: str | Path = CALIBRATION) -> Calibration:
        data = json.loads(Path(path).read_text())
        return cls(
            weights=data["weights"],
            thresholds=data["thresholds"],
            levels_ms=tuple(data["levels_ms"]),  # type: ignore[arg-type]
            late=data.get("late", {}),
        )

    def save(self, path: str | Path) -> None:
        data = {
            "features": FEATURES,
            "weights": self.weights,
            "thresholds": self.thresholds,
            "levels_ms": list(self.levels_ms),
            "late": self.late,
            "fitted_by": "python examples/turn_eval.py fit OUT --write (on the 'tune' split)",
        }
        Path(path).write_text(json.dumps(data, indent=1) + "\n")


@dataclass(frozen=True, slots=True)
class Decision:
    p_end: float | None
    silence_ms: float
    reason: str


class CalibratedEndpointing(EndpointingPolicy):
    """Waits the silence that the calibrated P(end of turn) calls for. Without a calibrated signal (an LLM
    that gives none or was not calibrated, and no audio model) it falls back to the generic cues."""

    def __init__(self, calibration: Calibration | None = None, *, cap_ms: float = 1500.0) -> None:
        self.calibration = calibration or Calibration.load()
        self.cap_ms = cap_ms
        self.fallback = AdaptiveEndpointing(cap_ms=cap_ms)

    def probability(self, evidence: EndOfTurnEvidence) -> float | None:
        return self.calibration.probability(evidence)

    def decide(
        self,
        transcript: str | None,
        end_of_turn: float | None,
        evidence: EndOfTurnEvidence | None,
        previous: tuple[str, ...] = (),
    ) -> Decision:
        if transcript is None:
            return Decision(None, self.cap_ms, "no_transcript")
        key = self.calibration.key(evidence) if evidence is not None else None
        if key is None or end_of_turn is None:
            fb = self.fallback
            return Decision(
                None, fb.required_silence_ms(transcript, previous=previous), fb.reason(transcript, previous=previous)
            )
        ms = self.calibration.silence_ms(end_of_turn, key)
        short, mid, _ = self.calibration.levels_ms
        return Decision(end_of_turn, ms, "confident" if ms <= short else ("unsure" if ms <= mid else "unfinished"))

    def required_silence_ms(
        self,
        transcript: str | None,
        *,
        end_of_turn: float | None = None,
        previous: tuple[str, ...] = (),
        evidence: EndOfTurnEvidence | None = None,
    ) -> float:
        return self.decide(transcript, end_of_turn, evidence, previous).silence_ms

    def reason(
        self,
        transcript: str | None,
        *,
        end_of_turn: float | None = None,
        previous: tuple[str, ...] = (),
        evidence: EndOfTurnEvidence | None = None,
    ) -> str:
        return self.decide(transcript, end_of_turn, evidence, previous).reason

    def sure_without_text(
        self, transcript: str, evidence: EndOfTurnEvidence, p_end: float | None, previous: tuple[str, ...] = ()
    ) -> bool:
        key = self.calibration.key(evidence)
        if key is None or p_end is None:
            return super().sure_without_text(transcript, evidence, p_end, previous)
        hi = self.calibration.thresholds.get(key, (0.5, 0.5))[0]
        return p_end >= max(hi, self.calibration.late.get(key, hi))

    @property
    def max_silence_ms(self) -> float:
        return self.cap_ms

    @property
    def confident_silence_ms(self) -> float:
        return self.calibration.levels_ms[0]


def default_policy() -> EndpointingPolicy:
    """The calibrated decision when its calibration ships with the package, else the generic cues."""
    if CALIBRATION.is_file():
        return CalibratedEndpointing()
    from .cues import AdaptiveEndpointing

    return AdaptiveEndpointing()
