"""Reductions along one axis (Lua: ``nn.Sum``, ``nn.Mean``, ``nn.Max``, ``nn.Min``).

Lua's ``dimension`` is 1-based and, with ``nInputDims``, shifted by one when the input carries a
batch axis. Here ``dim`` is 0-based (Lua's ``dimension - 1``) and ``num_input_dims`` keeps Lua's
rule: when given and the input has more axes, a non-negative ``dim`` moves one axis right.
Negative ``dim`` counts from the end and never moves.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import check
from ..module import Array, Module

__all__ = ["Sum", "Mean", "Max", "Min", "reduction_axis"]


def reduction_axis(module: Module, x: Array, dim: int, num_input_dims: int | None) -> int:
    """The 0-based axis of ``x`` that ``dim`` names under Lua's batch rule (see the module doc)."""
    axis = dim
    if dim >= 0 and num_input_dims is not None and x.ndim > num_input_dims:
        axis = dim + 1
    if axis < 0:
        axis += x.ndim
    check(0 <= axis < x.ndim, module, f"with axis {dim} (at least {max(dim + 1, -dim)} axes)", x)
    return axis


class _Reduce(Module):
    input_kind = "array"

    def __init__(self, dim: int = 0, num_input_dims: int | None = None, squeeze: bool = True):
        super().__init__()
        self.dim = int(dim)
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)
        self.squeeze = bool(squeeze)

    def _axis(self, x: Array) -> int:
        return reduction_axis(self, x, self.dim, self.num_input_dims)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Sum(_Reduce):
    """Sum along ``dim`` (Lua: ``nn.Sum(dimension, nInputDims, sizeAverage, squeeze)``).

    Args:
        dim: the 0-based axis (Lua's ``dimension - 1``; default 0).
        num_input_dims: the number of axes of one example; a batched input shifts ``dim``.
        size_average: divide by the size of the axis (what ``Mean`` does).
        squeeze: drop the reduced axis (True, Lua's default) or keep it with length 1.

    Example:
        >>> Sum(1).forward(numpy.ones((2, 3), "float32"))
        array([3., 3.], dtype=float32)
    """

    def __init__(self, dim: int = 0, num_input_dims: int | None = None,
                 size_average: bool = False, squeeze: bool = True):
        super().__init__(dim, num_input_dims, squeeze)
        self.size_average = bool(size_average)

    def update_output(self, input: Array) -> Array:
        axis = self._axis(input)
        out = input.sum(axis=axis, keepdims=not self.squeeze)
        if self.size_average:
            out = out / int(input.shape[axis])
        self.output = out
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        axis = self._axis(input)
        g = grad_output if not self.squeeze else xp.expand_dims(grad_output, axis)
        if self.size_average:
            g = g / int(input.shape[axis])
        self.grad_input = xp.broadcast_to(g, input.shape).copy()
        return self.grad_input


class Mean(Sum):
    """Mean along ``dim`` (Lua: ``nn.Mean(dimension, nInputDims)``); arguments as :class:`Sum`."""

    def __init__(self, dim: int = 0, num_input_dims: int | None = None, squeeze: bool = True):
        super().__init__(dim, num_input_dims, size_average=True, squeeze=squeeze)


class Max(_Reduce):
    """Maximum along ``dim`` (Lua: ``nn.Max(dimension, nInputDims)``); the gradient goes to the
    first maximum, as Lua's. Arguments as :class:`Sum`."""

    _state_names = ("indices",)

    def _pick(self, xp: Any, x: Array, axis: int) -> Array:
        return xp.argmax(x, axis=axis)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        axis = self._axis(input)
        self.indices = xp.expand_dims(self._pick(xp, input, axis), axis)
        out = xp.take_along_axis(input, self.indices, axis=axis)
        self.output = out.squeeze(axis) if self.squeeze else out
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        axis = self._axis(input)
        g = xp.expand_dims(grad_output, axis) if self.squeeze else grad_output
        shape = [1] * input.ndim
        shape[axis] = int(input.shape[axis])
        chosen = xp.arange(int(input.shape[axis])).reshape(tuple(shape)) == self.indices
        self.grad_input = chosen * g
        return self.grad_input


class Min(Max):
    """Minimum along ``dim`` (Lua: ``nn.Min(dimension, nInputDims)``); as :class:`Max`."""

    def _pick(self, xp: Any, x: Array, axis: int) -> Array:
        return xp.argmin(x, axis=axis)
