"""Every use of pytest's and pluggy's private internals, in one file, behind a version guard.

The planning pass runs an eval item's setup, call and teardown once before its real run,
without reports. pytest has no public API for that, so this module reaches into:

- ``Function._request`` / ``_initrequest()`` / ``funcargs``: a second run of an item needs a
  fresh fixture request, as ``runtestprotocol`` makes one;
- ``Item._report_sections``: captured output a planning run leaves behind is removed;
- ``Session._setupstate.teardown_exact``: fixtures of items that are not contiguous are torn
  down as pytest would;
- pluggy's ``HookCaller._remove_plugins`` and ``PluginManager.subset_hook_caller``: the
  per-phase hooks without the capture plugin's (which only feed reports);
- the ``capturemanager`` plugin's global capture, resumed around a whole planning pass;
- ``TerminalReporter.isatty``, an attribute before pytest 8.1 and a method since;
- pytest-xdist's ``WorkerInteractor`` (``xdist.remote``): its ``nextitem_index`` and its
  ``torun`` queue (read under the queue's own lock) say which tests a worker has been given;
- ``junitxml``'s ``xml_key``, ``LogXML.node_reporters`` / ``stats`` and ``_NodeReporter.nodes``:
  pytest writes ``<error>`` only for setup and teardown failures, so a machinery error in
  the call phase is turned from ``<failure>`` into ``<error>`` after pytest recorded it.

:func:`unsupported` names what is missing on a pytest or pluggy this module does not know;
the planner then switches itself off with one warning and tests make their calls one at a
time. CI runs the suite on the oldest and the newest pytest the package allows.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import pluggy
import pytest

__all__ = [
    "KNOWN_PYTEST",
    "unsupported",
    "run_unreported",
    "kept_sections",
    "teardown_towards",
    "quiet_capture",
    "reporter_isatty",
    "worker_queue",
    "junitxml_failure_to_error",
]

#: pytest releases (major, minor) whose internals this module was tested against, inclusive.
KNOWN_PYTEST = ((8, 0), (9, 2))

# Plugins whose per-phase hooks only capture output for reports that a planning run never
# makes; quiet_capture() covers what they would have kept off the terminal. (The logging
# plugin's stay: the caplog fixture needs them.)
_REPORT_ONLY_PLUGINS = ("capturemanager",)


def _version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def unsupported(pytest_version: str | None = None) -> str | None:
    """Why planning cannot run on this pytest, or ``None`` when it can."""
    version = pytest_version or pytest.__version__
    low, high = KNOWN_PYTEST
    if not low <= _version(version) <= high:
        return (
            f"pytest {version} is outside the versions whose internals the planning pass knows "
            f"({low[0]}.{low[1]} to {high[0]}.{high[1]})"
        )
    from _pytest.capture import CaptureManager
    from _pytest.runner import SetupState

    missing = [
        f"{owner.__name__}.{name}"
        for owner, name in (
            (pytest.Function, "_initrequest"),
            (SetupState, "teardown_exact"),
            (CaptureManager, "resume_global_capture"),
            (CaptureManager, "suspend_global_capture"),
            (CaptureManager, "read_global_capture"),
            (pytest.PytestPluginManager, "subset_hook_caller"),
        )
        if not hasattr(owner, name)
    ]
    if missing:
        return "pytest or pluggy lacks " + ", ".join(sorted(set(missing)))
    return None


class _PlanningHooks:
    """The three per-phase hooks of ``item.ihook`` without the report-only plugins."""

    def __init__(self, item: pytest.Item) -> None:
        pm = item.config.pluginmanager
        report_only = {p for p in (pm.get_plugin(n) for n in _REPORT_ONLY_PLUGINS) if p is not None}
        ihook = item.ihook
        for name in ("pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown"):
            caller = getattr(ihook, name)
            # item.ihook gives the session's hook caller, or (when some conftest files do not
            # apply to this item's path) a pluggy subset of it that leaves them out. Any other
            # kind (another pytest or pluggy): keep it whole, slower but correct.
            if isinstance(caller, pluggy.HookCaller) and report_only:
                not_applicable = getattr(caller, "_remove_plugins", None)
                if not_applicable is not None or type(caller) is pluggy.HookCaller:
                    caller = pm.subset_hook_caller(name, remove_plugins={*(not_applicable or ()), *report_only})
            setattr(self, name, caller)


def planning_hooks(item: pytest.Item) -> Any:
    """``item``'s setup, call and teardown hooks, minus the plugins that only feed reports.

    Kept per hook relay (all items of one folder share it) and plugin set: building the
    subset callers for every planning run cost more the more plugins were installed.
    """
    config = item.config
    cache: dict[Any, _PlanningHooks] | None = config.stash.get(_HOOKS_KEY, None)
    if cache is None:
        cache = config.stash[_HOOKS_KEY] = {}
    # item.ihook depends on the conftest files that apply to the item's folder; the plugin
    # count is part of the key because registering a plugin (a conftest) changes the hooks.
    key = (getattr(item, "path", None) and item.path.parent, len(config.pluginmanager.get_plugins()))
    hooks = cache.get(key)
    if hooks is None:
        hooks = cache[key] = _PlanningHooks(item)
    return hooks


_HOOKS_KEY = pytest.StashKey[dict[Any, _PlanningHooks]]()


def run_unreported(
    item: pytest.Item, nextitem: pytest.Item | None, *, on_phase: Callable[[str], None] | None = None
) -> None:
    """Setup, call and teardown of ``item`` as ``runtestprotocol`` runs them, without reports.

    ``runtestprotocol(item, log=False)`` (what pytest-rerunfailures uses) would still build a
    report per phase, and formatting the traceback of each planning stop costs more than
    the test itself. Exceptions end a phase as they do in pytest; ``pytest.exit`` and
    Ctrl-C still stop the run. ``on_phase`` is told ``"setup"``, ``"call"``, ``"teardown"``
    before each phase and ``""`` after the last.
    """
    reraise = (pytest.exit.Exception, KeyboardInterrupt)
    ihook = planning_hooks(item)
    # Like runtestprotocol: a second run of an item needs a fresh fixture request.
    has_request = hasattr(item, "_request")
    if has_request and not item._request:  # type: ignore[attr-defined]
        item._initrequest()  # type: ignore[attr-defined]
    tell = on_phase or (lambda when: None)
    try:
        tell("setup")
        setup = pytest.CallInfo.from_call(lambda: ihook.pytest_runtest_setup(item=item), when="setup", reraise=reraise)
        if setup.excinfo is None:
            tell("call")
            pytest.CallInfo.from_call(lambda: ihook.pytest_runtest_call(item=item), when="call", reraise=reraise)
        tell("teardown")
        pytest.CallInfo.from_call(
            lambda: ihook.pytest_runtest_teardown(item=item, nextitem=nextitem), when="teardown", reraise=reraise
        )
    finally:
        tell("")
    if has_request:
        item._request = False  # type: ignore[attr-defined]
        item.funcargs = None  # type: ignore[attr-defined]


@contextlib.contextmanager
def kept_sections(item: pytest.Item) -> Iterator[None]:
    """Restore ``item``'s report sections and user properties to what they were before."""
    saved_properties = list(item.user_properties)
    saved_sections = list(getattr(item, "_report_sections", []))
    try:
        yield
    finally:
        item.user_properties[:] = saved_properties
        if hasattr(item, "_report_sections"):
            item._report_sections[:] = saved_sections


