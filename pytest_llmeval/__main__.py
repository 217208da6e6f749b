"""``python -m pytest_llmeval``: the cache, fine-tuning export and report commands."""

from __future__ import annotations

import sys

from pytest_llmeval.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())
