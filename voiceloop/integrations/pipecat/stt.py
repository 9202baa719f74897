"""voiceloop's streaming Whisper as a pipecat STT service.

While the user speaks, an interim pass runs every ``interim_every_ms`` of new speech on a mel
window sized to the audio (not Whisper's 30 s), giving InterimTranscriptionFrame; when VAD says
the user stopped, a final pass gives a finalized TranscriptionFrame. Every pass runs in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator

import numpy as np
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.utils.time import time_now_iso8601

from ...asr.base import ASR
from ...asr.second_opinion import load_asr
from ...asr.whisper import strip_restart
from ...audio.resample import resample
from ...llm.cpu_policy import install as install_cpu_policy
from ._worker import WorkerThread

log = logging.getLogger("voiceloop.pipecat")

ASR_RATE = 16000


class VoiceloopSTTService(SegmentedSTTService):
    """Interim and final transcripts from voiceloop's sized-window Whisper (CTranslate2)."""

    def __init__(
        self,
        *,
        asr: ASR | None = None,
        interim_every_ms: int = 300,
        trailing_silence_secs: float = 0.0,
        **kwargs,
    ) -> None:
        # The pipeline's own recogniser by default: tiny.en, with Whisper base for unsure turns when installed.
        # The llama.cpp CPU policy before any model: where it withholds AMX, nothing may have asked for it first.
        install_cpu_policy()
        asr = asr or load_asr()
        kwargs.setdefault("ttfs_p99_latency", 0.35)  # measured: final pass p99 on a 2-core CPU
        kwargs.setdefault("settings", STTSettings(model=str(asr.model_path), language="en"))
        # No trailing silence by default: the sized window already covers the speech plus a margin.
        super().__init__(trailing_silence_secs=trailing_silence_secs, **kwargs)
        self.asr = asr
        self.interim_every_ms = interim_every_ms
        self._vl_worker = WorkerThread("voiceloop-pipecat-asr")
        self._since_interim = 0
        self._interim_task: asyncio.Task | None = None
        self.last_final_ms = 0.0
        """Duration of the latest final pass (ms)."""
        self.interim_count = 0

    def can_generate_metrics(self) -> bool:
        return True

    def _to_asr(self, pcm: bytes) -> np.ndarray:
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        return audio if self.sample_rate == ASR_RATE else resample(audio, self.sample_rate, ASR_RATE)

    async def _transcribe(self, pcm: bytes, *, final: bool = False) -> str:
        loop = asyncio.get_running_loop()

        def work() -> str:
            # Conversion and resampling happen in the worker too: nothing but hand-offs on the event loop.
            audio = self._to_asr(pcm)
            result = self.asr.transcribe(audio)
            if final and self.asr.wants_second_opinion(result):
                result = self.asr.second_opinion(audio, result)
            return result.text

        return strip_restart(await loop.run_in_executor(self._vl_worker.get(), work))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._since_interim = 0
        await super().process_frame(frame, direction)

    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: FrameDirection) -> None:
        await super().process_audio_frame(frame, direction)
        if not self._user_speaking:
            return
        self._since_interim += len(frame.audio)
        due = self._since_interim >= self.sample_rate * 2 * self.interim_every_ms // 1000
        if due and (self._interim_task is None or self._interim_task.done()):
            self._since_interim = 0
            self._interim_task = self.create_task(self._interim(bytes(self._audio_buffer)))

    async def _interim(self, pcm: bytes) -> None:
        text = await self._transcribe(pcm)
        if text and self._user_speaking:
            self.interim_count += 1
            await self.push_frame(InterimTranscriptionFrame(text=text, user_id=self._user_id, timestamp=time_now_iso8601()))

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """The final pass over the whole utterance (SegmentedSTTService calls this at VAD stop)."""
        if self._interim_task is not None and not self._interim_task.done():
            await self.cancel_task(self._interim_task)  # its text is stale now
        t0 = time.perf_counter_ns()
        await self.start_processing_metrics()
        text = await self._transcribe(audio, final=True)
        await self.stop_processing_metrics()
        self.last_final_ms = (time.perf_counter_ns() - t0) / 1e6
        if text:
            yield TranscriptionFrame(text=text, user_id=self._user_id, timestamp=time_now_iso8601(), finalized=True)
        else:
            yield None

    async def cleanup(self) -> None:
        await super().cleanup()
        self._vl_worker.shutdown()
