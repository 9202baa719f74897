"""Latency waterfall: one row per turn, each stage a coloured span from the user's speech end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..metrics.budget import CHAIN

COLOURS = {
    "vad": "#9e9e9e",
    "asr": "#4e79a7",
    "llm": "#f28e2b",
    "clause": "#edc948",
    "tts": "#59a14f",
    "release": "#b07aa1",
}


def plot_waterfall(report: dict[str, Any], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError('--plot needs matplotlib: pip install ".[plot]"') from None
    turns = [t for t in report["turns"] if t.get("v2v_ms") is not None]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(turns) + 1.6))
    for row, t in enumerate(turns):
        x = 0.0
        for stage, _, _ in CHAIN:
            w = t["stages"].get(stage, 0.0)
            ax.barh(row, w, left=x, color=COLOURS[stage], edgecolor="white", height=0.7,
                    label=stage if row == 0 else None)  # fmt: skip
            x += w
        ep = t["stages"].get("endpoint")
        if ep is not None:
            ax.plot([ep, ep], [row - 0.4, row + 0.4], color="black", lw=1)
        ax.text(x + 8, row, f"{t['v2v_ms']:.0f} ms", va="center", fontsize=8)
    budget = report["budgets"].get("v2v")
    if budget:
        ax.axvline(budget, color="red", ls="--", lw=1, label=f"v2v budget {budget:.0f} ms")
    ax.set_yticks(range(len(turns)), [Path(t["input"]).name[:30] for t in turns], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms after the end of the user's speech (black tick: turn end confirmed)")
    s = report["summary"]
    ax.set_title(
        f"voiceloop profile, strategy={s['strategy']}: v2v p50 {s['v2v_ms']['p50']:.0f} ms, p90 {s['v2v_ms']['p90']:.0f} ms"
    )
    ax.legend(loc="lower right", fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
