"""Ticket triage: a label for each ticket, and a streamed first reply to the customer."""

from __future__ import annotations

import os

import openai

# Module-level clients, made when the module is imported (before any test runs), as most apps do.
client = openai.OpenAI()
async_client = openai.AsyncOpenAI()

MODEL = os.environ.get("TRIAGE_MODEL", "gpt-4o-mini")
LABELS = ("billing", "bug", "account", "other")

CLASSIFY = "You sort customer support tickets into queues."
QUESTION = "Ticket: {text}\nWhich queue is it: billing, bug, account or other? Answer with one word."
REPLY = "You are a friendly support agent. Write a two-sentence first reply to this ticket."


def classify_ticket(text: str) -> str:
    """The queue of a ticket: one of :data:`LABELS` ("other" when the model names none)."""
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": CLASSIFY}, {"role": "user", "content": QUESTION.format(text=text)}],
        temperature=0,
        max_tokens=8,
    )
    words = (reply.choices[0].message.content or "").lower().replace(".", " ").split()
    return next((w for w in words if w in LABELS), "other")


async def draft_reply(text: str) -> str:
    """A first reply to the customer, streamed (the app shows it as it arrives)."""
    stream = await async_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": REPLY}, {"role": "user", "content": text}],
        temperature=0,
        max_tokens=60,
        stream=True,
    )
    parts = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts).strip()
