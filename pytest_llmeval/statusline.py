"""One terminal line redrawn in place: what the planning pass and batch mode show while
model calls are in flight. Shared, so both draw and erase it the same way."""

from __future__ import annotations

import shutil
from typing import TextIO

__all__ = ["StatusLine"]


class StatusLine:
    """Draws ``text`` over the previous one with ``"\\r"``, cut to the terminal's width (a
    longer line wraps, and ``"\\r"`` would then redraw only its tail); :meth:`close` erases
    it, leaving the cursor where it was. ``stream`` ``None`` makes both no-ops."""

    def __init__(self, stream: TextIO | None, *, width: int | None = None) -> None:
        self.stream = stream
        self._width = width
        self._shown = 0  # length of the line on screen

    def show(self, text: str) -> None:
        if self.stream is None:
            return
        width = self._width or shutil.get_terminal_size((80, 24)).columns
        text = text[: max(10, width - 1)]
        self.stream.write("\r" + text.ljust(self._shown))
        self.stream.flush()
        self._shown = len(text)

    def close(self) -> None:
        if self.stream is not None and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0
