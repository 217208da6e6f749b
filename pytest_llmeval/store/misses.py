"""Why a replay found nothing: the nearest stored request and the fields that differ."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_llmeval.models import canonical_json

if TYPE_CHECKING:
    from pytest_llmeval.models import Request
    from pytest_llmeval.store.db import Store

__all__ = ["explain_miss", "differing_fields"]

# How much of the prompt the message quotes: enough to recognise it, short enough to read.
_PROMPT_CHARS = 200


def explain_miss(store: Store, request: Request, test_id: str | None) -> str:
    """The message of a replay miss for ``request``: what was asked, where, what is stored
    nearest to it and how to record it. Reading the store is best effort: a damaged entry
    only makes the explanation shorter."""
    where = f"test {test_id}" if test_id else "a call outside a test"
    lines = [
        f"--llmeval-cache=replay: no stored answer for {request.model} in {where} "
        f"(key {request.key[:16]}...; cache {store.path})."
    ]
    wanted = request.key_payload()
    best: list[str] | None = None
    for candidate in store.candidates(request.model.provider, request.model.name):
        differing = differing_fields(wanted, candidate)
        if best is None or len(differing) < len(best):
            best = differing
        if len(best) <= 1:
            break  # one field is as near as a different request gets
    if best is None:
        lines.append(f"The cache holds no answer at all for {request.model}.")
    else:
        lines.append("The nearest stored request differs in: " + ", ".join(best) + ".")
    last_user = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
    if last_user is not None:
        text = str(last_user.get("content"))
        lines.append(f"Prompt: {text[:_PROMPT_CHARS]!r}" + (" ..." if len(text) > _PROMPT_CHARS else ""))
    lines.append("Record it by running once with --llmeval-cache=use and an API key.")
    return "\n".join(lines)


def differing_fields(wanted: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The fields of two request payloads that differ, one level deep: ``params.temperature``,
    ``messages[2]``, ``messages (count 3 stored, 4 asked)``, ``endpoint``."""
    fields: list[str] = []
    for name in sorted(set(wanted) | set(stored)):
        a, b = wanted.get(name), stored.get(name)
        if canonical_json(a) == canonical_json(b):
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            sub = [k for k in sorted(set(a) | set(b)) if canonical_json(a.get(k)) != canonical_json(b.get(k))]
            fields.extend(f"{name}.{k}" for k in sub)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                fields.append(f"{name} (count {len(b)} stored, {len(a)} asked)")
            else:
                fields.extend(
                    f"{name}[{i}]"
                    for i, (x, y) in enumerate(zip(a, b, strict=True))
                    if canonical_json(x) != canonical_json(y)
                )
        else:
            fields.append(name)
    return fields
