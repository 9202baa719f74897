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


def test_a_pause_in_the_reply_does_not_unlearn_the_echo():
    # Measured on a loopback: a filler ("One moment."), a 0.4 s pause while the tool ran, then the
    # answer. The reference holds the filler's level through the pause while the mic is silent;
    # the old upper-quartile estimate fell to 0 and the answer's echo passed (the agent barged in
    # on itself).
    spk = FakeSpeaker()
    spk.level = 8000.0
    gate = EchoGate(spk)
    for i in range(60):  # the filler's echo at 0.7x, with gaps between words
        assert not gate(_tone(5600 if i % 3 else 10)).any()
    for _ in range(35):  # the pause: nothing comes back
        assert not gate(_tone(0)).any()
    for _ in range(5):  # the answer's echo arrives late ...
        assert not gate(_tone(0)).any()
    for _ in range(40):  # ... and is held back
        assert not gate(_tone(5600)).any()
    assert gate.coupling > 0.5
    assert gate(_tone(20000)).any()  # a user speaking up still passes


def test_the_users_voice_is_not_learnt_as_echo():
    spk = FakeSpeaker()
    spk.level = 4000.0
    gate = EchoGate(spk)
    for _ in range(30):
        gate(_tone(400))  # echo at 0.1x
    for _ in range(30):  # the user talks over the agent, loud and long
        assert gate(_tone(3000)).any()
    assert gate.coupling < 0.2
