"""OpenAI-compatible streaming backend: llama.cpp server, vLLM, TensorRT-LLM, hosted endpoints.

Blocking, like every backend: call it from a worker thread. Server-sent events are read
line by line; the stop flag is checked between chunks and closes the connection, so
the server stops generating too.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ..errors import VoiceloopError
from .backend import GenerationStats, LLMBackend
from .prompt import SPEECH_SYSTEM_PROMPT, Message, TranscriptPrompt, split_system


class RemoteLLMError(VoiceloopError):
    """The remote endpoint could not be reached, timed out or answered with an error."""


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    url: str = "http://127.0.0.1:8080/v1"
    """Base URL up to and including /v1."""
    model: str = "default"
    api_key: str | None = None
    api: Literal["chat", "completions"] = "chat"
    """chat: /chat/completions with messages (instruction models); completions: /completions with
    voiceloop's transcript prompt (base models such as the embedded Gemma 270M)."""
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    """Longest wait for the first byte and between streamed chunks."""
    system: str = SPEECH_SYSTEM_PROMPT
    temperature: float = 0.0


class RemoteBackend(LLMBackend):
    name = "openai-compatible"

    def __init__(self, options: RemoteOptions | None = None) -> None:
        self.options = o = options or RemoteOptions()
        u = urlsplit(o.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RemoteLLMError(f"not an http(s) URL: {o.url!r}")
        self._u = u
        self.model_path = o.url
        self.prompt = TranscriptPrompt()

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._u.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._u.hostname, self._u.port, timeout=self.options.connect_timeout_s)
        try:
            conn.connect()
        except OSError as exc:
            raise RemoteLLMError(f"cannot reach the LLM server at {self.options.url}: {exc.strerror or exc}") from None
        conn.sock.settimeout(self.options.read_timeout_s)
        return conn

    def _body(
        self,
        history: list[Message],
        user_text: str,
        max_tokens: int,
        tools: list[dict] | None = None,
        after: list[Message] | None = None,
    ) -> tuple[str, dict]:
        o = self.options
        if o.api == "completions":
            return "/completions", {
                "model": o.model,
                "prompt": self.prompt.render(history, user_text, tools=tools, after=after),
                "stop": list(self.prompt.stop),
                "max_tokens": max_tokens,
                "temperature": o.temperature,
                "stream": True,
            }
        system, history = split_system(history)
        messages = [{"role": "system", "content": system or o.system}]
        messages += _openai_after(history)
        messages.append({"role": "user", "content": user_text})
        messages += _openai_after(after or [])
        body = {
            "model": o.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": o.temperature,
            "stream": True,
        }
        if tools:
            body["tools"] = tools  # the standard field; calls come back as delta.tool_calls
        return "/chat/completions", body

    def stream(
        self,
        history: list[Message],
        user_text: str,
        *,
        stop: threading.Event | None = None,
        max_tokens: int = 64,
        stats: GenerationStats | None = None,
        tools: list[dict] | None = None,
        after: list[Message] | None = None,
        tool_choice: str = "auto",
    ) -> Iterator[str]:
        st = stats if stats is not None else GenerationStats()
        path, body = self._body(history, user_text, max_tokens, tools, after)
        if tools and tool_choice != "auto":
            body["tool_choice"] = tool_choice
        calls: dict[int, dict[str, str]] = {}
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        t0 = time.perf_counter_ns()
        conn = self._connect()
        try:
            try:
                conn.request("POST", self._u.path.rstrip("/") + path, json.dumps(body), headers)
                resp = conn.getresponse()
            except TimeoutError:
                raise RemoteLLMError(
                    f"the LLM server at {self.options.url} sent no response within {self.options.read_timeout_s:.0f} s"
                ) from None
            if resp.status != 200:
                detail = resp.read(300).decode("utf-8", "replace").strip()
                raise RemoteLLMError(f"the LLM server at {self.options.url} answered HTTP {resp.status}: {detail}")
            t_first = 0
            while True:
                if stop is not None and stop.is_set():
                    st.cancelled = True
                    st.finish_reason = "cancelled"
                    return
                try:
                    line = resp.readline()
                except TimeoutError:
                    raise RemoteLLMError(
                        f"the LLM server at {self.options.url} stalled for {self.options.read_timeout_s:.0f} s mid-reply"
                    ) from None
                if not line:
                    st.finish_reason = st.finish_reason or "eos"
                    yield from _tagged(calls)
                    return
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    st.finish_reason = st.finish_reason or "stop"
                    yield from _tagged(calls)
                    return
                try:
                    choice = json.loads(data)["choices"][0]
                except (ValueError, KeyError, IndexError):
                    continue
                delta = choice.get("delta") or {}
                for tc in delta.get("tool_calls") or []:
                    # Streamed in pieces: the name first, the arguments' JSON in fragments.
                    acc = calls.setdefault(int(tc.get("index", 0)), {"name": "", "arguments": ""})
                    fn = tc.get("function") or {}
                    acc["name"] += fn.get("name") or ""
                    acc["arguments"] += fn.get("arguments") or ""
                text = choice.get("text") if "text" in choice else delta.get("content")
                if choice.get("finish_reason"):
                    st.finish_reason = choice["finish_reason"]
                if not text:
                    continue
                now = time.perf_counter_ns()
                if not t_first:
                    t_first = now
                    st.ttft_ms = (now - t0) / 1e6
                st.decode_tokens += 1  # one streamed chunk is one token on llama.cpp, vLLM and TRT-LLM
                st.decode_ms = (now - t_first) / 1e6
                yield text
        finally:
            conn.close()  # closing the socket is how a client cancels a streamed completion


def _tagged(calls: dict[int, dict[str, str]]) -> Iterator[str]:
    """OpenAI tool_calls, written the way voiceloop's call filter reads them (``<tool_call>{...}</tool_call>``)."""
    for i in sorted(calls):
        c = calls[i]
        try:
            args = json.loads(c["arguments"] or "{}")
        except ValueError:
            args = c["arguments"]  # left as the server sent it: the call filter reports it malformed
        body = (
            json.dumps({"name": c["name"], "arguments": args})
            if isinstance(args, dict)
            else ('{"name": ' + json.dumps(c["name"]) + ', "arguments": ' + str(args) + "}")
        )
        yield f"<tool_call>\n{body}\n</tool_call>"


def _openai_after(after: list[Message]) -> list[dict]:
    """voiceloop messages as OpenAI ones: assistant calls in tag form become ``tool_calls``, tool results
    ``tool`` messages with the calls' ids; other messages pass as they are."""
    from ..tools.calls import ToolCallFilter

    out: list[dict] = []
    ids: list[str] = []
    for m in after:
        if m.role == "assistant" and "<tool_call>" in m.content:
            f = ToolCallFilter()
            text = f.feed(m.content) + f.flush()
            ids = [f"call_{len(out)}_{i}" for i in range(len(f.calls))]
            out.append(
                {
                    "role": "assistant",
                    "content": text.strip() or None,
                    "tool_calls": [
                        {"id": cid, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                        for cid, c in zip(ids, f.calls, strict=True)
                    ],
                }
            )
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": ids.pop(0) if ids else "call_0", "content": m.content})
        else:
            out.append({"role": m.role, "content": m.content})
    return out
