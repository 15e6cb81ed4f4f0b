"""Smoke test of examples/mnist_resnet.py: a few steps on a small synthetic IDX data set."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import mnist_resnet  # noqa: E402
from nngraph_py import nn  # noqa: E402
from nngraph_py.data import write_idx  # noqa: E402
from nngraph_py.data.mnist import MNIST_FILES  # noqa: E402


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits are bright rows whose position is the label."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 96), ("test", 40)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4] = 255
        write_idx(root / MNIST_FILES[f"{split}_images"], images)
        write_idx(root / MNIST_FILES[f"{split}_labels"], labels)
    return root


def test_resnet_trains_a_few_steps(idx_dir: Path) -> None:
    result = mnist_resnet.main(["--data-dir", str(idx_dir), "--width", "2", "--batch-size", "32",
                                "--print-every", "1"])
    assert result["train_images"] == 96 and 0 <= result["test_accuracy"] <= 100


def test_resnet_is_made_of_the_lua_idiom() -> None:
    model = mnist_resnet.build_model(4)
    kinds = {type(m) for m in model.modules()}
    assert {nn.ConcatTable, nn.CAddTable, nn.SpatialConvolution, nn.SpatialBatchNormalization,
            nn.ReLU} <= kinds
    assert model.forward(np.zeros((2, 1, 28, 28), "float32")).shape == (2, 10)
