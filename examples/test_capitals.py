"""Exact match over a JSONL file, gated on the pass rate.

Each line of data/capitals.jsonl is one case (its "id" is the test id). Two worked
examples in the conversation teach the model the answer format ("Paris", not "The capital
of France is Paris."), so the answer can be compared exactly.
"""

import pytest

from pytest_llmeval import cases, exact

FEW_SHOT = [
    {"role": "system", "content": "Answer with one word."},
    {"role": "user", "content": "What is the capital of Chile?"},
    {"role": "assistant", "content": "Santiago"},
    {"role": "user", "content": "What is the capital of Austria?"},
    {"role": "assistant", "content": "Vienna"},
]


# SmolLM2-135M gets 7 of these 12 right (58%: it says Toronto for Canada, Lagos for Greece).
# The gate sits just below, so a prompt change that costs one more answer fails the run.
# A large model gets them all: raise the gate when you test one.
@pytest.mark.llmeval(min_pass_rate=0.5)
@pytest.mark.parametrize("case", cases("data/capitals.jsonl"))
def test_capital(llm, case):
    question = {"role": "user", "content": f"What is the capital of {case['country']}?"}
    answer = llm.chat([*FEW_SHOT, question], temperature=0, max_tokens=10).text
    assert exact(answer, case["capital"])
