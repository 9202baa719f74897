"""A second sequence in the same llama context, sharing the main one's cached prefix.

A tool-call decision read on the request alone (the system turn with the tools, then only the user's words)
is far better than one read after the conversation: these small models imitate an earlier answer given
without a call. Evaluating that request-only prompt in a second sequence costs only its own tokens: the
system turn (~1,000 tokens with the tools' schemas) is the main sequence's cached prefix, shared by
``llama_memory_seq_cp`` (a unified KV cache tags cells with both sequences, nothing is copied).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .speculative import common_prefix

MAIN, SIDE = 0, 1


class SideSequence:
    """Logits of the last token of a prompt kept in sequence 1; the shared head comes from sequence 0."""

    def __init__(self, llm: Any, seq_id: int = SIDE, *, share_main: bool = True) -> None:
        self.llm = llm
        self.seq_id = seq_id
        self.share_main = share_main
        """False for a prompt of its own (another system turn): it keeps its own head, nothing from the main one."""
        self.ids: list[int] = []
        self.shared = 0
        """How many of ``ids`` are cells shared with the main sequence."""
        ctx = llm._ctx
        rm = self._rm = ctx.kv_cache_seq_rm

        def seq_rm(seq_id: int, p0: int, p1: int) -> bool:
            # llama-cpp-python drops stale cells with seq_id -1 (every sequence) before each evaluation: keep
            # that to the main sequence. When the main one rewrites the shared head, the side one lets go of
            # it too, or both versions would hold cells (a 1,000-token head twice fills a 2,048 context).
            if seq_id in (-1, MAIN) and max(p0, 0) < self.shared:
                self.clear()
            return rm(MAIN if seq_id == -1 else seq_id, p0, p1)

        ctx.kv_cache_seq_rm = seq_rm

    def clear(self) -> None:
        self._rm(self.seq_id, 0, -1)
        self.ids, self.shared = [], 0

    def _adopt_main_prefix(self, ids: Sequence[int]) -> int:
        """Share as much of ``ids`` as the main sequence holds, if that beats what the side one holds."""
        llm = self.llm
        own = common_prefix(np.asarray(self.ids, dtype=np.int64), ids)
        main = common_prefix(llm.input_ids[: llm.n_tokens], ids) if self.share_main else 0
        if main > own:
            self.clear()
            llm._ctx.kv_cache_seq_cp(MAIN, self.seq_id, 0, main)
            self.ids, self.shared = list(ids[:main]), main
            return main
        return own

    def prepare(self, ids: Sequence[int], *, logits: bool = True) -> int:
        """Keep what the side sequence (or the main one's head) already holds of ``ids``, drop the rest, and
        return where evaluation must start (with ``logits``, at least at the last token). The caller evaluates
        ``ids[start:]`` at positions ``start...`` in sequence 1 (e.g. in the main sequence's batch), then
        calls ``evaluated(ids)``."""
        keep = self._adopt_main_prefix(ids)
        if logits:
            keep = min(keep, len(ids) - 1)
        self._rm(self.seq_id, keep, -1)
        self.ids = list(ids[:keep])
        self.shared = min(self.shared, keep)
        return keep

    def evaluated(self, ids: Sequence[int]) -> None:
        self.ids = list(ids)

    def eval(
        self,
        ids: Sequence[int],
        *,
        logits: bool = True,
        chunk: int | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> np.ndarray | None:
        """Bring the side sequence to ``ids``; the last token's logits (always at least one token is evaluated
        when they are asked for). ``stop`` is checked between chunks (a background prefill gives way)."""
        import llama_cpp

        llm = self.llm
        keep = self.prepare(ids, logits=logits)
        step = min(chunk or llm.n_batch, llm.n_batch)
        b = llm._batch.batch
        out = None
        for i in range(keep, len(ids), step):
            if stop is not None and stop():
                return None
            part = ids[i : i + step]
            b.n_tokens = len(part)
            for j, t in enumerate(part):
                b.token[j] = t
                b.pos[j] = i + j
                b.seq_id[j][0] = self.seq_id
                b.n_seq_id[j] = 1
                b.logits[j] = False
            last = i + len(part) == len(ids)
            if last and logits:
                b.logits[len(part) - 1] = True
            llm._ctx.decode(llm._batch)
            self.ids += list(part)
            if last and logits:
                out = np.ctypeslib.as_array(
                    llama_cpp.llama_get_logits_ith(llm.ctx, len(part) - 1), shape=(llm.n_vocab(),)
                ).copy()
        return out
