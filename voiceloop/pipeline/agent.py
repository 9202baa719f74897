"""The voice agent: audio frames in, events (transcripts, reply audio, latency records) out.

Two strategies on the same engines:

``speculative`` (default)
    Streams ASR passes while the user speaks; at the first VAD silence it
    transcribes what was said and starts the reply at once (LLM, then TTS clause
    by clause) with its audio held back; an adaptive endpointing policy decides
    from the transcript how much silence confirms the turn, and the held audio is
    released the moment it does. If the user speaks again first, the attempt is
    cancelled and its work stops.
``sequential``
    The conventional pipeline: a fixed 500 ms silence, one transcription of the
    utterance on a 30 s window, the whole reply, then TTS.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np

from ..asr.streaming import StablePrefixTracker
from ..asr.whisper import Transcript as AsrResult
from ..audio.resample import PIPELINE_RATE, StreamResampler
from ..audio.vad import WINDOW_SAMPLES, SileroVAD, VADOptions
from ..core.clock import DEFAULT_CLOCK, Clock
from ..core.events import (
    Announcement,
    Event,
    Interrupted,
    ReplyAudio,
    ReplyText,
    SpeechPaused,
    SpeechStarted,
    Transcript,
    TurnEnded,
    TurnMetrics,
)
from ..core.frames import AudioFrame
from ..core.stage import Stage
from ..llm.prompt import Message
from ..metrics.budget import Budgets, LatencyBudgeter, TurnRecord
from ..tools.base import Tool
from ..tools.runner import ToolOptions, ToolRunner
from ..tts.clauses import ClauseOptions, ClauseSplitter
from ..tts.speech_text import speakable
from ..turn.base import EndpointingPolicy, FixedSilence
from ..turn.cues import reads_incomplete
from ..turn.policy import default_policy
from .engines import Engines
from .pacing import Pace
from .reply import ReplyJob

log = logging.getLogger("voiceloop.agent")

Strategy = Literal["speculative", "sequential"]
_END = object()
_NS_PER_SAMPLE = 1_000_000_000 / PIPELINE_RATE
RESET_VAD_AFTER_WINDOWS = 31  # ~1 s of silence


@dataclass(frozen=True, slots=True)
class AgentOptions:
    strategy: Strategy = "speculative"
    vad: VADOptions = field(default_factory=VADOptions)
    interim_every_ms: float = 300.0
    """Run a streaming ASR pass after this much new speech (speculative only)."""
    sequential_silence_ms: float = 500.0
    max_reply_tokens: int = 48
    max_utterance_s: float = 28.0
    """Whisper's window is 30 s; a longer monologue is cut into turns."""
    output_queue: int = 1024
    clauses: ClauseOptions = field(default_factory=ClauseOptions)
    prefill: bool = True
    """Evaluate the stable part of interim transcripts in the LLM ahead of the turn end."""
    barge_in_min_speech_ms: float = 32.0
    """Voiced time that starts a turn while the agent is speaking (barge-in); otherwise ``vad.min_speech_ms``."""
    continuation_ms: float = 1500.0
    """Speech this soon after a committed turn's end, while its reply plays, continues that turn."""
    system: str | None = None
    """The persona / system prompt; None = the LLM backend's default, written for speech
    (voiceloop.llm.prompt.SPEECH_SYSTEM_PROMPT)."""
    text_signal_wait_ms: float = 400.0
    """Silence after which the turn may end without the LLM's end-of-turn signals when they are not in yet:
    if the audio model and the words alone are sure (the policy's shortest wait). On a slow CPU, or while the
    LLM still finishes the previous reply, the signals can take over a second, and waiting for them put every
    turn on the 1.5 s cap. The calibrated middle wait, so a CPU fast enough to read them in time never decides
    without them."""


