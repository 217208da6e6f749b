"""One eval, several models: each case runs once per model and each model gets its own
pass rate in the summary.

The two models here are the embedded SmolLM2 and the same weights behind llama.cpp's
OpenAI-compatible server (`openai:NAME@URL`, the form for Ollama, vLLM and llama.cpp).
Their answers are in the recording, so no server is needed to replay them; to call the
server for real, start it as examples/rerecord.py does. In your project, list the models
you compare: models=["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]. A
--llmeval-model on the command line replaces this list.
"""

import pytest

from pytest_llmeval import cases, includes

SERVER = "openai:smollm2@http://127.0.0.1:8765/v1"


# SmolLM2-135M: 5 of 6 on both models (it calls one negative review positive).
@pytest.mark.llmeval(models=["local:smollm2", SERVER], min_pass_rate=0.8)
@pytest.mark.parametrize("case", cases("data/reviews.jsonl"))
def test_sentiment(llm, case):
    answer = llm(
        f"Review: {case['review']}\nIs this review positive or negative? Answer with one word.",
        temperature=0,
        max_tokens=8,
    )
    assert includes(answer, case["label"])
