"""One reply attempt: transcript -> LLM tokens -> clauses -> TTS audio, optionally held.

A preemptive reply starts at the first silence and holds its audio until the turn
end is confirmed; ``cancel()`` sets the stop flag the LLM and TTS threads check
between tokens and chunks, so discarded work really stops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..asr.whisper import Transcript as AsrResult
from ..core.events import Event, ReplyAudio, ReplyText
from ..core.frames import AudioFrame
from ..llm.backend import GenerationStats
from ..llm.prompt import Message
from ..tts.clauses import ClauseSplitter
from ..tts.speech_text import MarkupFilter, speakable

if TYPE_CHECKING:
    from .agent import VoiceAgent

AsrMode = Literal["sized", "full"]


class ReplyJob:
    def __init__(
        self,
        agent: VoiceAgent,
        *,
        turn_id: int,
        audio: np.ndarray,
        history: list[Message],
        held: bool,
        asr_mode: AsrMode = "sized",
        whole_reply: bool = False,
        transcript: str | None = None,
        early_asr: tuple[int, asyncio.Future[AsrResult]] | None = None,
    ) -> None:
        self.agent = agent
        self.turn_id = turn_id
        self.history = history
        self.held = held
        self.asr_mode = asr_mode
        self.whole_reply = whole_reply
        self.stop = threading.Event()
        self.llm_gate = threading.Event()
        """Cleared while the first clause is synthesised: on two cores the LLM writing clause
        two would halve TTS speed on the critical path; it resumes once first audio exists."""
        self.llm_gate.set()
        self.marks: dict[str, int] = {}
        self.stats = GenerationStats()
        self.transcript: str | None = transcript
        self.window_frames = 0
        self.transcript_ready = asyncio.Event()
        self.end_of_turn: float | None = None
        self.scored = asyncio.Event()
        """The turn detector's P(sentence over), scored before the reply starts (held replies only)."""
        self.reply_text = ""
        self.spoken: list[str] = []
        """Clauses whose audio has been handed to the output."""
        self.audio_ns = 0
        self.merged = False
        """Set when the user went on after this reply cut in: the next turn absorbs this one."""
        self._held: list[Event] = []
        self._audio = audio
        self._early_asr = early_asr
        self.early_asr_used = False
        self.on_emit: Callable[[Event], Awaitable[None]] = agent._emit
        self.task = asyncio.create_task(self._run(), name=f"reply-{turn_id}")

    @property
    def released(self) -> bool:
        return not self.held

    def _now(self) -> int:
        return self.agent.clock.now_ns()

    async def release(self) -> None:
        """The turn is confirmed: hand held audio to the output now, the rest as it comes."""
        self.held = False
        held, self._held = self._held, []
        for ev in held:
            await self._out(ev)

    def cancel(self) -> None:
        self.stop.set()
        self.task.cancel()

    async def _out(self, ev: Event) -> None:
        if self.held:
            self._held.append(ev)
            return
        if isinstance(ev, ReplyAudio):
            self.marks.setdefault("first_audio_out", self._now())
            self.audio_ns += ev.frame.duration_ns
        elif isinstance(ev, ReplyText):
            self.spoken.append(ev.text)
        await self.on_emit(ev)

    async def _transcribe(self) -> None:
        loop = asyncio.get_running_loop()
        eng = self.agent.engines
        try:
            if self.transcript is None:
                result = None
                if self._early_asr is not None:
                    started, future = self._early_asr
                    self.marks["asr_start"] = started
                    try:
                        result = await asyncio.shield(future)
                        self.early_asr_used = True
                    except asyncio.CancelledError:
                        if self.stop.is_set():
                            raise
                if result is None:
                    self.marks["asr_start"] = self._now()
                    fn = eng.asr.transcribe if self.asr_mode == "sized" else eng.asr.transcribe_full
                    result = await loop.run_in_executor(eng.asr_executor, fn, self._audio)
                self.marks["transcript_ready"] = self._now()
                self.transcript = result.text
                self.window_frames = result.window_frames
        finally:
            # Waiters must wake even when the job is cancelled mid-transcription.
            self.transcript_ready.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        eng = self.agent.engines
        try:
            await self._transcribe()
            if not self.transcript or self.stop.is_set():
                return
            if self.held and self.agent.options.lm_turn_detector:
                # Same thread and KV cache as the reply: the reply re-evaluates only a few tokens.
                self.end_of_turn = await loop.run_in_executor(
                    eng.llm_executor, eng.llm.end_of_turn_probability, self.history, self.transcript
                )
        finally:
            self.scored.set()
        if not self.transcript or self.stop.is_set():
            return

        tokens: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        text = self.transcript
        clock = self.agent.clock
        max_tokens = self.agent.options.max_reply_tokens

        def produce() -> None:
            # Runs on the LLM thread: the lazy token generator is consumed here, never on the loop.
            try:
                for piece in eng.llm.stream(self.history, text, stop=self.stop, max_tokens=max_tokens, stats=self.stats):
                    loop.call_soon_threadsafe(tokens.put_nowait, (clock.now_ns(), piece))
                    # Bounded wait: a stalled TTS must not pin the LLM thread forever.
                    self.llm_gate.wait(timeout=0.5)
            finally:
                loop.call_soon_threadsafe(tokens.put_nowait, None)

        eng.llm.yield_to_reply()  # a prefill still running stops at its next chunk
        llm_done = loop.run_in_executor(eng.llm_executor, produce)
        clauses: asyncio.Queue[str | None] = asyncio.Queue(maxsize=16)
        speaker = asyncio.create_task(self._speak(clauses))
        splitter = ClauseSplitter(self.agent.options.clauses)
        markup = MarkupFilter()  # markdown and emoji never reach the clause splitter or the TTS
        parts: list[str] = []
        try:
            while (item := await tokens.get()) is not None:
                t, piece = item
                self.marks.setdefault("first_token", t)
                parts.append(piece)
                if not self.whole_reply:
                    for clause in splitter.feed(markup.feed(piece)):
                        if "first_clause" not in self.marks:
                            self.marks["first_clause"] = self._now()
                            self.llm_gate.clear()
                        await clauses.put(clause)
            self.reply_text = "".join(parts).strip()
            # The conventional path only starts speaking once the whole reply exists.
            rest = splitter.feed(markup.feed(self.reply_text) + markup.flush() + " ") if self.whole_reply else []
            if not self.whole_reply:
                rest = splitter.feed(markup.flush())
            tail = splitter.flush()
            for clause in [*rest, *([tail] if tail else [])]:
                self.marks.setdefault("first_clause", self._now())
                await clauses.put(clause)
            await clauses.put(None)
            await llm_done
            await speaker
        finally:
            self.stop.set()
            self.llm_gate.set()
            speaker.cancel()

    async def _speak(self, clauses: asyncio.Queue[str | None]) -> None:
        loop = asyncio.get_running_loop()
        eng = self.agent.engines
        while (clause := await clauses.get()) is not None:
            if self.stop.is_set():
                break

            def synth(c: str = speakable(clause)) -> list[np.ndarray]:
                return list(eng.tts.synthesize(c, stop=self.stop))

            chunks = await loop.run_in_executor(eng.tts_executor, synth)
            self.llm_gate.set()
            if not chunks:
                continue
            self.marks.setdefault("first_tts_audio", self._now())
            await self._out(ReplyText(turn_id=self.turn_id, text=clause))
            for pcm in chunks:
                frame = AudioFrame(pcm=pcm, sample_rate=eng.tts.sample_rate, timestamp_ns=self._now())
                await self._out(ReplyAudio(turn_id=self.turn_id, frame=frame))
