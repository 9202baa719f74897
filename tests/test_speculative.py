"""Speculative decoding on the real pair: an F32 Gemma 3 270M target written from the embedded
Q4_K_M, which drafts for it. Losslessness, cancellation, tokenizer checks, the bench's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from voiceloop import ConfigError, GenerationStats, LlamaBackend, LlamaOptions, Message
from voiceloop.llm.speculative import (
    DraftPolicy,
    PromptLookupDrafter,
    SpeculationPrice,
    batch_invariant_size,
    check_same_tokenizer,
)
from voiceloop.models.registry import model_path

pytestmark = pytest.mark.models

HISTORY = [Message("user", "Add milk, eggs and bread to my list."), Message("assistant", "Added milk, eggs and bread.")]
PROMPTS = [
    "Add apples, coffee, two lemons and a bag of rice to my list.",
    "Should I bring a jacket tonight?",
    "Tell me a short story about a dog.",
    "No, I said book a table for four people at eight thirty on Saturday.",
    "What is twelve times eight?",
]


@pytest.fixture(scope="module")
def pair() -> tuple[str, str]:
    return str(model_path("gemma-3-270m-f32")), str(model_path("gemma-3-270m-q4_k_m"))


@pytest.fixture(scope="module")
def backends(pair):
    target, draft = pair
    made = {
        # The mechanism under test, whether or not the price gate would let it run on this machine.
        mode: LlamaBackend(
            LlamaOptions(
                model=target, speculative=mode, draft_model=draft if mode == "draft" else None, speculation_gate=None
            )
        )
        for mode in ("prompt_lookup", "draft")
    }
    # The reference decodes on the same batched kernels without drafting.
    ref = LlamaBackend(LlamaOptions(model=target, speculative="prompt_lookup", speculation_gate=None))
    ref.decoder.drafter = None
    made["none"] = ref
    return made


def _reply(backend: LlamaBackend, user: str) -> tuple[list[int], GenerationStats]:
    st = GenerationStats()
    "".join(backend.stream(HISTORY, user, max_tokens=40, stats=st))
    return backend.decoder.output[: st.decode_tokens + 1], st


def _fresh_policy(backend) -> None:
    """A new draft policy: pauses carry over replies, so one test's timing must not decide another's drafting."""
    p = backend.decoder.policy
    backend.decoder.policy = DraftPolicy(k_max=p.k_max, k_init=p.k_init)


def test_greedy_output_is_identical_with_and_without_speculation(backends):
    drafted = {"prompt_lookup": 0, "draft": 0}
    for mode in drafted:
        _fresh_policy(backends[mode])
    for user in PROMPTS:
        ref, _ = _reply(backends["none"], user)
        for mode in ("prompt_lookup", "draft"):
            ids, st = _reply(backends[mode], user)
            assert ids == ref, (mode, user)
            drafted[mode] += st.drafted_tokens
            assert 0 <= st.accepted_tokens <= st.drafted_tokens
    # Both drafters really drafted (otherwise equality would prove nothing).
    assert drafted["prompt_lookup"] > 0 and drafted["draft"] > 10
    assert backends["draft"].decoder.rounds  # (drafted, accepted) per verify round


def test_draft_model_is_accepted_often_on_its_own_dequantised_target(backends):
    b = backends["draft"]
    _fresh_policy(b)  # acceptance is a property of the pair, not of an earlier test's pause
    st = GenerationStats()
    "".join(b.stream(HISTORY, PROMPTS[2], max_tokens=40, stats=st))
    assert st.drafted_tokens > 0 and st.acceptance > 0.6


def test_cancellation_stops_within_one_token(backends):
    for mode in ("prompt_lookup", "draft"):
        stop = threading.Event()
        st = GenerationStats()
        pieces = []
        for piece in backends[mode].stream([], "Tell me a long story about a dragon and a knight.", stop=stop, stats=st):
            pieces.append(piece)
            stop.set()
        assert st.cancelled and st.finish_reason == "cancelled"
        assert len(pieces) == 1 and st.decode_tokens <= 2, (mode, pieces)


def test_follow_up_turn_reuses_the_cache(backends):
    b = backends["draft"]
    s1 = GenerationStats()
    reply = "".join(b.stream([], "What is the capital of France?", stats=s1, max_tokens=24)).strip()
    s2 = GenerationStats()
    history = [Message("user", "What is the capital of France?"), Message("assistant", reply)]
    "".join(b.stream(history, "And of Italy?", stats=s2, max_tokens=8))
    assert s2.reused_tokens >= s1.prompt_tokens and s2.evaluated_tokens < 20


def test_batch_invariance_probe(backends, engines):
    # F32 agrees at every batch size >= 2; the Q4_K_M switches kernels at 4 tokens.
    assert batch_invariant_size(backends["draft"].llm) == 9
    assert 2 <= batch_invariant_size(engines.llm.llm) <= 3


def test_draft_needs_a_model_and_a_matching_tokenizer(pair):
    with pytest.raises(ConfigError, match="draft_model"):
        LlamaBackend(LlamaOptions(model=pair[0], speculative="draft"))
    with pytest.raises(ConfigError, match="none, prompt_lookup or draft"):
        LlamaBackend(LlamaOptions(model=pair[1], speculative="medusa"))  # type: ignore[arg-type]


class _OtherTokenizer:
    """Stands in for a GGUF of another family (a unit check of the comparison only)."""

    def __init__(self, real, *, vocab: int | None = None, shift: bool = False) -> None:
        self.real, self.vocab, self.shift = real, vocab, shift

    def n_vocab(self) -> int:
        return self.vocab or self.real.n_vocab()

    def token_bos(self) -> int:
        return self.real.token_bos()

    def token_eos(self) -> int:
        return self.real.token_eos()

    def tokenize(self, text: bytes, **kw) -> list[int]:
        ids = self.real.tokenize(text, **kw)
        return [i + 1 for i in ids] if self.shift else ids

    def detokenize(self, ids: list[int], **kw) -> bytes:
        return self.real.detokenize(ids, **kw)


def test_mismatched_tokenizers_give_one_clear_error(engines):
    real = engines.llm.llm
    check_same_tokenizer(real, real, target_name="a", draft_name="b")
    with pytest.raises(ConfigError, match="vocabulary sizes differ"):
        check_same_tokenizer(
            real, _OtherTokenizer(real, vocab=real.n_vocab() + 1000), target_name="t.gguf", draft_name="d.gguf"
        )
    with pytest.raises(ConfigError, match="tokenizes differently"):
        check_same_tokenizer(real, _OtherTokenizer(real, shift=True), target_name="t.gguf", draft_name="d.gguf")


def test_prompt_lookup_copies_the_latest_continuation():
    d = PromptLookupDrafter(max_ngram=3)
    ctx = [1, 2, 3, 4, 5, 9, 9, 2, 3, 7, 8, 6, 2, 3]
    assert d.propose(ctx, 2) == [7, 8]  # the most recent "2 3" is followed by 7 8
    assert d.propose([5, 6, 7], 3) == []


def test_draft_policy_adapts_and_pauses_when_drafting_does_not_pay():
    p = DraftPolicy(k_init=4, k_max=8, min_rounds=2, pause_tokens=8)
    assert p.next_k() == 0  # a plain step first, as the yardstick
    p.update(drafted=0, accepted=0, produced=1, ms=30.0)
    assert p.next_k() == 4
    p.update(drafted=4, accepted=4, produced=5, ms=50.0)
    assert p.k == 5
    p.update(drafted=5, accepted=0, produced=1, ms=40.0)
    assert p.k == 1
    rounds = 0
    while p.next_k() > 0 and rounds < 10:  # 40 ms/token vs 30 plain: drafting costs time
        p.update(drafted=1, accepted=0, produced=1, ms=40.0)
        rounds += 1
    assert p.next_k() == 0 and p.paused_for == 8 and rounds <= 6
    for _ in range(8):  # the pause runs out in plain steps, then drafting is probed again
        p.update(drafted=0, accepted=0, produced=1, ms=30.0)
    assert p.next_k() == 1


def test_draft_policy_pause_carries_over_into_the_next_reply():
    """A losing probe in one reply keeps the next reply on plain steps (probing again costs)."""
    p = DraftPolicy(k_init=2, min_rounds=2, pause_tokens=8)
    p.update(drafted=0, accepted=0, produced=1, ms=30.0)
    while p.next_k() > 0:
        p.update(drafted=2, accepted=0, produced=1, ms=45.0)
    p.new_reply()
    assert p.next_k() == 0 and p.paused_for == 8
    for _ in range(8):
        p.update(drafted=0, accepted=0, produced=1, ms=30.0)
    assert p.next_k() > 0  # probed again once the pause has run out
    while p.next_k() > 0:
        p.update(drafted=2, accepted=0, produced=1, ms=45.0)
    assert p.paused_for == 16  # and the next pause is twice as long


def test_draft_policy_keeps_drafting_while_it_pays():
    p = DraftPolicy(k_init=2, min_rounds=2)
    p.update(drafted=0, accepted=0, produced=1, ms=30.0)
    for _ in range(20):
        p.update(drafted=p.next_k(), accepted=p.next_k(), produced=p.next_k() + 1, ms=40.0)
    assert p.next_k() == p.k_max and p.paused_for == 0


def test_speculation_price_bounds_the_best_case():
    # A drafter as costly as the target can never pay: k + 1 draft steps and a verify batch for k + 1 tokens.
    same = SpeculationPrice(step_ms=20.0, verify={2: 1.1, 3: 1.2, 4: 1.3}, draft_ratio=1.0)
    assert same.speedup(1.0)[0] < 1 and not same.pays()
    # Free drafts and cheap batches: 4 tokens for 1.3 steps when all are accepted; at acceptance 0.8 a round of
    # k = 3 yields 1 + 0.8 + 0.64 + 0.512 tokens.
    free = SpeculationPrice(step_ms=20.0, verify={2: 1.04, 3: 1.2, 4: 1.3}, draft_ratio=0.0)
    assert free.speedup(1.0) == pytest.approx((4 / 1.3, 3))
    assert free.speedup(0.8) == pytest.approx((2.952 / 1.3, 3)) and free.pays()  # 2.18 over a padded step of 1.04
    assert free.speedup(0.0) == pytest.approx((1 / 1.04, 1)) and not free.pays(acceptance=0.0)
    # The same gain with padded steps of 1.33 (the F32 Gemma 270M on a 2-vCPU AVX2 EPYC): a reply with nothing
    # to propose would run at x0.75 of plain steps, so it does not pay, however well read-backs go.
    f32 = SpeculationPrice(step_ms=43.7, verify={2: 1.33, 3: 1.50, 4: 1.72}, draft_ratio=0.0)
    assert f32.speedup(0.8)[0] / 1.33 > 1.25 and f32.floor() == pytest.approx(0.752, abs=0.001)
    assert not f32.pays() and f32.pays(max_loss=0.25) and "x0.75 if none were" in f32.describe()
    # The measured case of the Qwen2.5 0.5B drafting for the 1.5B on a 2-vCPU AVX2 EPYC: x0.59 at best.
    qwen = SpeculationPrice(step_ms=57.2, verify={2: 1.86, 3: 2.65}, draft_ratio=0.82)
    assert qwen.speedup(1.0)[0] == pytest.approx(0.587, abs=0.001) and not qwen.pays()
    assert "x0.59 if every draft were accepted (k=2)" in qwen.describe()
    # Prompt lookup on the same target: x1.06 at acceptance 0.8, but its padded steps cost x1.70: it does not pay.
    lookup = SpeculationPrice(step_ms=52.4, verify={2: 1.70, 3: 2.45}, draft_ratio=0.0)
    assert lookup.speedup(0.8)[0] == pytest.approx(1.8 / 1.70, abs=0.01) and not lookup.pays()


def test_a_pair_that_cannot_pay_decodes_plainly_with_the_same_tokens():
    """A model drafting for itself costs more than it saves on any machine: the gate prices it at load and the
    backend decodes with plain steps, exactly as without speculation; without the gate it drafts."""
    model = str(model_path("gemma-3-270m-q4_k_m"))
    gated = LlamaBackend(LlamaOptions(model=model, speculative="draft", draft_model=model))
    assert gated.speculation_price is not None and not gated.speculation_price.pays(acceptance=1.0)
    assert gated.decoder.drafter is None and not gated.decoder.batched
    plain = LlamaBackend(LlamaOptions(model=model))
    forced = LlamaBackend(LlamaOptions(model=model, speculative="draft", draft_model=model, speculation_gate=None))
    forced_drafts = 0
    for user in PROMPTS[:3]:
        ids, st = _reply(gated, user)
        ref, _ = _reply(plain, user)
        assert ids == ref and st.drafted_tokens == 0, user
        _, st = _reply(forced, user)
        forced_drafts += st.drafted_tokens  # (its own policy pauses once drafting is seen to lose)
    assert forced_drafts > 0


def test_bench_llm_json(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, "-m", "voiceloop", "bench", "llm", "--limit", "3", "--repeats", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["lossless"] is True
    assert res["target"] == "gemma-3-270m-f32.gguf" and res["draft"] == "gemma-3-270m-q4_k_m.gguf"
    assert set(res["modes"]) == {"none", "prompt_lookup", "draft"}
    assert {"ttft_ms", "tok_s"} <= set(res["modes"]["none"])
    assert {"ttft_ms", "tok_s", "acceptance", "speedup", "speedup_readback"} <= set(res["modes"]["prompt_lookup"])
    assert {"ttft_ms", "tok_s", "acceptance", "speedup", "cost_ratio"} <= set(res["modes"]["draft"])
    assert all(m["tok_s"] > 0 for m in res["modes"].values())
    assert 0 < res["modes"]["draft"]["cost_ratio"] < 1
    assert res["followup_ttft_ms"] > 0
    assert {"cost_ratio", "acceptance", "speedup"} <= set(res["predicted"][0])
    assert "lossless: yes" in r.stdout
    for mode in ("prompt_lookup", "draft"):  # against the pipeline's plain steps too, and the gate's verdict
        m = res["modes"][mode]
        assert m["speedup_vs_plain"] > 0 and 0 < m["speedup_vs_plain_min"] <= m["speedup_vs_plain"] + 1e-9
        assert m["verdict"].startswith(("speculates: x", "plain steps (gate x1.05): x"))


def test_copy_guard_bans_runs_and_a_forbidden_opening():
    import numpy as np

    from voiceloop.llm.speculative import CopyGuard

    g = CopyGuard([[1, 2, 3, 4]], n=3)
    z = np.zeros(10, np.float32)
    z[3], z[5] = 2.0, 1.0
    assert g.choose([1, 2], z) == 5  # 1 2 3 was said before: the runner-up
    assert g.choose([7, 2], z) == 3
    g.ban_run([8, 3])  # e.g. the recap's "You called" label after a "no" decision
    assert g.choose([8], z) == 5 and g.choose([9], z) == 3
    empty = CopyGuard([])
    empty.ban_run([8, 3])
    assert empty.choose([8], z) == 5
    empty.ban_token(3)  # e.g. a tool call's tag after a "no": anywhere in the reply
    assert empty.choose([], z) == 5 and empty.choose([1, 2], z) == 5
    # A whole earlier reply ("four five six." = 4 5 6 9) may not end the reply again; it may go on, and a one-word
    # reply ("seven." = 7 9) is left alone.
    words = {2: " two", 4: " four", 5: " five", 6: " six", 7: " seven", 9: "."}
    whole = CopyGuard([])
    whole.ban_whole(["Four five six.", "Seven."], lambda ids: "".join(words[i] for i in ids), ends={9, 0})
    e = np.zeros(10, np.float32)
    e[9], e[2] = 2.0, 1.0
    assert whole.choose([4, 5, 6], e) == 2 and whole.choose([4, 5], e) == 9 and whole.choose([7], e) == 9


def test_copy_guard_sees_a_copy_spelled_with_other_tokens():
    """The same words as an earlier reply in another token run ("Mr John" / "MrJohn" / "Mr.john") may not end
    the reply either; a two-word-or-longer reply only, and other words may follow."""
    import numpy as np

    from voiceloop.llm.speculative import CopyGuard, squash

    pieces = {
        1: "What's",
        2: " the",
        3: " story",
        4: " about,",
        5: " Mr",
        6: "John",
        7: " Dashwood",
        8: "?",
        0: "",
        9: " john",
        10: ".",
        11: " Yes",
        12: " sister",
    }

    def detok(ids: list[int]) -> str:
        return "".join(pieces[i] for i in ids)

    assert squash("What's the story about, MrJohn Dashwood?") == squash("what's the story about, Mr. john dashwood")
    g = CopyGuard([])
    g.ban_whole(["What's the story about, Mr John Dashwood?", "Yes."], detok, ends={8, 10, 0})
    z = np.zeros(13, np.float32)
    z[8], z[12] = 2.0, 1.0
    assert g.choose([1, 2, 3, 4, 5, 6, 7], z) == 12  # "... MrJohn Dashwood" may not end: it goes on
    assert g.choose([1, 2, 3, 4, 5, 9, 7], z) == 12  # "... Mr john Dashwood"
    assert g.choose([1, 2, 3, 4, 5, 9], z) == 8  # not the whole earlier reply yet
    assert g.choose([11], z) == 8  # one word: left alone


def test_copy_guard_refuses_an_earlier_replys_opening_at_its_last_word():
    """A reply may not open with the first four words of an earlier, longer reply ("What's the subject of this
    passage ...?" to 19 lines in a row on the real-speech session); the token that begins the fourth word is
    refused, whatever tokens spell the words before it, and the reply goes on another way."""
    import numpy as np

    from voiceloop.core.words import surface_words
    from voiceloop.llm.speculative import CopyGuard

    pieces = {0: "What", 1: "'s", 2: " the", 3: " subject", 4: " of", 5: " o", 6: " here", 7: "?", 8: " Whats", 9: " topic"}

    def detok(ids: list[int]) -> str:
        return "".join(pieces[i] for i in ids)

    assert surface_words("What's the subject, of") == ["whats", "the", "subject", "of"]
    g = CopyGuard([])
    g.ban_opening(["What's the subject of this passage?", "Yes."], detok)
    z = np.zeros(10, np.float32)
    z[4], z[5], z[6] = 3.0, 2.0, 1.0
    assert g.choose([0, 1, 2, 3], z) == 6  # " of" and " o" (a start of "of") are refused; " here" goes on
    assert g.choose([8, 2, 3], z) == 6  # the same words in other tokens
    assert g.choose([0, 1, 2, 9], z) == 4  # another opening: left alone
    assert g.choose([0, 1, 2], z) == 4  # not at the opening's last word yet
    assert g.choose([0, 1, 2, 3, 6], z) == 4  # the opening was decided at an earlier step
    g = CopyGuard([])
    g.ban_opening(["What's the subject?"], detok)  # an earlier reply no longer than the opening: ban_whole's
    assert g.choose([0, 1, 2, 3], z) == 4


def test_copy_guard_refuses_a_thrown_away_first_word_in_any_spelling():
    """A reply decoded again after reading the user's line back may not open with the line's first word, whatever
    tokens spell it ("Seven", "7", "S" + "even"); later in the reply the word is free."""
    import numpy as np

    from voiceloop.llm.speculative import CopyGuard

    pieces = {0: "Seven", 1: "7", 2: "S", 3: "even", 4: "The", 5: " seven", 6: '"', 7: " of"}

    def detok(ids: list[int]) -> str:
        return "".join(pieces[i] for i in ids)

    g = CopyGuard([])
    z = np.arange(8, dtype=np.float32)[::-1].copy()  # the model prefers the lower ids ...
    z[3] = -1.0  # ... but not "even" as a reply's first word
    assert g.choose([], z) == 0
    g.ban_first_word({"seven", "7"}, detok)
    assert g.choose([], z) == 4  # "Seven", "7" and "S" (it may become "Seven") refused; "The" goes
    z2 = np.zeros(8, np.float32)
    z2[3], z2[4] = 9.0, 5.0
    assert g.choose([2], z2) == 4  # "S" + "even" refused too
    assert g.choose([6], z) == 4  # after an opening quote the first word is still being chosen
    assert g.choose([4], z) == 0 and g.choose([4, 5], z) == 0  # later words are free


def test_read_back_check_holds_while_the_reply_follows_the_line():
    from voiceloop.llm.readback import ReadBackCheck, prefix_distance

    assert prefix_distance(["a", "b", "c"], ["a", "b"]) == 0 and prefix_distance(["a", "b", "c"], ["a", "x"]) == 1
    c = ReadBackCheck("Seven of clubs.")
    assert c.applies and c.budget == 0
    assert c.verdict("7") is None and c.verdict("7 of clu") is None  # the last word may not be whole yet
    assert c.verdict("7 of clubs.") is None  # "7 of clubs. ..." or the end: not known yet
    assert c.verdict("7 of clubs.", final=True) is True
    assert c.verdict("7 of clubs. What next?") is True  # the first sentence is the line
    assert c.verdict("7 of clubs is a") is None  # the line may still make most of the sentence
    assert c.verdict("Seven of clubs is 7.", final=True) is True  # mostly the line
    assert c.verdict("7 of clubs is the rank of") is False  # it says more: released at once
    assert c.verdict("7 of clubs is the rank of a card in poker.", final=True) is False
    assert c.verdict("The seven") is None  # one word may lead in
    assert c.verdict("The seven of clubs.", final=True) is True
    assert c.verdict("The queen") is False and c.verdict("A, seven") is False  # set off by a mark: its own
    assert c.verdict("Sev") is None and c.verdict("Th") is None and c.verdict("The ") is None
    assert c.verdict("Sure") is False  # only the line's first word, or an article before it, is held
    assert c.verdict("Sure,") is False
    assert c.verdict("Seven of hearts.", final=True) is False
    # A word in five may be heard or said differently.
    long = ReadBackCheck("She had your dog suit in greasy wash for all year.")
    assert long.budget == 2 and long.verdict("She had your dog suit in greasy wash for a year. It") is True
    # Restating a question with the answer in the question word's place answers it.
    q = ReadBackCheck("Which animal is known as the king of the jungle?")
    assert q.verdict("Lion is known as the king of the jungle.", final=True) is False
    # One or two words are answered in kind.
    assert not ReadBackCheck("Good night.").applies
