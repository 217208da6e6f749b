"""The state of one pytest run, registered as a plugin by ``pytest_configure``.

:class:`EvalSession` holds the settings, the provider registry and the caller; during
collection it parametrizes eval tests by model and sample and raises configuration mistakes
as one usage error; while tests run it opens a per-case record around each call, turns each
report into a case result and hands them to the gate at the end. The planning pass
(:class:`~pytest_llmeval.planning.planner.Planner`) is its own plugin; the session only asks
it whether a planning run is in progress.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval.calls.caller import Caller
from pytest_llmeval.calls.registry import ProviderRegistry
from pytest_llmeval.calls.retry import RetryPolicy
from pytest_llmeval.errors import ConfigError, LLMEvalError, MissingKeyError
from pytest_llmeval.gate.gate import RunGate
from pytest_llmeval.keys import CASE_KEY, MODEL_ARG, SAMPLE_ARG, CaseInfo
from pytest_llmeval.marker import EvalMarker
from pytest_llmeval.models import ModelSpec
from pytest_llmeval.recording import CaseRecord, reset_current, set_current
from pytest_llmeval.settings import Settings
from pytest_llmeval.store import redaction

if TYPE_CHECKING:
    from pytest_llmeval.intercept.hooks import InterceptHooks
    from pytest_llmeval.judge import GraderRegistry
    from pytest_llmeval.planning.planner import Planner

__all__ = ["EvalSession"]


class EvalSession:
    """State of one pytest run: settings, providers, the caller, collected case results."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.registry = ProviderRegistry()
        # Historic: providers registered by conftest files loaded later still get the call.
        config.hook.pytest_llmeval_register_providers.call_historic(kwargs={"register": self.registry.register})
        self._graders: GraderRegistry | None = None
        workerinput = getattr(config, "workerinput", None)
        self.run_id: str = (workerinput or {}).get("llmeval_run_id") or os.urandom(16).hex()
        self.caller = Caller(
            registry=self.registry,
            store_path=settings.cache_path,
            mode=settings.cache_mode,
            timeout_s=settings.timeout_s,
            retry=RetryPolicy(max_retries=settings.retries, timeout_s=settings.timeout_s),
            run_id=self.run_id,
            run_args=list(config.invocation_params.args),
            prices=settings.prices,
            max_cost=settings.max_cost,
            concurrency=settings.concurrency,
        )
        self.planner: Planner | None = None  # registered once evals are collected (see _start_planner)
        # Keys inside model URLs: every redaction of this process replaces them from now on.
        self._secrets: set[str] = set()
        self._remember_models([*settings.cli_models, *settings.ini_models, settings.cli_judge, settings.ini_judge])
        self._missing_keys: dict[str, str] = {}  # model -> the one-line message, said once
        self.config_errors: list[str] = []
        self.cases: list[dict[str, Any]] = []
        self.gate = RunGate(config, settings)  # reads --llmeval-baseline now: a bad file is a usage error
        if config.pluginmanager.hasplugin("xdist"):
            from pytest_llmeval.xdist import XdistHooks

            config.pluginmanager.register(XdistHooks(self), "llmeval-xdist")
        self.intercept: InterceptHooks | None = None
        keyless = not (os.environ.get("OPENAI_API_KEY") and os.environ.get("ANTHROPIC_API_KEY"))
        if settings.intercept or (settings.cache_mode == "replay" and keyless):
            # Before collection: an app's module-level SDK client is made when its tests import it.
            self._start_intercept()

    def _start_intercept(self) -> None:
        """Serve the SDK calls of intercepting evals (issue 13); only runs that may intercept pay its import."""
        if self.intercept is not None:
            return
        from pytest_llmeval.intercept.hooks import InterceptHooks

        self.intercept = InterceptHooks(self.caller, default=self.settings.intercept)
        mode = self.settings.cache_mode
        if mode == "replay" or (mode == "use" and self.settings.intercept):
            self.intercept.interceptor.supply_placeholder_keys()
        self.config.pluginmanager.register(self.intercept, "llmeval-intercept")

    @property
    def planning(self) -> bool:
        """Whether a test body is running for planning now: nothing of it is reported."""
        return self.planner is not None and self.planner.running

    @property
    def graders(self) -> GraderRegistry:
        """Graders by name, made on first use: a run without judged evals never imports the judge."""
        if self._graders is None:
            from pytest_llmeval.judge import graders as builtin_graders

            pluginmanager = self.config.pluginmanager
            if not pluginmanager.is_registered(builtin_graders):
                pluginmanager.register(builtin_graders, "llmeval-builtin-graders")
            self._graders = builtin_graders.GraderRegistry()
            # Historic: graders of plugins registered later still reach the registry.
            self.config.hook.pytest_llmeval_register_graders.call_historic(kwargs={"register": self._graders.register})
        return self._graders

    def close(self) -> None:
        if self.intercept is not None:
            self.intercept.close()
            if self.config.pluginmanager.is_registered(self.intercept):
                self.config.pluginmanager.unregister(self.intercept)
        if self.planner is not None:
            self.planner.close()
        self.caller.close()
        if self.planner is not None and self.config.pluginmanager.is_registered(self.planner):
            self.config.pluginmanager.unregister(self.planner)
        redaction.forget(*self._secrets)

    def _remember_models(self, models: Iterable[ModelSpec | None]) -> None:
        found = {secret for spec in models if spec is not None for secret in spec.secrets}
        if found - self._secrets:
            self._secrets |= found
            redaction.remember(*found)

    # -- model resolution -----------------------------------------------------------------
    def models_for(self, marker: EvalMarker | None) -> tuple[ModelSpec, ...]:
        """Models under test: CLI, else the marker's ``models=``, else the ini option."""
        return self.settings.cli_models or (marker.models if marker else ()) or self.settings.ini_models

    def judge_for(self, marker: EvalMarker | None) -> ModelSpec | None:
        """The judge model: CLI, else the marker's ``judge=``, else the ini option."""
        return self.settings.cli_judge or (marker.judge if marker else None) or self.settings.ini_judge

    def repeat_for(self, marker: EvalMarker | None) -> int:
        return self.settings.repeat or (marker.repeat if marker else 1)

    def threshold_for(self, marker: EvalMarker | None) -> float:
        if self.settings.min_pass_rate is not None:
            return self.settings.min_pass_rate
        return marker.min_pass_rate if marker else 1.0

    # -- collection -----------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        where = metafunc.definition.nodeid
        try:
            marker = EvalMarker.from_node(metafunc.definition, where)
        except ConfigError as exc:
            self.config_errors.append(str(exc))
            return
        self._remember_models([*self.models_for(marker), self.judge_for(marker)])
        if "judge" in metafunc.fixturenames:
            under_test = self.models_for(marker) if "llm" in metafunc.fixturenames else ()
            from pytest_llmeval.judge.judge import judge_config_errors

            self.config_errors.extend(judge_config_errors(self, marker, where, under_test))
        if "llm" in metafunc.fixturenames:
            models = self.models_for(marker)
            if not models:
                self.config_errors.append(
                    f"{where} uses the llm fixture but no model is configured: pass "
                    "--llmeval-model PROVIDER:MODEL (e.g. openai:gpt-4o-mini), set llmeval_models "
                    "in the ini file, or use @pytest.mark.llmeval(models=[...])"
                )
                return
            for spec in models:
                try:
                    self.registry.validate(spec, source=where)
                except ConfigError as exc:
                    self.config_errors.append(str(exc))
                    return
            names = [str(m) for m in models]
            # The id (and so the node id, which pytest writes to its cache, the terminal
            # and every report) never carries a key that sits inside a model URL.
            redactor = redaction.current()
            metafunc.parametrize(MODEL_ARG, names, ids=[redactor.redact(n) for n in names])
        repeat = self.repeat_for(marker)
        if repeat > 1 and SAMPLE_ARG in metafunc.fixturenames:
            metafunc.parametrize(SAMPLE_ARG, range(repeat), ids=[f"sample{i}" for i in range(repeat)])

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        for item in items:
            if not _is_eval_item(item):
                continue
            try:
                marker = EvalMarker.from_node(item, item.nodeid)
            except ConfigError as exc:
                if str(exc) not in self.config_errors:
                    self.config_errors.append(str(exc))
                continue
            params = getattr(getattr(item, "callspec", None), "params", {})
            model = ModelSpec.parse(params[MODEL_ARG]) if MODEL_ARG in params else None
            item.stash[CASE_KEY] = CaseInfo(
                eval_id=_eval_id(item),
                model=model,
                sample=int(params.get(SAMPLE_ARG, 0)),
                marker=marker,
            )
        if self.config_errors:
            unique = list(dict.fromkeys(self.config_errors))
            raise pytest.UsageError("pytest-llmeval configuration error(s):\n  " + "\n  ".join(unique))
        if self.intercept is None and any(
            info is not None and info.marker is not None and info.marker.intercept
            for info in (item.stash.get(CASE_KEY, None) for item in items)
        ):
            self._start_intercept()
        if self.planner is None and any(CASE_KEY in item.stash for item in items):
            self._start_planner()

    def _start_planner(self) -> None:
        """Register the planning pass (--llmeval-concurrency); only runs with evals pay its import."""
        settings = self.settings
        # Batch mode needs the planning pass (it collects the calls to batch), on xdist workers too.
        batch = settings.batch and settings.cache_mode != "replay"
        if not batch and (
            settings.concurrency <= 0 or settings.cache_mode == "replay" or hasattr(self.config, "workerinput")
        ):
            return
        from pytest_llmeval.planning.planner import Planner

        self.planner = Planner(
            self.config,
            self.caller,
            concurrency=max(1, settings.concurrency),
            batch_wait_s=settings.batch_wait_s if batch else None,
        )
        self.config.pluginmanager.register(self.planner, "llmeval-planner")

    # -- running --------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        info = item.stash.get(CASE_KEY, None)
        if info is None:
            return (yield)
        record = CaseRecord(nodeid=item.nodeid, model=str(info.model) if info.model else None, sample=info.sample)
        if not self.planning:  # a planning run's checks and calls are thrown away
            info.record = record
        token = set_current(record)
        try:
            return (yield)
        finally:
            reset_current(token)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        info = item.stash.get(CASE_KEY, None)
        if info is None or self.planning:
            return report
        self._clean_report(item, report, call)
        if report.skipped:
            return report
        # One outcome per case: from the call phase, or from setup when setup broke.
        if report.when == "call" or (report.when == "setup" and report.failed):
            outcome = _classify(report, call)
            data = self.case_data(item, info, outcome, call)
            data["duration_s"] = round(report.duration, 6)
            report.llmeval = data  # plain data: travels to the xdist controller with the report
            if self.settings.junit_properties:
                item.user_properties.extend(
                    [
                        ("llmeval.model", data["model"] or ""),
                        ("llmeval.outcome", outcome),
                        ("llmeval.passed", "true" if outcome == "passed" else "false"),
                        ("llmeval.score", f"{data['score']:.4g}"),
                    ]
                )
        return report

    def case_data(self, item: pytest.Item, info: CaseInfo, outcome: str, call: pytest.CallInfo[None]) -> dict[str, Any]:
        """The JSON-safe result of one case, as reports and the gate use it."""
        record = info.record
        scores = [float(getattr(r, "score", float(bool(r)))) for r in record.results]
        if scores:
            score = sum(scores) / len(scores)
        else:
            score = 1.0 if outcome == "passed" else 0.0
        error = None
        if outcome == "error" and call.excinfo is not None:
            error = f"{call.excinfo.typename}: {call.excinfo.value}"
        # The results document feeds every report: no secret gets past this point, whether
        # a model repeated it, a prompt held it or an error echoed it.
        return redaction.current().redact_data(
            {
                "eval": info.eval_id,
                "nodeid": item.nodeid,
                "model": str(info.model) if info.model else None,
                "sample": info.sample,
                "outcome": outcome,
                "score": score,
                "threshold": self.threshold_for(info.marker),
                "tags": list(info.marker.tags) if info.marker else [],
                "results": [_result_dict(r) for r in record.results],
                "calls": [vars(c).copy() for c in record.calls],
                "output": record.output,
                "prompt": record.prompt,
                "error": error,
            }
        )

    def _clean_report(self, item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
        """What pytest shows and writes of an eval item: a short message for the plugin's own
        errors (cause and fix, the test's line, none of the plugin's frames), and no secret
        in the traceback, the captured output or the ``user_properties``."""
        excinfo = call.excinfo
        if report.failed and excinfo is not None and isinstance(excinfo.value, LLMEvalError):
            if not self._wants_full_traceback():
                report.longrepr = _short_repr(excinfo)
        redactor = redaction.current()
        if report.longrepr is not None and not isinstance(report.longrepr, tuple):
            text = str(report.longrepr)
            clean = redactor.redact(text)
            if clean != text:
                report.longrepr = clean
        report.sections = [(title, redactor.redact(content)) for title, content in report.sections]
        for props in (item.user_properties, report.user_properties):
            props[:] = [(redactor.redact(str(k)), redactor.redact_data(v)) for k, v in props]

    def _wants_full_traceback(self) -> bool:
        option = self.config.option
        return bool(getattr(option, "fulltrace", False)) or getattr(option, "tbstyle", "auto") in ("long", "native")

    def _say_missing_key(self, message: str) -> None:
        """Write a missing key's message to the terminal once per model, at its first case."""
        model = message.split(": ", 1)[0]
        if model in self._missing_keys:
            return
        self._missing_keys[model] = message
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"pytest-llmeval: {message}", yellow=True, bold=True)

    # trylast: after pytest's junitxml has written this report (see the error marking below).
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.planning:  # planning runs log nothing; guard against plugins that log anyway
            return
        data = getattr(report, "llmeval", None)
        if data is not None:
            self.cases.append(data)
            error = data.get("error") or ""
            if error.startswith(_MISSING_KEY):  # a string: under xdist it comes from a worker
                self._say_missing_key(error[len(_MISSING_KEY) :])
            if data["outcome"] == "error" and report.when == "call" and report.failed:
                # A broken judge or provider is no wrong answer: pytest's --junitxml shows
                # it as an <error>, as the gate and --llmeval-report count it.
                from pytest_llmeval.planning._pytest_internals import junitxml_failure_to_error

                junitxml_failure_to_error(self.config, report)
        self.gate.note_report(report)

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Iterator[None]:
        if self.caller.store_opened:
            for case in self.cases:
                self.caller.store.record_outcome(
                    self.run_id, case["nodeid"], case["model"], case["sample"], case["outcome"], case["score"]
                )
        # Before pytest's own summary: decides the exit status and writes the reports.
        self.gate.finish(session, self.cases, self.caller.stats, self.run_id)
        yield

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        self.gate.terminal_summary(terminalreporter)


