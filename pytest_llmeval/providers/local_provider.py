"""``local:smollm2`` and ``local:/path/model.gguf``: an embedded model (extra ``[local]``)."""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from ..models import ModelSpec, Request


class LocalProvider:
    """Placeholder until the embedded provider lands: says clearly that it is missing."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.endpoint = "local"

    def complete(self, request: Request, *, timeout: float) -> dict[str, Any]:
        raise ProviderError(f"{self.spec}: the local provider is not available yet")
