"""EchoGate with a fake playback level (unit test of the core)."""

import numpy as np

from voiceloop.io.echo import EchoGate


class FakeSpeaker:
    def __init__(self) -> None:
        self.level = 0.0

    def recent_level(self, window_s: float = 0.5) -> float:
        return self.level


def _tone(rms: float) -> np.ndarray:
    return (np.sin(np.arange(320) / 5.0) * rms * np.sqrt(2)).astype(np.int16)


def test_gate_blocks_echo_and_passes_a_louder_user():
    spk = FakeSpeaker()
    gate = EchoGate(spk)
    assert gate(_tone(2000)).any()  # nothing playing: everything passes
    spk.level = 4000.0
    for _ in range(30):  # the agent talks; its echo comes back at 0.8x
        assert not gate(_tone(3200)).any()
    assert 0.7 < gate.coupling < 0.9
    assert gate(_tone(12000)).any()  # the user speaks up over it: barge-in possible


def test_gate_learns_a_quiet_room():
    spk = FakeSpeaker()
    spk.level = 4000.0
    gate = EchoGate(spk)
    assert not gate(_tone(1000)).any()  # unknown coupling: assume the worst at first
    for _ in range(30):
        gate(_tone(100))  # -32 dB echo
    assert gate(_tone(1000)).any()  # now normal speech gets through
