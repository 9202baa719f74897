"""voiceloop: realtime voice agents on a CPU, every millisecond shown."""

import os as _os

# CTranslate2 (Whisper) starts an OpenMP team of the default size for some steps even with cpu_threads=1,
# and its idle worker then spins for 50-100 ms: the LLM's prompt evaluation right after the final ASR pass
# ran ~30 % slower (8 tokens on Qwen 1.5B: 135 ms instead of 104, AMD EPYC, 2 cores). llama.cpp and
# onnxruntime size their thread pools explicitly, so one OpenMP thread by default costs them nothing.
# Set before any engine library loads; a user's own setting wins.
_os.environ.setdefault("OMP_NUM_THREADS", "1")

from ._version import __version__
from .asr.base import ASR
from .asr.second_opinion import SecondOpinionASR, SecondOpinionOptions
from .asr.streaming import StablePrefixTracker
from .asr.whisper import WhisperASR, WhisperOptions
from .audio.vad import SileroVAD, VADOptions
from .core.clock import Clock, ManualClock, MonotonicClock
from .core.events import (
    Announcement,
    Event,
    Interrupted,
    ReplyAudio,
    ReplyText,
    SpeechPaused,
    SpeechStarted,
    Transcript,
    TurnEnded,
    TurnMetrics,
)
from .core.frames import AudioFrame, InterruptFrame, TextFrame
from .core.pipeline import Pipeline
from .core.stage import FunctionStage, Stage
from .errors import AudioDeviceError, AudioFormatError, ConfigError, ModelNotFoundError, VoiceloopError
from .llm.backend import GenerationStats, LLMBackend
from .llm.llama import LlamaBackend, LlamaOptions
from .llm.prompt import ChatTemplatePrompt, Message, TranscriptPrompt
from .metrics.budget import Budgets, LatencyBudgeter, TurnRecord
from .pipeline.agent import AgentOptions, VoiceAgent
from .pipeline.engines import Engines
from .tools import Timers, Tool, ToolOptions, tool
from .tts.clauses import ClauseOptions, ClauseSplitter
from .tts.piper import PiperOptions, PiperTTS
from .turn import AdaptiveEndpointing, CalibratedEndpointing, EndOfTurnEvidence, EndpointingPolicy, FixedSilence

__all__ = [
    "ASR",
    "AdaptiveEndpointing",
    "AgentOptions",
    "Announcement",
    "AudioDeviceError",
    "AudioFormatError",
    "AudioFrame",
    "Budgets",
    "CalibratedEndpointing",
    "ChatTemplatePrompt",
    "ClauseOptions",
    "ClauseSplitter",
    "Clock",
    "ConfigError",
    "EndOfTurnEvidence",
    "EndpointingPolicy",
    "Engines",
    "Event",
    "FixedSilence",
    "FunctionStage",
    "GenerationStats",
    "Interrupted",
    "InterruptFrame",
    "LLMBackend",
    "LatencyBudgeter",
    "LlamaBackend",
    "LlamaOptions",
    "ManualClock",
    "Message",
    "ModelNotFoundError",
    "MonotonicClock",
    "Pipeline",
    "PiperOptions",
    "PiperTTS",
    "ReplyAudio",
    "ReplyText",
    "SecondOpinionASR",
    "SecondOpinionOptions",
    "SileroVAD",
    "SpeechPaused",
    "SpeechStarted",
    "Stage",
    "StablePrefixTracker",
    "TextFrame",
    "Timers",
    "Tool",
    "ToolOptions",
    "Transcript",
    "TranscriptPrompt",
    "TurnEnded",
    "TurnMetrics",
    "TurnRecord",
    "VADOptions",
    "VoiceAgent",
    "VoiceloopError",
    "WhisperASR",
    "WhisperOptions",
    "__version__",
    "tool",
]
