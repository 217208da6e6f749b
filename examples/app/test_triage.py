"""Evaluating an application, not a prompt: triage/support.py calls the OpenAI SDK itself.

``intercept=True`` serves the app's own SDK calls through the plugin (cache, replay, call
log, costs, the model matrix): the module-level clients in triage/support.py are used
unchanged. Because the test asks for ``llm``, the app's requests go to the model under
test, here SmolLM2 behind llama.cpp's OpenAI-compatible server (as in test_models.py); with
``--llmeval-model openai:gpt-4o-mini`` the same unchanged app runs on that model. Its
answers are in the recording, so replay needs neither the server nor an API key.
"""

import pytest
from triage import LABELS, classify_ticket, draft_reply

from pytest_llmeval import cases, exact

SERVER = "openai:smollm2@http://127.0.0.1:8765/v1"


# SmolLM2-135M: 1 of 6 (it files nearly every ticket under billing); the app is written for
# gpt-4o-mini, which a --llmeval-model openai:gpt-4o-mini run (with a key) measures.
@pytest.mark.llmeval(models=[SERVER], intercept=True, min_pass_rate=0.15)
@pytest.mark.parametrize("case", cases("data/tickets.jsonl"))
def test_classify_ticket(llm, case):
    label = classify_ticket(case["text"])
    assert label in LABELS
    assert exact(label, case["label"])


@pytest.mark.anyio
@pytest.mark.llmeval(models=[SERVER], intercept=True, min_pass_rate=1.0)
@pytest.mark.parametrize("case", cases("data/tickets.jsonl"))
async def test_draft_reply(llm, case):
    reply = await draft_reply(case["text"])
    assert reply, "the streamed reply is empty"
    # What the app sent and got, as the plugin saw it: one streamed call to the model under test.
    (call,) = llm.calls
    assert call.text.strip() == reply and call.model
