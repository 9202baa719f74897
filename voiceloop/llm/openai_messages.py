"""OpenAI-style chat messages -> voiceloop's history + the user's line."""

from __future__ import annotations

from typing import Any

from .prompt import Message


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def split_context(messages: list[Any]) -> tuple[list[Message], str]:
    """History (user/assistant turns) and the last user line; system and tool messages are skipped.

    Consecutive user messages (a turn pipecat split in two) are joined, as voiceloop's agent does.
    """
    turns: list[Message] = []
    for m in messages:
        if not isinstance(m, dict):
            continue  # provider-specific messages (LLMSpecificMessage) carry nothing for a local model
        role, text = m.get("role"), _text(m.get("content")).strip()
        if role not in ("user", "assistant") or not text:
            continue
        if turns and turns[-1].role == role:
            turns[-1] = Message(role, f"{turns[-1].content} {text}")
        else:
            turns.append(Message(role, text))
    if turns and turns[-1].role == "user":
        return turns[:-1], turns[-1].content
    return turns, ""
