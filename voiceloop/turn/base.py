"""When is the user's turn over? The policy interface and the evidence it reads."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EndOfTurnEvidence:
    """What is known at a pause, each signal with its own probability (None when not measured)."""

    transcript: str
    text_eom: float | None = None
    """P(end-of-message token) right after the user's words as the ASR wrote them (the LLM)."""
    text_punct: float | None = None
    """P(. ? !) right after the words without the ASR's final mark (right after the words if it wrote none)."""
    audio: float | None = None
    """An audio model's P(end of turn) (smart-turn)."""
    model: str | None = None
    """The LLM whose text signals these are (GGUF file name): calibration is per model."""

    @property
    def kind(self) -> str:
        """Which fitted model applies: the signals present ("text+audio", "text", "audio", "syntax")."""
        parts = [n for n, v in (("text", self.text_eom), ("audio", self.audio)) if v is not None]
        return "+".join(parts) or "syntax"


class EndpointingPolicy(ABC):
    """``required_silence_ms`` returns how much VAD silence ends the turn, given what is known so far
    (``transcript`` None while the ASR has not answered yet)."""

    @abstractmethod
    def required_silence_ms(
        self,
        transcript: str | None,
        *,
        end_of_turn: float | None = None,
        previous: tuple[str, ...] = (),
        evidence: EndOfTurnEvidence | None = None,
    ) -> float:
        """Silence that ends the turn.

        ``end_of_turn``: P(the user is done), if known (``probability``). ``previous``: the transcripts
        at this utterance's earlier pauses (the user went on after each), oldest first."""

    @property
    @abstractmethod
    def max_silence_ms(self) -> float: ...

    @property
    def confident_silence_ms(self) -> float:
        """The shortest wait this policy gives (a turn it is sure of). The agent ends a turn without the LLM's
        late signals only when the rest of the evidence asks for no more than this."""
        return self.max_silence_ms

    def sure_without_text(
        self, transcript: str, evidence: EndOfTurnEvidence, p_end: float | None, previous: tuple[str, ...] = ()
    ) -> bool:
        """May the turn end on ``evidence`` without the LLM's signals (they are late)? By default when it asks for
        no more than the shortest wait. The LLM's signal would come within a few hundred ms, so a policy may ask
        for more certainty here than for its short wait."""
        need = self.required_silence_ms(transcript, end_of_turn=p_end, previous=previous, evidence=evidence)
        return need <= self.confident_silence_ms

    def probability(self, evidence: EndOfTurnEvidence) -> float | None:
        """P(the user is done) from the evidence; None when this policy does not use one."""
        return None

    def reason(
        self,
        transcript: str | None,
        *,
        end_of_turn: float | None = None,
        previous: tuple[str, ...] = (),
        evidence: EndOfTurnEvidence | None = None,
    ) -> str:
        """Why ``required_silence_ms`` chose its value (reported per turn)."""
        return "policy"


@dataclass(frozen=True, slots=True)
class FixedSilence(EndpointingPolicy):
    """The conventional rule: a fixed silence ends the turn, whatever was said."""

    silence_ms: float = 500.0

    def required_silence_ms(self, transcript: str | None, **_: object) -> float:  # type: ignore[override]
        return self.silence_ms

    @property
    def max_silence_ms(self) -> float:
        return self.silence_ms

    def reason(self, transcript: str | None, **_: object) -> str:  # type: ignore[override]
        return "fixed"
