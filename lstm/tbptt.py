"""Truncated backpropagation through time (char-rnn's training loop, Lua rnn's ``remember()``).

A long sequence is cut into chunks of ``chunk_len`` steps. The final state of a chunk is the
initial state of the next one (char-rnn's ``init_state_global``), so the forward pass sees the whole
history; the gradient, though, stops at the chunk's start: backward runs through the chunk only
and the gradient w.r.t. the carried-in state is dropped. :meth:`TruncatedBPTT.reset` starts again
from zeros (a new epoch, or new sequences).
"""
from __future__ import annotations

from typing import Any, Iterator

from nngraph_py.errors import InputError
from nngraph_py.module import Array

from .model import Recurrent

__all__ = ["TruncatedBPTT"]


class TruncatedBPTT:
    """Run a recurrent model chunk by chunk, carrying its state, backpropagating within a chunk.

    Args:
        model: an :class:`~lstm.LSTM`, :class:`~lstm.GRU` or :class:`~lstm.RNN`.
        chunk_len: time steps per chunk (char-rnn's ``seq_length``), used by :meth:`chunks`.

    Attributes:
        state: the state carried into the next chunk (``(h, c)`` for an LSTM, ``h`` for a GRU
            or an RNN), None after :meth:`reset`.

    Example::

        from nngraph_py import optim
        tbptt = TruncatedBPTT(lstm, chunk_len=50)
        params, grads = model.get_parameters()           # model contains lstm
        for epoch in range(epochs):
            tbptt.reset()                                # each epoch starts from zeros
            for chunk, target in zip(tbptt.chunks(x), tbptt.chunks(y)):
                grads[...] = 0
                outputs = tbptt.forward(chunk)
                grad_outputs = ...                       # the loss's gradient w.r.t. outputs
                tbptt.backward(chunk, grad_outputs)
                optim.clip_grad_norm(grads, 5.0)         # clipping by global norm
                params -= 0.01 * grads
    """

    def __init__(self, model: Recurrent, chunk_len: int | None = None):
        if not isinstance(model, Recurrent):
            raise InputError(f"TruncatedBPTT runs an lstm.LSTM, lstm.GRU or lstm.RNN, got "
                             f"{type(model).__name__}")
        if chunk_len is not None and (isinstance(chunk_len, bool) or not isinstance(chunk_len, int)
                                      or chunk_len <= 0):
            raise ValueError(f"TruncatedBPTT: chunk_len must be a positive integer, got "
                             f"{chunk_len!r}")
        self.model = model
        self.chunk_len = chunk_len
        self.state: Any = None
        self._input: Any = None

    def reset(self) -> None:
        """Forget the carried state: the next chunk starts from zeros."""
        self.state = None
        self._input = None

    def chunks(self, x: Array) -> Iterator[Array]:
        """Views of ``x`` cut along its time axis into chunks of ``chunk_len`` steps.

        The last chunk is shorter when ``chunk_len`` does not divide the length.

        Args:
            x: ``(batch, T, ...)`` (``(T, batch, ...)`` when the model is not batch_first).
        """
        if self.chunk_len is None:
            raise ValueError("TruncatedBPTT.chunks needs chunk_len")
        axis = 1 if self.model.batch_first else 0
        steps = int(x.shape[axis])
        for start in range(0, steps, self.chunk_len):
            window = slice(start, start + self.chunk_len)
            yield x[:, window] if axis == 1 else x[window]

    def forward(self, chunk: Array) -> Array:
        """Run ``chunk`` from the carried state and carry its final state on.

        Returns:
            The model's outputs for the chunk (every step, last layer).
        """
        self._input = chunk if self.state is None else [chunk] + self.model._pack_state(self.state)
        outputs, self.state = self.model.forward(self._input)
        return outputs

    def backward(self, chunk: Array, grad_outputs: Array, scale: float = 1.0) -> Array:
        """Backpropagate through the last chunk only; accumulate the parameter gradients.

        Args:
            chunk: the chunk given to the last :meth:`forward`.
            grad_outputs: gradient of the loss w.r.t. that chunk's outputs.
            scale: factor on the parameter gradients.

        Returns:
            The gradient w.r.t. ``chunk`` (the one w.r.t. the carried-in state is dropped).
        """
        if self._input is None:
            raise InputError("TruncatedBPTT.backward called before forward")
        given = self._input[0] if isinstance(self._input, list) else self._input
        if chunk is not given:
            raise InputError("TruncatedBPTT.backward: pass the chunk given to the last forward")
        grad = self.model.backward(self._input, grad_outputs, scale)
        return grad[0] if isinstance(grad, list) else grad
