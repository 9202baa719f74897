"""``voiceloop bench llm``: speculative decoding measured side by side on one target.

Every conversation runs in each mode (none, prompt_lookup, draft) back to back, in a rotating
order, with the conversation's history already in both KV caches (a follow-up turn, as in a live
call). Decode speed, time to first token, acceptance and the greedy tokens are recorded per mode;
losslessness is token-for-token equality with ``none``. A cost model predicts the speedup from
the measured acceptance, draft/target cost ratio and verify-batch cost, is checked against the
measured points, and is then evaluated for realistic pairs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from ..llm.backend import GenerationStats
from ..llm.llama import LlamaBackend, LlamaOptions
from ..llm.prompt import Message
from ..llm.speculative import (
    DraftModelDrafter,
    DraftPolicy,
    GreedyDecoder,
    PromptLookupDrafter,
    SpeculationPrice,
    common_prefix,
    eval_prefix,
    measure_price,
)

log = logging.getLogger("voiceloop.bench")

MODES = ("none", "prompt_lookup", "draft")


@dataclass(frozen=True, slots=True)
class LLMBenchOptions:
    target: str | None = None
    """Target GGUF; None = Gemma 3 270M F32 written from the embedded Q4_K_M."""
    draft: str | None = None
    """Draft GGUF; None = the embedded Gemma 3 270M Q4_K_M."""
    prompts: str | None = None
    """A JSON file shaped like voiceloop/bench/llm_prompts.json; None = the bundled set."""
    max_tokens: int = 48
    repeats: int = 2
    limit: int | None = None
    n_threads: int | None = None
    """Decode threads; None = the machine profile's choice for the target (voiceloop.core.machine)."""
    n_threads_batch: int = 2
    gate: float | None = 1.05
    """The backend's speculation gate (``LlamaOptions.speculation_gate``): a mode whose priced gain at acceptance
    0.8 does not beat plain steps by this factor here, or whose padded lone steps lose more than 5 %, runs plain
    steps, as the pipeline would. None = run every
    mode (to measure the loss)."""


@dataclass(slots=True)
class _Run:
    conv: str
    kind: str
    mode: str
    ttft_ms: float
    tokens: int
    decode_ms: float
    drafted: int
    accepted: int
    rounds: list[tuple[int, int]]
    draft_ms: float
    verify_ms: float
    produced: int
    """Tokens the decoder produced; more than consumed when a round overshoots the reply's end."""
    ids: list[int]
    text: str


@dataclass(slots=True)
class _Costs:
    target_ms: float
    draft_ms: float
    verify: dict[int, float] = field(default_factory=dict)
    """Verify-batch cost of n tokens relative to one token."""

    def verify_cost(self, n: int) -> float:
        if n in self.verify:
            return self.verify[n]
        top = max(self.verify)
        return self.verify[top] * n / top


def load_conversations(path: str | None = None) -> list[dict[str, Any]]:
    if path:
        text = Path(path).read_text()
    else:
        text = resources.files("voiceloop.bench").joinpath("llm_prompts.json").read_text()
    return list(json.loads(text)["conversations"])


def token_acceptance(rounds: list[tuple[int, int]]) -> float:
    """Per-token acceptance probability: each drafted position is tested only if all before it passed."""
    tested = sum(a + (1 if a < k else 0) for k, a in rounds)
    return sum(a for _, a in rounds) / tested if tested else 0.0


def predicted_speedup(
    acceptance: float, cost_ratio: float, verify_cost: Callable[[int], float], *, k: float | None = None, k_max: int = 8
) -> float:
    """Expected decode speedup at draft length ``k`` (None: the best fixed length, which the adaptive policy
    approaches on long replies).

    Per round (Leviathan et al., 2023): (1 - a^(k+1)) / (1 - a) tokens come out for a verify batch of
    k + 1 (verify_cost(k + 1) target tokens) and k + 1 draft evaluations (k proposals plus catching up
    on the token the target added), each cost_ratio of a target token.
    """
    a = min(acceptance, 0.999999)

    def at(k: float) -> float:
        expected = (1 - a ** (k + 1)) / (1 - a)
        draft_evals = k + 1 if cost_ratio > 0 else 0
        lo = int(k)  # verify cost between the measured integer batch sizes
        v = verify_cost(lo + 1) + (k - lo) * (verify_cost(lo + 2) - verify_cost(lo + 1))
        return expected / (draft_evals * cost_ratio + v)

    if k is not None:
        return at(k)
    return max(1.0, *(at(k) for k in range(1, k_max + 1)))


