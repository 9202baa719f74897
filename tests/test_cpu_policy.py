"""The AMX decision (voiceloop/llm/cpu_policy.py) with faked CPU feature lists and ggml builds, and the seccomp
filter that withholds AMX (voiceloop/llm/amx_permission.py), installed for real in child processes."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from voiceloop.llm.cpu_policy import ENV_OVERRIDE, decide, parse_system_info, read_cpu_info

SAPPHIRE_RAPIDS = frozenset("fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8".split())
EPYC_ZEN4 = frozenset("fpu sse2 avx2 avx512f avx512_vnni avx512_bf16".split())
HASWELL = frozenset("fpu sse2 avx avx2 fma".split())

AMX_BUILD = parse_system_info("CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 |")
PLAIN_BUILD = parse_system_info("CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | LLAMAFILE = 1 | REPACK = 1 |")


def test_parse_system_info():
    assert AMX_BUILD["AMX_INT8"] == "1" and AMX_BUILD["SSE3"] == "1" and AMX_BUILD["REPACK"] == "1"
    assert "AMX_INT8" not in PLAIN_BUILD


@pytest.mark.parametrize(
    ("flags", "features", "expected"),
    [
        (SAPPHIRE_RAPIDS, AMX_BUILD, False),  # the crash case: AMX kernels compiled and the CPU runs them
        (SAPPHIRE_RAPIDS, None, False),  # build unknown: the safe side
        (SAPPHIRE_RAPIDS, PLAIN_BUILD, True),  # a wheel built without AMX keeps its repacked kernels
        (EPYC_ZEN4, AMX_BUILD, True),  # AMX code that this CPU never selects
        (EPYC_ZEN4, PLAIN_BUILD, True),
        (HASWELL, None, True),
        (frozenset(), None, True),  # no /proc/cpuinfo (macOS, Windows)
    ],
)
def test_decide(flags, features, expected):
    settings = decide(flags, features, env={})
    assert settings.use_extra_bufts is expected
    assert settings.reason


def test_override_both_ways():
    assert decide(HASWELL, PLAIN_BUILD, env={ENV_OVERRIDE: "0"}).use_extra_bufts is False
    assert decide(SAPPHIRE_RAPIDS, AMX_BUILD, env={ENV_OVERRIDE: "1"}).use_extra_bufts is True
    assert decide(SAPPHIRE_RAPIDS, AMX_BUILD, env={ENV_OVERRIDE: "0"}, amx_withheld=True).use_extra_bufts is False


@pytest.mark.parametrize("features", [AMX_BUILD, None])
def test_with_amx_withheld_the_crash_case_keeps_the_repacked_kernels(features):
    kept = decide(SAPPHIRE_RAPIDS, features, env={}, amx_withheld=True)
    assert kept.use_extra_bufts is True and "withheld" in kept.reason
    assert decide(SAPPHIRE_RAPIDS, features, env={}).use_extra_bufts is False


LINUX_X86_64 = sys.platform == "linux" and platform.machine() == "x86_64"


def _child(code: str, **env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != ENV_OVERRIDE}, **env},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split("\n")


@pytest.mark.skipif(not LINUX_X86_64, reason="the seccomp filter is for Linux x86-64")
def test_the_filter_answers_amx_requests_with_eperm_on_every_thread():
    # A thread that exists before the filter is covered too (TSYNC): llama.cpp's and onnxruntime's pools may.
    lines = _child(
        """
        import errno, threading
        from concurrent.futures import ThreadPoolExecutor
        from voiceloop.llm.amx_permission import amx_granted, request_amx, withhold_amx
        pool = ThreadPoolExecutor(1); pool.submit(lambda: None).result()
        w = withhold_amx()
        print(w.ok, w.reason)
        print(request_amx() == errno.EPERM, pool.submit(request_amx).result() == errno.EPERM, amx_granted())
        print(withhold_amx() is w)
        """
    )
    if lines[0].startswith("False seccomp filter refused"):
        pytest.skip(f"this kernel or sandbox refuses seccomp filters: {lines[0]}")
    assert lines[0].startswith("True AMX withheld")
    assert lines[1] == "True True False"
    assert lines[2] == "True"


DECODE = """
    import llama_cpp
    from voiceloop.models import model_path
    llm = llama_cpp.Llama(model_path=str(model_path("gemma-3-270m-q4_k_m")), n_ctx=256, n_threads=2, verbose=False)
    ids = llm.tokenize(b"The capital of France is", add_bos=True)
    llm.eval(ids)
    out = []
    for _ in range(8):
        out.append(int(llm.scores[llm.n_tokens - 1].argmax()))
        llm.eval([out[-1]])
    print(out)
