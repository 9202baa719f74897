"""Greedy decoding with speculation for llama-cpp-python.

A drafter proposes the next few tokens; the target evaluates the last committed token and the
draft in one batch and keeps the drafted tokens that equal its own argmax, plus its own token at
the first mismatch. Every kept token is the target's greedy choice, so the output is the same
with and without speculation (lossless), and each round yields at least one token.

Two drafters: prompt lookup (copies the continuation of an earlier occurrence of the last
n-gram, free to compute; it pays on read-backs) and a draft model (a smaller GGUF with the same
tokenizer, with its own KV cache kept in step with the committed tokens).

llama-cpp-python's own ``draft_model`` path needs ``logits_all=True``, which keeps a
n_ctx x vocab float matrix (2 GB for Gemma's 262k vocabulary at n_ctx 2048) and copies every row;
this loop reads only the verify batch's logits.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.words import surface_words
from ..errors import ConfigError
from .backend import GenerationStats

if TYPE_CHECKING:
    import llama_cpp

log = logging.getLogger("voiceloop.llm")
GATE_ACCEPTANCE = 0.8
"""The per-token acceptance at which the speculation gate prices a pair (``SpeculationPrice.pays``): a
well-matched drafter (prompt lookup on read-backs, a same-family draft model); chat sits lower."""
MAX_LOSS = 0.05
"""The most a reply may lose against plain one-token steps when no draft is ever accepted (the gate's floor)."""


def common_prefix(evaluated: np.ndarray, tokens: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    m = min(len(evaluated), len(tokens))
    if m == 0:
        return 0
    diff = np.nonzero(evaluated[:m] != np.asarray(tokens[:m], dtype=evaluated.dtype))[0]
    return int(diff[0]) if len(diff) else m


def last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))


def eval_prefix(llm: llama_cpp.Llama, tokens: Sequence[int], *, min_eval: int = 1) -> int:
    """Bring ``llm``'s KV cache to exactly ``tokens`` (reusing the shared prefix); returns tokens reused.

    At least the last ``min_eval`` tokens are evaluated so the last token's logits are current
    (2 keeps the evaluation on llama.cpp's batched kernels, see ``GreedyDecoder``).
    """
    reuse = max(0, min(common_prefix(llm.input_ids[: llm.n_tokens], tokens), len(tokens) - min_eval))
    llm.n_tokens = reuse
    llm.eval(tokens[reuse:])
    return reuse


def eval_rows(
    llm: llama_cpp.Llama,
    tokens: Sequence[int],
    rows: Sequence[int] = (),
    *,
    side: tuple[int, Sequence[int]] | None = None,
) -> dict[int, np.ndarray]:
    """Evaluate ``tokens`` after the KV cache's first ``llm.n_tokens`` in one batch, returning the logits
    of the batch rows asked for (indices into ``tokens``) and of the last one.

    Reading a middle row's logits costs one more output projection, not another batch: this is how the
    end-of-turn probability after the user's words comes free with the prompt that follows them.

    ``side``: (first position, tokens) of sequence 1 to evaluate in the same batch (see side_sequence); its last
    token's logits come back under the key -1. One batch of both costs less than two (the weights are read once).
    """
    import llama_cpp

    n = len(tokens)
    extra_pos, extra = side if side is not None else (0, ())
    want = sorted({r for r in rows if 0 <= r < n} | {n - 1})
    if n + len(extra) > llm.n_batch:
        raise ValueError(f"{n + len(extra)} tokens exceed one batch ({llm.n_batch})")
    llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
    b = llm._batch.batch
    n_past = llm.n_tokens
    b.n_tokens = n + len(extra)
    for i, t in enumerate(tokens):
        b.token[i] = t
        b.pos[i] = n_past + i
        b.seq_id[i][0] = 0
        b.n_seq_id[i] = 1
        b.logits[i] = False
    for k, t in enumerate(extra):
        b.token[n + k] = t
        b.pos[n + k] = extra_pos + k
        b.seq_id[n + k][0] = 1
        b.n_seq_id[n + k] = 1
        b.logits[n + k] = k == len(extra) - 1
    for r in want:
        b.logits[r] = True
    llm._ctx.decode(llm._batch)
    llm.input_ids[n_past : n_past + n] = tokens
    llm.n_tokens += n
    vocab = llm.n_vocab()

    def row(r: int) -> np.ndarray:
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, r), shape=(vocab,)).copy()

    out = {r: row(r) for r in want}
    if extra:
        out[-1] = row(n + len(extra) - 1)
    return out


