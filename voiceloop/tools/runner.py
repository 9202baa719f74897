"""Running tool calls: off the event loop, with a timeout, cancellable, timed."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .base import Tool
from .calls import ToolCall, check_call

log = logging.getLogger("voiceloop.tools")


@dataclass(frozen=True, slots=True)
class ToolOptions:
    filler_after_ms: float = 300.0
    """A result slower than this gets a short filler clause spoken first."""
    filler: str = "One moment."
    max_rounds: int = 2
    """Tool rounds per turn (call, result, follow-up); then the model must answer."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    call: ToolCall
    ok: bool
    content: str
    """What the model is told: the result as JSON, or the error."""
    ms: float

    def record(self) -> dict[str, Any]:
        """The turn record's entry (``turns[].tools``)."""
        return {
            "name": self.call.name,
            "arguments": self.call.arguments,
            "result": self.content,
            "ok": self.ok,
            "ms": round(self.ms, 1),
        }


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except TypeError:
        return str(value)


class ToolRunner:
    """Checks and runs calls. Sync tools run on the runner's own threads (never the event loop);
    async ones on the loop. Both are bounded by the tool's ``timeout_s``; cancelling the awaiting task
    (barge-in) cancels an async tool, and a sync one's result is dropped when it returns."""

    def __init__(self, tools: Iterable[Tool], options: ToolOptions | None = None) -> None:
        self.tools = {t.name: t for t in tools}
        self.options = options or ToolOptions()
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="voiceloop-tool")

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    def check(self, call: ToolCall) -> ToolCall:
        return check_call(call, self.tools)

    async def run(self, call: ToolCall) -> ToolResult:
        t0 = time.perf_counter_ns()
        call = self.check(call)

        def done(ok: bool, content: str) -> ToolResult:
            ms = (time.perf_counter_ns() - t0) / 1e6
            log.debug("tool %s(%s) -> %s in %.0f ms", call.name, call.arguments, content[:80], ms)
            return ToolResult(call, ok, content, ms)

        if call.error:
            return done(False, f"error: {call.error}")
        tool = self.tools[call.name]
        try:
            if tool.is_async:
                value = await asyncio.wait_for(tool.fn(**call.arguments), tool.timeout_s)
            else:
                loop = asyncio.get_running_loop()
                fut = loop.run_in_executor(self._executor, functools.partial(tool.fn, **call.arguments))
                value = await asyncio.wait_for(fut, tool.timeout_s)
        except TimeoutError:
            return done(False, f"error: {call.name} did not answer within {tool.timeout_s:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return done(False, f"error: {call.name} failed: {exc}")
        return done(True, _to_text(value))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
