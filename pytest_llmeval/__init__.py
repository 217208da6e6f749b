"""pytest-llmeval: LLM evals as ordinary pytest tests.

Importing this package is cheap: no provider SDK is imported until a model is called.
"""

from __future__ import annotations

from .cases import cases, load_cases
from .checks import CheckResult, exact, includes, is_json, jsonpath, regex
from .errors import BudgetExceededError, CacheMissError, ConfigError, JudgeError, LLMEvalError, ProviderError
from .judge import Grade, Judge
from .models import Completion, ModelSpec, Usage

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
