"""The app's evals import the app as installed code would be: from this folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def anyio_backend() -> str:
    """The async eval runs on asyncio (anyio's pytest plugin comes with the SDKs)."""
    return "asyncio"
