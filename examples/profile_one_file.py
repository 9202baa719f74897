"""Run one recorded question through the real pipeline and print its latency record.

python examples/profile_one_file.py path/to/question.wav
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from voiceloop import Engines
from voiceloop.profile.runner import build_report, format_table, load_inputs, profile_inputs, system_info


async def main(path: Path) -> None:
    engines = Engines.load()
    engines.warm_up()
    spans, budgeter = await profile_inputs(engines, load_inputs([path]))
    report = build_report(spans, budgeter, strategy="speculative", system=system_info(engines))
    print(format_table(report))
    engines.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
