"""The tool options shared by profile, serve and assistant."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable


def add_tool_args(p: argparse.ArgumentParser, *, default_on: bool) -> None:
    if default_on:
        p.add_argument("--no-tools", dest="tools", action="store_false", help="offer the model no tools")
    else:
        p.add_argument("--tools", action="store_true", help="offer the model the built-in tools (time, timers, ...)")
    p.set_defaults(tools=default_on)
    p.add_argument(
        "--home-assistant",
        metavar="URL",
        default=os.environ.get("VOICELOOP_HA_URL"),
        help="light tools calling this Home Assistant-style REST API (token: $VOICELOOP_HA_TOKEN)",
    )


def tool_factory(args: argparse.Namespace, *, always: bool = False) -> Callable[[], list] | None:
    """A fresh tool list per conversation (timers belong to one conversation); None = no tools.
    ``always``: make it even when --tools is off (the bridge's clients may switch tools on)."""
    if not (args.tools or always):
        return None
    from ..tools import HomeAssistant, Timers, builtin_tools

    lights = None
    if args.home_assistant:
        lights = HomeAssistant(args.home_assistant, token=os.environ.get("VOICELOOP_HA_TOKEN", ""))

    def make() -> list:
        return [*builtin_tools(), Timers(), *([lights] if lights else [])]

    return make