"""


@pytest.mark.skipif(not LINUX_X86_64, reason="the seccomp filter is for Linux x86-64")
def test_on_an_amx_cpu_with_an_amx_build_amx_is_withheld_and_the_repacked_kernels_decode():
    """The crash case, simulated: this CPU's flags and ggml's build features are faked as Sapphire Rapids with
    AMX_INT8; the policy then really installs the filter, keeps the extra buffer types, and the real model
    decodes the same greedy tokens as in a process without any of it (and onnxruntime runs under the filter)."""
    patched = _child(
        textwrap.dedent(
            """
        import errno
        import numpy as np
        import voiceloop.llm.cpu_policy as cp
        from voiceloop.llm.amx_permission import request_amx
        flags = frozenset("avx2 avx512f avx512_vnni amx_tile amx_int8 amx_bf16".split())
        cp.read_cpu_info = lambda: cp.CpuInfo("Intel(R) Xeon(R) Platinum 8481C", "GenuineIntel", flags, 2)
        cp.llama_system_info = lambda: "CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |"
        s = cp.install()
        print(s.use_extra_bufts, request_amx() == errno.EPERM)
        print(s.reason)
        from voiceloop.audio.vad import SileroVAD
        print(0.0 <= SileroVAD()(np.zeros(512, dtype=np.float32)) <= 1.0)
        """
        )
        + textwrap.dedent(DECODE)
    )
    plain = _child("from voiceloop.llm.cpu_policy import install; install()\n" + textwrap.dedent(DECODE))
    if "seccomp filter refused" in patched[1]:
        # A sandbox without seccomp: the safe fallback, extra buffer types off.
        assert patched[0].startswith("False") and "could not be withheld" in patched[1]
    else:
        assert patched[0] == "True True", patched
        assert "withheld" in patched[1] and "repacked kernels kept" in patched[1]
    assert patched[2] == "True"
    assert patched[3] == plain[0] and len(eval(plain[0])) == 8


def test_when_amx_cannot_be_withheld_the_extra_buffer_types_go_off(monkeypatch):
    import voiceloop.llm.amx_permission as ap
    import voiceloop.llm.cpu_policy as cp

    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(cp, "read_cpu_info", lambda: cp.CpuInfo("Xeon", "GenuineIntel", SAPPHIRE_RAPIDS, 2))
    monkeypatch.setattr(cp, "llama_system_info", lambda: "CPU : AVX2 = 1 | AMX_INT8 = 1 |")
    monkeypatch.setattr(ap, "withhold_amx", lambda: ap.Withheld(False, "AMX was already granted to this process"))
    s = cp.current_settings()
    assert s.use_extra_bufts is False and "already granted" in s.reason
    # No AMX on the CPU: nothing is withheld, nothing turned off.
    monkeypatch.setattr(ap, "withhold_amx", lambda: pytest.fail("must not be called"))
    monkeypatch.setattr(cp, "read_cpu_info", lambda: cp.CpuInfo("EPYC", "AuthenticAMD", EPYC_ZEN4, 2))
    assert cp.current_settings().use_extra_bufts is True


def test_read_cpu_info_from_a_faked_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
        f"flags\t\t: {' '.join(sorted(SAPPHIRE_RAPIDS))}\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    )
    info = read_cpu_info(f)
    assert info.model_name == "Intel(R) Xeon(R) Platinum 8481C" and info.vendor == "GenuineIntel"
    assert info.has_amx and info.flags == SAPPHIRE_RAPIDS


@pytest.mark.parametrize(
    ("flags", "isa"),
    [
        ("fpu avx avx2", "AVX2"),
        ("avx2 avx512f", "AVX-512"),
        ("avx2 avx512f amx_tile amx_int8", "AVX-512 + AMX"),
        ("fpu sse2", "no AVX2"),
    ],
)
def test_the_machine_key_tells_cpus_of_one_name_apart_by_their_vector_units(tmp_path, flags, isa):
    # Two "AMD EPYC" machines ~2.5x apart in these models' speed (AVX2 against AVX-512) must not share a
    # measured machine profile.
    f = tmp_path / "cpuinfo"
    f.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n")
    info = read_cpu_info(f)
    assert info.describe() == f"AMD EPYC ({info.logical_cpus} logical CPUs, {isa})"


def test_install_applies_the_decision_to_real_model_params():
    """In a fresh process, the override reaches the params every Llama() is built from."""
    code = (
        "from voiceloop.llm.cpu_policy import install; s = install(); "
        "import llama_cpp; print(s.use_extra_bufts, llama_cpp.llama_model_default_params().use_extra_bufts)"
    )
    for flag, expected in (("0", "False False"), ("1", "True True")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, ENV_OVERRIDE: flag},
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected.split()
