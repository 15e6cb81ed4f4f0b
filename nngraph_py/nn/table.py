"""Modules that read or write lists of arrays ("tables" in Lua): element-wise combinations,
joins, splits and selections (Lua: ``nn.CAddTable``, ``nn.CMulTable``, ``nn.JoinTable``, ...).

Dimension and index arguments are NumPy's: 0-based, counting the batch axis, negative from the end.
"""
from __future__ import annotations

from typing import Any

from .. import backend, nest
from ..errors import InputError, ShapeError, shape_str
from ..module import Array, Module

__all__ = ["CAddTable", "CSubTable", "CMulTable", "CDivTable", "JoinTable", "SplitTable",
           "SelectTable", "NarrowTable"]


def _check_table(module: Module, input: Any, n: int | None = None, same_shape: bool = True) -> None:
    if not isinstance(input, (list, tuple)):
        raise InputError(
            f"expected a list of arrays (call the module on a list of nodes), got {shape_str(input)}"
        )
    if n is not None and len(input) != n:
        raise ShapeError(f"expected a list of {n} arrays, got {len(input)}: {shape_str(input)}")
    if not input:
        raise ShapeError("expected a non-empty list of arrays, got []")
    try:
        shapes = [x.shape for x in input]
    except AttributeError:  # a nested list, None, a number...
        raise InputError(f"expected a list of arrays, got {shape_str(input)}") from None
    if same_shape and any(s != shapes[0] for s in shapes[1:]):
        raise ShapeError(f"expected arrays of one shape, got {shape_str(input)}")


class CAddTable(Module):
    """Sum of a list of arrays of one shape (Lua: ``nn.CAddTable(ip)``).

    Args:
        inplace: sum into the first array of the list (Lua's ``ip``; its producer's output is
            overwritten).
    """

    input_kind = "table"

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)

    def update_output(self, input: list[Array]) -> Array:
        _check_table(self, input)
        if self.inplace and input[0].ndim:
            out = input[0]
            for x in input[1:]:
                out += x
            self.output = out
            return out
        out = nest.as_array(input[0] + input[1]) if len(input) > 1 else input[0].copy()
        for x in input[2:]:
            out += x
        self.output = out
        return out

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        # Every input receives the same gradient; the graph never writes into received gradients.
        self.grad_input = [grad_output] * len(input)
        return self.grad_input


class CSubTable(Module):
    """``a - b`` for a list ``[a, b]`` (Lua: ``nn.CSubTable``)."""

    input_kind = "table"

    def update_output(self, input: list[Array]) -> Array:
        _check_table(self, input, 2)
        self.output = nest.as_array(input[0] - input[1])
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        self.grad_input = [grad_output, nest.as_array(-grad_output)]
        return self.grad_input


class CMulTable(Module):
    """Element-wise product of a list of arrays of one shape (Lua: ``nn.CMulTable``).

    The gradient for each input is the product of the others (no division, so zeros are safe).
    ``CMulTable()([a, a])`` is ``a * a`` with gradient ``2 a``.
    """

    input_kind = "table"

    def update_output(self, input: list[Array]) -> Array:
        _check_table(self, input)
        out = nest.as_array(input[0] * input[1]) if len(input) > 1 else input[0].copy()
        for x in input[2:]:
            out *= x
        self.output = out
        return out

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        grads = []
        for i in range(len(input)):
            g = grad_output
            for j, x in enumerate(input):
                if j != i:
                    g = g * x
            grads.append(nest.as_array(g))
        self.grad_input = grads
        return grads


class CDivTable(Module):
    """``a / b`` for a list ``[a, b]`` (Lua: ``nn.CDivTable``)."""

    input_kind = "table"

    def update_output(self, input: list[Array]) -> Array:
        _check_table(self, input, 2)
        self.output = nest.as_array(input[0] / input[1])
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        ga = nest.as_array(grad_output / input[1])
        self.grad_input = [ga, nest.as_array(-ga * self.output)]
        return self.grad_input


def _axis(module: Module, dim: int, ndim: int, x: Any) -> int:
    if not -ndim <= dim < ndim:
        raise ShapeError(f"dimension {dim} is out of range for an input of shape {shape_str(x)}")
    return dim % ndim


def _batch_shift(module: Any, ndim: int) -> int:
    """``module.dim``, shifted past a batch axis as Lua's ``nInputDims`` asks."""
    dim, n = module.dim, module.n_input_dims
    if n is not None and dim >= 0 and ndim == n + 1:
        return dim + 1
    return dim


