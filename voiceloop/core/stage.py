"""The stage interface: an async iterable in, an async iterable out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Stage(ABC, Generic[In, Out]):
    """One step of a pipeline, e.g. ``stt(audio) -> events`` or ``tts(text) -> frames``.

    ``process`` consumes its input lazily and yields as soon as it has output,
    so stages overlap: the TTS stage speaks clause one while the LLM writes clause two.
    """

    name: str = "stage"

    @abstractmethod
    def process(self, inputs: AsyncIterable[In]) -> AsyncIterator[Out]: ...

    async def aclose(self) -> None:
        """Release resources; called once when the pipeline stops."""


class FunctionStage(Stage[Any, Any]):
    """Wraps an async generator function ``f(inputs) -> outputs`` as a stage."""

    def __init__(self, fn: Any, *, name: str = "function") -> None:
        self._fn = fn
        self.name = name

    def process(self, inputs: AsyncIterable[Any]) -> AsyncIterator[Any]:
        return self._fn(inputs)
