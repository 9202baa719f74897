"""voiceloop's calibrated end-of-turn decision as a pipecat turn analyzer (a drop-in for smart-turn).

pipecat calls ``analyze_end_of_turn`` when its VAD reports a pause. Here that transcribes the turn so far
(Whisper), lets the LLM evaluate the prompt for it (which reads P(end of message) and P(sentence end),
and warms the KV cache for the reply), asks smart-turn for its audio probability, and maps the
calibrated P(end) to a silence: COMPLETE at once when confident; otherwise INCOMPLETE with that silence
as this turn's stop time (pipecat then ends the turn when the silence has lasted that long).

    from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
    analyzer = VoiceloopTurnAnalyzer(asr=engines.asr, llm=engines.llm, history=lambda: llm_service.conversation)
    stop = TurnAnalyzerUserTurnStopStrategy(turn_analyzer=analyzer)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn

from ...asr.base import ASR
from ...llm.backend import LLMBackend
from ...llm.prompt import Message
from ...turn.base import EndOfTurnEvidence
from ...turn.policy import CalibratedEndpointing, Decision

log = logging.getLogger("voiceloop.pipecat")


class VoiceloopTurnAnalyzer(BaseSmartTurn):
    """P(end of turn) from the LLM's reading of the transcript (+ smart-turn's of the audio), calibrated."""

    def __init__(
        self,
        *,
        asr: ASR,
        llm: LLMBackend,
        smart_turn: Any | None = None,
        policy: CalibratedEndpointing | None = None,
        history: Callable[[], list[Message]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._asr, self._llm = asr, llm
        self._smart = smart_turn
        self._policy = policy or CalibratedEndpointing()
        self._history = history or list
        """The conversation so far (what the LLM sees before the user's line), e.g.
        ``lambda: llm_service.conversation``: the same prompt prefix as the reply keeps its KV cache."""
        self._default_stop_ms = self._stop_ms
        self.last_decision: Decision | None = None
        self.last_evidence: EndOfTurnEvidence | None = None

    def _clear(self, turn_state) -> None:
        super()._clear(turn_state)
        self._stop_ms = self._default_stop_ms

    def _predict_endpoint(self, audio_array: np.ndarray) -> dict[str, Any]:
        audio = np.asarray(audio_array, dtype=np.float32)
        if self.sample_rate and self.sample_rate != 16000:
            from ...audio.resample import resample

            audio = resample(audio, self.sample_rate, 16000)
        text = self._asr.transcribe(audio).text
        signals: dict[str, float] = {}
        if text:
            # The prompt evaluation reads the signals; the one token it decodes is discarded.
            history = self._history()
            for _ in self._llm.stream(history, text, max_tokens=1):
                pass
            signals = self._llm.turn_signals(history, text) or {}
        audio_p = self._smart.probability(audio) if self._smart is not None else None
        model = getattr(self._llm, "model_path", None)
        ev = EndOfTurnEvidence(
            text, signals.get("eom"), signals.get("punct"), audio_p, model=Path(str(model)).name if model else None
        )
        p = self._policy.probability(ev) if text else 0.0
        decision = self._policy.decide(text, p, ev)
        self.last_evidence, self.last_decision = ev, decision
        complete = decision.silence_ms <= self._policy.calibration.levels_ms[0]
        if not complete:
            # pipecat counts the silence from the VAD's stop; this turn ends when it reaches the policy's wait.
            self._stop_ms = decision.silence_ms
        log.debug("turn analyzer: %r P(end)=%s -> %s (%.0f ms)", text, p, decision.reason, decision.silence_ms)
        return {"prediction": 1 if complete else 0, "probability": float(p or 0.0)}
