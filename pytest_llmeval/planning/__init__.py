"""The planning pass: eval tests run invisibly up to their first uncached model call, so the
calls of plain synchronous tests can be made N at a time."""
