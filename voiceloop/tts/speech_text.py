"""Text as a person would say it: the one way in from the LLM (and tools, fillers) to the TTS.

Two steps, because the LLM's text arrives in pieces:
- ``MarkupFilter`` works on the token stream before clauses are cut: markdown emphasis, headings,
  code fences, list markers, links and emoji never reach the clause splitter (a "1." list marker
  would otherwise end a clause, and "**" would be read out or mangle prosody).
- ``speakable()`` works on one whole clause just before synthesis: numbers, units, times, dates,
  money, percentages and ordinals are written out in words ("1,250 km" -> "one thousand two
  hundred fifty kilometers"), American style, because Piper reads digits inconsistently.
"""

from __future__ import annotations

import re

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORD_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_MONTHS = "January February March April May June July August September October November December".split()


def cardinal(n: int) -> str:
    """1250 -> "one thousand two hundred fifty" (no "and", as in American speech)."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 20:
        return ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return TENS[tens] + (f"-{ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{ONES[hundreds]} hundred" + (f" {cardinal(rest)}" if rest else "")
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return f"{cardinal(high)} {name}" + (f" {cardinal(rest)}" if rest else "")
    raise AssertionError  # unreachable: every n >= 1000 matched a scale


def ordinal(n: int) -> str:
    words = cardinal(n)
    head, sep, last = words.rpartition("-" if "-" in words.split()[-1] else " ")
    if last in _ORD_IRREGULAR:
        last = _ORD_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year(n: int) -> str:
    """2026 -> "twenty twenty-six", 2005 -> "two thousand five", 1900 -> "nineteen hundred"."""
    if 2000 <= n < 2010 or n < 1000 or n >= 10000:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    return f"{cardinal(high)} {'oh ' + ONES[low] if low < 10 else cardinal(low)}"


def _decimal(text: str) -> str:
    whole, _, frac = text.replace(",", "").partition(".")
    out = cardinal(int(whole or 0))
    if frac:
        out += " point " + " ".join(ONES[int(d)] for d in frac)
    return out


# Unit words, singular and plural; matched only right after a number.
_UNITS = {
    "km": ("kilometer", "kilometers"),
    "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "in": ("inch", "inches"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "l": ("liter", "liters"),
    "ml": ("milliliter", "milliliters"),
    "gal": ("gallon", "gallons"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "°c": ("degree Celsius", "degrees Celsius"),
    "°f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "c": ("degree Celsius", "degrees Celsius"),
    "f": ("degree Fahrenheit", "degrees Fahrenheit"),
    "%": ("percent", "percent"),
    "kb": ("kilobyte", "kilobytes"),
    "mb": ("megabyte", "megabytes"),
    "gb": ("gigabyte", "gigabytes"),
    "tb": ("terabyte", "terabytes"),
    "ms": ("millisecond", "milliseconds"),
    "s": ("second", "seconds"),
    "sec": ("second", "seconds"),
    "min": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "kw": ("kilowatt", "kilowatts"),
    "w": ("watt", "watts"),
    "kwh": ("kilowatt hour", "kilowatt hours"),
    "v": ("volt", "volts"),
    "hz": ("hertz", "hertz"),
}
# Single letters that are also words ("5 m" is meters, but "5 in" / "2 s" / "3 h" read fine only with a unit sense):
# a lone "c", "f", "s", "h", "in", "w", "v", "g", "l", "m" counts as a unit only when glued to the number or followed
# by punctuation / end, so "I have 2 in my bag" is left alone.
_AMBIGUOUS = {"c", "f", "s", "h", "in", "w", "v", "g", "l", "m", "min"}
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
}

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT_ALT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_RE_MONEY = re.compile(rf"([$€£])\s?({_NUM})(\s?(?:million|billion|thousand))?")
_RE_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?::\d{2})?\s*([AaPp]\.?[Mm]\.?)?(?![\d:])")
_RE_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_RE_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_RE_UNIT = re.compile(rf"(?<![\w.])({_NUM})(\s?)({_UNIT_ALT})(?![\w/])", re.IGNORECASE)
_RE_YEARISH = re.compile(r"\b(in|since|by|from|of|year|until|before|after)\s+(1[1-9]\d\d|20\d\d)\b", re.IGNORECASE)
_RE_NUMBER = re.compile(rf"(?<![\w.])(-?)({_NUM})(?![\w.]*\d)")
_RE_AMPM = re.compile(r"\b([AaPp])\.[Mm]\.(\s*$)?")
_RE_RANGE = re.compile(rf"({_NUM})\s?[-\u2013]\s?({_NUM})")


def _money(m: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m.group(1)]
    amount, scale = m.group(2).replace(",", ""), (m.group(3) or "").strip()
    whole, _, frac = amount.partition(".")
    if scale:
        return f"{_decimal(amount)} {scale} {many}"
    w = int(whole)
    out = f"{cardinal(w)} {one if w == 1 else many}"
    if frac and int(frac[:2].ljust(2, "0")):
        c = int(frac[:2].ljust(2, "0"))
        out += f" and {cardinal(c)} {sub_one if c == 1 else sub_many}"
    return out


def _time(m: re.Match) -> str:
    h, mins, ampm = int(m.group(1)), int(m.group(2)), m.group(3)
    if h > 24 or mins > 59:
        return m.group(0)
    suffix = ""
    if ampm:
        suffix = " " + ("AM" if ampm[0] in "Aa" else "PM")
    if mins == 0:
        words = f"{cardinal(h)}" + (" o'clock" if not ampm and h <= 12 else (" hundred" if not ampm else ""))
    elif mins < 10:
        words = f"{cardinal(h)} oh {ONES[mins]}"
    else:
        words = f"{cardinal(h)} {cardinal(mins)}"
    # "AM." at a sentence end: the period was part of the match, keep the sentence end.
    rest = m.string[m.end() :].lstrip()
    at_end = not rest or rest[0].isupper()  # "5 p.m. Then ..." ends a sentence, "5 p.m. sharp" does not
    return words + suffix + ("." if m.group(0).endswith(".") and at_end else "")


def _iso_date(m: re.Match) -> str:
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return m.group(0)
    return f"{_MONTHS[mo - 1]} {ordinal(d)}, {year(y)}"


def _unit(m: re.Match) -> str:
    num, space, unit = m.group(1), m.group(2), m.group(3)
    key = unit.lower()
    if key in _AMBIGUOUS and space:
        end = m.string[m.end() : m.end() + 1]
        if end and end not in ".,;:!?)":
            return m.group(0)
    one, many = _UNITS[key]
    value = num.replace(",", "")
    word = one if value in ("1", "1.0") else many
    return f"{_decimal(num)} {word}"


def speakable(text: str) -> str:
    """One clause in words, ready for TTS."""
    t = text
    t = _RE_ISO_DATE.sub(_iso_date, t)
    t = _RE_MONEY.sub(_money, t)
    t = _RE_TIME.sub(_time, t)
    t = _RE_ORDINAL.sub(lambda m: ordinal(int(m.group(1))), t)
    t = _RE_RANGE.sub(lambda m: f"{m.group(1)} to {m.group(2)}", t)
    t = _RE_UNIT.sub(_unit, t)
    t = _RE_YEARISH.sub(lambda m: f"{m.group(1)} {year(int(m.group(2)))}", t)
    t = _RE_NUMBER.sub(lambda m: ("minus " if m.group(1) else "") + _decimal(m.group(2)), t)
    t = _RE_AMPM.sub(lambda m: ("AM" if m.group(1) in "Aa" else "PM") + ("." if m.group(2) is not None else ""), t)
    t = t.replace("&", " and ").replace("+", " plus ").replace("=", " equals ")
    return re.sub(r"\s{2,}", " ", t).strip()


# --- the stream filter ------------------------------------------------------------------------

_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0000fe0f\U0000200d\U00002b00-\U00002bff\U0001f1e6-\U0001f1ff]"
)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
_HEADING = re.compile(r"^\s*#{1,6}\s*")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


class MarkupFilter:
    """Removes markdown and emoji from streamed text without holding back more than a line start.

    Text in the middle of a line passes at once (minus ``*``, ``_`` runs, backticks and emoji);
    only the first characters of a line wait until it is clear whether they are a list marker or
    a heading. A line break becomes a sentence break, so list items are read as sentences.
    """

    def __init__(self) -> None:
        self._line_start = True
        self._pending = ""
        self._in_fence = False
        self._line_had_text = False
        self._last = ""

    def feed(self, piece: str) -> str:
        out = []
        for ch in piece:
            if ch == "\n":
                out.append(self._end_line())
                continue
            if self._line_start:
                self._pending += ch
                decided = self._decide_line_start()
                if decided is not None:
                    out.append(decided)
            else:
                out.append(ch)
        text = self._clean("".join(out))
        if text.strip():
            self._line_had_text = True
            self._last = text.rstrip()[-1]
        return text

    def flush(self) -> str:
        rest = self._pending
        self._pending = ""
        return self._clean(_LIST_MARKER.sub("", _HEADING.sub("", rest)))

    def _end_line(self) -> str:
        pending, self._pending, self._line_start = self._pending, "", True
        if pending.strip().startswith("```"):
            self._in_fence = not self._in_fence
            return ""
        if self._in_fence:
            return ""
        had_text = self._line_had_text or bool(pending.strip())
        self._line_had_text = False
        last = pending.rstrip()[-1:] or self._last
        # A list item or a heading has no full stop; the line break is where the speaker pauses.
        end = ". " if had_text and last not in ".!?:;," else " "
        self._last = end.strip() or self._last
        return pending + end

    def _decide_line_start(self) -> str | None:
        p = self._pending
        if p.lstrip().startswith("```") or self._in_fence:
            return None  # a fence line or code: dropped at its newline
        stripped = p.lstrip()
        if not stripped:
            return None
        if "```".startswith(stripped) or re.fullmatch(r"(?:[-*+•]|\d{1,2}[.)]?|#{1,6})", stripped):
            return None  # could still be a marker: wait for the next character
        m = _LIST_MARKER.match(p) or _HEADING.match(p)
        body = p[m.end() :] if m else p
        if m and not body:
            return None
        self._line_start = False
        self._pending = ""
        return body

    def _clean(self, text: str) -> str:
        if self._in_fence:
            return ""
        text = _LINK.sub(r"\1", text)
        text = _EMOJI.sub("", text)
        text = re.sub(r"\*+|`+|(?<!\w)_+|_+(?!\w)|~~", "", text)
        return text
