"""Load benchmark for the websocket bridge: N concurrent sessions streaming real speech in real time.

    python examples/bridge_load.py --sessions 1 2 3 4 --files ../shared/data/real_speech/cmu_arctic_*.wav

Starts `voiceloop serve` on a free loopback port, then for each N runs N clients at once; each streams every file
(20 ms frames, real time, 3 s of silence after each) and collects the server's `turn` records. Reports p50/p95 v2v,
answered turns, errors, and the server's CPU and memory per session (from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from voiceloop.audio.files import read_audio
from voiceloop.metrics.budget import percentiles

TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _client(url: str, clips: list[tuple[np.ndarray, int]]) -> tuple[list[float], int, int]:
    v2v: list[float] = []
    errors = 0
    expected = len(clips)
    async with connect(url, max_size=None) as ws:
        rate = clips[0][1]
        await ws.send(
            json.dumps({"type": "hello", "version": 1, "sample_rate": rate, "encoding": "pcm_s16le", "channels": 1})
        )
        assert json.loads(await ws.recv())["type"] == "ready"

        async def send() -> None:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            k = 0
            for pcm, r in clips:
                audio = np.concatenate([pcm, np.zeros(3 * r, np.int16)])
                step = r // 50
                for i in range(0, audio.shape[0] - step + 1, step):
                    k += 1
                    await asyncio.sleep(max(0.0, t0 + k * 0.02 - loop.time()))
                    await ws.send(audio[i : i + step].tobytes())
            await asyncio.sleep(1.0)
            await ws.send(json.dumps({"type": "bye"}))

        sender = asyncio.create_task(send())
        async for m in ws:
            if isinstance(m, bytes):
                continue
            msg = json.loads(m)
            if msg["type"] == "turn" and msg.get("v2v_ms") is not None and not msg["extra"].get("merged_into_next"):
                v2v.append(msg["v2v_ms"])
            elif msg["type"] == "error":
                errors += 1
        await sender
    return v2v, errors, expected


async def run(n: int, url: str, clips, pid: int) -> dict:
    cpu0, t0 = _cpu_s(pid), time.monotonic()
    results = await asyncio.gather(*(_client(url, clips) for _ in range(n)), return_exceptions=True)
    wall = time.monotonic() - t0
    v2v = [x for r in results if not isinstance(r, BaseException) for x in r[0]]
    errors = sum(r[1] if not isinstance(r, BaseException) else 1 for r in results)
    expected = n * len(clips)
    p = percentiles(v2v)
    return {
        "sessions": n,
        "answered": len(v2v),
        "expected": expected,
        "errors": errors,
        "v2v_p50_ms": p["p50"],
        "v2v_p95_ms": p["p95"],
        "server_cpu_per_session": (_cpu_s(pid) - cpu0) / wall / n,
        "server_rss_mb": _rss_mb(pid),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--files", type=Path, nargs="+", required=True)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    clips = []
    for f in args.files:
        samples, rate = read_audio(f)
        clips.append(((samples * 32767).astype(np.int16), rate))
    rate = clips[0][1]
    if any(r != rate for _, r in clips):
        sys.exit("all files must share one sample rate (one hello per session)")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "voiceloop", "serve", "--port", str(port), "--max-sessions", str(max(args.sessions))],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in server.stderr:  # wait until it listens
            if "open http" in line:
                break
        time.sleep(0.5)
        url = f"ws://127.0.0.1:{port}/ws"
        idle_rss = _rss_mb(server.pid)
        rows = []
        for n in args.sessions:
            row = asyncio.run(run(n, url, clips, server.pid))
            row["server_rss_mb_idle"] = idle_rss
            rows.append(row)
            print(
                f"N={n}: answered {row['answered']}/{row['expected']} errors {row['errors']} "
                f"v2v p50 {row['v2v_p50_ms'] or float('nan'):.0f} ms p95 {row['v2v_p95_ms'] or float('nan'):.0f} ms  "
                f"server CPU/session {row['server_cpu_per_session']:.2f} cores  RSS {row['server_rss_mb']:.0f} MB",
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
