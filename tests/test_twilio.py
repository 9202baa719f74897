"""Twilio Media Streams endpoint (/twilio), driven by a scripted client speaking Twilio's message format."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest
from websockets.asyncio.client import connect

from voiceloop.audio.files import read_audio
from voiceloop.audio.mulaw import mulaw_decode, mulaw_encode
from voiceloop.audio.resample import resample
from voiceloop.io.websocket_server import BridgeOptions, BridgeServer


def test_mulaw_round_trip_is_g711():
    x = np.array([0, 1, -1, 100, -100, 1000, -1000, 32767, -32768], dtype=np.int16)
    y = mulaw_decode(mulaw_encode(x))
    assert np.all(np.abs(y.astype(int) - x.astype(int)) <= np.maximum(8, np.abs(x.astype(int)) // 16))
    assert mulaw_encode(np.array([0], np.int16)) == b"\xff"  # G.711: silence is 0xFF


@pytest.mark.models
async def test_twilio_call(engines, data_dir):
    server = BridgeServer(engines, BridgeOptions(port=0))
    await server.start()
    samples, rate = read_audio(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    speech8k = (resample(samples, rate, 8000) * 32767).astype(np.int16)
    sid = "MZ0123456789abcdef"
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/twilio") as ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            start = {"streamSid": sid, "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
                     "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}  # fmt: skip
            await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": sid}))
            await ws.send("not json at all")  # ignored, the call goes on
            received: list[dict] = []
            replying = asyncio.Event()

            answered = asyncio.Event()  # the reply after the barge-in has been sent whole
            after_clear = {"media": 0, "clauses": set()}

            async def reader():
                async for m in ws:
                    received.append(json.loads(m))
                    ev = received[-1]
                    cleared = any(r["event"] == "clear" for r in received)
                    if ev["event"] == "media":
                        replying.set()
                        after_clear["media"] += cleared
                    elif ev["event"] == "mark" and cleared:
                        name = ev["mark"]["name"]
                        if name.endswith("-end") and name.removesuffix("-end") in after_clear["clauses"]:
                            answered.set()  # the end mark of a reply that began after the barge-in
                        after_clear["clauses"].add(name)

            task = asyncio.create_task(reader())
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            k = 0

            async def send(pcm: np.ndarray, until: asyncio.Event | None = None) -> None:
                nonlocal k
                for i in range(0, pcm.shape[0] - 160 + 1, 160):
                    if until is not None and until.is_set():
                        return
                    k += 1
                    await asyncio.sleep(max(0.0, t0 + k * 0.02 - loop.time()))
                    payload = base64.b64encode(mulaw_encode(pcm[i : i + 160])).decode()
                    media = {"track": "inbound", "chunk": str(k), "timestamp": str(k * 20), "payload": payload}
                    await ws.send(
                        json.dumps({"event": "media", "sequenceNumber": str(k + 1), "media": media, "streamSid": sid})
                    )

            # The caller asks, waits for the reply to start, then talks over it (barge-in).
            await send(speech8k)
            await send(np.zeros(5 * 8000, np.int16), until=replying)
            assert replying.is_set()
            await send(speech8k)

            # However slow the CPU: silence until the reply after the barge-in has ended (its end mark).
            await send(np.zeros(90 * 8000, np.int16), until=answered)
            assert answered.is_set(), ("no complete reply after the barge-in within 90 s", after_clear)
            await ws.send(json.dumps({"event": "stop", "sequenceNumber": "999", "streamSid": sid, "stop": {}}))
            await asyncio.wait_for(task, 10)
    finally:
        await server.close()
    media = [m for m in received if m["event"] == "media"]
    assert media and all(m["streamSid"] == sid for m in media)
    reply = np.concatenate([mulaw_decode(base64.b64decode(m["media"]["payload"])) for m in media])
    assert reply.shape[0] > 4000  # more than half a second of reply audio at 8 kHz
    text = engines.asr.transcribe(resample(reply.astype(np.float32) / 32768, 8000, 16000)).text
    assert len(text.split()) >= 2, (text, after_clear)  # it is speech
    assert any(m["event"] == "mark" for m in received)
    assert any(m["event"] == "clear" for m in received)  # barge-in flushed Twilio's buffer