def predicted_in_replies(speedup: float, runs: list[_Run], overhead: float = 0.0) -> float:
    """The model's speedup on these replies: only tokens from drafting rounds speed up (Amdahl),
    tokens a final round produces past the reply's end are paid for but not used, and the host's
    per-token work (detokenising, stop matching; ``overhead`` target tokens) is the same in every mode."""
    produced = sum(r.produced for r in runs)
    consumed = sum(len(r.ids) for r in runs)
    if not produced:
        return 1.0
    drafted_rounds = sum(a + 1 for r in runs for _, a in r.rounds)
    f = min(1.0, drafted_rounds / produced)
    per_token = ((1 - f) + f / speedup) * produced / consumed
    return (1 + overhead) / (per_token + overhead)


def _calibrate(backend: LlamaBackend) -> _Costs:
    """One-token and batch costs of the target, one-token cost of the draft: the backend's own pricing
    (``speculative.measure_price``) over every batch size the bench reports, bit-exact or not."""
    assert backend.draft_llm is not None
    price = measure_price(backend.llm, 9, backend.draft_llm, reps=7)
    return _Costs(target_ms=price.step_ms, draft_ms=price.draft_ratio * price.step_ms, verify={1: 1.0, **price.verify})


def _warm_history(backend: LlamaBackend, history: list[Message], user: str) -> None:
    """Put the conversation so far in both KV caches: the state of a live call before this turn."""
    full = backend._tokens(history, user)
    rendered = backend.prompt.render(backend._trim(history), user)
    # Everything before the user's new words (transcript "User: " or a chat template's user header).
    cut = rendered.rindex(user) if user in rendered else rendered.rindex(getattr(backend.prompt, "user_prefix", "User:"))
    head = backend.llm.tokenize(rendered[:cut].encode(), add_bos=True, special=True)
    n = common_prefix(np.asarray(head, dtype=np.intc), full)
    for llm in (backend.llm, backend.draft_llm):
        if llm is not None:
            llm.n_tokens = 0
            eval_prefix(llm, full[:n])


def _history(conv: dict[str, Any]) -> list[Message]:
    msgs: list[Message] = []
    for user, assistant in conv["history"]:
        msgs += [Message("user", user), Message("assistant", assistant)]
    return msgs


