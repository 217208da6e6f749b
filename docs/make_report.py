"""Regenerate docs/report.html: the HTML report of a small, fixed example run.

    python docs/make_report.py                # writes docs/report.html

Two evals × two models, judged answers, and a baseline in which one case passed that now
fails. The example is deterministic (fixed ids, dates, latencies and costs), its figures come
from the plugin's own aggregator and baseline comparison, and the page from the plugin's own
HTML report, so tests/test_html_report.py can check that docs/report.html is exactly what
this script makes today: a stale copy fails the tests. docs/make_screenshot.py photographs
the same report for the README.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPORT = HERE / "report.html"
MODELS = ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
CAPITALS = [
    ("france", "France", "Paris", {"openai:gpt-4o-mini": "Paris.", "anthropic:claude-haiku-4-5": "Paris"}),
    ("japan", "Japan", "Tokyo", {"openai:gpt-4o-mini": "Tokyo", "anthropic:claude-haiku-4-5": "Tokyo"}),
    ("peru", "Peru", "Lima", {"openai:gpt-4o-mini": "Cusco", "anthropic:claude-haiku-4-5": "Lima"}),
    ("australia", "Australia", "Canberra", {"openai:gpt-4o-mini": "Canberra", "anthropic:claude-haiku-4-5": "Sydney"}),
    ("canada", "Canada", "Ottawa", {"openai:gpt-4o-mini": "Ottawa", "anthropic:claude-haiku-4-5": "Ottawa"}),
    ("kenya", "Kenya", "Nairobi", {"openai:gpt-4o-mini": "Nairobi", "anthropic:claude-haiku-4-5": "Mombasa"}),
]
SUPPORT = [
    (
        "refund-window",
        "Can I still return shoes I bought 40 days ago?",
        "Returns are accepted within 30 days; 40 days is outside the window, so offer store credit instead.",
    ),
    (
        "damaged-item",
        "My order arrived broken, what now?",
        "Apologise, ask for a photo, offer a replacement or refund.",
    ),
    (
        "cancel-order",
        "How do I cancel an order that shipped?",
        "It cannot be cancelled once shipped; explain the return.",
    ),
    ("gift-card", "Can I get cash back for a gift card?", "Gift cards are not redeemable for cash."),
]
SUPPORT_ANSWERS = {
    ("refund-window", "openai:gpt-4o-mini"): (
        "Yes! You can return them any time within 60 days for a full refund.",
        False,
        "The reply invents a 60-day window; the policy is 30 days and no store credit is offered.",
    ),
    ("refund-window", "anthropic:claude-haiku-4-5"): (
        "Our return window is 30 days, so a refund isn't possible after 40 days, but I can offer store credit.",
        True,
        "States the 30-day window correctly and offers store credit.",
    ),
    ("damaged-item", "openai:gpt-4o-mini"): (
        "I'm sorry it arrived damaged! Please send a photo and I'll ship a replacement or refund you.",
        True,
        "Apologises, asks for a photo and offers both remedies.",
    ),
    ("damaged-item", "anthropic:claude-haiku-4-5"): (
        "Sorry about that. Could you share a photo? Then we'll replace it or refund you, whichever you prefer.",
        True,
        "Covers apology, evidence and remedy.",
    ),
    ("cancel-order", "openai:gpt-4o-mini"): (
        "Once an order ships it can't be cancelled, but you can return it when it arrives.",
        True,
        "Correct and points to the return process.",
    ),
    ("cancel-order", "anthropic:claude-haiku-4-5"): (
        "Shipped orders can't be cancelled; once it arrives you can start a return from your account.",
        True,
        "Correct.",
    ),
    ("gift-card", "openai:gpt-4o-mini"): (
        "Gift cards can't be exchanged for cash, sorry.",
        True,
        "Correct refusal.",
    ),
    ("gift-card", "anthropic:claude-haiku-4-5"): (
        "Gift cards aren't redeemable for cash, <b>but</b> they never expire.",
        True,
        "Correct; the extra claim is harmless.",
    ),
}


def _call(model: str, role: str, latency: float, tokens_in: int, tokens_out: int, cached: bool) -> dict[str, Any]:
    price_in, price_out = (0.15, 0.6) if model.startswith("openai") else (1.0, 5.0)
    cost = 0.0 if cached else (tokens_in * price_in + tokens_out * price_out) / 1e6
    return {
        "key": hashlib.sha256(f"{model}|{role}|{latency}".encode()).hexdigest(),
        "model": model,
        "cached": cached,
        "latency_s": 0.0 if cached else latency,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cached_input_tokens": 0,
        "cost_usd": cost,
        "role": role,
    }


def sample_run() -> tuple[Any, Any]:
    """(results, baseline results) of a small run: two results documents (``--llmeval-json``)."""
    cases: list[dict[str, Any]] = []
    for i, (cid, country, capital, answers) in enumerate(CAPITALS):
        for j, model in enumerate(MODELS):
            answer = answers[model]
            ok = answer.strip(".").lower() == capital.lower()
            prompt = [{"role": "user", "content": f"What is the capital of {country}? Answer with one word."}]
            cases.append(
                {
                    "eval": "tests/test_capitals.py::test_capital",
                    "nodeid": f"tests/test_capitals.py::test_capital[{model}-{cid}]",
                    "model": model,
                    "sample": 0,
                    "outcome": "passed" if ok else "failed",
                    "score": 1.0 if ok else 0.0,
                    "threshold": 0.8,
                    "tags": ["geo"],
                    "results": [
                        {
                            "name": "exact",
                            "passed": ok,
                            "score": 1.0 if ok else 0.0,
                            "expected": capital,
                            "actual": answer,
                            "explanation": (
                                f"{answer!r} equals {capital!r} after normalising case, whitespace and trailing punctuation"
                                if ok
                                else f"{answer!r} differs from {capital!r} (normalised: {answer.lower()!r} vs {capital.lower()!r})"
                            ),
                        }
                    ],
                    "calls": [_call(model, "llm", 0.31 + 0.07 * i + 0.2 * j, 21, 2, cached=i % 3 == 0)],
                    "output": answer,
                    "prompt": prompt,
                    "error": None,
                    "key": cid,
                }
            )
    for i, (cid, question, criteria) in enumerate(SUPPORT):
        for j, model in enumerate(MODELS):
            answer, ok, reasoning = SUPPORT_ANSWERS[(cid, model)]
            score = 0.9 if ok else 0.2
            cases.append(
                {
                    "eval": "tests/test_support.py::test_policy_answer",
                    "nodeid": f"tests/test_support.py::test_policy_answer[{model}-{cid}]",
                    "model": model,
                    "sample": 0,
                    "outcome": "passed" if ok else "failed",
                    "score": score,
                    "threshold": 0.75,
                    "tags": ["support", "judge"],
                    "results": [
                        {
                            "name": "judge",
                            "passed": ok,
                            "score": score,
                            "expected": criteria,
                            "actual": answer,
                            "explanation": f"rubric score {score:.1f} (pass at 0.5)",
                            "reasoning": reasoning,
                            "raw": '{"reasoning": "'
                            + reasoning
                            + '", "verdict": "'
                            + ("PASS" if ok else "FAIL")
                            + '"}',
                            "judge_model": "openai:gpt-4o",
                            "label": "PASS" if ok else "FAIL",
                        }
                    ],
                    "calls": [
                        _call(model, "llm", 0.9 + 0.15 * i + 0.4 * j, 180, 42, cached=False),
                        _call("openai:gpt-4o", "judge", 1.2 + 0.1 * i, 420, 60, cached=False),
                    ],
                    "output": answer,
                    "prompt": [
                        {"role": "system", "content": "You are a support agent for Acme Shoes. Follow the policy."},
                        {"role": "user", "content": question},
                    ],
                    "error": None,
                    "key": cid,
                }
            )
    baseline_cases = copy.deepcopy(cases)
    for case in baseline_cases:
        # The accepted run: gpt-4o-mini used to answer the refund question right.
        if case["nodeid"].endswith("[openai:gpt-4o-mini-refund-window]"):
            case["outcome"], case["score"] = "passed", 0.9
    from pytest_llmeval.gate.results import aggregate, build_results

    baseline_results = build_results(
        cases=baseline_cases,
        evals=aggregate(baseline_cases),
        passed=True,
        reasons=[],
        run_id="a18e0b5c9d2f4e61",
        created_at="2025-11-27T09:05:00+00:00",
        pytest_args=[],
    )
    run = {
        "schema": "pytest-llmeval/results",
        "version": 1,
        "run_id": "3f9c2a7e51b04d0c",
        "created_at": "2025-11-29T16:20:00+00:00",
        "pytest_args": ["--llmeval-model", MODELS[0], "--llmeval-model", MODELS[1],
                        "--llmeval-judge", "openai:gpt-4o", "--llmeval-baseline", "accepted.json"],
        "cases": cases,
    }  # fmt: skip
    # The evals, the baseline section and the verdict come from the plugin's own code,
    # exactly as `python -m pytest_llmeval report RUN.json --baseline accepted.json` makes them.
    from pytest_llmeval.cli.report import rebaseline

    results = rebaseline(run, baseline_results, alpha=0.05, path="accepted.json")
    return results, baseline_results


def render_report() -> bytes:
    """The bytes of docs/report.html, as :func:`pytest_llmeval.reports.html.render.write_html` writes them."""
    from pytest_llmeval.reports.html.render import render_html

    results, baseline = sample_run()
    return render_html(results, baseline).encode("utf-8", "backslashreplace")


def write_report(path: Path = REPORT) -> None:
    """Write the example report to ``path``."""
    from pytest_llmeval.reports.html.render import write_html

    results, baseline = sample_run()
    write_html(results, path, baseline)


def main() -> int:
    write_report(REPORT)
    print(f"wrote {REPORT} ({REPORT.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
