"""The backend interface every LLM engine implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .prompt import Message


@dataclass(slots=True)
class GenerationStats:
    """Timings of one reply, filled in while it streams."""

    prompt_tokens: int = 0
    reused_tokens: int = 0
    """Prompt tokens served from the KV cache (not evaluated again)."""
    evaluated_tokens: int = 0
    prompt_ms: float = 0.0
    """Preparing and evaluating the prompt's new tokens (part of ``ttft_ms``)."""
    wait_ms: float = 0.0
    """Waiting for the model (another call held it) before ``ttft_ms`` starts."""
    ttft_ms: float = 0.0
    decode_tokens: int = 0
    decode_ms: float = 0.0
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    cancelled: bool = False
    finish_reason: str = ""
    read_back_retries: int = 0
    """Replies thrown away unheard because they read the user's line back (``voiceloop.llm.readback``)."""
    call_probability: float | None = None
    """The model's probability of opening a tool call (read on the request alone); None when no tools were offered."""
    call_judged: float | None = None
    """The call judge's P(yes) (the message asks for one of the tools), when it was asked: a call under
    ``LlamaOptions.tool_call_sure``."""
    call_decision: str = ""
    """How the tool decision went: "call", "answer", "unsure: kept" or "unsure: dropped" (the call written unseen
    and judged on its arguments, ``voiceloop.tools.grounding``); "" when no tools were offered."""
    call_written: str = ""
    call_token_probs: list[tuple[str, float]] = field(default_factory=list)
    """The call's last writing, token by token: its text and the model's own probability of it before the
    tools' grammar masks the rest (how sure the model was of the tool's name and of each value)."""
    """Where a call decided on the request alone was written: "alone", or "conversation" (not grounded alone)."""
    on_prompt: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    """Called on the LLM's thread once the prompt is evaluated: from then on ``turn_signals`` can be read, even
    when the first token comes much later (a tool call written unseen before it is kept)."""
    on_call_start: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    """Called on the LLM's thread when the model starts writing a tool call, also one written unseen (an unsure
    call is kept only once it is whole, ~1 s later): the caller's filler clock starts here, not at the call's
    first visible token."""

    @property
    def tok_s(self) -> float:
        """Decode speed after the first token (``decode_ms`` runs from the first token to the last)."""
        return (self.decode_tokens - 1) / (self.decode_ms / 1000.0) if self.decode_ms > 0 else 0.0

    @property
    def acceptance(self) -> float:
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else 0.0


class LLMBackend(ABC):
    """Streams a reply as text pieces. Blocking: call it from a worker thread.

    ``stop`` is checked between tokens, so setting it ends generation within one token.
    """

    name: str = "llm"

    @abstractmethod
    def stream(
        self,
        history: list[Message],
        user_text: str,
        *,
        stop: threading.Event | None = None,
        max_tokens: int = 64,
        stats: GenerationStats | None = None,
        tools: list[dict[str, Any]] | None = None,
        after: list[Message] | None = None,
        tool_choice: str = "auto",
    ) -> Iterator[str]:
        """The reply to ``user_text`` after ``history``, as text pieces.

        ``tools``: JSON schemas (OpenAI ``tools`` entries) the model may call; a call comes back in the text
        as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (voiceloop.tools.calls parses it).
        ``after``: messages after the user's line in this turn (the assistant's calls and the ``tool``
        results), for the follow-up once tools have answered. ``tool_choice``: ``"none"`` = the tools stay in
        the prompt (its cache too) but the reply must be text (the last round). All are passed only when used."""

    def turn_signals(self, history: list[Message], user_text: str) -> dict[str, float] | None:
        """End-of-turn probabilities the model read while evaluating this prompt (``stream``): ``eom``, the
        chat template's end-of-message token right after the user's words; ``punct``, a sentence end right
        after the words without their final mark. None when the backend cannot tell (no logits)."""
        return None

    def prefill(  # noqa: B027 - optional
        self, history: list[Message], user_text: str, tools: list[dict[str, Any]] | None = None
    ) -> None:
        """Evaluate a partial prompt ahead of time (KV cache warm-up); optional."""

    def yield_to_reply(self) -> None:  # noqa: B027 - optional
        """A reply is about to be generated: cut short background work (prefill) at its next step.

        Called from the event loop, so it only sets a flag; thread-safe."""

    def resume_background(self) -> None:  # noqa: B027 - optional
        """The reply ``yield_to_reply`` announced will not come (the user went on): background work may run again.
        Thread-safe."""
