"""Batch mode (``--llmeval-batch``): the planned calls of a run at the providers' batch price.

The planning pass collects every call a run cannot answer yet; in batch mode
:class:`BatchRunner` sends those of OpenAI and Anthropic models as one batch per endpoint and
model (split at the providers' limits on requests and bytes) instead of calling them one by
one, polls the batches with a progress line, and hands each answer to the caller, which stores
and logs it as if it had been called live (with the batch id and the batch price). Models
without a batch API (``local:``, ``openai:NAME@URL`` servers) are left to the planner, which
calls them live as usual.

Every batch and the cache keys of its requests are kept in the store
(:meth:`~pytest_llmeval.store.db.Store.claim_batch` and its neighbours), so a run that stopped
waiting (``--llmeval-batch-wait``), another process or another machine sharing the store
collects a finished batch instead of submitting the same requests again. A key held by a
batch that is still running is never submitted twice; a batch found expired or cancelled is
submitted again only for the requests it did not answer. Errors inside a batch are the
request's own: its case is an error with the provider's message, and nothing of it is stored.

The SDKs are imported only through the providers' clients, when a batch is made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from pytest_llmeval.calls.pricing import estimate_cost
from pytest_llmeval.errors import BatchPendingError, LLMEvalError, ProviderError
from pytest_llmeval.models import ModelSpec, Request, Usage
from pytest_llmeval.statusline import StatusLine

if TYPE_CHECKING:
    from pytest_llmeval.calls.caller import Caller

__all__ = [
    "BatchRunner",
    "BatchReport",
    "BatchState",
    "Outcome",
    "open_batch_api",
    "open_batch_api_for",
    "custom_id_of",
]

# The providers' limits on one batch (requests, bytes of its requests), with room to spare for
# the JSON framing around each request.
OPENAI_LIMITS = (50_000, 190 * 1024 * 1024)
ANTHROPIC_LIMITS = (100_000, 240 * 1024 * 1024)
# Poll quickly at first (a small batch often ends within seconds), then back off: the pause
# is a tenth of the time waited so far, so a batch is seen at most ~10% after it ended (and at
# most MAX_POLL_S late), with a number of polls that grows only with the log of the wait.
FIRST_POLL_S = 0.5
MAX_POLL_S = 30.0
POLL_SHARE = 0.1
# A batch that fails to answer this many polls in a row is left pending for this run.
MAX_POLL_ERRORS = 5


def custom_id_of(key: str) -> str:
    """A request's id inside a batch: the hash of its cache key (Anthropic allows 64 characters)."""
    return key.rpartition("-")[2][:64]


@dataclass
class BatchState:
    """A batch as the provider reports it. ``status``: ``running``, ``ended``, ``expired``,
    ``cancelled`` or ``failed`` (the whole batch was refused, ``detail`` says why)."""

    status: str
    total: int = 0
    done: int = 0
    failed: int = 0
    detail: str = ""
    raw: Any = None


@dataclass
class Outcome:
    """One request's result in an ended batch: ``ok`` (``stored`` is the answer), ``error``
    (the provider's message) or ``missing`` (expired or cancelled before it was answered)."""

    kind: str
    stored: Mapping[str, Any] | None = None
    error: str = ""


