"""One README row per `voiceloop profile --json` run: v2v p50/p90, per-stage p50, distinct replies.

python examples/ladder_table.py LABEL=run.json [LABEL=run.json ...]
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    print("| option | v2v p50 | v2v p90 | llm p50 | clause p50 | tts p50 | distinct replies | cut-ins | WER |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        label, _, path = arg.partition("=")
        s = json.load(open(path))["summary"]
        v, st = s["v2v_ms"], s["stages"]
        rep = s.get("replies", {})
        print(
            f"| {label} | {v['p50']:.0f} ms | {v['p90']:.0f} ms | {st['llm']['p50']:.0f} | {st['clause']['p50']:.0f} | "
            f"{st['tts']['p50']:.0f} | {rep.get('distinct', '?')}/{rep.get('n', '?')} | {s['cut_ins']} | "
            f"{s.get('wer', float('nan')):.3f} |"
        )


if __name__ == "__main__":
    main()
