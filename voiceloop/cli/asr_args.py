"""The speech-recognition options shared by profile, serve and assistant."""

from __future__ import annotations

import argparse

from ..asr.second_opinion import SecondOpinionOptions
from ..asr.whisper import WhisperOptions


def add_asr_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--whisper", help="a CTranslate2 Whisper model directory, or a catalog name (whisper-base)")
    p.add_argument(
        "--second-opinion",
        default="auto",
        metavar="MODEL|auto|off",
        help="re-hear a turn the main Whisper was unsure of with this stronger one (catalog name or directory); "
        "auto = whisper-base when it is installed and --whisper is the default",
    )
    p.add_argument(
        "--second-opinion-threshold",
        type=float,
        default=SecondOpinionOptions.threshold,
        help="ask when the main Whisper's mean token log-probability is below this (default: %(default)s); "
        "another value asks for the second opinion, so a missing model is an error then",
    )


def whisper_options(args: argparse.Namespace) -> WhisperOptions:
    return WhisperOptions(model=args.whisper)


def second_opinion(args: argparse.Namespace) -> SecondOpinionOptions | bool | None:
    """None = auto, False = off, else the options."""
    if args.second_opinion == "off":
        return False
    if args.second_opinion == "auto":
        if args.second_opinion_threshold == SecondOpinionOptions.threshold:
            return None
        return SecondOpinionOptions(threshold=args.second_opinion_threshold)
    return SecondOpinionOptions(model=args.second_opinion, threshold=args.second_opinion_threshold)
