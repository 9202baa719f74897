"""smart-turn v3.2, pipecat's open end-of-turn audio model (BSD-2), run from the pipecat-ai wheel.

8 s of 16 kHz audio in (the end of the utterance, zero-padded at the front), P(the speaker is done)
out, from intonation and rhythm rather than words. Needs the ``turn`` extra (onnxruntime, onnx and
pipecat-ai, which carries the 8.7 MB int8 ONNX file and its numpy feature extractor).

By default smart-turn's own head is replaced by voiceloop's prosody probe on its encoder output at the end of the
audio (``voiceloop/turn/prosody.py``, read from the same run; ``probe=None`` gives the head back), and the graph runs
with float activations (``precision="float"``; see ``_graph``). The shipped calibration's audio signal is
this probe's P (session 22).
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any, Literal

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
the turn set's tune split (AUC 0.850) against the last 2, 8, 16 and 32 frames (0.849, 0.847, 0.833, 0.813) with the
float graph, at the pipeline's decision points (session 22)."""


Precision = Literal["float", "int8"]


def _graph(path: Path, precision: Precision = "float") -> bytes:
    """The model with its last encoder layer as a second output (the graph is edited in memory, the file is not).

    ``precision="float"`` also undoes the activations' static int8 quantization (``_float_activations``). The int8
    graph is chaotic in its input: noise at 1e-6 (-120 dBFS, far below any microphone's floor) moved its P(done)
    on one clip from 0.91 to 0.66-0.90, and the same audio through the pipeline's int16 frames read 0.77
    (session 22). With float activations the same perturbations move it by less than 0.001, at ~1.3x the time
    (89 vs 68 ms on the 2-core EPYC, one thread; the weights are the same int8 values).
    """
    try:
        import onnx
    except ImportError as exc:
        raise ModelNotFoundError(f"smart-turn needs the turn extra: pip install 'voiceloop[turn]' ({exc})") from None

    model = onnx.load(str(path))
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(ENCODER_OUTPUT))
    if precision == "float":
        _float_activations(model.graph)
    return model.SerializeToString()


def _float_activations(graph: Any) -> None:  # an onnx GraphProto
    """Remove every QuantizeLinear -> DequantizeLinear pair on an activation, and dequantize the weights once."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    drop: set[int] = set()
    rename: dict[str, str] = {}
    for q in graph.node:
        if q.op_type != "QuantizeLinear" or q.input[0] in inits:
            continue
        after = consumers.get(q.output[0], [])
        if after and all(n.op_type == "DequantizeLinear" and n.output[0] not in outputs for n in after):
            drop.add(id(q))
            for dq in after:
                drop.add(id(dq))
                rename[dq.output[0]] = q.input[0]
    kept = []
    for node in graph.node:
        if id(node) in drop:
            continue
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            graph.initializer.append(numpy_helper.from_array(_dequantized(node, inits), node.output[0]))
            continue
        for i, name in enumerate(node.input):
            while name in rename:
                name = rename[name]
            node.input[i] = name
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _dequantized(node: Any, inits: dict) -> np.ndarray:  # an onnx NodeProto
    """A DequantizeLinear of a weight, computed: (w - zero point) * scale, per tensor or per channel."""
    from onnx import numpy_helper

    w = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    has_zero = len(node.input) > 2 and node.input[2]
    zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) if has_zero else np.zeros_like(scale)
    if scale.size > 1:  # per channel along `axis`
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((w - zero) * scale).astype(np.float32)


class SmartTurn:
    """P(end of turn) from the audio alone. Blocking (~10-60 ms): call it from a worker thread."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        threads: int = 1,
        probe: ProsodyProbe | Literal["shipped"] | None = "shipped",
        precision: Precision = "float",
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
        model = _graph(path, precision)
        self._session = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
        self.model_path = path
        self._head = self._session.get_outputs()[0].name
        self.probe = ProsodyProbe.load() if probe == "shipped" else probe
        if probe == "shipped" and self.probe is None:
            # The calibration's audio weights are fitted on the probe's P; the head's reads differently.
            log.warning("the prosody probe's file is missing: smart-turn's own head gives the audio signal")
        self.last_ms = 0.0

    def probability(self, audio16k: np.ndarray) -> float:
        """P(the speaker is done): the prosody probe's when there is one, else smart-turn's own head's."""
        if self.probe is None:  # the head's output only: the encoder's 400x384 frames are not copied out
            return float(np.asarray(self._run(audio16k, [self._head])[0]).reshape(-1)[0])
        _, embedding = self.probability_and_embedding(audio16k)
        return float(self.probe.probability(embedding)[0])

    def _run(self, audio16k: np.ndarray, outputs: list[str]) -> list[Any]:
        t0 = time.perf_counter_ns()
        n = WINDOW_S * RATE
        x = np.asarray(audio16k, dtype=np.float32)[-n:]
        if len(x) < n:
            x = np.pad(x, (n - len(x), 0))
        mel = self._features(x, do_normalize=True)
        out = self._session.run(outputs, {"input_features": mel[None].astype(np.float32)})
        self.last_ms = (time.perf_counter_ns() - t0) / 1e6
        return out

    def probability_and_embedding(self, audio16k: np.ndarray) -> tuple[float, np.ndarray]:
        """smart-turn's own P(end of turn) and the embedding the prosody probe reads (384 numbers), one run."""
        out = self._run(audio16k, [self._head, ENCODER_OUTPUT])
        frames = np.asarray(out[1], np.float32).reshape(-1, out[1].shape[-1])
        return float(np.asarray(out[0]).reshape(-1)[0]), frames[-TAIL_FRAMES:].mean(axis=0)
