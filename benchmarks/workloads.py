"""The benchmark's training tasks and their synthetic data.

Both tasks train the same model in every peer: a 2-layer LSTM, a ``Linear`` head and a softmax
cross-entropy, updated by Adam (learning rate 1e-3). Data are random (seeded): the time of a step
does not depend on the values, and no download is needed.

``mnist``  MNIST read row by row: batch 100, 28 steps of 28 pixels, hidden 128; the last step's
           ``h`` goes through ``Linear(128, 10)``.
``char``   a character language model: batch 32, 50 steps of one-hot vectors over 65 symbols,
           hidden 256; every step's ``h`` goes through ``Linear(256, 65)``, the loss averages all
           ``50 * 32`` predictions.

All arrays are time-major, ``x`` of shape ``(T, batch, input)``; a peer that wants another layout
converts once, outside the timed region.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["Workload", "WORKLOADS", "QUICK", "scaling_points", "make_batches"]


@dataclass(frozen=True)
class Workload:
    """One training task.

    Attributes:
        name: short name (``mnist``, ``char``, or a scaling point such as ``H512_T28``).
        batch: sequences per step.
        steps: time steps ``T``.
        input_size: features per step (the symbols of a one-hot input).
        hidden: hidden size of both layers.
        layers: stacked LSTM layers.
        classes: outputs of the ``Linear`` head.
        every_step: the head and loss read every step (char LM) instead of the last (MNIST).
        one_hot: the input is one-hot symbols instead of dense features.
    """

    name: str
    batch: int
    steps: int
    input_size: int
    hidden: int
    layers: int = 2
    classes: int = 10
    every_step: bool = False
    one_hot: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what travels to a child process as JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Workload":
        """The inverse of :meth:`to_dict`."""
        return cls(**d)

    def describe(self) -> str:
        """One line: sizes and where the loss is read."""
        head = "every step" if self.every_step else "the last step"
        kind = "one-hot " if self.one_hot else ""
        return (f"batch {self.batch}, {self.steps} steps, {kind}input {self.input_size}, "
                f"hidden {self.hidden}, {self.layers} layers, Linear({self.hidden},{self.classes}) "
                f"+ cross-entropy at {head}, Adam")


WORKLOADS = {
    "mnist": Workload("mnist", batch=100, steps=28, input_size=28, hidden=128, classes=10),
    "char": Workload("char", batch=32, steps=50, input_size=65, hidden=256, classes=65,
                     every_step=True, one_hot=True),
}

#: Tiny versions of the workloads, for the smoke test (``--quick``).
QUICK = {
    "mnist": replace(WORKLOADS["mnist"], batch=4, steps=5, input_size=6, hidden=8, classes=3),
    "char": replace(WORKLOADS["char"], batch=3, steps=4, input_size=7, hidden=8, classes=7),
}


def scaling_points(hiddens: list[int], lengths: list[int], batch: int = 32,
                   base_steps: int = 28, base_hidden: int = 128) -> list[Workload]:
    """The MNIST-shaped tasks of the scaling table: hidden sizes at ``base_steps``, then lengths
    at ``base_hidden`` (input 28, 10 classes, loss at the last step)."""
    base = replace(WORKLOADS["mnist"], batch=batch)
    points = [replace(base, name=f"H{h}_T{base_steps}", hidden=h, steps=base_steps)
              for h in hiddens]
    points += [replace(base, name=f"H{base_hidden}_T{t}", hidden=base_hidden, steps=t)
               for t in lengths]
    return points


def make_batches(w: Workload, n: int = 4, seed: int = 0) -> list[tuple[Any, Any]]:
    """``n`` random batches ``(x, y)`` for ``w``, as NumPy arrays.

    Returns:
        ``x`` float32 ``(T, batch, input)``; ``y`` int64 ``(batch,)`` (last step) or
        ``(T, batch)`` (every step).
    """
    import numpy

    rng = numpy.random.default_rng(seed)
    out = []
    for _ in range(n):
        if w.one_hot:
            sym = rng.integers(0, w.input_size, size=(w.steps, w.batch))
            x = numpy.zeros((w.steps, w.batch, w.input_size), dtype=numpy.float32)
            numpy.put_along_axis(x, sym[..., None], 1.0, axis=2)
        else:
            x = rng.random((w.steps, w.batch, w.input_size), dtype=numpy.float32)
        shape = (w.steps, w.batch) if w.every_step else (w.batch,)
        y = rng.integers(0, w.classes, size=shape).astype(numpy.int64)
        out.append((x, y))
    return out
