"""Fresh phrasings, written in session 12 after that session's changes and not tuned on: text in, each request
alone, the default LLM with the evaluation tools. Prints P(call), the decision and the call or the reply.

    python examples/tool_fresh_check.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tool_eval as te

NEED_A_TOOL = [
    "Could you set a timer for twelve minutes?",
    "What's the time in Paris?",
    "What is 250 divided by 5?",
    "How many kilometers is 10 miles?",
    "Remind me to take my medicine at 8 pm.",
    "Turn on the kitchen light.",
    "Which day is it today?",
    "Set a three minute timer for the tea.",
    "What is 9 times 7?",
    "Please switch off the bedroom lights.",
    "How many grams in a pound?",
    "Cancel my timer.",
    "What time is it in Berlin right now?",
    "Convert 100 Fahrenheit to Celsius.",
]
NEED_NONE = [
    "What's the tallest animal?",
    "I love rainy days.",
    "Who invented the telephone?",
    "Can you tell me a riddle?",
    "My sister is visiting next week.",
    "What's the opposite of hot?",
    "I had pasta for lunch.",
    "How far away is the moon?",
    "What is the speed of light?",
    "Do you like music?",
]


def main() -> None:
    from voiceloop.cli.llm_args import resolve_model
    from voiceloop.llm.backend import GenerationStats
    from voiceloop.llm.llama import LlamaBackend, LlamaOptions
    from voiceloop.tools import ToolCallFilter

    schemas = [t.schema() for t in te.eval_tools()]
    llm = LlamaBackend(LlamaOptions(model=resolve_model(None)))
    for kind, lines in (("TOOL", NEED_A_TOOL), ("NONE", NEED_NONE)):
        for q in lines:
            st = GenerationStats()
            f = ToolCallFilter()
            spoken = f.feed("".join(llm.stream([], q, max_tokens=64, tools=schemas, stats=st))) + f.flush()
            what = f.calls[0].raw.replace("\n", " ")[11:110] if f.calls else repr(spoken[:70])
            print(f"{kind} {st.call_probability:.2f} {st.call_decision:<16} {q:<45} {what}", flush=True)


if __name__ == "__main__":
    main()
