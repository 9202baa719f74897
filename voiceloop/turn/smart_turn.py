"""smart-turn v3.2, pipecat's open end-of-turn audio model (BSD-2), run from the pipecat-ai wheel.

8 s of 16 kHz audio in (the end of the utterance, zero-padded at the front), P(the speaker is done)
out, from intonation and rhythm rather than words. Needs the ``turn`` extra (onnxruntime, onnx and
pipecat-ai, which carries the 8.7 MB int8 ONNX file and its numpy feature extractor).

``probe="shipped"`` replaces smart-turn's own head with voiceloop's prosody probe on its encoder output at the
end of the audio (``voiceloop/turn/prosody.py``), read from the same run. Not the default yet: the shipped
calibration is fitted on smart-turn's head, and the probe has not been validated live (see the README).
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ModelNotFoundError
from .prosody import ProsodyProbe

log = logging.getLogger("voiceloop.turn")

RATE = 16000
WINDOW_S = 8
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"


def bundled_model_path() -> Path:
    """The ONNX file inside the installed pipecat-ai wheel."""
    try:
        path = Path(str(resources.files("pipecat.audio.turn.smart_turn.data").joinpath(MODEL_FILE)))
    except ModuleNotFoundError:
        raise ModelNotFoundError(
            "smart-turn needs the pipecat-ai wheel (it ships the model): pip install 'voiceloop[turn]'"
        ) from None
    if not path.is_file():
        raise ModelNotFoundError(f"smart-turn model missing from the pipecat-ai wheel: {path}")
    return path


ENCODER_OUTPUT = "layer_norm_8"
"""The graph's last encoder layer: 400 frames of 384 numbers, 20 ms each, before the attention pooling."""
TAIL_FRAMES = 4
"""The embedding is the mean of the last 4 frames (80 ms: the last sound and the pipeline's silent window). Chosen on
the turn set's tune split against the attention-pooled vector and the last 12 frames (``examples/turn_prosody.py``),
in session 21's first fit, which read finished clips at the file's end; not re-chosen since that was corrected."""


def _with_embedding(path: Path) -> bytes:
    """The model with its last encoder layer as a second output (the graph is edited in memory, the file is not)."""
    try:
        import onnx
    except ImportError as exc:
        raise ModelNotFoundError(f"smart-turn needs the turn extra: pip install 'voiceloop[turn]' ({exc})") from None

    model = onnx.load(str(path))
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(ENCODER_OUTPUT))
    return model.SerializeToString()


class SmartTurn:
    """P(end of turn) from the audio alone. Blocking (~10-60 ms): call it from a worker thread."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        threads: int = 1,
        probe: ProsodyProbe | Literal["shipped"] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            from pipecat.audio.turn.smart_turn._whisper_features import compute_whisper_log_mel_features
        except ImportError as exc:
            raise ModelNotFoundError(f"smart-turn needs the turn extra: pip install 'voiceloop[turn]' ({exc})") from None
        self._features = compute_whisper_log_mel_features
        path = Path(model_path) if model_path else bundled_model_path()
        so = ort.SessionOptions()
        so.inter_op_num_threads = 1
        so.intra_op_num_threads = threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(_with_embedding(path), sess_options=so, providers=["CPUExecutionProvider"])
        self.model_path = path
        self.probe = ProsodyProbe.load() if probe == "shipped" else probe
        self.last_ms = 0.0

    def probability(self, audio16k: np.ndarray) -> float:
        """P(the speaker is done): the prosody probe's when there is one, else smart-turn's own head's."""
        p, embedding = self.probability_and_embedding(audio16k)
        if self.probe is not None:
            return float(self.probe.probability(embedding)[0])
        return p

    def probability_and_embedding(self, audio16k: np.ndarray) -> tuple[float, np.ndarray]:
        """smart-turn's own P(end of turn) and the embedding the prosody probe reads (384 numbers), one run."""
        t0 = time.perf_counter_ns()
        n = WINDOW_S * RATE
        x = np.asarray(audio16k, dtype=np.float32)[-n:]
        if len(x) < n:
            x = np.pad(x, (n - len(x), 0))
        mel = self._features(x, do_normalize=True)
        out = self._session.run(None, {"input_features": mel[None].astype(np.float32)})
        self.last_ms = (time.perf_counter_ns() - t0) / 1e6
        frames = np.asarray(out[1], np.float32).reshape(-1, out[1].shape[-1])
        return float(np.asarray(out[0]).reshape(-1)[0]), frames[-TAIL_FRAMES:].mean(axis=0)
