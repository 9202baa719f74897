"""Tool calls in a streamed reply: recognised before any of them reaches the TTS, then checked.

Qwen2.5's chat template (and the prompt format voiceloop documents for models without one) has the
model write ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``. ``ToolCallFilter`` passes
plain text through as it streams, holds back anything that could be the start of that tag, and
collects each call; ``check_call`` validates one against the declared tools.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..llm.prompt import RECAP_CALL
from .base import Tool

OPEN, CLOSE = "<tool_call>", "</tool_call>"
ALT_OPEN, ALT_CLOSE = "<tools>", "</tools>"


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw: str = ""
    """The text the model wrote for it (kept in the history so the model sees its own call)."""
    error: str | None = None
    """Why the call cannot run (malformed JSON, unknown tool, wrong arguments); None when it can."""


def _parse(body: str) -> ToolCall:
    raw = f"{OPEN}\n{body.strip()}\n{CLOSE}"
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        return ToolCall(name="", raw=raw, error=f"the tool call is not valid JSON ({exc.msg} at {exc.pos})")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return ToolCall(name="", raw=raw, error='a tool call is {"name": ..., "arguments": {...}}')
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return ToolCall(name=obj["name"], raw=raw, error="the arguments are not a JSON object")
    if not isinstance(args, dict):
        return ToolCall(name=obj["name"], raw=raw, error="the arguments are not a JSON object")
    return ToolCall(name=obj["name"], arguments=args, raw=raw)


class ToolCallFilter:
    """Streams text through, minus tool calls. ``feed`` returns the speakable text; calls accumulate.

    Besides the tagged form, a reply that *starts* with a bare JSON object, a ``<tools>`` wrapper or the
    conversation recap's call label (``You called: {...}``) is read as a call: small models (the embedded
    Qwen2.5-Coder repackagings) often drop the tags, or copy the recap's form. Text that only starts like that
    and is not a call is passed on once that is clear."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self._buf = ""
        self._in_call = False
        self._close = CLOSE
        self._start = True  # nothing but whitespace seen yet
        self._bare = False  # inside a bare JSON object at the reply's start
        self.started = False
        """A call has begun: the reply is an action, not an answer."""

    def feed(self, piece: str) -> str:
        self._buf += piece
        out = []
        while True:
            if self._start:
                head = self._buf.lstrip()
                if not head:
                    return ""
                if head.startswith(RECAP_CALL) and head[len(RECAP_CALL) :].lstrip()[:1] not in ("", "{"):
                    self._start = False  # the label, then words: a reply like any other
                elif head.startswith(RECAP_CALL):
                    if not head[len(RECAP_CALL) :].strip():
                        return ""  # the object has not started yet
                    body = head[len(RECAP_CALL) :].lstrip()
                    self._start, self._bare, self._buf, self.started = False, True, body, True
                elif head.startswith("{"):
                    self._start, self._bare, self._buf, self.started = False, True, head, True
                elif head.startswith(ALT_OPEN):
                    self._start, self._buf = False, head[len(ALT_OPEN) :]
                    self._in_call, self._close, self.started = True, ALT_CLOSE, True
                elif ALT_OPEN.startswith(head) or OPEN.startswith(head) or RECAP_CALL.startswith(head):
                    return ""  # could still become a tag (or the recap's label)
                else:
                    self._start = False
            if self._bare:
                end = _json_end(self._buf)
                if end is None:
                    return "".join(out)
                call = _parse(self._buf[:end])
                if call.error and '"name"' not in self._buf[:end]:
                    out.append(self._buf[:end])  # a brace that was not a call
                else:
                    self.calls.append(call)
                self._buf, self._bare = self._buf[end:], False
                continue
            if self._in_call:
                end = self._buf.find(self._close)
                if end < 0:
                    return "".join(out)
                body = self._buf[:end]
                if body.strip():
                    self.calls.append(_parse(body))
                else:
                    self.calls.append(ToolCall(name="", raw=f"{OPEN}\n{CLOSE}", error="the tool call was empty"))
                self._buf = self._buf[end + len(self._close) :]
                self._in_call, self._close = False, CLOSE
                continue
            start = self._buf.find(OPEN)
            if start >= 0:
                out.append(self._buf[:start])
                self._buf = self._buf[start + len(OPEN) :]
                self._in_call = self.started = True
                continue
            # Hold back a tail that could still become the opening tag ("<tool" ...).
            keep = 0
            for k in range(min(len(OPEN) - 1, len(self._buf)), 0, -1):
                if OPEN.startswith(self._buf[-k:]):
                    keep = k
                    break
            out.append(self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            return "".join(out)

    def flush(self) -> str:
        """End of the reply: an unterminated call is parsed as far as it goes (and usually fails)."""
        rest, self._buf = self._buf, ""
        if self._in_call or self._bare:
            self._in_call = self._bare = False
            body = rest.strip()
            call = _parse(body)
            if call.error and body:
                call = ToolCall(call.name, raw=call.raw, error=f"the tool call was cut off: {call.error}")
            self.calls.append(call)
            return ""
        if self._start and not rest.strip():
            return ""
        # A reply cut off (by the token limit) while a call's tag was being written ("…airport.\n\n<tool"): the
        # held-back fragment is the start of a call, not words to speak.
        tail = rest.rstrip()
        for tag in (OPEN, ALT_OPEN):
            for k in range(len(tag) - 1, 1, -1):
                if tail.endswith(tag[:k]):
                    return tail[:-k].rstrip()
        return rest


def _json_end(text: str) -> int | None:
    """Index just past the JSON object that starts ``text``, or None while it is still open."""
    depth, in_str, esc = 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def _coerce(value: Any, schema: dict[str, Any]) -> tuple[Any, str | None]:
    t = schema.get("type")
    if "enum" in schema and value not in schema["enum"]:
        return value, f"must be one of {schema['enum']}"
    if t == "string":
        return (value, None) if isinstance(value, str) else (str(value), None)
    if t in ("number", "integer"):
        if isinstance(value, bool):
            return value, f"must be a {t}"
        if isinstance(value, str):
            try:
                value = float(value.replace(",", "").strip())
            except ValueError:
                return value, f"must be a {t}"
        if not isinstance(value, int | float):
            return value, f"must be a {t}"
        if t == "integer":
            if float(value) != int(value):
                return value, "must be a whole number"
            return int(value), None
        return value, None
    if t == "boolean":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", None
        return value, "must be true or false"
    if t == "array":
        return (value, None) if isinstance(value, list) else (value, "must be a list")
    return value, None


def check_call(call: ToolCall, tools: dict[str, Tool]) -> ToolCall:
    """The call with its arguments coerced to the declared types, or with ``error`` set."""
    if call.error:
        return call
    tool = tools.get(call.name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return ToolCall(call.name, call.arguments, call.raw, f"there is no tool named {call.name!r} (tools: {known})")
    props = tool.parameters.get("properties", {})
    args: dict[str, Any] = {}
    problems = []
    for key, value in call.arguments.items():
        if key not in props:
            problems.append(f"unknown argument {key!r}")
            continue
        if value is None:
            continue
        coerced, err = _coerce(value, props[key])
        if err:
            problems.append(f"{key} {err}")
        args[key] = coerced
    missing = [k for k in tool.parameters.get("required", []) if k not in args]
    problems += [f"missing argument {k!r}" for k in missing]
    if problems:
        return ToolCall(call.name, call.arguments, call.raw, f"{call.name}: " + "; ".join(problems))
    return ToolCall(call.name, args, call.raw)
