"""``voiceloop assistant`` (microphone + speaker) and ``voiceloop devices``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .asr_args import add_asr_args, second_opinion, whisper_options
from .llm_args import add_llm_args, llama_options
from .tool_args import add_tool_args, tool_factory
from .turn_args import add_turn_args, endpointing, turn_audio


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("devices", help="list audio input and output devices")
    d.set_defaults(func=_devices)
    p = sub.add_parser("assistant", help="talk to a local voice assistant (microphone and speaker)")
    p.add_argument("--input-device", help="input device index or name (default: the system default)")
    p.add_argument("--output-device", help="output device index or name")
    p.add_argument("--headphones", action="store_true", help="full duplex: no echo gate (only with headphones or AEC)")
    p.add_argument("--strategy", choices=["speculative", "sequential"], default="speculative")
    add_asr_args(p)
    add_llm_args(p)
    add_turn_args(p)
    add_tool_args(p, default_on=True)
    p.add_argument("--voice", help="a Piper voice .onnx")
    p.set_defaults(func=run)


def _dev(value: str | None) -> object:
    return int(value) if value is not None and value.isdigit() else value


def _devices(args: argparse.Namespace) -> int:
    from ..io.local_audio import list_devices

    print(list_devices())
    return 0


class StatusLine:
    """One live line (listening / hearing / thinking / speaking) above which turn lines scroll."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()

    def set(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\r\x1b[K" + text[:120])
        else:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def line(self, text: str) -> None:
        sys.stdout.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from ..io.local_audio import probe, sounddevice
    from ..pipeline.engines import Engines
    from ..tts.piper import PiperOptions

    # A missing PortAudio, a missing or busy device: each fails here, before any model loads.
    sd = sounddevice()
    probe(sd, _dev(args.input_device), "input")
    probe(sd, _dev(args.output_device), "output")
    print("loading models ...", file=sys.stderr)
    engines = Engines.load(
        whisper=whisper_options(args),
        second_opinion=second_opinion(args),
        llama=llama_options(args),
        piper=PiperOptions(model=args.voice),
        turn_audio=turn_audio(args),
    )
    engines.warm_up(tools=(make := tool_factory(args)) and make())
    try:
        asyncio.run(_assistant(engines, args))
    except KeyboardInterrupt:
        pass
    finally:
        engines.close()
    return 0


async def _assistant(engines, args: argparse.Namespace) -> None:
    from ..audio.resample import resample
    from ..core.events import (
        Announcement,
        Interrupted,
        ReplyAudio,
        ReplyText,
        SpeechStarted,
        Transcript,
        TurnEnded,
        TurnMetrics,
    )
    from ..io.echo import EchoGate
    from ..io.local_audio import Microphone, Speaker, _default_rate
    from ..pipeline.agent import AgentOptions, VoiceAgent

    loop = asyncio.get_running_loop()
    ui = StatusLine()
    mic = Microphone(device=_dev(args.input_device))
    out_rate = _default_rate(mic.sd, _dev(args.output_device), "output")
    spk = Speaker(rate=out_rate, device=_dev(args.output_device))
    if not args.headphones:
        mic.gate = EchoGate(spk)
    agent = VoiceAgent(
        engines=engines,
        options=AgentOptions(strategy=args.strategy, system=args.system),
        endpointing=endpointing(args) if args.strategy == "speculative" else None,
        tools=(make := tool_factory(args)) and make(),
    )
    dac: dict[int, int] = {}
    started: set[int] = set()
    replies: dict[int, list[str]] = {}
    mic.start()
    spk.start()
    ui.set("listening")
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def consume() -> None:
        async for ev in agent.process(mic.frames()):
            await handle(ev)

    async def handle(ev: object) -> None:
        if isinstance(ev, SpeechStarted):
            ui.set("hearing")
        elif isinstance(ev, Transcript) and not ev.final:
            ui.set(f'hearing "{ev.text}"')
        elif isinstance(ev, TurnEnded):
            ui.set("thinking")
        elif isinstance(ev, ReplyText):
            replies.setdefault(ev.turn_id, []).append(ev.text)
        elif isinstance(ev, ReplyAudio):
            pcm = resample(ev.frame.pcm, ev.frame.sample_rate, out_rate)
            first = None
            if ev.turn_id not in started:
                started.add(ev.turn_id)
                tid = ev.turn_id

                def first(at: int, tid: int = tid) -> None:
                    loop.call_soon_threadsafe(dac.setdefault, tid, at)

            spk.play(pcm, on_first_sample=first)
            ui.set("speaking")
        elif isinstance(ev, Interrupted):
            spk.flush()
            ui.line(f"[turn {ev.turn_id}] (interrupted: {ev.reason})")
            ui.set("hearing")
        elif isinstance(ev, TurnMetrics):
            rec = ev.record
            if rec.turn_id in dac:
                # The budget counts the first sample reaching the device, not Python queueing it.
                rec.marks["first_audio_out"] = max(dac[rec.turn_id], rec.marks.get("first_tts_audio", 0))
            st = rec.stages_ms()
            stages = " ".join(f"{k} {v:.0f}" for k, v in st.items())
            v2v = f"{rec.v2v_ms:.0f} ms" if rec.v2v_ms is not None else "-"
            ui.line(f'[turn {rec.turn_id}] you: "{rec.transcript}"  agent: "{rec.reply}"  v2v {v2v} ({stages})')
            for call in rec.tools:
                if "name" in call:
                    args = ", ".join(f"{k}={v!r}" for k, v in call["arguments"].items())
                    ui.line(f"    tool {call['name']}({args}) -> {call['result'][:80]!r} in {call['ms']:.0f} ms")
                elif "unfaithful" in call:
                    ui.line(f"    follow-up {call['unfaithful']!r} stopped: {call['numbers']} is in no tool result")
            ui.set("listening")
        elif isinstance(ev, Announcement):
            ui.line(f'[{"announcement"}] agent: "{ev.text}"  first audio {ev.late_ms:.0f} ms after it was due')

    task = asyncio.create_task(consume())
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # surface an error from the pipeline
    finally:
        task.cancel()
        waiter.cancel()
        await asyncio.gather(task, waiter, return_exceptions=True)
        mic.close()
        spk.close()
        s = agent.budgeter.summary()
        ui.line("")
        ui.line(f"session: {s['answered']} turns answered, input frames dropped {mic.dropped}")
        v = s["v2v_ms"]
        if v["p50"] is not None:
            ui.line(f"v2v ms p50 {v['p50']:.0f} p95 {v['p95']:.0f} max {v['max']:.0f}")
            ui.line(
                "stage p50/p95 ms: "
                + "  ".join(f"{k} {x['p50']:.0f}/{x['p95']:.0f}" for k, x in s["stages"].items() if x["p50"] is not None)
            )
            ui.line(f"replies that stalled (silence inside the reply): {s['stalled']}, max {s['stall_ms']['max']:.0f} ms")
