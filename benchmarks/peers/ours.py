"""Our two entries: the recipe LSTM run as graphs, and the same cells run by ``FusedLSTM``.

Both build the same parameters (``lstm.LSTM`` with the recipe cells, a ``nn.Linear`` head, in
one container whose flat buffers ``optim.Adam`` updates), so with the same seed they start from
identical weights; ``benchmarks.guard`` checks that they also compute the same losses and
gradients.

``nngraph recipe (graph)``      ``lstm.LSTM(..., optimize=False)``: per-step clones of the cell
                                ``gModule``, run node by node.
``nngraph optimized``           ``lstm.LSTM(...).optimize(kernels="numpy")``: the same prototype
                                cells run by the graph optimizer's ``lstm.fast.FusedLSTM`` with
                                plain NumPy array passes (same Linears, same gradients).

The third entry, ``nngraph optimized + numba`` (:mod:`.ours_numba`), is the same with the
optional compiled step kernels.

Both go through ``LSTM.forward`` / ``LSTM.backward``, the API a user calls.
"""
from __future__ import annotations

from typing import Any

from lstm import LSTM
from nngraph_py import backend, nn, optim

from .base import LEARNING_RATE, Peer

__all__ = ["NNGraphRecipe", "NNGraphOptimized"]


class NNGraphRecipe(Peer):
    """The recipe LSTM, unrolled by clones of the cell graph (plain graph execution)."""

    label = "nngraph recipe (graph)"
    framework = "nngraph_py"
    #: ``LSTM(optimize=...)``: False runs the cell graphs node by node.
    optimize = False
    #: ``LSTM.optimize(kernels=...)`` when optimized: the per-step element-wise work.
    kernels = "numpy"

    def __init__(self, workload: Any, seed: int = 0):
        super().__init__(workload, seed)
        w = workload
        backend.manual_seed(seed)
        self.lstm = LSTM(w.input_size, w.hidden, w.layers, batch_first=False,
                         optimize=self.optimize)
        if self.optimize:
            self.lstm.optimize(kernels=self.kernels)
        self.head = nn.Linear(w.hidden, w.classes)
        self.model = nn.Container(self.lstm, self.head)
        self.criterion = nn.CrossEntropyCriterion()
        self.optimizer = optim.Adam(self.model, lr=LEARNING_RATE)  # flattens the parameters
        self._grad_out = None  # (T, B, H) zeros but the last step, when the loss reads only it

    def prepare(self, x: Any, y: Any) -> tuple[Any, Any]:
        return x, (y.reshape(-1) if self.w.every_step else y)

    # ---- the phases ----------------------------------------------------------------------
    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def forward(self, x: Any, train: bool = True) -> None:
        self._x = x
        out, _ = self.lstm.forward(x)
        T, B, H = out.shape
        self._feat = out.reshape(T * B, H) if self.w.every_step else out[T - 1]
        self._logits = self.head.forward(self._feat)

    def loss(self, y: Any) -> float:
        self._y = y
        return self.criterion.forward(self._logits, y)

    def backward(self) -> None:
        g_logits = self.criterion.backward(self._logits, self._y)
        g_feat = self.head.backward(self._feat, g_logits)
        T, B = int(self._x.shape[0]), int(self._x.shape[1])
        H = self.w.hidden
        if self.w.every_step:
            grad_outputs = g_feat.reshape(T, B, H)
        else:
            if self._grad_out is None or self._grad_out.shape != (T, B, H):
                self._grad_out = backend.get_array_module(g_feat).zeros((T, B, H), g_feat.dtype)
            self._grad_out[T - 1] = g_feat  # the other steps stay zero
            grad_outputs = self._grad_out
        self.lstm.backward(self._x, grad_outputs)

    def update(self) -> None:
        self.optimizer.step()

    def versions(self) -> dict[str, str]:
        import numpy

        import nngraph_py

        return {"nngraph_py": nngraph_py.__version__, "numpy": numpy.__version__}


class NNGraphOptimized(NNGraphRecipe):
    """The same cells and head; the LSTM runs the graph optimizer's ``FusedLSTM`` (NumPy passes)."""

    label = "nngraph optimized (FusedLSTM)"
    optimize = True
