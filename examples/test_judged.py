"""Model-graded: a judge model decides whether each answer meets the criteria.

The `judge` fixture grades with the model named by --llmeval-judge (or ini llmeval_judge,
or the marker's judge=) at temperature 0, through the same cache as every call. The answer
under test is passed to the judge as delimited data, so it cannot talk its way to a pass.
A judge reply that gives no clear verdict is a test *error*, never a pass.

Here the judge is SmolLM2-135M grading itself (allowed by llmeval_allow_self_judge in
pytest.ini), so the example runs offline. It shows the mechanics, not good grading: the
four answers are roughly right and it passes all four, but its reasoning is gibberish, and
in our trials it also passed "The capital of France is Lyon." against "States that Paris
is the capital of France". Use a strong judge for real evals:
`pytest examples/test_judged.py --llmeval-judge openai:gpt-4o`.
"""

import pytest

QUESTIONS = [
    pytest.param("Why is the sky blue? Answer in one sentence.",
                 "Mentions that sunlight is scattered by the air", id="sky"),
    pytest.param("How do I make a cup of tea? Answer in two sentences.",
                 "Says to put tea in hot water", id="tea"),
    pytest.param("What causes the seasons on Earth? Answer in one sentence.",
                 "Mentions the tilt of the Earth's axis", id="seasons"),
    pytest.param("Why does ice float on water? Answer in one sentence.",
                 "Says that ice is less dense than water", id="ice"),
]  # fmt: skip


@pytest.mark.llmeval(min_pass_rate=0.75)  # SmolLM2-135M as its own judge: 4 of 4
@pytest.mark.parametrize("question, criteria", QUESTIONS)
def test_explanation(llm, judge, question, criteria):
    answer = llm(question, temperature=0, max_tokens=80)
    assert judge(answer, criteria, input=question)
