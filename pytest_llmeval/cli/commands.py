"""``python -m pytest_llmeval``: look after the cache and turn the call log into data.

Commands (each takes ``--path DB``, default ``.llmeval/cache.db`` under the current
directory; it may come before or after the command)::

    cache stats [--json]
    cache prune --keep-runs N | --older-than DATE
    cache export FILE          # sorted JSONL, stable bytes: commit it, review the diff
    cache import FILE [--skip-bad]
    export-finetune FILE [--model M] [--test PATTERN]
    batch list [--limit N] [--json]   # provider batches of --llmeval-batch runs
    batch cancel [ID]
    report ...                 # see `report --help`

Standard library only, and nothing heavy is imported: the commands start fast.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from pytest_llmeval.cli.batch import add_batch_parser
from pytest_llmeval.models import DEFAULT_CACHE_PATH
from pytest_llmeval.store import Store, StoreError, to_iso_utc

__all__ = ["main", "build_parser"]

PROG = "python -m pytest_llmeval"


class CliError(Exception):
    """A command failed in a way the user can fix; the message says how."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# -- parser ---------------------------------------------------------------------------------
def _path_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a --path after the command must not reset one given before it.
    parent.add_argument(
        "--path",
        metavar="DB",
        default=argparse.SUPPRESS,
        help=f"the llmeval store (default: {DEFAULT_CACHE_PATH} under the current directory)",
    )
    return parent


