"""One reply attempt: transcript -> LLM tokens -> clauses -> TTS audio, optionally held.

A preemptive reply starts at the first silence and holds its audio until the turn
end is confirmed; ``cancel()`` sets the stop flag the LLM and TTS threads check
between tokens and chunks, so discarded work really stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..asr.whisper import Transcript as AsrResult
from ..core.events import Event, ReplyAudio, ReplyText
from ..core.frames import AudioFrame
from ..llm.backend import GenerationStats, LLMBackend
from ..llm.prompt import Message
from ..tools.calls import ToolCall, ToolCallFilter
from ..tools.faithful import FollowUpCheck
from ..tools.runner import ToolResult, ToolRunner
from ..tts.clauses import ClauseSplitter
from ..tts.speech_text import MarkupFilter, speakable
from ..turn.base import EndOfTurnEvidence
from .history import without_cut_retry

if TYPE_CHECKING:
    from .agent import VoiceAgent

log = logging.getLogger("voiceloop.reply")

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
        """P(the user is done) from the endpointing policy, once ``scored``."""
        self.evidence: EndOfTurnEvidence | None = None
        self.scored = asyncio.Event()
        """Set once the end-of-turn evidence is in: the transcript, the LLM's signals (read while it evaluates
        the reply's prompt, so at the first token) and the audio model's probability, if any."""
        self.text_late = False
        """Decided without the LLM's end-of-turn signals: they were not in after ``text_signal_wait_ms``."""
        self._partial: tuple[tuple, tuple[EndOfTurnEvidence, float | None]] | None = None
        self._audio_p: asyncio.Future[float] | None = None
        self.reply_text = ""
        self.tool_records: list[dict[str, object]] = []
        """The turn's tool calls: name, arguments, result, ms (and a filler, if one was spoken)."""
        self._filler: asyncio.Task[None] | None = None
        self.tool_messages: list[Message] = []
        """The turn's tool rounds as messages (calls, results): they go into the history with the answer."""
        self.spoken: list[str] = []
        """Clauses whose audio has been handed to the output."""
        self.audio_ns = 0
        self.stall_ns = 0
        """Silence inside the reply: audio handed over after the audio before it had run out (played back to
        back from the first frame). The listener hears it as a stutter, however soon the reply began."""
        self.stalls = 0
        self.early_cuts = 0
        """Clauses voiced before their end because the audio before them was running out (``pacing``)."""
        self._voicing = 0
        self.retried: list[Message] = []
        """The exchange this turn asks again after the user cut its reply short: left out of the prompt, and
        replaced in the history by this turn (``pipeline.history.without_cut_retry``)."""
        self.merged = False
        """Set when the user went on after this reply cut in: the next turn absorbs this one."""
        self._held: list[Event] = []
        self._audio = audio
        self._early_asr = early_asr
        self.early_asr_used = False
        self.second_opinion: dict | None = None
        """When the ASR's stronger model re-heard the turn: both texts, their confidences, which was kept."""
        self._scoring: asyncio.Future[None] | None = None
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
            now = self._now()
            ran_dry = self.plays_until_ns()
            if ran_dry is None:
                self.marks["first_audio_out"] = now
            elif now > ran_dry:
                self.stall_ns += now - ran_dry
                self.stalls += 1
            self.audio_ns += ev.frame.duration_ns
        elif isinstance(ev, ReplyText):
            self.spoken.append(ev.text)
        await self.on_emit(ev)

    def plays_until_ns(self) -> int | None:
        """When the audio handed out so far ends, played back to back from the first sample with the stalls
        between; None before any."""
        first = self.marks.get("first_audio_out")
        return None if first is None else first + self.audio_ns + self.stall_ns

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

                    def run(audio: np.ndarray) -> AsrResult:
                        # When the pass really began: the ASR's one thread may still be busy with a streaming
                        # pass of the same speech, and that wait is part of the asr stage.
                        self.marks["asr_run"] = self._now()
                        return fn(audio)

                    result = await loop.run_in_executor(eng.asr_executor, run, self._audio)
                if eng.asr.wants_second_opinion(result):
                    self.marks["asr_second_start"] = self._now()
                    result = await loop.run_in_executor(eng.asr_executor, eng.asr.second_opinion, self._audio, result)
                    self.second_opinion = result.second_opinion
                self.marks["transcript_ready"] = self._now()
                self.transcript = result.text
                self.window_frames = result.window_frames
        finally:
            if self.transcript:
                kept, n = without_cut_retry(self.history, self.transcript)
                self.history, self.retried = kept, self.history[len(self.history) - n :] if n else []
            # Waiters must wake even when the job is cancelled mid-transcription.
            self.transcript_ready.set()

    def _start_scoring(self) -> asyncio.Future[None]:
        """Score once, whoever asks first: the LLM's "prompt evaluated" signal, the first token, or the reply's end."""
        if self._scoring is None:
            self._scoring = asyncio.ensure_future(self._score_once())
        return self._scoring

    async def _score(self) -> None:
        await asyncio.shield(self._start_scoring())

    def _score_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """The LLM evaluated the prompt (its thread): score now, not at the first token, which may be a tool
        call written unseen ~1 s later; the turn's end must not wait for it."""
        loop.call_soon_threadsafe(lambda: None if self.stop.is_set() else self._start_scoring())

    async def _score_once(self) -> None:
        """Gather the end-of-turn evidence and ask the policy for P(end); never raises."""
        if self.scored.is_set():
            return
        eng = self.agent.engines
        try:
            audio = None
            if self._audio_p is not None:
                try:
                    audio = await self._audio_p
                except Exception as exc:
                    log.warning("end-of-turn audio model failed: %s", exc)
            if self.scored.is_set():
                return  # decided meanwhile without the text signals (decide_without_text): keep what decided
            text = self.transcript or ""
            sig = eng.llm.turn_signals(self.history, text) or {}
            self.evidence = EndOfTurnEvidence(text, sig.get("eom"), sig.get("punct"), audio, model=self._model_name())
            self.end_of_turn = self.agent.endpointing.probability(self.evidence)
        finally:
            self.scored.set()

    def _model_name(self) -> str | None:
        model = getattr(self.agent.engines.llm, "model_path", None)
        name = Path(str(model)).name if model else None
        if name and self.agent.tool_runner is not None:
            name += "+tools"  # the tools' schemas in the prompt shift the signals: calibrated apart
        return name

    def evidence_without_text(self) -> tuple[EndOfTurnEvidence, float | None] | None:
        """The pause's evidence without the LLM's signals, which are late (a slow CPU, or the LLM still busy with
        the previous reply): the words and the audio model's answer, with P(end) from them. None while the audio
        model is still running. Computed once per transcript: the agent asks on every silent window while late."""
        key = (self.transcript, self._audio_p)
        if self._partial is not None and self._partial[0] == key:
            return self._partial[1]
        audio = None
        if self._audio_p is not None:
            if not self._audio_p.done():
                return None
            if not self._audio_p.cancelled() and self._audio_p.exception() is None:
                audio = self._audio_p.result()
        ev = EndOfTurnEvidence(self.transcript or "", None, None, audio, model=self._model_name())
        result = (ev, self.agent.endpointing.probability(ev))
        self._partial = (key, result)
        return result

    def decide_without_text(self, evidence: EndOfTurnEvidence, p_end: float | None) -> None:
        """The turn was decided on ``evidence`` without the LLM's signals (``text_late``); keep it as the record."""
        self.evidence, self.end_of_turn, self.text_late = evidence, p_end, True
        self.scored.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        eng = self.agent.engines
        if self.held:
            # The pause: a prefill of the words so far (one core) would now slow the final ASR pass and the audio
            # model, both on the critical path; its words go into the reply's own batch instead, on every core.
            eng.llm.yield_to_reply()
        if self.held and eng.turn_audio is not None:
            # The audio model hears the pause now, beside the ASR pass (its own thread).
            self._audio_p = loop.run_in_executor(eng.turn_executor, eng.turn_audio.probability, self._audio)
        try:
            await self._run_reply()
        finally:
            self.scored.set()

    async def _run_reply(self) -> None:
        eng = self.agent.engines
        await self._transcribe()
        if not self.transcript or self.stop.is_set():
            return
        # Without the LLM's signals (a remote backend) the evidence is complete now; with them, at the
        # first token: the prompt evaluation reads them.
        text_signals = type(eng.llm).turn_signals is not LLMBackend.turn_signals
        if self.held and not text_signals:
            await self._score()

        clauses: asyncio.Queue[str | None] = asyncio.Queue(maxsize=16)
        speaker = asyncio.create_task(self._speak(clauses))
        runner = self.agent.tool_runner
        after: list[Message] = []
        spoken: list[str] = []
        try:
            rounds = runner.options.max_rounds if runner is not None else 0
            for rnd in range(rounds + 1):
                calls = await self._generate(after, clauses, spoken, tools=runner is not None, last=rnd == rounds)
                if not calls or runner is None or self.stop.is_set():
                    break
                if rnd == rounds:
                    # Still calling tools after the last round: say so instead of looping.
                    spoken.append("Sorry, I could not finish that.")
                    await clauses.put(spoken[-1])
                    break
                results = await self._run_tools(runner, calls)
                after += [Message("assistant", "\n".join(c.raw for c in calls))]
                after += [Message("tool", r.content) for r in results]
                self.tool_messages = list(after)
            self.reply_text = " ".join(p for p in spoken if p).strip()
            if self._filler is not None and not self._filler.done():
                self._filler.cancel()
            await clauses.put(None)
            await speaker
        finally:
            if self._filler is not None:
                self._filler.cancel()
            self.stop.set()
            self.llm_gate.set()
            speaker.cancel()

    async def _run_tools(self, runner: ToolRunner, calls: list[ToolCall]) -> list[ToolResult]:
        """Run the calls in order (the filler timer, started when the call began, covers this too). A barge-in
        cancels this task, and with it an async tool; a thread's result is dropped."""
        results = [await runner.run(c) for c in calls]
        self.tool_records += [r.record() for r in results]
        return results

    def _call_started_from_thread(
        self, loop: asyncio.AbstractEventLoop, runner: ToolRunner, clauses: asyncio.Queue[str | None]
    ) -> None:
        """The LLM began writing a call (its thread). An unsure call is written unseen and its first token comes
        only once it is kept (~1 s on a 2-core CPU): the filler clock must start here, not there."""
        loop.call_soon_threadsafe(self._start_filler, runner, clauses)

    def _start_filler(self, runner: ToolRunner, clauses: asyncio.Queue[str | None]) -> None:
        if self._filler is None and not self.stop.is_set():
            self._filler = asyncio.create_task(self._filler_after(runner, clauses))

    async def _filler_after(self, runner: ToolRunner, clauses: asyncio.Queue[str | None]) -> None:
        """A call has started: if no answer is spoken within the filler delay, say a short filler clause."""
        await asyncio.sleep(runner.options.filler_after_ms / 1000)
        filler = runner.options.filler
        self.marks.setdefault("filler", self._now())
        self.tool_records.append({"filler": filler})
        self.marks.setdefault("first_clause", self._now())
        await clauses.put(filler)

    async def _generate(
        self,
        after: list[Message],
        clauses: asyncio.Queue[str | None],
        spoken: list[str],
        *,
        tools: bool,
        last: bool,
    ) -> list[ToolCall]:
        """One LLM pass: text goes clause by clause to the speaker as it streams; tool calls are held
        back from it and returned. ``after``: the tool round so far (calls and results)."""
        loop = asyncio.get_running_loop()
        eng = self.agent.engines
        runner = self.agent.tool_runner
        tokens: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        text = self.transcript or ""
        clock = self.agent.clock
        max_tokens = self.agent.options.max_reply_tokens
        schemas = runner.schemas() if tools and runner is not None else None
        stats = self.stats if not after else GenerationStats()
        if self.held and not after:
            stats.on_prompt = functools.partial(self._score_from_thread, loop)
        if schemas and runner is not None:
            stats.on_call_start = functools.partial(self._call_started_from_thread, loop, runner, clauses)

        # Only passed when used: a backend written without tools keeps working.
        extra: dict[str, object] = {"tools": schemas} if schemas else {}
        if after:
            extra["after"] = list(after)
        if schemas and last:
            extra["tool_choice"] = "none"  # the last round answers with what the tools returned

        # After tool results, each clause's numbers must come from the results, the calls or the request
        # (``voiceloop.tools.faithful``); the first clause that invents one ends the round here (the job goes
        # on: ``halt`` is this round's, ``self.stop`` the job's).
        check = FollowUpCheck(text, after) if after else None
        halt = threading.Event()

        def produce() -> None:
            # Runs on the LLM thread: the lazy token generator is consumed here, never on the loop.
            try:
                for piece in eng.llm.stream(self.history, text, stop=self.stop, max_tokens=max_tokens, stats=stats, **extra):
                    if halt.is_set():
                        break  # closes the generator: the backend stops within this token
                    loop.call_soon_threadsafe(tokens.put_nowait, (clock.now_ns(), piece))
                    # Bounded wait: a stalled TTS must not pin the LLM thread forever.
                    self.llm_gate.wait(timeout=0.5)
            finally:
                loop.call_soon_threadsafe(tokens.put_nowait, None)

        eng.llm.yield_to_reply()  # a prefill still running stops at its next chunk
        llm_done = loop.run_in_executor(eng.llm_executor, produce)
        clause_options = self.agent.options.clauses
        if after:
            # A follow-up comes after the filler: no need to cut its first clause after two words, and a whole
            # clause can be checked against the results before any of it is said ("The answer" + "is 1025.").
            clause_options = dataclasses.replace(clause_options, first_max_words=clause_options.max_words)
        splitter = ClauseSplitter(clause_options)
        markup = MarkupFilter()  # markdown and emoji never reach the clause splitter or the TTS
        calls_filter = ToolCallFilter()  # a tool call never reaches them either
        parts: list[str] = []

        async def say(clause: str) -> None:
            if check is not None:
                was = check.stopped
                said = check.check(clause)
                if check.stopped and not was:
                    halt.set()
                    self.llm_gate.set()
                    log.info("follow-up %r says %s, which no tool result holds", clause, check.invented)
                    self.tool_records.append(check.invented)
                if said is None:
                    return
                clause = said
            if self._filler is not None and not self._filler.done():
                self._filler.cancel()  # the answer came in time: no filler
            if "first_clause" not in self.marks:
                self.marks["first_clause"] = self._now()
                self.llm_gate.clear()
            await clauses.put(clause)

        pace = self.agent.pace
        prev_t: int | None = None
        try:
            while (item := await tokens.get()) is not None:
                t, piece = item
                if prev_t is not None:
                    pace.saw_token((t - prev_t) / 1e6)
                prev_t = t
                if "first_token" not in self.marks:
                    self.marks["first_token"] = t
                    if self.held:
                        await self._score()
                visible = calls_filter.feed(piece)
                if calls_filter.started and runner is not None:
                    self._start_filler(runner, clauses)
                parts.append(visible)
                if not self.whole_reply:
                    for clause in splitter.feed(markup.feed(visible)):
                        await say(clause)
                    if self._running_dry(clauses, splitter) and (early := splitter.cut_early()) is not None:
                        self.early_cuts += 1
                        log.debug("turn %d: %r voiced early (%s)", self.turn_id, early, self.agent.pace)
                        await say(early)
                    if not self.llm_gate.is_set():
                        prev_t = None  # the LLM waits while the first clause is voiced: not a token's time
            if self.held:
                await self._score()  # no token at all (the model ended at once)
            visible = calls_filter.flush()
            parts.append(visible)
            reply = "".join(parts).strip()
            # The conventional path only starts speaking once the whole reply exists.
            if self.whole_reply:
                rest = splitter.feed(markup.feed(reply) + markup.flush() + " ")
            else:
                rest = splitter.feed(markup.feed(visible) + markup.flush())
            tail = splitter.flush()
            for clause in [*rest, *([tail] if tail else [])]:
                await say(clause)
            # What the user heard is what the history keeps: not an answer that was stopped for inventing.
            spoken.append(" ".join(check.said) if check is not None and check.stopped else reply)
            await llm_done
        finally:
            if not llm_done.done():
                self.stop.set()
        return calls_filter.calls

    def _running_dry(self, clauses: asyncio.Queue[str | None], splitter: ClauseSplitter) -> bool:
        """Nothing queued or in synthesis, and the audio handed out runs out before one more token and the
        synthesis of the words written so far and that token would be done (only once the reply plays: held
        audio has no clock yet)."""
        until = self.plays_until_ns()
        if self.held or until is None or self._voicing or not clauses.empty():
            return False
        left_ms = (until - self._now()) / 1e6
        return self.agent.pace.must_cut(left_ms, len(speakable(splitter.pending).split()))

    async def _speak(self, clauses: asyncio.Queue[str | None]) -> None:
        loop = asyncio.get_running_loop()
        eng = self.agent.engines
        while (clause := await clauses.get()) is not None:
            if self.stop.is_set():
                break

            said = speakable(clause)

            def synth(c: str = said) -> list[np.ndarray]:
                return list(eng.tts.synthesize(c, stop=self.stop))

            self._voicing += 1
            try:
                started = self._now()
                chunks = await loop.run_in_executor(eng.tts_executor, synth)
                self.llm_gate.set()
                if not chunks:
                    continue
                synth_ms = (self._now() - started) / 1e6
                self.agent.pace.saw_synth(synth_ms, len(said.split()))
                if log.isEnabledFor(logging.DEBUG) and (until := self.plays_until_ns()) is not None:
                    left = (until - self._now()) / 1e6
                    log.debug("turn %d: %r voiced in %.0f ms, %.0f ms of audio left", self.turn_id, clause, synth_ms, left)
                self.marks.setdefault("first_tts_audio", self._now())
                await self._out(ReplyText(turn_id=self.turn_id, text=clause))
                for pcm in chunks:
                    frame = AudioFrame(pcm=pcm, sample_rate=eng.tts.sample_rate, timestamp_ns=self._now())
                    await self._out(ReplyAudio(turn_id=self.turn_id, frame=frame))
            finally:
                self._voicing -= 1
