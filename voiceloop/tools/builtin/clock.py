"""The current time and date anywhere, from the IANA database (zoneinfo)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from ..base import tool

ALIASES = {"utc": "UTC", "gmt": "UTC", "z": "UTC"}
HERE = re.compile(r"^(local|here|home|current|system|this|my|where i am)\b")
"""What models write for "no place" (the embedded Qwen writes ``place="local"`` for "What time is it?")."""


@lru_cache(maxsize=1)
def _by_city() -> dict[str, str]:
    """ "new york" -> "America/New_York": every zone's last component, as people say it."""
    out: dict[str, str] = {}
    for key in sorted(available_timezones()):
        if "/" not in key or key.startswith(("Etc/", "SystemV/", "posix/", "right/")):
            continue
        out.setdefault(key.rsplit("/", 1)[1].replace("_", " ").lower(), key)
    return out


def resolve_zone(place: str | None) -> ZoneInfo | None:
    """A zone for an IANA name ("Europe/Paris"), a city in the database ("Paris"), "UTC", or None."""
    if not place:
        return None
    p = place.strip()
    if p in available_timezones():
        return ZoneInfo(p)
    low = re.sub(r"[^a-z ]", "", p.lower()).strip()
    if not low or HERE.match(low):
        return None  # the local time
    if low in ALIASES:
        return ZoneInfo(ALIASES[low])
    cities = _by_city()
    if low in cities:
        return ZoneInfo(cities[low])
    for word in (low.split(",")[0], low.split(" ")[0]):
        if word in cities:
            return ZoneInfo(cities[word])
    raise ValueError(f"no time zone known for {place!r}; name a large city or a zone like Europe/Paris")


def now_in(place: str | None, *, now: datetime | None = None) -> datetime:
    zone = resolve_zone(place)
    base = now or datetime.now().astimezone()
    return base.astimezone(zone) if zone else base


def _spoken(dt: datetime) -> str:
    return dt.strftime("%A %d %B %Y, %H:%M") + f" ({dt.tzname()}, UTC{_offset(dt.utcoffset())})"


def _offset(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@tool
def current_time(place: str | None = None) -> str:
    """Get the current date and time, here or in a city or time zone.

    Args:
        place: a city ("Tokyo", "New York") or an IANA time zone ("Europe/Paris"); omit for the local time.
    """
    dt = now_in(place)
    where = f"in {place}: " if resolve_zone(place) is not None else ""
    return where + _spoken(dt)
