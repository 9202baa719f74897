"""What of the conversation so far goes into the prompt for the user's new line."""

from __future__ import annotations

from ..llm.prompt import Message
from ..metrics.wer import same_request


def without_cut_retry(history: list[Message], user_text: str) -> tuple[list[Message], int]:
    """The history for ``user_text``, without the last exchange when the user cut its reply short and now asks
    the same again; also how many messages were left out (0 if none).

    Someone who talks over an answer and repeats the question wants the answer, but a prompt that shows the
    question answered with the fragment that played ("Sure,") teaches a small model that the fragment is the
    whole answer: in a Twilio call the repeat was answered "Sure," again. The retry replaces the cut exchange.
    """
    if not history or history[-1].role != "assistant" or not history[-1].cut:
        return history, 0
    start = len(history) - 1
    while start > 0 and history[start].role != "user":
        start -= 1  # past the exchange's tool calls and results to its request
    if history[start].role != "user" or not same_request(history[start].content, user_text):
        return history, 0
    return history[:start], len(history) - start
