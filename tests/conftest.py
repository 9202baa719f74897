from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def engines():
    """The real embedded models, loaded once for the whole test session."""
    from voiceloop.pipeline.engines import Engines

    eng = Engines.load()
    eng.warm_up()
    yield eng
    eng.close()


async def _paced(audio, clock, t0: int | None = None):
    """16 kHz float audio as a microphone delivers it: 20 ms frames, paced in real time on ``clock``."""
    import asyncio

    from voiceloop.core.frames import AudioFrame

    t0 = clock.now_ns() if t0 is None else t0
    for i in range(0, audio.shape[0] - 320 + 1, 320):
        delay = (t0 + (i + 320) * 62_500 - clock.now_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        yield AudioFrame.from_float32(audio[i : i + 320], 16000, t0 + i * 62_500)


@pytest.fixture(scope="session")
def paced_frames():
    """``paced_frames(audio, clock, t0=None)``: an async iterator of real-time 20 ms frames."""
    return _paced


@dataclass
class HAStandIn:
    """A local HTTP server standing in for Home Assistant's REST API (token "secret")."""

    url: str
    requests: list[tuple[str, str | None, dict]] = field(default_factory=list)


@pytest.fixture
def ha_server():
    """``ha_server.url``; every POST lands in ``ha_server.requests`` as (path, Authorization, JSON body)."""
    state = HAStandIn(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((self.path, self.headers.get("Authorization"), body))
            self.send_response(200 if self.headers.get("Authorization") == "Bearer secret" else 401)
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    srv.shutdown()
