"""Echo safety on speakers: the agent must not hear (and answer, or interrupt) itself.

The gate compares microphone level with the level the speaker has just played. The
room's (or loopback's) echo coupling is learnt while the agent talks: the upper
quartile of mic/playback level ratios over the last second (the echo arrives late,
so the first frames of a reply read near zero and must not count).
Input passes while the agent plays only when it is ``margin`` times louder than the
predicted echo, so a user who speaks up still barges in. Before anything is learnt
the coupling is assumed to be 1 (worst case: a loopback at unity gain).
"""

from __future__ import annotations

import collections
from typing import Protocol

import numpy as np


class PlaybackLevel(Protocol):
    def recent_level(self, window_s: float = 0.5) -> float: ...


class EchoGate:
    def __init__(self, speaker: PlaybackLevel, *, margin: float = 3.0, floor: float = 300.0, tail_s: float = 0.5) -> None:
        self.speaker = speaker
        self.margin = margin
        self.floor = floor
        self.tail_s = tail_s
        self.coupling = 1.0
        self._ratios: collections.deque[float] = collections.deque(maxlen=50)
        self.gated_frames = 0

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        ref = self.speaker.recent_level(self.tail_s)
        if ref < 1.0:
            return pcm  # nothing played recently: no echo possible
        rms = float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2)))
        self._ratios.append(rms / ref)
        if len(self._ratios) >= 10:
            self.coupling = float(np.percentile(self._ratios, 75))
        if rms > max(self.floor, self.margin * self.coupling * ref):
            return pcm
        self.gated_frames += 1
        return np.zeros_like(pcm)
