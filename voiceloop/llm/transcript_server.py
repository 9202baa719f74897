"""llama-cpp-python's OpenAI-compatible server with a transcript chat format, for base models.

The embedded Gemma 3 270M is a base model without a chat template; through /v1/chat/completions
llama.cpp would fall back to a format it was never trained on and answer with garbage. This
registers "voiceloop-transcript" (the same few-shot transcript voiceloop prompts with) so stock
OpenAI-style clients, such as pipecat's OpenAILLMService, get the same answers.

    python -m voiceloop.llm.transcript_server --model MODEL.gguf --port 8080
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from ..errors import VoiceloopError
from .openai_messages import split_context
from .prompt import TranscriptPrompt


def register() -> str:
    from llama_cpp.llama_chat_format import ChatFormatterResponse, register_chat_format

    prompt = TranscriptPrompt()

    @register_chat_format("voiceloop-transcript")
    def _format(messages: list[dict[str, Any]], **_: Any) -> ChatFormatterResponse:
        history, user = split_context(messages)
        # The server adds BOS itself; the prompt is the transcript up to "Assistant:".
        return ChatFormatterResponse(prompt=prompt.render(history, user), stop=list(prompt.stop))

    return "voiceloop-transcript"


def main(argv: list[str] | None = None) -> None:
    from .cpu_policy import install

    install()  # the server's own Llama() gets the AMX-safe kernels too
    name = register()
    args = list(sys.argv[1:] if argv is None else argv)
    if "--chat_format" not in args:
        args += ["--chat_format", name]
    sys.argv = [sys.argv[0], *args]
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()


@contextlib.contextmanager
def serve(
    model: str, *, port: int | None = None, n_threads: int = 1, n_threads_batch: int = 2, timeout_s: float = 120.0
) -> Iterator[str]:
    """Start this server on loopback in a subprocess; yields its base URL (``http://127.0.0.1:PORT/v1``)."""
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "voiceloop.llm.transcript_server", "--model", model, "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads_batch),
    ]  # fmt: skip
    # stderr to a file, not a pipe: the server logs every request and a full pipe would block it.
    log_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    log_file.seek(0)
                    err = log_file.read().decode(errors="replace")[-500:]
                    raise VoiceloopError(
                        f"the transcript server exited (is llama-cpp-python[server] installed?): {err}"
                    ) from None
                if time.monotonic() > deadline:
                    raise VoiceloopError(f"the transcript server did not answer on {url} within {timeout_s:.0f} s") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
