"""Which llama.cpp CPU kernels are safe on this machine: the one place that decides.

llama.cpp moves weights into "extra buffer types" at load time: the repacked CPU kernels
(``CPU_REPACK``: Q4_0/Q4_K/IQ4_NL interleaved for AVX2/AVX-512, worth 10-40 % decode speed)
and, when ggml was compiled with ``__AMX_INT8__``, Intel AMX tiles. On Sapphire Rapids and
later Xeons a source build (GGML_NATIVE) compiles the AMX kernels, and their first matmul dies
with SIGILL (``tilezero`` in ``ggml_backend_amx_mul_mat``; several upstream reports). The OS does
grant AMX there, so the fault is ggml's, and nothing at run time can switch AMX off alone: the
only switch is ``llama_model_params.use_extra_bufts``, which drops AMX *and* the repack kernels.

So the rule is narrow. It acts only when both the CPU has AMX and the loaded ggml was built with it
(``AMX_INT8 = 1`` in llama.cpp's system info); every other CPU, and an AMX CPU running a wheel built
without AMX, keeps the repacked kernels. This works whatever wheel pip had cached, because it looks at
the library actually loaded, not at how it was built. In that one case, AMX is first withheld from the
process (``amx_permission``: ggml then never registers its AMX kernels) and the repacked kernels stay;
only where that cannot be done are extra buffer types turned off.

``VOICELOOP_LLAMA_EXTRA_BUFTS=0|1`` overrides the rule (for a user whose build has a fixed AMX
path, or to measure the cost); with it nothing is withheld.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("voiceloop.llm")

ENV_OVERRIDE = "VOICELOOP_LLAMA_EXTRA_BUFTS"
AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})


@dataclass(frozen=True, slots=True)
class CpuInfo:
    model_name: str
    vendor: str
    flags: frozenset[str]
    logical_cpus: int

    @property
    def has_amx(self) -> bool:
        return bool(self.flags & AMX_FLAGS)

    @property
    def vector_isa(self) -> str:
        """The widest SIMD level the CPU reports: the same model name ("AMD EPYC") covers CPUs ~2.5x apart in
        these models' speed (AVX2 family 25 against AVX-512 family 26), so the machine key carries it."""
        if "avx512f" in self.flags:
            return "AVX-512" + (" + AMX" if self.has_amx else "")
        if "avx2" in self.flags:
            return "AVX2"
        return "no AVX2" if self.flags else ""

    def describe(self) -> str:
        isa = self.vector_isa
        return f"{self.model_name} ({self.logical_cpus} logical CPUs{', ' + isa if isa else ''})"


@dataclass(frozen=True, slots=True)
class LlamaCpuSettings:
    """What the loader applies to every llama.cpp model, and why."""

    use_extra_bufts: bool
    reason: str


def read_cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """CPU model and feature flags (Linux /proc/cpuinfo; empty flags elsewhere)."""
    model, vendor, flags = "", "", frozenset[str]()
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    if not model:
        import platform

        model = platform.processor() or platform.machine() or "unknown CPU"
    return CpuInfo(model_name=model, vendor=vendor, flags=flags, logical_cpus=os.cpu_count() or 1)


def parse_system_info(text: str) -> dict[str, str]:
    """``llama_print_system_info()`` ("CPU : SSE3 = 1 | AVX2 = 1 | ... |") as {feature: value}."""
    features: dict[str, str] = {}
    for part in text.replace("\n", "|").split("|"):
        if "=" not in part:
            continue
        key, _, value = part.rpartition("=")
        key = key.split(":")[-1].strip()  # "CPU : SSE3" -> "SSE3"
        if key:
            features[key] = value.strip()
    return features


def llama_system_info() -> str:
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")


