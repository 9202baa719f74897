"""Runs stages concurrently, joined by bounded queues.

Each stage is its own task; a full queue makes the producer wait (backpressure)
instead of letting memory grow. Cancelling :meth:`Pipeline.run` cancels every
stage task, and stages pass cancellation on to their worker threads through
stop flags.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

from .stage import Stage

log = logging.getLogger("voiceloop.pipeline")

_END = object()


async def _drain_queue(queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    while True:
        item = await queue.get()
        if item is _END:
            return
        yield item


class Pipeline:
    """``Pipeline([vad, asr, llm, tts]).run(source)`` yields the last stage's output."""

    def __init__(self, stages: Sequence[Stage[Any, Any]], *, queue_size: int = 64) -> None:
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1 (queues are bounded)")
        self.stages = list(stages)
        self.queue_size = queue_size

    async def run(self, source: AsyncIterable[Any]) -> AsyncIterator[Any]:
        queues: list[asyncio.Queue[Any]] = [asyncio.Queue(self.queue_size) for _ in self.stages]
        tasks: list[asyncio.Task[None]] = []

        async def pump(items: AsyncIterable[Any], out: asyncio.Queue[Any]) -> None:
            try:
                async for item in items:
                    await out.put(item)
            finally:
                # Never block on shutdown: drop one item if needed so the end marker fits.
                if out.full():
                    out.get_nowait()
                out.put_nowait(_END)

        upstream: AsyncIterable[Any] = source
        for stage, queue in zip(self.stages, queues, strict=True):
            tasks.append(asyncio.create_task(pump(stage.process(upstream), queue), name=stage.name))
            upstream = _drain_queue(queue)
        try:
            async for item in upstream:
                yield item
            for task in tasks:
                await task  # re-raise a stage's exception
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for stage in self.stages:
                await stage.aclose()