def _log_failure(fut: asyncio.Future[object]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("history prefill failed: %s", fut.exception())


class _State(Enum):
    IDLE = "idle"
    SPEECH = "speech"
    PAUSE = "pause"


class VoiceAgent(Stage[AudioFrame, Event]):
    """One conversation. ``async for ev in agent.process(frames)``."""

    name = "agent"

    def _context(self) -> list[Message]:
        """What the LLM sees before the user's line: the persona, then the turns so far."""
        head = [Message("system", self.options.system)] if self.options.system else []
        return head + list(self.history)

    def __init__(
        self,
        *,
        engines: Engines,
        options: AgentOptions | None = None,
        endpointing: EndpointingPolicy | None = None,
        budgeter: LatencyBudgeter | None = None,
        clock: Clock = DEFAULT_CLOCK,
        tools: Iterable[Tool | object] | None = None,
        tool_options: ToolOptions | None = None,
    ) -> None:
        self.engines = engines
        self.options = o = options or AgentOptions()
        if endpointing is None:
            endpointing = FixedSilence(o.sequential_silence_ms) if o.strategy == "sequential" else default_policy()
        self.endpointing = endpointing
        self.budgeter = budgeter or LatencyBudgeter(Budgets())
        self.clock = clock
        self.history: list[Message] = []
        # A tool set (an object with .tools(), e.g. Timers) contributes its tools; if it has .run(announce)
        # it also runs beside the conversation and may speak (a timer going off).
        flat: list[Tool] = []
        self._toolsets = []
        for t in tools or ():
            if isinstance(t, Tool):
                flat.append(t)
            else:
                flat += t.tools()
                if hasattr(t, "run"):
                    self._toolsets.append(t)
        self.tool_runner = ToolRunner(flat, tool_options) if flat else None
        """Runs the tools the model calls (voiceloop.tools); None = no tools offered."""
        self._announcing: asyncio.Task[None] | None = None
        self._announce_ids = 0
        self.input_lag_ms: list[float] = []
        """Per VAD window: ms between the window's last sample and its processing."""
        self._vad = SileroVAD(engines.vad_model)
        self._out: asyncio.Queue[object] = asyncio.Queue(o.output_queue)
        self._reset_stream()

    # -- plumbing ------------------------------------------------------------------
    def _reset_stream(self) -> None:
        self._state = _State.IDLE
        self._t0: int | None = None
        self._samples = 0  # 16 kHz samples seen
        self._pending = np.zeros(0, dtype=np.float32)
        self._resampler: StreamResampler | None = None
        self._preroll: list[np.ndarray] = []
        self._utt: list[np.ndarray] = []
        self._voiced_run = 0
        self._silent_run = 0
        self._turn_id = 0
        self._record: TurnRecord | None = None
        self._speech_end = 0
        self._silence_start = 0
        self._job: ReplyJob | None = None  # the attempt for the current utterance
        self._speaking: ReplyJob | None = None  # the committed reply being played
        self._speaking_until = 0
        self.pace = Pace()
        """This machine's clause synthesis and token times, measured as the conversation goes (``pacing``)."""
        self._tracker = StablePrefixTracker()
        self._interim_task: asyncio.Task[None] | None = None
        self._interim_pass: tuple[int, int, asyncio.Future[AsrResult]] | None = None
        self._last_pass_samples = 0
        self._prefilled = ""
        self._pause_texts: list[str] = []
        self._finishers: set[asyncio.Task[None]] = set()
        self._last_commit: tuple[TurnRecord, np.ndarray] | None = None

    async def _emit(self, ev: Event) -> None:
        await self._out.put(ev)

    def _ns_at(self, samples: int) -> int:
        assert self._t0 is not None
        return self._t0 + int(samples * _NS_PER_SAMPLE)

    def _utt_audio(self) -> np.ndarray:
        return np.concatenate(self._utt) if self._utt else np.zeros(0, dtype=np.float32)

    async def process(self, inputs: AsyncIterable[AudioFrame]) -> AsyncIterator[Event]:
        feeder = asyncio.create_task(self._feed(inputs), name="agent-input")
        if self.options.prefill:
            # The conversation's prefix (persona, tools' schemas: ~1,000 tokens with tools) before anyone speaks.
            warm = asyncio.get_running_loop().run_in_executor(self.engines.llm_executor, self._prefill_fn(""))
            warm.add_done_callback(_log_failure)
        services = [asyncio.create_task(ts.run(self.announce), name="agent-toolset") for ts in self._toolsets]
        try:
            while True:
                ev = await self._out.get()
                if ev is _END:
                    break
                yield ev  # type: ignore[misc]
            await feeder
        finally:
            feeder.cancel()
            for task in [*services, *([self._announcing] if self._announcing else [])]:
                task.cancel()
            if self.tool_runner is not None:
                self.tool_runner.close()
            for job in (self._job, self._speaking):
                if job is not None:
                    job.cancel()
            for t in list(self._finishers):
                t.cancel()
            if self._interim_task is not None:
                self._interim_task.cancel()

    async def _feed(self, inputs: AsyncIterable[AudioFrame]) -> None:
        try:
            async for frame in inputs:
                await self.push(frame)
            await self.drain()
        finally:
            await self._out.put(_END)

    async def drain(self) -> None:
        """Wait for replies in flight to finish (end of input)."""
        if self._job is not None and self._state is not _State.IDLE:
            self._job.cancel()
        while self._finishers:
            await asyncio.gather(*list(self._finishers), return_exceptions=True)

    # -- speaking unprompted (timers, reminders) -----------------------------------------------
    @property
    def busy(self) -> bool:
        """A turn is in progress: the user is speaking or pausing, or a reply is being made or played."""
        return self._state is not _State.IDLE or self._job is not None or self._agent_playing()

    async def announce(self, text: str, due_ns: int | None = None) -> None:
        """Say ``text`` at ``due_ns`` (a timer going off; now if None), or, if a turn is in progress then, as soon
        as it is over: never over the user and never into a reply. The first clause is voiced ahead (a timer
        hands it over early), so its audio starts on time; an ``Announcement`` event reports how late it was."""
        due = due_ns if due_ns is not None else self.clock.now_ns()
        loop = asyncio.get_running_loop()
        eng = self.engines
        splitter = ClauseSplitter(self.options.clauses)
        clauses = [*splitter.feed(text + " "), *([t] if (t := splitter.flush()) else [])]

        def voice(clause: str) -> list[np.ndarray]:
            return list(eng.tts.synthesize(speakable(clause)))

        first = await loop.run_in_executor(eng.tts_executor, voice, clauses[0]) if clauses else []
        while self.clock.now_ns() < due:
            await asyncio.sleep(min(0.005, (due - self.clock.now_ns()) / 1e9))
        while self.busy or (self._announcing is not None and not self._announcing.done()):
            await asyncio.sleep(0.01)
        self._announce_ids -= 1
        self._announcing = asyncio.current_task()  # type: ignore[assignment]
        ann_id = self._announce_ids
        first_ns = 0
        try:
            for i, clause in enumerate(clauses):
                chunks = first if i == 0 else await loop.run_in_executor(eng.tts_executor, voice, clause)
                if not chunks:
                    continue
                if self._state is not _State.IDLE:
                    break  # the user started talking: stop here (barge-in)
                await self._emit(ReplyText(turn_id=ann_id, text=clause))
                for pcm in chunks:
                    now = self.clock.now_ns()
                    first_ns = first_ns or now
                    frame = AudioFrame(pcm=pcm, sample_rate=eng.tts.sample_rate, timestamp_ns=now)
                    await self._emit(ReplyAudio(turn_id=ann_id, frame=frame))
                    self._speaking_until = max(self._speaking_until, now) + frame.duration_ns
        finally:
            self._announcing = None
        log.debug("announced %r, first audio %.0f ms after due", text, (first_ns - due) / 1e6 if first_ns else -1)
        await self._emit(Announcement(turn_id=ann_id, text=text, due_ns=due, first_audio_ns=first_ns))

    # -- audio in ------------------------------------------------------------------
    async def push(self, frame: AudioFrame) -> None:
        if self._t0 is None:
            self._t0 = frame.timestamp_ns
        samples = frame.to_float32()
        if self._resampler is None or self._resampler.from_rate != frame.sample_rate:
            # The rate changed: flush the old filter's held-back samples so the sample count
            # (our stream clock) stays exact, then resample once, at the edge, from here on.
            if self._resampler is not None:
                self._pending = np.concatenate([self._pending, self._resampler(np.zeros(0, np.float32), last=True)])
            self._resampler = StreamResampler(frame.sample_rate, PIPELINE_RATE)
        samples = self._resampler(samples)
        self._pending = np.concatenate([self._pending, samples])
        loop = asyncio.get_running_loop()
        while self._pending.shape[0] >= WINDOW_SAMPLES:
            window, self._pending = self._pending[:WINDOW_SAMPLES], self._pending[WINDOW_SAMPLES:]
            start = self._samples
            self._samples += WINDOW_SAMPLES
            prob = await loop.run_in_executor(self.engines.vad_executor, self._vad, window)
            end_ns = self._ns_at(self._samples)
            # How far behind real time the input is handled: a growing lag means a backlog.
            self.input_lag_ms.append((self.clock.now_ns() - end_ns) / 1e6)
            await self._on_window(window, prob, self._ns_at(start), end_ns)

    async def _on_window(self, window: np.ndarray, prob: float, start_ns: int, end_ns: int) -> None:
        o = self.options
        if self._state is _State.IDLE:
            self._preroll.append(window)
            keep = max(1, int(o.vad.pre_roll_ms / 32) + int(o.vad.min_speech_ms / 32))
            del self._preroll[:-keep]
            if prob >= o.vad.threshold:
                self._voiced_run += 1
                self._silent_run = 0
                # Talking over the agent must stop it fast: one voiced window is enough then
                # (the echo gate keeps the agent's own voice out of the microphone).
                need_ms = o.barge_in_min_speech_ms if self._agent_playing() else o.vad.min_speech_ms
                if self._voiced_run * 32 >= need_ms:
                    await self._start_speech(end_ns - self._voiced_run * 32_000_000)
            else:
                self._voiced_run = 0
                self._silent_run += 1
                if self._silent_run == RESET_VAD_AFTER_WINDOWS:
                    # Silero's recurrent state drifts over a long session and then misses quiet
                    # short words ("no" peaked at 0.47 after 20 turns, 0.92 fresh): start afresh
                    # in each long silence.
                    self._vad.reset()
            return

        self._utt.append(window)
        if self._state is _State.SPEECH:
            if prob >= o.vad.neg_threshold:
                self._speech_end = end_ns
                self._maybe_interim(soft_end=prob < o.vad.threshold)
                if len(self._utt) * WINDOW_SAMPLES >= o.max_utterance_s * PIPELINE_RATE:
                    await self._on_pause(end_ns)
                    await self._commit(end_ns, forced=True)
            else:
                await self._on_pause(start_ns)
            return

        # PAUSE: a window that is not clearly silent counts as the user going on.
        if prob >= o.vad.neg_threshold:
            await self._resume(end_ns)
            return
        silence_ms = (end_ns - self._silence_start) / 1e6
        job = self._job
        if self.options.strategy == "sequential":
            known, transcript = True, None
        else:
            known = job is not None and job.scored.is_set()
            if (
                job is not None
                and not known
                and job.transcript
                and silence_ms >= self.options.text_signal_wait_ms
                and (partial := job.evidence_without_text()) is not None
            ):
                # The LLM has not read the pause yet: when the audio model and the words alone are sure the user
                # is done, end the turn now rather than wait for the cap; otherwise keep waiting for the LLM.
                # Both must agree: smart-turn alone talks over about half the pauses the text model holds (it
                # called "My daughter's birthday is on." done at 0.87), so a sentence that reads unfinished (a
                # trailing preposition, conjunction or comma) waits for the text.
                ev, p = partial
                sure = self.endpointing.sure_without_text(job.transcript, ev, p, tuple(self._pause_texts))
                if sure and not reads_incomplete(job.transcript):
                    job.decide_without_text(ev, p)
                    known = True
            transcript = job.transcript if known and job is not None else None
        if transcript == "":
            # Whisper heard no words yet (a lone short word, a breath): never end a turn on
            # nothing; keep the audio in case the user goes on, drop it after the cap.
            if silence_ms >= self.endpointing.max_silence_ms:
                self._drop_utterance()
            return
        need = self.endpointing.required_silence_ms(
            transcript,
            end_of_turn=job.end_of_turn if job else None,
            previous=tuple(self._pause_texts),
            evidence=job.evidence if job else None,
        )
        # Unscored after the longest wait any decision asks for (the LLM was still busy with the previous
        # reply): end the turn on silence alone. Waiting longer merged the user's next request into this turn
        # (seen after a long answer: 3 s of silence were not enough when this waited 4.5 s).
        if silence_ms >= need and (known or silence_ms >= self.endpointing.max_silence_ms):
            await self._commit(end_ns)

    def _drop_utterance(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._job = None
            self.engines.llm.resume_background()
        self._state = _State.IDLE
        self._utt = []
        self._voiced_run = 0

    async def _start_speech(self, at_ns: int) -> None:
        self._state = _State.SPEECH
        self._silent_run = 0
        self._turn_id += 1
        record = TurnRecord(turn_id=self._turn_id, strategy=self.options.strategy)
        record.mark("speech_start", at_ns)
        self._utt = list(self._preroll)
        self._preroll = []
        self._speech_end = at_ns
        self._tracker.reset()
        self._last_pass_samples = 0
        self._interim_pass = None
        self._prefilled = ""
        self._pause_texts = []
        speaking = self._speaking
        playing = self._agent_playing()
        if (
            playing
            and speaking is not None
            and self._last_commit is not None
            and self._last_commit[0].turn_id == speaking.turn_id
        ):
            prev, prev_audio = self._last_commit
            if at_ns - prev.marks.get("speech_end", at_ns) <= self.options.continuation_ms * 1e6:
                # The user went on right after a premature turn end: this is the same turn.
                # Transcribe both parts together, and forget the reply that cut in.
                speaking.merged = True
                record.marks["speech_start"] = prev.marks["speech_start"]
                record.preemptions, record.discarded = prev.preemptions, prev.discarded + 1
                record.extra["continued_after_cut_in"] = True
                self._utt = [prev_audio, *self._utt]
                prev.extra["merged_into_next"] = True
                if prev.extra.get("in_history"):
                    del self.history[prev.extra.pop("history_at") :]
                    prev.extra["in_history"] = False
                log.debug("turn %d continues turn %d (cut in)", self._turn_id, prev.turn_id)
        self._record = record
        await self._emit(SpeechStarted(turn_id=self._turn_id, at_ns=at_ns))
        # Barge-in: the user talks over the agent (or over a reply still being made).
        if playing:
            ann = self._announcing
            if ann is not None and not ann.done():
                ann.cancel()  # an announcement stops like a reply; its clause counts as said
                self._speaking_until = 0
                await self._emit(Interrupted(turn_id=self._announce_ids, reason="barge_in"))
            if speaking is not None and (not speaking.task.done() or self._speaking_until):
                await self._interrupt(speaking, "barge_in")

    def _agent_playing(self) -> bool:
        job = self._speaking
        # _speaking_until also covers an announcement's audio (no job).
        return (job is not None and not job.task.done()) or self.clock.now_ns() < self._speaking_until

    async def interrupt(self, reason: str = "client") -> bool:
        """Stop the reply being spoken now (e.g. the client's own barge-in button)."""
        job = self._speaking
        if job is None or not self._agent_playing():
            return False
        await self._interrupt(job, reason)
        return True

    async def _interrupt(self, job: ReplyJob, reason: str) -> None:
        log.debug("turn %d: interrupt reply of turn %d (%s)", self._turn_id, job.turn_id, reason)
        job.cancel()
        if self._speaking is job:
            self._speaking = None
            self._speaking_until = 0
        await self._emit(Interrupted(turn_id=job.turn_id, reason=reason))

    async def _on_pause(self, silence_start_ns: int) -> None:
        self._state = _State.PAUSE
        self._silence_start = silence_start_ns
        assert self._record is not None
        await self._emit(SpeechPaused(turn_id=self._turn_id, at_ns=silence_start_ns))
        if self.options.strategy == "speculative":
            if self._job is not None:
                self._job.cancel()
            self._record.preemptions += 1
            # The silent window is the last one in the utterance; a pass that ended just before
            # it heard every voiced sample, so its result is the final transcript.
            voiced = (len(self._utt) - 1) * WINDOW_SAMPLES
            early = self._interim_pass if self._interim_pass and self._interim_pass[0] == voiced else None
            self._job = ReplyJob(
                self,
                turn_id=self._turn_id,
                audio=self._utt_audio(),
                history=self._context(),
                held=True,
                early_asr=early[1:] if early else None,
            )

    async def _resume(self, at_ns: int) -> None:
        self._state = _State.SPEECH
        self._speech_end = at_ns
        if self._job is not None:
            # What the user had said at this pause tells the endpointer how to read the next one.
            if self._job.scored.is_set() and self._job.transcript:
                self._pause_texts.append(self._job.transcript)
            self._job.cancel()
            self._job = None
            self.engines.llm.resume_background()  # the reply it announced will not come: prefill may go on
            assert self._record is not None
            self._record.discarded += 1

    async def _commit(self, at_ns: int, *, forced: bool = False) -> None:
        rec = self._record
        assert rec is not None
        rec.mark("speech_end", self._silence_start if not forced else at_ns)
        rec.mark("turn_end", self.clock.now_ns())
        rec.interim_count = self._tracker.passes
        if self.options.strategy == "sequential":
            job = ReplyJob(
                self,
                turn_id=self._turn_id,
                audio=self._utt_audio(),
                history=self._context(),
                held=False,
                asr_mode="full",
                whole_reply=True,
            )
        else:
            job = self._job
            assert job is not None
        self._job = None
        self._state = _State.IDLE
        self._last_commit = (rec, self._utt_audio())
        self._utt = []
        self._voiced_run = 0
        if self._speaking is not None and not self._speaking.task.done():
            await self._interrupt(self._speaking, "superseded")
        self._speaking = job
        rec.preemption = (
            "none" if self.options.strategy == "sequential" else ("committed" if rec.discarded == 0 else "restarted")
        )
        silence_ms = (at_ns - self._silence_start) / 1e6
        if not forced:
            kw = {"end_of_turn": job.end_of_turn, "previous": tuple(self._pause_texts), "evidence": job.evidence}
            rec.extra["endpoint_reason"] = self.endpointing.reason(job.transcript, **kw)
            # Why the held reply was released: the probability, the silence it called for and waited.
            ev = job.evidence
            rec.extra["release"] = {
                "p_end": None if job.end_of_turn is None else round(job.end_of_turn, 4),
                "required_ms": self.endpointing.required_silence_ms(job.transcript, **kw),
                "waited_ms": round(silence_ms, 1),
                "reason": rec.extra["endpoint_reason"],
                "text_late": job.text_late,
                "signals": None if ev is None else {"text_eom": ev.text_eom, "text_punct": ev.text_punct, "audio": ev.audio},
            }
        log.debug(
            "turn %d: commit %r after %.0f ms silence (earlier pauses: %s)",
            rec.turn_id,
            job.transcript,
            silence_ms,
            self._pause_texts,
        )
        await job.release()
        finisher = asyncio.create_task(self._finish(job, rec))
        self._finishers.add(finisher)
        finisher.add_done_callback(self._finishers.discard)

    async def _finish(self, job: ReplyJob, rec: TurnRecord) -> None:
        await job.transcript_ready.wait()
        text = job.transcript or ""
        await self._emit(Transcript(turn_id=rec.turn_id, text=text, final=True, stable=text))
        await self._emit(TurnEnded(turn_id=rec.turn_id, transcript=text))
        try:
            await job.task
        except asyncio.CancelledError:
            rec.interrupted = True
        if (until := job.plays_until_ns()) is not None:
            self._speaking_until = until  # its audio and the stalls between
        for k, v in job.marks.items():
            rec.mark(k, v)
        rec.transcript = text
        # History holds what the user heard: after barge-in, only the clauses played.
        rec.reply = " ".join(job.spoken) if rec.interrupted else job.reply_text
        rec.asr_window_frames = job.window_frames
        rec.stall_ms, rec.stalls = job.stall_ns / 1e6, job.stalls
        if job.early_cuts:
            rec.extra["clauses_cut_early"] = job.early_cuts
        rec.tools = list(job.tool_records)
        rec.extra["final_asr_from_streaming_pass"] = job.early_asr_used
        if job.second_opinion is not None:
            rec.extra["asr_second_opinion"] = job.second_opinion
        s = job.stats
        rec.llm = {
            "prompt_tokens": s.prompt_tokens,
            "reused_tokens": s.reused_tokens,
            "evaluated_tokens": s.evaluated_tokens,
            "prompt_ms": s.prompt_ms,
            "wait_ms": s.wait_ms,
            "ttft_ms": s.ttft_ms,
            "tokens": s.decode_tokens,
            "tok_s": s.tok_s,
            "finish": s.finish_reason,
        }
        if s.read_back_retries:
            rec.llm["read_back_retries"] = s.read_back_retries
        if s.call_decision:
            rec.llm["p_call"] = None if s.call_probability is None else round(s.call_probability, 3)
            rec.llm["call_decision"] = s.call_decision
            if s.call_written:
                rec.llm["call_written"] = s.call_written
            if s.call_judged is not None:
                rec.llm["p_judged"] = round(s.call_judged, 3)
        log.debug("turn %d finished: reply %r, marks %s, llm %s", rec.turn_id, rec.reply, sorted(job.marks), rec.llm)
        if not text:
            return  # noise, not a turn
        if job.merged:
            # Cut in: the next turn carries this one's audio; its reply is discarded.
            rec.extra["merged_into_next"] = True
        else:
            # A tool round stays in the history (the call and its result): a model that sees its earlier
            # answers without their calls imitates them and answers the next request from memory.
            n = len(job.retried)
            if n and self.history[-n:] == job.retried:
                del self.history[-n:]  # the exchange this turn asked again; its record keeps what was said
                rec.extra["retry_of_cut_reply"] = True
            rec.extra["history_at"] = len(self.history)
            reply = Message("assistant", rec.reply, cut=rec.interrupted)
            self.history += [Message("user", text), *job.tool_messages, reply]
            rec.extra["in_history"] = True
            if self.options.prefill and self._state is _State.IDLE:
                # Evaluate the new history now, while the user is silent: when the history is
                # trimmed the whole prompt changes, and ~300 tokens must not wait for the next turn.
                eng = self.engines
                warm = asyncio.get_running_loop().run_in_executor(eng.llm_executor, self._prefill_fn(""))
                warm.add_done_callback(_log_failure)
            self.budgeter.add(rec)
        await self._emit(TurnMetrics(turn_id=rec.turn_id, record=rec))

    # -- streaming ASR -------------------------------------------------------------
    def _maybe_interim(self, *, soft_end: bool = False) -> None:
        """Start a streaming pass every ``interim_every_ms`` of speech, and at once when the
        speech probability sags (the end of a word): if silence follows, that pass already
        covers every voiced sample and becomes the final transcript, a window early."""
        if self.options.strategy != "speculative":
            return
        n = len(self._utt) * WINDOW_SAMPLES
        if not soft_end and n - self._last_pass_samples < self.options.interim_every_ms * PIPELINE_RATE / 1000:
            return
        if n == self._last_pass_samples or (self._interim_task is not None and not self._interim_task.done()):
            return
        self._last_pass_samples = n
        future: asyncio.Future[AsrResult] = asyncio.get_running_loop().create_future()
        self._interim_pass = (n, self.clock.now_ns(), future)
        self._interim_task = asyncio.create_task(self._interim(self._turn_id, self._utt_audio(), future))

    async def _interim(self, turn_id: int, audio: np.ndarray, future: asyncio.Future[AsrResult]) -> None:
        loop = asyncio.get_running_loop()
        eng = self.engines
        try:
            result = await loop.run_in_executor(eng.asr_executor, eng.asr.transcribe, audio)
        except BaseException:
            future.cancel()
            raise
        future.set_result(result)
        if turn_id != self._turn_id or self._state is _State.IDLE:
            return
        interim = self._tracker.update(result.text)
        await self._emit(Transcript(turn_id=turn_id, text=result.text, final=False, stable=interim.stable))
        busy = self._job is not None or (self._speaking is not None and not self._speaking.task.done())
        if self.options.prefill and interim.stable and interim.stable != self._prefilled and not busy:
            self._prefilled = interim.stable
            await loop.run_in_executor(eng.llm_executor, self._prefill_fn(interim.stable))

    def _prefill_fn(self, text: str) -> functools.partial[None]:
        """The LLM prefill of this conversation's prompt (with the tools' schemas: they are in its prefix)."""
        extra = {"tools": self.tool_runner.schemas()} if self.tool_runner is not None else {}
        return functools.partial(self.engines.llm.prefill, self._context(), text, **extra)
