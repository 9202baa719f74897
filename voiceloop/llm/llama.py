"""llama-cpp-python backend: KV-cache prefix reuse, streaming, a stop flag between tokens."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ..core.words import surface_words
from ..errors import ConfigError, ModelNotFoundError
from .backend import GenerationStats, LLMBackend
from .prompt import RECAP_CALL, ChatTemplatePrompt, Message, TranscriptPrompt, split_system
from .readback import ReadBackCheck
from .side_sequence import SideSequence
from .speculative import (
    CopyGuard,
    Drafter,
    DraftModelDrafter,
    DraftPolicy,
    GreedyDecoder,
    PromptLookupDrafter,
    SpeculationPrice,
    batch_invariant_size,
    check_same_tokenizer,
    common_prefix,
    eval_rows,
    last_logits,
    measure_price,
)
from .stops import RepeatedSentenceStop, StopMatcher

log = logging.getLogger("voiceloop.llm")
READ_BACK_RETRIES = 2
"""How many times a reply that read the user's line back is decoded again, each time without the line's first word
and the word it opened with."""
JUDGE_SEQ = 2
"""The call judge's sequence in the llama context (0: the conversation, 1: the request alone)."""
SIDE_CELLS = 512
"""KV cells beyond ``n_ctx`` for the side sequences' own tokens (the request alone, the judge's ~200): the
conversation keeps its whole budget."""

SpeculativeMode = Literal["none", "prompt_lookup", "draft"]
OPEN_CALL = "<tool_call>\n"


@dataclass(frozen=True, slots=True)
class LlamaOptions:
    model: str | None = None
    """A GGUF file; None = the catalog's default LLM (models/catalog.toml)."""
    n_ctx: int = 4096
    """Room for the system turn (~1,260 tokens with the built-in tools' schemas), the history and the reply. At
    2,048 the history's budget was ~180 tokens with tools: every ~4 turns the whole history was dropped and
    evaluated again (100-150 tokens, ~4 s on a 2-vCPU AVX2 EPYC, often in front of a reply). The cache costs
    ~115 MB more for the 1.5B model; attention over a longer prompt costs a little per token."""
    n_threads: int | None = None
    """Decode threads; None = this machine's measured choice for the model (``voiceloop doctor --tune``,
    voiceloop.core.machine). A 270M model decodes as fast on one EPYC core as on two (memory-bound), a
    0.5B one does not; one thread, where it is enough, leaves the other core to TTS, ASR and VAD."""
    n_threads_batch: int = 2
    """Prompt-evaluation threads (compute-bound: both cores help)."""
    n_batch: int = 256
    speculative: SpeculativeMode = "none"
    """none | prompt_lookup | draft (needs ``draft_model``). Lossless: greedy output is the same in every mode.
    On the embedded Q4_K_M a verify batch costs ~2x one token, so drafting rarely pays there and
    ``none`` is the default; see ``voiceloop bench llm``."""
    draft_model: str | None = None
    """A smaller GGUF with the same tokenizer (e.g. Gemma 3 270M drafting for Gemma 3 4B)."""
    draft_max: int = 8
    """Longest draft; the length adapts between 1 and this from the acceptance."""
    draft_threads: int = 1
    speculation_gate: float | None = 1.05
    """Speculate only if, priced on this machine at load (``speculative.measure_price``, ~1-2 s), the expected
    speedup at per-token acceptance 0.8 (``speculative.GATE_ACCEPTANCE``) beats plain one-token steps by this
    factor, and a reply where no draft is accepted loses at most 5 % (``speculative.MAX_LOSS``: the exact decoder's
    padded lone steps); else decode plainly, and say so. None = speculate as asked (to measure the loss)."""
    prompt_format: Literal["auto", "transcript", "chat"] = "auto"
    """auto: the GGUF's chat template when it has one, else transcript-style few-shot."""
    history_tokens: int | None = None
    """Token budget for the system prompt plus history; None = ``n_ctx`` minus 512 (the user's line and
    the reply). Older turns are dropped when the budget is exceeded."""
    history_trim_block: int = 4
    """History is cut in blocks of this many turns, so the KV cache survives most turns."""
    prefill_threads: int = 1
    """Threads for background prefill while the user speaks: the other core is Whisper's then. The reply at the
    turn's end, when ASR is done, uses ``n_threads`` / ``n_threads_batch``."""
    prefill_chunk: int = 4
    """Tokens per background prefill step; a reply waits at most one step."""
    tool_call_threshold: float = 0.33
    """With tools offered: the probability mass on a call's first token ("{", "<", "<tool_call>") above which
    the reply is a tool call, read on the request alone (the system turn with the tools, then only the user's
    words: ``SideSequence``), never after the conversation, which pulls these models towards answering. The
    embedded Qwen2.5-Coder models put 0.24-0.74 there for requests a tool serves and rarely make it the top
    token. Fitted on examples/tools/requests.json's tune split (``tool_eval.py text``: the lowest threshold
    with no false call)."""
    tool_call_band: float | None = 0.2
    """Unsure between this and ``tool_call_threshold``: the call is written without a word reaching the user and
    kept only when its arguments are grounded in the request (``voiceloop.tools.grounding``), else the reply
    answers in words. Conversions ("How many ounces in three pounds?", P 0.24-0.31) sit there beside questions
    ("How many legs does a spider have?", 0.32), and only the call's arguments tell them apart ("3" was said,
    ``calculate("8/2")`` was not). Costs writing the call (~0.9 s here) on those requests. None = off."""
    tool_call_sure: float = 0.45
    """From this P(call) on, a call needs no second look; below it (down to ``tool_call_band``) the judge decides
    too (``tool_call_judge``)."""
    tool_call_judge: float | None = 0.92
    """A call with P(call) under ``tool_call_sure`` is made only when the model, asked apart whether the message
    asks for one of the tools (a prompt of its own: the tools' names and descriptions, then the user's words,
    answered yes or no), says yes with at least this probability. It reads remarks as remarks ("My cat is twelve
    years old." → ``calculate("12 * 12")`` at P(call) 0.34; judged yes 0.68) where requests score 0.86-0.99.
    Fitted with P(call) on the tune splits of two request sets (``tool_eval.py text``). None = off."""
    tool_call_threshold_in_conversation: float | None = 0.5
    """A call also when P(call) read after the conversation reaches this: a follow-up ("and in Paris?") means
    nothing alone. Kept high: after a conversation P(call) of plain questions reached 0.29; None = off."""
    tool_decision_alone: bool = True
    """Read the call decision on the request alone once there is history (costs the request's tokens in a
    second KV-cache sequence, prefilled while the user speaks). False = read it after the conversation only."""
    tool_call_written_alone: bool = True
    """A call decided on the request alone is written there too (kept when its arguments come from the request,
    else written again after the conversation): after a conversation the model copies earlier calls."""
    tool_grammar: bool = True
    """Constrain a call to the tools' JSON schemas (a GBNF grammar): always a well-formed call to a real tool."""
    copy_guard: bool = True
    """Ban long runs copied from earlier replies or from the user's line (speculative.CopyGuard)."""


