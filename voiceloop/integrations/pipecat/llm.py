"""voiceloop's LLM backend as a pipecat LLM service.

Generation runs in a worker thread (llama.cpp blocks); text pieces come back through a queue.
pipecat cancels the task processing a data frame when an InterruptionFrame arrives; the
CancelledError sets the backend's stop flag, so the thread stops within one token.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from pipecat.frames.frames import Frame, LLMContextFrame, LLMFullResponseEndFrame, LLMFullResponseStartFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings

from ...llm.backend import GenerationStats, LLMBackend
from ...llm.openai_messages import split_context
from ...llm.prompt import Message
from ...tools.base import Tool
from ...tools.calls import ToolCallFilter
from ...tools.faithful import FollowUpCheck
from ...tools.runner import ToolOptions, ToolRunner
from ...tts.clauses import ClauseOptions, ClauseSplitter
from ._worker import WorkerThread

log = logging.getLogger("voiceloop.pipecat")

_DONE = object()


class VoiceloopLLMService(LLMService):
    """Streams replies from a voiceloop backend (llama.cpp with KV reuse and speculative decoding,
    or any ``LLMBackend``) as LLMFullResponseStartFrame, LLMTextFrame..., LLMFullResponseEndFrame."""

    def __init__(
        self,
        *,
        backend: LLMBackend | None = None,
        max_tokens: int = 64,
        tools: list | None = None,
        tool_options: ToolOptions | None = None,
        **kwargs,
    ) -> None:
        if backend is None:
            from ...llm.llama import LlamaBackend

            backend = LlamaBackend()
        model = str(getattr(backend, "model_path", getattr(backend, "name", "voiceloop")))
        # Greedy decoding (what speculative decoding keeps lossless); the rest does not apply.
        settings = LLMSettings(
            model=model, system_instruction=None, temperature=0.0, max_tokens=max_tokens, top_p=None, top_k=1,
            frequency_penalty=None, presence_penalty=None, seed=None, filter_incomplete_user_turns=False,
            user_turn_completion_config=None,
        )  # fmt: skip
        kwargs.setdefault("settings", settings)
        super().__init__(**kwargs)
        self.backend = backend
        self.max_tokens = max_tokens
        self._vl_worker = WorkerThread("voiceloop-pipecat-llm")
        self.last_stats: GenerationStats | None = None
        """Timings of the latest reply (ttft, tokens/s, reuse, drafted/accepted, cancelled)."""
        self.cancelled_replies = 0
        flat: list[Tool] = []
        for t in tools or ():
            flat += [t] if isinstance(t, Tool) else t.tools()
        self.tool_runner = ToolRunner(flat, tool_options) if flat else None
        """voiceloop tools (``@tool``, built-ins): called, run and answered inside this service, as in the agent."""
        self.tool_records: list[dict] = []
        """The latest reply's tool calls (name, arguments, result, ms)."""
        self.conversation: list[Message] = []
        """The latest context with its reply: what the next turn's prompt starts with (a turn analyzer
        scoring the user's line against it keeps the KV cache for the reply)."""

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self.push_frame(LLMFullResponseStartFrame())
            await self.start_processing_metrics()
            try:
                await self._generate(frame)
            finally:
                await self.stop_processing_metrics()
                await self.push_frame(LLMFullResponseEndFrame())
        else:
            await self.push_frame(frame, direction)

    async def _generate(self, frame: LLMContextFrame) -> None:
        history, user = split_context(frame.context.get_messages())
        if not user:
            log.debug("context ends without a user line; nothing to answer")
            return
        runner = self.tool_runner
        self.tool_records = []
        after: list[Message] = []
        reply: list[str] = []
        stats = self.last_stats = GenerationStats()
        await self.start_ttfb_metrics()
        rounds = runner.options.max_rounds if runner is not None else 0
        for rnd in range(rounds + 1):
            calls = await self._one_pass(
                history, user, after, reply, stats if not after else GenerationStats(), last=rnd == rounds
            )
            if not calls or runner is None:
                break
            if rnd == rounds:
                await self._push_llm_text("Sorry, I could not finish that.")
                break
            task = asyncio.ensure_future(asyncio.gather(*[runner.run(c) for c in calls]))
            done, _ = await asyncio.wait({task}, timeout=runner.options.filler_after_ms / 1000)
            if not done:
                self.tool_records.append({"filler": runner.options.filler})
                await self._push_llm_text(runner.options.filler + " ")
            results = await task
            self.tool_records += [r.record() for r in results]
            after += [Message("assistant", "\n".join(c.raw for c in calls))]
            after += [Message("tool", r.content) for r in results]
        # The tool round stays in the history, as in VoiceAgent (a model that sees answers without their calls
        # imitates them).
        self.conversation = [*history, Message("user", user), *after, Message("assistant", "".join(reply).strip())]

    async def _one_pass(
        self,
        history: list[Message],
        user: str,
        after: list[Message],
        reply: list[str],
        stats: GenerationStats,
        *,
        last: bool = False,
    ) -> list:
        """One generation: text is pushed as it streams, tool calls are held back and returned."""
        loop = asyncio.get_running_loop()
        # At most max_tokens pieces come back, so this queue is bounded by the reply length.
        pieces: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        extra: dict = {}
        if self.tool_runner is not None:
            extra["tools"] = self.tool_runner.schemas()
        if after:
            extra["after"] = after
        if last and self.tool_runner is not None:
            extra["tool_choice"] = "none"  # the last round answers with what the tools returned

        def work() -> None:
            try:
                for piece in self.backend.stream(history, user, stop=stop, max_tokens=self.max_tokens, stats=stats, **extra):
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
            except Exception as exc:
                loop.call_soon_threadsafe(pieces.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _DONE)

        future = loop.run_in_executor(self._vl_worker.get(), work)
        calls = ToolCallFilter()
        first = True
        # After tool results the answer goes out clause by clause, each checked against the results as in
        # VoiceAgent (voiceloop.tools.faithful): the first clause that invents a number ends this pass.
        check = FollowUpCheck(user, after) if after else None
        # Whole clauses, as the agent's follow-ups: the first one is not cut after two words either.
        clauses = ClauseSplitter(ClauseOptions(first_max_words=ClauseOptions().max_words)) if after else None

        async def out(text: str) -> None:
            if clauses is None:
                reply.append(text)
                await self._push_llm_text(text)
                return
            for clause in clauses.feed(text):
                await checked(clause)

        async def checked(clause: str) -> None:
            if check is None or stop.is_set():
                return
            said = check.check(clause)
            if check.stopped:
                stop.set()  # the worker stops before its next token
                self.tool_records.append(check.invented)
            if said is not None:
                reply.append(said + " ")
                await self._push_llm_text(said + " ")

        try:
            while True:
                item = await pieces.get()
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    await self.push_error(error_msg=f"voiceloop LLM failed: {item}", exception=item)
                    break
                if first:
                    await self.stop_ttfb_metrics()
                    first = False
                text = calls.feed(str(item))
                if text:
                    await out(text)
            tail = calls.flush()
            if tail:
                await out(tail)
            if clauses is not None and (rest := clauses.flush()):
                await checked(rest)
        except asyncio.CancelledError:
            stop.set()  # pipecat interruption: the worker stops before its next token
            self.cancelled_replies += 1
            # Return only once it has: a new reply must not queue behind a zombie generation.
            await asyncio.wait({future}, timeout=2.0)
            raise
        await future
        return calls.calls

    async def cleanup(self) -> None:
        await super().cleanup()
        self._vl_worker.shutdown()
        if self.tool_runner is not None:
            self.tool_runner.close()
