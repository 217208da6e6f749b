"""pytest-llmeval: LLM evals as ordinary pytest tests.

Importing this package is cheap: no provider SDK is imported until a model is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Eager and cheap (no pytest, no SDK): the function everyone's parametrize line calls.
from pytest_llmeval.casefiles import cases, load_cases

if TYPE_CHECKING:
    from pytest_llmeval.checks import CheckResult, exact, includes, is_json, jsonpath, regex
    from pytest_llmeval.errors import (
        BudgetExceededError,
        CacheMissError,
        ConfigError,
        JudgeError,
        LLMEvalError,
        ProviderError,
    )
    from pytest_llmeval.gate.results import BaselineSection, CaseEntry, EvalEntry, EvalResult, ResultsDocument
    from pytest_llmeval.judge.grade import Grade
    from pytest_llmeval.judge.judge import Judge
    from pytest_llmeval.llm import LLM
    from pytest_llmeval.models import Completion, ModelSpec, Request, StoredCompletion, Usage
    from pytest_llmeval.providers.base import Provider, ProviderFactory

# Public name -> module. Resolved on first use (PEP 562): pytest imports this package for
# every run of a project that installs the plugin, evals or not, so it must cost nothing.
_EXPORTS = {
    "CheckResult": "checks",
    "exact": "checks",
    "includes": "checks",
    "regex": "checks",
    "is_json": "checks",
    "jsonpath": "checks",
    "Completion": "models",
    "ModelSpec": "models",
    "Usage": "models",
    "Request": "models",
    "StoredCompletion": "models",
    "Provider": "providers.base",
    "ProviderFactory": "providers.base",
    "LLM": "llm",
    "EvalResult": "gate.results",
    "ResultsDocument": "gate.results",
    "EvalEntry": "gate.results",
    "CaseEntry": "gate.results",
    "BaselineSection": "gate.results",
    "LLMEvalError": "errors",
    "ConfigError": "errors",
    "ProviderError": "errors",
    "CacheMissError": "errors",
    "BudgetExceededError": "errors",
    "JudgeError": "errors",
    "Grade": "judge.grade",
    "Judge": "judge.judge",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_llmeval' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "cases",
    "load_cases",
    "CheckResult",
    "exact",
    "includes",
    "regex",
    "is_json",
    "jsonpath",
    "Completion",
    "ModelSpec",
    "Usage",
    "Request",
    "StoredCompletion",
    "Provider",
    "ProviderFactory",
    "LLM",
    "EvalResult",
    "ResultsDocument",
    "EvalEntry",
    "CaseEntry",
    "BaselineSection",
    "LLMEvalError",
    "ConfigError",
    "ProviderError",
    "CacheMissError",
    "BudgetExceededError",
    "JudgeError",
    "Grade",
    "Judge",
]

__version__ = "0.1.0"
