"""Ready-made local pipecat pipelines: pipecat's stock services, or voiceloop's services in their place.

Both use the same pipecat plumbing (Silero VAD and the default smart-turn v3 end-of-turn
strategy in the user aggregator, Piper for speech), so a comparison isolates the services.
"""

from __future__ import annotations

from collections.abc import Callable

from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.services.piper.tts import PiperTTSService
from pipecat.turns.user_stop.turn_analyzer_user_turn_stop_strategy import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from ...llm.backend import LLMBackend
from ...models.registry import model_path
from .llm import VoiceloopLLMService
from .stt import VoiceloopSTTService

Builder = Callable[[FrameProcessor, FrameProcessor], list[FrameProcessor]]


def piper_tts(voice: str | None = None) -> PiperTTSService:
    """pipecat's Piper service on a local voice file (no download)."""
    from pathlib import Path

    path = Path(voice) if voice else model_path("piper-en_US-joe-medium")
    return PiperTTSService(settings=PiperTTSService.Settings(voice=path.stem), download_dir=path.parent)


def _aggregators(turn_analyzer: BaseTurnAnalyzer | None = None) -> LLMContextAggregatorPair:
    params = LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    if turn_analyzer is not None:
        params.user_turn_strategies = turn_strategies(turn_analyzer)
    return LLMContextAggregatorPair(LLMContext(), user_params=params)


def turn_strategies(turn_analyzer: BaseTurnAnalyzer) -> UserTurnStrategies:
    """pipecat's default turn strategies with ``turn_analyzer`` (e.g. ``VoiceloopTurnAnalyzer``) deciding the stop."""
    return UserTurnStrategies(stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=turn_analyzer)])


def stock_pipeline(*, llm_url: str, whisper: str | None = None, voice: str | None = None) -> Builder:
    """pipecat's own local services: WhisperSTTService (faster-whisper), an OpenAI-compatible LLM
    (llama.cpp's server on ``llm_url``), PiperTTSService."""
    from pipecat.services.openai.llm import OpenAILLMService
    from pipecat.services.whisper.stt import WhisperSTTService

    stt = WhisperSTTService(
        settings=WhisperSTTService.Settings(model=str(whisper or model_path("whisper-tiny.en"))), device="cpu"
    )
    llm = OpenAILLMService(
        api_key="local", base_url=llm_url, settings=OpenAILLMService.Settings(model="local", temperature=0.0, max_tokens=64)
    )
    tts = piper_tts(voice)

    def build(source: FrameProcessor, sink: FrameProcessor) -> list[FrameProcessor]:
        agg = _aggregators()
        return [source, stt, agg.user(), llm, tts, sink, agg.assistant()]

    return build


def voiceloop_services_pipeline(
    *, backend: LLMBackend | None = None, voice: str | None = None, voiceloop_turns: bool = False
) -> Builder:
    """The same pipeline with voiceloop's streaming STT and speculative llama.cpp LLM; ``voiceloop_turns``
    swaps smart-turn for voiceloop's calibrated decision (``VoiceloopTurnAnalyzer``) as the stop strategy."""
    stt = VoiceloopSTTService()
    llm = VoiceloopLLMService(backend=backend)
    tts = piper_tts(voice)

    def build(source: FrameProcessor, sink: FrameProcessor) -> list[FrameProcessor]:
        analyzer = None
        if voiceloop_turns:
            from .turn import VoiceloopTurnAnalyzer

            analyzer = VoiceloopTurnAnalyzer(asr=stt.asr, llm=llm.backend, history=lambda: llm.conversation)
        agg = _aggregators(analyzer)
        return [source, stt, agg.user(), llm, tts, sink, agg.assistant()]

    return build
