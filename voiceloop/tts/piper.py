"""Piper TTS. ``synthesize()`` blocks and yields int16 chunks; run it in a worker thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelNotFoundError


@dataclass(frozen=True, slots=True)
class PiperOptions:
    model: str | None = None
    """A Piper voice .onnx (with its .onnx.json beside it); None = the embedded en_US-joe-medium."""
    length_scale: float | None = None
    speaker_id: int | None = None
    threads: int | None = None
    """onnxruntime intra-op threads; None = this machine's measured choice (``voiceloop doctor --tune``)."""


class PiperTTS:
    def __init__(self, options: PiperOptions | None = None) -> None:
        self.options = o = options or PiperOptions()
        path = o.model
        if path is None:
            from ..models.registry import model_path

            path = str(model_path("piper-en_US-joe-medium"))
        p = Path(path)
        config = Path(str(p) + ".json")
        if not p.is_file():
            raise ModelNotFoundError(f"Piper voice not found: {p}")
        if not config.is_file():
            raise ModelNotFoundError(f"Piper voice config not found: {config} (a voice is an .onnx plus its .onnx.json)")
        from piper import PiperVoice, SynthesisConfig

        self.voice = PiperVoice.load(str(p), config_path=str(config))
        # Two threads synthesise a short clause fastest (~22 ms vs ~34 on one), but onnxruntime's
        # idle workers spin by default and would steal the core the LLM decodes on between clauses.
        # (piper's load() has no session options, so its default session is replaced: once, at start.)
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        from ..core.machine import piper_threads

        opts.intra_op_num_threads = o.threads or piper_threads()
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.voice.session = onnxruntime.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
        self.sample_rate = int(self.voice.config.sample_rate)
        self._syn = SynthesisConfig(length_scale=o.length_scale, speaker_id=o.speaker_id)
        self.model_path = p
        self._lock = threading.Lock()

    def synthesize(self, text: str, *, stop: threading.Event | None = None) -> Iterator[np.ndarray]:
        """Yield int16 mono PCM at ``self.sample_rate``, one chunk per sentence; stops between chunks."""
        if not text.strip():
            return
        with self._lock:
            for chunk in self.voice.synthesize(text, syn_config=self._syn):
                if stop is not None and stop.is_set():
                    return
                yield chunk.audio_int16_array.reshape(-1)
