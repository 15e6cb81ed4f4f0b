"""Dropout (Lua: ``nn.Dropout``)."""
from __future__ import annotations

from typing import Any

from .. import backend
from ..module import Array, Module

__all__ = ["Dropout", "dropout_noise"]


def dropout_noise(xp: Any, shape: tuple, p: float, dtype: Any) -> Array:
    """A mask of ``0`` (probability ``p``) and ``1 / (1 - p)``, drawn by ``xp.random``.

    Drawn on the device of ``xp`` and seeded by :func:`nngraph_py.manual_seed`.
    """
    keep = xp.random.random_sample(tuple(shape)) >= p
    noise = keep.astype(dtype)
    noise *= 1.0 / (1.0 - p)
    return noise


class Dropout(Module):
    """Zero each element with probability ``p`` at training time (Lua: ``nn.Dropout(p)``).

    This is Lua's default (``v2``) inverted dropout: the kept elements are scaled by
    ``1 / (1 - p)`` during training, so that evaluation is the identity.

    Args:
        p: the probability of dropping an element, ``0 <= p < 1``.

    Shape:
        any; the output has the input's shape. In evaluation mode (:meth:`evaluate`) the output
        is the input itself. The mask of the last training forward is kept in ``noise`` for
        backward; it lives on the input's device.

    Example:
        >>> drop = Dropout(0.5)
        >>> y = drop.forward(numpy.ones((2, 4), "float32"))    # entries 0 or 2
        >>> drop.evaluate().forward(numpy.ones(3, "float32"))  # unchanged
        array([1., 1., 1.], dtype=float32)
    """

    input_kind = "array"

    _state_names = ("noise",)

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout probability must satisfy 0 <= p < 1, got {p}")
        self.p = float(p)
        self.noise: Array | None = None

    def _active(self) -> bool:
        return self.train and self.p > 0.0

    def update_output(self, input: Array) -> Array:
        if self._active():
            xp = backend.get_array_module(input)
            self.noise = dropout_noise(xp, input.shape, self.p, input.dtype)
            self.output = input * self.noise
        else:
            self.output = input
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        if self._active():
            self.grad_input = grad_output * self.noise
        else:
            self.grad_input = grad_output
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.p:f}"  # Lua's '%f': nn.Dropout(0.500000)
