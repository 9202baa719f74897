"""Streams files through a real agent as a microphone would, and reports where the time went.

Each file becomes 20 ms frames at its own sample rate, paced in real time, then
3 s of silence so the turn can end, and more silence while the agent is still answering (a person waits for
the answer before the next request). Times in the report are ms from the start of
each input on the stream clock.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
import platform
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..audio.files import read_audio, write_wav
from ..audio.resample import PIPELINE_RATE, resample
from ..audio.vad import WINDOW_SAMPLES, SileroVAD
from ..core.clock import DEFAULT_CLOCK, Clock
from ..core.events import ReplyAudio, TurnMetrics
from ..core.frames import AudioFrame
from ..metrics.budget import STAGES, Budgets, LatencyBudgeter, TurnRecord, percentiles
from ..metrics.repetition import repetition
from ..metrics.wer import normalize, wer
from ..pipeline.agent import AgentOptions, Strategy, VoiceAgent
from ..pipeline.engines import Engines
from ..turn.base import EndpointingPolicy

log = logging.getLogger("voiceloop.profile")

FRAME_MS = 20
TAIL_SILENCE_S = 3.0
MAX_ANSWER_WAIT_S = 20.0
"""After an input's tail, how long the stream waits (in silence) for the agent to finish answering."""
ANSWER_GAP_S = 0.6
"""Silence after the answer ends before the next input, as a person pauses before speaking again."""
BUNDLED_SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "what_time_is_it.wav"


@dataclass(slots=True)
class InputSpan:
    path: Path
    start_ns: int = 0
    end_ns: int = 0
    speech_end_ms: float | None = None
    """Last voiced audio in the file (offline VAD): the user's real last word."""
    records: list[TurnRecord] = field(default_factory=list)
    reply_audio: list[np.ndarray] = field(default_factory=list)
    reply_rate: int = 22050


def last_speech_end_ms(samples16k: np.ndarray, vad: SileroVAD, threshold: float = 0.5) -> float | None:
    vad.reset()
    last = None
    n = samples16k.shape[0] // WINDOW_SAMPLES
    for i in range(n):
        if vad(samples16k[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES]) >= threshold:
            last = (i + 1) * WINDOW_SAMPLES * 1000 / PIPELINE_RATE
    return last


