"""The latency budgeter.

A turn's critical path is a chain of monotonic timestamps (ns, one clock):

    speech_end -> asr_start -> transcript_ready -> first_token -> first_clause
               -> first_tts_audio -> first_audio_out

Each stage is the gap between consecutive marks, so the stages add up exactly to
v2v (voice to voice: end of the user's speech to the first reply sample handed to
the output). ``endpoint`` (speech_end -> turn_end, the silence waited before the
turn was confirmed) is reported beside the chain: with preemptive generation it
overlaps the chain instead of preceding it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

log = logging.getLogger("voiceloop.metrics")

CHAIN: tuple[tuple[str, str, str], ...] = (
    ("vad", "speech_end", "asr_start"),
    ("asr", "asr_start", "transcript_ready"),
    ("llm", "transcript_ready", "first_token"),
    ("clause", "first_token", "first_clause"),
    ("tts", "first_clause", "first_tts_audio"),
    ("release", "first_tts_audio", "first_audio_out"),
)
STAGES: tuple[str, ...] = (*tuple(s for s, _, _ in CHAIN), "endpoint")


@dataclass(frozen=True, slots=True)
class Budgets:
    """Per-stage budgets in ms (documented defaults; override any)."""

    vad: float = 50.0
    """Speech end until the pipeline acts on it (VAD window + detection)."""
    asr: float = 100.0
    """Final transcript after the ASR pass starts."""
    llm: float = 60.0
    """First LLM token after the transcript (prompt eval of the new tokens)."""
    clause: float = 100.0
    """First speakable clause after the first token."""
    tts: float = 100.0
    """First synthesised audio after the first clause."""
    release: float = 60.0
    """Audio handed to the output after synthesis (includes waiting for turn confirmation)."""
    endpoint: float = 600.0
    """Silence waited before the turn end is confirmed."""
    v2v: float = 250.0
    """Voice to voice, the whole chain."""

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def parse(cls, spec: str) -> Budgets:
        """``"asr=80,v2v=300"`` -> Budgets with those overrides."""
        values: dict[str, float] = {}
        names = {f.name for f in fields(cls)}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, value = part.partition("=")
            if key not in names:
                raise ValueError(f"unknown budget stage {key!r}; stages: {', '.join(sorted(names))}")
            values[key] = float(value)
        return cls(**values)


def _ms(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else (b - a) / 1e6


@dataclass(slots=True)
class TurnRecord:
    turn_id: int
    marks: dict[str, int] = field(default_factory=dict)
    transcript: str = ""
    reply: str = ""
    strategy: str = ""
    interim_count: int = 0
    preemptions: int = 0
    discarded: int = 0
    preemption: str = "none"
    """committed (the held reply was released), restarted (discarded then committed), none (sequential)."""
    interrupted: bool = False
    asr_window_frames: int = 0
    stall_ms: float = 0.0
    """Silence inside the reply after its first audio: the next clause was not ready when the audio before it
    ran out (``stalls`` times)."""
    stalls: int = 0
    llm: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Tool calls of this turn: name, arguments, result, ok, ms (and a spoken filler, if any)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def mark(self, name: str, ns: int) -> None:
        self.marks.setdefault(name, ns)

    def stages_ms(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for stage, a, b in CHAIN:
            v = _ms(self.marks.get(a), self.marks.get(b))
            if v is not None:
                out[stage] = v
        ep = _ms(self.marks.get("speech_end"), self.marks.get("turn_end"))
        if ep is not None:
            out["endpoint"] = ep
        return out

    @property
    def v2v_ms(self) -> float | None:
        return _ms(self.marks.get("speech_end"), self.marks.get("first_audio_out"))

    def over_budget(self, budgets: Budgets) -> list[str]:
        b = budgets.as_dict()
        over = [s for s, v in self.stages_ms().items() if v > b.get(s, float("inf"))]
        v2v = self.v2v_ms
        if v2v is not None and v2v > budgets.v2v:
            over.append("v2v")
        return over

    def to_dict(self, *, origin_ns: int | None = None, budgets: Budgets | None = None) -> dict[str, Any]:
        """JSON form; ``*_ms`` marks are relative to ``origin_ns`` (e.g. the input's start)."""
        o = origin_ns if origin_ns is not None else self.marks.get("speech_start", 0)
        d: dict[str, Any] = {
            "turn_id": self.turn_id,
            "transcript": self.transcript,
            "reply": self.reply,
            "strategy": self.strategy,
            "v2v_ms": self.v2v_ms,
            "stages": self.stages_ms(),
            "marks_ms": {k: (v - o) / 1e6 for k, v in self.marks.items()},
            "interim_count": self.interim_count,
            "preemptions": self.preemptions,
            "discarded": self.discarded,
            "preemption": self.preemption,
            "interrupted": self.interrupted,
            "asr_window_frames": self.asr_window_frames,
            "stall_ms": self.stall_ms,
            "stalls": self.stalls,
            "llm": self.llm,
            "tools": self.tools,
            "extra": self.extra,
        }
        if budgets is not None:
            d["over_budget"] = self.over_budget(budgets)
        return d


def percentiles(values: Iterable[float]) -> dict[str, float | None]:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"p50": None, "p90": None, "p95": None, "max": None}
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p95": float(np.percentile(arr, 95)),
        "max": float(arr.max()),
    }


class LatencyBudgeter:
    """Collects turn records, holds them against budgets, notifies observers."""

    def __init__(self, budgets: Budgets | None = None) -> None:
        self.budgets = budgets or Budgets()
        self.records: list[TurnRecord] = []
        self.input_lag: dict[str, float | None] | None = None
        self._observers: list[Callable[[TurnRecord], None]] = []

    def subscribe(self, observer: Callable[[TurnRecord], None]) -> Callable[[], None]:
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def add(self, record: TurnRecord) -> None:
        self.records.append(record)
        over = record.over_budget(self.budgets)
        if over:
            log.info("turn %d over budget: %s", record.turn_id, ", ".join(over))
        for obs in list(self._observers):
            obs(record)

    def summary(self) -> dict[str, Any]:
        answered = [r for r in self.records if r.v2v_ms is not None]
        stages: dict[str, dict[str, float | None]] = {}
        for s in STAGES:
            p = percentiles(r.stages_ms().get(s) for r in answered)
            stages[s] = {"p50": p["p50"], "p95": p["p95"], "max": p["max"]}
        return {
            "n": len(self.records),
            "answered": len(answered),
            "v2v_ms": percentiles(r.v2v_ms for r in answered),
            "stages": stages,
            "stalled": sum(1 for r in answered if r.stall_ms > 0),
            "stall_ms": percentiles(r.stall_ms for r in answered),
        }
