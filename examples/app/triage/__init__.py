"""A small support-ticket triage app: the code under test of examples/app/test_triage.py.

It knows nothing about pytest-llmeval: it calls the OpenAI SDK itself, through clients made
at import time, as application code does.
"""

from __future__ import annotations

from triage.support import LABELS, classify_ticket, draft_reply

__all__ = ["LABELS", "classify_ticket", "draft_reply"]
