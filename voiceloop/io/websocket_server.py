"""The websocket audio bridge: one conversation per connection, models shared.

Security and limits: a token is required off loopback and checked before the
websocket upgrade (no audio is processed for a wrong one); browser Origins are
checked; messages are capped at ``MAX_MESSAGE_BYTES``; sessions are capped
(extra connections are closed with 1013 and a reason); idle connections are
closed; websockets' ping/pong keepalive drops dead peers. A bad message gets an
``error`` event and, where the stream cannot go on, a close; it never touches
another session.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..audio.mulaw import mulaw_decode, mulaw_encode
from ..audio.resample import resample
from ..core.clock import DEFAULT_CLOCK, Clock
from ..core.events import Interrupted, ReplyAudio, ReplyText, SpeechStarted, Transcript, TurnMetrics
from ..core.frames import AudioFrame
from ..errors import ConfigError
from ..pipeline.agent import AgentOptions, VoiceAgent
from ..pipeline.engines import Engines
from ..turn.base import EndpointingPolicy
from .protocol import (
    MAX_MESSAGE_BYTES,
    MAX_SYSTEM_CHARS,
    PROTOCOL_VERSION,
    STRATEGIES,
    ProtocolError,
    Settings,
    dumps,
    parse_hello,
    parse_json,
)

log = logging.getLogger("voiceloop.serve")

CLOSE_BUSY = 1013
CLOSE_POLICY = 1008
CLOSE_IDLE = 4408
REPLY_CHUNK_MS = 100


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_sessions: int = 4
    idle_timeout_s: float = 60.0
    hello_timeout_s: float = 10.0
    allowed_origins: tuple[str, ...] = ()
    """Extra browser Origins allowed besides the server's own address."""
    inbox_frames: int = 250
    """Audio frames queued per session before the oldest are dropped (bounded memory)."""
    agent: AgentOptions = field(default_factory=AgentOptions)
    endpointing: EndpointingPolicy | None = None
    """The end-of-turn policy for every session (stateless, shared); None = the agent's default."""
    tools: Callable[[], list] | None = None
    """Makes each session's tools (a session's timers are its own); None = no tools available."""
    tools_on: bool = True
    """Whether a session gets the tools when its ``hello`` does not say (``tools: true|false``)."""