class JoinTable(Module):
    """Concatenate a list of arrays along ``dim`` (Lua: ``nn.JoinTable``).

    Args:
        dim: NumPy axis, counting the batch axis (``1`` joins features of ``(batch, n)`` arrays;
            ``-1`` is the last axis whatever the rank).
        n_input_dims: Lua's ``nInputDims``: the rank of one example; when the arrays have one
            axis more (a batch), a non-negative ``dim`` is shifted by one, so ``JoinTable(0, 1)``
            joins vectors and batches of vectors alike.
    """

    input_kind = "table"
    integer_inputs = True  # moves values only

    def __init__(self, dim: int, n_input_dims: int | None = None):
        super().__init__()
        self.dim = int(dim)
        self.n_input_dims = None if n_input_dims is None else int(n_input_dims)

    def update_output(self, input: list[Array]) -> Array:
        _check_table(self, input, same_shape=False)
        ndim = input[0].ndim
        axis = _axis(self, _batch_shift(self, ndim), ndim, input[0])
        ref = input[0].shape
        for x in input:
            if x.ndim != ndim or any(a != b for k, (a, b) in enumerate(zip(x.shape, ref)) if k != axis):
                raise ShapeError(
                    f"expected arrays that agree on every axis but {self.dim}, got {shape_str(input)}"
                )
        self._sizes = [int(x.shape[axis]) for x in input]
        self.output = backend.get_array_module(input[0]).concatenate(input, axis=axis)
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        axis = _batch_shift(self, grad_output.ndim) % grad_output.ndim
        grads, start = [], 0
        for size in self._sizes:
            index = (slice(None),) * axis + (slice(start, start + size),)
            grads.append(grad_output[index])
            start += size
        self.grad_input = grads
        return grads

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class SplitTable(Module):
    """Split an array into the list of its slices along ``dim`` (Lua: ``nn.SplitTable``).

    Args:
        dim: NumPy axis to split and remove (``1`` turns ``(batch, T, n)`` into T arrays
            ``(batch, n)``).
        n_input_dims: Lua's ``nInputDims``, as for :class:`JoinTable`.
    """

    input_kind = "array"
    integer_inputs = True  # moves values only

    def __init__(self, dim: int, n_input_dims: int | None = None):
        super().__init__()
        self.dim = int(dim)
        self.n_input_dims = None if n_input_dims is None else int(n_input_dims)

    def update_output(self, input: Array) -> list[Array]:
        if isinstance(input, (list, tuple)) or not hasattr(input, "ndim"):
            raise InputError(f"expected an array, got {shape_str(input)}")
        axis = _axis(self, _batch_shift(self, input.ndim), input.ndim, input)
        head = (slice(None),) * axis
        self.output = [input[head + (i,)] for i in range(input.shape[axis])]
        return self.output

    def update_grad_input(self, input: Array, grad_output: list[Array]) -> Array:
        xp = backend.get_array_module(input)
        axis = _batch_shift(self, input.ndim) % input.ndim
        n = int(input.shape[axis])
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != n:
            raise InputError(f"{self.describe()}: expected grad_output as a list of {n} arrays "
                             f"(one per slice), got {shape_str(grad_output)}")
        if any(g is None for g in grad_output):  # None stands for zeros
            zeros = xp.zeros_like(input[(slice(None),) * axis + (0,)])
            grad_output = [zeros if g is None else g for g in grad_output]
        expected = tuple(input.shape[:axis] + input.shape[axis + 1:])
        for k, g in enumerate(grad_output):
            if getattr(g, "shape", None) != expected:
                raise ShapeError(f"{self.describe()}: expected grad_output[{k}] of shape "
                                 f"{expected} (a slice of the input {shape_str(input)}), got "
                                 f"{shape_str(g)}")
        self.grad_input = xp.stack(grad_output, axis=axis)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class SelectTable(Module):
    """The ``index``-th element of a list (Lua: ``nn.SelectTable``; 0-based, negative from the end).

    The gradient is zeros for the other elements. ``node.split(n)`` is made of these, with
    ``split_count=n``: the list must then have exactly ``n`` elements (Lua's split check).
    """

    input_kind = "table"
    integer_inputs = True  # moves values only
    _state_names = ("split_siblings",)  # construction-time only: not cloned

    def __init__(self, index: int, split_count: int | None = None):
        super().__init__()
        self.index = int(index)
        self.split_count = None if split_count is None else int(split_count)
        self.split_siblings: list[Any] | None = None  # the nodes of one split(n), set by split

    def update_output(self, input: list[Any]) -> Any:
        if not isinstance(input, (list, tuple)):
            raise InputError(f"expected a list, got {shape_str(input)}")
        if self.split_count is not None and len(input) != self.split_count:
            raise ShapeError(f"split({self.split_count}) cannot split {len(input)} outputs")
        if not -len(input) <= self.index < len(input):
            raise ShapeError(f"index {self.index} is out of range for a list of {len(input)}")
        self.output = input[self.index]
        return self.output

    def update_grad_input(self, input: list[Any], grad_output: Any) -> list[Any]:
        grads = [nest.zeros_like(x) for x in input]
        grads[self.index % len(input)] = nest.fill_none(grad_output, input[self.index])
        self.grad_input = grads
        return grads

    def extra_repr(self) -> str:
        return str(self.index)


class NarrowTable(Module):
    """The sub-list ``input[offset:offset+length]`` (Lua: ``nn.NarrowTable``; 0-based offset)."""

    input_kind = "table"
    integer_inputs = True  # moves values only

    def __init__(self, offset: int, length: int = 1):
        super().__init__()
        self.offset = int(offset)
        self.length = int(length)

    def update_output(self, input: list[Any]) -> list[Any]:
        if not isinstance(input, (list, tuple)):
            raise InputError(f"expected a list, got {shape_str(input)}")
        start = self.offset % len(input) if self.offset < 0 else self.offset
        if start + self.length > len(input) or self.length < 1:
            raise ShapeError(
                f"cannot take {self.length} elements from offset {self.offset} of a list of {len(input)}"
            )
        self._start = start
        self.output = list(input[start:start + self.length])
        return self.output

    def update_grad_input(self, input: list[Any], grad_output: list[Any]) -> list[Any]:
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != self.length:
            raise InputError(f"{self.describe()}: expected grad_output as a list of {self.length} "
                             f"(like the output), got {shape_str(grad_output)}")
        grads = [nest.zeros_like(x) for x in input]
        grads[self._start:self._start + self.length] = [
            nest.fill_none(g, x) for g, x in zip(grad_output, self.output)]
        self.grad_input = grads
        return grads

    def extra_repr(self) -> str:
        return f"{self.offset}, {self.length}"