_MISSING_KEY = MissingKeyError.__name__ + ": "


def _is_eval_item(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return "llm" in names or "judge" in names or item.get_closest_marker("llmeval") is not None


def _eval_id(item: pytest.Item) -> str:
    """The eval a case belongs to: its test function's node id without parameters."""
    nodeid = item.nodeid
    return nodeid.split("[", 1)[0]


def _classify(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    """passed / failed / error. Errors are failures of the machinery, never of the model:
    a provider, cache, judge or budget error, or a broken fixture."""
    if report.passed:
        return "passed"
    if report.when != "call":
        return "error"
    excinfo = call.excinfo
    if excinfo is not None and isinstance(excinfo.value, LLMEvalError):
        return "error"
    return "failed"


def _result_dict(result: Any) -> dict[str, Any]:
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return {"name": type(result).__name__, "passed": bool(result)}


def _short_repr(excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
    """The failure of a plugin error as pytest's short style, without the plugin's frames
    (nor those of the SDKs it calls): the test's own lines, then the message."""
    hidden = _hidden_dirs()
    entries = [e for e in excinfo.traceback if not str(e.path).startswith(hidden)]
    short = pytest.ExceptionInfo.from_exc_info((excinfo.type, excinfo.value, excinfo.tb))
    short.traceback = type(excinfo.traceback)(entries or list(excinfo.traceback)[-1:])
    return short.getrepr(style="short", chain=False)


def _hidden_dirs() -> tuple[str, ...]:
    import sys
    from pathlib import Path

    dirs = [str(Path(__file__).resolve().parent) + os.sep]
    for name in ("_pytest", "pluggy", "openai", "anthropic", "httpx", "httpcore"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            dirs.append(str(Path(path).resolve().parent) + os.sep)
    return tuple(dirs)
