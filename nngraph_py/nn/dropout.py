"""Dropout (Lua: ``nn.Dropout``)."""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import ArgumentError
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
    """Zero each element with probability ``p`` at training time (Lua:
    ``nn.Dropout(p, v1, inplace, stochasticInference)``).

    By default this is Lua's ``v2`` inverted dropout: the kept elements are scaled by
    ``1 / (1 - p)`` during training, so that evaluation is the identity.

    Args:
        p: the probability of dropping an element, ``0 <= p < 1``.
        v1: Lua's original dropout: no scaling while training, the output multiplied by
            ``1 - p`` in evaluation.
        inplace: write the output into the input array (saves one array per call; as in Lua,
            the producer's output is overwritten, so do not use it after a module whose backward
            reads its own output, such as Tanh or Sigmoid). The gradient is always a new array:
            the graph shares gradient arrays between nodes.
        stochastic_inference: keep dropping in evaluation mode too (Lua's
            ``stochasticInference``, e.g. for Monte-Carlo dropout).

    Shape:
        any; the output has the input's shape. In evaluation mode (:meth:`evaluate`) the output
        is the input itself (``v2``). The mask of the last training forward is kept in ``noise``
        for backward; it lives on the input's device.

    Example:
        >>> drop = Dropout(0.5)
        >>> y = drop.forward(numpy.ones((2, 4), "float32"))    # entries 0 or 2
        >>> drop.evaluate().forward(numpy.ones(3, "float32"))  # unchanged
        array([1., 1., 1.], dtype=float32)
    """

    input_kind = "array"

    _state_names = ("noise",)

    def __init__(self, p: float = 0.5, v1: bool = False, inplace: bool = False,
                 stochastic_inference: bool = False):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ArgumentError(f"Dropout probability must satisfy 0 <= p < 1, got {p}")
        self.p = float(p)
        self.v1 = bool(v1)
        self.inplace = bool(inplace)
        self.stochastic_inference = bool(stochastic_inference)
        self.noise: Array | None = None

    def _drops(self) -> bool:
        return (self.train or self.stochastic_inference) and self.p > 0.0

    def update_output(self, input: Array) -> Array:
        if self._drops():
            xp = backend.get_array_module(input)
            self.noise = dropout_noise(xp, input.shape, self.p, input.dtype)
            if self.v1:
                self.noise *= 1.0 - self.p  # a 0/1 mask: no scaling while training
            if self.inplace:
                input *= self.noise
                self.output = input
            else:
                self.output = input * self.noise
        elif self.v1 and self.p > 0.0:
            if self.inplace:
                input *= 1.0 - self.p
                self.output = input
            else:
                self.output = input * (1.0 - self.p)
        else:
            self.noise = None
            self.output = input
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        if self._drops() and self.noise is not None:
            self.grad_input = grad_output * self.noise
        elif self.v1 and self.p > 0.0:
            self.grad_input = grad_output * (1.0 - self.p)
        else:
            self.grad_input = grad_output
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.p:f}"  # Lua's '%f': nn.Dropout(0.500000)
