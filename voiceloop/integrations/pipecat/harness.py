"""Run recorded speech through a pipecat pipeline in real time and collect voiceloop turn records.

A ``PacedAudioSource`` plays clips as a microphone would (20 ms InputAudioRawFrames, real time,
3 s of silence after each and more while the bot still answers, like ``voiceloop profile``); an
``AudioSink`` stands where the output transport would be; a ``LatencyObserver`` turns the frames
into turn records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from ...audio.resample import resample
from ...core.clock import DEFAULT_CLOCK
from ...metrics.budget import LatencyBudgeter
from .observer import LatencyObserver

RATE = 16000


class PacedAudioSource(FrameProcessor):
    """Pushes clips (float32, 16 kHz) as real-time InputAudioRawFrames once the pipeline starts."""

    def __init__(self, clips: Sequence[np.ndarray], *, sink: AudioSink | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clips = list(clips)
        self.sink = sink
        """Where the replies arrive: with one, the next clip waits until the bot has answered this one."""
        self.clip_start_ns: list[int] = []
        """Each clip's first sample on the pipeline clock."""
        self.done = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._ends_at_clip_start = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._task is None:
            self._task = self.create_task(self._play())

    async def _play(self) -> None:
        # The same pacing as `voiceloop profile`: 20 ms frames on a real-time schedule, 3 s of silence after each.
        from ...profile.runner import InputSpan, _paced_frames

        spans = [(InputSpan(path=Path(f"clip {i}")), clip, RATE) for i, clip in enumerate(self.clips)]
        started = 0
        async for frame in _paced_frames(spans, DEFAULT_CLOCK, busy=self._answering if self.sink else None):
            if started < len(spans) and frame.timestamp_ns == spans[started][0].start_ns:
                self.clip_start_ns.append(self.get_clock().get_time())
                if self.sink is not None:
                    self._ends_at_clip_start = self.sink.replies_ended
                started += 1
            await self.push_frame(InputAudioRawFrame(audio=frame.pcm.tobytes(), sample_rate=RATE, num_channels=1))
        self.done.set()

    def _answering(self) -> bool:
        """True until the reply to the last clip has ended and its audio has stopped coming.

        A person waits for the answer before the next request. With a fixed 3 s gap a slow CPU's
        first reply (3.7 s on a 2-vCPU Xeon) was still being made when the next clip began, and
        pipecat counted it as interrupted; ``voiceloop profile`` waits the same way.
        """
        sink = self.sink
        assert sink is not None
        quiet_s = (time.monotonic() - sink.last_audio_s) if sink.last_audio_s else float("inf")
        return sink.replying or sink.replies_ended == self._ends_at_clip_start or quiet_s < AUDIO_QUIET_S


AUDIO_QUIET_S = 0.5
"""A reply's audio may trail its end-of-response frame (audio-context TTS services): wait for this much quiet."""


class AudioSink(FrameProcessor):
    """Where the output transport would be: takes the reply audio, passes everything else on.

    It also follows the replies going by (started, ended, last audio), so a source can wait for them.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.audio_frames = 0
        self.replying = False
        self.replies_ended = 0
        self.last_audio_s = 0.0
        """``time.monotonic()`` of the last reply audio frame; 0 before any."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, OutputAudioRawFrame):
                self.audio_frames += 1
                self.last_audio_s = time.monotonic()
                return
            if isinstance(frame, LLMFullResponseStartFrame):
                self.replying = True
            elif isinstance(frame, (LLMFullResponseEndFrame, InterruptionFrame)) and self.replying:
                self.replying = False
                self.replies_ended += 1
        await self.push_frame(frame, direction)


@dataclass
class HarnessResult:
    budgeter: LatencyBudgeter
    observer: LatencyObserver
    clip_start_ns: list[int] = field(default_factory=list)


async def run_clips(
    clips: Sequence[np.ndarray],
    build: Callable[[PacedAudioSource, AudioSink], list[FrameProcessor]],
    *,
    strategy: str = "pipecat",
    audio_out_sample_rate: int = 22050,
    settle_s: float = 1.0,
) -> HarnessResult:
    """``build(source, sink) -> list[FrameProcessor]`` makes the pipeline's processors in order."""
    sink = AudioSink()
    source = PacedAudioSource(clips, sink=sink)
    observer = LatencyObserver(output=sink, strategy=strategy)
    pipeline = Pipeline(build(source, sink))
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=audio_out_sample_rate),
        observers=[observer],
        cancel_on_idle_timeout=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)

    async def finish() -> None:
        await source.done.wait()
        await asyncio.sleep(settle_s)
        await worker.queue_frame(EndFrame())

    await asyncio.gather(runner.run(), finish())
    return HarnessResult(budgeter=observer.budgeter, observer=observer, clip_start_ns=source.clip_start_ns)


async def profile_files(
    paths: Sequence[Path],
    build: Callable[[PacedAudioSource, AudioSink], list[FrameProcessor]],
    *,
    strategy: str = "pipecat",
    references: dict[str, str] | None = None,
    settle_s: float = 1.0,
) -> dict[str, Any]:
    """``voiceloop profile`` for a pipecat pipeline: the same pacing, the same report and table."""
    from ...audio.vad import SileroVAD
    from ...profile.runner import InputSpan, build_report, last_speech_end_ms, load_inputs

    vad = SileroVAD()
    clips, spans = [], []
    for path, samples, rate in load_inputs(list(paths)):
        clip = resample(samples, rate, RATE).astype(np.float32)
        clips.append(clip)
        spans.append(InputSpan(path=path, speech_end_ms=last_speech_end_ms(clip, vad)))
    result = await run_clips(clips, build, strategy=strategy, settle_s=settle_s)
    starts = result.clip_start_ns
    for i, span in enumerate(spans):
        span.start_ns = starts[i]
        span.end_ns = starts[i + 1] if i + 1 < len(starts) else 2**62
    for rec in [*result.budgeter.records, *result.observer.unanswered]:
        at = rec.marks.get("speech_start", 0)
        span = next((s for s in spans if s.start_ns <= at < s.end_ns), spans[-1])
        span.records.append(rec)
    return build_report(spans, result.budgeter, strategy=strategy, system={"framework": "pipecat"}, references=references)
