"""``voiceloop profile``: recorded audio through the real pipeline, in real time."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def report_schema() -> dict[str, Any]:
    """The JSON Schema of a profile report (``voiceloop profile --json``, the bridge page's export)."""
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text())
