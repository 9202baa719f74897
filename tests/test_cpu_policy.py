"""The AMX decision (voiceloop/llm/cpu_policy.py) with faked CPU feature lists and ggml builds."""

from __future__ import annotations

import os
import subprocess
import sys

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
