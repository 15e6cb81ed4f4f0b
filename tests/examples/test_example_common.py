"""examples/common.py: settings restored on --resume, careless values refused, devices.

(The training loop itself is nngraph_py.train: tests/train/.)"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import common  # noqa: E402
from nngraph_py import backend, nn, optim, train  # noqa: E402


def _regression(seed: int = 0):
    """A Linear model and its optimizer."""
    backend.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    return model, optim.Adam(model, lr=0.01)


def test_resume_restores_the_saved_settings_and_flags_win(tmp_path: Path) -> None:
    model, optimizer = _regression()
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    train.save_run(checkpoint, model, optimizer, train.TrainState(epoch=1),
                   {"epochs": 2, "lr": 0.5, "hidden": 7, "out": "elsewhere"})
    parser = common.make_parser("demo", "demo")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=3)
    argv = ["--resume", str(checkpoint), "--epochs", "5"]
    args = common.finish_args(parser, argv, parser.parse_args(argv))
    assert (args.epochs, args.lr, args.hidden) == (5, 0.5, 7)
    assert args.out == checkpoint.parent


def test_resume_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such checkpoint"):
        common.checkpoint_meta(tmp_path / "nothing.npz")


def test_cuda_device_is_explained_when_unavailable() -> None:
    if backend.cuda_available():
        assert common.select_device("cuda") == "cuda"
    else:
        with pytest.raises(SystemExit, match="--device cuda is not available here"):
            common.select_device("cuda")
    assert common.select_device("cpu") == "cpu"


def test_resume_refuses_a_changed_architecture_naming_the_flag(tmp_path: Path) -> None:
    model, optimizer = _regression()
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    train.save_run(checkpoint, model, optimizer, train.TrainState(epoch=1),
                   {"epochs": 2, "hidden": 7})
    parser = common.make_parser("demo", "demo")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--hidden-size", dest="hidden", type=int, default=3)
    argv = ["--resume", str(checkpoint), "--hidden-size", "8"]
    with pytest.raises(SystemExit, match=r"--hidden-size 8 differs from the checkpoint's 7"):
        common.finish_args(parser, argv, parser.parse_args(argv), architecture=("hidden",))
    same = ["--resume", str(checkpoint), "--hidden-size", "7", "--epochs", "4"]
    args = common.finish_args(parser, same, parser.parse_args(same), architecture=("hidden",))
    assert (args.hidden, args.epochs) == (7, 4)


@pytest.mark.parametrize("kind, text, message", [
    (common.positive_int, "0", "must be a positive integer, got 0"),
    (common.nonnegative_int, "-5", "must be an integer >= 0, got -5"),
    (common.positive_float, "nan", "must be a positive number, got nan"),
    (common.positive_float, "-1e-3", "must be a positive number"),
    (common.fraction, "1", r"must be a number in \[0, 1\)"),
    (common.positive_int, "x", "expected a positive integer, got 'x'"),
])
def test_careless_values_are_refused(kind, text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        kind(text)
    parser = argparse.ArgumentParser()
    parser.add_argument("--value", type=kind)
    with pytest.raises(SystemExit):
        parser.parse_args(["--value", text])
