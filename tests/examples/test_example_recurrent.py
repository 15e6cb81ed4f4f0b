"""Smoke tests of examples/mnist_bidirectional.py and examples/variable_length.py: a few steps
on a small MNIST-shaped data set, offline; and the truncation the variable-length task uses."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import mnist_bidirectional  # noqa: E402
import variable_length  # noqa: E402
from nngraph_py.data import write_idx  # noqa: E402
from nngraph_py.data.mnist import MNIST_FILES  # noqa: E402

TINY = ["--limit-train", "120", "--limit-test", "60", "--batch-size", "40", "--hidden", "8"]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits as stripes whose row is the label (learnable in a few steps)."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("test", 80)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, label + 1] = 255
        write_idx(root / MNIST_FILES[f"{split}_images"], images)
        write_idx(root / MNIST_FILES[f"{split}_labels"], labels)
    return root


@pytest.mark.parametrize("extra", [[], ["--cell", "lstm", "--unidirectional"]])
def test_bidirectional_classifier_runs(idx_dir: Path, extra: list[str], capsys) -> None:
    result = mnist_bidirectional.main(["--data-dir", str(idx_dir)] + TINY + extra)
    assert result["steps"] == 3 and 0.0 <= result["test_accuracy"] <= 100.0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("extra", [[], ["--no-lengths", "--pad", "noise"],
                                   ["--bidirectional", "--cell", "rnn"]])
def test_variable_length_runs(idx_dir: Path, extra: list[str]) -> None:
    result = variable_length.main(["--data-dir", str(idx_dir), "--epochs", "2"] + TINY + extra)
    assert result["steps"] == 6 and np.isfinite(result["losses"]).all()


def test_truncation_keeps_the_top_rows_only() -> None:
    images = np.ones((50, 28, 28), np.float32)
    cut, lengths = variable_length.truncate(images, 8, seed=0)
    assert lengths.min() >= 8 and lengths.max() <= 28 and len(set(lengths)) > 5
    for image, n in zip(cut, lengths):
        assert image[:n].all() and not image[n:].any()
    noisy, same = variable_length.truncate(images * 0, 8, seed=0, pad="noise")
    assert (same == lengths).all()
    for image, n in zip(noisy, lengths):
        assert not image[:n].any() and (n == 28 or (image[n:] > 0).mean() > 0.99)
