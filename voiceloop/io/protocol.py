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


@dataclass(frozen=True, slots=True)
class Hello:
    sample_rate: int
    version: int = PROTOCOL_VERSION


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


def parse_hello(msg: dict[str, Any]) -> Hello:
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
    return Hello(sample_rate=rate, version=version)


def dumps(msg_type: str, **fields: Any) -> str:
    return json.dumps({"type": msg_type, **fields})
