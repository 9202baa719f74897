"""Well-formed tool calls from a small model: a GBNF grammar built from the tools' JSON schemas.

``tools_grammar`` turns the offered tools into one grammar, ``{"name": <a tool>, "arguments": <its
schema>}`` (llama-cpp-python's JSON-schema converter, as ``LlamaGrammar.from_json_schema`` uses);
``GrammarConstraint`` applies it to the greedy decoder's logits through llama.cpp's grammar sampler,
one token at a time, once a call has started.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


def tools_grammar(tools: list[dict[str, Any]]) -> str:
    """GBNF for one call to any of ``tools`` (OpenAI ``tools`` entries)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    alternatives = []
    for t in tools:
        fn = t.get("function", t)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    return json_schema_to_gbnf(json.dumps({"anyOf": alternatives}))


class GrammarConstraint:
    """Masks logits to the tokens the grammar allows next; ``accept`` advances it."""

    def __init__(self, llm: Any, gbnf: str) -> None:
        import llama_cpp

        self._lib = llama_cpp
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._smpl = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        if not self._smpl:
            raise ValueError("llama.cpp rejected the tools' grammar")
        n = llm.n_vocab()
        self._arr = np.zeros(n, dtype=_TOKEN_DATA)
        self._arr["id"] = np.arange(n, dtype=np.int32)
        ptr = self._arr.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
        self._data = llama_cpp.llama_token_data_array(data=ptr, size=n, selected=-1, sorted=False)

    def mask(self, logits: np.ndarray) -> np.ndarray:
        self._arr["logit"] = logits
        self._arr["p"] = 0.0
        self._data.size = len(self._arr)
        self._data.selected = -1
        self._data.sorted = False
        self._lib.llama_sampler_apply(self._smpl, ctypes.byref(self._data))
        out = np.full(len(self._arr), -np.inf, dtype=np.float32)
        out[self._arr["id"]] = self._arr["logit"]  # by id: a sampler may reorder the array
        return out

    def best(self, logits: np.ndarray, k: int = 64) -> int | None:
        """The highest-scoring token the grammar allows (None: only an end is allowed: the call is complete).

        The grammar checks the top ``k`` candidates first (llama.cpp matches each candidate's text against
        the grammar, ~20 ms for a 152k vocabulary); only when none of them fits is the whole vocabulary
        checked. The result is the same greedy choice either way."""
        top = np.argpartition(logits, -k)[-k:]
        sub = self._masked(top, logits[top])
        if np.isfinite(sub).any():
            return int(top[int(np.argmax(sub))])
        z = self.mask(logits)
        return int(np.argmax(z)) if np.isfinite(z).any() else None

    def _masked(self, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        n = len(ids)
        arr = np.zeros(n, dtype=_TOKEN_DATA)
        arr["id"], arr["logit"] = ids, logits
        ptr = arr.ctypes.data_as(ctypes.POINTER(self._lib.llama_token_data))
        data = self._lib.llama_token_data_array(data=ptr, size=n, selected=-1, sorted=False)
        self._lib.llama_sampler_apply(self._smpl, ctypes.byref(data))
        order = np.argsort(arr["id"][: data.size])
        pos = np.searchsorted(arr["id"][: data.size][order], ids)
        return arr["logit"][: data.size][order][pos]

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self._smpl, token)

    def close(self) -> None:
        if self._smpl:
            self._lib.llama_sampler_free(self._smpl)
            self._smpl = None

    def __del__(self) -> None:
        self.close()
