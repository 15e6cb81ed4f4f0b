"""examples/common.py: Ctrl-C saves a checkpoint, resume continues exactly; settings, devices."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import common  # noqa: E402
from nngraph_py import backend, nn, optim  # noqa: E402


def _regression(seed: int = 0):
    """A Linear model, its optimizer and a fixed data set of 64 examples."""
    backend.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
    optimizer = optim.Adam(model, lr=0.01)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True).astype(np.float32)
    return model, optimizer, x, y


def _train(tmp_path: Path, state: common.RunState, model, optimizer, x, y, epochs: int = 3,
           interrupt_at: int = 0) -> common.RunState:
    criterion = nn.MSECriterion()
    checkpoint = tmp_path / "checkpoint.npz"

    def epoch_batches(epoch: int) -> list:
        order = np.random.default_rng([7, epoch]).permutation(len(x))
        return [order[i:i + 16] for i in range(0, len(x), 16)]

    def train_step(index: np.ndarray) -> tuple[float, int]:
        optimizer.zero_grad()
        out = model.forward(x[index])
        loss = criterion.forward(out, y[index])
        model.backward(x[index], criterion.backward(out, y[index]))
        optimizer.step()
        if interrupt_at and state.global_step + 1 == interrupt_at:
            signal.raise_signal(signal.SIGINT)  # as a Ctrl-C arriving during this step
        return float(loss), len(index)

    return common.fit(state=state, epochs=epochs, epoch_batches=epoch_batches,
                      train_step=train_step, progress=False,
                      save=lambda s: common.save_run(checkpoint, model, optimizer, s, {"lr": 0.01}),
                      evaluate=lambda s: {"loss": s.losses[-1]})


def test_ctrl_c_saves_a_checkpoint_and_resume_continues_exactly(tmp_path: Path) -> None:
    model, optimizer, x, y = _regression()
    unbroken = _train(tmp_path / "a", common.RunState(), model, optimizer, x, y)
    reference = model.get_parameters()[0].copy()

    model, optimizer, x, y = _regression()
    with pytest.raises(SystemExit) as exit_info:
        _train(tmp_path / "b", common.RunState(), model, optimizer, x, y, interrupt_at=6)
    assert exit_info.value.code == 130
    checkpoint = tmp_path / "b" / "checkpoint.npz"
    meta = common.checkpoint_meta(checkpoint)
    assert meta["run"]["global_step"] == 6 and meta["run"]["epoch"] == 1
    assert meta["run"]["step"] == 2
    assert signal.getsignal(signal.SIGINT) is not None  # the handler was put back

    model, optimizer, x, y = _regression(seed=99)  # other weights: all come from the checkpoint
    state = common.resume_run(checkpoint, model, optimizer, seed=0)
    resumed = _train(tmp_path / "b", state, model, optimizer, x, y)
    assert resumed.global_step == unbroken.global_step == 12
    assert resumed.losses == pytest.approx(unbroken.losses, rel=1e-6)
    np.testing.assert_allclose(model.get_parameters()[0], reference, rtol=1e-6)


def test_resume_restores_the_saved_settings_and_flags_win(tmp_path: Path) -> None:
    model, optimizer, _, _ = _regression()
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    common.save_run(checkpoint, model, optimizer, common.RunState(epoch=1),
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


def test_schedule_is_a_function_of_the_step() -> None:
    model, optimizer, _, _ = _regression()
    set_lr = common.lr_schedule(optimizer, "cosine", 0.1, total_steps=10)
    assert set_lr(0) == pytest.approx(0.1) and optimizer.lr == pytest.approx(0.1)
    assert set_lr(5) == pytest.approx(0.05) and set_lr(10) == pytest.approx(0.0)
