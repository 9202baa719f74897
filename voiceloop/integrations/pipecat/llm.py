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
from ._worker import WorkerThread

log = logging.getLogger("voiceloop.pipecat")

_DONE = object()


class VoiceloopLLMService(LLMService):
    """Streams replies from a voiceloop backend (llama.cpp with KV reuse and speculative decoding,
    or any ``LLMBackend``) as LLMFullResponseStartFrame, LLMTextFrame..., LLMFullResponseEndFrame."""

    def __init__(self, *, backend: LLMBackend | None = None, max_tokens: int = 64, **kwargs) -> None:
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
        loop = asyncio.get_running_loop()
        # At most max_tokens pieces come back, so this queue is bounded by the reply length.
        pieces: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        stats = self.last_stats = GenerationStats()

        def work() -> None:
            try:
                for piece in self.backend.stream(history, user, stop=stop, max_tokens=self.max_tokens, stats=stats):
                    loop.call_soon_threadsafe(pieces.put_nowait, piece)
            except Exception as exc:
                loop.call_soon_threadsafe(pieces.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(pieces.put_nowait, _DONE)

        await self.start_ttfb_metrics()
        future = loop.run_in_executor(self._vl_worker.get(), work)
        first = True
        reply: list[str] = []
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
                reply.append(str(item))
                await self._push_llm_text(str(item))
        except asyncio.CancelledError:
            stop.set()  # pipecat interruption: the worker stops before its next token
            self.cancelled_replies += 1
            # Return only once it has: a new reply must not queue behind a zombie generation.
            await asyncio.wait({future}, timeout=2.0)
            raise
        await future
        self.conversation = [*history, Message("user", user), Message("assistant", "".join(reply).strip())]

    async def cleanup(self) -> None:
        await super().cleanup()
        self._vl_worker.shutdown()
