"""The property suite reports how many random graphs it checked (NNGRAPH_HYPOTHESIS=long for
thousands; see tests/conftest.py for the profiles)."""
from __future__ import annotations

import os

import prop_counter
from hypothesis import settings


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    n = prop_counter.total()
    if n:
        terminalreporter.write_line(
            f"property suite: {n} random graphs checked against torch "
            f"(hypothesis profile {settings.get_current_profile_name()!r})")
        path = os.environ.get("NNGRAPH_PROPERTY_COUNT_FILE")
        if path:
            with open(path, "a") as f:
                f.write(f"{n}\n")