def build_parser(*, report: Any = None) -> argparse.ArgumentParser:
    """The argument parser. ``report`` is the ``report_cli`` module, when it is to be wired in."""
    parent = _path_parent()
    parser = argparse.ArgumentParser(prog=PROG, description="pytest-llmeval: cache, call log and reports.")
    parser.add_argument("--path", metavar="DB", default=DEFAULT_CACHE_PATH, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    cache = commands.add_parser("cache", help="inspect and maintain the response cache", parents=[parent])
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    stats = cache_commands.add_parser("stats", help="entries, size, models, runs, calls, hit rate", parents=[parent])
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(func=cmd_stats)

    prune = cache_commands.add_parser(
        "prune",
        help="drop cached answers that recent runs did not use",
        parents=[parent],
        description="Drop cached answers no call of the last N runs used (--keep-runs), or answers stored "
        "before DATE and not used since, together with the call log, runs and outcomes before DATE "
        "(--older-than). Both may be given. The file is compacted afterwards.",
    )
    prune.add_argument("--keep-runs", type=int, metavar="N", help="keep the answers used by the last N runs")
    prune.add_argument("--older-than", metavar="DATE", help="ISO date or date-time (UTC unless it has an offset)")
    prune.set_defaults(func=cmd_prune)

    export = cache_commands.add_parser(
        "export", help="write every cached answer as sorted JSONL ('-' for stdout)", parents=[parent]
    )
    export.add_argument("file", metavar="FILE")
    export.set_defaults(func=cmd_export)

    import_ = cache_commands.add_parser(
        "import",
        help="load a JSONL export (creates the store when missing)",
        parents=[parent],
        description="Load lines written by `cache export`. Every line is checked (JSON, fields, and its key "
        "against the key recomputed from its request); bad lines are reported by line number and, "
        "without --skip-bad, nothing is imported.",
    )
    import_.add_argument("file", metavar="FILE")
    import_.add_argument("--skip-bad", action="store_true", help="import the good lines even when some are bad")
    import_.set_defaults(func=cmd_import)

    finetune = commands.add_parser(
        "export-finetune",
        help="conversations of passing cases as chat fine-tuning JSONL",
        parents=[parent],
        description="Write one {\"messages\": [...]} per line: the request's messages and the model's answer, "
        "for every call of the model under test (never the judge) in the latest run that recorded "
        "the test, when the test passed in that run. Duplicates are written once.",
    )
    finetune.add_argument("file", metavar="FILE", help="output JSONL ('-' for stdout)")
    finetune.add_argument("--model", metavar="M", help="only this model (PROVIDER:MODEL, or a glob)")
    finetune.add_argument(
        "--test", metavar="PATTERN", help="only tests whose node id matches this glob (or contains it)"
    )
    finetune.set_defaults(func=cmd_export_finetune)

    add_batch_parser(commands, parent, open_store=_store, error=CliError)

    if report is not None:
        before = set(commands.choices)
        sub = report.add_report_parser(commands)
        if sub is None:
            sub = commands.choices.get("report") or next(
                (commands.choices[name] for name in commands.choices if name not in before), None
            )
        if sub is not None:
            sub.set_defaults(func=lambda args: report.run_report(args))
    else:
        # Placeholder: the real parser is loaded only when `report` is asked for.
        commands.add_parser("report", help="summarise a results JSON file (see: report --help)", add_help=False)
    return parser


def _load_report_cli() -> Any:
    try:
        from pytest_llmeval.cli import report as report_cli
    except ImportError as exc:
        if exc.name not in ("pytest_llmeval.cli.report", None):
            raise
        raise CliError(
            "the report command is not available in this installation (pytest_llmeval.cli.report is missing)", 2
        ) from None
    return report_cli


# -- entry point ----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 failed, 2 usage error)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(args_list)
        if args.command == "report":
            # Imported only now: the other commands must not depend on it.
            parser = build_parser(report=_load_report_cli())
            args = parser.parse_args(args_list)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        result = args.func(args)
        return int(result or 0)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except SystemExit as exc:  # argparse: --help, or a usage error it has already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except BrokenPipeError:  # `... | head`
        return 0


def _store(args: argparse.Namespace, *, create: bool = False) -> Store:
    path = Path(args.path)
    if not create and not path.is_file():
        where = "" if path.is_absolute() else f" (from {os.getcwd()})"
        raise CliError(
            f"no llmeval store at {path}{where}: pass --path DB, or run pytest with pytest-llmeval first "
            f"(it creates {DEFAULT_CACHE_PATH} in the rootdir)",
            2,
        )
    try:
        return Store(path, repair=False)
    except StoreError as exc:
        raise CliError(str(exc)) from None


def _open_output(name: str) -> tuple[TextIO, Path | None]:
    if name == "-":
        return sys.stdout, None
    target = Path(name)
    if target.parent and not target.parent.exists():
        raise CliError(f"cannot write {name}: folder {target.parent} does not exist")
    # Written next to the target and renamed: a failed export never leaves half a file.
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    return open(tmp, "w", encoding="utf-8", newline="\n"), tmp  # noqa: SIM115 - closed by _finish_output


def _finish_output(handle: TextIO, tmp: Path | None, name: str, ok: bool) -> None:
    if tmp is None:
        handle.flush()
        return
    handle.close()
    if ok:
        os.replace(tmp, name)
    else:
        tmp.unlink(missing_ok=True)


def _say(args: argparse.Namespace, text: str) -> None:
    # When the data goes to stdout, the talk goes to stderr.
    print(text, file=sys.stderr if getattr(args, "file", None) == "-" else sys.stdout)


# -- cache ----------------------------------------------------------------------------------
def cmd_stats(args: argparse.Namespace) -> int:
    """``cache stats``."""
    with _store(args) as store:
        figures = store.stats()
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return 0
    print(f"store: {figures['path']} ({_size(figures['size_bytes'])})")
    print(f"entries: {figures['entries']}")
    for model, count in figures["entries_per_model"].items():
        print(f"  {model:<40} {count:>8}")
    runs = f"runs: {figures['runs']}"
    if figures["runs"]:
        runs += f" (first {figures['first_run']}, last {figures['last_run']})"
    print(runs)
    rate = "-" if figures["hit_rate"] is None else f"{figures['hit_rate']:.1%}"
    print(f"calls: {figures['calls']}, cache hits: {figures['hits']} (hit rate {rate})")
    for model, row in figures["calls_per_model"].items():
        print(f"  {model:<40} {row['calls']:>8} calls {row['hits']:>8} hits  ${row['cost_usd']:.4f}")
    return 0


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def cmd_prune(args: argparse.Namespace) -> int:
    """``cache prune``."""
    if args.keep_runs is None and args.older_than is None:
        raise CliError("cache prune: give --keep-runs N or --older-than DATE (or both)", 2)
    if args.keep_runs is not None and args.keep_runs < 1:
        raise CliError(f"cache prune: --keep-runs must be at least 1, got {args.keep_runs}", 2)
    older_than = None
    if args.older_than is not None:
        try:
            older_than = to_iso_utc(args.older_than)
        except ValueError as exc:
            raise CliError(f"cache prune --older-than: {exc}", 2) from None
    with _store(args) as store:
        before = store.stats()["size_bytes"]
        counts = store.prune(keep_runs=args.keep_runs, older_than=older_than)
        after = store.stats()["size_bytes"]
    print(
        f"pruned {counts['responses']} cached answers, {counts['calls']} logged calls, {counts['runs']} runs, "
        f"{counts['outcomes']} outcomes; {_size(before)} -> {_size(after)}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``cache export``."""
    with _store(args) as store:
        handle, tmp = _open_output(args.file)
        count = 0
        ok = False
        try:
            for line in store.export_lines():
                handle.write(line + "\n")
                count += 1
            ok = True
        finally:
            _finish_output(handle, tmp, args.file, ok)
    _say(args, f"exported {count} cached answers to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``cache import``."""
    source = Path(args.file)
    if args.file != "-" and not source.is_file():
        raise CliError(f"cache import: no file {args.file}", 2)
    with _store(args, create=True) as store:
        if args.file == "-":
            result = store.import_lines(sys.stdin, skip_bad=args.skip_bad)
        else:
            with open(source, encoding="utf-8") as handle:
                result = store.import_lines(handle, skip_bad=args.skip_bad)
    for number, reason in result["bad"]:
        print(f"{args.file}:{number}: {reason}", file=sys.stderr)
    if not result["imported"]:
        raise CliError(
            f"cache import: {len(result['bad'])} bad line(s) in {args.file}; nothing imported "
            "(fix them, or pass --skip-bad to import the rest)"
        )
    _say(
        args,
        f"imported {args.file} into {args.path}: {result['added']} added, {result['replaced']} replaced, "
        f"{result['unchanged']} unchanged" + (f", {len(result['bad'])} bad lines skipped" if result["bad"] else ""),
    )
    return 1 if result["bad"] else 0


# -- fine-tuning ----------------------------------------------------------------------------
def _model_matches(model: str, wanted: str | None) -> bool:
    if wanted is None:
        return True
    return model == wanted or model.split("@http", 1)[0] == wanted or fnmatch.fnmatchcase(model, wanted)


def _test_matches(test_id: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(test_id, pattern)
    return pattern in test_id


def _text(content: Any) -> Any:
    # Part lists (Anthropic cache_control and the like) become the plain text fine-tuning expects.
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    return content


def finetune_example(request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any] | None:
    """One chat fine-tuning example: the request's messages and the answer; ``None`` if empty."""
    messages: list[dict[str, Any]] = [
        {"role": m.get("role"), "content": _text(m.get("content"))} for m in request.get("messages") or ()
    ]
    answer: dict[str, Any] = {"role": "assistant"}
    text = response.get("text") or ""
    if text:
        answer["content"] = text
    tool_calls = response.get("tool_calls") or []
    if tool_calls:
        answer["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": call.get("name"),
                    "arguments": call.get("raw_arguments") or json.dumps(call.get("arguments"), ensure_ascii=False),
                },
            }
            for i, call in enumerate(tool_calls)
        ]
    if len(answer) == 1 or not messages:
        return None
    example: dict[str, Any] = {"messages": [*messages, answer]}
    tools = (request.get("params") or {}).get("tools")
    if tools:
        from pytest_llmeval.providers.openai import _openai_tool  # the neutral -> OpenAI tool shape

        example["tools"] = [_openai_tool(t) for t in tools]
    return example


def cmd_export_finetune(args: argparse.Namespace) -> int:
    """``export-finetune``."""
    seen: set[str] = set()
    tests: set[str] = set()
    with _store(args) as store:
        handle, tmp = _open_output(args.file)
        ok = False
        try:
            for test_id, model, request, response in store.passing_conversations():
                if not (_model_matches(model, args.model) and _test_matches(test_id, args.test)):
                    continue
                example = finetune_example(request, response)
                if example is None:
                    continue
                tests.add(test_id)
                line = json.dumps(example, ensure_ascii=False, separators=(",", ":"))
                if line in seen:
                    continue
                seen.add(line)
                handle.write(line + "\n")
            ok = True
        finally:
            _finish_output(handle, tmp, args.file, ok)
    _say(args, f"wrote {len(seen)} conversations from {len(tests)} passing cases to {args.file}")
    if not seen:
        _say(
            args,
            "hint: only cases that passed in the latest run that recorded them are exported; outcomes are "
            "stored when a pytest run finishes"
            + (", and your --model/--test filters apply" if args.model or args.test else ""),
        )
    return 0
