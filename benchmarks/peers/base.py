"""What every peer implements: one model, one training step, split in phases.

A peer builds the benchmark's model in its framework (a 2-layer LSTM, a ``Linear`` head,
softmax cross-entropy, Adam with learning rate :data:`LEARNING_RATE`) and runs a step as
``zero_grad``, ``forward``, ``loss``, ``backward``, ``update``. The phases are separate methods
so that ``--profile`` can time each one; :meth:`Peer.train_step` runs them in order.
"""
from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["Peer", "LEARNING_RATE"]

#: Adam's learning rate in every peer (the other hyper-parameters are each framework's defaults,
#: which agree: betas 0.9 / 0.999, epsilon 1e-8).
LEARNING_RATE = 1e-3


class Peer:
    """Base class of the benchmarked implementations.

    Args:
        workload: a :class:`benchmarks.workloads.Workload`.
        seed: seeds the framework's parameter initialisation.

    Attributes:
        label: the name printed in the tables.
        framework: the package whose version the tables report.
    """

    label = ""
    framework = ""

    def __init__(self, workload: Any, seed: int = 0):
        self.w = workload
        self.seed = seed

    # ---- data ----------------------------------------------------------------------------
    def prepare(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Convert a NumPy batch to the peer's arrays and layout (outside the timed region)."""
        return x, y

    # ---- the phases of a step ----------------------------------------------------------------
    def zero_grad(self) -> None:
        """Clear the parameter gradients."""
        raise NotImplementedError

    def forward(self, x: Any, train: bool = True) -> None:
        """Run the LSTM and the head; keep the logits (and what backward needs)."""
        raise NotImplementedError

    def loss(self, y: Any) -> float:
        """Cross-entropy of the kept logits against ``y``, as a Python float."""
        raise NotImplementedError

    def backward(self) -> None:
        """Gradients of the last loss w.r.t. every parameter."""
        raise NotImplementedError

    def update(self) -> None:
        """One Adam step."""
        raise NotImplementedError

    def no_grad(self) -> Any:
        """A context in which ``forward`` keeps no graph for backward (inference)."""
        return contextlib.nullcontext()

    # ---- whole steps ---------------------------------------------------------------------
    def train_step(self, x: Any, y: Any) -> float:
        """A full training step: forward, loss, backward and the Adam update. Returns the loss."""
        self.zero_grad()
        self.forward(x, train=True)
        loss = self.loss(y)
        self.backward()
        self.update()
        return loss

    def eval_step(self, x: Any, y: Any) -> float:
        """Forward and loss only, with no graph kept for backward. Returns the loss."""
        with self.no_grad():
            self.forward(x, train=False)
            return self.loss(y)

    def versions(self) -> dict[str, str]:
        """``{package: version}`` of what this peer runs on."""
        return {}
