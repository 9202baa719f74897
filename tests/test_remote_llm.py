"""The OpenAI-compatible backend against a real server on loopback: llama-cpp-python's own, serving the embedded model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from voiceloop.llm.backend import GenerationStats
from voiceloop.llm.prompt import Message
from voiceloop.llm.remote import RemoteBackend, RemoteLLMError, RemoteOptions
from voiceloop.models import model_path

pytestmark = pytest.mark.models


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path("gemma-3-270m-q4_k_m")),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("llama_cpp.server exited; is the server extra installed?")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(20)


def test_streams_a_reply_from_the_server(server_url):
    backend = RemoteBackend(RemoteOptions(url=server_url, api="completions"))
    st = GenerationStats()
    reply = "".join(backend.stream([], "What is the capital of France?", stats=st, max_tokens=32))
    assert "Paris" in reply and "User:" not in reply
    assert st.ttft_ms > 0 and st.decode_tokens > 1


def test_stop_flag_ends_the_stream(server_url):
    backend = RemoteBackend(RemoteOptions(url=server_url, api="completions"))
    stop = threading.Event()
    st = GenerationStats()
    pieces = []
    for piece in backend.stream([], "Tell me a long story about a dragon.", stop=stop, stats=st, max_tokens=64):
        pieces.append(piece)
        stop.set()
    assert len(pieces) == 1 and st.cancelled


def test_http_error_is_clear(server_url):
    backend = RemoteBackend(RemoteOptions(url=server_url.replace("/v1", "/nope"), api="completions"))
    with pytest.raises(RemoteLLMError, match="answered HTTP 404"):
        list(backend.stream([], "hi"))


def test_unreachable_server_is_clear():
    backend = RemoteBackend(RemoteOptions(url=f"http://127.0.0.1:{_free_port()}/v1", connect_timeout_s=1))
    with pytest.raises(RemoteLLMError, match="cannot reach the LLM server"):
        list(backend.stream([], "hi"))


def test_stalled_server_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    backend = RemoteBackend(RemoteOptions(url=url, read_timeout_s=0.5))
    t0 = time.monotonic()
    with pytest.raises(RemoteLLMError, match="no response within"):
        list(backend.stream([], "hi"))
    assert time.monotonic() - t0 < 5
    listener.close()


def test_profile_runs_the_voice_pipeline_on_the_remote_backend(server_url, data_dir, tmp_path):
    out = tmp_path / "out.json"
    clip = data_dir / "voice2json_would_you_please_turn_on_living_room_lamp.wav"
    r = subprocess.run(
        [sys.executable, "-m", "voiceloop", "profile", str(clip), "--json", str(out),
         "--llm-url", server_url, "--llm-api", "completions"],
        capture_output=True, text=True, timeout=300, env=os.environ,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-1500:]
    report = json.loads(out.read_text())
    assert report["system"]["models"]["llm"] == server_url
    (turn,) = report["turns"]
    assert turn["reply"] and turn["v2v_ms"] > 0


def test_transcript_server_serves_the_base_model_over_chat_completions():
    # llama.cpp's server with voiceloop's transcript chat format: what pipecat's stock OpenAILLMService talks to.
    from voiceloop.llm.transcript_server import serve

    with serve(str(model_path("gemma-3-270m-q4_k_m"))) as url:
        backend = RemoteBackend(RemoteOptions(url=url, api="chat"))
        history = [Message("user", "Hi there."), Message("assistant", "Hello! How can I help?")]
        reply = "".join(backend.stream(history, "What is the capital of France?", max_tokens=32))
    assert "Paris" in reply and "User:" not in reply and "Assistant:" not in reply