class Drafter(ABC):
    """Proposes up to ``k`` tokens that continue ``context`` (prompt + committed output)."""

    name: str = "drafter"
    free: bool = False
    """True when proposing costs (almost) nothing, so only the verify batch is at stake."""

    @abstractmethod
    def propose(self, context: Sequence[int], k: int) -> list[int]: ...


class PromptLookupDrafter(Drafter):
    """Drafts by copying what followed the most recent earlier occurrence of the last n-gram."""

    name = "prompt_lookup"
    free = True

    def __init__(self, *, max_ngram: int = 3, min_ngram: int = 1) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ConfigError(f"prompt lookup needs 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        ids = np.asarray(context, dtype=np.int64)
        n_ctx = len(ids)
        for n in range(min(self.max_ngram, n_ctx - 1), self.min_ngram - 1, -1):
            tail = ids[-n:]
            # Windows that end before the last position (the tail itself never matches).
            windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], n)
            hits = np.nonzero((windows == tail).all(axis=1))[0]
            # The most recent occurrence: read-backs copy the user's latest line.
            for start in hits[::-1]:
                cont = ids[start + n : start + n + k]
                if len(cont):
                    return [int(t) for t in cont]
        return []


class DraftModelDrafter(Drafter):
    """A smaller GGUF with the target's tokenizer, greedy, with its own KV cache kept in step."""

    name = "draft"

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self.llm = llm

    def propose(self, context: Sequence[int], k: int) -> list[int]:
        llm = self.llm
        if len(context) + k >= llm.n_ctx():
            return []
        # Roll back to the committed tokens (rejected drafts are dropped) and evaluate what is new.
        eval_prefix(llm, context)
        out: list[int] = []
        for i in range(k):
            out.append(int(last_logits(llm).argmax()))
            if i < k - 1:
                llm.eval(out[-1:])
        return out

    def prefill(self, tokens: Sequence[int]) -> None:
        eval_prefix(self.llm, tokens)