def _jsonl(line: dict[str, Any]) -> bytes:
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class _OpenAIBatchAPI:
    """OpenAI Batch: upload a JSONL file (purpose ``batch``), create a batch, poll, read the
    output and error files."""

    name = "openai"
    limits = OPENAI_LIMITS

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.spec: ModelSpec = provider.spec
        self.endpoint: str = provider.endpoint
        self.client = provider._get_client()  # raises ProviderError when the key is missing

    def line(self, request: Request, custom_id: str) -> dict[str, Any]:
        """One line of the batch's input file."""
        body = self.provider.build_body(request)
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}

    def submit(self, lines: list[dict[str, Any]], *, timeout: float) -> str:
        """Upload the requests and create the batch; its id."""
        data = b"".join(_jsonl(line) for line in lines)
        upload = self.client.files.create(
            file=("llmeval-batch.jsonl", data, "application/jsonl"), purpose="batch", timeout=timeout
        )
        batch = self.client.batches.create(
            completion_window="24h",
            endpoint="/v1/chat/completions",
            input_file_id=upload.id,
            metadata={"created_by": "pytest-llmeval"},
            timeout=timeout,
        )
        return str(batch.id)

    def state(self, batch_id: str, *, timeout: float) -> BatchState:
        """The batch's status and counts."""
        batch = self.client.batches.retrieve(batch_id, timeout=timeout)
        status = str(batch.status)
        counts = batch.request_counts
        total, done, failed = (
            (int(counts.total), int(counts.completed), int(counts.failed)) if counts is not None else (0, 0, 0)
        )
        mapped = {"completed": "ended", "expired": "expired", "cancelled": "cancelled", "failed": "failed"}
        detail = status
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        if errors:
            detail = "; ".join(str(getattr(e, "message", e)) for e in errors)[:500]
        return BatchState(mapped.get(status, "running"), total, done, failed, detail, batch)

    def outcomes(self, state: BatchState, *, timeout: float) -> dict[str, Outcome]:
        """Every answered or failed request of an ended batch, by custom id."""
        from pytest_llmeval.providers._common import parse_json_reply
        from pytest_llmeval.providers.openai import _parse_response

        out: dict[str, Outcome] = {}
        if state.status == "failed":
            return out  # the runner fails every request with state.detail
        for file_id in (state.raw.output_file_id, state.raw.error_file_id):
            if not file_id:
                continue
            text = self.client.files.content(file_id, timeout=timeout).text
            for raw_line in text.splitlines():
                if not raw_line.strip():
                    continue
                line = json.loads(raw_line)
                custom_id = str(line.get("custom_id"))
                response = line.get("response") or None
                error = line.get("error") or None
                if response is not None and int(response.get("status_code") or 0) == 200:
                    try:
                        stored = parse_json_reply(_parse_response, response.get("body"), self.spec, self.endpoint)
                    except ProviderError as exc:
                        out[custom_id] = Outcome("error", error=str(exc))
                    else:
                        out[custom_id] = Outcome("ok", stored)
                elif response is not None:
                    body = response.get("body") or {}
                    message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
                    out[custom_id] = Outcome("error", error=f"HTTP {response.get('status_code')}: {message or body}")
                elif isinstance(error, dict) and error.get("code") in ("batch_expired", "batch_cancelled"):
                    out[custom_id] = Outcome("missing", error=str(error.get("message") or error.get("code")))
                else:
                    message = error.get("message") if isinstance(error, dict) else error
                    out[custom_id] = Outcome("error", error=str(message or "no response"))
        return out

    def cancel(self, batch_id: str, *, timeout: float) -> str:
        """Ask the provider to cancel; the status it reports."""
        return str(self.client.batches.cancel(batch_id, timeout=timeout).status)