class LlamaBackend(LLMBackend):
    name = "llama.cpp"

    def __init__(self, options: LlamaOptions | None = None) -> None:
        self.options = o = options or LlamaOptions()
        path = o.model
        if path is None:
            from ..models.registry import default_model, model_path

            path = str(model_path(default_model("llm")))
        if not Path(path).is_file():
            raise ModelNotFoundError(f"GGUF model not found: {path}")
        if o.speculative not in ("none", "prompt_lookup", "draft"):
            raise ConfigError(f"speculative must be none, prompt_lookup or draft, not {o.speculative!r}")
        if o.speculative == "draft" and not o.draft_model:
            raise ConfigError("speculative='draft' needs draft_model: a smaller GGUF with the same tokenizer")
        from ..core.machine import llm_threads

        self.n_threads = o.n_threads or llm_threads(path)
        self.llm = _load(
            path,
            n_ctx=o.n_ctx + SIDE_CELLS,
            n_threads=self.n_threads,
            n_threads_batch=o.n_threads_batch,
            n_batch=o.n_batch,
            sequences=3,
        )
        self.model_path = Path(path)
        self.draft_llm = None
        self.speculation_price: SpeculationPrice | None = None
        """The measured cost of speculation on this machine (``speculative`` != none, the gate on)."""
        drafter: Drafter | None = None
        if o.speculative == "prompt_lookup":
            drafter = PromptLookupDrafter()
        elif o.speculative == "draft":
            assert o.draft_model is not None
            if not Path(o.draft_model).is_file():
                raise ModelNotFoundError(f"draft GGUF model not found: {o.draft_model}")
            self.draft_llm = _load(
                o.draft_model, n_ctx=o.n_ctx, n_threads=o.draft_threads, n_threads_batch=o.n_threads_batch, n_batch=o.n_batch
            )
            check_same_tokenizer(self.llm, self.draft_llm, target_name=Path(path).name, draft_name=Path(o.draft_model).name)
            drafter = DraftModelDrafter(self.draft_llm)
        max_batch = o.draft_max + 1
        if drafter is not None:
            # Lossless needs verify batches on kernels that agree with each other (probe ~0.3 s).
            max_batch = min(max_batch, batch_invariant_size(self.llm, o.draft_max + 1))
            log.info("speculative %s: verify batches up to %d tokens are bit-exact", o.speculative, max_batch)
            if o.speculation_gate is not None:
                # Price it on this machine before paying for it: where a well-matched pair (acceptance 0.8) would
                # not beat plain steps by the gate, drafting costs more than it saves (draft steps, verify batches).
                self.speculation_price = measure_price(self.llm, max_batch, self.draft_llm)
                if not self.speculation_price.pays(o.speculation_gate):
                    log.warning(
                        "speculative %s cannot pay on this machine (%s): decoding plainly",
                        o.speculative,
                        self.speculation_price.describe(),
                    )
                    drafter, max_batch = None, o.draft_max + 1
        self.decoder = GreedyDecoder(
            self.llm,
            drafter,
            policy=DraftPolicy(k_max=max_batch - 1, k_init=min(4, max_batch - 1)),
            batched=drafter is not None,
            max_batch=max_batch,
        )
        # A tool call's possible first tokens (its tag, a bare JSON object, a "<tools>" wrapper).
        self._call_ids = sorted(
            {self.llm.tokenize(t.encode(), add_bos=False, special=True)[0] for t in ("{", '{"', " {", "<", "<tool_call>")}
        )
        self._tag_id = self.llm.tokenize(OPEN_CALL.strip().encode(), add_bos=False, special=True)[0]
        self._label_ids = self.llm.tokenize(RECAP_CALL.split(":")[0].encode(), add_bos=False, special=False)
        self._punct_ids = sorted({self.llm.tokenize(e.encode(), add_bos=False, special=False)[0] for e in ".?!"})
        import llama_cpp

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
        # Tokens that can end a reply's words: its final mark, a newline, the end of the message.
        ends = {self.llm.token_eos()}
        for e in (".", "?", "!", "\n", "\n\n", ".\n", "?\n", "!\n", ".\n\n", "?\n\n", "!\n\n", "...", " .", " ?", " !"):
            ends.update(t[:1] if len(t := self.llm.tokenize(e.encode(), add_bos=False, special=False)) == 1 else [])
        for e in getattr(self.prompt, "stop", ()):
            ends.update(t[:1] if len(t := self.llm.tokenize(e.encode(), add_bos=False, special=True)) == 1 else [])
        self._end_ids = sorted(ends)
        # One llama context: calls are serialised (sessions must never decode concurrently).
        self.lock = threading.Lock()
        self._counts: dict[tuple[Message, ...], int] = {}
        self._reply_ids: dict[str, list[int]] = {}
        self._reply_waiting = threading.Event()
        self._signals: dict[tuple[tuple[Message, ...], str], dict[str, float]] = {}
        self._grammars: dict[str, str] = {}
        self.last_call_probability: float | None = None
        """P(the reply starts a tool call) read on the request alone at the latest reply with tools offered."""
        self.last_call_probability_in_conversation: float | None = None
        """The same read after the conversation (equal to the above for a conversation's first request)."""
        self._side = SideSequence(self.llm)
        self._judge = SideSequence(self.llm, JUDGE_SEQ, share_main=False)
        self._yes_no = (self._first_ids(("yes", "Yes", " yes", " Yes")), self._first_ids(("no", "No", " no", " No")))
        self.last_call_judged: float | None = None
        """P(yes) of the call judge at the latest reply that asked it; None when it was not asked."""
        self._can_shift = bool(llama_cpp.llama_memory_can_shift(llama_cpp.llama_get_memory(self.llm.ctx)))

    def _first_ids(self, words: tuple[str, ...]) -> list[int]:
        return sorted({self.llm.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words})

    def _judge_tokens(self, user_text: str, tools: list[dict]) -> list[int] | None:
        """The judge's prompt: its own system turn naming the tools, then the user's words; None without a chat
        template (a base model has no turns to ask in)."""
        if not isinstance(self.prompt, ChatTemplatePrompt):
            return None
        prompt = replace(self.prompt, examples=(), tool_examples=())  # the question alone: no example turns
        text = prompt.render([Message("system", judge_system(tools))], user_text)
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def _judged(self, user_text: str, tools: list[dict]) -> float | None:
        """P(yes) that the message asks for one of the tools, in the judge's own sequence (its head stays cached)."""
        ids = self._judge_tokens(user_text, tools)
        if ids is None:
            return None
        z = self._judge.eval(ids)
        assert z is not None
        z = z.astype(np.float64)
        p = np.exp(z - z.max())
        yes, no = float(p[self._yes_no[0]].sum()), float(p[self._yes_no[1]].sum())
        self.last_call_judged = yes / (yes + no) if yes + no > 0 else 0.0
        return self.last_call_judged

    def _piece(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def _tokens(
        self,
        history: list[Message],
        user_text: str,
        tools: list[dict] | None = None,
        after: list[Message] | None = None,
        *,
        prompt: TranscriptPrompt | ChatTemplatePrompt | None = None,
    ) -> list[int]:
        history = self._trim(history, tools)
        text = (prompt or self.prompt).render(history, user_text, tools=tools, after=after)
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def _trim(self, history: list[Message], tools: list[dict] | None = None) -> list[Message]:
        """The system message and as many recent turns as fit the token budget.

        Sliding by one turn would change the prompt's start every turn and void the KV cache;
        dropping whole blocks of turns, and only when the budget is exceeded, keeps the prompt
        prefix (and its cache) stable for many turns at a time.
        """
        system, turns = split_system(history)
        head = [] if system is None else [Message("system", system)]
        o = self.options
        budget = self._history_budget
        # A turn starts at a user message (a tool round adds the call and its result between it and the answer).
        starts = [i for i, m in enumerate(turns) if m.role == "user"] + [len(turns)]
        n, block, k = len(starts) - 1, max(1, o.history_trim_block), 0
        # The tools' schemas (~600 tokens) count: the prompt with them must still leave room for the line and reply.
        while k < n and self._count(head + turns[starts[k] :], tools) > budget:
            k += block
        return head + turns[starts[min(k, n)] :]

    def _guard(self, replies: list[str], user_text: str) -> CopyGuard:
        def ids(text: str) -> list[int]:
            got = self._reply_ids.get(text)
            if got is None:
                got = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                if len(self._reply_ids) > 512:
                    self._reply_ids.clear()
                self._reply_ids[text] = got
            return got

        guard = CopyGuard([ids(text) for text in replies], ids(" " + user_text.strip()))
        # A short reply said again to another line is a broken record the n-gram ban is too long to see
        # (seen on the real-speech session: "What is the number?" to seven different lines in a row).
        guard.ban_whole(replies, self._detokenize, self._end_ids)
        return guard

    def _detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens).decode("utf-8", errors="ignore")

    def _replies(
        self, history: list[Message], tools: list[dict] | None, user_text: str = "", *, plain: bool = False
    ) -> list[str]:
        """The earlier replies a new one must not copy.

        Spoken replies only: a tool call the model wrote earlier may rightly be written again. Nor the replies to
        an earlier request the user has just repeated: someone who asks again (often after talking over the
        answer) should hear the answer again, not its first word (seen on a slow CPU over Twilio: "Sure,").
        ``plain``: only replies written without a tool result before them (a report of a tool's result may open
        the way the last one did: "I've set a timer for ...").
        """
        from ..metrics.wer import same_request

        kept = self._trim(history, tools)
        out, request, prev = [], None, ""
        for m in kept:
            if m.role == "user":
                request = m.content
            elif m.role == "assistant" and "<tool_call>" not in m.content and not (plain and prev == "tool"):
                if request is None or not same_request(request, user_text):
                    out.append(m.content)
            prev = m.role
        return out

    @property
    def _history_budget(self) -> int:
        return self.options.history_tokens or max(256, self.options.n_ctx - 512)

    def _count(self, history: list[Message], tools: list[dict] | None = None) -> int:
        key = (tuple(history), json.dumps(tools, sort_keys=True) if tools else "")
        n = self._counts.get(key)
        if n is None:
            text = self.prompt.render(history, "", tools=tools)
            # Every token is at least one character: a short prompt fits without tokenizing it.
            budget = self._history_budget
            n = (
                len(text)
                if len(text) <= budget
                else len(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))
            )
            if len(self._counts) > 256:
                self._counts.clear()
            self._counts[key] = n
        return n

    def prefill(self, history: list[Message], user_text: str, tools: list[dict] | None = None) -> None:
        """Evaluate the prompt of a partial transcript so the final one only adds its tail."""
        with self.lock:
            tokens = self._tokens(history, user_text, tools)
            # The last user words may still change; keep the known-good prefix only.
            tokens = tokens[:-4]
            if not user_text:
                # Between turns only, where a trim first shows: a user's line is always evaluated in its own
                # conversation (a line cached from another one must not stand in for it: the end-of-turn
                # probabilities are read on it).
                self._shift_out(tokens)
            reuse = common_prefix(self.llm.input_ids[: self.llm.n_tokens], tokens)
            alone = self._reads_alone(history, tools, None)
            if (not tokens or reuse == len(tokens)) and not alone and not tools:
                return  # already in the cache
            # In small chunks, so that a reply waiting for the model starts after one chunk, not after
            # the whole prefill (on a 1.5B model 8 tokens take ~100 ms on two cores, 4 take ~60). Nor does a
            # prefill start while a reply waits: the flag is the reply's to clear, once it has the model. (A
            # prefill queued behind a cut-short one used to clear it and run whole, on one thread: the rest of
            # the history, ~100 tokens, ~5 s on a 2-vCPU AVX2 EPYC before the reply could start.)
            if self._reply_waiting.is_set():
                log.debug("prefill skipped: a reply is waiting")
                return
            # Warming the conversation's prefix (no user words yet: at its start or between turns) may take
            # every thread and bigger steps: nobody is speaking, so Whisper does not need the other core.
            warm = not user_text
            chunk = 64 if warm else self.options.prefill_chunk
            threads = self.n_threads if warm else self.options.prefill_threads
            self._set_threads(threads, self.options.n_threads_batch if warm else threads)
            try:
                if reuse < len(tokens):
                    self.llm.n_tokens = reuse
                for i in range(reuse, len(tokens), chunk):
                    if self._reply_waiting.is_set():
                        log.debug("prefill cut short at %d of %d tokens: a reply is waiting", i, len(tokens))
                        return
                    self.llm.eval(tokens[i : i + chunk])
                judge = self._judge_tokens(user_text, tools) if tools and self.options.tool_call_judge is not None else None
                if judge is not None:
                    # The judge's head (its own system turn, ~150 tokens, once) and the words so far.
                    self._judge.eval(judge[:-4], logits=False, chunk=chunk, stop=self._reply_waiting.is_set)
                if alone:
                    assert tools is not None
                    # The request alone, for the call decision (see _wants_call), in the side sequence.
                    self._side.eval(
                        self._alone(history, user_text, tools)[:-4],
                        logits=False,
                        chunk=chunk,
                        stop=self._reply_waiting.is_set,
                    )
            finally:
                self._set_threads(self.n_threads, self.options.n_threads_batch)
            if isinstance(self.decoder.drafter, DraftModelDrafter):
                self.decoder.drafter.prefill(tokens)

    def _shift_out(self, ids: list[int]) -> int:
        """Trimmed history without evaluating it again: when the cache holds ``ids``' prefix, then tokens ``ids``
        no longer has (the oldest turns, dropped by ``_trim``), then ``ids``' continuation, drop those cells and
        move the rest down (llama.cpp's context shift: the keys are re-rotated, not recomputed). With the tools'
        schemas in a 2,048-token context a trim came every ~5 turns and cost ~400 tokens, ~3 s on two cores.
        The kept turns' cells were computed while the dropped ones were still there, as in llama.cpp's own
        context shift: a small approximation for the recap of older turns. Returns the tokens dropped."""
        llm = self.llm
        n = llm.n_tokens
        old = np.asarray(llm.input_ids[:n], dtype=np.int32)
        p = common_prefix(old, ids)
        probe_len = 16
        if not self._can_shift or n - p <= probe_len or len(ids) - p < probe_len:
            return 0
        hay = old.tobytes()
        probe = np.asarray(ids[p : p + probe_len], dtype=np.int32).tobytes()
        at = hay.find(probe, (p + 1) * 4)
        while at >= 0 and at % 4:
            at = hay.find(probe, at + 1)
        if at < 0:
            return 0
        q = at // 4
        d = q - p
        ctx = llm._ctx
        ctx.kv_cache_seq_rm(0, p, q)
        ctx.kv_cache_seq_shift(0, q, n, -d)
        llm.input_ids[p : n - d] = old[q:n]
        llm.n_tokens = n - d
        log.debug("history trimmed: %d cached tokens dropped and %d shifted instead of evaluated again", d, n - q)
        return d

    def _split_tokens(
        self, history: list[Message], user_text: str, tools: list[dict] | None = None
    ) -> tuple[list[int], dict[int, str]]:
        """The whole prompt's tokens and where the user's words end in them.

        Marks: ``eom`` after the user's text as written (next token: the end-of-message one), ``punct``
        after the text without its final . ? ! (next token: the sentence's end)."""
        line, rest = self.prompt.split(self._trim(history, tools), user_text, tools)

        def tok(text: str) -> list[int]:
            return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

        ids = tok(line + rest)
        head = tok(line)
        if not 0 < len(head) < len(ids) or ids[: len(head)] != head:
            return ids, {}  # the template merges the text with what follows: no clean boundary
        marks = {len(head): "eom"}
        bare = user_text.rstrip().rstrip(".?!")
        if bare and bare != user_text.rstrip():
            short = tok(line[: len(line) - len(user_text)] + bare)
            if 0 < len(short) < len(head) and ids[: len(short)] == short:
                marks[len(short)] = "punct"
        return ids, marks

    def _reuse(self, ids: list[int], marks: dict[int, str], key: tuple[tuple[Message, ...], str]) -> int:
        """Where evaluation of ``ids`` starts: after the cached prefix, but early enough to pass each mark
        whose probability is not known yet, and always at least the last token (its logits); two with a
        drafter, so the prompt's last logits come from llama.cpp's batched kernels like its verify batches."""
        llm = self.llm
        min_eval = 2 if self.decoder.batched else 1
        reuse = max(0, min(common_prefix(llm.input_ids[: llm.n_tokens], ids), len(ids) - min_eval))
        if marks and key not in self._signals:
            reuse = min(reuse, min(marks) - 1)
        llm.n_tokens = reuse
        return reuse

    def _eval_marked(
        self,
        ids: list[int],
        i: int,
        j: int,
        marks: dict[int, str],
        signals: dict[str, float],
        alone: list[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Evaluate ids[i:j] in one batch, reading the end-of-turn probability at each mark inside; returns the
        last token's logits, and those of the request-alone prompt ``alone`` (the side sequence) when given:
        its tail joins the same batch when it fits."""
        inside = {m: kind for m, kind in marks.items() if i < m <= j and m < len(ids)}
        side: tuple[int, list[int]] | None = None
        if alone is not None:
            self.llm._ctx.kv_cache_seq_rm(-1, self.llm.n_tokens, -1)  # first: it may release the shared head
            start = self._side.prepare(alone)
            if (j - i) + (len(alone) - start) <= self.llm.n_batch:
                side = (start, alone[start:])
        rows = eval_rows(self.llm, ids[i:j], [m - 1 - i for m in inside], side=side)
        for m, kind in inside.items():
            z = rows[m - 1 - i].astype(np.float64)
            p = np.exp(z - z.max())
            p /= p.sum()
            if kind == "eom":
                signals["eom"] = float(p[ids[m]])
                if "punct" not in marks.values():
                    # No final mark written: P(. ? !) right here is the model's belief the sentence is over.
                    signals["punct"] = float(p[self._punct_ids].sum())
            else:
                signals[kind] = float(p[self._punct_ids].sum())
        alone_logits = None
        if side is not None:
            self._side.evaluated(alone)
            alone_logits = rows[-1]
        elif alone is not None:
            alone_logits = self._side.eval(alone)
        return rows[j - 1 - i], alone_logits

    def _store_signals(self, key: tuple[tuple[Message, ...], str], signals: dict[str, float]) -> None:
        if signals:
            if len(self._signals) > 256:
                self._signals.clear()
            self._signals[key] = signals

    def _signal_key(self, history: list[Message], user_text: str) -> tuple[tuple[Message, ...], str]:
        return tuple(history), user_text

    def _p_call(self, logits: np.ndarray) -> float:
        """The model's own probability of starting a tool call next."""
        z = logits.astype(np.float64)
        p = np.exp(z - z.max())
        return float(p[self._call_ids].sum() / p.sum())

    def _alone(self, history: list[Message], user_text: str, tools: list[dict]) -> list[int]:
        """The prompt of the request alone: the same system turn (so the cached head is shared), no history and
        no examples."""
        system = [m for m in history if m.role == "system"]
        alone = getattr(self.prompt, "alone_prompt", None)
        return self._tokens(system, user_text, tools, prompt=alone() if alone is not None else None)

    def _reads_alone(self, history: list[Message], tools: list[dict] | None, after: list[Message] | None) -> bool:
        """Is the call decision read on the request alone (a second prompt) for this reply?"""
        in_conversation = any(m.role != "system" for m in history)
        return bool(tools) and not after and in_conversation and self.options.tool_decision_alone

    def _wants_call(self, history: list[Message], logits: np.ndarray, alone: np.ndarray | None) -> bool:
        """Is the reply a tool call? The model's own probability of starting one, read on the request alone
        (and after the conversation, for follow-ups), against thresholds fitted on the tool request set."""
        o = self.options
        p_conv = self._p_call(logits)
        p_alone = p_conv if alone is None else self._p_call(alone)
        self.last_call_probability, self.last_call_probability_in_conversation = p_alone, p_conv
        in_conversation = any(m.role != "system" for m in history)
        t_conv = o.tool_call_threshold_in_conversation
        if not o.tool_decision_alone and in_conversation and t_conv is not None:
            return p_conv >= t_conv  # the older reading: after the conversation only
        return p_alone >= o.tool_call_threshold or (in_conversation and t_conv is not None and p_conv >= t_conv)

    def _judge_agrees(
        self, call: bool, p: float | None, band: float | None, user_text: str, tools: list[dict], st: GenerationStats
    ) -> bool:
        """Below ``tool_call_sure`` a call (or an unsure one, from ``band`` up) also needs the judge's yes. A call
        made on the conversation's reading (a follow-up: "and in Paris?", nothing alone) is not judged."""
        o = self.options
        self.last_call_judged = None
        if o.tool_call_judge is None or p is None or p >= o.tool_call_sure:
            return True
        p_conv, t_conv = self.last_call_probability_in_conversation, o.tool_call_threshold_in_conversation
        if call and p < o.tool_call_threshold and t_conv is not None and p_conv is not None and p_conv >= t_conv:
            return True
        if not call and (band is None or p < band):
            return True  # an answer either way: nothing to judge
        yes = self._judged(user_text, tools)
        st.call_judged = yes
        agrees = yes is None or yes >= o.tool_call_judge
        log.debug("call judge: P(call) %.2f, P(yes) %s: %s", p, yes, "agrees" if agrees else "an answer")
        return agrees

    def _grounded_call(
        self,
        tools: list[dict],
        stop: threading.Event | None,
        st: GenerationStats,
        t0: int,
        user_text: str,
        alone: list[int] | None = None,
    ) -> str | None:
        """An unsure decision: write the call unseen; return it when its arguments come from the request, else
        take it back out of the KV cache and return None (the reply answers in words)."""
        start = self.llm.n_tokens
        text = "".join(self._tool_call(tools, stop, st, t0, alone=alone, user_text=user_text))
        body = text[len(OPEN_CALL) :].removesuffix("</tool_call>").strip()
        ok = _is_grounded(body, tools, user_text)
        log.debug("unsure call (P %.2f) %s: %s", self.last_call_probability, "kept" if ok else "dropped", body)
        if ok:
            return text
        self.llm.n_tokens = start  # the answer is written after the prompt, not after the dropped call
        st.decode_tokens = 0
        return None

    def _tool_call(
        self,
        tools: list[dict],
        stop: threading.Event | None,
        st: GenerationStats,
        t0: int,
        *,
        alone: list[int] | None = None,
        user_text: str = "",
    ) -> Iterator[str]:
        """Write the call: the opening tag at once (the caller can start a filler), then the JSON (within the
        tools' grammar unless switched off).

        With ``alone`` (the request-alone prompt, in the side sequence) the call is first written there: after
        a conversation these models copy an earlier call ("Timer, fifteen minutes." → ``cancel_timer("pasta")``,
        a cat-feeding reminder → ``set_timer``), on the request alone they write what was asked. It is kept when
        its values come from the request (``tools.grounding.from_request``); otherwise (a reference to an earlier
        turn: "turn it off", "what time is it there?") the call is written again in the conversation's context,
        where "it" can be found.
        """
        st.ttft_ms = (time.perf_counter_ns() - t0) / 1e6
        if st.on_call_start is not None:
            st.on_call_start()
        yield OPEN_CALL
        body = None
        if alone is not None:
            body = self._write_call(tools, stop, st, alone)
            if not st.cancelled and not _from_request(body, tools, user_text):
                log.debug("call written alone takes a value from elsewhere, written in the conversation: %s", body)
                body = None
            st.call_written = "alone" if body is not None else "conversation"
        if body is None and not st.cancelled:
            body = self._write_call(tools, stop, st, None)
        yield f"{body or ''}\n</tool_call>"

    def _write_call(
        self, tools: list[dict], stop: threading.Event | None, st: GenerationStats, alone: list[int] | None
    ) -> str:
        """The call's JSON, greedy within the grammar, after the conversation's prompt (the main sequence, whose
        KV cache keeps it) or after ``alone`` (the side sequence; the main one is left as it was)."""
        from .grammar import GrammarConstraint, tools_grammar

        llm = self.llm
        # Without the grammar the opening of the JSON is written for the model too (after the bare tag
        # the embedded models close the call at once).
        opening = OPEN_CALL if self.options.tool_grammar else OPEN_CALL + '{"name": "'
        if alone is None:

            def feed(tokens: list[int]) -> np.ndarray:
                llm.eval(tokens)
                return last_logits(llm)
        else:
            seq = list(alone)

            def feed(tokens: list[int]) -> np.ndarray:
                seq.extend(tokens)
                z = self._side.eval(seq)
                assert z is not None
                return z

        z = feed(llm.tokenize(opening.encode(), add_bos=False, special=True))
        key = json.dumps(tools, sort_keys=True)
        if self.options.tool_grammar:
            gbnf = self._grammars.get(key)
            if gbnf is None:
                gbnf = self._grammars[key] = tools_grammar(tools)
            constraint: GrammarConstraint | None = GrammarConstraint(llm, gbnf)
        else:
            constraint = None
        out: list[int] = []
        close = llm.tokenize(b"</tool_call>", add_bos=False, special=True)
        st.call_token_probs = []
        try:
            for _ in range(256):
                if stop is not None and stop.is_set():
                    st.cancelled = True
                    break
                if constraint is not None:
                    best = constraint.best(z)
                    token = best if best is not None else llm.token_eos()
                else:
                    token = int(np.argmax(z))
                if self._is_eog(token) or token in close:
                    break  # the grammar is complete (only an end is allowed) or the model closed the call
                if constraint is not None:
                    constraint.accept(token)
                out.append(token)
                st.call_token_probs.append((self._piece(token), _prob(z, token)))
                z = feed([token])
        finally:
            if constraint is not None:
                constraint.close()
        st.decode_tokens += len(out)
        body = llm.detokenize(out).decode("utf-8", "replace").strip()
        return f"{opening[len(OPEN_CALL) :]}{body}"

    def turn_signals(self, history: list[Message], user_text: str) -> dict[str, float] | None:
        """End-of-turn probabilities read while this text's prompt was evaluated, if it was: ``eom``, the
        end-of-message token right after the user's words; ``punct``, a sentence end (. ? !) right after
        the words without their final mark (where the ASR wrote none: right after the words)."""
        return self._signals.get(self._signal_key(history, user_text))

    def _set_threads(self, n: int, n_batch: int) -> None:
        import llama_cpp

        llama_cpp.llama_set_n_threads(self.llm.ctx, n, n_batch)

    def yield_to_reply(self) -> None:
        self._reply_waiting.set()

    def resume_background(self) -> None:
        self._reply_waiting.clear()

    def stream(
        self,
        history: list[Message],
        user_text: str,
        *,
        stop: threading.Event | None = None,
        max_tokens: int = 64,
        stats: GenerationStats | None = None,
        tools: list[dict] | None = None,
        after: list[Message] | None = None,
        tool_choice: str = "auto",
    ) -> Iterator[str]:
        st = stats if stats is not None else GenerationStats()
        t_wait = time.perf_counter_ns()
        with self.lock:
            self._reply_waiting.clear()  # this reply has the model; prefills may run again after it
            t0 = time.perf_counter_ns()
            st.wait_ms = (t0 - t_wait) / 1e6
            tokens = self._tokens(history, user_text, tools, after)
            matcher = StopMatcher(tuple(getattr(self.prompt, "stop", ())))
            said = self._replies(history, tools, user_text) if self.options.copy_guard else None
            self.decoder.guard = self._guard(said, user_text) if said is not None else None
            if self.decoder.guard is not None and not after:
                # A template opening said turn after turn with a new last word (not after a tool's result).
                self.decoder.guard.ban_opening(self._replies(history, tools, user_text, plain=True), self._detokenize)
            repeated = RepeatedSentenceStop(said) if said is not None else None
            eos = self.llm.token_eos()
            out_ids: list[int] = []
            emitted = 0
            t_first = 0
            first, reused, alone_logits, alone = None, None, None, None
            # Evaluate the prompt here, reading the end-of-turn signals on the way (free rows).
            ids, marks = self._split_tokens(history, user_text, tools) if not after else (tokens, {})
            if ids == tokens:
                key = self._signal_key(history, user_text)
                reused = self._reuse(ids, marks, key)
                # A cold cache: the bulk in llama.cpp's batches, the tail (the marks, the last token) in one.
                tail = max(reused, len(ids) - self.llm.n_batch)
                if tail > reused:
                    self.llm.eval(ids[reused:tail])
                signals: dict[str, float] = {}
                alone = (
                    self._alone(history, user_text, tools)
                    if tools and tool_choice != "none" and self._reads_alone(history, tools, after)
                    else None
                )
                first, alone_logits = self._eval_marked(ids, tail, len(ids), marks, signals, alone)
                self._store_signals(key, signals)
                st.prompt_ms = (time.perf_counter_ns() - t0) / 1e6
                # Here too, not only in the decoder: a tool call returns before it runs.
                st.prompt_tokens, st.reused_tokens, st.evaluated_tokens = len(ids), reused, len(ids) - reused
                if st.on_prompt is not None:
                    st.on_prompt()
            if tools and first is not None:
                if tool_choice == "none":
                    call = False
                elif after:
                    # A round after tool results is read in its context only: alone, the request would call
                    # the same tool again.
                    t = self.options.tool_call_threshold_in_conversation or self.options.tool_call_threshold
                    call = self._p_call(first) >= t
                else:
                    call = self._wants_call(history, first, alone_logits)
                    band = self.options.tool_call_band
                    p = st.call_probability = self.last_call_probability
                    if not self._judge_agrees(call, p, band, user_text, tools, st):
                        call, band, st.call_decision = False, None, "judged: answer"
                    # Decided on the request alone: written there first (see _tool_call); a follow-up that
                    # called only after the conversation ("and in Paris?") is written in the conversation.
                    if alone_logits is None or p is None or not self.options.tool_call_written_alone:
                        alone = None
                    elif call and p < self.options.tool_call_threshold:
                        alone = None
                    if not call and band is not None and p is not None and p >= band:
                        kept = self._grounded_call(tools, stop, st, t0, user_text, alone)
                        st.call_decision = "unsure: kept" if kept is not None else "unsure: dropped"
                        if kept is not None:
                            yield kept
                            st.finish_reason = "tool_call"
                            return
                st.call_decision = st.call_decision or ("call" if call else "answer")
                if call:
                    yield from self._tool_call(tools, stop, st, t0, alone=alone, user_text=user_text)
                    st.finish_reason = "tool_call"
                    return
                if tool_choice == "none" or not after:
                    # Calls open with their tag as the first token: without it the model answers in words, so
                    # a "no" stays a no (read after the conversation alone, the decision missed too many calls
                    # to be binding: 22/42 against 30/42; read on the request alone it is the better judge).
                    first = first.copy()
                    first[self._call_ids] = -np.inf
                    # Nor may it open with the recap's call label, which the call filter reads as a call
                    # (seen: "I just got back from a long walk." → "You called: set_timer ...").
                    if self.decoder.guard is None:
                        self.decoder.guard = CopyGuard([])
                    self.decoder.guard.ban_run(self._label_ids)
                    # Nor open one later: seen after a dropped unsure call, "\n<tool_call>…" cut off by the token
                    # limit, so the user heard only the filler.
                    self.decoder.guard.ban_token(self._tag_id)
            # A short line said back whole ("Seven of clubs." -> "7 of clubs."): the reply is held while its first
            # sentence follows the line and decoded again, its opening refused, if it is the line (``readback``).
            check = ReadBackCheck(user_text) if (self.decoder.guard is not None and not after) else None
            for attempt in range(READ_BACK_RETRIES + 1):
                if attempt:
                    # The line's first word, and the word the thrown-away reply led in with ("The seven of clubs.").
                    led = surface_words(self._detokenize(out_ids))[:1]
                    self.decoder.guard.ban_first_word(check.first_forms | set(led), self._detokenize)
                    self.llm.n_tokens = len(tokens)  # the prompt's KV stays; the thrown-away reply goes
                    self.llm._ctx.kv_cache_seq_rm(-1, len(tokens), -1)
                    st.read_back_retries = attempt
                    log.debug("reply read the line back (%r); decoding again, its opening refused", user_text)
                    matcher = StopMatcher(tuple(getattr(self.prompt, "stop", ())))
                    repeated = RepeatedSentenceStop(said) if said is not None else None
                    out_ids, emitted = [], 0
                held = check if (check is not None and check.applies and attempt < READ_BACK_RETRIES) else None
                text_so_far = ""
                gen = self.decoder.generate(
                    tokens,
                    max_tokens=max_tokens,
                    stop=stop,
                    stats=st,
                    first_logits=first,
                    reused=len(tokens) if attempt else reused,
                )
                read_back = False
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
                        if released and repeated is not None:
                            released = repeated.feed(released)
                        if released and held is not None:
                            text_so_far += released
                            verdict = held.verdict(text_so_far)
                            if verdict:
                                read_back = True
                                break
                            released = "" if verdict is None else text_so_far
                            if verdict is not None:
                                held = None
                        if released:
                            yield released
                        if matcher.stopped or (repeated is not None and repeated.stopped):
                            st.finish_reason = "stop"
                            break
                        if len(out_ids) >= max_tokens:
                            st.finish_reason = "length"
                            break
                    else:
                        if stop is not None and stop.is_set():
                            st.cancelled, st.finish_reason = True, "cancelled"
                        else:
                            st.finish_reason = st.finish_reason or "length"
                finally:
                    gen.close()
                if read_back:
                    continue
                tail = matcher.flush()
                if repeated is not None:
                    tail = repeated.feed(tail) + repeated.flush()
                if held is not None and not st.cancelled and held.verdict(text_so_far + tail, final=True):
                    continue  # the whole reply was the line: decode again
                tail = (text_so_far if held is not None else "") + tail
                if tail and not st.cancelled:
                    yield tail
                return


def _load(
    path: str | Path, *, n_ctx: int, n_threads: int, n_threads_batch: int, n_batch: int, sequences: int = 1
):  # -> llama_cpp.Llama
    import llama_cpp

    from .cpu_policy import install

    install()  # AMX-safe kernels before any model loads (see cpu_policy)
    low = llama_cpp.llama_cpp
    default = low.llama_context_default_params

    def params():  # llama-cpp-python has no argument for these
        p = default()
        p.n_seq_max = sequences
        # One buffer whose cells carry every sequence that shares them: the side sequence reuses the main
        # one's prefix without a copy, and each keeps the whole n_ctx.
        p.kv_unified = sequences > 1
        return p

    low.llama_context_default_params = params
    try:
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
            n_batch=n_batch,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelNotFoundError(f"cannot load GGUF model {path}: {exc}") from None
    finally:
        low.llama_context_default_params = default


def _parse_call(body: str, tools: list[dict]) -> tuple[dict, dict | None] | None:
    """A written call's arguments and its tool's declared parameters (None for an unknown tool); None when the
    body is not a call (bad JSON, or no arguments object)."""
    try:
        call = json.loads(body)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("arguments"), dict):
        return None
    spec = next((t.get("function", t) for t in tools if t.get("function", t).get("name") == call.get("name")), None)
    return call["arguments"], None if spec is None else spec.get("parameters") or {}


def judge_system(tools: list[dict]) -> str:
    """The call judge's system turn: the tools by name and the first line of their descriptions (the user's own
    tools too), and the question."""
    lines = []
    for t in tools:
        f = t.get("function", t)
        desc = (f.get("description") or "").strip().splitlines()
        lines.append(f"- {f.get('name')}: {desc[0] if desc else ''}")
    return (
        "You sort messages said to a voice assistant. The assistant has these tools:\n"
        + "\n".join(lines)
        + "\nAnswer yes if the message asks the assistant to do something one of these tools does (a command or a"
        " question it answers); answer no if it is a remark, a story, or a question the tools do not answer."
        " Answer with one word: yes or no."
    )


def _prob(logits: np.ndarray, token: int) -> float:
    """The softmax probability of ``token`` under raw ``logits``."""
    z = logits.astype(np.float64)
    m = z.max()
    return float(np.exp(z[token] - m) / np.exp(z - m).sum())


def _is_grounded(body: str, tools: list[dict], user_text: str) -> bool:
    """An unsure call is kept when its values were said (``tools.grounding.grounded``) and none comes from
    elsewhere (``words_said``: "Who was president in 1990?" → ``current_time("New York")`` names a place nobody
    said, and a tool without required fields would otherwise pass on nothing)."""
    from ..tools.grounding import grounded, words_said

    parsed = _parse_call(body, tools)
    if parsed is None:
        return False
    args, params = parsed
    required = None if params is None else list(params.get("required") or [])
    return grounded(args, user_text, required) and words_said(args, user_text, params)


def _from_request(body: str, tools: list[dict], user_text: str) -> bool:
    """A call written on the request alone is kept when every value comes from the request or its schema."""
    from ..tools.grounding import from_request

    parsed = _parse_call(body, tools)
    return parsed is not None and from_request(parsed[0], user_text, parsed[1])
