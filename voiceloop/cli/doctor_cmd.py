"""``voiceloop doctor [--tune]``: one line per check, the fix for each failure."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the installation (engines, models, audio, CPU) in child processes; --tune measures engine threads",
    )
    p.add_argument("--tune", action="store_true", help="measure each engine at 1, 2, ... threads and save a machine profile")
    p.add_argument("--only", nargs="+", metavar="CHECK", help="run only these checks")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..doctor import CHECKS, run_check

    checks = [c for c in CHECKS if not args.only or c.name in args.only]
    failed = 0
    for check in checks:
        res = run_check(check)
        line = f"{res.status:<4}  {check.name:<10} {res.detail}"
        print(line, flush=True)
        if not res.ok and res.fix:
            print(f"      {'':<10} fix: {res.fix}", flush=True)
        failed += not res.ok and check.required
    if args.tune:
        from ..doctor.tune import tune_and_save

        tune_and_save(report=print)
    if failed:
        print(f"doctor: {failed} check(s) the main job needs failed", file=sys.stderr)
        return 1
    print("doctor: everything the main job needs works")
    return 0
