"""Microphone and speaker through sounddevice (PortAudio).

The PortAudio callbacks never block: the input callback copies the block and hands
it to the event loop (``call_soon_threadsafe``); the output callback copies from a
buffer the pipeline can flush at once (barge-in). The first reply sample's time is
taken from PortAudio's ``outputBufferDacTime``, i.e. when it reaches the device.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from ..core.frames import AudioFrame
from ..errors import AudioDeviceError

log = logging.getLogger("voiceloop.audio.device")


def sounddevice() -> Any:
    try:
        import sounddevice as sd
    except OSError:
        raise AudioDeviceError("the PortAudio library is missing: apt-get install libportaudio2 (then retry)") from None
    return sd


def _device_error(kind: str, device: object, exc: Exception) -> AudioDeviceError:
    text = str(exc)
    low = text.lower()
    # PortAudio reports a device held by another program as paDeviceUnavailable (-9985), or via
    # ALSA as an unanticipated host error ("Device or resource busy").
    if "busy" in low or "unanticipated host error" in low or "device unavailable" in low or "-9985" in low:
        hint = "the device is busy (another program holds it)"
    elif "invalid sample rate" in text.lower():
        hint = "the device does not support this sample rate"
    elif "no default" in text.lower() or "invalid device" in text.lower() or "-9996" in text:
        hint = "no such device; `voiceloop devices` lists them"
    else:
        hint = text
    return AudioDeviceError(f"cannot open {kind} device {device if device is not None else '(default)'}: {hint}")


def list_devices() -> str:
    sd = sounddevice()
    try:
        return str(sd.query_devices())
    except Exception as exc:  # PortAudio errors have no common type
        raise AudioDeviceError(f"cannot list audio devices: {exc}") from None


def _default_rate(sd: Any, device: object, kind: str) -> int:
    try:
        info = sd.query_devices(device, kind)
    except (ValueError, sd.PortAudioError) as exc:
        raise _device_error(kind, device, exc) from None
    return int(info["default_samplerate"])


def probe(sd: Any, device: object, kind: str) -> None:
    """Open and close a stream on the device now: a device that is busy (held by another program) or refuses
    its own default rate fails here, in a second, not after the models have loaded (~40 s on a slow CPU)."""
    rate = _default_rate(sd, device, kind)
    cls = sd.InputStream if kind == "input" else sd.OutputStream
    try:
        stream = cls(samplerate=rate, device=device, channels=1, dtype="int16")
        stream.close()
    except (ValueError, sd.PortAudioError) as exc:
        raise _device_error(kind, device, exc) from None


class Microphone:
    """Async iterator of 20 ms AudioFrames; a bounded queue drops the oldest audio and counts it."""

    def __init__(self, *, device: object = None, rate: int | None = None, max_frames: int = 100) -> None:
        self.sd = sounddevice()
        self.device = device
        self.rate = rate or _default_rate(self.sd, device, "input")
        self.queue: asyncio.Queue[AudioFrame] = asyncio.Queue(max_frames)
        self.dropped = 0
        self.gate: Any = None
        """Optional callable(pcm) -> pcm applied on the loop before frames are queued (echo gate)."""
        self._stream: Any = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        block = self.rate // 50

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            # PortAudio thread: copy and hand over, nothing else.
            t = time.perf_counter_ns() - frames * 1_000_000_000 // self.rate
            loop.call_soon_threadsafe(self._put, indata[:, 0].copy(), t)

        try:
            self._stream = self.sd.InputStream(
                samplerate=self.rate,
                blocksize=block,
                device=self.device,
                channels=1,
                dtype="int16",
                callback=callback,
                latency="low",  # barge-in starts here: the default "high" latency buffers ~100 ms more input
            )
            self._stream.start()
        except (ValueError, self.sd.PortAudioError) as exc:
            raise _device_error("input", self.device, exc) from None

    def _put(self, pcm: np.ndarray, t_ns: int) -> None:
        if self.gate is not None:
            pcm = self.gate(pcm)
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(AudioFrame(pcm=pcm, sample_rate=self.rate, timestamp_ns=t_ns))

    async def frames(self) -> AsyncIterator[AudioFrame]:
        while True:
            yield await self.queue.get()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


class Speaker:
    """Plays int16 mono at ``rate`` from a buffer; ``flush()`` silences it at once."""

    def __init__(self, *, rate: int, device: object = None) -> None:
        self.sd = sounddevice()
        self.rate = rate
        self.device = device
        self._buf: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._pending_first: list[Any] = []
        self._levels: collections.deque[tuple[float, float]] = collections.deque(maxlen=200)
        self.buffered = 0

    def start(self) -> None:
        def callback(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            out = outdata[:, 0]
            n = 0
            with self._lock:
                while n < frames and self._buf:
                    chunk = self._buf[0]
                    k = min(frames - n, chunk.shape[0])
                    out[n : n + k] = chunk[:k]
                    if k == chunk.shape[0]:
                        self._buf.popleft()
                    else:
                        self._buf[0] = chunk[k:]
                    n += k
                self.buffered -= n
                first = self._pending_first if n else []
                if n:
                    self._pending_first = []
            out[n:] = 0
            level = float(np.sqrt(np.mean(out[:n].astype(np.float32) ** 2))) if n else 0.0
            self._levels.append((time.monotonic(), level))
            if first:
                # When this buffer's first sample reaches the DAC, on our perf_counter clock.
                delay = max(0.0, time_info.outputBufferDacTime - time_info.currentTime)
                at = time.perf_counter_ns() + int(delay * 1e9)
                for on_first in first:
                    on_first(at)

        try:
            self._stream = self.sd.OutputStream(
                samplerate=self.rate, blocksize=self.rate // 100, device=self.device, channels=1, dtype="int16",
                callback=callback, latency="low",
            )  # fmt: skip
            self._stream.start()
        except (ValueError, self.sd.PortAudioError) as exc:
            raise _device_error("output", self.device, exc) from None

    def play(self, pcm: np.ndarray, on_first_sample: Any = None) -> None:
        with self._lock:
            if on_first_sample is not None:
                self._pending_first.append(on_first_sample)
            self._buf.append(pcm.astype(np.int16, copy=False))
            self.buffered += pcm.shape[0]

    def flush(self) -> None:
        with self._lock:
            self._buf.clear()
            self.buffered = 0
            self._pending_first = []
        if self._stream is not None:
            # Clearing our buffer is not enough: PortAudio and the host API (ALSA, PulseAudio) hold
            # audio too, sometimes seconds of it. abort() drops it at once; start() resumes output.
            try:
                self._stream.abort()
                self._stream.start()
            except self.sd.PortAudioError as exc:
                log.warning("could not restart the output stream after a flush: %s", exc)

    def recent_level(self, window_s: float = 0.5) -> float:
        """Loudest playback RMS over the last ``window_s``: the echo reference. The echo comes
        back through the room (or a loopback) with some delay, so the current block is not enough."""
        since = time.monotonic() - window_s
        return max((lvl for t, lvl in list(self._levels) if t >= since), default=0.0)

    @property
    def playing(self) -> bool:
        return self.buffered > 0

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
