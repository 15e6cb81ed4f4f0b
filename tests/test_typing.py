"""mypy runs clean on nngraph_py and lstm with the project's configuration ([tool.mypy] in
pyproject.toml); skipped where mypy is not installed (it is in the dev extra, so CI runs it)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (pip install -e '.[dev]')")
def test_mypy_is_clean_on_the_packages() -> None:
    run = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                          "--config-file", str(ROOT / "pyproject.toml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