def check_same_tokenizer(target: llama_cpp.Llama, draft: llama_cpp.Llama, *, target_name: str, draft_name: str) -> None:
    """A draft model must map text to the same token ids as its target; one clear error otherwise."""
    why = ""
    if target.n_vocab() != draft.n_vocab():
        why = f"vocabulary sizes differ ({target.n_vocab()} vs {draft.n_vocab()})"
    elif (target.token_bos(), target.token_eos()) != (draft.token_bos(), draft.token_eos()):
        why = "special tokens (BOS/EOS) differ"
    else:
        probe = "User: Call Dr. Müller at 7:45, then book 2 tickets to Zürich!\nAssistant: Sure — done. 😀".encode()
        if target.tokenize(probe, add_bos=True, special=True) != draft.tokenize(probe, add_bos=True, special=True):
            why = "the same text tokenizes differently"
        else:
            step = max(1, target.n_vocab() // 512)
            for tok in range(0, target.n_vocab(), step):
                if target.detokenize([tok], special=True) != draft.detokenize([tok], special=True):
                    why = f"token {tok} has different text"
                    break
    if why:
        raise ConfigError(f"draft model {draft_name} cannot draft for {target_name}: their tokenizers differ: {why}")


@dataclass(slots=True)
class DraftPolicy:
    """Adaptive draft length, and a pause when drafting costs more time than it saves.

    The draft grows by one after a fully accepted round and shrinks to one past the accepted
    count after a rejection. Time per produced token is tracked for plain steps and for drafting
    rounds; when drafting is slower over several rounds it pauses for a while, then probes again.
    """

    k_init: int = 4
    k_max: int = 8
    k_min: int = 1
    min_rounds: int = 3
    pause_tokens: int = 8
    max_pause_tokens: int = 256
    alpha: float = 0.25
    k: int = field(init=False)
    plain_ms: float = field(init=False, default=0.0)
    spec_ms: float = field(init=False, default=0.0)
    spec_rounds: int = field(init=False, default=0)
    paused_for: int = field(init=False, default=0)
    pause_len: int = field(init=False)

    def __post_init__(self) -> None:
        self.k = self.k_init
        self.pause_len = self.pause_tokens

    def new_reply(self) -> None:
        # A pause carries over into the next reply and doubles after every losing probe (up to
        # max_pause_tokens): re-probing at the start of every reply cost a whole conversation up to
        # x0.33 when drafting never paid (a short reply is mostly probe). Only the probe's running
        # average restarts. The draft length carries over too: acceptance is mostly a property of the pair.
        self.spec_rounds = 0
        self.spec_ms = 0.0

    def next_k(self) -> int:
        if self.plain_ms == 0.0:
            return 0  # measure one plain step first: the yardstick for "does drafting pay"
        if self.paused_for > 0:
            return 0
        return self.k

    def update(self, *, drafted: int, accepted: int, produced: int, ms: float) -> None:
        per_token = ms / max(produced, 1)
        if drafted == 0:
            self.plain_ms = per_token if self.plain_ms == 0.0 else (1 - self.alpha) * self.plain_ms + self.alpha * per_token
            self.paused_for = max(0, self.paused_for - produced)
            return
        self.k = min(self.k_max, self.k + 1) if accepted == drafted else max(self.k_min, min(self.k - 1, accepted + 1))
        self.spec_ms = per_token if self.spec_rounds == 0 else (1 - self.alpha) * self.spec_ms + self.alpha * per_token
        self.spec_rounds += 1
        if self.spec_rounds >= self.min_rounds:
            if self.spec_ms > self.plain_ms:
                self.paused_for = self.pause_len
                self.pause_len = min(self.max_pause_tokens, self.pause_len * 2)
                self.spec_rounds = 0
                log.debug(
                    "drafting paused for %d tokens (%.1f vs %.1f ms/token)", self.paused_for, self.spec_ms, self.plain_ms
                )
            else:
                self.pause_len = self.pause_tokens


@dataclass(frozen=True, slots=True)
class SpeculationPrice:
    """What speculation costs on this machine, measured against llama.cpp's plain one-token step.

    A round of draft length k needs k + 1 draft evaluations (the proposals and the catch-up on the target's
    token) and one verify batch of k + 1, and yields (1 - a^(k+1)) / (1 - a) tokens at per-token acceptance a
    (Leviathan et al.): k + 1 when every draft is accepted. ``speedup(1.0)`` is an upper bound; the gate asks
    for a gain at ``GATE_ACCEPTANCE``, a well-matched pair, because a real reply also pays the rounds that
    fail and the padded single steps that keep the kernels exact. On a 2-vCPU AVX2 EPYC the Qwen2.5 0.5B drafts
    at ~0.8 of the 1.5B's step and a Q4_K verify batch of 3 costs ~2.6 steps: x0.59 at best."""

    step_ms: float
    """One plain one-token step of the target."""
    verify: dict[int, float]
    """A batch of n tokens (n >= 2) relative to ``step_ms``."""
    draft_ratio: float
    """One draft step relative to ``step_ms``; 0 for free drafts (prompt lookup)."""

    def speedup(self, acceptance: float = 1.0) -> tuple[float, int]:
        """(expected speedup over plain steps at this per-token acceptance, the draft length that gives it)."""
        a = min(max(acceptance, 0.0), 1.0)
        best = (0.0, 0)
        for n, v in sorted(self.verify.items()):
            if n >= 2:
                tokens = float(n) if a >= 1.0 else (1 - a**n) / (1 - a)
                best = max(best, (tokens / (n * self.draft_ratio + v), n - 1))
        return best

    def floor(self) -> float:
        """The speed over plain steps of a reply in which nothing is accepted: the exact decoder's lone steps
        are padded batches of two (``GreedyDecoder(batched=True)``), so they cost ``verify[2]``; probes aside."""
        return 1.0 / self.verify[2] if 2 in self.verify else 1.0

    def pays(self, min_gain: float = 1.05, acceptance: float | None = None, max_loss: float = MAX_LOSS) -> bool:
        """Worth it on this machine: the expected gain at ``acceptance`` is at least ``min_gain`` and a reply
        where every draft fails (a chat reply to a drafter that only reads back) loses at most ``max_loss``."""
        if self.floor() < 1.0 - max_loss:
            # Measured on the F32 Gemma 270M here (2-vCPU AVX2 EPYC): a padded step x1.28-1.36 of a plain one.
            # Prompt lookup priced x2 at acceptance 0.8, yet a reply with nothing to propose ran at ~x0.75.
            return False
        gain = self.speedup(GATE_ACCEPTANCE if acceptance is None else acceptance)[0]
        if self.draft_ratio == 0.0 and 2 in self.verify:
            # Free drafts (prompt lookup) often have nothing to propose, and the exact decoder then takes a
            # padded step of two tokens, not a plain one: the gain must pay for those too. Measured on the Qwen
            # 1.5B Q4_K_M here: priced x1.06 at 0.8 without this, it ran x0.62 of plain steps in the bench.
            gain /= self.verify[2]
        return gain >= min_gain

    def describe(self) -> str:
        best, k = self.speedup(1.0)
        typical, k_typical = self.speedup(GATE_ACCEPTANCE)
        costs = ", ".join(f"{n}: x{v:.2f}" for n, v in sorted(self.verify.items()))
        return (
            f"x{typical:.2f} at acceptance {GATE_ACCEPTANCE} (k={k_typical}), x{best:.2f} if every draft were accepted "
            f"(k={k}), x{self.floor():.2f} if none were, over plain steps"
            f" (step {self.step_ms:.1f} ms, draft x{self.draft_ratio:.2f}, verify batches {costs})"
        )


def measure_price(
    target: llama_cpp.Llama, max_batch: int, draft: llama_cpp.Llama | None = None, *, reps: int = 5
) -> SpeculationPrice:
    """Time the target's plain step and verify batches of 2..max_batch, and the draft model's step (none for
    prompt lookup), on a short prompt; medians of ``reps``. ~1-2 s on a 1.5B Q4_K_M with 2 cores. Leaves both
    KV caches empty."""
    import statistics

    text = "User: What is the tallest mountain in Europe?\nAssistant: The tallest mountain in Europe is"
    tokens = target.tokenize(text.encode(), add_bos=True, special=True)

    def prompt(llm: llama_cpp.Llama) -> int:
        """The prompt in the cache once per model; the timed batches go after it and are dropped again."""
        llm.n_tokens = 0
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.eval(tokens)
        return int(last_logits(llm).argmax())

    def timed(llm: llama_cpp.Llama, n: int, token: int) -> float:
        base = len(tokens)
        times = []
        for _ in range(reps):
            llm._ctx.kv_cache_seq_rm(-1, base, -1)
            llm._batch.set_batch(batch=[token] * n, n_past=base, logits_all=n > 1)
            t0 = time.perf_counter_ns()
            llm._ctx.decode(llm._batch)
            times.append((time.perf_counter_ns() - t0) / 1e6)
        return statistics.median(times)

    def clear(llm: llama_cpp.Llama) -> None:
        llm.n_tokens = 0
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)

    token = prompt(target)
    step = timed(target, 1, token)
    verify = {n: timed(target, n, token) / step for n in range(2, max_batch + 1)}
    clear(target)
    ratio = 0.0
    if draft is not None:
        ratio = timed(draft, 1, prompt(draft)) / step
        clear(draft)
    return SpeculationPrice(step_ms=step, verify=verify, draft_ratio=ratio)


