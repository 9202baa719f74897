"""An example of a tool that acts on the world: lights through a Home Assistant-style REST API.

Nothing is pretended: each call is a real HTTP request to the endpoint you configure, in Home
Assistant's shape (``POST {url}/api/services/light/turn_on`` with ``Authorization: Bearer <token>``
and ``{"entity_id": "light.kitchen"}``); the answer the model hears is what the server said.

    lights = HomeAssistant("http://homeassistant.local:8123", token=os.environ["HA_TOKEN"])
    agent = VoiceAgent(engines=engines, tools=[*builtin_tools(), lights])

``voiceloop assistant --home-assistant URL`` (token from ``$VOICELOOP_HA_TOKEN``) does the same.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..base import Tool, tool


def entity_id(area: str, domain: str = "light") -> str:
    """ "living room" -> "light.living_room"; an id given in full is kept."""
    a = area.strip().lower()
    if a.startswith(f"{domain}."):
        return a
    a = re.sub(r"\b(the|lights?|lamps?)\b", " ", a)
    return f"{domain}." + re.sub(r"[^a-z0-9]+", "_", a).strip("_")


@dataclass(frozen=True, slots=True)
class HomeAssistant:
    url: str
    token: str
    timeout_s: float = 3.0

    def call_service(self, domain: str, service: str, data: dict) -> str:
        req = urllib.request.Request(
            f"{self.url.rstrip('/')}/api/services/{domain}/{service}",
            data=json.dumps(data).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                body = resp.read().decode("utf-8", "replace")
                return f"done ({resp.status}): {body[:200]}"
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"the home server answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise RuntimeError(f"cannot reach the home server at {self.url}: {getattr(exc, 'reason', exc)}") from None

    def turn_on_light(self, area: str, brightness_percent: int | None = None) -> str:
        """Turn on the lights in a room of the house.

        Args:
            area: the room or light, e.g. "kitchen", "living room", "bedroom lamp".
            brightness_percent: 1 to 100; omit to keep the last brightness.
        """
        data: dict = {"entity_id": entity_id(area)}
        if brightness_percent is not None:
            data["brightness_pct"] = max(1, min(100, int(brightness_percent)))
        self.call_service("light", "turn_on", data)
        # What happened, in words: a bare "done" is what the model then says, and repeats after later tools.
        at = f" at {data['brightness_pct']} % brightness" if "brightness_pct" in data else ""
        return f"{data['entity_id']} turned on{at}"

    def turn_off_light(self, area: str) -> str:
        """Turn off the lights in a room of the house.

        Args:
            area: the room or light, e.g. "kitchen", "living room", "bedroom lamp".
        """
        self.call_service("light", "turn_off", {"entity_id": entity_id(area)})
        return f"{entity_id(area)} turned off"

    def tools(self) -> list[Tool]:
        return [tool(self.turn_on_light), tool(self.turn_off_light)]
