"""``voiceloop models pull NAME``: fetch a catalog model whose source is the Hugging Face hub.

The only part of voiceloop that touches the network, and only when asked. huggingface_hub does
the transfer (resumable: an interrupted pull continues where it stopped; a progress bar; the
``HF_ENDPOINT`` mirror setting); the file lands in ``$VOICELOOP_HOME/models`` under the catalog's
name only after its sha256 matched the catalog's pin (when the catalog pins one).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..errors import ModelNotFoundError, VoiceloopError
from .registry import _entry, _sha256, voiceloop_home

log = logging.getLogger("voiceloop.models")


class PullError(VoiceloopError):
    """The hub could not be reached, or the download did not match its pin."""


def _hub_files(source: str, kind: str) -> tuple[str, list[str]]:
    """("owner/repo", [paths in the repo]) for a catalog source "hub:owner/repo[/path/in/repo]"."""
    parts = source.removeprefix("hub:").split("/")
    repo, path = "/".join(parts[:2]), "/".join(parts[2:])
    if not path:
        return repo, []  # a whole repository (a CTranslate2 Whisper directory)
    files = [path]
    if kind == "tts" and path.endswith(".onnx"):
        files.append(path + ".json")  # a Piper voice is its .onnx plus its config
    return repo, files


def _unreachable(endpoint: str, timeout_s: float = 3.0) -> str | None:
    """Why a TCP connection to the endpoint fails (DNS, refused, timeout), or None when it opens."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(endpoint)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname or "", port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def pull(name: str, *, progress: bool = True) -> Path:
    entry = _entry(name)
    if not entry.source.startswith("hub:"):
        raise ModelNotFoundError(
            f"{name} is not fetched from the hub (source {entry.source}); `voiceloop models path {name}` gives its path"
        )
    if not progress:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    # huggingface_hub logs every retry (below); the user gets one sentence if it finally fails.
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:
        raise PullError("huggingface_hub is not installed: pip install huggingface_hub") from None
    from huggingface_hub import constants
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    repo, files = _hub_files(entry.source, entry.kind)
    target = voiceloop_home() / "models" / entry.file
    reason = _unreachable(constants.ENDPOINT)
    if reason:
        # huggingface_hub would retry with back-off for half a minute before saying the same.
        raise PullError(
            f"cannot fetch {name}: the hub at {constants.ENDPOINT} is unreachable ({reason}). Offline? Run the same "
            f"command again when connected, or download {entry.source[4:]} elsewhere and place it at {target}"
        )
    models = voiceloop_home() / "models"
    staging = models / ".pull" / name  # huggingface_hub keeps partial downloads here: a retry resumes
    target = models / entry.file
    try:
        if not files:
            snapshot_download(repo_id=repo, local_dir=staging)
            got = [staging]
        else:
            got = [Path(hf_hub_download(repo_id=repo, filename=f, local_dir=staging)) for f in files]
    except Exception as exc:  # httpx, OSError and huggingface_hub's own errors: one message for all
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        raise PullError(
            f"cannot fetch {name} from {constants.ENDPOINT}/{repo} ({why}). "
            f"Offline? Run the same command again when connected (it resumes), or download it elsewhere and place it at "
            f"{target}"
        ) from None
    main = got[0] / "model.bin" if not files else got[0]
    if entry.sha256:
        digest = _sha256(main)
        if digest != entry.sha256:
            shutil.rmtree(staging, ignore_errors=True)  # a corrupt download must not be resumed
            raise PullError(f"{name}: downloaded file has sha256 {digest}, the catalog pins {entry.sha256}; not installed")
    else:
        log.warning("%s: the catalog pins no sha256; downloaded file has %s", name, _sha256(main))
    models.mkdir(parents=True, exist_ok=True)
    if not files:
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    else:
        for f in got[1:]:
            os.replace(f, models / f.name)
        os.replace(main, target)
        shutil.rmtree(staging, ignore_errors=True)
    return target
