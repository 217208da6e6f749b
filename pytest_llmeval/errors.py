"""Exceptions the plugin raises; each one names what is at fault and how to fix it."""

from __future__ import annotations

from typing import Any

from pytest_llmeval.store.redaction import redact_secrets

__all__ = [
    "LLMEvalError",
    "ConfigError",
    "ProviderError",
    "MissingKeyError",
    "CacheMissError",
    "BudgetExceededError",
    "JudgeError",
    "UnusedCheckWarning",
    "BatchPendingError",
]


class LLMEvalError(Exception):
    """Base of the errors that make a case an *error* (never a pass, never a plain fail).

    The message starts with the cause and the fix; it is redacted when the error is made
    (a server's error body may echo the key), so no secret reaches a report or the terminal.
    """

    def __init__(self, message: Any = "", *args: Any) -> None:
        super().__init__(redact_secrets(message) if isinstance(message, str) else message, *args)


class ConfigError(LLMEvalError):
    """A configuration mistake: bad model name, unknown provider, bad marker argument."""


class ProviderError(LLMEvalError):
    """A model call failed for good (after retries) or cannot be made at all.

    ``retryable`` and ``retry_after`` tell the retry loop whether and when to try again.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        exhausted: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        #: The account's quota or credit is used up: no call to this endpoint can succeed.
        self.exhausted = exhausted


class MissingKeyError(LLMEvalError):
    """A model that is to be called has no API key: ``variable`` is the one to set.

    Not a :class:`ProviderError`: nothing was sent, there is nothing to retry, and every
    case of the model fails with this same one-line message.
    """

    def __init__(self, message: str, *, model: str = "", variable: str = "") -> None:
        super().__init__(message)
        self.model = model
        self.variable = variable


class CacheMissError(LLMEvalError):
    """``--llmeval-cache=replay`` found no stored answer for a request."""


class BudgetExceededError(LLMEvalError):
    """``--llmeval-max-cost`` was reached, so this call was not made."""


class BatchPendingError(LLMEvalError):
    """``--llmeval-batch``: the batch holding this call had not ended when the run stopped
    waiting (``--llmeval-batch-wait``). An error, not a failed answer: rerun to collect it."""


class JudgeError(LLMEvalError):
    """The judge's reply gave no usable verdict: empty, unparseable, a refusal, a verdict
    outside the offered choices, or verdicts that contradict each other.

    The message shows the raw reply; ``raw``, ``grader`` and ``judge_model`` keep it for tools.
    """

    def __init__(self, message: str, *, raw: str = "", grader: str = "", judge_model: str = "") -> None:
        super().__init__(message)
        self.raw = redact_secrets(raw)
        self.grader = grader
        self.judge_model = judge_model


class PlanningStop(BaseException):
    """Ends a test body in the planning pass at its first call the cache cannot answer.

    A ``BaseException`` (not an :class:`LLMEvalError`) on purpose: ``except Exception`` in a
    test must not swallow it, or the code after the call would run during planning.
    Never seen by users: the planning pass catches it and nothing of that pass is reported.
    """


class UnusedCheckWarning(UserWarning):
    """A check failed but the test neither asserted nor used its result (``exact(out, "yes")``
    on its own line): the failure is recorded, the test's outcome does not show it.

    A plain ``UserWarning`` subclass, so importing this module never imports pytest; filter
    it with ``-W error::pytest_llmeval.errors.UnusedCheckWarning``.
    """
