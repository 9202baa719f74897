"""``voiceloop doctor``: the installation checked in child processes, crashes told in words."""

from .crash import Crash, crash_from_returncode, engine_from_dump
from .runner import CHECKS, Check, CheckResult, run_check, run_checks

__all__ = ["CHECKS", "Check", "CheckResult", "Crash", "crash_from_returncode", "engine_from_dump", "run_check", "run_checks"]
