"""Models loaded once and shared by every agent (conversation) in the process."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..asr.base import ASR
from ..asr.second_opinion import SecondOpinionOptions, load_asr
from ..asr.whisper import WhisperOptions
from ..audio.vad import silero_v6_path
from ..llm.backend import LLMBackend
from ..llm.cpu_policy import install as install_cpu_policy
from ..llm.llama import LlamaBackend, LlamaOptions
from ..tts.piper import PiperOptions, PiperTTS

if TYPE_CHECKING:
    from ..turn.smart_turn import SmartTurn

log = logging.getLogger("voiceloop.engines")


@dataclass(eq=False)
class Engines:
    """The engines plus one worker thread each.

    Every engine call blocks, so it runs on its engine's thread: the event loop never
    waits on inference, and each engine does one thing at a time (a llama context
    must never decode for two sessions at once).
    """

    asr: ASR
    llm: LLMBackend
    tts: PiperTTS
    vad_model: Path = field(default_factory=silero_v6_path)
    turn_audio: SmartTurn | None = None
    """An audio end-of-turn model (smart-turn, the ``turn`` extra); None = the decision reads text only."""

    def __post_init__(self) -> None:
        self.turn_executor = ThreadPoolExecutor(1, thread_name_prefix="voiceloop-turn")
        self.vad_executor = ThreadPoolExecutor(1, thread_name_prefix="voiceloop-vad")
        self.asr_executor = ThreadPoolExecutor(1, thread_name_prefix="voiceloop-asr")
        self.llm_executor = ThreadPoolExecutor(1, thread_name_prefix="voiceloop-llm")
        self.tts_executor = ThreadPoolExecutor(1, thread_name_prefix="voiceloop-tts")

    @classmethod
    def load(
        cls,
        *,
        whisper: WhisperOptions | None = None,
        llama: LlamaOptions | None = None,
        piper: PiperOptions | None = None,
        llm: LLMBackend | None = None,
        turn_audio: bool | None = None,
        second_opinion: SecondOpinionOptions | bool | None = None,
    ) -> Engines:
        """Load the engines; ``llm`` replaces the local llama.cpp backend (e.g. a RemoteBackend);
        ``turn_audio`` adds smart-turn to the end-of-turn evidence (the ``turn`` extra): None = if installed;
        ``second_opinion`` re-hears unsure turns with a stronger Whisper (``SecondOpinionASR``): None = with
        Whisper base if it is installed and the main model is the default tiny.en, False = never."""
        # The llama.cpp CPU policy first: where it withholds AMX, no engine may have asked for AMX before it.
        install_cpu_policy()
        asr = load_asr(whisper, second_opinion)
        llm = llm or LlamaBackend(llama)
        tts = PiperTTS(piper)
        smart = None
        if turn_audio or turn_audio is None:
            from ..errors import ModelNotFoundError
            from ..turn.smart_turn import SmartTurn

            try:
                smart = SmartTurn()
            except ModelNotFoundError as exc:
                if turn_audio:
                    raise
                log.info("end-of-turn decision without the audio model: %s", exc)
        log.info("engines loaded: asr=%s llm=%s tts=%s", asr.model_path, llm.model_path, tts.model_path)
        return cls(asr=asr, llm=llm, tts=tts, turn_audio=smart)

    @property
    def llm_name(self) -> str:
        """The LLM's short name: its GGUF's stem (a catalog name for embedded models)."""
        return Path(str(getattr(self.llm, "model_path", "llm"))).stem

    def with_llm(self, llm: LLMBackend) -> Engines:
        """The same VAD, ASR, TTS and turn models, on the same threads, with another LLM on a thread of its
        own: a server offers several LLMs without loading the rest twice."""
        other = Engines(asr=self.asr, llm=llm, tts=self.tts, vad_model=self.vad_model, turn_audio=self.turn_audio)
        for name in ("turn_executor", "vad_executor", "asr_executor", "tts_executor"):
            getattr(other, name).shutdown(wait=False)  # never started: threads start with the first task
            setattr(other, name, getattr(self, name))
        return other

    def describe(self) -> dict[str, str]:
        strong = getattr(self.asr, "strong", None)
        return {
            "vad": str(self.vad_model),
            "asr": str(getattr(self.asr, "model_path", "?")),
            "asr_second_opinion": str(strong.model_path) if strong is not None else "none",
            "llm": str(getattr(self.llm, "model_path", "?")),
            "tts": str(getattr(self.tts, "model_path", "?")),
            "turn_audio": str(self.turn_audio.model_path) if self.turn_audio is not None else "none",
        }

    def warm_up(self, tools: list | None = None) -> None:
        """One pass through each engine so the first real turn pays no first-call costs; with ``tools`` (Tool
        objects or tool sets) the prompt prefix with their schemas too (~1,000 tokens: seconds on a CPU)."""
        import numpy as np

        self.asr.transcribe(np.zeros(16000, dtype=np.float32))
        for _ in self.llm.stream([], "Hello.", max_tokens=2):
            pass
        if tools:
            from ..tools.base import Tool

            flat = [t for x in tools for t in ([x] if isinstance(x, Tool) else x.tools())]
            self.llm.prefill([], "", tools=[t.schema() for t in flat])
        for _ in self.tts.synthesize("Hello."):
            pass

    def close(self) -> None:
        for ex in (self.vad_executor, self.asr_executor, self.llm_executor, self.tts_executor, self.turn_executor):
            ex.shutdown(wait=False, cancel_futures=True)
