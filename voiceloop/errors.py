"""Errors with one readable message each; the CLI prints them without a traceback."""

from __future__ import annotations


class VoiceloopError(Exception):
    """Base class: ``str(err)`` is a complete, user-facing message."""


class ModelNotFoundError(VoiceloopError):
    """A model is neither installed nor found at the given path."""


class AudioFormatError(VoiceloopError):
    """Audio that cannot be read or has an unsupported format."""


class AudioDeviceError(VoiceloopError):
    """No audio device, device busy, or PortAudio missing."""


class ConfigError(VoiceloopError):
    """A bad option value."""
