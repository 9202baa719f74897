"""Timers and reminders that speak when they are due, also in the middle of a conversation.

A ``Timers`` is a tool set bound to one conversation: pass it in ``VoiceAgent(tools=[..., Timers()])``.
Its tools (set, cancel, list) run on the tool thread; its ``run`` loop runs on the agent's event loop
and hands each due message to ``agent.announce``, which waits for a turn in progress to end rather
than talking over it. Time comes from the agent's clock (replaceable in tests).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ...core.clock import DEFAULT_CLOCK, Clock
from ..base import Tool, tool

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    label: str
    message: str
    due_ns: int


def _spoken_duration(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{h} hour{'s' * (h != 1)}"] * bool(h) + [f"{m} minute{'s' * (m != 1)}"] * bool(m)
    parts += [f"{sec} second{'s' * (sec != 1)}"] * bool(sec or not parts)
    return " and ".join(parts)


_UNIT_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600}
_DELAY = re.compile(r"(\d+(?:\.\d+)?|half an?|an?)\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|[smh])\b")
_CLOCK = re.compile(r"(?:at\s+)?(\d{1,2})(?:\s*[:.h ]\s*(\d{2}))?\s*(am|pm)?(?:\s+(today|tonight|tomorrow))?")


def seconds_until(when: str, now: datetime) -> float:
    """Seconds from ``now`` until ``when``: a delay ("in 20 minutes", "1 hour 30 minutes", "half an hour") or a
    clock time ("18:30", "6:30 pm", "9 a.m."; without am/pm, the next time the clock shows it)."""
    w = re.sub(r"\b([ap])\.?\s?m\b\.?", r"\1m", when.lower().strip())
    w = w.replace("noon", "12 pm").replace("midnight", "12 am")
    # "in 9 am", "by 6:30 pm": a clock time all the same (the model's preposition); a bare "in 7" stays unreadable.
    w = re.sub(r"^(?:in|by|for)\s+(?=\d{1,2}(?:[:.]\d{2})?\s*[ap]m\b|\d{1,2}[:.]\d{2}\b)", "", w)
    if not re.search(r"\d\s*[ap]m\b|\d:\d|\bat\b", w) and (parts := _DELAY.findall(w)):
        total = 0.0
        for n, unit in parts:
            v = 0.5 if n.startswith("half") else 1.0 if n in ("a", "an") else float(n)
            total += v * _UNIT_S[unit.rstrip("s") if len(unit) > 1 else unit]
        return total
    m = _CLOCK.fullmatch(re.sub(r"\s+", " ", w))
    if not m or int(m[1]) > 23 or int(m[2] or 0) > 59:
        raise ValueError(f"cannot read when {when!r}: say a delay (in 20 minutes) or a clock time (18:30, 6:30 pm)")
    hour, minute, half = int(m[1]), int(m[2] or 0), m[3] or ("pm" if m[4] == "tonight" else None)
    if half:
        hour = hour % 12 + (12 if half == "pm" else 0)
    # "19:30" and "07:15" are 24-hour times; a bare "7:15" is whichever 7:15 comes next.
    hours = [hour] if half or hour == 0 or hour > 12 or m[1].startswith("0") else [hour % 12, hour % 12 + 12]
    waits = []
    for h in hours:
        target = now.replace(hour=h, minute=minute, second=0, microsecond=0)
        if target <= now or m[4] == "tomorrow":
            target += timedelta(days=1)
        waits.append((target - now).total_seconds())
    return min(waits)


class Timers:
    def __init__(self, *, clock: Clock = DEFAULT_CLOCK, wall: Callable[[], datetime] = datetime.now) -> None:
        self.clock = clock
        self.wall = wall
        self._items: dict[int, Due] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fired: list[tuple[Due, int]] = []
        """(timer, the clock's ns when it was handed to the announcer): for tests and the profile."""

    # -- the tools -----------------------------------------------------------------------------------
    def tools(self) -> list[Tool]:
        return [tool(self.set_timer), tool(self.set_reminder), tool(self.cancel_timer), tool(self.list_timers)]

    def _add(self, label: str, message: str, seconds: float) -> Due:
        if not 0 < seconds <= 7 * 86400:
            raise ValueError("a timer runs between one second and a week")
        with self._lock:
            item = Due(next(self._ids), label, message, self.clock.now_ns() + int(seconds * NS))
            self._items[item.id] = item
        self._poke()
        return item

    def set_timer(self, minutes: float = 0.0, seconds: float = 0.0, label: str | None = None) -> str:
        """Start a countdown timer that rings (speaks) when it is over.

        Args:
            minutes: how many minutes it runs (with seconds, if any).
            seconds: how many seconds it runs (with minutes, if any).
            label: what it is for, e.g. "pasta"; optional.
        """
        total = minutes * 60 + seconds
        label = (label or "").strip()
        if label.lower() in ("", "timer", "a timer", "my timer"):
            label = ""  # models often name a plain timer "timer": "The timer timer is done." reads badly
        name = label or "timer"
        what = f"The {name} timer is done." if label else "Your timer is done."
        self._add(name, what, total)
        return f"{name} set for {_spoken_duration(total)}"

    def set_reminder(self, text: str, when: str) -> str:
        """Remind the user of something later, by speaking it at that time.

        Args:
            text: what to remind them of, e.g. "call your mother".
            when: when, as the user said it: a delay ("in 20 minutes", "in an hour") or a clock time ("18:30",
                "6:30 pm", "9 am").
        """
        # One free-form field, read here: given "in_minutes" and "at", the small models filled "in_minutes" for
        # "at 6:30 pm" (3 of 3 clock-time reminders in a conversation).
        seconds = seconds_until(when, self.wall())
        self._add("reminder", f"Reminder: {text.strip().rstrip('.')}.", seconds)
        return f"reminder set for {_spoken_duration(seconds)} from now: {text}"

    def cancel_timer(self, label: str | None = None) -> str:
        """Cancel a timer or reminder (the latest one if no label is given).

        Args:
            label: the timer's label, e.g. "pasta", or "reminder".
        """
        with self._lock:
            running = list(self._items.values())
            items = [i for i in running if not label or i.label == label.strip().lower() or i.label == label]
            if not items and len(running) == 1:
                # "Cancel my timer." -> cancel_timer(label="pasta"): a small model fills the label from the
                # description's example. With one timer running there is no doubt which one the user means.
                items = running
            if not items:
                names = ", ".join(sorted({i.label for i in running}))
                return f"there is no timer called {label}" + (f"; running: {names}" if names else "; none is running")
            item = max(items, key=lambda i: i.id)
            del self._items[item.id]
        self._poke()
        return f"cancelled the {item.label}"

    def list_timers(self) -> str:
        """List the timers and reminders that are running, with the time left on each."""
        now = self.clock.now_ns()
        with self._lock:
            items = sorted(self._items.values(), key=lambda i: i.due_ns)
        if not items:
            return "no timers are running"
        return "; ".join(f"{i.label}: {_spoken_duration((i.due_ns - now) / NS)} left" for i in items)

    # -- the scheduler -------------------------------------------------------------------------------
    def _poke(self) -> None:
        if self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    def pending(self) -> list[Due]:
        with self._lock:
            return sorted(self._items.values(), key=lambda i: i.due_ns)

    async def run(
        self, announce: Callable[[str, int], Awaitable[None]], *, tick_s: float = 0.02, lead_s: float = 0.5
    ) -> None:
        """Hand each item to ``announce(message, due_ns)`` ``lead_s`` before it is due (the announcer voices it
        ahead and plays it on time); runs until cancelled. Sleeps until then (woken early when timers
        change), in steps of at most ``tick_s`` so a test clock that is moved by hand is noticed in a tick."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        speaking: set[asyncio.Task[None]] = set()
        while True:
            items = self.pending()
            now = self.clock.now_ns()
            lead = int(lead_s * NS)
            due = [i for i in items if i.due_ns - lead <= now]
            for item in due:
                with self._lock:
                    if self._items.pop(item.id, None) is None:
                        continue
                self.fired.append((item, now))
                task = asyncio.ensure_future(announce(item.message, item.due_ns))
                speaking.add(task)
                task.add_done_callback(speaking.discard)
            rest = [i for i in items if i.due_ns - lead > now]
            wait = min([tick_s, *((i.due_ns - lead - now) / NS for i in rest[:1])])
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=max(wait, 0.001))
            except TimeoutError:
                pass
