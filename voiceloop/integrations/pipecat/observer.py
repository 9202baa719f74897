"""pipecat frames -> voiceloop turn records, so a pipecat app gets ``voiceloop profile``'s table.

Marks (pipecat's pipeline clock, ns, one clock for all marks):
  speech_end        the VAD stop a transcript followed, minus its stop_secs (when the speech really ended)
  asr_start         that VADUserStoppedSpeakingFrame (segmented STT starts its final pass)
  transcript_ready  the last TranscriptionFrame of the turn (or the VAD stop, when the transcript came first)
  turn_end          LLMContextFrame (the user aggregator decided the turn is over)
  first_token       first LLMTextFrame
  first_clause      first TTSStartedFrame (the TTS has its first sentence)
  first_tts_audio   first TTSAudioRawFrame
  first_audio_out   BotStartedSpeakingFrame, or the first audio frame pushed into ``output``
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameProcessor

from ...metrics.budget import LatencyBudgeter, TurnRecord

log = logging.getLogger("voiceloop.pipecat")


class LatencyObserver(BaseObserver):
    """Builds one ``TurnRecord`` per user turn and adds it to a ``LatencyBudgeter`` once the reply is heard."""

    def __init__(
        self,
        *,
        budgeter: LatencyBudgeter | None = None,
        output: FrameProcessor | None = None,
        strategy: str = "pipecat",
        on_turn: Callable[[TurnRecord], None] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.budgeter = budgeter or LatencyBudgeter()
        self.output = output
        self.strategy = strategy
        self.on_turn = on_turn
        self._turn: TurnRecord | None = None
        self._n = 0
        self._seen: set[int] = set()
        self.unanswered: list[TurnRecord] = []
        # The speech end that counts is the VAD stop a transcript followed: a stop after a blip of
        # noise (VAD start/stop with no words) does not move it.
        self._stop: tuple[int, int] | None = None
        self._speaking_since = 0
        self._pending_transcript = False

    def _anchor(self, t: TurnRecord, ready_ns: int) -> None:
        assert self._stop is not None
        t.marks["speech_end"], t.marks["asr_start"] = self._stop
        t.marks["transcript_ready"] = max(ready_ns, self._stop[1])
        self._pending_transcript = False

    def _new_turn(self) -> TurnRecord:
        if self._turn is not None and "first_audio_out" not in self._turn.marks:
            self.unanswered.append(self._turn)
        self._n += 1
        self._turn = TurnRecord(turn_id=self._n, strategy=self.strategy)
        return self._turn

    def _finish(self, t: TurnRecord) -> None:
        self.budgeter.add(t)
        if self.on_turn is not None:
            self.on_turn(t)

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, ts = data.frame, data.timestamp
        t = self._turn
        if isinstance(frame, VADUserStartedSpeakingFrame):
            if frame.id in self._seen:
                return
            self._seen.add(frame.id)
            if t is None or "turn_end" in t.marks:
                t = self._new_turn()
                self._stop = None
            t.mark("speech_start", ts)
            self._speaking_since = ts
            return
        if t is None:
            return
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            if frame.id in self._seen or "turn_end" in t.marks:
                return
            self._seen.add(frame.id)
            self._stop = (ts - int(frame.stop_secs * 1e9), ts)
            if self._pending_transcript:
                # A streaming STT finalised before VAD confirmed the stop: the transcript was ready at once.
                self._anchor(t, ts)
        elif isinstance(frame, InterimTranscriptionFrame):
            if frame.id not in self._seen:
                self._seen.add(frame.id)
                t.interim_count += 1
        elif isinstance(frame, TranscriptionFrame):
            if frame.id not in self._seen and "turn_end" not in t.marks:
                self._seen.add(frame.id)
                t.transcript = f"{t.transcript} {frame.text}".strip()
                if self._stop is not None and self._stop[1] >= self._speaking_since:
                    self._anchor(t, ts)
                else:
                    self._pending_transcript = True
        elif isinstance(frame, LLMContextFrame):
            t.mark("turn_end", ts)
        elif isinstance(frame, LLMTextFrame):
            if frame.id not in self._seen and "turn_end" in t.marks:
                self._seen.add(frame.id)
                t.mark("first_token", ts)
                t.reply += frame.text
        elif isinstance(frame, TTSStartedFrame):
            if "first_token" in t.marks:
                t.mark("first_clause", ts)
        elif isinstance(frame, TTSAudioRawFrame):
            if "first_clause" in t.marks or "first_token" in t.marks:
                t.mark("first_tts_audio", ts)
                if self.output is not None and data.destination is self.output:
                    self._audio_out(t, ts)
        elif isinstance(frame, BotStartedSpeakingFrame):
            if "first_tts_audio" in t.marks:
                self._audio_out(t, ts)
        elif isinstance(frame, InterruptionFrame):
            if "first_token" in t.marks:
                t.interrupted = True

    def report(self) -> dict[str, Any]:
        """The turns so far in ``voiceloop profile``'s report shape (one row per turn)."""
        from ...profile.runner import InputSpan, build_report

        spans = []
        for rec in sorted([*self.budgeter.records, *self.unanswered], key=lambda r: r.turn_id):
            span = InputSpan(path=Path(f"turn {rec.turn_id}"), start_ns=rec.marks.get("speech_start", 0))
            span.records.append(rec)
            spans.append(span)
        return build_report(spans, self.budgeter, strategy=self.strategy, system={"framework": "pipecat"})

    def table(self) -> str:
        """The per-stage ms table ``voiceloop profile`` prints, for this pipecat app's turns."""
        from ...profile.runner import format_table

        return format_table(self.report())

    def _audio_out(self, t: TurnRecord, ts: int) -> None:
        if "first_audio_out" in t.marks:
            return
        t.mark("first_audio_out", ts)
        t.reply = t.reply.strip()
        self._finish(t)
