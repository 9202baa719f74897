"""Is a tool call grounded in what the user said?

A small model, asked to write a call for a request that needs none, still writes one, but
its arguments come from nowhere: "How many legs does a spider have?" → ``calculate("8/2")``,
"Who wrote Romeo and Juliet?" → ``calculate("14 - 5")``. A call the user asked for takes its
values from the request: "How many ounces in three pounds?" → ``convert_units(3, ...)``.
So a call is grounded when every number in its arguments was said (in digits or words; a zero
is an unused field, not a value) and at least one argument was said (a number, or a word of a
string argument). A tool that needs no argument ("What day of the week is it?" → ``current_time()``, or with
``place="local"`` for its optional field) has nothing to take from the request: its call is grounded unless it
carries a number nobody said. Values the model derives ("an hour and a half" → 90 minutes) fail the test:
it is only asked where the model's own probability of calling is unsure
(``LlamaOptions.tool_call_band``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..tts.speech_text import ONES, TENS

# Number words read the way speech_text writes them (one vocabulary for both directions).
_UNITS = {w: i for i, w in enumerate(ONES)}
_TENS = {w: 10 * i for i, w in enumerate(TENS) if i > 1}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")


def spoken_numbers(text: str) -> set[float]:
    """Every number in ``text``: digits ("1,000", "2.5") and number words ("twenty three", "a hundred")."""
    return set(number_list(text))


def number_list(text: str) -> list[float]:
    """The numbers in ``text`` as often as they occur (digits first, then number words)."""
    out: list[float] = []
    for m in _DIGITS.finditer(text):
        s = m.group()
        try:
            out.append(float(s.replace(",", "")))
        except ValueError:
            continue
    words = re.findall(r"[a-z]+", text.lower().replace("-", " "))
    total = current = 0
    in_number = False
    for w in [*words, ""]:
        if w in _UNITS or w in _TENS:
            current += _UNITS.get(w, 0) + _TENS.get(w, 0)
            in_number = True
        elif w in _SCALES and (in_number or w == "hundred"):
            current = max(current, 1) * _SCALES[w]
            if _SCALES[w] > 100:
                total, current = total + current, 0
            in_number = True
        elif w == "and" and in_number:
            continue  # "one hundred and five"
        else:
            if in_number:
                out.append(float(total + current))
            total = current = 0
            in_number = False
    return out


def _values(v: Any) -> Iterable[Any]:
    if isinstance(v, dict):
        for x in v.values():
            yield from _values(x)
    elif isinstance(v, list):
        for x in v:
            yield from _values(x)
    else:
        yield v


def grounded(arguments: dict[str, Any], text: str, required: Iterable[str] | None = None) -> bool:
    """Every number in the call's arguments was said, and at least one argument was (unless ``required``, the
    tool's required parameters, is given and empty: then the numbers alone decide). Within one argument a number
    counts as often as it was said: "ten years" does not give ``calculate("10 * 10")``."""
    said_list = number_list(text)
    said = set(said_list)
    words = {w[:5] for w in re.findall(r"[a-z]{3,}", text.lower())}  # a crude stem: "lights" ~ "light"
    anchored = False
    for v in _values(arguments):
        if isinstance(v, bool) or v is None:
            continue
        nums = [float(v)] if isinstance(v, int | float) else number_list(str(v))
        nums = [n for n in nums if n != 0]  # an unused field ("minutes": 0 in a 30-second timer) says nothing
        if any(n not in said or nums.count(n) > said_list.count(n) for n in nums):
            return False
        if nums:
            anchored = True
        elif isinstance(v, str) and any(w[:5] in words for w in re.findall(r"[a-z]{3,}", v.lower())):
            anchored = True
    return anchored or (required is not None and not list(required))


def _stems(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z]{3,}", text.lower())}


def from_request(arguments: dict[str, Any], text: str, parameters: dict[str, Any] | None = None) -> bool:
    """Does a call written on the request alone take its values from the request (or its tool's own schema),
    rather than stand in for something said earlier ("turn it off" → ``turn_off_light("living room")``)?

    Looser than :func:`grounded` on numbers: a number may also come from the schema ("brightness_percent: 1 to
    100"). Every string argument must share a word with the request, except an optional parameter's value
    taken from its own description ("place": "local", described as "omit for the local time"), quoted examples
    left out (a city "Tokyo" for "what time is it there?" stands for an earlier turn's city).
    """
    said = spoken_numbers(text)
    words, spoken = _stems(text), _spoken_words(text)
    props = (parameters or {}).get("properties") or {}
    required = set((parameters or {}).get("required") or [])
    schema_numbers = spoken_numbers(str(parameters or ""))
    for name, v in arguments.items():
        described = _described(name, props, required)
        for x in _values(v):
            if isinstance(x, bool) or x is None:
                continue
            if isinstance(x, int | float):
                if x != 0 and float(x) not in said and float(x) not in schema_numbers:
                    return False
                continue
            nums = [n for n in spoken_numbers(str(x)) if n != 0]
            if any(n not in said for n in nums):
                return False
            if not _string_said(str(x), words, spoken, described):
                return False
    return True


def words_said(arguments: dict[str, Any], text: str, parameters: dict[str, Any] | None = None) -> bool:
    """Every string argument without a number shares a word with the request, or for an optional parameter with
    its description's own words (not its quoted examples): a place, a room or a label nobody said is invented
    ("Who was president in 1990?" → ``current_time("New York")``). Strings with numbers (an expression) are for
    :func:`grounded`'s number test; "kg" has no word to compare."""
    words, spoken = _stems(text), _spoken_words(text)
    props = (parameters or {}).get("properties") or {}
    required = set((parameters or {}).get("required") or [])
    for name, v in arguments.items():
        described = _described(name, props, required)
        for x in _values(v):
            if isinstance(x, str) and not number_list(x) and not _string_said(x, words, spoken, described):
                return False
    return True


def _spoken_words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.lower()))


def _described(name: str, props: dict[str, Any], required: set[str]) -> set[str]:
    """An optional parameter's description's own words: its value may come from there ("local", described as
    "omit for the local time"). Not its quoted examples ("Tokyo"): those would stand for any city."""
    about = re.sub(r'"[^"]*"', "", str((props.get(name) or {}).get("description", "")))
    return _stems(about) if name not in required else set()


def _string_said(value: str, words: set[str], spoken: set[str], described: set[str]) -> bool:
    """A string value shares a word with the request (or its optional field's description), or spells a word
    said another way; a value with no word ("kg") has nothing to compare."""
    own = _stems(value)
    return not own or bool(own & (words | described)) or _spelled_alike(value, spoken)


def _spelled_alike(value: str, spoken: set[str]) -> bool:
    """A word of ``value`` is another spelling of a word said ("liters" for the ASR's "litres": 0.83)."""
    from difflib import SequenceMatcher

    return any(SequenceMatcher(None, w, s).ratio() >= 0.8 for w in re.findall(r"[a-z]{3,}", value.lower()) for s in spoken)
