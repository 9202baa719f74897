"""Typed events an agent emits. Each has a ``type`` field naming it (also the wire name)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from .frames import AudioFrame


@dataclass(frozen=True, slots=True)
class Event:
    type: ClassVar[str] = "event"
    turn_id: int

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type}
        d.update({k: v for k, v in asdict(self).items() if not isinstance(v, AudioFrame)})
        return d


@dataclass(frozen=True, slots=True)
class SpeechStarted(Event):
    type: ClassVar[str] = "speech_started"
    at_ns: int = 0


@dataclass(frozen=True, slots=True)
class SpeechPaused(Event):
    """VAD heard the first silence after speech; the turn may or may not be over."""

    type: ClassVar[str] = "speech_paused"
    at_ns: int = 0


@dataclass(frozen=True, slots=True)
class Transcript(Event):
    type: ClassVar[str] = "transcript"
    text: str = ""
    final: bool = False
    stable: str = ""


@dataclass(frozen=True, slots=True)
class TurnEnded(Event):
    type: ClassVar[str] = "turn_ended"
    transcript: str = ""
    silence_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ReplyText(Event):
    """A clause of the reply, emitted when its audio is handed to the output."""

    type: ClassVar[str] = "reply"
    text: str = ""


@dataclass(frozen=True, slots=True)
class ReplyAudio(Event):
    type: ClassVar[str] = "reply_audio"
    frame: AudioFrame = field(default=None)  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Interrupted(Event):
    type: ClassVar[str] = "interrupted"
    reason: str = "barge_in"


@dataclass(frozen=True, slots=True)
class Announcement(Event):
    """Something the agent said on its own (a timer or reminder), with how late its first audio was."""

    type: ClassVar[str] = "announcement"
    text: str = ""
    due_ns: int = 0
    first_audio_ns: int = 0

    @property
    def late_ms(self) -> float:
        return (self.first_audio_ns - self.due_ns) / 1e6


@dataclass(frozen=True, slots=True)
class TurnMetrics(Event):
    """The latency record of one finished turn (see :mod:`voiceloop.metrics.budget`)."""

    type: ClassVar[str] = "turn"
    record: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "turn_id": self.turn_id, **self.record.to_dict()}
