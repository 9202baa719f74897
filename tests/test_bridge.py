"""The websocket bridge, run for real on loopback with the real models and real websocket clients."""

from __future__ import annotations

import asyncio
import json
import threading

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voiceloop.audio.files import read_audio
from voiceloop.errors import ConfigError
from voiceloop.io.websocket_server import BridgeOptions, BridgeServer

pytestmark = pytest.mark.models


@pytest.fixture
async def bridge(engines):
    servers = []

    async def make(models=None, **kw):
        server = BridgeServer(engines, BridgeOptions(port=0, **kw), models=models)
        await server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        await s.close()


def _url(server, token=None):
    return f"ws://127.0.0.1:{server.port}/ws" + (f"?token={token}" if token else "")


async def _hello(ws, rate=16000):
    await ws.send(json.dumps({"type": "hello", "version": 1, "sample_rate": rate, "encoding": "pcm_s16le", "channels": 1}))
    ready = json.loads(await ws.recv())
    assert ready["type"] == "ready"
    return ready


async def _stream(ws, pcm: np.ndarray, rate: int, seconds_of_silence: float = 3.0):
    step = rate // 50
    audio = np.concatenate([pcm, np.zeros(int(seconds_of_silence * rate), np.int16)])
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for k, i in enumerate(range(0, audio.shape[0] - step + 1, step)):
        await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.02 - loop.time()))
        await ws.send(audio[i : i + step].astype("<i2").tobytes())


