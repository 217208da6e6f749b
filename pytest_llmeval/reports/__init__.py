"""Reports rendered from the one results document: terminal summary, JUnit XML, Markdown,
JSON and HTML. Each is a pure function of that document."""