async def _paced_frames(
    inputs: list[tuple[InputSpan, np.ndarray, int]], clock: Clock, busy: Callable[[], bool] | None = None
) -> AsyncIterator[AudioFrame]:
    t0 = clock.now_ns()
    sent = 0  # ns of audio sent so far

    async def paced(pcm: np.ndarray, rate: int) -> AudioFrame:
        """The next frame, returned once it is due: a microphone delivers a frame once its last sample is captured."""
        nonlocal sent
        ts = t0 + sent
        sent += FRAME_MS * 1_000_000
        delay = (t0 + sent - clock.now_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        return AudioFrame(pcm=pcm, sample_rate=rate, timestamp_ns=ts)

    for span, samples, rate in inputs:
        span.start_ns = t0 + sent
        silence = np.zeros(int(TAIL_SILENCE_S * rate), dtype=np.float32)
        audio = np.concatenate([samples, silence])
        step = rate * FRAME_MS // 1000
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        for i in range(0, pcm.shape[0] - step + 1, step):
            yield await paced(pcm[i : i + step], rate)
        # A person waits for the answer before the next request: while the agent still answers after the
        # tail (a slow CPU, a long reply, a tool), more silence, then a short gap. Without this a slow
        # machine's replies were cut off by the next input and counted as barge-ins.
        if busy is not None:
            quiet = np.zeros(step, dtype=np.int16)
            waited = 0.0
            while busy() and waited < MAX_ANSWER_WAIT_S:
                yield await paced(quiet, rate)
                waited += FRAME_MS / 1000
            if waited:
                for _ in range(int(ANSWER_GAP_S * 1000 / FRAME_MS)):
                    yield await paced(quiet, rate)
        span.end_ns = t0 + sent


def load_inputs(paths: list[Path]) -> list[tuple[Path, np.ndarray, int]]:
    """Decode every input up front, so a bad file fails before any model loads."""
    return [(p, *read_audio(p)) for p in paths]


async def profile_inputs(
    engines: Engines,
    inputs: list[tuple[Path, np.ndarray, int]],
    *,
    strategy: Strategy = "speculative",
    budgets: Budgets | None = None,
    separate: bool = False,
    clock: Clock = DEFAULT_CLOCK,
    system: str | None = None,
    endpointing: EndpointingPolicy | None = None,
    tools: Callable[[], list] | None = None,
) -> tuple[list[InputSpan], LatencyBudgeter]:
    budgeter = LatencyBudgeter(budgets or Budgets())
    vad = SileroVAD(engines.vad_model)
    loaded = []
    for p, samples, rate in inputs:
        span = InputSpan(path=p, speech_end_ms=last_speech_end_ms(resample(samples, rate, PIPELINE_RATE), vad))
        loaded.append((span, samples, rate))
    groups = [[x] for x in loaded] if separate else [loaded]
    lags: list[float] = []
    for group in groups:
        agent = VoiceAgent(
            engines=engines,
            options=AgentOptions(strategy=strategy, system=system),
            budgeter=budgeter,
            clock=clock,
            endpointing=endpointing if strategy == "speculative" else None,
            tools=tools() if tools else None,
        )
        spans = [g[0] for g in group]
        turn_span: dict[int, InputSpan] = {}
        async for ev in agent.process(_paced_frames(group, clock, busy=lambda a=agent: a.busy)):
            if isinstance(ev, ReplyAudio):
                span = turn_span.get(ev.turn_id) or _span_at(spans, ev.frame.timestamp_ns)
                span.reply_audio.append(ev.frame.pcm)
                span.reply_rate = ev.frame.sample_rate
            elif isinstance(ev, TurnMetrics):
                rec: TurnRecord = ev.record
                span = _span_at(spans, rec.marks["speech_start"] + WINDOW_NS)
                turn_span[rec.turn_id] = span
                span.records.append(rec)
            elif ev.type == "speech_started":
                turn_span[ev.turn_id] = _span_at(spans, ev.at_ns + WINDOW_NS)  # type: ignore[attr-defined]
        lags += agent.input_lag_ms
        # Input lag in the last tenth of the session vs the first: a backlog would grow.
        tenth = max(1, len(agent.input_lag_ms) // 10)
        budgeter.input_lag = {
            **percentiles(lags),
            "first_tenth_p95": percentiles(agent.input_lag_ms[:tenth])["p95"],
            "last_tenth_p95": percentiles(agent.input_lag_ms[-tenth:])["p95"],
        }
    return [g[0] for g in loaded], budgeter


WINDOW_NS = WINDOW_SAMPLES * 1_000_000_000 // PIPELINE_RATE
"""Speech starts at its first voiced VAD window, which may begin up to a window before the clip's first sample
(a clip without leading silence, as espeak-ng writes them): its end is inside the clip."""


def _span_at(spans: list[InputSpan], ns: int) -> InputSpan:
    for s in spans:
        if s.start_ns <= ns < (s.end_ns or ns + 1):
            return s
    return spans[-1]


def system_info(engines: Engines) -> dict[str, Any]:
    import ctranslate2
    import llama_cpp

    try:
        from importlib.metadata import version

        piper_v = version("piper-tts")
        fw_v = version("faster-whisper")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        piper_v = fw_v = "?"
    return {
        "voiceloop": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "versions": {
            "faster-whisper": fw_v,
            "ctranslate2": ctranslate2.__version__,
            "llama-cpp-python": llama_cpp.__version__,
            "piper-tts": piper_v,
        },
        "models": engines.describe(),
    }


def _cpu_name() -> str:
    from ..llm.cpu_policy import read_cpu_info

    return read_cpu_info().model_name


def load_references(path: Path) -> dict[str, str]:
    """file name -> transcript, from a manifest.tsv (file, ..., transcript) or a JSON object."""
    from ..errors import ConfigError

    try:
        if path.suffix == ".json":
            return {Path(k).name: v for k, v in json.loads(path.read_text()).items()}
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"cannot read the reference manifest {path}: {exc}") from None
    if rows and not {"file", "transcript"} <= set(rows[0]):
        raise ConfigError(
            f"reference manifest {path} needs a header line with the columns 'file' and 'transcript' "
            f"(tab-separated); it has {', '.join(repr(k) for k in rows[0])}"
        )
    return {Path(r["file"]).name: r["transcript"] for r in rows}


def _said(turn: dict) -> str:
    """The reply as the model wrote it: a tool turn's filler ("One moment.") is the pipeline's, not a sentence the
    repetition metrics should hold against the model."""
    reply = turn["reply"] or ""
    for rec in turn.get("tools") or []:
        if "filler" in rec and reply.startswith(rec["filler"]):
            reply = reply[len(rec["filler"]) :].lstrip()
    return reply


def build_report(
    spans: list[InputSpan],
    budgeter: LatencyBudgeter,
    *,
    strategy: str,
    system: dict[str, Any],
    references: dict[str, str] | None = None,
    separate: bool = False,
) -> dict[str, Any]:
    """``separate``: each input was its own conversation (no reply can copy another conversation's)."""
    budgets = budgeter.budgets
    turns = []
    for span in spans:
        # The answer to an input is its last turn; earlier ones were cut in (and barged into).
        answer = next(
            (r for r in reversed(span.records) if r.marks.get("first_audio_out") and not r.extra.get("merged_into_next")),
            None,
        )
        rec = answer or (span.records[-1] if span.records else None)
        t: dict[str, Any] = {"input": str(span.path), "transcript": "", "reply": "", "speech_end_ms": None,
                             "first_audio_ms": None, "v2v_ms": None, "stages": {}, "over_budget": []}  # fmt: skip
        if rec is not None:
            d = rec.to_dict(origin_ns=span.start_ns, budgets=budgets)
            t.update(d)
            t["input"] = str(span.path)
            # Merged (cut-in) turns are contained in the turn that continued them.
            t["transcript"] = " ".join(r.transcript for r in span.records if not r.extra.get("merged_into_next")).strip()
            t["speech_end_ms"] = d["marks_ms"].get("speech_end")
            t["first_audio_ms"] = d["marks_ms"].get("first_audio_out")
        first_out = [
            (r.marks["first_audio_out"] - span.start_ns) / 1e6 for r in span.records if r.marks.get("first_audio_out")
        ]
        t["user_last_speech_ms"] = span.speech_end_ms
        t["cut_in"] = bool(first_out and span.speech_end_ms is not None and min(first_out) < span.speech_end_ms)
        t["turns_in_input"] = len(span.records)
        t["interim_count"] = sum(r.interim_count for r in span.records)
        t["preemptions"] = sum(r.preemptions for r in span.records)
        t["discarded"] = sum(r.discarded for r in span.records)
        if references is not None and span.path.name in references:
            t["reference"] = references[span.path.name]
        turns.append(t)
    answered = [t for t in turns if t["v2v_ms"] is not None]
    stages = {}
    for s in STAGES:
        p = percentiles(t["stages"].get(s) for t in answered)
        stages[s] = {"p50": p["p50"], "p95": p["p95"]}
    summary: dict[str, Any] = {
        "strategy": strategy,
        "n": len(turns),
        "answered": len(answered),
        "v2v_ms": percentiles(t["v2v_ms"] for t in answered),
        "stages": stages,
        "cut_ins": sum(t["cut_in"] for t in turns),
        # A reply that starts fast and then stops mid-sentence waiting for its next clause.
        "stalls": {
            "turns": sum(1 for t in answered if t.get("stall_ms", 0) > 0),
            "ms": percentiles(t.get("stall_ms", 0.0) for t in answered),
        },
        "preemptions": sum(t["preemptions"] for t in turns),
        "discarded": sum(t["discarded"] for t in turns),
        "committed": sum(1 for t in answered if t.get("preemption") in ("committed", "restarted")),
        "input_lag_ms": budgeter.input_lag,
    }
    groups = [[t] for t in answered] if separate else [answered]
    reps = [
        (
            g,
            repetition(
                [t["transcript"] or "" for t in g],
                [_said(t) for t in g],
                {i for i, t in enumerate(g) if any("name" in c for c in t.get("tools") or [])},
            ),
        )
        for g in groups
    ]
    distinct = {tuple(normalize(t["reply"])) for t in answered if t["reply"] and normalize(t["reply"])}
    summary["replies"] = {
        "n": sum(r.replies for _, r in reps),
        "distinct": len(distinct),
        "repeats": sum(len(r.repeats) for _, r in reps),
        "echoes": sum(len(r.echoes) for _, r in reps),
        "formulas": sum(len(r.formulas) for _, r in reps),
        "templates": sum(len(r.templates) for _, r in reps),
        "ruts": sum(len(r.ruts) for _, r in reps),
    }
    for g, r in reps:
        for i in r.repeats:
            g[i]["repeat"] = True
        for i in r.echoes:
            g[i]["echo"] = True
        for i in r.templates:
            g[i]["template"] = True
        for i in r.ruts:
            g[i]["rut"] = True
    refd = [t for t in turns if "reference" in t]
    if refd:
        summary["wer"] = wer([t["reference"] for t in refd], [t["transcript"] for t in refd])
        summary["wer_n"] = len(refd)
    return {"system": system, "budgets": budgets.as_dict(), "turns": turns, "summary": summary}


def save_replies(spans: list[InputSpan], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, span in enumerate(spans):
        if span.reply_audio:
            write_wav(out_dir / f"{i:02d}_{span.path.stem}.reply.wav", np.concatenate(span.reply_audio), span.reply_rate)


def format_table(report: dict[str, Any]) -> str:
    cols = ["vad", "asr", "llm", "clause", "tts", "release", "endpoint"]
    lines = []
    head = f"{'input':<34} {'v2v':>6} " + " ".join(f"{c:>8}" for c in cols) + "  cut  transcript -> reply"
    lines.append(head)
    lines.append("-" * len(head))

    def f(v: float | None) -> str:
        return f"{v:.0f}" if v is not None else "-"

    for t in report["turns"]:
        st = t["stages"]
        over = set(t.get("over_budget", []))
        cells = " ".join(f"{f(st.get(c)) + ('*' if c in over else ''):>8}" for c in cols)
        v2v = f(t["v2v_ms"]) + ("*" if "v2v" in over else "")
        text = f"{t['transcript'][:40]!r} -> {t['reply'][:40]!r}"
        calls = [c for c in t.get("tools", []) if "name" in c]
        if calls:
            text += "  tools: " + ", ".join(f"{c['name']}({c['ms']:.0f} ms{'' if c['ok'] else ', failed'})" for c in calls)
        lines.append(f"{Path(t['input']).name[:34]:<34} {v2v:>6} {cells}  {'yes' if t['cut_in'] else 'no ':>3}  {text}")
    s = report["summary"]
    v = s["v2v_ms"]
    lines.append("-" * len(head))
    lines.append(
        f"strategy={s['strategy']} answered {s['answered']}/{s['n']}  v2v ms p50 {f(v['p50'])} p90 {f(v['p90'])} "
        f"p95 {f(v['p95'])} max {f(v['max'])}  cut-ins {s['cut_ins']}  preemptions {s['preemptions']} "
        f"(discarded {s['discarded']})" + (f"  WER {s['wer']:.3f}" if "wer" in s else "")
    )
    if "replies" in s:
        r = s["replies"]
        lines.append(
            f"replies: {r['distinct']} distinct of {r['n']}, {r['repeats']} copied an earlier reply, "
            f"{r.get('echoes', 0)} read the user's line back, {r.get('formulas', 0)} closed with an earlier opening, "
            f"{r.get('templates', 0)} opened as an earlier reply did, {r.get('ruts', 0)} opened as the two before"
        )
    if "stalls" in s:
        st = s["stalls"]
        lines.append(
            f"reply stalls (the next clause not ready when the audio before it ran out): {st['turns']} of "
            f"{s['answered']} replies; silence inside a reply p50 {f(st['ms']['p50'])} p95 {f(st['ms']['p95'])} "
            f"max {f(st['ms']['max'])} ms"
        )
    lag = s.get("input_lag_ms") or {}
    if lag.get("p50") is not None:
        lines.append(
            f"input lag ms (VAD window end -> handled): p50 {f(lag['p50'])} p95 {f(lag['p95'])} max {f(lag['max'])}; "
            f"p95 first tenth {f(lag['first_tenth_p95'])}, last tenth {f(lag['last_tenth_p95'])}"
        )
    lines.append("stage p50/p95 ms: " + "  ".join(f"{k} {f(x['p50'])}/{f(x['p95'])}" for k, x in s["stages"].items()))
    lines.append("(* = over budget; budgets: " + ", ".join(f"{k}={v:.0f}" for k, v in report["budgets"].items()) + ")")
    return "\n".join(lines)
