"""What the benchmark scripts share: the fake server's import path, suites, a timed pytest run.

Importing this module puts ``tests/`` on ``sys.path`` so ``from fakeapi import FakeAPI`` works.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(ROOT / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

# One model call per case; the fake server echoes, so every case passes. Format with cases=N.
EVAL_SUITE = """
import pytest

@pytest.mark.llmeval(min_pass_rate=1.0)
@pytest.mark.parametrize("i", range({cases}))
def test_case(llm, i):
    assert llm(f"question {{i}}") == f"echo: question {{i}}"
"""

# The same shape without the plugin's fixtures: the baseline an eval's overhead is measured on.
PLAIN_SUITE = """
import pytest

@pytest.mark.parametrize("i", range({cases}))
def test_case(i):
    assert "echo" == "echo"
"""


# Pytest's own floor for any plugin that gives a test a parametrized fixture (as ``llm`` is):
# the plain suite with one indirect parameter whose fixture returns ``request.param``.
FIXTURE_SUITE = """
import pytest

@pytest.fixture
def thing(request):
    return request.param

@pytest.mark.parametrize("thing", ["model"], indirect=True)
@pytest.mark.parametrize("i", range({cases}))
def test_case(thing, i):
    assert "echo" == "echo"
"""


def timed_pytest(
    cwd: Path, args: list[str], env: dict[str, str], *, check: bool = True
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run ``python -m pytest ARGS`` in ``cwd``: wall time, CPU time (user + system) and the result.

    CPU time of the child alone (runs are sequential) is the figure that survives a busy
    machine; wall time is kept for reference. ``check``: exit with pytest's output on failure.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and proc.returncode != 0:
        sys.exit(
            f"pytest {' '.join(args)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc
