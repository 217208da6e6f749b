"""Built-in providers. Each module registers through ``pytest_llmeval_register_providers``.

Nothing here imports an SDK at module import time: the plugin is loaded by every pytest
run of a project that installs it, evals or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


# A plain ``pytest_*`` function is a hook implementation for pytest's plugin manager; no
# decorator, so that the call helper process (callproc.py) can import this without pytest.
def pytest_llmeval_register_providers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    from pytest_llmeval.providers.anthropic import AnthropicProvider
    from pytest_llmeval.providers.local import LocalProvider
    from pytest_llmeval.providers.openai import OpenAIProvider

    register("openai", OpenAIProvider)
    register("anthropic", AnthropicProvider)
    register("local", LocalProvider)