class _AnthropicBatchAPI:
    """Anthropic Message Batches: one request with every message, poll, stream the results."""

    name = "anthropic"
    limits = ANTHROPIC_LIMITS

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.spec: ModelSpec = provider.spec
        self.endpoint: str = provider.endpoint
        self.client = provider._get_client()

    def line(self, request: Request, custom_id: str) -> dict[str, Any]:
        """One request of the batch."""
        return {"custom_id": custom_id, "params": self.provider.build_body(request)}

    def submit(self, lines: list[dict[str, Any]], *, timeout: float) -> str:
        """Create the batch; its id."""
        return str(self.client.messages.batches.create(requests=lines, timeout=timeout).id)

    def state(self, batch_id: str, *, timeout: float) -> BatchState:
        """The batch's status and counts."""
        batch = self.client.messages.batches.retrieve(batch_id, timeout=timeout)
        counts = batch.request_counts
        done, failed = int(counts.succeeded), int(counts.errored)
        missing = int(counts.canceled) + int(counts.expired)
        total = done + failed + missing + int(counts.processing)
        status = "running"
        if batch.processing_status == "ended":
            status = "ended"
            if missing and not done and not failed:
                status = "cancelled" if batch.cancel_initiated_at is not None else "expired"
        return BatchState(status, total, done, failed, str(batch.processing_status), batch)

    def outcomes(self, state: BatchState, *, timeout: float) -> dict[str, Outcome]:
        """Every request's result, by custom id."""
        from pytest_llmeval.providers._common import parse_json_reply
        from pytest_llmeval.providers.anthropic import _parse_response

        out: dict[str, Outcome] = {}
        for item in self.client.messages.batches.results(state.raw.id, timeout=timeout):
            result = item.result
            kind = str(result.type)
            if kind == "succeeded":
                message = result.message.model_dump(mode="json")
                try:
                    out[item.custom_id] = Outcome(
                        "ok", parse_json_reply(_parse_response, message, self.spec, self.endpoint)
                    )
                except ProviderError as exc:
                    out[item.custom_id] = Outcome("error", error=str(exc))
            elif kind == "errored":
                data: dict[str, Any] = result.model_dump(mode="json").get("error") or {}
                nested = data.get("error")
                inner: dict[str, Any] = nested if isinstance(nested, dict) else data
                out[item.custom_id] = Outcome(
                    "error", error=f"{inner.get('type', 'error')}: {inner.get('message', data)}"
                )
            else:  # canceled | expired
                out[item.custom_id] = Outcome("missing", error=f"the request was {kind}")
        return out

    def cancel(self, batch_id: str, *, timeout: float) -> str:
        """Ask the provider to cancel; the status it reports."""
        return str(self.client.messages.batches.cancel(batch_id, timeout=timeout).processing_status)


def open_batch_api(provider: Any) -> _OpenAIBatchAPI | _AnthropicBatchAPI | None:
    """The batch API behind ``provider``, or ``None`` when it has none (local models, OpenAI-
    compatible servers named ``openai:NAME@URL``, third-party providers).

    Raises :class:`ProviderError` when the API key is missing.
    """
    from pytest_llmeval.providers.anthropic import AnthropicProvider
    from pytest_llmeval.providers.openai import OpenAIProvider

    if type(provider) is OpenAIProvider and provider.spec.base_url is None:
        return _OpenAIBatchAPI(provider)
    if type(provider) is AnthropicProvider and provider.spec.base_url is None:
        return _AnthropicBatchAPI(provider)
    return None


def _has_batch_api(provider: Any) -> bool:
    from pytest_llmeval.providers.anthropic import AnthropicProvider
    from pytest_llmeval.providers.openai import OpenAIProvider

    return type(provider) in (OpenAIProvider, AnthropicProvider) and provider.spec.base_url is None


def open_batch_api_for(provider: str, model: str, endpoint: str) -> _OpenAIBatchAPI | _AnthropicBatchAPI | None:
    """:func:`open_batch_api` for a batch the store names (the command line has no registry):
    the client talks to ``endpoint``, where the batch was submitted."""
    spec = ModelSpec(provider, model)
    made: Any
    if provider == "openai":
        from pytest_llmeval.providers.openai import OpenAIProvider

        made = OpenAIProvider(spec)
    elif provider == "anthropic":
        from pytest_llmeval.providers.anthropic import AnthropicProvider

        made = AnthropicProvider(spec)
    else:
        return None
    made.endpoint = endpoint.rstrip("/")
    return open_batch_api(made)


# -- the runner ----------------------------------------------------------------------------
@dataclass
class _Item:
    request: Request
    key: str
    custom_id: str
    test_id: str | None


@dataclass
class _Group:
    """The planned requests of one endpoint and model."""

    provider: str
    endpoint: str
    spec: ModelSpec
    api: Any  # the provider until the batch API is opened (run), then the batch API
    items: dict[str, _Item] = field(default_factory=dict)  # by key
    claimed_elsewhere: set[str] = field(default_factory=set)  # another process is submitting them


@dataclass
class _Watch:
    batch_id: str
    group: _Group
    own: bool  # submitted by this run (else found in the store)
    keys: set[str] = field(default_factory=set)  # the keys of this run it answers
    state: BatchState | None = None
    finished: bool = False
    poll_errors: int = 0
    last_error: str = ""


