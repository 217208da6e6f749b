"""Command-line and ini options, parsed once into a frozen :class:`Settings`.

Precedence, written down once: command line > marker (``models=``, ``judge=``,
``min_pass_rate=``, ``repeat=``) > ini file. CLI options default to ``None`` so that
"not given" falls through to the next source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.models import CACHE_MODES, DEFAULT_CACHE_PATH, CacheMode, ModelSpec

__all__ = ["Settings", "add_options", "BATCH_WAIT_CAP_S", "DEFAULT_CONCURRENCY"]

#: The longest a run waits for its batches: the providers' completion window (24 h), after
#: which a batch has expired and waiting longer cannot help.
BATCH_WAIT_CAP_S = 86400.0
#: Model calls in flight per endpoint unless --llmeval-concurrency says otherwise (see Settings).
DEFAULT_CONCURRENCY = 16


#: How --llmeval-report writes a failed case that its eval tolerates (see reports.junit).
REPORT_TOLERATED = ("passed", "failure")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmeval", "LLM evals (pytest-llmeval)")
    add = group.addoption
    add(
        "--llmeval-model",
        action="append",
        dest="llmeval_model",
        default=None,
        metavar="PROVIDER:MODEL",
        help="Model under test, repeatable. Overrides the marker's models= and ini llmeval_models.",
    )
    add(
        "--llmeval-judge",
        dest="llmeval_judge",
        default=None,
        metavar="PROVIDER:MODEL",
        help="Model that grades outputs. Overrides the marker's judge= and ini llmeval_judge.",
    )
    add(
        "--llmeval-allow-self-judge",
        dest="llmeval_allow_self_judge",
        action="store_true",
        default=None,
        help="Let the judge be one of the models under test (refused by default).",
    )
    add(
        "--llmeval-cache",
        dest="llmeval_cache",
        default=None,
        choices=CACHE_MODES,
        help="Cache mode: use (default), replay (never call a model), refresh, off.",
    )
    add(
        "--llmeval-cache-path",
        dest="llmeval_cache_path",
        default=None,
        metavar="PATH",
        help=f"SQLite cache and call log. Default: {DEFAULT_CACHE_PATH} in the rootdir.",
    )
    add(
        "--llmeval-timeout",
        dest="llmeval_timeout",
        default=None,
        type=float,
        metavar="SECONDS",
        help="Deadline of one model call, all its attempts and waits included. Default: 60.",
    )
    add(
        "--llmeval-retries",
        dest="llmeval_retries",
        default=None,
        type=int,
        metavar="N",
        help="Retries of a rate-limited or failed request. Default: 4.",
    )
    add(
        "--llmeval-min-pass-rate",
        dest="llmeval_min_pass_rate",
        default=None,
        type=float,
        metavar="RATE",
        help="Pass rate (0..1) every eval must reach, overriding the markers.",
    )
    add(
        "--llmeval-repeat",
        dest="llmeval_repeat",
        default=None,
        type=int,
        metavar="N",
        help="Sample every case N times, overriding the markers.",
    )
    add(
        "--llmeval-report",
        dest="llmeval_report",
        default=None,
        metavar="PATH",
        help="Write a JUnit XML report with one testsuite per model.",
    )
    add(
        "--llmeval-report-strict",
        dest="llmeval_report_strict",
        action="store_true",
        default=None,
        help="Make --llmeval-report valid against the Jenkins JUnit schema: per-case data in <system-out>.",
    )
    add(
        "--llmeval-report-tolerated",
        dest="llmeval_report_tolerated",
        default=None,
        choices=REPORT_TOLERATED,
        help="How --llmeval-report writes a failed case of an eval that meets its threshold: "
        "passed (default: a passing testcase saying it failed, as the gate sees it) or failure.",
    )
    add(
        "--llmeval-json",
        dest="llmeval_json",
        default=None,
        metavar="PATH",
        help="Write the full results as JSON (usable later as a baseline).",
    )
    add(
        "--llmeval-markdown",
        dest="llmeval_markdown",
        default=None,
        metavar="PATH",
        help="Write the summary (and baseline diff) as Markdown.",
    )
    add("--llmeval-html", dest="llmeval_html", default=None, metavar="PATH", help="Write a self-contained HTML report.")
    add(
        "--llmeval-baseline",
        dest="llmeval_baseline",
        default=None,
        metavar="PATH",
        help="Results JSON of an accepted run: fail on a pass-rate drop beyond chance.",
    )
    add(
        "--llmeval-alpha",
        dest="llmeval_alpha",
        default=None,
        type=float,
        metavar="ALPHA",
        help="Significance level of the baseline test. Default: 0.05.",
    )
    add(
        "--llmeval-concurrency",
        dest="llmeval_concurrency",
        default=None,
        type=int,
        metavar="N",
        help=(
            "Model calls made at once, per endpoint; halved on a 429 and grown back as calls "
            "succeed (0 turns the planning pass off). Default: 16."
        ),
    )
    add(
        "--llmeval-max-cost",
        dest="llmeval_max_cost",
        default=None,
        type=float,
        metavar="USD",
        help="Stop making model calls once the estimated cost reaches USD.",
    )
    add(
        "--llmeval-batch",
        dest="llmeval_batch",
        action="store_true",
        default=None,
        help="Send the planned calls of OpenAI and Anthropic models through their batch APIs, at the batch price.",
    )
    add(
        "--llmeval-batch-wait",
        dest="llmeval_batch_wait",
        default=None,
        type=float,
        metavar="SECONDS",
        help="How long a run waits for its batches; pending ones are collected by the next run. "
        "Default: until done (at most 24 h, the providers' completion window).",
    )
    add(
        "--llmeval-no-junit-properties",
        dest="llmeval_no_junit_properties",
        action="store_true",
        default=None,
        help="Do not add llmeval.* properties to pytest's own --junitxml.",
    )
    parser.addini("llmeval_models", "Models under test (one PROVIDER:MODEL per line).", type="linelist", default=[])
    parser.addini("llmeval_judge", "Judge model (PROVIDER:MODEL).", default="")
    parser.addini("llmeval_allow_self_judge", "Let the judge be a model under test.", type="bool", default=False)
    parser.addini("llmeval_judge_templates", "Directory of judge templates (<grader>.txt), relative to the rootdir.",
                  default="")  # fmt: skip
    parser.addini("llmeval_cache", "Cache mode: use, replay, refresh or off.", default="")
    parser.addini("llmeval_cache_path", "SQLite cache and call log path, relative to the rootdir.", default="")
    parser.addini("llmeval_recordings", "Committed recordings (cache export JSONL), relative to the rootdir: "
                  "imported into the cache at the start of every run.", default="")  # fmt: skip
    parser.addini("llmeval_timeout", "Deadline of one model call in seconds, all its attempts included.", default="")
    parser.addini("llmeval_concurrency", "Model calls made at once, per endpoint (default 16).", default="")
    parser.addini("llmeval_retries", "Retries of a rate-limited or failed request.", default="")
    parser.addini("llmeval_alpha", "Significance level of the baseline test.", default="")
    parser.addini("llmeval_max_cost", "Stop calls once the estimated cost reaches this many USD.", default="")
    parser.addini("llmeval_batch", "Use the providers' batch APIs for planned calls.", type="bool", default=False)
    parser.addini("llmeval_batch_wait", "Seconds a run waits for its batches (default: until done, 24 h).", default="")
    parser.addini("llmeval_prices", "Extra prices: 'PROVIDER:MODEL INPUT CACHED OUTPUT' USD per million tokens.",
                  type="linelist", default=[])  # fmt: skip
    parser.addini("llmeval_intercept", "Serve the app's own openai/anthropic SDK calls in every eval.",
                  type="bool", default=False)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Every option of the plugin, validated (see :meth:`from_config`)."""

    cli_models: tuple[ModelSpec, ...]
    ini_models: tuple[ModelSpec, ...]
    cli_judge: ModelSpec | None
    ini_judge: ModelSpec | None
    cache_mode: CacheMode
    cache_path: Path
    timeout_s: float
    retries: int
    min_pass_rate: float | None
    repeat: int | None
    report_path: Path | None
    json_path: Path | None
    markdown_path: Path | None
    html_path: Path | None
    baseline_path: Path | None
    alpha: float
    concurrency: int
    max_cost: float | None
    junit_properties: bool
    prices: dict[str, tuple[float, float, float]]
    allow_self_judge: bool = False
    judge_templates: Path | None = None
    recordings: Path | None = None
    batch: bool = False
    batch_wait_s: float = 86400.0
    report_strict: bool = False
    report_tolerated: str = "passed"
    intercept: bool = False  # ini llmeval_intercept: every eval serves its app's SDK calls

    @property
    def wants_reports(self) -> bool:
        """Whether any report file is asked for (written even by a run with no eval)."""
        return any((self.json_path, self.report_path, self.markdown_path, self.html_path))

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Parse and validate; any bad value is a :class:`pytest.UsageError` naming the option."""
        try:
            return cls._parse(config)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None

    @classmethod
    def _parse(cls, config: pytest.Config) -> Settings:
        opt = config.getoption
        ini = config.getini
        rootdir = Path(config.rootpath)

        def pick(name: str, ini_name: str) -> tuple[Any, str]:
            value = opt(name)
            if value is not None:
                return value, "--" + name.replace("_", "-")
            raw = ini(ini_name)
            return (raw if raw != "" else None), f"ini option {ini_name}"

        def number(
            name: str, ini_name: str, kind: type, default: Any, lo: float, hi: float | None = None, above: bool = False
        ) -> Any:
            value, source = pick(name, ini_name)
            return _checked_number(value, source, kind, default, lo, hi, above=above)

        cli_models = tuple(ModelSpec.parse(m, source="--llmeval-model") for m in opt("llmeval_model") or ())
        ini_models = tuple(ModelSpec.parse(m, source="ini option llmeval_models") for m in ini("llmeval_models"))
        cli_judge = opt("llmeval_judge")
        ini_judge = ini("llmeval_judge")
        mode, mode_source = pick("llmeval_cache", "llmeval_cache")
        mode = mode or "use"
        if mode not in CACHE_MODES:
            raise ConfigError(f"{mode_source}: unknown cache mode {mode!r}; valid modes: {', '.join(CACHE_MODES)}")
        cache_path_value, _ = pick("llmeval_cache_path", "llmeval_cache_path")
        cache_path = Path(cache_path_value or DEFAULT_CACHE_PATH)
        if not cache_path.is_absolute():
            # CLI paths are relative to where pytest was started, ini paths to the rootdir.
            base = Path(config.invocation_params.dir) if opt("llmeval_cache_path") else rootdir
            cache_path = base / cache_path

        def out_path(name: str) -> Path | None:
            value = opt(name)
            return Path(config.invocation_params.dir, value) if value else None

        max_cost = number("llmeval_max_cost", "llmeval_max_cost", float, None, 0.0)
        return cls(
            cli_models=cli_models,
            ini_models=ini_models,
            cli_judge=ModelSpec.parse(cli_judge, source="--llmeval-judge") if cli_judge else None,
            ini_judge=ModelSpec.parse(ini_judge, source="ini option llmeval_judge") if ini_judge else None,
            cache_mode=cast("CacheMode", mode),  # checked against CACHE_MODES above
            cache_path=cache_path,
            timeout_s=number("llmeval_timeout", "llmeval_timeout", float, 60.0, 0.001, _MAX_TIMEOUT_S),
            retries=number("llmeval_retries", "llmeval_retries", int, 4, 0, _MAX_RETRIES),
            # CLI only: an ini value would override the markers, against CLI > marker > ini.
            min_pass_rate=_checked_number(opt("llmeval_min_pass_rate"), "--llmeval-min-pass-rate", float, None, 0, 1),
            repeat=_checked_number(opt("llmeval_repeat"), "--llmeval-repeat", int, None, 1, _MAX_REPEAT),
            report_path=out_path("llmeval_report"),
            json_path=out_path("llmeval_json"),
            markdown_path=out_path("llmeval_markdown"),
            html_path=out_path("llmeval_html"),
            baseline_path=out_path("llmeval_baseline"),
            # alpha 0 would be a baseline test that can never fail: refused, not silently off.
            alpha=number("llmeval_alpha", "llmeval_alpha", float, 0.05, 0.0, 1.0, above=True),
            # 16 in flight per endpoint: at the 0.5-3 s a chat call takes, 300-1,900 requests a
            # minute, within the paid tiers of OpenAI and Anthropic for small models; a lower
            # tier answers 429 and the endpoint's limiter halves (calls/ratelimit.py).
            concurrency=number(
                "llmeval_concurrency", "llmeval_concurrency", int, DEFAULT_CONCURRENCY, 0, _MAX_CONCURRENCY
            ),
            max_cost=max_cost,
            junit_properties=not opt("llmeval_no_junit_properties"),
            prices=_parse_prices(ini("llmeval_prices")),
            allow_self_judge=bool(opt("llmeval_allow_self_judge") or ini("llmeval_allow_self_judge")),
            judge_templates=_judge_templates(ini("llmeval_judge_templates"), rootdir),
            recordings=_recordings(ini("llmeval_recordings"), rootdir),
            batch=bool(opt("llmeval_batch") or ini("llmeval_batch")),
            batch_wait_s=number(
                "llmeval_batch_wait", "llmeval_batch_wait", float, BATCH_WAIT_CAP_S, 0.0, BATCH_WAIT_CAP_S
            ),
            report_strict=bool(opt("llmeval_report_strict")),
            report_tolerated=opt("llmeval_report_tolerated") or "passed",
            intercept=bool(ini("llmeval_intercept")),
        )


# Upper bounds that catch a slipped digit or an overflow before it turns into a hang, a
# thread pool of millions or a run of millions of calls; far above any real use.
_MAX_TIMEOUT_S = 86_400.0
_MAX_RETRIES = 100
_MAX_CONCURRENCY = 1024
_MAX_REPEAT = 10_000


def _checked_number(
    value: Any, source: str, kind: type, default: Any, lo: float, hi: float | None = None, *, above: bool = False
) -> Any:
    """``value`` (a CLI value already typed by argparse, or ini text) as ``kind`` within
    ``lo..hi`` (``lo`` itself excluded when ``above``); anything else is a
    :class:`ConfigError` naming ``source``.

    NaN and infinities are refused explicitly: every comparison with NaN is false, so a
    plain range check would let ``nan`` through (a gate that never fails, a budget that
    never stops), and ``inf`` is no threshold, timeout or budget anyone means.
    """
    import math

    if value is None:
        return default
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{source}: expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: must be a finite number, got {value!r}")
    if value < lo or (above and value == lo) or (hi is not None and value > hi):
        lo_text, hi_text = kind(lo), kind(hi) if hi is not None else None
        if above:
            bound = f"above {lo_text}" + (f" and at most {hi_text}" if hi is not None else "")
        else:
            bound = f"between {lo_text} and {hi_text}" if hi is not None else f"at least {lo_text}"
        raise ConfigError(f"{source}: must be {bound}, got {value!r}")
    return kind(value)


def _parse_prices(lines: list[str]) -> dict[str, tuple[float, float, float]]:
    from pytest_llmeval.calls.pricing import PRICES

    prices = dict(PRICES)
    for line in lines:
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            ModelSpec.parse(parts[0], source="ini option llmeval_prices")
            prices[parts[0]] = (float(parts[1]), float(parts[2]), float(parts[3]))
        except ValueError:
            raise ConfigError(
                f"ini option llmeval_prices: bad line {line!r}; expected "
                "'PROVIDER:MODEL INPUT CACHED_INPUT OUTPUT' in USD per million tokens"
            ) from None
    return prices


def _judge_templates(value: str, rootdir: Path) -> Path | None:
    if not value:
        return None
    path = Path(value)
    path = path if path.is_absolute() else rootdir / path
    if not path.is_dir():
        raise ConfigError(f"ini option llmeval_judge_templates: {path} is not a directory")
    return path


def _recordings(value: str, rootdir: Path) -> Path | None:
    value = value.strip()
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else rootdir / path
