"""voiceloop inside pipecat pipelines (``pip install "voiceloop[pipecat]"``).

- ``VoiceloopLLMService``: the llama.cpp backend (KV reuse, speculative decoding) as a pipecat LLM service.
- ``VoiceloopSTTService``: sized-window streaming Whisper with interim and final transcripts.
- ``LatencyObserver``: pipecat frames -> voiceloop turn records and the per-stage ms table.
- ``VoiceloopTurnAnalyzer``: voiceloop's calibrated end-of-turn decision as a pipecat turn analyzer (for smart-turn's
  place in ``TurnAnalyzerUserTurnStopStrategy``; ``turn_strategies(analyzer)`` builds the strategies).
"""

from __future__ import annotations

try:
    import pipecat  # noqa: F401
except ImportError as exc:  # one readable line instead of an ImportError chain
    from ...errors import ConfigError

    raise ConfigError('the pipecat integration needs pipecat: pip install "voiceloop[pipecat]"') from exc

from .llm import VoiceloopLLMService
from .observer import LatencyObserver
from .pipelines import turn_strategies
from .stt import VoiceloopSTTService
from .turn import VoiceloopTurnAnalyzer

__all__ = ["LatencyObserver", "VoiceloopLLMService", "VoiceloopSTTService", "VoiceloopTurnAnalyzer", "turn_strategies"]
