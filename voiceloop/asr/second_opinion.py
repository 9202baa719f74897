"""A second opinion for unsure turns: the fast model hears every pass, a stronger one re-hears the final
utterance only when the fast one was unsure.

Whisper tiny.en is fast (~50 ms a pass here) but mishears unusual voices: on the espeak-ng voices of the tool
requests it gets 28 of 42 requests to the right tool call, Whisper base 35. Base costs ~100 ms a pass, so it
runs once per turn, on the final utterance, and only when tiny's mean token log-probability is below a
threshold fitted on the tune split of the evaluation clips (``examples/asr_second_opinion.py``): the confident
turns, most turns of clear speech, pay nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import ASR
from .whisper import WhisperASR, WhisperOptions

if TYPE_CHECKING:
    import numpy as np

    from .whisper import Transcript

log = logging.getLogger("voiceloop.asr")


@dataclass(frozen=True, slots=True)
class SecondOpinionOptions:
    model: str = "whisper-base"
    """The stronger model: a catalog name or a CTranslate2 Whisper directory."""
    threshold: float = -0.35
    """Ask when the fast model's mean token log-probability is below this."""
    margin: float = 0.1
    """Keep the stronger model's text only when its mean token log-probability beats the fast one's by this.

    Both fitted on the tune split of the tool-request and question clips (Piper + two espeak-ng voices) by
    ``python examples/asr_second_opinion.py``: the margin with the lowest tune WER when every clip is re-heard,
    then the lowest threshold within 0.005 of it (the fewest turns pay for the second pass). There: tune WER
    0.093 (tiny alone) -> 0.062, check 0.159 -> 0.117, with about half of those hard clips re-heard; on the
    real-speech recordings about a third (AMD EPYC, 2 vCPUs, one Whisper thread)."""


class SecondOpinionASR(ASR):
    """``fast`` for every pass; ``strong`` re-hears a turn's final audio when ``fast`` was unsure."""

    def __init__(self, fast: WhisperASR, strong: WhisperASR, options: SecondOpinionOptions | None = None) -> None:
        self.fast = fast
        self.strong = strong
        self.options = options or SecondOpinionOptions()
        self.model_path = fast.model_path

    def transcribe(self, audio: np.ndarray) -> Transcript:
        return self.fast.transcribe(audio)

    def transcribe_full(self, audio: np.ndarray) -> Transcript:
        return self.fast.transcribe_full(audio)

    def wants_second_opinion(self, result: Transcript) -> bool:
        # An empty text is not unsure speech (noise, or a breath): nothing for base to fix.
        return bool(result.text) and result.second_opinion is None and result.avg_logprob < self.options.threshold

    def second_opinion(self, audio: np.ndarray, first: Transcript) -> Transcript:
        t0 = time.perf_counter_ns()
        second = self.strong.transcribe(audio)
        # The stronger model is not always right on a hard voice ("72 degrees" -> "7-2 degrees"): its text is
        # kept only when it is surer by the margin; an empty one never replaces words.
        keep_second = bool(second.text) and second.avg_logprob >= first.avg_logprob + self.options.margin
        chosen = second if keep_second else first
        record = {
            "first": first.text,
            "first_confidence": round(first.avg_logprob, 3),
            "second": second.text,
            "second_confidence": round(second.avg_logprob, 3),
            "kept": "second" if keep_second else "first",
        }
        log.debug("second opinion: %s", record)
        elapsed = first.elapsed_ms + (time.perf_counter_ns() - t0) / 1e6
        return dataclasses.replace(chosen, second_opinion=record, elapsed_ms=elapsed)


def load_asr(whisper: WhisperOptions | None = None, second_opinion: SecondOpinionOptions | bool | None = None) -> ASR:
    """The speech recogniser ``Engines.load`` and the pipecat STT service use: Whisper, with a stronger one
    for unsure turns as ``second_opinion`` says (None = Whisper base when installed and ``whisper`` is the
    default tiny.en, False = never, options = always)."""
    asr: ASR = WhisperASR(whisper)
    so = _second_opinion(whisper, second_opinion)
    if so is not None:
        asr = SecondOpinionASR(asr, WhisperASR(WhisperOptions(model=so.model)), so)
    return asr


def _second_opinion(
    whisper: WhisperOptions | None, choice: SecondOpinionOptions | bool | None
) -> SecondOpinionOptions | None:
    if choice is False:
        return None
    if isinstance(choice, SecondOpinionOptions):
        return choice
    if choice is None and whisper is not None and whisper.model not in (None, "whisper-tiny.en"):
        return None  # the user chose the main model; a second one is only added to the default
    from ..models.registry import ModelStatus, model_status

    opts = SecondOpinionOptions()
    # Chunk packages present (assembled on first use) count as installed.
    if choice is None and model_status(opts.model) is ModelStatus.MISSING:
        log.info("no second opinion for unsure turns: %s is not installed (pip install 'voiceloop[models]')", opts.model)
        return None
    return opts
