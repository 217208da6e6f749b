"""Providers by name, filled through the ``pytest_llmeval_register_providers`` hook."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.models import ModelSpec

__all__ = ["ProviderRegistry"]


class ProviderRegistry:
    """Maps provider names to factories; makes one provider object per model string."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[ModelSpec], Any]] = {}
        self._instances: dict[str, Any] = {}
        self._lock = threading.Lock()

    def register(self, name: str, factory: Callable[[ModelSpec], Any]) -> None:
        """Add a provider; a later registration of the same name replaces the earlier one."""
        self._factories[name.lower()] = factory

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def validate(self, spec: ModelSpec, *, source: str = "model") -> None:
        """A :class:`ConfigError` when no provider of that name is registered."""
        if spec.provider not in self._factories:
            raise ConfigError(
                f"unknown provider {spec.provider!r} in {str(spec)!r} ({source}); "
                f"known providers: {', '.join(self.names)}"
            )

    def get(self, spec: ModelSpec) -> Any:
        """The provider object for ``spec``, made on first use."""
        self.validate(spec)
        key = str(spec)
        with self._lock:
            provider = self._instances.get(key)
            if provider is None:
                provider = self._factories[spec.provider](spec)
                self._instances[key] = provider
            return provider