def batch_invariant_size(llm: llama_cpp.Llama, max_size: int = 9) -> int:
    """The largest batch size n such that batches of 2..n give bit-identical logits on this model.

    llama.cpp evaluates one token and a batch with different CPU kernels (and some quantisation
    types switch kernels again at larger batches), so the same position can get logits that differ
    in the 2nd decimal: enough to flip a near-tie. Greedy speculation is exactly lossless only when
    every target evaluation runs on kernels that agree; this probe finds the sizes that do.
    Measured here: F32 and F16 agree for every size >= 2; Q4_K_M for 2 and 3 only.
    """
    text = "User: Please remind me to water the plants on Sunday morning.\nAssistant: Sure, I will remind you"
    seq = llm.tokenize(text.encode(), add_bos=True, special=True)
    head, probe = seq[:4], seq[4:16]
    nv = llm.n_vocab()

    def rows(size: int) -> list[np.ndarray]:
        llm.n_tokens = 0
        llm.eval(head)
        out: list[np.ndarray] = []
        for i in range(0, len(probe), size):
            part = probe[i : i + size]
            pad = part + part[-1:] * max(0, 2 - len(part))  # a lone token is padded to two
            n0 = llm.n_tokens
            llm._ctx.kv_cache_seq_rm(-1, n0, -1)
            llm._batch.set_batch(batch=pad, n_past=n0, logits_all=True)
            llm._ctx.decode(llm._batch)
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(pad), nv))
            out += [logits[j].copy() for j in range(len(part))]
            llm.n_tokens = n0 + len(part)
        return out

    reference = rows(2)
    best = 2
    for size in range(3, max_size + 1):
        if not all(np.array_equal(a, b) for a, b in zip(rows(size), reference, strict=True)):
            break
        best = size
    llm.n_tokens = 0
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    return best


