"""The websocket bridge protocol, version 1.

Every JSON message is an object with a ``type``. Binary messages are raw audio:
client -> server ``pcm_s16le`` mono at the rate announced in ``hello``;
server -> client ``pcm_s16le`` mono at the rate announced in ``ready``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_MESSAGE_BYTES = 64 * 1024
"""Largest websocket message: about 0.7 s of 48 kHz audio; send audio in 20-100 ms frames."""

CLIENT_TYPES = ("hello", "interrupt", "bye")


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal


STRATEGIES = ("speculative", "sequential")
MAX_SYSTEM_CHARS = 4000
"""A persona is a paragraph; a longer one costs its prompt evaluation on every cold start."""


@dataclass(frozen=True, slots=True)
class Settings:
    """A session's optional settings, sent in ``hello``; None = the server's default."""

    strategy: str | None = None
    system: str | None = None
    model: str | None = None
    tools: bool | None = None


@dataclass(frozen=True, slots=True)
class Hello:
    sample_rate: int
    version: int = PROTOCOL_VERSION
    settings: Settings = Settings()
    setting_errors: tuple[ProtocolError, ...] = ()
    """Bad optional settings: each is reported and the server's default is used instead (not fatal)."""


def parse_json(text: str) -> dict[str, Any]:
    try:
        msg = json.loads(text)
    except ValueError:
        raise ProtocolError("bad_json", "message is not valid JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("bad_message", 'a JSON message must be an object with a string "type"')
    if msg["type"] not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {msg['type']!r}; expected one of {CLIENT_TYPES}")
    return msg


def parse_hello(msg: dict[str, Any], models: tuple[str, ...] = (), *, tools: bool = True) -> Hello:
    version = msg.get("version", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {version!r} not supported; use {PROTOCOL_VERSION}", fatal=True)
    if msg.get("encoding", "pcm_s16le") != "pcm_s16le":
        raise ProtocolError("bad_encoding", 'only encoding "pcm_s16le" is supported', fatal=True)
    if msg.get("channels", 1) != 1:
        raise ProtocolError("bad_channels", "only mono audio (channels: 1) is supported", fatal=True)
    rate = msg.get("sample_rate")
    if not isinstance(rate, int) or rate not in SUPPORTED_RATES:
        raise ProtocolError(
            "bad_sample_rate", f"sample_rate {rate!r} not supported; use one of {list(SUPPORTED_RATES)}", fatal=True
        )
    settings, errors = parse_settings(msg, models, tools=tools)
    return Hello(sample_rate=rate, version=version, settings=settings, setting_errors=tuple(errors))


def parse_settings(
    msg: dict[str, Any], models: tuple[str, ...] = (), *, tools: bool = True
) -> tuple[Settings, list[ProtocolError]]:
    """The optional settings of ``hello``; a bad one is dropped (the default applies) with a ``bad_setting`` error.

    A bad setting is not fatal: the audio format decides whether the stream can be understood at all,
    a setting only how it is answered, so the session goes on and the client is told what was ignored.
    """
    errors: list[ProtocolError] = []
    values: dict[str, Any] = {}

    def bad(name: str, problem: str) -> None:
        errors.append(ProtocolError("bad_setting", f"setting {name!r}: {problem}; the server's default is used"))

    if (v := msg.get("strategy")) is not None:
        if v in STRATEGIES:
            values["strategy"] = v
        else:
            bad("strategy", f"{v!r} is not one of {', '.join(STRATEGIES)}")
    if (v := msg.get("system")) is not None:
        if not isinstance(v, str):
            bad("system", "must be a string")
        elif len(v) > MAX_SYSTEM_CHARS:
            bad("system", f"{len(v)} characters; at most {MAX_SYSTEM_CHARS}")
        elif v.strip():
            values["system"] = v.strip()
    if (v := msg.get("model")) is not None:
        if v in models:
            values["model"] = v
        else:
            bad("model", f"{v!r} is not loaded by this server; choose one of {', '.join(models) or '(none)'}")
    if (v := msg.get("tools")) is not None:
        if not isinstance(v, bool):
            bad("tools", "must be true or false")
        elif v and not tools:
            bad("tools", "this server offers no tools")
        else:
            values["tools"] = v
    return Settings(**values), errors


def dumps(msg_type: str, **fields: Any) -> str:
    return json.dumps({"type": msg_type, **fields})
