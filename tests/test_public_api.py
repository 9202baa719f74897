"""Pins the public API: removing or renaming a name here is a breaking change."""

import voiceloop

EXPECTED = {
    "AdaptiveEndpointing", "AgentOptions", "AudioDeviceError", "AudioFormatError", "AudioFrame", "Budgets",
    "ChatTemplatePrompt", "ClauseOptions", "ClauseSplitter", "Clock", "ConfigError", "EndpointingPolicy", "Engines",
    "Event", "FixedSilence", "FunctionStage", "GenerationStats", "Interrupted", "InterruptFrame", "LLMBackend",
    "LatencyBudgeter", "LlamaBackend", "LlamaOptions", "ManualClock", "Message", "ModelNotFoundError",
    "MonotonicClock", "Pipeline", "PiperOptions", "PiperTTS", "ReplyAudio", "ReplyText", "SileroVAD",
    "SpeechPaused", "SpeechStarted", "Stage", "StablePrefixTracker", "TextFrame", "Transcript",
    "TranscriptPrompt", "TurnEnded", "TurnMetrics", "TurnRecord", "VADOptions", "VoiceAgent", "VoiceloopError",
    "WhisperASR", "WhisperOptions", "__version__",
    # end-of-turn and tools
    "Announcement", "CalibratedEndpointing", "EndOfTurnEvidence", "Timers", "Tool", "ToolOptions", "tool",
    # speech recognition behind an interface, with a second opinion for unsure turns
    "ASR", "SecondOpinionASR", "SecondOpinionOptions",
}  # fmt: skip


def test_public_names_are_pinned():
    assert set(voiceloop.__all__) == EXPECTED


def test_every_public_name_resolves():
    for name in voiceloop.__all__:
        assert getattr(voiceloop, name) is not None, name


def test_private_modules_are_reexported():
    assert voiceloop.VoiceAgent.__module__ == "voiceloop.pipeline.agent"
    assert voiceloop.AudioFrame is voiceloop.core.frames.AudioFrame
