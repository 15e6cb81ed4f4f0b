"""How many random graphs the property suite ran in this session (printed at its end)."""
from __future__ import annotations

_count = {"graphs": 0}


def count() -> None:
    """Record one graph built and checked."""
    _count["graphs"] += 1


def total() -> int:
    """Graphs checked so far in this process."""
    return _count["graphs"]
