"""Modules that change an array's shape, not its values (Lua: ``nn.Narrow``, ``nn.Reshape``,
``nn.View``).

Dimension arguments are NumPy's: 0-based, counting the batch axis, negative from the end. Sizes
given to Reshape and View are those of one example; the batch axis is kept as in Lua (see
:func:`example_shape`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .. import backend
from ..errors import ArgumentError, ShapeError, check, shape_str
from ..module import Array, Module

__all__ = ["Narrow", "Reshape", "View", "narrow_index", "example_shape"]


def narrow_index(axis: int, start: int, length: int) -> tuple:
    """The index that selects ``start:start+length`` along ``axis`` (a basic slice: a view)."""
    return (slice(None),) * axis + (slice(start, start + length),)


def _parse_size(size: Sequence[Any], who: str) -> tuple[int, ...]:
    # Lua accepts sizes as arguments or as one LongStorage; here as arguments or one tuple/list.
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not size:
        raise ArgumentError(f"{who} needs at least one size, e.g. {who}(2, 3)")
    return tuple(int(s) for s in size)


def example_shape(module: Module, x: Array, size: tuple[int, ...],
                  batch_mode: bool | None = None) -> tuple[int, ...]:
    """The output shape of reshaping ``x`` to examples of shape ``size`` (Lua's batch rule).

    An input of exactly ``prod(size)`` elements is one example and becomes ``size``, unless it
    has more than one axis and the first has length 1: that is a batch of one, as in Lua's
    ``nn.Reshape``. Any other input is a batch along its first axis and becomes
    ``(batch, *size)``. ``batch_mode`` forces the choice (Lua's trailing boolean).

    Raises:
        ShapeError: when the number of elements does not fit.
    """
    n = math.prod(size)
    total = int(x.size)
    if batch_mode is None:
        batch_mode = not (total == n and (x.ndim <= 1 or x.shape[0] != 1))
    if not batch_mode:
        check(total == n, module, f"of {n} elements (one example of shape {size})", x)
        return size
    check(x.ndim >= 1 and int(x.shape[0]) * n == total, module,
          f"(batch, ...) with {n} elements per example (shape {size}), or {n} elements", x)
    return (int(x.shape[0]),) + size


class Narrow(Module):
    """``length`` entries from ``offset`` along axis ``dim`` (Lua: ``nn.Narrow``).

    Args:
        dim: NumPy axis, counting the batch axis (``1`` narrows the features of ``(batch, n)``;
            ``-1`` is the last axis whatever the rank).
        offset: 0-based start (Lua's is 1-based); negative counts from the end.
        length: number of entries (default 1). A negative length counts from the end, as in Lua:
            ``-1`` takes everything from ``offset`` to the end, ``-2`` all but the last entry.

    Shape:
        the input's, with ``length`` entries along ``dim``. The output is a view of the input
        (NumPy basic slicing, as SplitTable's slices; Lua copies); the graph never writes into it.

    Example:
        >>> Narrow(1, 2, 3).forward(numpy.zeros((4, 10), "float32")).shape
        (4, 3)
    """

    input_kind = "array"
    integer_inputs = True  # moves values only

    def __init__(self, dim: int, offset: int, length: int = 1):
        super().__init__()
        self.dim = int(dim)
        self.offset = int(offset)
        self.length = int(length)
        self._needed = self._entries_needed()

    def _entries_needed(self) -> int:
        """The least axis length this narrowing fits in; raises when no length fits."""
        o, n = self.offset, self.length
        if n == 0 or (o < 0 and n > 0 and o + n > 0) or (o < 0 and n < o):
            raise ArgumentError(f"Narrow({self.dim}, {o}, {n}) selects nothing on any axis: the "
                             f"length must be positive, or negative to count from the end")
        if o >= 0:
            return o + n if n > 0 else o - n
        return -o

    def _index(self, x: Array) -> tuple:
        if not -x.ndim <= self.dim < x.ndim:
            raise ShapeError(f"{self.describe()}: dimension {self.dim} is out of range for an "
                             f"input of shape {shape_str(x)}")
        axis = self.dim % x.ndim
        size = int(x.shape[axis])
        start = self.offset + size if self.offset < 0 else self.offset
        length = self.length if self.length > 0 else size - start + self.length + 1
        check(size >= self._needed, self,
              f"with at least {self._needed} entries along axis {self.dim}", x)
        return narrow_index(axis, start, length)

    def update_output(self, input: Array) -> Array:
        self.output = input[self._index(input)]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        grad = backend.get_array_module(input).zeros_like(input)
        grad[self._index(input)] = grad_output
        self.grad_input = grad
        return grad

    def extra_repr(self) -> str:
        return f"dim={self.dim}, offset={self.offset}, length={self.length}"


class Reshape(Module):
    """Reshape each example to ``size`` (Lua: ``nn.Reshape(...)``).

    Args:
        *size: the shape of one example (or one tuple).
        batch_mode: True: the first axis is always the batch; False: the input is always one
            example; None (default): Lua's rule, see :func:`example_shape`.

    Shape:
        ``(batch, ...)`` -> ``(batch, *size)``; an input of ``prod(size)`` elements -> ``size``.
        Like Lua's Reshape, the output shares the input's memory when its layout allows (NumPy's
        ``reshape``); it is copied otherwise. View differs in accepting ``-1``.

    Example:
        >>> Reshape(4, 5).forward(numpy.zeros((8, 20), "float32")).shape
        (8, 4, 5)
    """

    input_kind = "array"
    integer_inputs = True  # moves values only

    def __init__(self, *size: Any, batch_mode: bool | None = None):
        super().__init__()
        self.size = _parse_size(size, "Reshape")
        if any(s <= 0 for s in self.size):
            raise ArgumentError(f"Reshape sizes must be positive, got {self.size} (View accepts -1)")
        self.batch_mode = batch_mode

    def update_output(self, input: Array) -> Array:
        self.output = input.reshape(example_shape(self, input, self.size, self.batch_mode))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output.reshape(input.shape)
        return self.grad_input

    def extra_repr(self) -> str:
        return "x".join(str(s) for s in self.size)


class View(Module):
    """View each example with shape ``size`` (Lua: ``nn.View(...)``).

    Args:
        *size: the shape of one example (or one tuple); one entry may be ``-1``, inferred from the
            number of elements.
        num_input_dims: how many trailing axes of the input form one example (Lua's
            ``setNumInputDims``); the leading axes are flattened into the batch axis.

    Without ``num_input_dims``, a size with ``-1`` views the whole input (as Lua); a size
    without is Lua's rule: every example has ``prod(size)`` elements and the rest is the batch,
    however many leading axes it spans (``View(6)`` on ``(5, 2, 6)`` gives ``(10, 6)``). One
    difference: Lua's View takes an input of exactly one example as that example; here
    ``(1, n)`` stays a batch of one, as Lua's Reshape does.

    Shape:
        as :class:`Reshape`. The output is a view of the input when its layout allows (NumPy's
        ``reshape``), a copy otherwise (Lua's View refuses non-contiguous input).

    Example:
        >>> View(-1, num_input_dims=2).forward(numpy.zeros((8, 4, 5), "float32")).shape
        (8, 20)
    """

    input_kind = "array"
    integer_inputs = True  # moves values only

    def __init__(self, *size: Any, num_input_dims: int | None = None):
        super().__init__()
        self.size = _parse_size(size, "View")
        if any(s <= 0 and s != -1 for s in self.size) or self.size.count(-1) > 1:
            raise ArgumentError(f"View sizes must be positive, with at most one -1; got {self.size}")
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)

    def set_num_input_dims(self, n: int) -> "View":
        """Set how many trailing axes form one example (Lua: ``setNumInputDims``); returns self."""
        self.num_input_dims = int(n)
        return self

    def _infer(self, x: Array, elements: int) -> tuple[int, ...]:
        known = math.prod(s for s in self.size if s != -1)
        if -1 not in self.size:
            check(elements == known, self, f"examples of {known} elements (shape {self.size})", x)
            return self.size
        check(known > 0 and elements % known == 0, self,
              f"examples with a multiple of {known} elements (shape {self.size})", x)
        return tuple(elements // known if s == -1 else s for s in self.size)

    def _output_shape(self, x: Array) -> tuple[int, ...]:
        k = self.num_input_dims
        if k is not None:
            if x.ndim > k:
                batch = math.prod(int(s) for s in x.shape[:-k])
                return (batch,) + self._infer(x, math.prod(int(s) for s in x.shape[-k:]))
            return self._infer(x, int(x.size))
        if -1 in self.size:
            return self._infer(x, int(x.size))
        # Lua's batchsize(): every example has prod(size) elements, the rest is the batch, over
        # as many leading axes as needed: View(6) on (5, 2, 6) gives (10, 6).
        n = math.prod(self.size)
        total = int(x.size)
        check(n > 0 and total % n == 0, self,
              f"a multiple of {n} elements (examples of shape {self.size})", x)
        batch = total // n
        if batch == 1 and not (x.ndim > 1 and int(x.shape[0]) == 1):
            return self.size
        return (batch,) + self.size

    def update_output(self, input: Array) -> Array:
        self.output = input.reshape(self._output_shape(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output.reshape(input.shape)
        return self.grad_input

    def extra_repr(self) -> str:
        return ", ".join(str(s) for s in self.size)