def run_llm_bench(opts: LLMBenchOptions, *, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from ..models.registry import model_path

    say = progress or (lambda _msg: None)
    from ..cli.llm_args import resolve_model
    from ..core.machine import llm_threads

    target = resolve_model(opts.target) or str(model_path("gemma-3-270m-f32"))
    draft = resolve_model(opts.draft) or str(model_path("gemma-3-270m-q4_k_m"))
    opts = dataclasses.replace(opts, n_threads=opts.n_threads or llm_threads(target))
    backend = LlamaBackend(
        LlamaOptions(
            model=target,
            speculative="draft",
            draft_model=draft,
            n_threads=opts.n_threads,
            n_threads_batch=opts.n_threads_batch,
            prompt_format="auto",  # chat template when the target has one (Qwen), else the transcript
            speculation_gate=None,  # the bench applies the gate per mode below, after pricing both
        )
    )
    assert backend.draft_llm is not None
    max_batch = backend.decoder.max_batch
    k_max = max_batch - 1

    def spec(drafter: PromptLookupDrafter | DraftModelDrafter | None) -> GreedyDecoder:
        policy = DraftPolicy(k_max=k_max, k_init=min(4, k_max))
        return GreedyDecoder(backend.llm, drafter, policy=policy, batched=True, max_batch=max_batch)

    # "none" runs on the same batched kernels as the drafting modes (the exact reference);
    # "plain" is llama.cpp's usual one-token step, reported alongside.
    decoders = {
        "none": spec(None),
        "prompt_lookup": spec(PromptLookupDrafter()),
        "draft": spec(DraftModelDrafter(backend.draft_llm)),
        "plain": GreedyDecoder(backend.llm),
        "plain_all_threads": GreedyDecoder(backend.llm),
    }
    say(f"target {Path(target).name}, draft {Path(draft).name}, bit-exact verify batches <= {max_batch}; calibrating")
    costs = _calibrate(backend)
    verdicts: dict[str, str] = {}
    for mode, ratio in (("draft", costs.draft_ms / costs.target_ms), ("prompt_lookup", 0.0)):
        price = SpeculationPrice(
            step_ms=costs.target_ms, verify={n: v for n, v in costs.verify.items() if 2 <= n <= max_batch}, draft_ratio=ratio
        )
        if opts.gate is not None and not price.pays(opts.gate):
            decoders[mode] = GreedyDecoder(backend.llm)  # what the backend does: plain steps
            verdicts[mode] = f"plain steps (gate x{opts.gate}): {price.describe()}"
        else:
            verdicts[mode] = f"speculates: {price.describe()}"
        say(f"{mode}: {verdicts[mode]}")
    convs = load_conversations(opts.prompts)[: opts.limit]

    def run(conv: dict[str, Any], mode: str) -> _Run:
        history = _history(conv)
        _warm_history(backend, history, conv["user"])
        backend.decoder = decoders[mode]
        st = GenerationStats()
        if mode == "plain_all_threads":
            # One-token steps on every core too: what the verify batches get (n_threads_batch).
            llama_cpp.llama_set_n_threads(backend.llm.ctx, opts.n_threads_batch, opts.n_threads_batch)
        try:
            text = "".join(backend.stream(history, conv["user"], max_tokens=opts.max_tokens, stats=st))
        finally:
            llama_cpp.llama_set_n_threads(backend.llm.ctx, opts.n_threads, opts.n_threads_batch)
        dec = decoders[mode]
        # The caller stops at EOS / a stop string; compare the tokens it consumed.
        ids = dec.output[: st.decode_tokens + 1]
        return _Run(
            conv=conv["id"], kind=conv["kind"], mode=mode, ttft_ms=st.ttft_ms, tokens=st.decode_tokens,
            decode_ms=st.decode_ms, drafted=st.drafted_tokens, accepted=st.accepted_tokens,
            rounds=list(dec.rounds), draft_ms=dec.draft_ns / 1e6, verify_ms=dec.verify_ns / 1e6,
            produced=len(dec.output), ids=ids, text=text,
        )  # fmt: skip

    all_modes = (*MODES, "plain", "plain_all_threads")
    for mode in all_modes:  # warm-up: first-call allocations and the policies' plain-step yardstick
        run(convs[0], mode)
    runs: list[_Run] = []
    for rep in range(opts.repeats):
        for i, conv in enumerate(convs):
            r = (i + rep) % len(all_modes)
            order = all_modes[r:] + all_modes[:r]
            for mode in order:
                runs.append(run(conv, mode))
            say(f"[{rep + 1}/{opts.repeats}] {i + 1}/{len(convs)} {conv['id']}")
    followups = _followup_ttfts(convs, opts)
    return _summarise(runs, followups, costs, target=target, draft=draft, opts=opts, max_batch=max_batch, verdicts=verdicts)


def _followup_ttfts(convs: list[dict[str, Any]], opts: LLMBenchOptions) -> list[float]:
    """Time to first token of a follow-up turn on the embedded model (as the voice pipeline runs it).

    The previous turn is generated in place, so the KV cache holds the conversation as a live
    call leaves it; then the next user line is timed.
    """
    backend = LlamaBackend(LlamaOptions(n_threads_batch=opts.n_threads_batch))
    out = []
    for conv in convs:
        if not conv.get("followup"):
            continue
        history = _history(conv)
        reply = "".join(backend.stream(history, conv["user"], max_tokens=opts.max_tokens)).strip()
        st = GenerationStats()
        history += [Message("user", conv["user"]), Message("assistant", reply)]
        for _ in backend.stream(history, conv["followup"], max_tokens=2, stats=st):
            pass
        out.append(st.ttft_ms)
    return out


def _tok_s(runs: list[_Run]) -> float:
    ms = sum(r.decode_ms for r in runs)
    return sum(max(r.tokens - 1, 0) for r in runs) / (ms / 1000.0) if ms > 0 else 0.0


def _best_tok_s(runs: list[_Run]) -> float:
    return max((_tok_s([r]) for r in runs), default=0.0)


def _summarise(
    runs: list[_Run],
    followups: list[float],
    costs: _Costs,
    *,
    target: str,
    draft: str,
    opts: LLMBenchOptions,
    max_batch: int,
    verdicts: dict[str, str] | None = None,
) -> dict[str, Any]:
    verdicts = verdicts or {}
    gated = {m for m, v in verdicts.items() if v.startswith("plain")}
    by_mode = {m: [r for r in runs if r.mode == m] for m in MODES}
    plain = [r for r in runs if r.mode == "plain"]
    plain_all = [r for r in runs if r.mode == "plain_all_threads"]
    none_ids: dict[str, list[int]] = {}
    for r in by_mode["none"]:
        none_ids.setdefault(r.conv, r.ids)
    plain_ids: dict[str, list[int]] = {}
    for r in plain:
        plain_ids.setdefault(r.conv, r.ids)

    def reference(r: _Run) -> list[int]:
        # A gated mode runs llama.cpp's plain steps: its exact reference is plain decoding, not the batched one.
        return plain_ids[r.conv] if r.mode in gated else none_ids[r.conv]

    mismatches = sorted({f"{r.mode}:{r.conv}" for r in runs if r.mode in MODES and r.ids != reference(r)})
    plain_same = sum(r.ids == none_ids[r.conv] for r in plain) / len(plain) if plain else 0.0
    none_tok_s = _tok_s(by_mode["none"])

    def kind_tok_s(mode: str, kind: str) -> float:
        return _tok_s([r for r in by_mode[mode] if r.kind == kind])

    modes: dict[str, dict[str, Any]] = {}
    for mode, rs in by_mode.items():
        m: dict[str, Any] = {
            "ttft_ms": round(statistics.median(r.ttft_ms for r in rs), 1),
            "tok_s": round(_tok_s(rs), 1),
        }
        if mode != "none":
            drafted = sum(r.drafted for r in rs)
            rounds = [x for r in rs for x in r.rounds]
            m["acceptance"] = round(sum(r.accepted for r in rs) / drafted, 3) if drafted else 0.0
            m["token_acceptance"] = round(token_acceptance(rounds), 3)
            m["speedup"] = round(_tok_s(rs) / none_tok_s, 3)
            for kind in ("chat", "readback"):
                ref = kind_tok_s("none", kind)
                m[f"speedup_{kind}"] = round(kind_tok_s(mode, kind) / ref, 3) if ref else 0.0
            # Per conversation (over the repeats): the worst case, not only the aggregate.
            per_conv = {}
            for conv in none_ids:
                ref = _tok_s([r for r in by_mode["none"] if r.conv == conv])
                mine = _tok_s([r for r in rs if r.conv == conv])
                if ref > 0 and mine > 0:
                    per_conv[conv] = mine / ref
            chat_ids = {r.conv for r in rs if r.kind == "chat"}
            chat_speedups = [v for c, v in per_conv.items() if c in chat_ids]
            m["speedup_chat_min"] = round(min(chat_speedups), 3) if chat_speedups else 0.0
            m["speedup_by_conversation"] = {c: round(v, 3) for c, v in per_conv.items()}
            # The yardstick: llama.cpp's plain one-token steps (what the pipeline runs with "none").
            # Per conversation, each side's fastest repeat: on a shared host two identical decoders differ by
            # +-10 % from run to run (measured: x0.87-0.91 worst conversation, one repeat each), more than the 5 %
            # being checked; the fastest of a few repeats is the least disturbed (as timeit takes the minimum).
            vs_plain = {}
            for conv in none_ids:
                ref = _best_tok_s([r for r in plain if r.conv == conv])
                mine = _best_tok_s([r for r in rs if r.conv == conv])
                if ref > 0 and mine > 0:
                    vs_plain[conv] = mine / ref
            m["speedup_vs_plain"] = round(_tok_s(rs) / _tok_s(plain), 3) if plain and _tok_s(plain) else 0.0
            m["speedup_vs_plain_min"] = round(min(vs_plain.values()), 3) if vs_plain else 0.0
            m["speedup_vs_plain_by_conversation"] = {c: round(v, 3) for c, v in vs_plain.items()}
            m["verdict"] = verdicts.get(mode, "")
            m["drafted"] = drafted
            m["accepted"] = sum(r.accepted for r in rs)
        modes[mode] = m
    cost_ratio = costs.draft_ms / costs.target_ms
    # Host work per token beyond the forward pass, from the plain decode's measured speed.
    overhead = max(0.0, 1000.0 / none_tok_s / costs.target_ms - 1) if none_tok_s else 0.0
    modes["draft"]["cost_ratio"] = round(cost_ratio, 3)
    checks = []
    for mode, ratio in (("draft", cost_ratio), ("prompt_lookup", 0.0)):
        if mode in gated:
            continue  # it ran plain steps: no rounds to check the model against
        acc = modes[mode]["token_acceptance"]
        rounds = [x for r in by_mode[mode] for x in r.rounds]
        mean_k = sum(k for k, _ in rounds) / len(rounds) if rounds else 1.0
        ideal = predicted_speedup(acc, ratio, costs.verify_cost)
        at_k = predicted_speedup(acc, ratio, costs.verify_cost, k=mean_k)
        # The same model with the costs seen inside the loop (drafting and verifying, per round).
        n_rounds = max(len(rounds), 1)
        draft_ms = sum(r.draft_ms for r in by_mode[mode]) / n_rounds
        verify_ms = sum(r.verify_ms for r in by_mode[mode]) / n_rounds
        in_loop_ratio = draft_ms / ((mean_k + 1) * costs.target_ms) if ratio > 0 else 0.0
        in_loop_verify = verify_ms / costs.target_ms

        def in_loop_cost(n: int, v: float = in_loop_verify) -> float:
            return v

        at_k_loop = predicted_speedup(acc, in_loop_ratio, in_loop_cost, k=mean_k)
        checks.append(
            {
                "mode": mode,
                "cost_ratio": round(ratio, 3),
                "acceptance": acc,
                "mean_draft_len": round(mean_k, 2),
                "predicted_best_k": round(ideal, 3),
                "predicted": round(predicted_in_replies(at_k, by_mode[mode], overhead), 3),
                "in_loop": {
                    "draft_ms_per_round": round(draft_ms, 2),
                    "verify_ms_per_round": round(verify_ms, 2),
                    "cost_ratio": round(in_loop_ratio, 3),
                    "verify_cost": round(in_loop_verify, 3),
                    "predicted": round(predicted_in_replies(at_k_loop, by_mode[mode], overhead), 3),
                },
                "measured": modes[mode]["speedup"],
            }
        )
    predicted = [
        {"cost_ratio": c, "acceptance": a, "speedup": round(predicted_speedup(a, c, costs.verify_cost), 3)}
        for c in (0.05, 0.1, 0.2)
        for a in (0.5, 0.6, 0.7, 0.8, 0.9)
    ]
    return {
        "target": Path(target).name,
        "draft": Path(draft).name,
        "lossless": not mismatches,
        "lossless_mismatches": mismatches,
        "conversations": len(none_ids),
        "repeats": opts.repeats,
        "max_tokens": opts.max_tokens,
        "modes": modes,
        "plain_decode": {
            "tok_s": round(_tok_s(plain), 1),
            "ttft_ms": round(statistics.median(r.ttft_ms for r in plain), 1) if plain else 0.0,
            "same_tokens_as_none": round(plain_same, 3),
            "tok_s_all_threads": round(_tok_s(plain_all), 1),
            "threads": {"decode": opts.n_threads, "batch": opts.n_threads_batch},
        },
        "bit_exact_batch_max": max_batch,
        "followup_ttft_ms": round(statistics.median(followups), 1) if followups else 0.0,
        "followup_ttft_p90_ms": round(sorted(followups)[int(0.9 * (len(followups) - 1))], 1) if followups else 0.0,
        "costs": {
            "target_token_ms": round(costs.target_ms, 2),
            "draft_token_ms": round(costs.draft_ms, 2),
            "verify_cost": {str(n): round(v, 3) for n, v in costs.verify.items()},
            "host_overhead_per_token": round(overhead, 3),
        },
        "model_check": checks,
        "predicted": predicted,
        "replies": {r.conv: r.text.strip() for r in by_mode["none"]},
    }


def format_report(res: dict[str, Any]) -> str:
    lines = [
        f"target {res['target']}  draft {res['draft']}  ({res['conversations']} conversations x {res['repeats']}, "
        f"<= {res['max_tokens']} tokens, modes interleaved)",
        f"{'mode':<14}{'ttft ms':>9}{'tok/s':>8}{'accept':>8}{'speedup':>9}{'chat':>7}{'readback':>10}",
    ]
    for mode in MODES:
        m = res["modes"][mode]
        acc = f"{m['acceptance']:.2f}" if "acceptance" in m else "-"
        sp = f"x{m['speedup']:.2f}" if "speedup" in m else "x1.00"
        chat = f"x{m['speedup_chat']:.2f}" if "speedup_chat" in m else "-"
        rb = f"x{m['speedup_readback']:.2f}" if "speedup_readback" in m else "-"
        worst = f"   worst chat conversation x{m['speedup_chat_min']:.2f}" if "speedup_chat_min" in m else ""
        lines.append(f"{mode:<14}{m['ttft_ms']:>9.1f}{m['tok_s']:>8.1f}{acc:>8}{sp:>9}{chat:>7}{rb:>10}{worst}")
        if "speedup_vs_plain" in m:
            lines.append(
                f"{'':<14}against plain steps x{m['speedup_vs_plain']:.2f}, worst conversation "
                f"x{m['speedup_vs_plain_min']:.2f}; {m['verdict']}"
            )
    p = res["plain_decode"]
    lines.append(
        f"{'(plain)':<14}{p['ttft_ms']:>9.1f}{p['tok_s']:>8.1f}  one-token steps; same tokens as none on "
        f"{p['same_tokens_as_none'] * 100:.0f}% of replies"
    )
    lines.append(
        f"{'(plain, ' + str(p['threads']['batch']) + ' thr)':<14}{'':>9}{p['tok_s_all_threads']:>8.1f}  one-token steps on "
        f"{p['threads']['batch']} threads (the modes above decode on {p['threads']['decode']}, verify on "
        f"{p['threads']['batch']})"
    )
    c = res["costs"]
    lines.append(
        f"lossless: {'yes' if res['lossless'] else 'NO (' + ', '.join(res['lossless_mismatches']) + ')'}   "
        f"follow-up ttft (cached history, embedded Q4_K_M): p50 {res['followup_ttft_ms']:.1f} ms, "
        f"p90 {res['followup_ttft_p90_ms']:.1f} ms"
    )
    lines.append(
        f"costs: target {c['target_token_ms']:.1f} ms/token, draft {c['draft_token_ms']:.1f} ms/token "
        f"(ratio {res['modes']['draft']['cost_ratio']:.2f}), verify 5 tokens = x{c['verify_cost']['5']:.2f} one token"
    )
    lines.append("cost model vs measured:")
    for ch in res["model_check"]:
        lines.append(
            f"  {ch['mode']:<14} acceptance/token {ch['acceptance']:.2f}  cost ratio {ch['cost_ratio']:.2f}  "
            f"mean k {ch['mean_draft_len']:.1f}: predicted x{ch['predicted']:.2f} "
            f"(x{ch['predicted_best_k']:.2f} at the best k), measured x{ch['measured']:.2f}"
        )
        il = ch["in_loop"]
        lines.append(
            f"  {'':<14} in-loop costs: draft {il['draft_ms_per_round']:.1f} ms + verify {il['verify_ms_per_round']:.1f} ms "
            f"per round (ratio {il['cost_ratio']:.2f}, verify x{il['verify_cost']:.2f}): predicted x{il['predicted']:.2f}"
        )
    lines.append("predicted speedup for realistic pairs (same verify-cost curve):")
    accs = sorted({p["acceptance"] for p in res["predicted"]})
    lines.append("  cost ratio " + "".join(f"{'a=' + format(a, '.1f'):>8}" for a in accs))
    for c_ratio in sorted({p["cost_ratio"] for p in res["predicted"]}):
        row = [p for p in res["predicted"] if p["cost_ratio"] == c_ratio]
        lines.append(f"  {c_ratio:<11.2f}" + "".join(f"{'x' + format(p['speedup'], '.2f'):>8}" for p in row))
    return "\n".join(lines)