def teardown_towards(session: pytest.Session, nextitem: pytest.Item | None) -> None:
    """Tear down what ``nextitem`` does not share with the items set up so far.

    Needed only when items of one module are not contiguous (some reordering plugins);
    a finalizer error here shows again when the real run tears the same fixture down.
    """
    state = getattr(session, "_setupstate", None)
    teardown_exact = getattr(state, "teardown_exact", None)
    if teardown_exact is None:
        return
    try:
        teardown_exact(nextitem)
    except Exception:  # noqa: BLE001, S110 - see the docstring
        pass


@contextlib.contextmanager
def quiet_capture(config: pytest.Config) -> Iterator[None]:
    """Keep what planning runs print off the terminal (the real run shows it).

    Planning runs skip the capture plugin's per-phase hooks (see :func:`planning_hooks`):
    reading the capture files three times per test cost more than the test. Instead
    pytest's global capture is resumed once around the whole pass and what it caught is
    thrown away; under ``-s`` the output goes to a buffer that is dropped.
    """
    capman = config.pluginmanager.get_plugin("capturemanager")
    if config.getoption("capture", "fd") == "no" or capman is None:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
        return
    capman.resume_global_capture()
    try:
        yield
    finally:
        capman.suspend_global_capture(in_=False)
        capman.read_global_capture()  # planning output: discarded