class BridgeServer:
    def __init__(
        self,
        engines: Engines,
        options: BridgeOptions | None = None,
        *,
        clock: Clock = DEFAULT_CLOCK,
        models: Mapping[str, Engines] | None = None,
    ) -> None:
        """``models``: more LLMs a client may choose with ``hello``'s ``model`` (see ``Engines.with_llm``);
        ``engines``' own LLM is the default."""
        self.engines = engines
        self.models: dict[str, Engines] = {engines.llm_name: engines, **(models or {})}
        self.options = o = options or BridgeOptions()
        if not is_loopback(o.host) and not o.token:
            raise ConfigError(
                f"refusing to listen on non-loopback address {o.host!r} without a token: pass --token "
                "(or set VOICELOOP_TOKEN); clients then connect with ?token=..."
            )
        self.clock = clock
        self.sessions: dict[str, _Session] = {}
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._system: dict[str, object] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def settings(self, asked: Settings | None = None) -> dict[str, object]:
        """The settings in force for a session that asked for ``asked`` (None fields: the server's defaults)."""
        o, a = self.options, asked or Settings()
        model = a.model or self.engines.llm_name
        return {
            "strategy": a.strategy or o.agent.strategy,
            "system": a.system or o.agent.system or self._default_system(model),
            "model": model,
            "tools": bool(o.tools) and (o.tools_on if a.tools is None else a.tools),
        }

    def offer(self) -> dict[str, object]:
        """What a client may choose, and the defaults (served as ``/settings.json`` for the page's form)."""
        return {
            "protocol": PROTOCOL_VERSION,
            "defaults": self.settings(),
            "choices": {
                "strategy": list(STRATEGIES),
                "model": list(self.models),
                "tools": [False, True] if self.options.tools else [False],
                "system_max_chars": MAX_SYSTEM_CHARS,
            },
        }

    def _default_system(self, model: str) -> str:
        """The model's own default persona (the speech prompt for chat models; '' for a transcript prompt)."""
        prompt = getattr(self.models[model].llm, "prompt", None)
        return getattr(prompt, "system", "") or ""

    def system_info(self) -> dict[str, object]:
        """The machine and the models, as ``voiceloop profile`` reports them (for the page's export)."""
        if self._system is None:
            from ..profile.runner import system_info

            self._system = system_info(self.engines)
        return self._system

    def new_agent(self, settings: Settings | None = None) -> VoiceAgent:
        """One conversation: the bridge's options with the session's settings, and a fresh set of tools."""
        o, s = self.options, self.settings(settings)
        # The default persona stays None: the backend renders it (and its cached prompt prefix) itself.
        system = s["system"] if s["system"] != self._default_system(str(s["model"])) else None
        agent_options = replace(o.agent, strategy=s["strategy"], system=system or None)
        return VoiceAgent(
            engines=self.models[str(s["model"])],
            options=agent_options,
            clock=self.clock,
            # A sequential session waits a fixed silence: the speculative policy's holds mean nothing there.
            endpointing=o.endpointing if s["strategy"] == "speculative" else None,
            tools=o.tools() if s["tools"] and o.tools else None,
        )

    def _origins(self, port: int) -> list[str | None]:
        hosts = {self.options.host, "127.0.0.1", "localhost"}
        return [None, *(f"http://{h}:{port}" for h in hosts), *self.options.allowed_origins]

    async def start(self) -> None:
        o = self.options
        self._server = await serve(
            self._handle,
            o.host,
            o.port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=20,
            ping_timeout=20,
        )
        self.system_info()  # once, before the first session waits for it
        # Origins need the real port (0 = any free port in tests): check them ourselves.
        log.info("voiceloop bridge on ws://%s:%d (max %d sessions)", o.host, self.port, o.max_sessions)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for s in list(self.sessions.values()):
            await s.stop()

    async def serve_forever(self) -> None:
        await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    # -- HTTP side: the page, the token and the Origin, before any websocket exists -------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            if url.path in ("/", "/index.html"):
                body = resources.files("voiceloop.io").joinpath("static/index.html").read_bytes()
                headers = Headers([("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
                return Response(HTTPStatus.OK, "OK", headers, body)
            if url.path == "/settings.json":
                body = json.dumps(self.offer()).encode()
                headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return Response(HTTPStatus.OK, "OK", headers, body)
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if self.options.token:
            given = parse_qs(url.query).get("token", [""])[0]
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[7:]
            if not hmac.compare_digest(given.encode(), self.options.token.encode()):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
        origin = request.headers.get("Origin")
        if origin not in self._origins(self.port):
            return connection.respond(HTTPStatus.FORBIDDEN, f"origin {origin} not allowed\n")
        return None

    # -- one connection = one conversation ---------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        if len(self.sessions) >= self.options.max_sessions:
            await ws.close(CLOSE_BUSY, f"server busy: {self.options.max_sessions} sessions is the maximum")
            return
        sid = f"s{next(self._ids)}"
        path = urlsplit(ws.request.path).path if ws.request else "/ws"
        session = (_TwilioSession if path == "/twilio" else _Session)(self, ws, sid)
        self.sessions[sid] = session
        try:
            await session.run()
        finally:
            await session.stop()
            self.sessions.pop(sid, None)
            log.info("session %s closed (dropped %d input frames)", sid, session.dropped)


class _Session:
    def __init__(self, server: BridgeServer, ws: ServerConnection, sid: str) -> None:
        self.server = server
        self.ws = ws
        self.id = sid
        self.inbox: asyncio.Queue[AudioFrame | None] = asyncio.Queue(server.options.inbox_frames)
        self.dropped = 0
        self.agent: VoiceAgent | None = None
        self._events: asyncio.Task[None] | None = None
        self._t0: int | None = None
        self._interrupted: set[int] = set()

    async def error(self, code: str, message: str, *, close: bool = False) -> None:
        try:
            await self.ws.send(dumps("error", code=code, message=message))
            if close:
                await self.ws.close(CLOSE_POLICY, message[:120])
        except ConnectionClosed:
            pass

    async def run(self) -> None:
        o = self.server.options
        try:
            hello = await self._hello(o.hello_timeout_s)
            if hello is None:
                return
            self.rate = hello.sample_rate
            for e in hello.setting_errors:
                await self.error(e.code, e.message)
            self.agent = self.server.new_agent(hello.settings)
            await self.ws.send(
                dumps(
                    "ready",
                    session_id=self.id,
                    protocol=PROTOCOL_VERSION,
                    audio={"sample_rate": self.server.engines.tts.sample_rate, "encoding": "pcm_s16le", "channels": 1},
                    settings=self.server.settings(hello.settings),
                    budgets=self.agent.budgeter.budgets.as_dict(),
                    system=self.server.system_info(),
                )
            )
            self._events = asyncio.create_task(self._send_events(), name=f"bridge-{self.id}-events")
            while True:
                try:
                    msg = await asyncio.wait_for(self.ws.recv(), o.idle_timeout_s)
                except TimeoutError:
                    await self.error("idle_timeout", f"no message for {o.idle_timeout_s:.0f} s")
                    await self.ws.close(CLOSE_IDLE, "idle timeout")
                    return
                if isinstance(msg, bytes):
                    if len(msg) % 2:
                        await self.error("odd_length", "pcm_s16le frames must have an even number of bytes; frame dropped")
                    else:
                        self._audio(msg)
                    continue
                try:
                    m = parse_json(msg)
                except ProtocolError as e:
                    await self.error(e.code, e.message)
                    continue
                if m["type"] == "bye":
                    await self.ws.close(1000, "bye")
                    return
                if m["type"] == "interrupt":
                    await self.agent.interrupt("client")
                elif m["type"] == "hello":
                    await self.error("duplicate_hello", "hello was already received")
        except ConnectionClosed:
            return

    async def _hello(self, timeout: float):
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            await self.error("no_hello", f"send a hello message within {timeout:.0f} s", close=True)
            return None
        if isinstance(msg, bytes):
            await self.error("audio_before_hello", "send a JSON hello before any audio", close=True)
            return None
        try:
            m = parse_json(msg)
            if m["type"] != "hello":
                raise ProtocolError("expected_hello", f"the first message must be hello, not {m['type']!r}", fatal=True)
            return parse_hello(m, tuple(self.server.models), tools=self.server.options.tools is not None)
        except ProtocolError as e:
            await self.error(e.code, e.message, close=True)
            return None

    def _audio(self, data: bytes) -> None:
        if not data:
            return
        frame = AudioFrame.from_bytes(data, self.rate)
        if self._t0 is None:
            # The stream clock starts when the first frame's first sample was captured.
            self._t0 = self.server.clock.now_ns() - frame.duration_ns
            frame = AudioFrame(pcm=frame.pcm, sample_rate=frame.sample_rate, timestamp_ns=self._t0)
        if self.inbox.full():
            self.inbox.get_nowait()  # keep latency bounded: drop the oldest audio, count it
            self.dropped += 1
        self.inbox.put_nowait(frame)

    async def _frames(self):
        while (frame := await self.inbox.get()) is not None:
            yield frame

    async def _send_events(self) -> None:
        assert self.agent is not None
        step = self.server.engines.tts.sample_rate * REPLY_CHUNK_MS // 1000
        try:
            async for ev in self.agent.process(self._frames()):
                if isinstance(ev, ReplyAudio):
                    if ev.turn_id in self._interrupted:
                        continue  # barge-in: not one more sample of that reply
                    pcm = ev.frame.pcm
                    for i in range(0, pcm.shape[0], step):
                        await self.ws.send(pcm[i : i + step].astype("<i2").tobytes())
                elif isinstance(ev, Interrupted):
                    self._interrupted.add(ev.turn_id)
                    await self.ws.send(dumps("interrupted", turn_id=ev.turn_id, reason=ev.reason))
                elif isinstance(ev, SpeechStarted):
                    await self.ws.send(dumps("speech_started", turn_id=ev.turn_id))
                elif isinstance(ev, Transcript):
                    await self.ws.send(
                        dumps("transcript", turn_id=ev.turn_id, text=ev.text, final=ev.final, stable=ev.stable)
                    )
                elif isinstance(ev, ReplyText):
                    await self.ws.send(dumps("reply", turn_id=ev.turn_id, text=ev.text))
                elif isinstance(ev, TurnMetrics):
                    budgets = self.agent.budgeter.budgets
                    await self.ws.send(dumps("turn", **ev.record.to_dict(origin_ns=self._t0, budgets=budgets)))
        except ConnectionClosed:
            pass

    async def stop(self) -> None:
        if self._events is not None and not self._events.done():
            self._events.cancel()
            try:
                await self._events
            except (asyncio.CancelledError, ConnectionClosed):
                pass


class _TwilioSession(_Session):
    """Twilio Media Streams on ``/twilio``: JSON events with base64 μ-law at 8 kHz.

    Twilio sends ``connected``, ``start``, ``media``, ``mark`` and ``stop``; we answer with
    ``media`` (the reply), ``mark`` (``turnN`` after each clause, ``turnN-end`` after the whole
    reply) and ``clear`` (barge-in: Twilio drops what it has buffered).
    """

    RATE = 8000

    async def run(self) -> None:
        o = self.server.options
        self.rate = self.RATE
        self.stream_sid = ""
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(self.ws.recv(), o.idle_timeout_s)
                except TimeoutError:
                    await self.ws.close(CLOSE_IDLE, "idle timeout")
                    return
                if isinstance(raw, bytes):
                    await self.ws.close(CLOSE_POLICY, "Twilio Media Streams sends JSON text messages")
                    return
                try:
                    msg = json.loads(raw)
                    event = msg["event"]
                except (ValueError, KeyError, TypeError):
                    log.warning("twilio session %s: malformed message ignored: %.80r", self.id, raw)
                    continue
                if event == "start":
                    start = msg.get("start", {})
                    fmt = start.get("mediaFormat", {})
                    if fmt.get("encoding", "audio/x-mulaw") != "audio/x-mulaw" or int(fmt.get("sampleRate", 8000)) != 8000:
                        await self.ws.close(CLOSE_POLICY, "only audio/x-mulaw at 8000 Hz is supported")
                        return
                    self.stream_sid = start.get("streamSid") or msg.get("streamSid", "")
                    self.agent = self.server.new_agent()
                    self._events = asyncio.create_task(self._send_events(), name=f"twilio-{self.id}-events")
                elif event == "media" and self.agent is not None:
                    try:
                        payload = base64.b64decode(msg["media"]["payload"], validate=True)
                    except (KeyError, TypeError, ValueError):
                        log.warning("twilio session %s: bad media payload ignored", self.id)
                        continue
                    self._audio(mulaw_decode(payload).astype("<i2").tobytes())
                elif event == "stop":
                    await self.ws.close(1000, "stream stopped")
                    return
                # "connected" and "mark" echoes need no action.
        except ConnectionClosed:
            return

    async def _send_events(self) -> None:
        assert self.agent is not None
        out_rate = self.server.engines.tts.sample_rate
        try:
            async for ev in self.agent.process(self._frames()):
                if isinstance(ev, ReplyAudio):
                    if ev.turn_id in self._interrupted:
                        continue
                    pcm8k = resample(ev.frame.pcm, out_rate, self.RATE)
                    for i in range(0, pcm8k.shape[0], 160):  # 20 ms media messages
                        payload = base64.b64encode(mulaw_encode(pcm8k[i : i + 160])).decode()
                        await self.ws.send(
                            json.dumps({"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}})
                        )
                elif isinstance(ev, ReplyText):
                    await self.ws.send(
                        json.dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": f"turn{ev.turn_id}"}})
                    )
                elif isinstance(ev, Interrupted):
                    self._interrupted.add(ev.turn_id)
                    await self.ws.send(json.dumps({"event": "clear", "streamSid": self.stream_sid}))
                elif isinstance(ev, TurnMetrics) and ev.record.reply and ev.turn_id not in self._interrupted:
                    # The reply is complete: Twilio echoes this mark once the caller has heard all of it.
                    await self.ws.send(
                        json.dumps(
                            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": f"turn{ev.turn_id}-end"}}
                        )
                    )
        except ConnectionClosed:
            pass