def squash(text: str) -> str:
    """Letters and digits, lower case: the text with spacing, case and punctuation gone."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


class CopyGuard:
    """Keeps a reply from copying long runs of earlier text (no-repeat n-grams, as in beam search).

    Small models in a long conversation drift into copying: an earlier answer word for word, or the
    user's own line read back. The guard bans, at each step, any token that would complete an
    n-gram of the reply that already occurs in a source (earlier replies: ``n``; the user's line:
    ``n_user``, longer, so short read-backs like "Added milk, eggs and bread." stay possible).
    The decoder applies it to every argmax, verify batches included, so speculation stays exact.
    """

    def __init__(self, sources: list[list[int]], user: list[int] | None = None, *, n: int = 8, n_user: int = 10) -> None:
        self._tables: list[tuple[int, dict[tuple[int, ...], set[int]]]] = []
        self._whole_text: dict[str, frozenset[int]] = {}
        self._openings: dict[int, dict[tuple[str, ...], set[str]]] = {}
        """Banned openings by their length in words: the words before the last, and the last words refused."""
        self._first_words: frozenset[str] = frozenset()
        self._detokenize: Callable[[list[int]], str] | None = None
        for seqs, size in ((sources, n), ([user] if user else [], n_user)):
            table: dict[tuple[int, ...], set[int]] = {}
            for seq in seqs:
                for i in range(len(seq) - size + 1):
                    table.setdefault(tuple(seq[i : i + size - 1]), set()).add(seq[i + size - 1])
            if table:
                self._tables.append((size, table))

    def ban_run(self, run: list[int]) -> None:
        """Never complete this exact token run (e.g. a label the reply must not open with)."""
        if len(run) >= 2:
            self._tables.append((len(run), {tuple(run[:-1]): {run[-1]}}))

    def ban_whole(self, texts: Sequence[str], detokenize: Callable[[list[int]], str], ends: Collection[int]) -> None:
        """Never end the reply as a copy of one of ``texts`` (earlier replies): once the reply *reads* as one of them
        without its final mark, none of ``ends`` (marks, newlines, the end of the message) may follow, so it must go
        on ("What is the number" -> "... of the card?"). Compared in words, not tokens: on the real-speech session
        the 1.5B said "What's the story about, Mr John Dashwood?" to eleven lines as "Mr john", "MrJohn",
        "Mr.john" ... each a new token run. Letters and digits only, lower case; one-word replies ("Yes.") are left
        alone."""
        for text in texts:
            if len(text.split()) >= 2 and (key := squash(text)):
                self._whole_text[key] = frozenset(ends)
        if self._whole_text:
            self._detokenize = detokenize

    def ban_opening(self, texts: Sequence[str], detokenize: Callable[[list[int]], str], words: int = 4) -> None:
        """Never open the reply with the first ``words`` words of one of ``texts`` (earlier replies).

        A template the n-gram ban is too long to see: on the real-speech session (a reader's book lines) the 1.5B
        answered 19 lines in a row "What's the subject of this passage ...?", each ending on a new word, so no reply
        equalled another and no 8-token run closed. Compared in words (tokens spell a word many ways); the token that
        would begin the last word of such an opening is refused, so the reply takes another way from there on.
        Replies no longer than the opening are left to ``ban_whole``."""
        for text in texts:
            ws = surface_words(text)
            if len(ws) > words:
                self._ban_words(ws[:words])
        if self._openings:
            self._detokenize = detokenize

    def _ban_words(self, opening: Sequence[str]) -> None:
        self._openings.setdefault(len(opening), {}).setdefault(tuple(opening[:-1]), set()).add(opening[-1])

    def _opens_as_before(self, reply: list[int], token: int) -> bool:
        assert self._detokenize is not None
        ws = surface_words(self._detokenize([*reply, token]))
        # Judged when the token begins an opening's last word: before, it is not there yet; after, it was decided.
        last = self._openings.get(len(ws), {}).get(tuple(ws[:-1]))
        return last is not None and any(w.startswith(ws[-1]) for w in last)

    def ban_first_word(self, forms: Collection[str], detokenize: Callable[[list[int]], str]) -> None:
        """Never open the reply with this word, in any of its ``forms`` (surface words: "seven", "7") or any
        tokens that spell it: a reply thrown away for reading the user's line back is decoded again without the
        line's first word (``readback``), or it finds another spelling of the same read-back ("Seven" -> "7")."""
        self._first_words |= frozenset(forms)
        self._detokenize = detokenize

    def _opens_with_banned_word(self, reply: list[int], token: int) -> bool:
        assert self._detokenize is not None
        ws = surface_words(self._detokenize([*reply, token]))
        # Judged while the first word is being written; a token that could still become it is refused.
        return len(ws) == 1 and any(f.startswith(ws[0]) for f in self._first_words)

    def _refused(self, reply: list[int], token: int) -> bool:
        """Banned by the guard's rules read on text (the openings), not by token runs."""
        if self._openings and self._opens_as_before(reply, token):
            return True
        return bool(self._first_words) and self._opens_with_banned_word(reply, token)

    def ban_token(self, token: int) -> None:
        """Never write this token anywhere in the reply (e.g. a tool call's tag after the decision said no)."""
        self._tables.append((1, {(): {token}}))

    def banned(self, reply: list[int]) -> set[int]:
        out: set[int] = set()
        if self._detokenize is not None and reply:
            out |= self._whole_text.get(squash(self._detokenize(reply)), frozenset())
        for size, table in self._tables:
            if len(reply) >= size - 1:
                out |= table.get(tuple(reply[len(reply) - size + 1 :]), set())
        return out

    def choose(self, reply: list[int], logits: np.ndarray) -> int:
        best = int(logits.argmax())
        if not self._tables and not self._whole_text and not self._openings and not self._first_words:
            return best
        banned = self.banned(reply)
        if best not in banned and not self._refused(reply, best):
            return best
        masked = logits.copy()
        masked[list(banned)] = -np.inf
        # The opening bans are read on the candidate's text, so they are tried on the best few, not on the vocabulary.
        for _ in range(32):
            best = int(masked.argmax())
            if not self._refused(reply, best):
                return best
            masked[best] = -np.inf
        return int(masked.argmax())


class GreedyDecoder:
    """Greedy token generator on a llama-cpp-python target, with an optional drafter.

    ``batched=True`` runs every target evaluation as a batch of at least two tokens (a lone step
    is padded and the pad dropped) and caps the verify batch at ``max_batch``: all tokens then come
    from the same kernels, so output with and without a drafter is identical token for token.
    """

    def __init__(
        self,
        target: llama_cpp.Llama,
        drafter: Drafter | None = None,
        *,
        policy: DraftPolicy | None = None,
        batched: bool = False,
        max_batch: int = 9,
    ) -> None:
        self.target = target
        self.drafter = drafter
        self.policy = policy or DraftPolicy()
        self.batched = batched
        self.max_batch = max_batch
        self.output: list[int] = []
        """Tokens of the last reply (including any produced past the caller's stop)."""
        self.rounds: list[tuple[int, int]] = []
        """(drafted, accepted) per verify round of the last reply."""
        self.draft_ns = 0
        self.verify_ns = 0
        """Time spent drafting and verifying in drafting rounds of the last reply."""
        self.guard: CopyGuard | None = None
        """Set per reply by the backend; None = plain argmax."""

    def _verify(self, batch: list[int]) -> list[int]:
        """Evaluate ``batch`` after the committed tokens; the target's argmax after each position."""
        llm = self.target
        n0 = llm.n_tokens
        n = len(batch)
        run = batch + batch[-1:] if (self.batched and n == 1) else batch
        llm._ctx.kv_cache_seq_rm(-1, n0, -1)
        llm._batch.set_batch(batch=run, n_past=n0, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n0 : n0 + n] = batch
        llm.n_tokens = n0 + n
        if len(run) > n:
            llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)  # drop the pad
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(run), llm.n_vocab()))
        if self.guard is None:
            return [int(t) for t in logits[:n].argmax(axis=1)]
        # Row i predicts the token after batch[i]: the reply so far is the output plus the drafts before it.
        return [self.guard.choose(self.output + batch[1 : i + 1], logits[i]) for i in range(n)]

    def generate(
        self,
        tokens: list[int],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        stats: GenerationStats | None = None,
        first_logits: np.ndarray | None = None,
        reused: int | None = None,
    ) -> Iterator[int]:
        """Yield the target's greedy tokens one by one; the caller stops on EOS or stop strings.

        ``first_logits``: the KV cache already holds exactly ``tokens`` and these are the last one's
        logits (the caller evaluated the prompt, ``reused`` of its tokens from the cache)."""
        st = stats if stats is not None else GenerationStats()
        llm = self.target
        st.prompt_tokens = len(tokens)
        t_eval = time.perf_counter_ns()
        if first_logits is not None:
            st.reused_tokens = len(tokens) if reused is None else reused
        else:
            st.reused_tokens = eval_prefix(llm, tokens, min_eval=2 if self.batched else 1)
        if first_logits is None:
            st.prompt_ms = (time.perf_counter_ns() - t_eval) / 1e6
        st.evaluated_tokens = len(tokens) - st.reused_tokens
        z = first_logits if first_logits is not None else last_logits(llm)
        last = self.guard.choose([], z) if self.guard is not None else int(z.argmax())
        produced = 1
        out = self.output = [last]
        self.rounds = []
        self.draft_ns = self.verify_ns = 0
        yield last
        policy = self.policy
        policy.new_reply()
        room = llm.n_ctx() - 1
        while produced < max_tokens and llm.n_tokens < room:
            if stop is not None and stop.is_set():
                return
            k = min(
                policy.next_k() if self.drafter else 0,
                max_tokens - produced - 1,
                room - llm.n_tokens - 2,
                self.max_batch - 1,
            )
            t0 = time.perf_counter_ns()
            draft = self.drafter.propose(tokens + out, k) if (self.drafter and k > 0) else []
            t1 = time.perf_counter_ns()
            n0 = llm.n_tokens
            preds = self._verify([last, *draft])
            if draft:
                self.draft_ns += t1 - t0
                self.verify_ns += time.perf_counter_ns() - t1
            a = 0
            while a < len(draft) and draft[a] == preds[a]:
                a += 1
            if a < len(draft):
                # Drop the rejected drafts from the target's KV cache.
                llm.n_tokens = n0 + 1 + a
                llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
            new = [*draft[:a], preds[a]]
            policy.update(drafted=len(draft), accepted=a, produced=len(new), ms=(time.perf_counter_ns() - t0) / 1e6)
            if draft:
                self.rounds.append((len(draft), a))
            st.drafted_tokens += len(draft)
            st.accepted_tokens += a
            for t in new:
                produced += 1
                out.append(t)
                yield t
                if stop is not None and stop.is_set():
                    return
            last = new[-1]
