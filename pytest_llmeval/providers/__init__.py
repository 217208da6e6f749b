"""Built-in providers. Each registers through ``pytest_llmeval_register_providers``, the
hook a third-party provider uses; :mod:`pytest_llmeval.providers.base` is the interface
(:class:`~pytest_llmeval.providers.base.Provider`) they all satisfy.

Nothing here imports an SDK at module import time: the plugin is loaded by every pytest
run of a project that installs it, evals or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_llmeval.providers.base import ProviderFactory


# A plain ``pytest_*`` function is a hook implementation for pytest's plugin manager, the
# same shape a third-party provider's conftest.py uses.
def pytest_llmeval_register_providers(register: Callable[[str, ProviderFactory], None]) -> None:
    """Register ``openai``, ``anthropic`` and ``local`` (imported only when a run starts)."""
    from pytest_llmeval.providers.anthropic import AnthropicProvider
    from pytest_llmeval.providers.local import LocalProvider
    from pytest_llmeval.providers.openai import OpenAIProvider

    register("openai", OpenAIProvider)
    register("anthropic", AnthropicProvider)
    register("local", LocalProvider)
