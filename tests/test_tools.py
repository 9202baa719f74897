"""Tools: declaring, parsing streamed calls, running them, the built-ins (timers on a replaceable clock),
the HTTP example against a local server, the agent's tool rounds with fakes, then the real models."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from test_agent_fakes import FakeASR, FakeLLM, FakeTTS, _frames

from voiceloop import AgentOptions, Engines, VoiceAgent
from voiceloop.core.clock import ManualClock, MonotonicClock
from voiceloop.core.events import Announcement, ReplyAudio, ReplyText, TurnMetrics
from voiceloop.errors import ConfigError
from voiceloop.llm.backend import GenerationStats
from voiceloop.tools import (
    HomeAssistant,
    Timers,
    ToolCall,
    ToolCallFilter,
    ToolOptions,
    ToolRunner,
    builtin_tools,
    check_call,
    tool,
)
from voiceloop.tools.builtin.calculator import evaluate
from voiceloop.tools.builtin.clock import current_time, resolve_zone
from voiceloop.tools.builtin.units import convert

DATA = Path(__file__).parent / "data"


# -- declaring ---------------------------------------------------------------------------------------
def test_tool_schema_comes_from_hints_and_docstring():
    @tool
    def book(city: str, nights: int, kind: Literal["hotel", "hostel"] = "hotel", note: str | None = None) -> str:
        """Book a room.

        Args:
            city: where to stay.
            nights: how many nights.
        """
        return "ok"

    s = book.schema()["function"]
    assert s["name"] == "book" and s["description"] == "Book a room."
    props = s["parameters"]["properties"]
    assert props["city"] == {"type": "string", "description": "where to stay."}
    assert props["nights"]["type"] == "integer"
    assert props["kind"] == {"type": "string", "enum": ["hotel", "hostel"]}
    assert s["parameters"]["required"] == ["city", "nights"]
    assert not book.is_async


def test_tool_declaration_errors_are_clear():
    with pytest.raises(ConfigError, match="docstring"):

        @tool
        def nodoc(x: int) -> int:
            return x

    with pytest.raises(ConfigError, match="type hint"):

        @tool
        def nohint(x) -> int:
            """X."""
            return x


# -- parsing streamed calls ----------------------------------------------------------------------------
def test_call_filter_never_lets_a_call_reach_speech():
    f = ToolCallFilter()
    text = 'Sure. <tool_call>\n{"name": "set_timer", "arguments": {"minutes": 5}}\n</tool_call>'
    out = "".join(f.feed(text[i : i + 3]) for i in range(0, len(text), 3)) + f.flush()
    assert out == "Sure. " and "<" not in out
    assert f.calls == [ToolCall("set_timer", {"minutes": 5}, f.calls[0].raw)]
    # A "<" that is not a call is spoken once it cannot be one.
    g = ToolCallFilter()
    assert g.feed("3 <") == "3 " and g.feed(" 4") == "< 4"


def test_a_reply_cut_off_inside_a_calls_tag_does_not_speak_the_tag():
    f = ToolCallFilter()
    said = f.feed("That's a good plan.\n\n<tool") + f.flush()
    assert said.strip() == "That's a good plan." and not f.calls
    f = ToolCallFilter()
    assert (f.feed("Two is less than three: 2 <") + f.flush()).strip() == "Two is less than three: 2 <"  # not a tag


def test_malformed_and_cut_off_calls_become_errors_not_crashes():
    f = ToolCallFilter()
    f.feed('<tool_call>{"name": "set_timer", "arguments": {"minutes": }</tool_call>')
    assert f.calls[0].error and "JSON" in f.calls[0].error
    g = ToolCallFilter()
    g.feed('<tool_call>{"name": "set_timer", "argu')
    assert g.flush() == "" and "cut off" in g.calls[0].error


def test_check_call_coerces_and_reports():
    @tool
    def t(minutes: float, label: str | None = None) -> str:
        """T."""
        return ""

    tools = {"t": t}
    assert check_call(ToolCall("t", {"minutes": "5"}), tools).arguments == {"minutes": 5.0}
    assert "no tool named 'u'" in check_call(ToolCall("u", {}), tools).error
    assert "must be a number" in check_call(ToolCall("t", {"minutes": "soon"}), tools).error
    assert "missing argument 'minutes'" in check_call(ToolCall("t", {}), tools).error


# -- running -----------------------------------------------------------------------------------------
async def test_runner_runs_sync_tools_off_the_loop_with_a_timeout():
    seen = {}

    @tool(timeout_s=0.2)
    def slow(seconds: float) -> str:
        """Sleep."""
        seen["thread"] = threading.current_thread().name
        time.sleep(seconds)
        return "done"

    @tool
    def boom() -> str:
        """Fail."""
        raise RuntimeError("disk on fire")

    r = ToolRunner([slow, boom])
    ok = await r.run(ToolCall("slow", {"seconds": 0.01}))
    assert ok.ok and ok.content == "done" and seen["thread"] != threading.current_thread().name
    late = await r.run(ToolCall("slow", {"seconds": 1.0}))
    assert not late.ok and "within 0.2 s" in late.content
    bad = await r.run(ToolCall("boom", {}))
    assert not bad.ok and "disk on fire" in bad.content
    r.close()


async def test_cancelling_a_run_cancels_an_async_tool():
    cancelled = asyncio.Event()

    @tool
    async def wait_forever() -> str:
        """Wait."""
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ""

    r = ToolRunner([wait_forever])
    task = asyncio.create_task(r.run(ToolCall("wait_forever", {})))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


# -- built-ins ---------------------------------------------------------------------------------------
def test_calculator_is_arithmetic_only():
    assert evaluate("17 * 23") == 391
    assert evaluate("2 to the power of 10") == 1024
    assert evaluate("15/100*80") == 12
    assert evaluate("(12.5 + 7) / 3") == 6.5
    for evil in ("__import__('os').system('true')", "open('/etc/passwd')", "[1]*10**9", "(lambda: 1)()"):
        with pytest.raises(ValueError):
            evaluate(evil)


def test_units_and_time_zones():
    assert convert(60, "miles", "km") == pytest.approx(96.56064)
    assert convert(72, "fahrenheit", "celsius") == pytest.approx(22.2222, abs=1e-3)
    assert convert(5, "kilogrammes", "pounds") == pytest.approx(11.0231, abs=1e-3)  # British spelling, as Whisper writes it
    assert convert(500, "mg", "g") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="cannot convert"):
        convert(1, "kg", "km")
    assert str(resolve_zone("Tokyo")) == "Asia/Tokyo" and str(resolve_zone("new york")) == "America/New_York"
    assert "JST" in current_time.fn("Tokyo")
    with pytest.raises(ValueError, match="no time zone"):
        resolve_zone("Atlantis")
    # What the model writes for "What time is it?" is the local time, not an error (seen: place="local").
    for here in ("local", "Local time", "here", "my location", ""):
        assert resolve_zone(here) is None, here
    assert not current_time.fn("local").startswith("in ")


async def test_timers_fire_on_the_replaceable_clock():
    clock = ManualClock(start_ns=10**12)
    timers = Timers(clock=clock)
    said: list[tuple[str, int]] = []

    async def announce(text: str, due_ns: int) -> None:
        said.append((text, clock.now_ns() - due_ns))

    runner = asyncio.create_task(timers.run(announce, tick_s=0.005, lead_s=0.0))
    assert "5 seconds" in timers.set_timer(seconds=5, label="tea")
    timers.set_reminder("call mum", when="in 1 minute")
    assert "tea: 5 seconds left" in timers.list_timers()
    clock.advance_ms(4_900)
    await asyncio.sleep(0.03)
    assert said == []
    clock.advance_ms(100)
    await asyncio.sleep(0.03)
    assert said == [("The tea timer is done.", 0)]
    assert timers.cancel_timer("reminder") == "cancelled the reminder"
    clock.advance_ms(120_000)
    await asyncio.sleep(0.03)
    assert len(said) == 1
    runner.cancel()


def test_cancelling_a_timer_by_a_label_nobody_gave():
    timers = Timers(clock=ManualClock(start_ns=10**12))
    timers.set_timer(minutes=5)
    # "Cancel my timer." written as cancel_timer(label="pasta") (the description's example): one is running.
    assert timers.cancel_timer("pasta") == "cancelled the timer" and "no timers" in timers.list_timers()
    timers.set_timer(minutes=5, label="tea")
    timers.set_reminder("call mum", when="in 1 minute")
    # With two running, a label that matches none cancels nothing and says what is running.
    assert timers.cancel_timer("pasta") == "there is no timer called pasta; running: reminder, tea"
    assert timers.cancel_timer("Tea") == "cancelled the tea"


# -- the HTTP example, against a local server ---------------------------------------------------------
def test_a_reply_copying_the_recaps_call_label_is_a_call():
    f = ToolCallFilter()
    said = "".join(f.feed(p) for p in ["You", " called", ": ", '{"name": "set_timer", ', '"arguments": {"minutes": 5}}'])
    assert said + f.flush() == "" and (f.calls[0].name, f.calls[0].arguments) == ("set_timer", {"minutes": 5})
    for text in ["You're welcome.", "You called: nobody yet.", "You called me earlier."]:
        f = ToolCallFilter()
        assert f.feed(text) + f.flush() == text and not f.calls


def test_reminder_times_are_read_as_said():
    from datetime import datetime

    from voiceloop.tools.builtin.timers import seconds_until

    now = datetime(2026, 11, 26, 14, 0)
    minutes = {
        "in 20 minutes": 20, "20 minutes from now": 20, "in an hour": 60, "half an hour": 30, "in 1.5 hours": 90,
        "1 hour 30 minutes": 90, "18:30": 270, "6:30 pm": 270, "6:30 p.m.": 270, "9 a.m.": 19 * 60,
        "7 15": 5 * 60 + 15, "7:15": 5 * 60 + 15, "07:15": 17 * 60 + 15, "noon": 22 * 60,
        "in 9 am": 19 * 60, "by 6:30 pm": 270,  # a model's preposition before a clock time
    }  # fmt: skip
    for when, m in minutes.items():
        assert seconds_until(when, now) == m * 60, when
    for bad in ("now", "later", "25:00", "9:75", "in 7"):
        with pytest.raises(ValueError, match="cannot read when"):
            seconds_until(bad, now)


def test_home_assistant_calls_the_real_endpoint(ha_server):
    ha = HomeAssistant(ha_server.url, token="secret")
    assert ha.turn_off_light("the kitchen lights") == "light.kitchen turned off"
    assert ha.turn_on_light("living room", brightness_percent=50) == "light.living_room turned on at 50 % brightness"
    assert ha_server.requests == [
        ("/api/services/light/turn_off", "Bearer secret", {"entity_id": "light.kitchen"}),
        ("/api/services/light/turn_on", "Bearer secret", {"entity_id": "light.living_room", "brightness_pct": 50}),
    ]
    with pytest.raises(RuntimeError, match="401"):
        HomeAssistant(ha_server.url, token="wrong").turn_off_light("kitchen")
    with pytest.raises(RuntimeError, match="cannot reach"):
        HomeAssistant("http://127.0.0.1:9", token="x").turn_off_light("kitchen")


# -- the agent's tool rounds, with fakes ---------------------------------------------------------------
class ToolLLM(FakeLLM):
    """Calls set_timer on the first pass; after the result, answers from it."""

    def __init__(self, call: str, times: int = 99) -> None:
        super().__init__()
        self.call = call
        self.times = times
        self.seen: list[tuple] = []

    def stream(
        self, history, user_text, *, stop=None, max_tokens=64, stats=None, tools=None, after=None, tool_choice="auto"
    ):
        self.seen.append((tools is not None, list(after or []), tool_choice))
        if not after and self.times <= 0:
            yield "Done: nothing to do."
        elif not after:
            self.times -= 1
            yield from ["<tool", "_call>\n", self.call[:10], self.call[10:], "\n</tool_call>"]
        else:
            yield f"Done: {after[-1].content}."


async def _one_timer_turn(data_dir, llm, set_timer):
    """One spoken request through the agent with the fake ASR/TTS and this LLM; (engines, events, said clauses)."""
    from voiceloop.audio.files import read_audio_16k

    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(3 * 16000, np.float32)])
    engines = Engines(asr=FakeASR(split_s=0), llm=llm, tts=FakeTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock, tools=[set_timer])
    events = [ev async for ev in agent.process(_frames(audio, clock))]
    return engines, events, [e.text for e in events if isinstance(e, ReplyText)]


async def test_agent_runs_a_tool_speaks_a_filler_and_the_answer(data_dir):
    @tool
    def set_timer(minutes: float) -> str:
        """Start a timer."""
        time.sleep(0.45)  # slower than the filler delay
        return f"timer set for {minutes:g} minutes"

    llm = ToolLLM('{"name": "set_timer", "arguments": {"minutes": 5}}')
    engines, events, said = await _one_timer_turn(data_dir, llm, set_timer)
    assert said[0] == "One moment." and " ".join(said[1:]) == "Done: timer set for 5 minutes.", said
    assert not any("tool_call" in s for s in said)
    rec = next(e.record for e in events if isinstance(e, TurnMetrics))
    calls = [t for t in rec.tools if "name" in t]
    assert calls[0]["name"] == "set_timer" and calls[0]["arguments"] == {"minutes": 5.0} and calls[0]["ok"]
    assert calls[0]["ms"] >= 400 and {"filler": "One moment."} in rec.tools
    assert rec.reply == "Done: timer set for 5 minutes."
    assert rec.marks["filler"] <= rec.marks["first_audio_out"]  # the filler was the first audio
    assert llm.seen[0][0] and llm.seen[1][1][0].role == "assistant" and llm.seen[1][1][1].role == "tool"
    engines.close()


class ImitatingLLM(ToolLLM):
    """Answers after the tool result with a number from nowhere, as the 1.5B did in a spoken session ("Start a
    5 minute timer." → set_timer(5) → "The answer is 1025.", imitating "The answer is 1024." two turns before)."""

    def __init__(self, call: str, follow_up: list[str]) -> None:
        super().__init__(call)
        self.follow_up = follow_up
        self.yielded_after = 0

    def stream(self, history, user_text, *, after=None, **kw):
        if not after:
            yield from super().stream(history, user_text, after=after, **kw)
            return
        for piece in self.follow_up:
            self.yielded_after += 1
            time.sleep(0.05)  # a token's time: the reply's checks keep up with the model, as with a real one
            yield piece


_MORE = [" It", " goes", " on", " and", " on", " for", " a", " while."]


@pytest.mark.parametrize(
    ("follow_up", "heard", "stopped"),
    [
        # The first sentence invents: the user hears the tool's result instead (a follow-up's first clause is
        # whole, not cut after two words: the filler already gave the first audio).
        (["The answer", " is 1025.", " It is", " done.", *_MORE], ["Timer set for 5 minutes."], True),
        # After a fragment already said (a comma), the result still follows.
        (["Well,", " it's 1025.", *_MORE], ["Well,", "Timer set for 5 minutes."], True),
        (["That's 1025 minutes.", *_MORE], ["Timer set for 5 minutes."], True),
        # A later clause invents: what was said stands, the rest is not said.
        (["The timer is set for 5 minutes.", " That is", " 17 eggs.", *_MORE], ["The timer is set for 5 minutes."], True),
        # Faithful (a number word): said whole.
        (["Five minutes,", " starting now."], ["Five minutes,", "starting now."], False),
    ],
)
async def test_a_follow_up_that_invents_a_number_is_not_said(data_dir, follow_up, heard, stopped):
    @tool
    def set_timer(minutes: float) -> str:
        """Start a timer."""
        return f"timer set for {minutes:g} minutes"

    llm = ImitatingLLM('{"name": "set_timer", "arguments": {"minutes": 5}}', follow_up)
    engines, events, said = await _one_timer_turn(data_dir, llm, set_timer)
    said = [s for s in said if s != "One moment."]
    assert said == heard, said
    rec = next(e.record for e in events if isinstance(e, TurnMetrics))
    assert rec.reply.endswith(" ".join(heard)) and "1025" not in rec.reply and "17" not in rec.reply
    assert bool([t for t in rec.tools if "unfaithful" in t]) == stopped, rec.tools
    if stopped:
        # The round stopped at the invention, not at the end of the reply.
        assert llm.yielded_after < len(follow_up), llm.yielded_after
    engines.close()


def test_faithful_numbers_and_the_result_sentence():
    from voiceloop.tools.faithful import Sources, result_sentence

    src = Sources(["What is 72 degrees Fahrenheit in Celsius?", "72 fahrenheit = 22.22 celsius"])
    assert src.unsupported("That is 22.22 degrees, about 22, or twenty-two.") == []
    assert src.unsupported("That is 22.3 degrees.") == [22.3]
    clock = Sources(["in Tokyo: Friday 27 November 2026, 21:57 (JST, UTC+09:00)"])
    assert clock.unsupported("It is 9:57 pm on Friday the 27th.") == [] and clock.unsupported("It is 10:57.") == [10]
    assert result_sentence(["7 * 8 * 9 = 504"]) == "The answer is 504."
    assert result_sentence(["10 feet = 3.048 meters"]) == "10 feet is 3.048 meters."
    assert result_sentence(["light.living_room turned on (200)"]) == "The living room light turned on."
    assert result_sentence(["error: set_timer failed: boom"]) == "Sorry, that did not work."


class UnseenCallLLM(ToolLLM):
    """Writes its call unseen, as the backend does for an unsure decision: it says the call started, takes 0.6 s,
    and only then yields the whole call."""

    def stream(self, history, user_text, *, stats=None, after=None, **kw):
        if after:
            yield f"Done: {after[-1].content}."
            return
        if stats is not None and stats.on_call_start is not None:
            stats.on_call_start()
        time.sleep(0.6)
        yield f"<tool_call>\n{self.call}\n</tool_call>"


async def test_a_call_written_unseen_gets_its_filler_from_when_it_started(data_dir):
    @tool
    def set_timer(minutes: float) -> str:
        """Start a timer."""
        return f"timer set for {minutes:g} minutes"

    llm = UnseenCallLLM('{"name": "set_timer", "arguments": {"minutes": 5}}')
    engines, events, said = await _one_timer_turn(data_dir, llm, set_timer)
    assert said[0] == "One moment." and " ".join(said[1:]) == "Done: timer set for 5 minutes.", said
    rec = next(e.record for e in events if isinstance(e, TurnMetrics))
    # The filler is spoken while the call is still being written: before the model's first (visible) token.
    assert rec.marks["filler"] < rec.marks["first_token"], rec.marks
    engines.close()


class CallingLLM(ToolLLM):
    """Calls the tool whenever it may (a small model that does not stop calling)."""

    def stream(self, history, user_text, **kw):
        self.seen.append((kw.get("tools") is not None, list(kw.get("after") or []), kw.get("tool_choice", "auto")))
        if kw.get("tool_choice", "auto") == "auto":
            yield from ["<tool_call>\n", self.call, "\n</tool_call>"]
        else:
            yield f"It is {kw['after'][-1].content}."


async def _one_turn(llm, tools):
    """The lamp recording through an agent with fake ASR and TTS around ``llm``: (agent, events, turn record)."""
    from voiceloop.audio.files import read_audio_16k

    speech = read_audio_16k(DATA / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    audio = np.concatenate([speech, np.zeros(3 * 16000, np.float32)])
    engines = Engines(asr=FakeASR(split_s=0), llm=llm, tts=FakeTTS())
    clock = MonotonicClock()
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock, tools=tools)
    events = [ev async for ev in agent.process(_frames(audio, clock))]
    engines.close()
    return agent, events, next(e.record for e in events if isinstance(e, TurnMetrics))


async def test_the_last_round_must_answer_in_words():
    """A model that keeps calling gets max_rounds of tools, then a round where calls are not allowed: the
    user hears the answer from the results, not a refusal."""
    llm = CallingLLM('{"name": "current_time", "arguments": {"place": "Tokyo"}}')
    agent, _, rec = await _one_turn(llm, [current_time])
    rounds = agent.tool_runner.options.max_rounds
    assert [c for _, _, c in llm.seen] == ["auto"] * rounds + ["none"]
    assert len([t for t in rec.tools if "name" in t]) == rounds
    assert rec.reply.startswith("It is ") and "could not" not in rec.reply


async def test_agent_tells_the_model_about_a_bad_call():
    _, _, rec = await _one_turn(ToolLLM('{"name": "launch_rocket", "arguments": {}}'), [current_time])
    assert not rec.tools[0]["ok"] and "no tool named 'launch_rocket'" in rec.tools[0]["result"]
    assert "no tool named" in rec.reply  # the model was told, and answered from it


async def test_a_timer_speaks_on_time_while_the_conversation_goes_on(data_dir):
    """Turn 1 sets a 2 s timer; the timer speaks on its own within 200 ms; turn 2 still gets its answer."""
    from voiceloop.audio.files import read_audio_16k

    speech = read_audio_16k(data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav")
    gap = np.zeros(int(3.5 * 16000), np.float32)
    audio = np.concatenate([speech, gap, speech, np.zeros(3 * 16000, np.float32)])
    llm = ToolLLM('{"name": "set_timer", "arguments": {"seconds": 2}}', times=1)
    engines = Engines(asr=FakeASR(split_s=0), llm=llm, tts=FakeTTS())
    clock = MonotonicClock()
    timers = Timers(clock=clock)
    agent = VoiceAgent(engines=engines, options=AgentOptions(prefill=False), clock=clock, tools=[timers])
    events = [ev async for ev in agent.process(_frames(audio, clock))]
    anns = [e for e in events if isinstance(e, Announcement)]
    assert len(anns) == 1 and anns[0].text == "Your timer is done."
    assert 0 <= anns[0].late_ms <= 200, anns[0].late_ms
    ann_audio = [e for e in events if isinstance(e, ReplyAudio) and e.turn_id == anns[0].turn_id]
    assert ann_audio and ann_audio[0].frame.timestamp_ns == anns[0].first_audio_ns
    turns = [e.record for e in events if isinstance(e, TurnMetrics)]
    assert len(turns) == 2 and all(t.reply.startswith("Done:") for t in turns)
    engines.close()


# -- the remote backend's standard tools field, against a scripted server -------------------------------
def test_remote_backend_sends_tools_and_reads_tool_calls():
    from voiceloop.llm.prompt import Message
    from voiceloop.llm.remote import RemoteBackend, RemoteOptions

    bodies = []

    class Server(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunks = [
                {"delta": {"tool_calls": [{"index": 0, "function": {"name": "current_time", "arguments": ""}}]}},
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"place": '}}]}},
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Tokyo"}'}}]}},
                {"delta": {}, "finish_reason": "tool_calls"},
            ]
            for c in chunks:
                self.wfile.write(b"data: " + json.dumps({"choices": [c]}).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        be = RemoteBackend(RemoteOptions(url=f"http://127.0.0.1:{srv.server_address[1]}/v1"))
        out = "".join(be.stream([], "What time is it in Tokyo?", tools=[current_time.schema()]))
        f = ToolCallFilter()
        assert f.feed(out) + f.flush() == ""
        assert f.calls[0].name == "current_time" and f.calls[0].arguments == {"place": "Tokyo"}
        assert bodies[0]["tools"][0]["function"]["name"] == "current_time"
        after = [Message("assistant", f.calls[0].raw), Message("tool", "03:36 JST")]
        list(be.stream([], "What time is it in Tokyo?", tools=[current_time.schema()], after=after))
        msgs = bodies[1]["messages"]
        assert msgs[-2]["tool_calls"][0]["function"]["name"] == "current_time"
        assert msgs[-1] == {"role": "tool", "tool_call_id": msgs[-2]["tool_calls"][0]["id"], "content": "03:36 JST"}
    finally:
        srv.shutdown()


# -- real models ---------------------------------------------------------------------------------------
@pytest.mark.models
def test_real_llm_calls_the_right_tool(engines):
    from voiceloop.tools import builtin_tools

    tools = [*builtin_tools(), *Timers().tools()]
    by_name = {t.name: t for t in tools}
    schemas = [t.schema() for t in tools]
    cases = {
        "What time is it in Tokyo?": ("current_time", lambda a: "tokyo" in a.get("place", "").lower()),
        "Set a timer for ten minutes.": ("set_timer", lambda a: a.get("minutes", 0) * 60 + a.get("seconds", 0) == 600),
    }
    for text, (name, ok) in cases.items():
        f = ToolCallFilter()
        f.feed("".join(engines.llm.stream([], text, max_tokens=64, tools=schemas)))
        f.flush()
        assert f.calls, text
        call = check_call(f.calls[0], by_name)
        assert call.name == name and call.error is None and ok(call.arguments), (text, call)
    f = ToolCallFilter()
    f.feed("".join(engines.llm.stream([], "Who wrote Romeo and Juliet?", max_tokens=32, tools=schemas)))
    f.flush()
    assert not f.calls
    # The follow-up after a result says the answer (it used to ask the user's question back).
    from voiceloop.llm.prompt import Message
    from voiceloop.tools import ToolRunner

    q = "What is 17 times 23?"
    f = ToolCallFilter()
    f.feed("".join(engines.llm.stream([], q, max_tokens=64, tools=schemas)))
    f.flush()
    assert f.calls and check_call(f.calls[0], by_name).name == "calculate", f.calls
    result = asyncio.run(ToolRunner(tools).run(f.calls[0]))
    after = [Message("assistant", f.calls[0].raw), Message("tool", result.content)]
    reply = "".join(engines.llm.stream([], q, max_tokens=32, tools=schemas, after=after, tool_choice="none"))
    assert "391" in reply and "?" not in reply, reply
    # tool_choice="none" (the last round): the same request the model calls a tool for gets words.
    text = "".join(engines.llm.stream([], "What time is it in Tokyo?", max_tokens=24, tools=schemas, tool_choice="none"))
    f = ToolCallFilter()
    f.feed(text)
    f.flush()
    assert not f.calls and text.strip() and "tool_call" not in text, text


@pytest.mark.models
async def test_real_agent_sets_a_timer_by_voice_and_it_speaks(engines, paced_frames):
    from voiceloop.audio.resample import resample

    tts = engines.tts
    # Ten seconds: long enough for the turn that sets it to be over on a slow CPU (on a 2-vCPU AVX2 EPYC the
    # filler, the call, the follow-up and its playback take ~5 s). A timer due while a reply is still being made
    # waits for it by design ("never into a reply"), which is not what this test measures.
    pcm = np.concatenate(list(tts.synthesize("Set a timer for ten seconds."))).astype(np.float32) / 32768.0
    audio = np.concatenate([resample(pcm, tts.sample_rate, 16000), np.zeros(15 * 16000, np.float32)])
    clock = MonotonicClock()
    timers = Timers(clock=clock)
    engines.warm_up(tools=[timers])  # as the CLI does: the tools' prompt prefix before the first turn
    agent = VoiceAgent(engines=engines, clock=clock, tools=[timers], tool_options=ToolOptions())
    events = [ev async for ev in agent.process(paced_frames(audio, clock))]
    rec = next(e.record for e in events if isinstance(e, TurnMetrics))
    calls = [t for t in rec.tools if "name" in t]
    assert calls and calls[0]["name"] == "set_timer" and calls[0]["ok"], rec.tools
    assert rec.reply and "tool_call" not in rec.reply
    anns = [e for e in events if isinstance(e, Announcement)]
    assert len(anns) == 1 and anns[0].late_ms <= 200, [a.late_ms for a in anns]


@pytest.mark.models
def test_real_decision_is_read_on_the_request_alone_in_a_conversation(engines):
    """After an exchange answered without a tool the model imitates answering (P(call) 0.61 → 0.007 for the
    Tokyo question as chat turns); the decision read on the request alone, in the KV cache's side sequence,
    still calls, and a plain question after the same history still gets words."""
    from voiceloop.llm.prompt import Message
    from voiceloop.llm.side_sequence import SideSequence
    from voiceloop.llm.speculative import common_prefix, last_logits
    from voiceloop.tools import builtin_tools

    llm = engines.llm
    tools = [*builtin_tools(), *Timers().tools()]
    by_name = {t.name: t for t in tools}
    schemas = [t.schema() for t in tools]
    history = [
        Message("user", "Would you please turn on the living room lamp?"),
        Message("assistant", "Sure, I'll turn on the living room lamp."),
        Message("user", "Who wrote Hamlet?"),
        Message("assistant", "William Shakespeare wrote Hamlet."),
    ]
    f = ToolCallFilter()
    f.feed("".join(llm.stream(history, "What time is it in Tokyo?", max_tokens=64, tools=schemas)))
    f.flush()
    assert f.calls, llm.last_call_probability
    call = check_call(f.calls[0], by_name)
    assert call.name == "current_time" and "tokyo" in call.arguments.get("place", "").lower(), call
    # Read twice: on the request alone (the decision) and after the conversation (for follow-ups).
    assert llm.last_call_probability >= llm.options.tool_call_threshold
    assert llm.last_call_probability != llm.last_call_probability_in_conversation
    f = ToolCallFilter()
    f.feed("".join(llm.stream(history, "What is the capital of Canada?", max_tokens=24, tools=schemas)))
    f.flush()
    assert not f.calls and llm.last_call_probability < llm.options.tool_call_threshold

    # The side sequence gives the logits a plain evaluation of the same prompt gives, leaves the main
    # sequence's cache alone, and lets go of the shared head when the main one rewrites it.
    with llm.lock:
        raw = llm.llm
        side = llm._side
        main_ids = list(raw.input_ids[: raw.n_tokens])
        alone = llm._alone([], "Set a timer for five minutes.", schemas)
        z_side = side.eval(alone)
        assert side.shared > 0 and side.ids == alone
        assert list(raw.input_ids[: raw.n_tokens]) == main_ids  # the main sequence's bookkeeping untouched
        raw.n_tokens = common_prefix(raw.input_ids[: raw.n_tokens], alone)
        raw.eval(alone[raw.n_tokens :])
        z_main = np.array(last_logits(raw))
        assert int(np.argmax(z_side)) == int(np.argmax(z_main))
        # Not bit-equal: llama.cpp's quantized kernels round differently with the batch's shape and where the
        # cells sit in the cache (0.004-0.021 seen across persona texts, 0.042 once a call had been written in the
        # side sequence and its cells freed; the side sequence itself gives the same logits as a fresh evaluation
        # there); well inside the band the decision uses (0.20-0.33).
        assert abs(llm._p_call(z_side) - llm._p_call(z_main)) < 0.06
        # Rewriting the whole context: kept, the side's copy of the old head and the new one would not fit.
        raw.n_tokens = 0
        raw.eval(alone)
        assert side.shared == 0 and side.ids == []
        assert isinstance(side, SideSequence)
        side.eval(alone)
        assert side.shared == len(alone) - 1


def test_a_call_written_alone_takes_its_values_from_the_request_or_its_schema():
    from voiceloop.tools.grounding import from_request

    light = _params(next(t for t in HomeAssistant("http://127.0.0.1:1", "t").tools() if t.name == "turn_on_light"))
    clock = _params(next(t for t in builtin_tools() if t.name == "current_time"))
    # Said, or the schema's own number ("1 to 100"), or an optional field's described default ("local time").
    assert from_request({"area": "kitchen", "brightness_percent": 100}, "Turn on the kitchen light.", light)
    assert from_request({"place": "local"}, "What time is it?", clock)
    assert from_request({"minutes": 15}, "Timer, fifteen minutes.", None)
    assert from_request(
        {"text": "feed the cat", "when": "in 45 minutes"}, "Don't let me forget to feed the cat in 45 minutes."
    )
    # Standing in for an earlier turn: the conversation must write it.
    assert not from_request({"area": "living room lamp"}, "Turn it off.", light)  # a required field: said or not at all
    assert not from_request({"place": "Tokyo"}, "What time is it there?", clock)  # a quoted example is not a source
    assert not from_request({"minutes": 10, "label": "pasta"}, "Set another timer.", None)


def _params(t) -> dict:
    return t.schema()["function"]["parameters"]


@pytest.mark.models
def test_real_call_is_written_on_the_request_alone_unless_it_refers_back(engines):
    """After a conversation the model copies earlier calls ("Timer, fifteen minutes." → cancel_timer("pasta") in a
    spoken session); written on the request alone it writes what was asked. "Turn it off" names nothing, so its
    call is written after the conversation, where the kitchen is."""
    from voiceloop.llm.prompt import Message

    llm = engines.llm
    tools = [*builtin_tools(), *Timers().tools(), *HomeAssistant("http://127.0.0.1:1", "t").tools()]
    by_name = {t.name: t for t in tools}
    schemas = [t.schema() for t in tools]

    def call(name: str, args: dict) -> Message:
        return Message("assistant", "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>")

    history = [
        Message("user", "Set a timer for ten minutes for the pasta."),
        call("set_timer", {"minutes": 10, "label": "pasta"}),
        Message("tool", "pasta set for 10 minutes"),
        Message("assistant", "Timer set for 10 minutes for the pasta."),
        Message("user", "Cancel the pasta timer."),
        call("cancel_timer", {"label": "pasta"}),
        Message("tool", "cancelled pasta"),
        Message("assistant", "The pasta timer is cancelled."),
        Message("user", "Turn on the kitchen light."),
        call("turn_on_light", {"area": "kitchen"}),
        Message("tool", "kitchen light on"),
        Message("assistant", "The kitchen light is on."),
    ]

    def ask(text: str) -> tuple:
        st, f = GenerationStats(), ToolCallFilter()
        f.feed("".join(llm.stream(history, text, max_tokens=96, tools=schemas, stats=st)))
        f.flush()
        assert f.calls, (text, st.call_decision, llm.last_call_probability)
        return check_call(f.calls[0], by_name), st.call_written

    timer, where = ask("Timer, fifteen minutes.")
    assert timer.name == "set_timer" and timer.arguments.get("minutes") == 15, timer
    assert where == "alone"
    light, where = ask("Turn it off.")
    assert light.name == "turn_off_light" and where == "conversation", (light, where)
    assert "kitchen" in light.arguments["area"].lower(), light


def test_a_call_is_grounded_only_in_values_the_user_said():
    from voiceloop.tools.grounding import grounded, spoken_numbers

    assert spoken_numbers("How many cups are in two liters?") == {2.0}
    assert spoken_numbers("one hundred and five, then 1,000 and twenty three") == {105.0, 1000.0, 23.0}
    assert spoken_numbers("a hundred people") == {100.0}
    # Values that were said: kept.
    assert grounded({"value": 3, "from_unit": "pounds", "to_unit": "ounces"}, "How many ounces in three pounds?")
    assert grounded({"value": 72, "from_unit": "fahrenheit", "to_unit": "celsius"}, "What is 72 degrees in Celsius?")
    assert grounded({"place": "Sydney"}, "Is it night in Sydney at the moment?")
    assert grounded({"minutes": 0, "seconds": 30}, "Can you time 30 seconds for me?")  # 0: an unused field
    # Values from nowhere: dropped.
    assert not grounded({"expression": "8/2"}, "How many legs does a spider have?")
    assert not grounded({"expression": "14 - 5"}, "Who wrote Romeo and Juliet?")
    assert not grounded({"area": "bedroom lamp"}, "I'm feeling a bit tired today.")
    assert not grounded({}, "Tell me a joke.")
    # A tool that needs no argument: nothing to take from the request, so only an invented number drops it.
    assert grounded({"place": "local"}, "What day of the week is it?", required=[])
    assert grounded({}, "What day of the week is it?", required=[])
    assert not grounded({"minutes": 10, "label": "breakfast"}, "What's your name?", required=[])
    assert not grounded({"area": "bedroom lamp"}, "I'm feeling a bit tired today.", required=["area"])
    # A number counts as often as it was said.
    assert not grounded({"expression": "10 * 10"}, "We lived in Chicago for ten years.")
    assert grounded({"expression": "12 * 12"}, "What is twelve times twelve?")


def test_an_unsure_call_names_nothing_the_user_did_not_say():
    from voiceloop.tools.grounding import words_said

    clock = {"properties": {"place": {"description": 'a city ("Tokyo") or a zone; omit for the local time.'}}}
    units = {"required": ["value", "from_unit", "to_unit"]}
    assert words_said({"place": "Sydney"}, "Is it night in Sydney at the moment?", clock)
    assert words_said({"place": "local"}, "What day of the week is it?", clock)  # the description's own word
    assert words_said({"value": 70, "from_unit": "kg", "to_unit": "lb"}, "How many pounds is 70 kilograms?", units)
    assert words_said({"expression": "sqrt(144)"}, "What's the square root of 144?", None)  # numbers: grounded()
    assert words_said({"value": 2, "from_unit": "liters", "to_unit": "cups"}, "How many cups are in 2 litres?", units)
    assert not words_said({"place": "New York"}, "Who was president in 1990?", clock)
    assert not words_said({"place": "Sydney"}, "Is it right in Sidley at the moment?", clock)
    assert not words_said({"place": "Tokyo"}, "What time is it there?", clock)  # a quoted example is no source


def test_a_call_written_on_the_request_alone_takes_the_same_spelling_test():
    from voiceloop.tools.grounding import from_request, words_said

    units = {"required": ["value", "from_unit", "to_unit"]}
    args, said = {"value": 2, "from_unit": "liters", "to_unit": "cups"}, "How many cups are in 2 litres?"
    assert from_request(args, said, units) and words_said(args, said, units)
    assert not from_request({"value": 2, "from_unit": "gallons", "to_unit": "cups"}, said, units)


def test_a_written_call_body_is_judged_against_its_tool_schema():
    """The backend's two checks read a written call the same way: bad JSON or a missing arguments object is
    never kept, and a value the user did not say drops the call."""
    from voiceloop.llm.llama import _from_request, _is_grounded

    schemas = [t.schema() for t in Timers().tools()]
    said = "Set a timer for fifteen minutes."
    good = '{"name": "set_timer", "arguments": {"minutes": 15}}'
    assert _is_grounded(good, schemas, said) and _from_request(good, schemas, said)
    invented = '{"name": "set_timer", "arguments": {"minutes": 20}}'
    assert not _is_grounded(invented, schemas, said) and not _from_request(invented, schemas, said)
    for bad in ('{"name": "set_timer", "arguments": {"minutes": 15}', '{"name": "set_timer"}', "[1, 2]"):
        assert not _is_grounded(bad, schemas, said) and not _from_request(bad, schemas, said), bad


def test_real_unsure_calls_are_kept_only_when_grounded(engines):
    """Between the band's floor and the threshold the call is written unseen and kept only when its arguments
    were said: a conversion (P ~0.3) is called; a question at a similar P, whose forced call computes a number
    from nowhere, is answered in words, with nothing of the dropped call left in the KV cache."""
    from voiceloop.tools import builtin_tools

    llm = engines.llm
    tools = [*builtin_tools(), *Timers().tools()]
    by_name = {t.name: t for t in tools}
    schemas = [t.schema() for t in tools]
    saved = llm.options
    # The spider question sits at P(call) 0.19-0.21 with today's persona, on the default floor (0.2): a floor of
    # 0.1 puts it in the band whatever the machine's rounding, so the drop path is what this test exercises.
    # The judge is off here: it would answer the spider question before its call is written (its own test below).
    llm.options = dataclasses.replace(saved, tool_call_band=0.1, tool_call_judge=None)
    try:
        _unsure_calls(llm, by_name, schemas)
    finally:
        llm.options = saved


@pytest.mark.models
def test_real_judge_answers_a_remark_and_keeps_a_request(engines):
    """Under ``tool_call_sure`` the model is also asked apart whether the message asks for a tool. A remark with a
    number ("My cat is twelve years old.", P(call) ~0.35: its forced call is calculate("12 * 12"), grounded in
    the twelve said twice over) is answered; a conversion at a lower P(call) is called."""
    from voiceloop.tools import builtin_tools

    llm = engines.llm
    tools = [*builtin_tools(), *Timers().tools()]
    schemas, by_name = [t.schema() for t in tools], {t.name: t for t in tools}
    o = llm.options
    assert o.tool_call_judge is not None
    f, st = ToolCallFilter(), GenerationStats()
    reply = f.feed("".join(llm.stream([], "My cat is twelve years old.", max_tokens=32, tools=schemas, stats=st)))
    reply += f.flush()
    assert o.tool_call_band <= st.call_probability < o.tool_call_sure, st.call_probability
    assert st.call_judged is not None and st.call_judged < o.tool_call_judge, st.call_judged
    assert not f.calls and st.call_decision == "judged: answer" and reply.strip(), (reply, st.call_decision)
    f, st = ToolCallFilter(), GenerationStats()
    f.feed("".join(llm.stream([], "How many ounces in three pounds?", max_tokens=64, tools=schemas, stats=st)))
    f.flush()
    assert st.call_probability < o.tool_call_sure and st.call_judged >= o.tool_call_judge, st
    call = check_call(f.calls[0], by_name)
    assert call.name == "convert_units" and call.arguments["value"] == 3, call
    # The judge's own sequence keeps its head (its system turn) for the next question, and never shares the
    # conversation's cells.
    with llm.lock:
        head = llm._judge_tokens("", schemas)[:-6]
        assert llm._judge.shared == 0 and llm._judge.ids[: len(head)] == head
    # A sure call is not judged (no second prompt on the critical path).
    st = GenerationStats()
    "".join(llm.stream([], "Set a timer for ten minutes.", max_tokens=64, tools=schemas, stats=st))
    assert st.call_probability >= o.tool_call_sure and st.call_judged is None, st


def test_the_judge_is_told_every_tool_by_its_description():
    from voiceloop.llm.llama import judge_system

    text = judge_system([{"type": "function", "function": {"name": "water_plants", "description": "Water them.\nMore."}}])
    assert "- water_plants: Water them." in text and "More." not in text and "yes or no" in text


def _unsure_calls(llm, by_name, schemas) -> None:
    t, band = llm.options.tool_call_threshold, llm.options.tool_call_band
    f = ToolCallFilter()
    st = GenerationStats()
    f.feed("".join(llm.stream([], "How many ounces in three pounds?", max_tokens=64, tools=schemas, stats=st)))
    f.flush()
    assert band <= llm.last_call_probability < t, llm.last_call_probability  # the unsure band, not the threshold
    assert f.calls and st.call_decision == "unsure: kept" and st.call_probability == llm.last_call_probability
    call = check_call(f.calls[0], by_name)
    assert call.name == "convert_units" and call.arguments["value"] == 3, call
    f = ToolCallFilter()
    st = GenerationStats()
    reply = f.feed("".join(llm.stream([], "How many legs does a spider have?", max_tokens=32, tools=schemas, stats=st)))
    reply += f.flush()
    assert band <= llm.last_call_probability < t, llm.last_call_probability
    assert not f.calls and ("8" in reply or "eight" in reply.lower()), reply
    assert st.call_decision == "unsure: dropped", st.call_decision
    with llm.lock:
        ids = list(llm.llm.input_ids[: llm.llm.n_tokens])
        prompt = llm._tokens([], "How many legs does a spider have?", schemas)
        tag = llm.llm.tokenize(b"<tool_call>", add_bos=False, special=True)
        assert ids[: len(prompt)] == prompt and tag[0] not in ids[len(prompt) :]


@pytest.mark.models
async def test_real_follow_up_that_imitates_an_earlier_answer_is_not_said(engines, paced_frames, ha_server):
    """A real 46-turn spoken session's history, after which the default 1.5B answered "Start a 5 minute timer."
    → set_timer(5) with "The answer is 1025." (imitating "The answer is 1024." two turns before). Spoken through
    the agent, the user hears nothing invented; where the model still invents (it does on the machine this was
    recorded on), the check is what stopped it."""
    from voiceloop.audio.resample import resample
    from voiceloop.llm.prompt import Message
    from voiceloop.tools import builtin_tools
    from voiceloop.tools.faithful import Sources

    doc = json.loads((DATA / "tool_session_history.json").read_text())
    history = [Message(m["role"], m["content"]) for m in doc["messages"]]
    tts = engines.tts
    pcm = np.concatenate(list(tts.synthesize("Start a 5 minute timer."))).astype(np.float32) / 32768.0
    audio = np.concatenate([resample(pcm, tts.sample_rate, 16000), np.zeros(3 * 16000, np.float32)])
    clock = MonotonicClock()
    tools = [*builtin_tools(), Timers(clock=clock), HomeAssistant(ha_server.url, token="secret")]
    agent = VoiceAgent(engines=engines, clock=clock, tools=tools, tool_options=ToolOptions())
    agent.history = list(history)
    events = [ev async for ev in agent.process(paced_frames(audio, clock))]
    rec = next(e.record for e in events if isinstance(e, TurnMetrics))
    calls = [t for t in rec.tools if "name" in t]
    assert calls and calls[0]["name"] == "set_timer" and calls[0]["ok"], rec.tools
    sources = Sources([rec.transcript, *(f"{c['arguments']} {c['result']}" for c in calls)])
    assert rec.reply and not sources.unsupported(rec.reply), rec.reply
    # What the model writes there without the check, from the same history and call:
    call = f"<tool_call>\n{json.dumps({'name': calls[0]['name'], 'arguments': calls[0]['arguments']})}\n</tool_call>"
    after = [Message("assistant", call), Message("tool", calls[0]["result"])]
    schemas = agent.tool_runner.schemas()
    raw = "".join(engines.llm.stream(history, rec.transcript, max_tokens=40, tools=schemas, after=after))
    if sources.unsupported(raw):
        assert any("unfaithful" in t for t in rec.tools), (raw, rec.tools)
