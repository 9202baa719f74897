"""Echo safety on speakers: the agent must not hear (and answer, or interrupt) itself.

The gate compares microphone level with the level the speaker has just played. The
room's (or loopback's) echo coupling is learnt while the agent talks, from the frames the
gate held back: a high quantile (90th) of mic/playback level ratios over the last 3 s.
Speech has gaps, the echo arrives late, and a reply may pause (a filler, then the tool's
answer) while the playback reference still holds its last level: those frames read near
zero, and a lower quantile fell with them until the agent's own voice got through (a
measured failure: coupling 0.7 learnt, then 0.0 after a 0.4 s pause, and the echo passed).
Frames that passed are not learnt from: they are the user barging in, not echo.
Input passes while the agent plays only when it is ``margin`` times louder than the
predicted echo, so a user who speaks up still barges in. Before anything is learnt
the coupling is assumed to be 1 (worst case: a loopback at unity gain).
"""

from __future__ import annotations

import collections
import logging
from typing import Protocol

import numpy as np

log = logging.getLogger("voiceloop.io.echo")


class PlaybackLevel(Protocol):
    def recent_level(self, window_s: float = 0.5) -> float: ...


class EchoGate:
    def __init__(
        self,
        speaker: PlaybackLevel,
        *,
        margin: float = 3.0,
        floor: float = 300.0,
        tail_s: float = 0.5,
        window: int = 150,
        quantile: float = 90.0,
        min_frames: int = 10,
    ) -> None:
        self.speaker = speaker
        self.margin = margin
        self.floor = floor
        self.tail_s = tail_s
        self.quantile = quantile
        self.min_frames = min_frames
        self.coupling = 1.0
        self._ratios: collections.deque[float] = collections.deque(maxlen=window)
        self.gated_frames = 0

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        ref = self.speaker.recent_level(self.tail_s)
        if ref < 1.0:
            return pcm  # nothing played recently: no echo possible
        rms = float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2)))
        if rms > max(self.floor, self.margin * self.coupling * ref):
            log.debug("echo gate: passed rms %.0f, playback %.0f, coupling %.3f", rms, ref, self.coupling)
            return pcm
        self._ratios.append(rms / ref)
        if len(self._ratios) >= self.min_frames:
            self.coupling = float(np.percentile(self._ratios, self.quantile))
        self.gated_frames += 1
        return np.zeros_like(pcm)
