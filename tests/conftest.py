from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def engines():
    """The real embedded models, loaded once for the whole test session."""
    from voiceloop.pipeline.engines import Engines

    eng = Engines.load()
    eng.warm_up()
    yield eng
    eng.close()
