from __future__ import annotations

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
