"""Use the agent as a library: feed your own audio frames, react to typed events.

python examples/custom_agent.py path/to/speech.wav
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from voiceloop import AudioFrame, Engines, ReplyAudio, Transcript, TurnMetrics, VoiceAgent
from voiceloop.audio.files import read_audio_16k
from voiceloop.core.clock import DEFAULT_CLOCK


async def frames(audio: np.ndarray):
    t0 = DEFAULT_CLOCK.now_ns()
    for i in range(0, len(audio) - 320, 320):  # 20 ms at 16 kHz, paced like a microphone
        await asyncio.sleep(max(0.0, (t0 + (i + 320) * 62_500 - DEFAULT_CLOCK.now_ns()) / 1e9))
        yield AudioFrame.from_float32(audio[i : i + 320], 16000, t0 + i * 62_500)


async def main(path: str) -> None:
    engines = Engines.load()
    engines.warm_up()  # first calls pay one-off costs; keep them out of the first turn
    agent = VoiceAgent(engines=engines)
    audio = np.concatenate([read_audio_16k(path), np.zeros(3 * 16000, np.float32)])
    async for ev in agent.process(frames(audio)):
        if isinstance(ev, Transcript):
            print(("final: " if ev.final else "interim: ") + ev.text)
        elif isinstance(ev, ReplyAudio):
            pass  # hand ev.frame.pcm to your speaker / socket
        elif isinstance(ev, TurnMetrics):
            print(f"reply: {ev.record.reply!r}  v2v {ev.record.v2v_ms:.0f} ms  stages {ev.record.stages_ms()}")
    engines.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
