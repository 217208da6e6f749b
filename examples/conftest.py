"""Replay the committed recording, so the examples run in seconds without the model installed.

``recorded_answers.jsonl`` holds every answer the examples need, written by
``python -m pytest_llmeval cache export`` (sorted JSONL: review changes in a diff). Before
the run it is imported into this folder's cache (``.llmeval/cache.db``, not committed), so
``pytest examples/`` replays it, and only a prompt you change calls the model. Re-record
with ``python examples/rerecord.py``. The same two commands commit a cache for your own CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

RECORDING = Path(__file__).with_name("recorded_answers.jsonl")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # under pytest-xdist the controller has already imported it
    mode = config.getoption("llmeval_cache") or config.getini("llmeval_cache") or "use"
    if mode not in ("use", "replay"):
        return  # refresh and off call the model anyway: a recording would be overwritten or unused
    from pytest_llmeval.store.db import Store

    option = config.getoption("llmeval_cache_path")
    if option:
        path = Path(config.invocation_params.dir, option)
    else:
        path = config.rootpath / (config.getini("llmeval_cache_path") or ".llmeval/cache.db")
    with Store(path) as store, RECORDING.open(encoding="utf-8") as lines:
        result = store.import_lines(lines)
    if result["bad"]:
        number, reason = result["bad"][0]
        raise pytest.UsageError(f"{RECORDING}: line {number}: {reason}")
