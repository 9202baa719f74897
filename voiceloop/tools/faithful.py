"""Does the spoken answer after a tool call say what the tool returned?

A small model answering after a tool result imitates its earlier answers instead of reading the result.
Seen in a spoken session (Qwen2.5-Coder 1.5B): "What is 2 to the power of 10?" → "The answer is 1024.",
then "Start a 5 minute timer." → ``set_timer(5)`` → "The answer is 1025.", and the next two timers 1026 and
1027. The numbers are where it goes wrong, and they can be checked: every number in the follow-up must come
from the tool's results, the call, or the user's words (digits or number words; a rounding of a result's
decimal counts, "22" for 22.22; a clock time may be read on the 12-hour dial, "9:57" for 21:57).

When a clause fails, the reply stops there; if nothing of the round was said yet, the result itself is spoken
(``result_sentence``), so the user hears what the tool did, and the history keeps that, not the invention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .grounding import spoken_numbers

_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_ENTITY = re.compile(r"\b(light|switch|fan)\.([a-z0-9_]+)")
_PAREN = re.compile(r"\s*\([^)]*\)")
_OPERATOR = re.compile(r"[*/^+\-]|\bsqrt\b")
# Numbers so common in plain wording ("one moment", "no one") that they prove nothing either way.
_ALWAYS = {0.0, 1.0}


def _decimals(x: float) -> int:
    s = repr(x)
    return len(s.split(".")[1].rstrip("0")) if "." in s and "e" not in s else 0


class Sources:
    """The numbers a follow-up may say: those of the results, the calls and the request."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.numbers: set[float] = set(_ALWAYS)
        for t in texts:
            self.numbers |= spoken_numbers(t)
            for h, _m in _CLOCK.findall(t):
                self.numbers.add(float(int(h) % 12 or 12))  # 21:57 may be said "nine fifty-seven"

    def supports(self, n: float) -> bool:
        if n in self.numbers:
            return True
        # A rounding of a result's decimal: 3.048 → 3.05, 3.0 or 3; 22.22 → 22.
        return any(s != int(s) and any(round(s, k) == n for k in range(_decimals(s))) for s in self.numbers)

    def unsupported(self, clause: str) -> list[float]:
        """The clause's numbers that none of the sources holds."""
        return sorted(n for n in spoken_numbers(clause) if not self.supports(n))


def result_sentence(contents: Iterable[str]) -> str:
    """The tools' results as one plain sentence to speak instead of an unfaithful answer:
    "7 * 8 * 9 = 504" → "The answer is 504.", "10 feet = 3.048 meters" → "10 feet is 3.048 meters.",
    "light.hallway turned on" → "The hallway light turned on."."""
    parts = []
    for c in contents:
        c = _PAREN.sub("", c).strip()
        if c.startswith("error:"):
            parts.append("Sorry, that did not work")
            continue
        c = _ENTITY.sub(lambda m: f"the {m.group(2).replace('_', ' ')} {m.group(1)}", c)
        if " = " in c:
            left, right = c.rsplit(" = ", 1)
            c = f"the answer is {right}" if _OPERATOR.search(left) else f"{left} is {right}"
        parts.append(c.rstrip(". "))
    text = ". ".join(p[:1].upper() + p[1:] for p in parts if p)
    return text + "." if text else ""


class FollowUpCheck:
    """One follow-up round, clause by clause: ``check(clause)`` gives what to say (the clause, or the results
    instead of a first sentence that invents) or None (stopped). ``invented`` is the turn record's entry."""

    def __init__(self, request: str, after: Iterable[Any]) -> None:
        after = list(after)
        self.sources = Sources([request, *(m.content for m in after)])
        self._results = [m.content for m in after if m.role == "tool"]
        self.said: list[str] = []
        self.invented: dict[str, Any] | None = None

    @property
    def stopped(self) -> bool:
        return self.invented is not None

    def check(self, clause: str) -> str | None:
        if self.stopped:
            return None
        if numbers := self.sources.unsupported(clause):
            self.invented = {"unfaithful": clause, "numbers": numbers}
            # After a whole sentence nothing more is said; after nothing or a fragment ("Well,"), the result is.
            if self.said and self.said[-1].rstrip().endswith((".", "!", "?")):
                return None
            clause = result_sentence(self._results)
            if not clause:
                return None
        self.said.append(clause)
        return clause