async def _until(cond, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if cond():
            return True
        await asyncio.sleep(0.05)
    return cond()


def _clip(data_dir):
    samples, rate = read_audio(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    return (samples * 32767).astype(np.int16), rate


async def _collect(ws, seconds: float = 90.0):
    """Messages and reply audio bytes until the first turn's record (its reply is done), or ``seconds``: a
    generous cap, since on a slow CPU the session's first turn also pays for the prompt's prefill."""
    msgs, audio = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for m in ws:
                if isinstance(m, bytes):
                    audio += len(m)
                else:
                    msgs.append(json.loads(m))
                    if msgs[-1]["type"] == "turn":
                        break
    except TimeoutError:
        pass
    return msgs, audio


async def test_conversation_over_the_bridge(bridge, data_dir):
    server = await bridge()
    pcm, rate = _clip(data_dir)  # 44.1 kHz: the server resamples at its edge
    async with connect(_url(server)) as ws:
        ready = await _hello(ws, rate)
        assert ready["audio"] == {"sample_rate": 22050, "encoding": "pcm_s16le", "channels": 1}
        sender = asyncio.create_task(_stream(ws, pcm, rate))
        msgs, audio_bytes = await _collect(ws)
        await sender
    types = [m["type"] for m in msgs]
    assert "speech_started" in types
    finals = [m for m in msgs if m["type"] == "transcript" and m["final"]]
    assert finals and "lamp" in finals[-1]["text"].lower()
    assert any(m["type"] == "transcript" and not m["final"] for m in msgs)
    assert any(m["type"] == "reply" and m["text"] for m in msgs)
    (turn,) = [m for m in msgs if m["type"] == "turn"]
    assert turn["v2v_ms"] > 0 and set(turn["stages"]) >= {"asr", "llm", "tts"}
    assert audio_bytes > 22050  # at least half a second of reply audio
    assert await _until(lambda: not server.sessions)


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (b"\x00\x00" * 160, "audio_before_hello"),
        ("{not json", "bad_json"),
        (json.dumps({"type": "dance"}), "unknown_type"),
        (json.dumps({"type": "hello", "sample_rate": 12345}), "bad_sample_rate"),
        (json.dumps({"type": "hello", "sample_rate": 16000, "encoding": "opus"}), "bad_encoding"),
        (json.dumps({"type": "hello", "sample_rate": 16000, "version": 9}), "bad_version"),
    ],
)
async def test_bad_first_message_gets_error_and_close(bridge, first, code):
    server = await bridge()
    async with connect(_url(server)) as ws:
        await ws.send(first)
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == code and err["message"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1008


async def test_settings_in_hello_reach_the_session(bridge, engines):
    from voiceloop.tools import builtin_tools

    alt = engines.with_llm(engines.llm)  # a second LLM on its own thread (the same weights: a cheap stand-in)
    server = await bridge(models={"alt": alt}, tools=builtin_tools, tools_on=False)
    offer = json.loads(await asyncio.to_thread(_http_get, server.port, "/settings.json"))
    assert offer["choices"]["model"] == [engines.llm_name, "alt"]
    assert offer["choices"]["strategy"] == ["speculative", "sequential"]
    from voiceloop.llm.prompt import SPEECH_SYSTEM_PROMPT

    assert offer["defaults"] == {
        "strategy": "speculative", "system": SPEECH_SYSTEM_PROMPT, "model": engines.llm_name, "tools": False
    }  # fmt: skip
    asked = {"strategy": "sequential", "system": "You are Ada, a ship's computer.", "model": "alt", "tools": True}
    async with connect(_url(server)) as ws:
        await ws.send(json.dumps({"type": "hello", "version": 1, "sample_rate": 16000, **asked}))
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["settings"] == asked
        assert ready["budgets"]["v2v"] > 0 and ready["system"]["cpu_count"] >= 1
        (session,) = server.sessions.values()
        agent = session.agent
        assert agent.engines is alt and agent.options.strategy == "sequential"
        assert agent.options.system == asked["system"] and agent.tool_runner is not None
        assert type(agent.endpointing).__name__ == "FixedSilence"  # a sequential session waits a fixed silence


async def test_bad_settings_get_errors_and_the_session_stays_usable(bridge, data_dir):
    server = await bridge()
    pcm, rate = _clip(data_dir)
    bad = {"strategy": "warp", "model": "gpt-9", "tools": "yes", "system": 42}
    async with connect(_url(server)) as ws:
        await ws.send(json.dumps({"type": "hello", "version": 1, "sample_rate": rate, **bad}))
        errors = [json.loads(await ws.recv()) for _ in bad]
        assert {e["code"] for e in errors} == {"bad_setting"}
        for name, e in zip(("strategy", "system", "model", "tools"), errors, strict=True):
            assert f"setting {name!r}" in e["message"] and "default" in e["message"]
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready" and ready["settings"]["strategy"] == "speculative"
        assert ready["settings"]["tools"] is False  # this server offers none
        sender = asyncio.create_task(_stream(ws, pcm, rate))
        msgs, audio_bytes = await _collect(ws)
        await sender
    turns = [m for m in msgs if m["type"] == "turn"]
    assert turns and "lamp" in turns[-1]["transcript"].lower() and audio_bytes > 0


def test_settings_are_checked_against_what_the_server_offers():
    from voiceloop.io.protocol import parse_settings

    ok, errors = parse_settings({"tools": False, "model": "a"}, ("a", "b"), tools=False)
    assert ok.tools is False and ok.model == "a" and not errors
    _, errors = parse_settings({"tools": True, "system": "x" * 4001}, ("a",), tools=False)
    assert [e.code for e in errors] == ["bad_setting", "bad_setting"]
    assert "4001 characters" in errors[0].message and "offers no tools" in errors[1].message


def _http_get(port: int, path: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


async def test_bad_messages_mid_session_get_errors_and_session_survives(bridge):
    server = await bridge()
    async with connect(_url(server)) as ws, connect(_url(server)) as other:
        await _hello(ws)
        await _hello(other)
        for bad, code in [("{oops", "bad_json"), (json.dumps({"type": "nope"}), "unknown_type"),
                          (json.dumps([1, 2]), "bad_message"), (b"\x01\x02\x03", "odd_length"),
                          (json.dumps({"type": "hello", "sample_rate": 16000}), "duplicate_hello")]:  # fmt: skip
            await ws.send(bad)
            err = json.loads(await ws.recv())
            assert (err["type"], err["code"]) == ("error", code)
        await ws.send(b"\x00\x00" * 320)  # still accepts audio
        await ws.send(json.dumps({"type": "interrupt"}))  # nothing playing: no error
        # The other session was not disturbed.
        await other.send(json.dumps({"type": "bye"}))
        with pytest.raises(ConnectionClosed) as closed:
            await other.recv()
        assert closed.value.rcvd.code == 1000


async def test_oversized_frame_closes_with_1009(bridge):
    server = await bridge()
    async with connect(_url(server), max_size=None) as ws:
        await _hello(ws)
        await ws.send(b"\x00" * (70 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1009


async def test_token_is_checked_before_the_websocket_opens(bridge):
    server = await bridge(token="s3cret")
    for url in (_url(server), _url(server, "wrong")):
        with pytest.raises(InvalidStatus) as rejected:
            async with connect(url):
                pass
        assert rejected.value.response.status_code == 401
    async with connect(_url(server, "s3cret")) as ws:
        await _hello(ws)
    assert await _until(lambda: not server.sessions)


async def test_foreign_origin_is_refused(bridge):
    server = await bridge()
    with pytest.raises(InvalidStatus) as rejected:
        async with connect(_url(server), origin="http://evil.example"):
            pass
    assert rejected.value.response.status_code == 403
    async with connect(_url(server), origin=f"http://127.0.0.1:{server.port}") as ws:
        await _hello(ws)


def test_non_loopback_without_token_refuses_to_start(engines):
    with pytest.raises(ConfigError, match="without a token"):
        BridgeServer(engines, BridgeOptions(host="0.0.0.0"))


async def test_max_sessions_and_idle_timeout(bridge):
    server = await bridge(max_sessions=1, idle_timeout_s=0.5)
    async with connect(_url(server)) as first:
        await _hello(first)
        async with connect(_url(server)) as extra:
            with pytest.raises(ConnectionClosed) as closed:
                await extra.recv()
            assert closed.value.rcvd.code == 1013 and "maximum" in closed.value.rcvd.reason
        err = json.loads(await first.recv())  # nothing sent for 0.5 s
        assert err["code"] == "idle_timeout"
        with pytest.raises(ConnectionClosed) as closed:
            await first.recv()
        assert closed.value.rcvd.code == 4408


async def test_page_is_served(bridge):
    server = await bridge()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    head = await reader.read(65536)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200") and b"AudioWorklet" in head


async def test_disconnects_mid_turn_leave_nothing_behind(bridge, data_dir):
    server = await bridge(max_sessions=8)
    pcm, rate = _clip(data_dir)

    async def rude_client(k: int):
        ws = await connect(_url(server))
        await _hello(ws, rate)
        step = rate // 50
        cut = int(rate * (1.0 + 0.25 * (k % 8)))  # hang up mid-speech, in the pause, mid-reply
        for i in range(0, min(cut, pcm.shape[0]), step * 10):
            await ws.send(pcm[i : i + step * 10].astype("<i2").tobytes())
            await asyncio.sleep(0.2)
        ws.transport.abort()  # no close handshake: the network just went away

    def rss_mb() -> float:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    rss = []
    for wave in range(4):
        await asyncio.gather(*(rude_client(8 * wave + k) for k in range(8)))
        await _until(lambda: not server.sessions)
        await asyncio.sleep(0.5)
        rss.append(rss_mb())
        if wave == 0:
            # Worker threads start on first use: start every engine's thread, then count from here.
            e = server.engines
            for ex in (e.vad_executor, e.asr_executor, e.llm_executor, e.tts_executor):
                ex.submit(lambda: None).result()
            baseline_tasks = len(asyncio.all_tasks())
            baseline_threads = threading.active_count()
    # After the first wave has warmed the allocator, more waves must not keep growing memory.
    assert rss[-1] - rss[1] < 40, rss
    for _ in range(100):
        if not server.sessions and len(asyncio.all_tasks()) <= baseline_tasks:
            break
        await asyncio.sleep(0.1)
    assert not server.sessions
    assert len(asyncio.all_tasks()) <= baseline_tasks
    assert threading.active_count() <= baseline_threads
