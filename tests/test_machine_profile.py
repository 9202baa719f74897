"""Engine threads from the machine profile: the choice rule, the per-CPU file, the engines reading it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voiceloop.core.machine import (
    DEFAULT_LLM_THREADS,
    MachineProfile,
    choose_threads,
    llm_threads,
    load_profile,
    machine_key,
    piper_threads,
    save_profile,
    whisper_threads,
)


def test_choose_threads_takes_a_thread_only_when_it_pays():
    assert choose_threads({1: 10.2, 2: 10.2}) == 1  # memory-bound: the second core is worth more elsewhere
    assert choose_threads({1: 31.0, 2: 18.0}) == 2  # the Xeon case from the issue
    assert choose_threads({1: 37.3, 2: 42.5}) == 1  # slower with two
    assert choose_threads({1: 40.0, 2: 37.0}) == 1  # 7.5 % is not worth a core
    assert choose_threads({1: 40.0, 2: 30.0, 3: 29.0, 4: 20.0}) == 4


@pytest.fixture
def profile_file(tmp_path, monkeypatch):
    path = tmp_path / "machine.json"
    monkeypatch.setenv("VOICELOOP_MACHINE_PROFILE", str(path))
    return path


def test_no_profile_means_builtin_defaults(profile_file):
    assert load_profile() is None
    assert llm_threads("x.gguf") == DEFAULT_LLM_THREADS and whisper_threads() == 1 and piper_threads() == 2


def test_profile_of_this_machine_is_used(profile_file):
    save_profile(MachineProfile(cpu=machine_key(), whisper_threads=2, piper_threads=1, llm_threads={"a.gguf": 2}))
    assert whisper_threads() == 2 and piper_threads() == 1
    assert llm_threads("/models/a.gguf") == 2
    assert llm_threads("/models/unmeasured.gguf") == 2  # an unmeasured model gets the most any model chose


def test_profile_of_another_machine_is_ignored(profile_file):
    profile_file.write_text(
        json.dumps(
            {"cpu": "Intel Xeon (2 logical CPUs)", "whisper_threads": 2, "piper_threads": 1, "llm_threads": {"a.gguf": 2}}
        )
    )
    if machine_key() == "Intel Xeon (2 logical CPUs)":
        pytest.skip("this machine has that name")
    assert load_profile() is None and whisper_threads() == 1


def test_corrupt_profile_is_ignored(profile_file):
    profile_file.write_text("{not json")
    assert load_profile() is None


@pytest.mark.models
def test_engines_read_their_threads_from_the_profile(profile_file):
    """Real engines in a fresh process load with the profile's counts."""
    from voiceloop.models import model_path

    name = model_path("gemma-3-270m-q4_k_m").name
    save_profile(MachineProfile(cpu=machine_key(), whisper_threads=2, piper_threads=1, llm_threads={name: 2}))
    code = (
        "from voiceloop.llm.llama import LlamaBackend, LlamaOptions; from voiceloop.models import model_path; "
        "from voiceloop.tts.piper import PiperTTS; "
        "b = LlamaBackend(LlamaOptions(model=str(model_path('gemma-3-270m-q4_k_m')))); "
        "t = PiperTTS(); "
        "print(b.n_threads, b.llm.context_params.n_threads, t.voice.session.get_session_options().intra_op_num_threads)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:3] == ["2", "2", "1"]


@pytest.mark.models
def test_tune_measures_and_writes_a_profile(profile_file):
    """`voiceloop doctor --only cpu --tune` on the real engines (Gemma only, to keep it short)."""
    import os

    from voiceloop.models import model_path

    env = {**os.environ, "VOICELOOP_TUNE_MODELS": str(model_path("gemma-3-270m-q4_k_m"))}
    proc = subprocess.run(
        [sys.executable, "-m", "voiceloop", "doctor", "--only", "cpu", "--tune"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    prof = load_profile()
    assert prof is not None and prof.cpu == machine_key()
    assert set(prof.measured["whisper"]) >= {"1"} and all(float(v) > 0 for v in prof.measured["whisper"].values())
    assert list(prof.llm_threads) == ["gemma-3-270m-q4_k_m.gguf"]
    assert "-> " in proc.stdout and "saved" in proc.stdout
