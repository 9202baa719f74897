"""Decode speed of each embedded LLM with llama.cpp's extra buffer types (repacked kernels) on and off.

On AMX CPUs whose ggml was built with AMX, voiceloop/llm/cpu_policy.py withholds AMX from the process
and keeps the repacked kernels; where that cannot be done it turns extra buffer types off. This
measures what "off" costs, side by side in one run, each setting in its own process (the setting
applies at model load): ms per decoded token, and one 8-token prompt batch after 64 tokens of
context (a turn's end: the user's last words and the chat template's tail).

    python examples/decode_speed.py [--threads 1 2] [--tokens 48]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
from voiceloop.llm.cpu_policy import install
settings = install()
import llama_cpp
from voiceloop.models import model_path
name, threads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = llama_cpp.Llama(model_path=str(model_path(name)), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
prompt = llm.tokenize(b"The history of the city of Paris begins", add_bos=True)
best = None
for _ in range(3):
    llm.reset()
    llm.eval(prompt)
    t0 = time.perf_counter_ns()
    for _ in range(n):
        tok = int(llm.scores[llm.n_tokens - 1].argmax())
        llm.eval([tok])
    ms = (time.perf_counter_ns() - t0) / 1e6 / n
    best = ms if best is None else min(best, ms)
batch = None
for _ in range(3):
    llm.reset()
    llm.eval((prompt * 16)[:64])
    t0 = time.perf_counter_ns()
    llm.eval((prompt * 2)[1:9])
    ms = (time.perf_counter_ns() - t0) / 1e6
    batch = ms if batch is None else min(batch, ms)
res = {"model": name, "threads": threads, "extra_bufts": settings.use_extra_bufts, "ms_per_token": round(best, 2),
       "batch8_ms": round(batch, 1)}
print(json.dumps(res))
"""

MODELS = ["gemma-3-270m-q4_k_m", "qwen2.5-coder-0.5b-instruct-q4_k_m", "qwen2.5-coder-1.5b-instruct-q4_k_m"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--models", nargs="+", default=MODELS)
    args = ap.parse_args()
    from voiceloop.llm.cpu_policy import read_cpu_info

    print(f"machine: {read_cpu_info().describe()}")
    print(
        f"{'model':<38} {'threads':>7} {'repack on ms/tok':>17} {'repack off ms/tok':>18} {'off/on':>7}"
        f" {'8-token batch on':>17} {'off':>7} {'off/on':>7}"
    )
    for name in args.models:
        for t in args.threads:
            res = {}
            for flag in ("1", "0"):
                env = {**os.environ, "VOICELOOP_LLAMA_EXTRA_BUFTS": flag}
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, name, str(t), str(args.tokens)], env=env, capture_output=True, text=True
                )
                if out.returncode != 0:
                    sys.exit(f"{name} failed: {out.stderr[-500:]}")
                res[flag] = json.loads(out.stdout.strip().splitlines()[-1])
            on, off = res["1"], res["0"]
            print(
                f"{name:<38} {t:>7} {on['ms_per_token']:>17.1f} {off['ms_per_token']:>18.1f}"
                f" {off['ms_per_token'] / on['ms_per_token']:>6.2f}x"
                f" {on['batch8_ms']:>14.1f} ms {off['batch8_ms']:>7.1f} {off['batch8_ms'] / on['batch8_ms']:>6.2f}x"
            )


if __name__ == "__main__":
    main()
