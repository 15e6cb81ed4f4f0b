"""How many random graphs the property suite ran in this session (printed at its end).

With ``NNGRAPH_PROPERTY_PROGRESS=FILE`` the running count is also written to FILE every 100
graphs (to watch a long run).
"""
from __future__ import annotations

import os

_count = {"graphs": 0}
_PROGRESS = os.environ.get("NNGRAPH_PROPERTY_PROGRESS")


def count() -> None:
    """Record one graph built and checked."""
    _count["graphs"] += 1
    if _PROGRESS and _count["graphs"] % 100 == 0:
        with open(_PROGRESS, "w") as f:
            f.write(f"{_count['graphs']}\n")


def total() -> int:
    """Graphs checked so far in this process."""
    return _count["graphs"]