def decide(
    cpu_flags: frozenset[str] | set[str],
    ggml_features: Mapping[str, str] | None,
    env: Mapping[str, str] | None = None,
    *,
    amx_withheld: bool = False,
) -> LlamaCpuSettings:
    """The rule, pure: CPU flags and ggml's compiled features in, the setting out.

    ``ggml_features`` is None when the system info could not be read; an AMX CPU is then
    treated as unsafe (a slower decode beats a crash). ``amx_withheld``: this process can no longer
    be granted AMX (``amx_permission.withhold_amx``), so ggml's AMX kernels cannot be selected.
    """
    env = os.environ if env is None else env
    override = _override(env)
    if override is not None:
        return LlamaCpuSettings(override, f"{ENV_OVERRIDE}={env[ENV_OVERRIDE].strip().lower()}")
    cpu_amx = bool(set(cpu_flags) & AMX_FLAGS)
    if not cpu_amx:
        return LlamaCpuSettings(True, "no AMX on this CPU: repacked kernels kept")
    build = "ggml's build features unknown" if ggml_features is None else "ggml built with AMX_INT8"
    if ggml_features is None or ggml_features.get("AMX_INT8") == "1":
        if amx_withheld:
            return LlamaCpuSettings(
                True,
                f"AMX CPU and {build}: AMX withheld from this process, so ggml cannot select its AMX kernels "
                "(they crash with SIGILL); repacked kernels kept",
            )
        return LlamaCpuSettings(False, f"AMX CPU and {build}: extra buffer types off (ggml's AMX kernels crash with SIGILL)")
    return LlamaCpuSettings(True, "AMX CPU but ggml built without AMX kernels: repacked kernels kept")


_installed: LlamaCpuSettings | None = None
_install_lock = threading.Lock()


def current_settings() -> LlamaCpuSettings:
    """The decision for this process's CPU and loaded llama.cpp library."""
    try:
        features: dict[str, str] | None = parse_system_info(llama_system_info())
    except Exception:  # an unusual build without the symbol: decide without it
        features = None
    flags = read_cpu_info().flags
    settings = decide(flags, features)
    if settings.use_extra_bufts or not amx_kernels_compiled(flags, features) or _override(os.environ) is not None:
        return settings
    # The crash case: keep the repacked kernels if AMX alone can be taken away (before any model loads).
    from .amx_permission import withhold_amx

    withheld = withhold_amx()
    if withheld.ok:
        return decide(flags, features, amx_withheld=True)
    return LlamaCpuSettings(False, f"{settings.reason}; AMX could not be withheld: {withheld.reason}")


def amx_kernels_compiled(cpu_flags: frozenset[str] | set[str], ggml_features: Mapping[str, str] | None) -> bool:
    """An AMX CPU with a ggml whose AMX kernels it would select (or whose build is unknown)."""
    return bool(set(cpu_flags) & AMX_FLAGS) and (ggml_features is None or ggml_features.get("AMX_INT8") == "1")


def _override(env: Mapping[str, str]) -> bool | None:
    """``VOICELOOP_LLAMA_EXTRA_BUFTS`` read as on / off; None when unset or unreadable."""
    value = env.get(ENV_OVERRIDE, "").strip().lower()
    return True if value in ("1", "true", "yes", "on") else False if value in ("0", "false", "no", "off") else None


def install() -> LlamaCpuSettings:
    """Apply the decision to every ``llama_cpp.Llama`` this process creates (idempotent).

    ``Llama()`` builds its model params from ``llama_model_default_params()`` and exposes no
    ``use_extra_bufts`` argument, so the default itself is wrapped. Wrapping the default (not one
    call site) also covers models loaded by llama-cpp-python's own server and by pipecat.
    """
    global _installed
    with _install_lock:
        if _installed is not None:
            return _installed
        import llama_cpp.llama_cpp as C

        settings = current_settings()
        original = C.llama_model_default_params
        if not settings.use_extra_bufts:
            if "use_extra_bufts" not in {f[0] for f in C.llama_model_params._fields_}:
                from ..errors import ConfigError

                raise ConfigError(
                    f"llama-cpp-python {getattr(__import__('llama_cpp'), '__version__', '?')} cannot switch off "
                    "llama.cpp's AMX kernels, which crash on this CPU; upgrade it: pip install -U 'llama-cpp-python>=0.3.36'"
                )

            def default_params():  # -> llama_model_params
                params = original()
                params.use_extra_bufts = False
                return params

            # llama.py calls it through the llama_cpp.llama_cpp module; the package re-exports it too.
            C.llama_model_default_params = default_params
            import llama_cpp

            llama_cpp.llama_model_default_params = default_params
        log.info("llama.cpp CPU kernels: use_extra_bufts=%s (%s)", settings.use_extra_bufts, settings.reason)
        _installed = settings
        return settings
