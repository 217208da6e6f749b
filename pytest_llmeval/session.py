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
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval.errors import ConfigError, LLMEvalError, MissingKeyError, UnusedCheckWarning
from pytest_llmeval.keys import CASE_KEY, LLM_ARG, CaseInfo
from pytest_llmeval.marker import EvalMarker
from pytest_llmeval.models import ModelSpec
from pytest_llmeval.recording import CaseRecord, reset_current, set_current
from pytest_llmeval.settings import Settings
from pytest_llmeval.store import redaction
from pytest_llmeval.text import short_repr

if TYPE_CHECKING:
    from pytest_llmeval.calls.caller import Caller
    from pytest_llmeval.calls.registry import ProviderRegistry
    from pytest_llmeval.gate.gate import RunGate
    from pytest_llmeval.intercept.hooks import InterceptHooks
    from pytest_llmeval.judge import GraderRegistry
    from pytest_llmeval.planning.planner import Planner

__all__ = ["EvalSession"]


class EvalSession:
    """State of one pytest run: settings, providers, the caller, collected case results."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        # The registry, the caller and the gate are made on first use: a run that collects
        # no eval never imports them (startup, issue 12).
        self._registry: ProviderRegistry | None = None
        self._caller: Caller | None = None
        self._gate: RunGate | None = None
        self._graders: GraderRegistry | None = None
        workerinput = getattr(config, "workerinput", None)
        self.run_id: str = (workerinput or {}).get("llmeval_run_id") or os.urandom(16).hex()
        # Under pytest-xdist each worker gets its share of the run's concurrency and budget,
        # so -n N keeps the calls in flight and the spend of the whole run under its limits.
        workers = max(1, int((workerinput or {}).get("workercount") or 1))
        #: This process's calls in flight (its share under xdist).
        self.concurrency = settings.concurrency and max(1, settings.concurrency // workers)
        self._max_cost = settings.max_cost / workers if settings.max_cost is not None else None
        if settings.recordings is not None and workerinput is None:
            # Before any call: under xdist the controller imports once for all workers.
            import_recordings(settings.recordings, settings.cache_path, settings.cache_mode)
        self.planner: Planner | None = None  # registered once evals are collected (see _start_planner)
        # Keys inside model URLs: every redaction of this process replaces them from now on.
        self._secrets: set[str] = set()
        self._remember_models([*settings.cli_models, *settings.ini_models, settings.cli_judge, settings.ini_judge])
        self._missing_keys: dict[str, str] = {}  # model -> the one-line message, said once
        #: Why a process's store was read-only or in memory (xdist workers' included).
        self.store_problems: list[str] = []
        self.config_errors: list[str] = []
        self.cases: list[dict[str, Any]] = []
        self._first_attempts: dict[tuple[str, str | None, int], dict[str, Any]] = {}
        self._latest_attempts: dict[tuple[str, str | None, int], dict[str, Any]] = {}
        self._deselected: Counter[tuple[str, str | None]] = Counter()
        #: Collected eval items per (eval, model, count), from an xdist worker (xdist.py).
        self.worker_collected: list[tuple[str, str | None, int]] | None = None
        if settings.baseline_path is not None:
            self.gate  # noqa: B018 - reads --llmeval-baseline now: a bad file is a usage error
        if config.pluginmanager.hasplugin("xdist"):
            from pytest_llmeval.xdist import XdistHooks

            config.pluginmanager.register(XdistHooks(self), "llmeval-xdist")
        self.intercept: InterceptHooks | None = None
        keyless = not (os.environ.get("OPENAI_API_KEY") and os.environ.get("ANTHROPIC_API_KEY"))
        if settings.intercept or (settings.cache_mode == "replay" and keyless):
            # Before collection: an app's module-level SDK client is made when its tests import it.
            self._start_intercept()

    @property
    def registry(self) -> ProviderRegistry:
        """Provider factories by name (the built-in ones and those of plugins and conftest files)."""
        if self._registry is None:
            from pytest_llmeval.calls.registry import ProviderRegistry

            self._registry = ProviderRegistry()
            # Historic: providers registered by conftest files loaded later still get the call.
            self.config.hook.pytest_llmeval_register_providers.call_historic(
                kwargs={"register": self._registry.register}
            )
        return self._registry

    @property
    def caller(self) -> Caller:
        """The run's one way to a model: cache, call log, retries, limits, budget."""
        if self._caller is None:
            from pytest_llmeval.calls.caller import Caller
            from pytest_llmeval.calls.retry import RetryPolicy

            settings = self.settings
            self._caller = Caller(
                registry=self.registry,
                store_path=settings.cache_path,
                mode=settings.cache_mode,
                timeout_s=settings.timeout_s,
                retry=RetryPolicy(max_retries=settings.retries, timeout_s=settings.timeout_s),
                run_id=self.run_id,
                run_args=list(self.config.invocation_params.args),
                prices=settings.prices,
                max_cost=self._max_cost,
                concurrency=self.concurrency,
            )
        return self._caller

    @property
    def gate(self) -> RunGate:
        """Outcomes to pass rates, the verdict, the exit status and the reports."""
        if self._gate is None:
            from pytest_llmeval.gate.gate import RunGate

            self._gate = RunGate(self.config, self.settings)
        return self._gate

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
        if self._caller is not None:
            self._caller.close()
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
            ids = [m.display for m in models]
            clashes = sorted({i for i in ids if ids.count(i) > 1})
            if clashes:
                self.config_errors.append(
                    f"{where}: two models under test share the name {', '.join(map(repr, clashes))} in test ids; "
                    "give them distinct labels (LABEL=PROVIDER:MODEL)"
                )
                return
            # The value keeps the label, so the fixture parses back the same spec. The id
            # (and so the node id, which pytest writes to its cache, the terminal and every
            # report) never carries a key that sits inside a model URL.
            redactor = redaction.current()
            repeat = self.repeat_for(marker)
            # `llm` itself is parametrized (indirectly) by (model, sample): one fixture per
            # test instead of three. The ids are those two parametrizations gave, in the same
            # order ("MODEL-sampleN"), because baselines and --lf match on them.
            samples = range(repeat) if repeat > 1 else (None,)
            values = [(m.spec_text, sample or 0) for m in models for sample in samples]
            param_ids = [
                redactor.redact(i) + (f"-sample{sample}" if sample is not None else "")
                for i in ids
                for sample in samples
            ]
            metafunc.parametrize(LLM_ARG, values, ids=param_ids, indirect=True)

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
            name, sample = params.get(LLM_ARG) or (None, 0)
            item.stash[CASE_KEY] = CaseInfo(
                eval_id=_eval_id(item),
                model=ModelSpec.parse(name) if name is not None else None,
                sample=int(sample),
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
        if not batch and (self.concurrency <= 0 or settings.cache_mode == "replay"):
            return
        from pytest_llmeval.planning.planner import Planner

        self.planner = Planner(
            self.config,
            self.caller,
            concurrency=max(1, self.concurrency),
            batch_wait_s=settings.batch_wait_s if batch else None,
        )
        self.config.pluginmanager.register(self.planner, "llmeval-planner")

    # -- running --------------------------------------------------------------------------
    # One record per attempt of a case, open from setup to teardown: calls made in fixtures
    # count in the eval's tokens, cost and latency like the test body's own.
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        info = item.stash.get(CASE_KEY, None)
        if info is None:
            return (yield)
        model = info.model.display if info.model else None
        record = CaseRecord(nodeid=item.nodeid, model=model, sample=info.sample)
        item.stash[_ATTEMPT] = _Attempt(record)
        if not self.planning:  # a planning run's checks and calls are thrown away
            info.record = record
        with _current(record):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        attempt = item.stash.get(_ATTEMPT, None)
        if attempt is None:
            return (yield)
        with _current(attempt.record):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        attempt = item.stash.get(_ATTEMPT, None)
        if attempt is None:
            return (yield)
        with _current(attempt.record):
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        report = yield
        info = item.stash.get(CASE_KEY, None)
        attempt = item.stash.get(_ATTEMPT, None)
        if info is None or attempt is None or self.planning:
            return report
        self._clean_report(item, report, call)
        if report.skipped and report.when != "teardown":
            attempt.skipped = True
            return report
        report.llmeval_case = True  # plain data: travels to the xdist controller with the report
        # One outcome per case: from the call phase, or from setup when setup broke. Calls
        # made in fixture teardown come after, with the teardown report (see logreport).
        if report.when == "call" or (report.when == "setup" and report.failed):
            _warn_unused_checks(item, attempt.record)
            outcome = _classify(report, call, attempt.record)
            attempt.outcome = outcome
            error = _error_text(call.excinfo) if outcome == "error" and call.excinfo is not None else None
            data = self.case_data(item, info, outcome, error)
            data["duration_s"] = round(report.duration, 6)
            attempt.calls_reported = len(attempt.record.calls)
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
        elif report.when == "teardown" and attempt.outcome is not None and not attempt.skipped:
            later = attempt.record.calls[attempt.calls_reported :]
            if later or report.failed:
                report.llmeval_teardown = redaction.current().redact_data(
                    {
                        "nodeid": item.nodeid,
                        "model": info.model.display if info.model else None,
                        "sample": info.sample,
                        "calls": [vars(c).copy() for c in later],
                        # A fixture that broke in teardown: the machinery failed, not the model.
                        "error": (_error_text(call.excinfo) if call.excinfo is not None else "teardown failed")
                        if report.failed
                        else None,
                    }
                )
        return report

    def case_data(self, item: pytest.Item, info: CaseInfo, outcome: str, error: str | None) -> dict[str, Any]:
        """The JSON-safe result of one case, as reports and the gate use it."""
        record = info.record
        # The results document feeds every report: no secret gets past this point, whether
        # a model repeated it, a prompt held it or an error echoed it.
        return redaction.current().redact_data(
            {
                "eval": info.eval_id,
                "nodeid": item.nodeid,
                "model": info.model.display if info.model else None,
                "model_spec": str(info.model) if info.model else None,
                "sample": info.sample,
                "outcome": outcome,
                "score": _score(record, outcome),
                "threshold": self.threshold_for(info.marker),
                "tags": list(info.marker.tags) if info.marker else [],
                "results": [_result_dict(r) for r in record.results],
                "calls": [vars(c).copy() for c in record.calls],
                "output": record.output,
                "prompt": record.prompt,
                "error": error if outcome == "error" else None,
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
        text = None if report.longrepr is None or isinstance(report.longrepr, tuple) else str(report.longrepr)
        # One check of everything the report carries first: nearly every report has nothing
        # to redact, and three reports a case made this a cost per case (issue 17).
        strings = [text or "", *(content for _, content in report.sections)]
        for name, value in (*item.user_properties, *report.user_properties):
            strings.append(str(name))
            redaction.strings_in(value, strings)
        if not redactor.may_hold("\0".join(strings)):
            return
        if text is not None:
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
        later = getattr(report, "llmeval_teardown", None)
        if later is not None:
            # Teardown's calls (and a teardown failure) belong to the attempt they end.
            target = self._latest_attempts.get((later["nodeid"], later.get("model"), int(later.get("sample") or 0)))
            if target is not None:
                target["calls"].extend(later["calls"])
                if later.get("error") and target["outcome"] != "error":
                    target["outcome"], target["error"] = "error", later["error"]
        if data is not None:
            key = (data["nodeid"], data.get("model"), int(data.get("sample") or 0))
            self._latest_attempts[key] = data
            first = self._first_attempts.get(key)
            if first is None:
                data.setdefault("reruns", [])
                data.setdefault("flaky", False)
                self._first_attempts[key] = data
                self.cases.append(data)
            else:
                # A rerun (pytest-rerunfailures): the first attempt decides for the gate, or
                # reruns would make the pass rate best-of-N; later ones only show as flaky.
                first["reruns"].append(data["outcome"])
                first["flaky"] = any(o != first["outcome"] for o in first["reruns"])
            error = data.get("error") or ""
            if error.startswith(_MISSING_KEY):  # a string: under xdist it comes from a worker
                self._say_missing_key(error[len(_MISSING_KEY) :])
            if data["outcome"] == "error" and report.when == "call" and report.failed:
                # A broken judge or provider is no wrong answer: pytest's --junitxml shows
                # it as an <error>, as the gate and --llmeval-report count it.
                from pytest_llmeval.planning._pytest_internals import junitxml_failure_to_error

                junitxml_failure_to_error(self.config, report)
        if report.failed:  # what the gate remembers of other reports: their failures
            self.gate.note_report(report)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            if _is_eval_item(item):
                self._deselected[_count_key(item)] += 1

    def collected_counts(self, session: pytest.Session) -> dict[tuple[str, str | None], int] | None:
        """Eval items collected per (eval, model), deselected ones included; ``None`` when
        unknown (an xdist controller collects nothing itself and no worker reported)."""
        if self.worker_collected is not None:
            return {(e, m): n for e, m, n in self.worker_collected}
        items = getattr(session, "items", None)
        if not items and not self._deselected:
            return None
        counts: Counter[tuple[str, str | None]] = Counter(self._deselected)
        for item in items or ():
            if _is_eval_item(item):
                counts[_count_key(item)] += 1
        return dict(counts)

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Iterator[None]:
        if not self.cases and self._gate is None and not self.settings.wants_reports:
            yield  # no eval ran and no report is asked for: nothing to decide or write
            return
        if self._caller is not None and self._caller.store_opened:
            # One transaction for the whole run: a row per case was one commit per case.
            self.caller.store.record_outcomes(
                self.run_id,
                [
                    (
                        case["nodeid"],
                        case.get("model_spec") or case["model"],  # the call log's name for the model
                        case["sample"],
                        case["outcome"],
                        case["score"],
                    )
                    for case in self.cases
                ],
            )
        # Before pytest's own summary: decides the exit status and writes the reports.
        self.gate.finish(session, self.cases, self.caller.stats, self.run_id, self.collected_counts(session))
        yield

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if self._gate is not None:
            self._gate.terminal_summary(terminalreporter)
        # Said at the end too: the warning comes from whichever thread opened the store
        # first (a planning thread, an xdist worker), where nobody may see it.
        own = self._caller.store_problem if self._caller is not None else None
        for problem in dict.fromkeys([*([own] if own else []), *self.store_problems]):
            terminalreporter.write_line(f"pytest-llmeval: {problem}", yellow=True, bold=True)


_MISSING_KEY = MissingKeyError.__name__ + ": "


def import_recordings(path: Path, store_path: Path, mode: str) -> None:
    """Load committed recordings (ini ``llmeval_recordings``, the ``cache export`` format)
    into the store, so ``--llmeval-cache=replay`` replays them in CI.

    Skipped in ``refresh`` and ``off``, which call every model anyway. A bad line is a
    usage error naming the file and the line, and nothing is imported then; a missing file
    is one only in ``replay``, where every answer must come from it.
    """
    if mode not in ("use", "replay"):
        return
    where = "ini option llmeval_recordings"
    if not path.is_file():
        if mode == "replay":
            raise pytest.UsageError(
                f"{where}: {path} does not exist; record it with "
                f"`python -m pytest_llmeval cache export {path} --path {store_path}` after a run in mode use"
            )
        return
    from pytest_llmeval.store.db import Store  # lazy: sqlite3 only for runs that need it

    try:
        with Store(store_path) as store, path.open(encoding="utf-8") as lines:
            result = store.import_lines(lines)
    except (OSError, UnicodeDecodeError) as exc:
        raise pytest.UsageError(f"{where}: cannot read {path}: {exc}") from None
    if result["bad"]:
        number, reason = result["bad"][0]
        more = f" (and {len(result['bad']) - 1} more bad line(s))" if len(result["bad"]) > 1 else ""
        raise pytest.UsageError(f"{where}: {path}: line {number}: {reason}{more}; nothing was imported")


def _is_eval_item(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return "llm" in names or "judge" in names or item.get_closest_marker("llmeval") is not None


def _eval_id(item: pytest.Item) -> str:
    """The eval a case belongs to: its test function's node id without parameters."""
    nodeid = item.nodeid
    return nodeid.split("[", 1)[0]


@dataclass
class _Attempt:
    """One attempt of a case (a rerun plugin makes several): its record and outcome."""

    record: CaseRecord
    outcome: str | None = None
    calls_reported: int = 0  # calls already in the case data; later ones come with teardown
    skipped: bool = False


_ATTEMPT = pytest.StashKey[_Attempt]()


@contextmanager
def _current(record: CaseRecord) -> Iterator[None]:
    token = set_current(record)
    try:
        yield
    finally:
        reset_current(token)


def _count_key(item: pytest.Item) -> tuple[str, str | None]:
    params = getattr(getattr(item, "callspec", None), "params", {})
    name = (params.get(LLM_ARG) or (None,))[0]
    model = ModelSpec.parse(name).display if name is not None else None
    return (_eval_id(item), model)


def _score(record: CaseRecord, outcome: str) -> float:
    scores = [float(getattr(r, "score", float(bool(r)))) for r in record.results]
    if scores:
        return sum(scores) / len(scores)
    return 1.0 if outcome == "passed" else 0.0


def _error_text(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    text = f"{excinfo.typename}: {excinfo.value}"
    if _is_test_timeout(excinfo) or _inside_model_call(excinfo):
        text += " [a model call or test cut off by a timeout is an error, never a failed answer]"
    return text


def _is_test_timeout(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """pytest-timeout's own failure (its signal method fails the test with this message)."""
    return excinfo.errisinstance(pytest.fail.Exception) and "pytest-timeout" in str(excinfo.value)


def _inside_model_call(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """Whether the exception was raised while a model call was in flight: a model that
    was never heard cannot have given a wrong answer, whatever cut the call off."""
    from pytest_llmeval.calls.caller import Caller  # imported already: a case made the call

    code = Caller.call.__code__
    return any(entry.frame.code.raw is code for entry in excinfo.traceback)


def _classify(report: pytest.TestReport, call: pytest.CallInfo[None], record: CaseRecord | None = None) -> str:
    """passed / failed / error. Errors are failures of the machinery, never of the model:
    a provider, cache, judge or budget error, a broken fixture, or a timeout that cut
    the test or one of its model calls off."""
    if report.passed:
        return "passed"
    if report.when != "call":
        return "error"
    excinfo = call.excinfo
    if excinfo is not None and (
        isinstance(excinfo.value, LLMEvalError) or _is_test_timeout(excinfo) or _inside_model_call(excinfo)
    ):
        return "error"
    return "failed"


def _warn_unused_checks(item: pytest.Item, record: CaseRecord) -> None:
    """Warn about failed checks whose result the test never looked at: ``exact(out, "yes")``
    on its own line records a failure that the test's outcome does not show."""
    for result in record.results:
        used = getattr(result, "used", None)
        if used is None or used or bool(result.passed):
            continue
        item.warn(
            UnusedCheckWarning(
                f"{item.nodeid}: {result.name}() failed but its result was neither asserted nor used "
                f"(expected {short_repr(result.expected, 60)}, got {short_repr(result.actual, 60)}); "
                f"write `assert {result.name}(...)`, or use its result"
            )
        )


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
