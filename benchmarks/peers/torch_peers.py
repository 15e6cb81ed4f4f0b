"""PyTorch on the CPU: the fused ``nn.LSTM`` and a Python loop over ``nn.LSTMCell``.

The model is the benchmark's (2-layer LSTM, ``nn.Linear`` head, ``F.cross_entropy``,
``torch.optim.Adam`` with its defaults but the learning rate), time-major as the other peers.

``torch.optim``'s optimizers import ``torch._dynamo`` when the first one is built (about 70 MB
and a second on a 2-core VM). It is imported with ``torch`` here, so that the memory reading
"after import" holds everything a training step loads, and the step's own memory is not
inflated by a late import.
"""
from __future__ import annotations

from typing import Any

import torch
import torch._dynamo  # noqa: F401 - see below
import torch.nn.functional as F

from .base import LEARNING_RATE, Peer

__all__ = ["TorchLSTM", "TorchLSTMCellLoop"]


class TorchLSTM(Peer):
    """``torch.nn.LSTM`` (one fused kernel per layer and direction) + ``nn.Linear``."""

    label = "PyTorch nn.LSTM"
    framework = "torch"

    def __init__(self, workload: Any, seed: int = 0):
        super().__init__(workload, seed)
        w = workload
        torch.manual_seed(seed)
        self._build()
        self.head = torch.nn.Linear(w.hidden, w.classes)
        params = [p for m in self.modules() for p in m.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)

    def _build(self) -> None:
        w = self.w
        self.lstm = torch.nn.LSTM(w.input_size, w.hidden, w.layers)

    def modules(self) -> list[torch.nn.Module]:
        """The modules holding parameters (LSTM first, head last)."""
        return [self.lstm, self.head]

    def _run_lstm(self, x: Any) -> Any:
        out, _ = self.lstm(x)
        return out

    def prepare(self, x: Any, y: Any) -> tuple[Any, Any]:
        y = y.reshape(-1) if self.w.every_step else y
        return torch.from_numpy(x), torch.from_numpy(y)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()  # set_to_none, PyTorch's default

    def forward(self, x: Any, train: bool = True) -> None:
        out = self._run_lstm(x)
        feat = out.reshape(-1, self.w.hidden) if self.w.every_step else out[-1]
        self._logits = self.head(feat)

    def loss(self, y: Any) -> float:
        self._loss = F.cross_entropy(self._logits, y)
        return float(self._loss.item())

    def backward(self) -> None:
        self._loss.backward()

    def update(self) -> None:
        self.optimizer.step()

    def no_grad(self) -> Any:
        return torch.no_grad()

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}


class TorchLSTMCellLoop(TorchLSTM):
    """A Python loop over time of stacked ``nn.LSTMCell`` (the hand-unrolled PyTorch model)."""

    label = "PyTorch LSTMCell loop"

    def _build(self) -> None:
        w = self.w
        self.cells = torch.nn.ModuleList(
            [torch.nn.LSTMCell(w.input_size if k == 0 else w.hidden, w.hidden)
             for k in range(w.layers)])

    def modules(self) -> list[torch.nn.Module]:
        return [self.cells, self.head]

    def _run_lstm(self, x: Any) -> Any:
        T, B = x.shape[0], x.shape[1]
        zeros = x.new_zeros((B, self.w.hidden))
        state = [(zeros, zeros) for _ in self.cells]
        outs = []
        for t in range(T):
            inp = x[t]
            for k, cell in enumerate(self.cells):
                state[k] = cell(inp, state[k])
                inp = state[k][0]
            outs.append(inp)
        return torch.stack(outs) if self.w.every_step else outs[-1].unsqueeze(0)
