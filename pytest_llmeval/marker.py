"""The ``llmeval`` marker: its arguments, validated into a :class:`ConfigError`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.models import ModelSpec

__all__ = ["EvalMarker", "MARKER_HELP"]

MARKER_HELP = (
    "llmeval(models=None, min_pass_rate=1.0, repeat=1, judge=None, tags=None, intercept=None, route=None): "
    "group the cases of this test into one LLM eval, gated on its pass rate per model; "
    "intercept=True serves the openai/anthropic SDK calls of the code under test"
)
_ALLOWED = ("models", "min_pass_rate", "repeat", "judge", "tags", "intercept", "route")


@dataclass(frozen=True)
class EvalMarker:
    """The validated arguments of ``@pytest.mark.llmeval``.

    ``intercept`` is ``None`` when the marker does not say (the ini option
    ``llmeval_intercept`` decides); ``route`` names the app's model names that the model
    under test replaces (empty: all of them).
    """

    models: tuple[ModelSpec, ...] = ()
    min_pass_rate: float = 1.0
    repeat: int = 1
    judge: ModelSpec | None = None
    tags: tuple[str, ...] = ()
    intercept: bool | None = None
    route: tuple[str, ...] = ()

    @classmethod
    def from_node(cls, node: pytest.Item | Any, where: str) -> EvalMarker | None:
        """The marker closest to ``node``, validated; ``None`` when not marked."""
        mark = node.get_closest_marker("llmeval")
        if mark is None:
            return None
        return cls.from_mark(mark, where)

    @classmethod
    def from_mark(cls, mark: pytest.Mark, where: str) -> EvalMarker:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"{where}: @pytest.mark.llmeval {what}")

        if mark.args:
            raise bad(f"takes keyword arguments only ({', '.join(_ALLOWED)}), got positional {mark.args!r}")
        unknown = sorted(set(mark.kwargs) - set(_ALLOWED))
        if unknown:
            raise bad(f"got unknown argument(s) {', '.join(unknown)}; valid: {', '.join(_ALLOWED)}")
        kw = mark.kwargs
        models_arg = kw.get("models")
        if models_arg is None:
            models: tuple[ModelSpec, ...] = ()
        else:
            if isinstance(models_arg, str):
                models_arg = [models_arg]
            if not isinstance(models_arg, (list, tuple)) or not models_arg:
                raise bad(f"models= must be a non-empty list of 'PROVIDER:MODEL' strings, got {models_arg!r}")
            models = tuple(ModelSpec.parse(m, source=f"{where} marker models=") for m in models_arg)
        rate = kw.get("min_pass_rate", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise bad(f"min_pass_rate= must be a number from 0 to 1, got {rate!r}")
        repeat = kw.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise bad(f"repeat= must be a whole number of at least 1, got {repeat!r}")
        judge_arg = kw.get("judge")
        if judge_arg is not None and not isinstance(judge_arg, str):
            raise bad(f"judge= must be a 'PROVIDER:MODEL' string, got {judge_arg!r}")
        judge = ModelSpec.parse(judge_arg, source=f"{where} marker judge=") if judge_arg else None
        tags_arg = kw.get("tags") or ()
        if isinstance(tags_arg, str):
            tags_arg = (tags_arg,)
        if not isinstance(tags_arg, (list, tuple)) or not all(isinstance(t, str) for t in tags_arg):
            raise bad(f"tags= must be a list of strings, got {tags_arg!r}")
        intercept = kw.get("intercept")
        if intercept is not None and not isinstance(intercept, bool):
            raise bad(f"intercept= must be True or False, got {intercept!r}")
        route_arg = kw.get("route") or ()
        if isinstance(route_arg, str):
            route_arg = (route_arg,)
        if not isinstance(route_arg, (list, tuple)) or not all(isinstance(r, str) and r for r in route_arg):
            raise bad(f"route= must be a model name or a list of model names (e.g. 'gpt-4o'), got {route_arg!r}")
        if route_arg and intercept is False:
            raise bad("route= only applies with intercept=True")
        return cls(models, float(rate), repeat, judge, tuple(tags_arg), intercept, tuple(route_arg))
