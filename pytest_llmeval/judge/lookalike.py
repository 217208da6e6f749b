"""Reading text the way a model would: look-alike letters, invisible characters and
punctuation folded away, so ``__Ｖｅｒ\u200bdict__ ：`` is seen as ``verdict:``.

Both sides of the judge use it: :func:`~pytest_llmeval.judge.prompt.neutralise` to find every
verdict-like word in the data it escapes, and :mod:`~pytest_llmeval.judge.parsing` to see
verdict lines that only look like one (which then count as contradictions, never as the
verdict). Standard library only (``unicodedata``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["COLON", "EQUALS", "skeleton", "fold_label"]

#: Characters a reader takes for a colon or an equals sign (after NFKD, which already maps
#: the fullwidth, small and vertical forms to ASCII).
COLON = frozenset(":\u2236\ua789\u02f8\u02d0\u02d1\u05c3\u0589\u0703\u0704\u16ec\u2982\ufe30\u205a\u1361")
EQUALS = frozenset("=\ua78a\u1400\u30a0\u2e40\u2261\u2254\u2255\u229c\u2a75\u2a76")
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

# Cyrillic, Greek, Armenian and other letters drawn like Latin ones (Unicode's confusables,
# the part that matters for ASCII words), and Latin letters that NFKD leaves alone.
_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g", "ү": "y", "ѵ": "v", "ѡ": "w", "ԍ": "g",
    "ҽ": "e", "ս": "u", "ց": "g", "օ": "o", "ո": "n", "զ": "q", "հ": "h", "ӑ": "a", "ӓ": "a",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ϳ": "j", "ω": "w",
    "ς": "c", "σ": "o", "μ": "u", "ɩ": "i", "ϱ": "p", "ϵ": "e",
    # Latin and symbols
    "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŀ": "l", "ɑ": "a", "ɛ": "e",
    "ɪ": "i", "ʀ": "r", "ᴅ": "d", "ᴄ": "c", "ᴠ": "v", "ᴛ": "t", "ᴇ": "e", "ʟ": "l", "ᴀ": "a",
    "ꜱ": "s", "ᴏ": "o", "ᴜ": "u", "ɢ": "g", "ɴ": "n", "ᴍ": "m", "ᴋ": "k", "ᴘ": "p", "ᴡ": "w",
    "ℓ": "l", "∨": "v", "ⅴ": "v", "ꓦ": "v", "ꓓ": "d", "ꓰ": "e", "ꓣ": "r", "ꓲ": "i", "ꓚ": "c",
    "ꓔ": "t", "ꓑ": "p", "ꓮ": "a", "ꓢ": "s", "ꓡ": "l", "ꓝ": "f",
}  # fmt: skip
# Escapes a model may decode when it reads: JSON's \uXXXX and numeric character references.
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|&#(\d{1,7});|&#[xX]([0-9a-fA-F]{1,6});")


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """What one character reads as: ``a-z``/``0-9`` letters, ``:``, ``=``, ``\\n``, ``#``
    (a letter or digit of another script, which ends a word), or ``""`` (invisible or mere
    punctuation)."""
    if char in _LINE_BREAKS:
        return "\n"
    if char in COLON:
        return ":"
    if char in EQUALS:
        return "="
    category = unicodedata.category(char)
    if category in ("Cf", "Mn", "Me", "Cc", "Co", "Cn") or category.startswith("Z"):
        return ""  # zero-width joiners, soft hyphens, combining accents, spaces
    out = []
    for part in unicodedata.normalize("NFKD", char):
        if unicodedata.category(part) in ("Mn", "Me"):
            continue
        for low in part.casefold():
            low = _HOMOGLYPHS.get(low, low)
            if low.isascii() and low.isalnum():
                out.append(low)
            elif low in COLON:
                out.append(":")
            elif low in EQUALS:
                out.append("=")
            elif low.isalnum():
                out.append("#")
    return "".join(out)


def skeleton(text: str) -> tuple[str, list[int]]:
    """``text`` as read (see :func:`_fold_char`), and for each of its characters the index
    in ``text`` of the character it came from.

    JSON ``\\uXXXX`` escapes and numeric character references read as the character they
    stand for, since a model quoting or parsing the text may decode them.
    """
    folded: list[str] = []
    origin: list[int] = []
    i, n = 0, len(text)
    while i < n:
        match = _ESCAPE.match(text, i) if text[i] in "\\&" else None
        if match is not None:
            number = match.group(1) or match.group(3)
            code = int(number, 16) if number else int(match.group(2))
            reads = _fold_char(chr(code)) if code <= 0x10FFFF else ""
            # Only letters: an escaped colon cannot end a JSON key, and its `&` is escaped anyway.
            reads = "".join(c for c in reads if c.isalnum() or c == "#")
            end = match.end()
        else:
            reads, end = _fold_char(text[i]), i + 1
        for c in reads:
            folded.append(c)
            origin.append(i)
        i = end
    return "".join(folded), origin


def fold_label(text: str) -> str:
    """A label as read, for comparing labels written with look-alike characters."""
    return skeleton(text)[0].replace("\n", "")
