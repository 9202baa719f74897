"""Offline baseline WER: faster-whisper's own transcribe() (beam 1, whole file, 30 s window).

    python examples/offline_wer.py ../shared/data/real_speech/manifest.tsv

Compare with the `wer` that `voiceloop profile --reference MANIFEST` reports for the streamed transcripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from voiceloop.asr.whisper import WhisperASR
from voiceloop.audio.files import read_audio_16k
from voiceloop.metrics.wer import wer
from voiceloop.profile.runner import load_references


def main(manifest: Path) -> None:
    refs = load_references(manifest)
    asr = WhisperASR()
    names = sorted(refs)
    hyps = [asr.transcribe_full(read_audio_16k(manifest.parent / n)).text for n in names]
    print(f"offline WER {wer([refs[n] for n in names], hyps):.4f} on {len(names)} files (beam 1, 30 s window)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
