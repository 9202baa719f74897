"""llama-cpp-python backend: KV-cache prefix reuse, streaming, a stop flag between tokens."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ModelNotFoundError
from .backend import GenerationStats, LLMBackend
from .prompt import ChatTemplatePrompt, Message, TranscriptPrompt
from .stops import StopMatcher

log = logging.getLogger("voiceloop.llm")

SpeculativeMode = Literal["none", "prompt_lookup"]


@dataclass(frozen=True, slots=True)
class LlamaOptions:
    model: str | None = None
    """A GGUF file; None = the embedded Gemma 3 270M Q4_K_M."""
    n_ctx: int = 2048
    n_threads: int = 1
    """Decode threads. A 270M model decodes as fast on one core as on two (memory-bound),
    and one thread leaves the other core to TTS, ASR and VAD running at the same time."""
    n_threads_batch: int = 2
    """Prompt-evaluation threads (compute-bound: both cores help)."""
    n_batch: int = 256
    speculative: SpeculativeMode = "none"
    prompt_format: Literal["auto", "transcript", "chat"] = "auto"
    """auto: the GGUF's chat template when it has one, else transcript-style few-shot."""
    max_history_turns: int = 8
    history_trim_block: int = 4
    """History is cut in blocks of this many turns, so the KV cache survives most turns."""


class LlamaBackend(LLMBackend):
    name = "llama.cpp"

    def __init__(self, options: LlamaOptions | None = None) -> None:
        self.options = o = options or LlamaOptions()
        path = o.model
        if path is None:
            from ..models.registry import model_path

            path = str(model_path("gemma-3-270m-q4_k_m"))
        if not Path(path).is_file():
            raise ModelNotFoundError(f"GGUF model not found: {path}")
        import llama_cpp

        draft = None
        if o.speculative == "prompt_lookup":
            from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

            draft = LlamaPromptLookupDecoding(num_pred_tokens=4)
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=o.n_ctx,
                n_threads=o.n_threads,
                n_threads_batch=o.n_threads_batch,
                n_batch=o.n_batch,
                draft_model=draft,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(f"cannot load GGUF model {path}: {exc}") from None
        self.model_path = Path(path)
        self._end_ids = sorted(
            {self.llm.tokenize(e.encode(), add_bos=False, special=False)[0] for e in (".", "?", "!", "\n", "\n\n")}
        )
        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._is_eog = lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))
        template = self.llm.metadata.get("tokenizer.chat_template")
        use_chat = o.prompt_format == "chat" or (o.prompt_format == "auto" and bool(template))
        if use_chat and template:
            self.prompt: TranscriptPrompt | ChatTemplatePrompt = ChatTemplatePrompt(
                template=template,
                bos_token=self._piece(self.llm.token_bos()),
                eos_token=self._piece(self.llm.token_eos()),
            )
        else:
            self.prompt = TranscriptPrompt()
        # One llama context: calls are serialised (sessions must never decode concurrently).
        self.lock = threading.Lock()

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def _tokens(self, history: list[Message], user_text: str) -> list[int]:
        history = self._trim(history)
        text = self.prompt.render(history, user_text)
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def _trim(self, history: list[Message]) -> list[Message]:
        # Sliding by one turn would change the prompt's start every turn and void the cache;
        # jumping by blocks keeps the prompt prefix stable for several turns at a time.
        turns, limit, block = len(history) // 2, self.options.max_history_turns, self.options.history_trim_block
        if turns <= limit:
            return history
        start = -(-(turns - limit) // block) * block
        return history[2 * start :]

    def _cached_prefix(self, tokens: list[int]) -> int:
        n = 0
        for a, b in zip(self.llm._input_ids[: self.llm.n_tokens], tokens, strict=False):
            if a != b:
                break
            n += 1
        return min(n, len(tokens) - 1)

    def end_of_turn_probability(self, history: list[Message], user_text: str) -> float | None:
        """P(the user's line ends here) from the model's next-token distribution.

        Scores "User: <words>" without the ASR's final punctuation: the probability mass on
        ".", "?", "!" and a newline is the model's belief that the sentence is over. The KV
        cache keeps this evaluation, so the reply that follows re-evaluates only a few tokens.
        """
        if not isinstance(self.prompt, TranscriptPrompt):
            return None
        text = user_text.strip().rstrip(".?!,;: ")
        if not text:
            return None
        with self.lock:
            prompt = self.prompt.render_user_line(self._trim(history), text)
            tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            reuse = self._cached_prefix(tokens)
            self.llm.n_tokens = reuse
            self.llm.eval(tokens[reuse:])
            logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),))
            z = logits.astype(np.float64)
            p = np.exp(z - z.max())
            return float(p[self._end_ids].sum() / p.sum())

    def prefill(self, history: list[Message], user_text: str) -> None:
        """Evaluate the prompt of a partial transcript so the final one only adds its tail."""
        with self.lock:
            tokens = self._tokens(history, user_text)
            # The last user words may still change; keep the known-good prefix only.
            tokens = tokens[:-4]
            reuse = self._cached_prefix(tokens)
            if reuse >= len(tokens):
                return
            self.llm.n_tokens = reuse
            self.llm.eval(tokens[reuse:])

    def stream(
        self,
        history: list[Message],
        user_text: str,
        *,
        stop: threading.Event | None = None,
        max_tokens: int = 64,
        stats: GenerationStats | None = None,
    ) -> Iterator[str]:
        st = stats if stats is not None else GenerationStats()
        with self.lock:
            t0 = time.perf_counter_ns()
            tokens = self._tokens(history, user_text)
            st.prompt_tokens = len(tokens)
            st.reused_tokens = self._cached_prefix(tokens)
            st.evaluated_tokens = len(tokens) - st.reused_tokens
            matcher = StopMatcher(tuple(getattr(self.prompt, "stop", ())))
            eos = self.llm.token_eos()
            out_ids: list[int] = []
            emitted = 0
            t_first = 0
            gen = self.llm.generate(tokens, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True)
            try:
                for token in gen:
                    now = time.perf_counter_ns()
                    if not t_first:
                        t_first = now
                        st.ttft_ms = (now - t0) / 1e6
                    if stop is not None and stop.is_set():
                        st.cancelled = True
                        st.finish_reason = "cancelled"
                        break
                    if token == eos or self._is_eog(token):
                        st.finish_reason = "eos"
                        break
                    out_ids.append(token)
                    st.decode_tokens = len(out_ids)
                    st.decode_ms = (now - t_first) / 1e6
                    raw = self.llm.detokenize(out_ids)
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        continue  # a multi-byte character is split across tokens
                    piece, emitted = text[emitted:], len(text)
                    released = matcher.feed(piece)
                    if released:
                        yield released
                    if matcher.stopped:
                        st.finish_reason = "stop"
                        break
                    if len(out_ids) >= max_tokens:
                        st.finish_reason = "length"
                        break
                    if stop is not None and stop.is_set():
                        st.cancelled = True
                        st.finish_reason = "cancelled"
                        break
                else:
                    st.finish_reason = st.finish_reason or "eos"
            finally:
                gen.close()
            tail = matcher.flush()
            if tail and not st.cancelled:
                yield tail
