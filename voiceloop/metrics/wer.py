"""Word error rate with a normalisation that treats casing, punctuation, contractions and number words alike."""

from __future__ import annotations

import re

_NUMBERS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "twenty": "20", "twentieth": "20th", "mr": "mister", "mrs": "missus",
}  # fmt: skip


# Expanded as Whisper's English text normalizer does, so "I'm" and "I am" are the same words.
_CONTRACTIONS = (
    (r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"\blet's\b", "let us"),
    (r"\bain't\b", "is not"), (r"n't\b", " not"), (r"'re\b", " are"), (r"'ll\b", " will"),
    (r"'ve\b", " have"), (r"'m\b", " am"), (r"\b(it|that|there|what|he|she|who|here|where)'s\b", r"\1 is"),
    (r"\b(i|you|he|she|we|they)'d\b", r"\1 would"),
)  # fmt: skip


def normalize(text: str) -> list[str]:
    text = text.lower().replace("-", " ").replace("\u2019", "'")
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text)
    text = re.sub(r"[^\w\s']", " ", text)
    words = [w.strip("'") for w in text.split()]
    return [_NUMBERS.get(w, w) for w in words if w]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def same_request(earlier: str, now: str) -> bool:
    """Whether ``now`` asks what ``earlier`` did, give or take a word in five the ASR heard differently."""
    a, b = normalize(earlier), normalize(now)
    return bool(b) and edit_distance(a, b) <= len(b) // 5


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: total edits over total reference words."""
    edits = words = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r, h = normalize(ref), normalize(hyp)
        edits += edit_distance(r, h)
        words += len(r)
    return edits / words if words else 0.0
