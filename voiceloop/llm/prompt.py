"""Prompt formats: transcript-style few-shot for base models, chat templates otherwise.

Base models such as the embedded Gemma 3 270M have no chat template; written as a
transcript ("User: ... / Assistant: ...") with a short few-shot preamble, they
continue it with short sensible answers, and the end of the line ends the reply.
The prompt text of earlier turns never changes, so the KV cache covers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    cut: bool = False
    """An assistant reply the user talked over: ``content`` holds only what was played before the cut."""


SPEECH_SYSTEM_PROMPT = (
    "You are a knowledgeable, friendly voice assistant in a spoken conversation. Your words are read aloud, "
    "so reply in one short, plain sentence. When asked a question, answer it with the correct fact. When the "
    "user says something else, reply to what they just said in your own words, for example with a short "
    "comment or question; do not repeat their words and do not repeat your earlier replies. Do not end every "
    "reply with a question, and do not offer more help."
)
"""The default persona, written for speech; replace it with ``--system`` or ``AgentOptions.system``."""


SPEECH_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Who discovered penicillin?", "Alexander Fleming discovered penicillin, in 1928."),
    ("How many weeks are there in a year?", "There are 52 weeks in a year."),
    ("I just got back from a long walk by the river.", "That sounds lovely. Did you see anything nice on the way?"),
    ("The old lighthouse keeper lit the lamp every evening.", "That's a lovely image. Is it from a story you're reading?"),
    ("What's nine times six?", "Nine times six is 54."),
    ("Forty.", "Forty of what? Tell me a little more."),
    ("Could you please lock the front door?", "I can't control devices from here, sorry."),
    ("What's on my calendar today?", "I can't see your calendar or a clock, sorry."),
)
"""Example exchanges shown to instruction-tuned models after the system prompt: a direct answer, a reply
to a remark that neither echoes it nor answers a question nobody asked. Measured on the question set's tune
split (Qwen2.5-Coder 1.5B: 22/24 with them, 22/24 without; on the real-speech session replies that read the
user's line back: 8 of 29 with them, 27 of 29 without). A sentence read out (a line from a book) and a lone word
were added in session 11: on the real-speech session's heard lines as one conversation, text in
(``examples/conversation_eval.py``), replies that read the user's line back fell from 14 of 29 to 3; "do not end
every reply with a question" in the persona took the tail "Did you have any other plans?" off most replies. The
last two examples keep a model without tools from making up the time ("It's 12:00 PM.") or claiming to have
switched a lamp on; the same said as an instruction in the persona changed nothing."""


REMARK_EXAMPLES: tuple[tuple[str, str], ...] = tuple(e for e in SPEECH_EXAMPLES if not e[0].endswith("?"))
"""The examples that answer a remark (a walk, a line from a book, a lone word) with a remark."""


def split_system(history: list[Message]) -> tuple[str | None, list[Message]]:
    """A leading system message (the conversation's persona) and the turns after it."""
    if history and history[0].role == "system":
        return history[0].content, history[1:]
    return None, history


DEFAULT_PREAMBLE = (
    "The following is a conversation with a friendly voice assistant. "
    "The assistant answers in one or two short spoken sentences.\n\n"
    "User: Hi, how are you today?\n"
    "Assistant: I'm doing well, thanks for asking. How can I help?\n"
    "User: What is the capital of France?\n"
    "Assistant: The capital of France is Paris.\n"
    "User: Can you recommend something to cook tonight?\n"
    "Assistant: How about a simple pasta with tomatoes, garlic and basil?\n"
)


@dataclass(frozen=True, slots=True)
class TranscriptPrompt:
    """Formats a conversation as a plain transcript for a base model."""

    preamble: str = DEFAULT_PREAMBLE
    user_prefix: str = "User:"
    assistant_prefix: str = "Assistant:"
    stop: tuple[str, ...] = ("\n", "User:")
    """Each line of the transcript is one turn, so the newline ends the reply: waiting for the
    "User:" that follows it would hold the reply's last words back for two more tokens."""

    def render_user_line(self, history: list[Message], user_text: str, tools: list[dict] | None = None) -> str:
        """The prompt up to the end of the user's words: what the turn detector scores."""
        return self.render(history, user_text, tools=tools)[: -len(f"\n{self.assistant_prefix}")]

    def split(self, history: list[Message], user_text: str, tools: list[dict] | None = None) -> tuple[str, str]:
        """(the prompt up to the end of the user's words, the rest up to the reply)."""
        return self.render_user_line(history, user_text, tools), f"\n{self.assistant_prefix}"

    def render(
        self, history: list[Message], user_text: str, *, tools: list[dict] | None = None, after: list[Message] | None = None
    ) -> str:
        system, history = split_system(history)
        # A base model has no system role: the persona opens the transcript instead of its first line.
        preamble = self.preamble if system is None else system.strip() + "\n\n" + self.preamble.split("\n\n", 1)[-1]
        if tools:
            preamble = tools_preamble(tools) + preamble
        parts = [preamble]
        for m in [*history, Message("user", user_text), *(after or [])]:
            if m.role == "user":
                parts.append(f"{self.user_prefix} {m.content}\n")
            elif m.role == "assistant":
                parts.append(f"{self.assistant_prefix} {m.content}\n")
            elif m.role == "tool":
                parts.append(f"Tool result: {m.content}\n")
        parts.append(self.assistant_prefix)
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class ChatTemplatePrompt:
    """Uses the GGUF's own chat template (Jinja) for instruction-tuned models."""

    template: str
    bos_token: str = ""
    eos_token: str = ""
    system: str = SPEECH_SYSTEM_PROMPT
    stop: tuple[str, ...] = field(default_factory=tuple)
    examples: tuple[tuple[str, str], ...] = SPEECH_EXAMPLES
    """Example exchanges placed after the system prompt: they show a small model the shape of a spoken
    answer. They are a constant prefix, so the KV cache holds them and they cost no time per turn."""
    recap_with_tools: bool = True
    """With tools offered, tell earlier turns inside the user's message (``recap``) instead of as chat turns."""
    recap_turns: int | None = 3
    """How many of the latest turns the recap tells at least; None = all the trimmed history. Told whole, a long
    conversation of remarks was recycled into later replies (a 29-turn session: an earlier sentence said again
    to an unrelated line, three read-backs); the latest three are enough for "and in Paris?"."""
    recap_block: int = 3
    """The recap's first turn moves in steps of this many turns (it tells ``recap_turns`` to ``recap_turns +
    recap_block - 1`` turns), so the KV cache keeps the recap between steps instead of evaluating it every turn."""
    tool_examples: tuple[tuple[str, str], ...] = REMARK_EXAMPLES
    """With tools offered, once there is a conversation: example exchanges of remarks answered with remarks. Not
    in the request-alone prompt that decides calls (``alone_prompt``)."""

    def render(
        self, history: list[Message], user_text: str, *, tools: list[dict] | None = None, after: list[Message] | None = None
    ) -> str:
        system, history = split_system(history)
        fmt = _formatter(self.template, self.eos_token, self.bos_token)
        msgs = [{"role": "system", "content": (system or self.system) + (TOOLS_HINT if tools else "")}]
        # With tools offered, none of the answered examples: they teach the small models to answer arithmetic
        # from memory, and worked tool calls in the history made them stop calling (measured). Remarks answered
        # with remarks only, and only once there is a conversation: a first request's prompt stays the request
        # alone, so its call decision costs no second prompt (and the first reply no time).
        examples = self.examples if not tools else self.tool_examples if history else ()
        for user, assistant in examples:
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        if tools and history and self.recap_with_tools:
            # With tools, earlier turns are told inside the user's message, not as chat turns: one earlier
            # answer given without a call is enough for these models to stop calling (P(call) for "What time
            # is it in Tokyo?" 0.61 alone, 0.007 after one such exchange, 0.38 with the exchange recapped).
            msgs.append({"role": "user", "content": recap(history, self.recap_turns, self.recap_block) + user_text})
        else:
            msgs += [{"role": m.role, "content": m.content} for m in history]
            msgs.append({"role": "user", "content": user_text})
        # A tool's result arrives as a user turn in these templates; the persona answers a user's remark with a
        # remark or a question, so the model asked the question back ("What is 17 times 23?"). Say what it is for.
        msgs += [
            {"role": m.role, "content": m.content + TOOL_RESULT_HINT if m.role == "tool" else m.content} for m in after or []
        ]
        # The template's own tools support writes the schemas into the system turn.
        text = fmt(messages=msgs, tools=tools or None).prompt
        if tools:
            # The embedded Qwen repackagings' template doubles the braces of its own call example
            # ({{"name": ...}}); the model copies that and drops the tags. Qwen's original has single ones.
            text = text.replace(_DOUBLED_EXAMPLE, _CALL_EXAMPLE)
        return text

    def alone_prompt(self) -> ChatTemplatePrompt:
        """The prompt that reads the call decision on the request alone: no examples, no history."""
        return replace(self, tool_examples=()) if self.tool_examples else self

    def split(self, history: list[Message], user_text: str, tools: list[dict] | None = None) -> tuple[str, str]:
        """(the prompt up to the end of the user's words, the rest up to the reply).

        The rest starts with the template's end-of-message token: its probability right after the
        user's words is the model's belief that the user's message is over (the turn detector)."""
        rendered = self.render(history, _SENTINEL, tools=tools)
        at = rendered.rfind(_SENTINEL)
        return rendered[:at] + user_text, rendered[at + len(_SENTINEL) :]


TOOLS_HINT = (
    " You can act through the tools below: when the user asks for something a tool does (the time, a timer "
    "or reminder, arithmetic, a conversion, a device), call it instead of answering from memory, and never "
    "say you did something you did not call a tool for."
)


TOOL_RESULT_HINT = "\n(The tool's result: tell the user the answer in one short sentence.)"


def tools_preamble(tools: list[dict]) -> str:
    """The documented tool format for models without a chat template (voiceloop.tools.calls parses it)."""
    import json

    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return (
        "The assistant can call these tools. To call one it writes a line "
        '<tool_call>{"name": NAME, "arguments": {...}}</tool_call> and waits for the tool result.\n'
        f"{lines}\n\n"
    )


_CALL_EXAMPLE = '{"name": <function-name>, "arguments": <args-json-object>}'
_DOUBLED_EXAMPLE = "{" + _CALL_EXAMPLE + "}"


RECAP_CALL = "You called:"
"""The recap's label for an earlier call; a reply that starts with it is read as a call (voiceloop.tools.calls)."""


def recap(history: list[Message], turns: int | None = None, block: int = 1) -> str:
    """Earlier turns as a note ahead of the user's words; a stable prefix, so the KV cache keeps it.

    Plain labels, measured against the template's own tags for calls and results in the note (one conversation,
    seed 0: 30/42 right against 22/42). A model imitating the note may start its reply with the call label:
    the call filter reads that as the call it is, so the JSON is never spoken."""
    if turns is not None:
        starts = [i for i, m in enumerate(history) if m.role == "user"]
        if not turns:
            history = []
        elif len(starts) > turns:
            # The first turn told moves in whole blocks: the recap is a stable prefix between the steps.
            first = (len(starts) - turns) // max(1, block) * max(1, block)
            history = history[starts[first] :]
    if not history:
        return ""
    lines = []
    for m in history:
        if m.role == "user":
            lines.append(f"User: {m.content}")
        elif m.role == "tool":
            lines.append(f"Tool result: {m.content}")
        elif m.content.lstrip().startswith("<tool_call>"):
            calls = m.content.replace("<tool_call>", "").replace("</tool_call>", "").split()
            lines.append(f"{RECAP_CALL} {' '.join(calls)}")
        else:
            lines.append(f"You: {m.content}")
    return "(Our conversation so far:\n" + "\n".join(lines) + ")\n\n"


_SENTINEL = "\ue000"  # a private-use character: no template or user text contains it


@lru_cache(maxsize=8)
def _formatter(template: str, eos_token: str, bos_token: str):  # -> Jinja2ChatFormatter
    """Compiling a chat template costs ~5 ms; it is done once per template, not per turn."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token)
