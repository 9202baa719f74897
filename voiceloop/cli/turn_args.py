"""The end-of-turn options shared by profile, serve and assistant."""

from __future__ import annotations

import argparse

from ..turn.base import EndpointingPolicy


def add_turn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--endpointing",
        choices=["calibrated", "cues"],
        default="calibrated",
        help="end-of-turn decision: calibrated P(end) from the LLM (+ smart-turn) [default], or generic syntax cues",
    )
    p.add_argument(
        "--turn-audio",
        choices=["auto", "on", "off"],
        default="auto",
        help="smart-turn audio model in the decision (the 'turn' extra); auto = if installed",
    )


def turn_audio(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "on": True, "off": False}[args.turn_audio]


def endpointing(args: argparse.Namespace) -> EndpointingPolicy | None:
    """None = the agent's default (the calibrated decision)."""
    if args.endpointing == "cues":
        from ..turn.cues import AdaptiveEndpointing

        return AdaptiveEndpointing()
    return None