def worker_queue(config: pytest.Config) -> list[int] | None:
    """On a pytest-xdist worker, the indices (into ``session.items``) of the tests it has been
    given and not started yet, in the order it runs them (the next one first); ``None`` when
    this is no worker or this xdist's queue cannot be read (the planner then plans nothing
    beyond the test at hand)."""
    if getattr(config, "workerinput", None) is None:
        return None
    try:
        interactor = config.stash.get(_INTERACTOR_KEY, None)
        if interactor is None:
            interactor = next(
                (
                    p
                    for p in config.pluginmanager.get_plugins()
                    # xdist runs its worker module through execnet (as __channelexec__), so
                    # the class is known by its name and attributes, not its module.
                    if type(p).__name__ == "WorkerInteractor" and hasattr(p, "torun") and hasattr(p, "nextitem_index")
                ),
                None,
            )
            if interactor is None:
                return None
            config.stash[_INTERACTOR_KEY] = interactor
        torun = interactor.torun
        with torun.lock() as queued:
            pending = [interactor.nextitem_index, *queued]
    except Exception:  # noqa: BLE001 - another xdist: no queue, no planning ahead
        return None
    # The queue ends with a shutdown marker (an enum), never an index.
    return [i for i in pending if type(i) is int]


_INTERACTOR_KEY = pytest.StashKey[Any]()


def reporter_isatty(reporter: Any) -> bool:
    """Whether the terminal reporter writes to a terminal: ``isatty`` is a plain attribute
    before pytest 8.1 and a method since."""
    isatty = getattr(reporter, "isatty", False)
    return bool(isatty() if callable(isatty) else isatty)


def junitxml_failure_to_error(config: pytest.Config, report: pytest.TestReport) -> bool:
    """Make the ``<failure>`` that pytest's ``--junitxml`` wrote for ``report`` an ``<error>``
    (counted as one); call it after pytest's own ``pytest_runtest_logreport``. ``False`` when
    there is no such file or this pytest's internals differ: the file keeps its failure."""
    try:
        from _pytest.junitxml import xml_key

        xml = config.stash.get(xml_key, None)
        if xml is None:
            return False
        worker = getattr(report, "node", None)
        # The key's first part is the node id string up to pytest 9.1 and ``report.id`` (a
        # NodeId) from 9.2 on.
        reporters: dict[Any, Any] = xml.node_reporters
        reporter = reporters.get((report.nodeid, worker))
        if reporter is None and hasattr(report, "id"):
            reporter = reporters.get((report.id, worker))
        if reporter is None:
            return False
        for node in reporter.nodes:
            if node.tag == "failure":
                node.tag = "error"
                xml.stats["failure"] -= 1
                xml.stats["error"] += 1
                return True
    except (ImportError, AttributeError, KeyError, TypeError):
        pass
    return False