@dataclass
class BatchReport:
    """What batch mode did in this run, for the terminal summary and tests."""

    submitted: list[tuple[str, str, int]] = field(default_factory=list)  # (batch id, model, requests)
    collected: list[tuple[str, str, str]] = field(default_factory=list)  # (batch id, model, status)
    pending: list[tuple[str, str, str]] = field(default_factory=list)  # (batch id, model, progress)
    live_models: list[str] = field(default_factory=list)  # models without a batch API, called live
    notes: list[str] = field(default_factory=list)
    answered: int = 0
    failed: int = 0
    resubmitted: int = 0
    polls: int = 0
    cost_usd: float = 0.0
    live_cost_usd: float = 0.0  # what the same answers would have cost called live
    waited_s: float = 0.0

    def lines(self) -> list[str]:
        """The summary, one line per fact worth saying."""
        out: list[str] = []
        if self.submitted or self.collected:
            requests = sum(n for _, _, n in self.submitted)
            text = (
                f"llmeval batch: {len(self.submitted)} batch(es) submitted ({requests} requests), "
                f"{len(self.collected)} collected, {self.answered} answers, {self.failed} failed, "
                f"{len(self.pending)} pending, {self.polls} polls, waited {self.waited_s:.1f}s"
            )
            if self.resubmitted:
                text += f", {self.resubmitted} resubmitted after an expired or cancelled batch"
            out.append(text)
        if self.answered and self.live_cost_usd > 0:
            out.append(
                f"llmeval batch: cost ~${self.cost_usd:.4f} at the batch price "
                f"(the same calls live: ~${self.live_cost_usd:.4f})"
            )
        if self.live_models:
            out.append(
                f"llmeval batch: {', '.join(self.live_models)} ha{'s' if len(self.live_models) == 1 else 've'} "
                "no batch API: their calls were made live"
            )
        out.extend(self.notes)
        for batch_id, model, progress in self.pending:
            out.append(
                f"llmeval batch: {batch_id} ({model}) is still pending ({progress}); its cases are errors: "
                "rerun to collect it (python -m pytest_llmeval batch list)"
            )
        return out


class _ProgressLine:
    """``llmeval batch: 2 batches, 300 submitted, 120 done, 1 failed, 12s`` redrawn in place."""

    def __init__(self, stream: TextIO | None, clock: Callable[[], float]) -> None:
        self.stream = stream
        self._clock = clock
        self._started = clock()
        self._line = StatusLine(stream)

    def update(self, batches: int, submitted: int, done: int, failed: int) -> None:
        if self.stream is None:
            return
        elapsed = self._clock() - self._started
        text = (
            f"llmeval batch: {batches} batch{'es' if batches != 1 else ''}, {submitted} submitted, "
            f"{done} done, {failed} failed, {elapsed:.0f}s"
        )
        self._line.show(text)

    def close(self) -> None:
        self._line.close()


