"""A key for the check results that recur across a big run's cases, so a report converts
each distinct one once.

Thirty thousand cases usually hold a handful of distinct check results (``{"name":
"exact", "passed": True, "explanation": "compared"}``), each in a dict of its own. A report
that keys its converted form by :func:`content_key` writes the same bytes it would write
converting every one: two results share a key only when they hold the same keys and the
same values of the same types, so nothing a report does with them can tell them apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["content_key"]

# Values whose equality is identity of content: 1 == True == 1.0 apart, which the types in
# the key tell apart, and 0.0 == -0.0, which content_key refuses.
_ATOMS = frozenset({str, int, float, bool, type(None)})
# Keys: strings only (a key 1 would equal a key True).
_KEYS = frozenset({str})


def content_key(mapping: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """A hashable key that only mappings with the same content share, or ``None`` when
    ``mapping`` is not a dict of string keys and string, number, boolean or ``None`` values."""
    if type(mapping) is not dict:
        return None
    values = tuple(mapping.values())
    types = tuple(map(type, values))
    if not _ATOMS.issuperset(types) or not _KEYS.issuperset(map(type, mapping)):
        return None
    if 0.0 in values and any(type(v) is float and v == 0.0 and math.copysign(1.0, v) < 0 for v in values):
        return None  # -0.0 equals 0.0 but prints as "-0.0"
    return (tuple(mapping), values, types)
