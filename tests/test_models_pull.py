"""`voiceloop models pull` against a local HTTP server standing in for the hub (HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
CONFIG = b'{"audio": {"sample_rate": 22050}}'
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {
        "/acme/voices/resolve/main/en/test.onnx": PAYLOAD,
        "/acme/voices/resolve/main/en/test.onnx.json": CONFIG,
    }
    drop_first_get = False
    ranges: ClassVar[list[str]] = []
    seen: ClassVar[list] = []

    def log_message(self, *args):  # quiet
        pass

    def _headers(self, body: bytes, status: int = 200, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
        self.send_header("Accept-Ranges", "bytes")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def do_HEAD(self):
        path = self.path.split("?")[0]
        if path not in self.files:
            self.send_error(404)
            return
        body = self.files[path]
        self._headers(body, extra={"Content-Length": str(len(body))})

    def do_GET(self):
        path = self.path.split("?")[0]
        if path not in self.files:
            self.send_error(404)
            return
        body = self.files[path]
        start = 0
        rng = self.headers.get("Range")
        Hub.seen.append((path, rng))
        if rng:
            Hub.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
        part = body[start:]
        if rng:
            self._headers(
                body, 206, {"Content-Length": str(len(part)), "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
            )
        else:
            self._headers(body, extra={"Content-Length": str(len(part))})
        if Hub.drop_first_get and path.endswith(".onnx"):
            Hub.drop_first_get = False
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            time.sleep(0.5)  # the client has read (and saved) the first half
            self.connection.shutdown(2)  # the connection dies halfway: the next pull must resume
            return
        self.wfile.write(part)


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hub.ranges = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _env(tmp_path, endpoint, sha):
    cat = tmp_path / "extra.toml"
    cat.write_text(
        '[[model]]\nname = "test-voice"\nkind = "tts"\nsource = "hub:acme/voices/en/test.onnx"\n'
        f'file = "test.onnx"\nlicence = "test"\nsize_mb = 1\nsha256 = "{sha}"\n'
    )
    return {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "VOICELOOP_HOME": str(tmp_path / "home"),
        "VOICELOOP_CATALOG": str(cat),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
    }


def _pull(env):
    return subprocess.run(
        [sys.executable, "-m", "voiceloop", "models", "pull", "test-voice"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_pull_fetches_verifies_and_resumes(hub, tmp_path):
    """The connection dies halfway through the weights: the pull retries and verifies the result."""
    env = _env(tmp_path, hub, hashlib.sha256(PAYLOAD).hexdigest())
    Hub.drop_first_get = True
    r = _pull(env)
    assert r.returncode == 0, r.stderr
    models = tmp_path / "home" / "models"
    assert (models / "test.onnx").read_bytes() == PAYLOAD
    assert (models / "test.onnx.json").read_bytes() == CONFIG
    assert r.stdout.strip() == str(models / "test.onnx")
    assert [p for p, _ in Hub.seen].count("/acme/voices/resolve/main/en/test.onnx") == 2  # retried after the drop
    again = _pull(env)  # already there: verified again, nothing lost
    assert again.returncode == 0 and (models / "test.onnx").read_bytes() == PAYLOAD


def test_pull_rejects_a_file_that_does_not_match_its_pin(hub, tmp_path):
    r = _pull(_env(tmp_path, hub, "0" * 64))
    assert r.returncode == 2 and "the catalog pins" in r.stderr
    assert not (tmp_path / "home" / "models" / "test.onnx").exists()


def test_pull_offline_is_one_clear_message(tmp_path):
    r = _pull(_env(tmp_path, "http://127.0.0.1:9", "0" * 64))  # nothing listens on port 9
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "cannot fetch test-voice" in r.stderr and "Offline?" in r.stderr


def test_pull_of_an_embedded_model_says_where_it_is(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "voiceloop", "models", "pull", "whisper-tiny.en"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "not fetched from the hub" in r.stderr