class BatchRunner:
    """Submits, polls and collects the batches of one run; the planner drives it, one planning
    generation (one level of dependent calls) at a time.

    ``wait_s`` bounds the whole run's waiting for batches (``--llmeval-batch-wait``).
    """

    def __init__(
        self,
        caller: Caller,
        *,
        wait_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.caller = caller
        self.wait_s = wait_s
        self.report = BatchReport()
        self._clock = clock
        self._sleep = sleep
        self._waited = 0.0
        self._said_live: set[str] = set()

    @property
    def timed_out(self) -> bool:
        """Whether the run has used up its wait: later batches are submitted but not waited for."""
        return self._waited >= self.wait_s

    def run(
        self, misses: list[tuple[Request, str | None]], stream: TextIO | None = None
    ) -> list[tuple[Request, str | None]]:
        """Answer ``misses`` through the batch APIs; returns the ones to call live (no batch API,
        or submitting failed). When this returns, every other miss is answered or failed in the
        caller (:meth:`Caller.accept_batch_answer`, :meth:`Caller.fail_planned`)."""
        caller = self.caller
        live: list[tuple[Request, str | None]] = []
        groups: dict[tuple[str, str, str], _Group] = {}
        for request, test_id in misses:
            provider = caller._provider(request)
            if not _has_batch_api(provider):
                # An application's own SDK request (intercept=True) is forwarded as it was sent.
                intercepted = getattr(request, "provider", None) is not None
                name = f"{request.model} (intercepted SDK calls)" if intercepted else str(request.model)
                if name not in self._said_live:
                    self._said_live.add(name)
                    self.report.live_models.append(name)
                live.append((request, test_id))
                continue
            gkey = (request.model.provider, provider.endpoint, request.model.name)
            group = groups.get(gkey)
            if group is None:
                group = groups[gkey] = _Group(gkey[0], gkey[1], request.model, provider)
            key = request.key
            group.items.setdefault(key, _Item(request, key, custom_id_of(key), test_id))
        watches: dict[str, _Watch] = {}
        # One group after the other, the SDK of each imported just before it is submitted: the
        # first batches run while the next SDK imports (anthropic's takes seconds), so its
        # import is paid within the wait. OpenAI's SDK imports faster: it goes first.
        for group in sorted(groups.values(), key=lambda g: g.provider == "anthropic"):
            try:
                group.api = open_batch_api(group.api)
            except LLMEvalError as exc:  # a missing key: the real calls raise the same error
                for key in group.items:
                    caller.fail_planned(key, exc)
                group.items.clear()
                continue
            live += self._claim_and_submit(group, list(group.items.values()), watches)
        if watches or any(g.claimed_elsewhere for g in groups.values()):
            self._wait(groups, watches, live, stream)
        return live

    # -- submitting --------------------------------------------------------------------------
    def _claim_and_submit(
        self, group: _Group, items: list[_Item], watches: dict[str, _Watch]
    ) -> list[tuple[Request, str | None]]:
        """Take what no batch holds yet and submit it; watch the batches holding the rest."""
        caller = self.caller
        store = caller.store
        entries = [(it.key, it.custom_id, it.request.key_payload(), it.test_id) for it in items]
        claim_id, taken = store.claim_batch(
            provider=group.provider, endpoint=group.endpoint, model=group.spec.name, entries=entries,
            run_id=caller.run_id, reuse_answers=caller.mode == "use",
        )  # fmt: skip
        for key, batch_id in taken.items():
            if not batch_id.startswith("claim-") and store.batch_answered(batch_id, key):
                self._take_stored(group, group.items[key], batch_id)
                continue
            if batch_id.startswith("claim-"):
                group.claimed_elsewhere.add(key)  # another process is submitting it right now
                continue
            group.claimed_elsewhere.discard(key)
            watch = watches.get(batch_id)
            if watch is None:
                watch = watches[batch_id] = _Watch(batch_id, group, own=False)
            watch.keys.add(key)
        mine = [it for it in items if it.key not in taken]
        if claim_id is None or not mine:
            return []
        live: list[tuple[Request, str | None]] = []
        try:
            chunks: list[list[tuple[_Item, dict[str, Any]]]] = [[]]
            size = 0
            max_requests, max_bytes = group.api.limits
            for item in mine:
                try:
                    line = group.api.line(item.request, item.custom_id)
                except LLMEvalError as exc:  # e.g. a parameter the provider refuses: the live call says the same
                    caller.fail_planned(item.key, exc)
                    continue
                n = len(_jsonl(line))
                if chunks[-1] and (len(chunks[-1]) >= max_requests or size + n > max_bytes):
                    chunks.append([])
                    size = 0
                chunks[-1].append((item, line))
                size += n
            for i, chunk in enumerate(chunks):
                if not chunk:
                    continue
                try:
                    batch_id = group.api.submit([line for _, line in chunk], timeout=caller.timeout_s)
                except Exception as exc:  # noqa: BLE001 - any SDK failure: these calls are made live instead
                    from pytest_llmeval.providers._common import translate_sdk_error

                    error = translate_sdk_error(exc, model=str(group.spec), endpoint=group.endpoint)
                    rest = [item for c in chunks[i:] for item, _ in c]
                    self.report.notes.append(
                        f"llmeval batch: submitting to {group.endpoint} failed ({error}); "
                        f"its {len(rest)} calls were made live"
                    )
                    live += [(item.request, item.test_id) for item in rest]
                    break
                keys = [item.key for item, _ in chunk]
                store.batch_submitted(claim_id, batch_id, keys)
                watches[batch_id] = _Watch(batch_id, group, own=True, keys=set(keys))
                self.report.submitted.append((batch_id, str(group.spec), len(keys)))
        finally:
            store.release_claim(claim_id)
        return live

    def _take_stored(self, group: _Group, item: _Item, batch_id: str) -> None:
        """A batch of another process (an xdist worker) answered ``item`` after this one planned it."""
        caller = self.caller
        group.claimed_elsewhere.discard(item.key)
        stored = caller.store.get(item.key)
        if stored is None:
            return  # gone again (pruned): the real call makes it live
        cost = estimate_cost(group.spec, Usage.from_dict(stored.get("usage")), caller.prices, batch=True)
        caller.accept_batch_answer(item.request, stored, cost_usd=cost, batch_id=batch_id, key=item.key)

    # -- waiting -----------------------------------------------------------------------------
    def _wait(
        self,
        groups: dict[tuple[str, str, str], _Group],
        watches: dict[str, _Watch],
        live: list[tuple[Request, str | None]],
        stream: TextIO | None,
    ) -> None:
        progress = _ProgressLine(stream, self._clock)
        started = self._clock()
        try:
            while True:
                resubmit: dict[int, tuple[_Group, list[_Item]]] = {}
                for watch in [w for w in watches.values() if not w.finished]:
                    self._poll(watch, resubmit)
                for group, items in resubmit.values():
                    self.report.resubmitted += len(items)
                    live += self._claim_and_submit(group, items, watches)
                for group in groups.values():
                    if group.claimed_elsewhere:
                        # Claimed by another process: taken over once it has submitted (or died).
                        live += self._claim_and_submit(
                            group, [group.items[k] for k in list(group.claimed_elsewhere)], watches
                        )
                states = [w.state for w in watches.values() if w.state is not None]
                progress.update(
                    len(watches), sum(s.total for s in states), sum(s.done for s in states),
                    sum(s.failed for s in states),
                )  # fmt: skip
                unfinished = [w for w in watches.values() if not w.finished]
                if not unfinished and not any(g.claimed_elsewhere for g in groups.values()):
                    break
                left = self.wait_s - self._waited - (self._clock() - started)
                if left <= 0:
                    break
                waited = self._clock() - started
                self._sleep(min(max(FIRST_POLL_S, POLL_SHARE * waited), MAX_POLL_S, left))
        finally:
            progress.close()
            spent = self._clock() - started
            self._waited += spent
            self.report.waited_s += spent
        self._give_up(groups, watches)

    def _poll(self, watch: _Watch, resubmit: dict[int, tuple[_Group, list[_Item]]]) -> None:
        caller = self.caller
        api = watch.group.api
        try:
            self.report.polls += 1
            state = api.state(watch.batch_id, timeout=caller.timeout_s)
            watch.state = state
            if state.status == "running":
                caller.store.update_batch(
                    watch.batch_id, status="submitted", done=state.done, failed=state.failed, detail=state.detail
                )
                return
            outcomes = api.outcomes(state, timeout=caller.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a failed poll is tried again at the next one
            from pytest_llmeval.providers._common import translate_sdk_error

            watch.poll_errors += 1
            watch.last_error = str(translate_sdk_error(exc, model=str(watch.group.spec), endpoint=watch.group.endpoint))
            if watch.poll_errors >= MAX_POLL_ERRORS:
                watch.finished = True  # left pending for this run: a later run polls it again
                self.report.pending.append(
                    (watch.batch_id, str(watch.group.spec), f"polling failed: {watch.last_error}")
                )
                self._fail_keys(watch, watch.last_error)
            return
        watch.poll_errors = 0
        self._collect(watch, state, outcomes, resubmit)

    def _collect(
        self,
        watch: _Watch,
        state: BatchState,
        outcomes: dict[str, Outcome],
        resubmit: dict[int, tuple[_Group, list[_Item]]],
    ) -> None:
        """Store every answer of an ended batch; fail or resubmit what it did not answer."""
        caller = self.caller
        group = watch.group
        spec = group.spec
        batch_id = watch.batch_id
        # The batch's requests as the store knows them: answers of requests this run did not
        # plan (an earlier run's, another process's) are stored for them too.
        entries = {e["custom_id"]: e for e in caller.store.batch_entries(batch_id)}
        for key in watch.keys:
            mine = group.items[key]
            entries.setdefault(mine.custom_id, {"key": key, "request": mine.request.key_payload()})
        states: dict[str, tuple[str, str | None]] = {}
        again: list[_Item] = []
        for custom_id, entry in entries.items():
            key = entry["key"]
            item = group.items.get(key) if key in watch.keys else None
            outcome = outcomes.get(custom_id)
            if outcome is None:
                why = state.detail if state.status == "failed" else f"the batch {state.status} before answering it"
                outcome = Outcome("error" if state.status == "failed" else "missing", error=why)
            if outcome.kind == "ok" and outcome.stored is not None:
                stored = dict(outcome.stored)
                stored["latency_s"] = 0.0  # a batch answer has no latency of its own
                usage = Usage.from_dict(stored.get("usage"))
                cost = estimate_cost(spec, usage, caller.prices, batch=True)
                states[key] = ("done", None)
                if item is not None:
                    caller.accept_batch_answer(item.request, stored, cost_usd=cost, batch_id=batch_id, key=key)
                    self.report.answered += 1
                    self.report.cost_usd += cost
                    self.report.live_cost_usd += estimate_cost(spec, usage, caller.prices)
                elif caller.mode != "off" and entry.get("request"):
                    caller.store.put(key, entry["request"], stored)
                continue
            message = f"{spec}: batch {batch_id}: {outcome.error}"
            if outcome.kind == "missing":
                states[key] = ("missing", outcome.error)
                if item is not None and not watch.own:
                    again.append(item)  # found expired or cancelled: submitted again, only what is missing
                    continue
                message += " (rerun to submit it again)"
            else:
                states[key] = ("error", outcome.error)
            if item is not None:
                caller.fail_planned(key, ProviderError(message))
                self.report.failed += 1
        caller.store.finish_batch_requests(batch_id, states)
        final = state.status if state.status != "running" else "ended"
        caller.store.update_batch(batch_id, status=final, done=state.done, failed=state.failed, detail=state.detail)
        watch.finished = True
        self.report.collected.append((batch_id, str(spec), final))
        if again:
            resubmit.setdefault(id(group), (group, []))[1].extend(again)

    def _give_up(self, groups: dict[tuple[str, str, str], _Group], watches: dict[str, _Watch]) -> None:
        """The wait is over: cases whose answers are still out are errors, not failed answers."""
        for watch in watches.values():
            if watch.finished:
                continue
            state = watch.state
            progress = f"{state.done + state.failed}/{state.total} done" if state is not None else "not polled"
            self.report.pending.append((watch.batch_id, str(watch.group.spec), progress))
            self._fail_keys(watch, f"still running after waiting {self.wait_s:g}s ({progress})")
        for group in groups.values():
            for key in group.claimed_elsewhere:
                self.caller.fail_planned(
                    key,
                    BatchPendingError(
                        f"batch pending, rerun to collect: {group.spec}: another process is submitting this request "
                        "in a batch"
                    ),
                )
            group.claimed_elsewhere.clear()

    def _fail_keys(self, watch: _Watch, why: str) -> None:
        for key in watch.keys:
            self.caller.fail_planned(
                key,
                BatchPendingError(
                    f"batch pending, rerun to collect: {watch.group.spec}: batch {watch.batch_id} {why}; "
                    "the next run collects its answers instead of calling again"
                ),
            )
