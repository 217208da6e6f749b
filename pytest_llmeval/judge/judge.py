"""The object behind the ``judge`` fixture, and the checks of a test's judge configuration.

How a verdict is reached:

1. The grader's template is rendered into one user message whose values are data blocks
   the output under test cannot escape (:mod:`pytest_llmeval.judge.prompt`).
2. The judge model is called at temperature 0 through the same
   :class:`~pytest_llmeval.calls.caller.Caller` as every other call (cached, logged with
   role ``judge``). OpenAI gets a strict JSON-schema ``response_format``; Anthropic a
   forced tool call; other providers plain text.
3. The reply is parsed strictly (:mod:`pytest_llmeval.judge.parsing`); a reply without a
   verdict to trust raises :class:`~pytest_llmeval.errors.JudgeError` (the case is an
   *error*, never a pass and never a silent fail), showing the raw reply.
4. The label's score (from the grader's choices) gives the :class:`Grade`; it passes when
   the score is above 0, or at least ``min_score=`` when that is given.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmeval.errors import ConfigError, JudgeError, ProviderError
from pytest_llmeval.judge.grade import Grade
from pytest_llmeval.judge.graders import GraderRegistry, builtin_registry, check_choices, require_text
from pytest_llmeval.judge.parsing import ReplyProblem, parse_reply, raw_reply
from pytest_llmeval.judge.prompt import build_messages_and_params, check_template, judge_mode, read_template_file
from pytest_llmeval.llm import LLM
from pytest_llmeval.models import Completion, ModelSpec
from pytest_llmeval.recording import record_result
from pytest_llmeval.text import excerpt

if TYPE_CHECKING:
    from pytest_llmeval.calls.caller import Caller
    from pytest_llmeval.marker import EvalMarker

# Grade and GraderRegistry are re-exported: the session and older imports find them here.
__all__ = ["Judge", "Grade", "GraderRegistry", "same_model", "judge_config_errors", "make_judge"]

_RAW_SHOWN = 2000  # characters of a raw reply shown in an error
# A server that rejects a response format: the next way to ask for a verdict. llama.cpp,
# vLLM and Ollama know `json_object` with a schema (a grammar), not `json_schema`.
_FALLBACK = {"json": "json_object", "json_object": "text"}
_FORMAT_NAMES = {"json": "JSON-schema", "json_object": "JSON-object"}


def _check_min_score(min_score: Any, where: str) -> float | None:
    if min_score is None:
        return None
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0.0 <= min_score <= 1.0:
        raise ConfigError(f"{where}: min_score= must be a number from 0 to 1, got {min_score!r}")
    return float(min_score)


class Judge:
    """The grading model bound to the running test; every method returns a :class:`Grade`.

    - ``judge(output, criteria, *, reference=None, input=None)``: rubric, PASS or FAIL.
    - ``judge.closed_qa(output, criteria, *, input=None)``: Y or N.
    - ``judge.factuality(output, expert, *, input=None)``: OpenAI evals' A-E scale, scored.
    - ``judge.classify(output, choices, *, criteria=None)``: one of ``choices`` (label -> score).
    - ``judge.<name>(...)``: a grader registered through ``pytest_llmeval_register_graders``.

    Every grader also takes ``min_score=``. An unusable reply raises :class:`JudgeError`.
    """

    def __init__(
        self,
        caller: Caller,
        spec: ModelSpec,
        *,
        test_id: str | None = None,
        tags: Sequence[str] | None = None,
        graders: GraderRegistry | None = None,
        template_dir: Path | None = None,
        templates: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.test_id = test_id
        self._caller = caller
        self._tags = list(tags or ())
        self._graders = graders if graders is not None else builtin_registry()
        self._template_dir = template_dir
        self._templates = dict(templates or {})  # grader name -> template text (with_template)
        # Generation parameters; temperature 0 unless with_params() says otherwise.
        given = {"temperature": 0} if params is None else params
        self._params = {k: v for k, v in given.items() if v is not None}
        self._llm = LLM(caller, spec, test_id=test_id, tags=self._tags, role="judge", defaults=self._params)

    @property
    def model(self) -> str:
        """The judge model as ``PROVIDER:MODEL``."""
        return str(self.spec)

    def __repr__(self) -> str:
        return f"<judge {self.model}>"

    # -- the built-in graders, dispatched through the registry so a plugin can replace them
    def __call__(
        self,
        output: Any,
        criteria: str,
        *,
        reference: str | None = None,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """Rubric grading: PASS if ``output`` meets ``criteria``, else FAIL."""
        __tracebackhide__ = True
        return self._dispatch("rubric", output, criteria, reference=reference, input=input, min_score=min_score)

    def closed_qa(
        self,
        output: Any,
        criteria: str,
        *,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """Y if the answer to ``input`` meets ``criteria``, else N."""
        __tracebackhide__ = True
        return self._dispatch("closed_qa", output, criteria, input=input, min_score=min_score)

    def factuality(
        self,
        output: Any,
        expert: str,
        *,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """A-E against the ``expert`` answer; passes unless they disagree (D) by default."""
        __tracebackhide__ = True
        return self._dispatch("factuality", output, expert, input=input, min_score=min_score)

    def classify(
        self,
        output: Any,
        choices: Mapping[str, float],
        *,
        criteria: str | None = None,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """One label of ``choices`` (label -> score from 0 to 1); passes when its score is
        above 0, or at least ``min_score``."""
        __tracebackhide__ = True
        return self._dispatch("classify", output, choices, criteria=criteria, input=input, min_score=min_score)

    def __getattr__(self, name: str) -> Callable[..., Grade]:
        # Only reached for names that are not attributes: registered third-party graders.
        graders = self.__dict__.get("_graders")
        if name.startswith("_") or graders is None or name not in graders:
            known = ", ".join(graders.names) if graders is not None else ""
            raise AttributeError(f"judge has no grader {name!r}; registered graders: {known}")
        return functools.partial(self._dispatch, name)

    def _dispatch(self, name: str, output: Any, *args: Any, **kwargs: Any) -> Grade:
        __tracebackhide__ = True
        grader = self._graders.get(name)
        if grader is None:
            raise ConfigError(
                f"{self._where}: no grader {name!r} is registered; registered: {', '.join(self._graders.names)}"
            )
        grade = grader(self, output, *args, **kwargs)
        if not isinstance(grade, Grade):
            raise ConfigError(f"{self._where}: grader {name!r} returned {type(grade).__name__}, not a Grade")
        return grade

    # -- templates --------------------------------------------------------------------
    def with_template(self, grader: str, template: str | os.PathLike[str]) -> Judge:
        """A judge that renders ``grader`` with ``template``: a ``str`` is the template
        text, a path (``pathlib.Path``) a UTF-8 file holding it."""
        if grader not in self._graders:
            raise ConfigError(
                f"{self._where}: with_template({grader!r}): no such grader; registered: {', '.join(self._graders.names)}"
            )
        if isinstance(template, os.PathLike):
            text = read_template_file(Path(template), source=f"with_template({grader!r})", where=self._where)
            source = f"{os.fspath(template)} (with_template)"
        elif isinstance(template, str):
            text, source = template, f"with_template({grader!r})"
        else:
            raise TypeError(f"with_template: template must be a str or a path, got {type(template).__name__}")
        check_template(text, source=source, where=self._where)
        return self._replace(templates={**self._templates, grader: text})

    def with_params(self, **params: Any) -> Judge:
        """A judge sending these generation parameters (``max_tokens=``, ``seed=``...); a
        value of ``None`` removes one, e.g. ``temperature=None`` for models that refuse
        temperature 0. They are part of the cache key like any parameter."""
        refused = sorted(set(params) & {"response_format", "tools", "tool_choice", "messages", "model"})
        if refused:
            raise ConfigError(f"{self._where}: judge.with_params(): {', '.join(refused)} are set by the judge itself")
        return self._replace(params={**self._params, **params})

    def _replace(self, **changes: Any) -> Judge:
        kwargs: dict[str, Any] = {
            "test_id": self.test_id,
            "tags": self._tags,
            "graders": self._graders,
            "template_dir": self._template_dir,
            "templates": self._templates,
            "params": self._params,
        }
        kwargs.update(changes)
        return Judge(self._caller, self.spec, **kwargs)

    def template_for(self, name: str, default: str) -> tuple[str, str]:
        """(text, where it came from) of grader ``name``: ``with_template``, else
        ``<name>.txt`` in the ini ``llmeval_judge_templates`` directory, else ``default``."""
        if name in self._templates:
            return self._templates[name], f"with_template({name!r})"
        if self._template_dir is not None:
            path = self._template_dir / f"{name}.txt"
            if path.is_file():
                return read_template_file(path, source="ini llmeval_judge_templates", where=self._where), str(path)
        return default, f"built-in {name}"

    # -- grading ----------------------------------------------------------------------
    @property
    def _where(self) -> str:
        return self.test_id or "judge"

    def grade(
        self,
        output: Any,
        *,
        name: str,
        template: str,
        choices: Mapping[str, float],
        criteria: str | None = None,
        reference: str | None = None,
        expert: str | None = None,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """Grade ``output`` with ``template`` (the default text; a user override for
        ``name`` wins), offering ``choices`` (label -> score). The building block of every
        grader, built-in or registered."""
        __tracebackhide__ = True
        where = f"{self._where}: judge.{name}()"
        text = require_text(output, "output", where)
        assert text is not None
        labels_scores = check_choices(choices, where)
        min_score = _check_min_score(min_score, where)
        template_text, source = self.template_for(name, template)
        values: dict[str, str | None] = {
            "output": text,
            "input": input,
            "criteria": criteria,
            "reference": reference,
            "expert": expert,
        }
        given = [k for k, v in values.items() if v is not None]
        check_template(template_text, source=source, given=given, where=self._where)
        labels = list(labels_scores)
        mode = self._mode()
        messages, params = build_messages_and_params(self.spec, template_text, values, labels, mode=mode)
        while True:
            try:
                completion = self._llm.chat(messages, **params)
                break
            except ProviderError as exc:
                if mode not in _FALLBACK or not rejects_structured_output(exc):
                    raise
                mode = self._fall_back(mode, exc)
                messages, params = build_messages_and_params(self.spec, template_text, values, labels, mode=mode)
        try:
            parsed = parse_reply(completion, labels, mode=mode)
        except ReplyProblem as problem:
            raise self._error(name, str(problem), completion) from None
        score = labels_scores[parsed.label]
        passed = score >= min_score if min_score is not None else score > 0.0
        result = Grade(
            name=name,
            passed=passed,
            score=score,
            label=parsed.label,
            reasoning=parsed.reasoning,
            raw=parsed.raw,
            judge_model=self.model,
            criteria=criteria,
            reference=reference if reference is not None else expert,
            output=text,
            choices=labels_scores,
            min_score=min_score,
            method=parsed.method,
            cached=completion.cached,
            key=completion.key,
        )
        record_result(result)
        return result

    def _mode(self) -> str:
        """How this judge asks for its verdict: what its server accepted so far in this run."""
        return self._caller.judge_modes.get(str(self.spec)) or judge_mode(self.spec)

    def _fall_back(self, mode: str, exc: ProviderError) -> str:
        """The next way to ask after the server rejected ``mode``; kept for the rest of the
        run (so each judge model falls back once) and said once."""
        nxt = _FALLBACK[mode]
        modes = self._caller.judge_modes
        if modes.get(str(self.spec)) != nxt:
            modes[str(self.spec)] = nxt
            import warnings

            import pytest

            how = {
                "json_object": "a JSON-object response format with the verdict schema",
                "text": "the strict text path (its final VERDICT line decides; anything else is a JudgeError)",
            }[nxt]
            warnings.warn(
                pytest.PytestWarning(
                    f"llmeval: judge {self.model} rejected the {_FORMAT_NAMES[mode]} response format "
                    f"(HTTP {exc.status}); it grades through {how} for the rest of this run"
                ),
                stacklevel=4,
            )
        return nxt

    def _error(self, grader: str, reason: str, completion: Completion) -> JudgeError:
        raw = raw_reply(completion)
        shown = excerpt(raw, _RAW_SHOWN)
        lines = [
            f"{self._where}: judge {self.model} ({grader}) gave no usable verdict: {reason}.",
            f"Raw reply (finish_reason={completion.finish_reason}): {shown!r}",
        ]
        if completion.key:
            origin = "replayed from" if completion.cached else "stored in"
            lines.append(
                f"The reply was {origin} the cache (key {completion.key[:19]}...); "
                "rerun with --llmeval-cache=refresh to ask the judge again."
            )
        return JudgeError("\n".join(lines), raw=raw, grader=grader, judge_model=self.model)


# --------------------------------------------------------------------------- pytest glue


def rejects_structured_output(exc: ProviderError) -> bool:
    """Whether ``exc`` is a server refusing the ``response_format`` it was sent: a 4xx, or
    a 5xx some servers send for it (llama-cpp-python's answers 500 to ``json_schema``)."""
    if exc.status is None or exc.status < 400 or exc.status in (401, 403, 404, 408, 409, 429):
        return False
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text


def same_model(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two specs name the same model (the base URL aside: one model behind two
    servers is still one model grading itself)."""
    return a.provider == b.provider and a.name == b.name


def _self_judging(where: str, judge: ModelSpec, model: ModelSpec) -> str:
    return (
        f"{where}: the judge {judge} is also a model under test ({model}), so it would grade its own "
        "answers; use another judge, or allow it with --llmeval-allow-self-judge "
        "(ini llmeval_allow_self_judge = true)"
    )


def judge_config_errors(session: Any, marker: EvalMarker | None, where: str, models: Sequence[ModelSpec]) -> list[str]:
    """Collection-time problems of a test that uses ``judge``: no judge configured, an
    unknown provider, the judge also being a model under test (without the opt-in), a
    template file named after no grader."""
    spec = session.judge_for(marker)
    if spec is None:
        return [
            f"{where} uses the judge fixture but no judge model is configured: pass --llmeval-judge "
            "PROVIDER:MODEL (e.g. openai:gpt-4o), set llmeval_judge in the ini file, or use "
            "@pytest.mark.llmeval(judge='PROVIDER:MODEL')"
        ]
    errors: list[str] = []
    try:
        session.registry.validate(spec, source=f"{where} judge")
    except ConfigError as exc:
        errors.append(str(exc))
    if not getattr(session.settings, "allow_self_judge", False):
        errors.extend(_self_judging(where, spec, model) for model in models if same_model(model, spec))
    template_dir = getattr(session.settings, "judge_templates", None)
    graders = getattr(session, "graders", None)
    if template_dir is not None and graders is not None:
        for path in sorted(Path(template_dir).glob("*.txt")):
            if path.stem not in graders:
                errors.append(
                    f"ini option llmeval_judge_templates: {path} is named after no grader; "
                    f"expected one of {', '.join(f'{n}.txt' for n in graders.names)}"
                )
    return errors


def make_judge(session: Any, test_id: str, marker: EvalMarker | None, under_test: ModelSpec | None) -> Judge:
    """The ``judge`` fixture's value for one test (the collection checks, repeated here for
    a judge requested in a way collection could not see)."""
    spec = session.judge_for(marker)
    if spec is None:
        raise ConfigError(judge_config_errors(session, marker, test_id, ())[0])
    if (
        under_test is not None
        and same_model(under_test, spec)
        and not getattr(session.settings, "allow_self_judge", False)
    ):
        raise ConfigError(_self_judging(test_id, spec, under_test))
    return Judge(
        session.caller,
        spec,
        test_id=test_id,
        tags=marker.tags if marker else (),
        graders=getattr(session, "graders", None),
        template_dir=getattr(session.settings, "judge_templates", None),
    )
