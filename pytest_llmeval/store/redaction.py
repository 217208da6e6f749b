"""The one redaction step the store applies to everything it writes: secrets from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = ["REDACTED", "secrets_from_env", "redact_secrets"]

#: What a secret is replaced with.
REDACTED = "[redacted]"

# Environment variables whose values must never be written (checked on every write).
_SECRET_NAME = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD)", re.IGNORECASE)
# Shorter values ("1", "true", "dev") would redact ordinary text.
_MIN_SECRET_LENGTH = 8


def secrets_from_env() -> tuple[str, ...]:
    """Values of environment variables named like keys (``*API_KEY``, ``*TOKEN``, ``*SECRET``,
    ``*PASSWORD``) of 8 characters or more, longest first, so that a secret containing
    another one is replaced whole."""
    return tuple(
        sorted(
            {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LENGTH},
            key=len,
            reverse=True,
        )
    )


def redact_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret (default: :func:`secrets_from_env`) replaced by ``[redacted]``.

    Keys never reach the store or reports by design; this catches servers, models and
    prompts that echo one back.
    """
    for secret in secrets_from_env() if secrets is None else secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text
