"""Smoke test of examples/pytorch_network.py: seed 004's network, printed and stepped."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import pytorch_network  # noqa: E402

SEED_PRINT = """LSTMNetwork(
  (lstm): LSTM(10, 20, 2)
  (fc): Linear(in_features=20, out_features=1, bias=True)
)"""


def test_prints_like_the_seed_and_the_loss_decreases(tmp_path: Path, capsys) -> None:
    metrics = pytorch_network.main(["--out", str(tmp_path), "--no-progress"])
    assert SEED_PRINT in capsys.readouterr().out
    assert metrics["steps"] == 1 and metrics["loss_decreased"]
    assert (tmp_path / "checkpoint.npz").is_file()
    if importlib.util.find_spec("torch") is not None:
        assert metrics["max_abs_diff_vs_torch"] < 1e-3


def test_more_steps_and_resume(tmp_path: Path) -> None:
    pytorch_network.main(["--out", str(tmp_path), "--steps", "3", "--no-progress", "--no-torch"])
    assert (tmp_path / "loss.png").is_file()
    metrics = pytorch_network.main(["--resume", str(tmp_path / "checkpoint.npz"), "--steps", "5",
                                    "--no-progress"])
    assert metrics["steps"] == 5 and len(metrics["losses"]) == 5
    assert metrics["losses"][-1] < metrics["losses"][0]


def test_runs_on_the_strict_backend(tmp_path: Path) -> None:
    metrics = pytorch_network.main(["--out", str(tmp_path), "--device", "strict", "--no-torch",
                                    "--no-progress"])
    assert metrics["loss_decreased"]
