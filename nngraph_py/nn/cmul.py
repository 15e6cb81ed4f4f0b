"""Learnable element-wise scale and shift (Lua: ``nn.CMul``, ``nn.CAdd``)."""
from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..errors import ArgumentError, ShapeError, shape_str
from ..module import Array, Module

__all__ = ["CMul", "CAdd"]


def _parse(size: tuple, who: str) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not size or any(int(s) <= 0 for s in size):
        raise ArgumentError(f"{who} needs positive sizes, e.g. {who}(3) or {who}(1, 5), got "
                            f"{size}")
    return tuple(int(s) for s in size)


def _layout(module: Module, x: Array, p: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """How the parameter ``p`` meets the input ``x``, as Lua's rule: ``(x view, p view)``.

    Same number of elements: element by element (``p`` viewed as ``x``). Same rank: ``p``
    broadcast over its axes of size 1. Otherwise: ``x`` is a batch along its first axis, each
    example having ``p``'s number of elements.
    """
    xs, ps = tuple(int(s) for s in x.shape), tuple(int(s) for s in p.shape)
    n = math.prod(ps)
    if int(x.size) == n:
        return xs, xs
    if len(xs) == len(ps) and all(a == b or b == 1 for a, b in zip(xs, ps)):
        return xs, ps
    if len(xs) >= 1 and xs[0] > 0 and int(x.size) == xs[0] * n:
        return (xs[0], n), (1, n)
    raise ShapeError(f"{module.describe()}: expected an input of {n} elements, of shape "
                     f"{ps} up to axes of size 1 broadcast, or a batch of examples of {n} "
                     f"elements; got {shape_str(x)}")


def _reduce_to(xp: Any, g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` over the axes where ``shape`` has size 1 (and ``g`` not)."""
    axes = tuple(k for k, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


class CMul(Module):
    """``y = x * w``, a learned weight applied element-wise (Lua: ``nn.CMul(size)``).

    Args:
        *size: the weight's shape (numbers, or one tuple), e.g. ``CMul(5)`` or ``CMul(1, 5)``.

    Shape:
        as Lua: an input with as many elements as the weight is multiplied element by element;
        an input of the weight's rank broadcasts the weight's axes of size 1; any other input is
        a batch along its first axis, each example of the weight's number of elements. The
        output has the input's shape.

    The weight starts uniform in ``+-1/sqrt(n)`` (``n`` its number of elements), as Lua's
    ``reset``; ``reset(stdv)`` draws in ``+-stdv*sqrt(3)``.

    Example:
        >>> CMul(3).forward(numpy.ones((2, 3), "float32")).shape
        (2, 3)
    """

    input_kind = "array"

    def __init__(self, *size: Any):
        super().__init__()
        self.size = _parse(size, "CMul")
        self.register_parameter("weight", backend.new_parameter(self.size))
        self.reset()

    def reset(self, stdv: float | None = None) -> "CMul":
        """Re-initialise uniformly (Lua: ``reset``); returns self."""
        stdv = 1.0 / math.sqrt(math.prod(self.size)) if stdv is None else float(stdv) * math.sqrt(3)
        host = backend.host_rng().uniform(-stdv, stdv, size=self.size).astype(self.weight.dtype)
        self.weight[...] = backend.to_device(host, self._device)
        return self

    def update_output(self, input: Array) -> Array:
        xs, ws = _layout(self, input, self.weight)
        self.output = (input.reshape(xs) * self.weight.reshape(ws)).reshape(input.shape)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xs, ws = _layout(self, input, self.weight)
        self.grad_input = (grad_output.reshape(xs) * self.weight.reshape(ws)).reshape(input.shape)
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = backend.get_array_module(input)
        xs, ws = _layout(self, input, self.weight)
        g = _reduce_to(xp, grad_output.reshape(xs) * input.reshape(xs), ws)
        if scale != 1.0:
            g = g * scale
        self.grad_weight += g.reshape(self.size)

    def extra_repr(self) -> str:
        return "x".join(str(s) for s in self.size)


class CAdd(Module):
    """``y = x + b``, a learned bias added element-wise (Lua: ``nn.CAdd(size)``).

    Args:
        *size: the bias's shape (numbers, or one tuple), e.g. ``CAdd(5)`` or ``CAdd(1, 5)``.

    Shape:
        as :class:`CMul` (Lua's same rule: element by element, broadcast over axes of size 1,
        or per example of a batch). The output has the input's shape.

    Example:
        >>> CAdd(1, 3).forward(numpy.zeros((4, 3), "float32")).shape
        (4, 3)
    """

    input_kind = "array"

    def __init__(self, *size: Any):
        super().__init__()
        self.size = _parse(size, "CAdd")
        self.register_parameter("bias", backend.new_parameter(self.size))
        self.reset()

    def reset(self, stdv: float | None = None) -> "CAdd":
        """Re-initialise uniformly (Lua: ``reset``); returns self."""
        stdv = 1.0 / math.sqrt(math.prod(self.size)) if stdv is None else float(stdv) * math.sqrt(3)
        host = backend.host_rng().uniform(-stdv, stdv, size=self.size).astype(self.bias.dtype)
        self.bias[...] = backend.to_device(host, self._device)
        return self

    def update_output(self, input: Array) -> Array:
        xs, bs = _layout(self, input, self.bias)
        self.output = (input.reshape(xs) + self.bias.reshape(bs)).reshape(input.shape)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = backend.get_array_module(input)
        xs, bs = _layout(self, input, self.bias)
        g = _reduce_to(xp, grad_output.reshape(xs), bs)
        if scale != 1.0:
            g = g * scale
        self.grad_bias += g.reshape(self.size)

    def extra_repr(self) -> str:
        return "x".join(str(s) for s in self.size)
