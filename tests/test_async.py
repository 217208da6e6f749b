"""Async tests: ``await llm.acall(...)`` / ``await llm.achat(...)`` and async app clients.

Run under anyio's pytest plugin (installed with the SDKs), asyncio backend, against
tests/fakeapi.py; concurrency is shown by the server's peak of requests in flight.
"""

from __future__ import annotations

import sqlite3

import pytest
from fakeapi import FakeAPI

ASYNC_APP = """
import anthropic
import openai

client = openai.AsyncOpenAI()  # module level, made at import time
claude = anthropic.AsyncAnthropic()


async def summarize(text):
    parts = []
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


async def claude_stream(text):
    async with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": text}]
    ) as stream:
        return "".join([t async for t in stream.text_stream])


async def respond(text):
    reply = await client.responses.create(model="gpt-4o-mini", input=text)
    return reply.output_text
"""


@pytest.fixture(autouse=True)
def _asyncio_only(pytester: pytest.Pytester) -> None:
    # asyncio only: the trio installed here is older than what anyio 4.16's thread helper needs.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        """
    )


def rows(pytester: pytest.Pytester) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(pytester.path / ".llmeval" / "cache.db")
    try:
        return list(db.execute("SELECT test_id, role, cached FROM calls ORDER BY rowid"))
    finally:
        db.close()


def test_acall_and_achat_use_the_cache_and_the_log(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.anyio
        async def test_async(llm):
            assert await llm.acall("hello") == "echo: hello"
            completion = await llm.achat([{"role": "user", "content": "there"}])
            assert completion.text == "echo: there" and completion.usage.output_tokens == 2
            assert [c.text for c in llm.calls] == ["echo: hello", "echo: there"]
        """
    )
    pytester.runpytest("--llmeval-model", "openai:gpt-4o-mini", "-p", "no:randomly").assert_outcomes(passed=1)
    assert fake_api.count() == 2
    result = pytester.runpytest("--llmeval-model", "openai:gpt-4o-mini", "--llmeval-cache=replay")
    result.assert_outcomes(passed=1)
    assert fake_api.count() == 2
    assert [r[2] for r in rows(pytester)] == [0, 0, 1, 1]
    assert all(r[0].endswith("test_async[openai:gpt-4o-mini]") and r[1] == "llm" for r in rows(pytester))


def test_concurrent_awaits_are_in_flight_together(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.latency = 0.3
    pytester.makepyfile(
        """
        import anyio
        import pytest

        @pytest.mark.anyio
        async def test_gather(llm):
            answers = {}

            async def one(i):
                answers[i] = await llm.acall(f"q{i}")

            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(one, i)
            assert answers == {i: f"echo: q{i}" for i in range(6)}
        """
    )
    pytester.runpytest("--llmeval-model", "openai:gpt-4o-mini", "--llmeval-concurrency", "8").assert_outcomes(passed=1)
    assert fake_api.count() == 6
    assert fake_api.peak_in_flight >= 3


def test_an_async_app_is_intercepted_streamed_and_replayed(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(asyncapp=ASYNC_APP)
    pytester.makepyfile(
        """
        import anyio
        import pytest
        from asyncapp import claude_stream, respond, summarize

        @pytest.mark.anyio
        @pytest.mark.llmeval(intercept=True)
        async def test_app():
            assert await summarize("a long ticket") == "echo: a long ticket"
            assert await claude_stream("short") == "echo: short"
            assert await respond("why") == "echo: why"

        @pytest.mark.anyio
        @pytest.mark.llmeval(intercept=True)
        async def test_together():
            results = {}

            async def one(i):
                results[i] = await summarize(f"t{i}")

            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(one, i)
            assert results == {i: f"echo: t{i}" for i in range(5)}
        """
    )
    fake_api.latency = 0.3
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    assert fake_api.count() == 8
    assert fake_api.peak_in_flight >= 3  # the five awaits of test_together went out together
    pytester.runpytest("-p", "no:randomly", "--llmeval-cache=replay").assert_outcomes(passed=2)
    assert fake_api.count() == 8
    assert {r[1] for r in rows(pytester)} == {"app"}


def test_an_async_replay_miss_is_an_error(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(asyncapp=ASYNC_APP)
    pytester.makepyfile(
        """
        import pytest
        from asyncapp import summarize

        @pytest.mark.anyio
        @pytest.mark.llmeval(intercept=True)
        async def test_app():
            await summarize("never recorded")
        """
    )
    result = pytester.runpytest("--llmeval-cache=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CacheMissError*no stored answer for openai:gpt-4o-mini*"])
    assert fake_api.count() == 0
