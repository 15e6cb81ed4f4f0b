"""Shape and selection modules (Lua: ``nn.Replicate``, ``nn.Transpose``, ``nn.Squeeze``,
``nn.Unsqueeze``, ``nn.Padding``, ``nn.Index``, ``nn.MaskedSelect``, ``nn.Contiguous``,
``nn.Copy``, ``nn.Bottle``).

Axis arguments are 0-based (Lua's minus one) and count the batch axis; where Lua takes
``nInputDims`` (``num_input_dims`` here) a non-negative axis moves one right for a batched input,
as in :mod:`nngraph_py.nn.reduction`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .. import backend
from ..errors import InputError, ShapeError, check, shape_str
from ..module import Array, Module
from .embedding import check_indices

__all__ = ["Replicate", "Transpose", "Squeeze", "Unsqueeze", "Padding", "Index", "MaskedSelect",
           "Contiguous", "Copy", "Bottle", "ZeroGrad", "Collapse", "Constant"]


def _shifted(dim: int, x: Array, num_input_dims: int | None) -> int:
    if dim >= 0 and num_input_dims is not None and x.ndim > num_input_dims:
        return dim + 1
    return dim


class Replicate(Module):
    """``n`` copies of the input along a new axis ``dim`` (Lua: ``nn.Replicate(nFeature, dim,
    ndim)``; default ``dim`` 0).

    Args:
        n: the number of copies.
        dim: where the new axis goes (0-based, in the output).
        num_input_dims: the axes of one example; a batched input moves ``dim`` right by one.

    The output is a read-only broadcast view (no copy, as Lua's ``expand``); backward sums.
    """

    input_kind = "array"

    def __init__(self, n: int, dim: int = 0, num_input_dims: int | None = None):
        super().__init__()
        if int(n) <= 0:
            raise ValueError(f"Replicate needs a positive number of copies, got {n}")
        self.n, self.dim = int(n), int(dim)
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)

    def _axis(self, x: Array) -> int:
        axis = _shifted(self.dim, x, self.num_input_dims)
        axis = axis if axis >= 0 else axis + x.ndim + 1
        check(0 <= axis <= x.ndim, self, f"with at least {axis} axes", x)
        return axis

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        axis = self._axis(input)
        shape = list(input.shape)
        shape.insert(axis, self.n)
        self.output = xp.broadcast_to(xp.expand_dims(input, axis), tuple(shape))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output.sum(axis=self._axis(input))
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.n}, dim={self.dim}"


class Transpose(Module):
    """Swap pairs of axes, in order (Lua: ``nn.Transpose({1, 2}, {3, 4})``; 0-based here:
    ``Transpose((0, 1), (2, 3))``). The output is a view."""

    input_kind = "array"

    def __init__(self, *pairs: Sequence[int]):
        super().__init__()
        self.pairs = [(int(a), int(b)) for a, b in pairs]

    def _perm(self, x: Array) -> list[int]:
        perm = list(range(x.ndim))
        for a, b in self.pairs:
            check(-x.ndim <= min(a, b) and max(a, b) < x.ndim, self,
                  f"with axes {a} and {b}", x)
            perm[a], perm[b] = perm[b], perm[a]
        return perm

    def update_output(self, input: Array) -> Array:
        self.output = input.transpose(self._perm(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        perm = self._perm(input)
        inverse = [0] * len(perm)
        for i, p in enumerate(perm):
            inverse[p] = i
        self.grad_input = grad_output.transpose(inverse)
        return self.grad_input

    def extra_repr(self) -> str:
        return ", ".join(f"{a}<->{b}" for a, b in self.pairs)


class Squeeze(Module):
    """Drop axes of length 1: all of them, or axis ``dim`` only (Lua: ``nn.Squeeze(dim,
    numInputDims)``)."""

    input_kind = "array"

    def __init__(self, dim: int | None = None, num_input_dims: int | None = None):
        super().__init__()
        self.dim = None if dim is None else int(dim)
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)

    def update_output(self, input: Array) -> Array:
        if self.dim is None:
            shape = tuple(s for s in input.shape if s != 1)
        else:
            axis = _shifted(self.dim, input, self.num_input_dims)
            check(-input.ndim <= axis < input.ndim, self, f"with axis {axis}", input)
            shape = list(input.shape)
            if shape[axis] == 1:
                del shape[axis]
            shape = tuple(shape)
        self.output = input.reshape(shape)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output.reshape(input.shape)
        return self.grad_input

    def extra_repr(self) -> str:
        return "" if self.dim is None else f"dim={self.dim}"


class Unsqueeze(Module):
    """Insert an axis of length 1 at ``pos`` (Lua: ``nn.Unsqueeze(pos, numInputDims)``; 0-based
    here: ``Unsqueeze(0)`` makes ``(1, ...)``)."""

    input_kind = "array"

    def __init__(self, pos: int, num_input_dims: int | None = None):
        super().__init__()
        self.pos = int(pos)
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)

    def update_output(self, input: Array) -> Array:
        axis = _shifted(self.pos, input, self.num_input_dims)
        check(-input.ndim - 1 <= axis <= input.ndim, self, f"with at least {axis} axes", input)
        self.output = backend.get_array_module(input).expand_dims(input, axis)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output.reshape(input.shape)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"pos={self.pos}"


class Padding(Module):
    """Pad ``|pad|`` entries of ``value`` along ``dim`` (Lua: ``nn.Padding(dim, pad, nInputDim,
    value, index)``).

    A positive ``pad`` pads after the data, a negative one before it (Lua). ``index`` (0-based)
    moves the padding inside: before entry ``index`` for a negative ``pad``, after ``index``
    entries counted from the end for a positive one.
    """

    input_kind = "array"

    def __init__(self, dim: int, pad: int, num_input_dims: int | None = None, value: float = 0.0,
                 index: int = 0):
        super().__init__()
        self.dim, self.pad, self.value, self.index = int(dim), int(pad), float(value), int(index)
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)

    def _where(self, x: Array) -> tuple[int, int]:
        axis = _shifted(self.dim, x, self.num_input_dims)
        axis = axis if axis >= 0 else axis + x.ndim
        check(0 <= axis < x.ndim, self, f"with axis {self.dim}", x)
        size = int(x.shape[axis])
        pos = self.index if self.pad < 0 else size - self.index
        check(0 <= pos <= size, self, f"with at least {self.index} entries along axis {axis}", x)
        return axis, pos

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        axis, pos = self._where(input)
        shape = list(input.shape)
        shape[axis] = abs(self.pad)
        fill = xp.full(tuple(shape), self.value, dtype=input.dtype)
        before = input[(slice(None),) * axis + (slice(0, pos),)]
        after = input[(slice(None),) * axis + (slice(pos, None),)]
        self.output = xp.concatenate([before, fill, after], axis=axis)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        axis, pos = self._where(input)
        n = int(input.shape[axis])
        head = grad_output[(slice(None),) * axis + (slice(0, pos),)]
        tail = grad_output[(slice(None),) * axis + (slice(pos + abs(self.pad), n + abs(self.pad)),)]
        self.grad_input = xp.concatenate([head, tail], axis=axis)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"dim={self.dim}, pad={self.pad}"


class Index(Module):
    """``t`` indexed by ``indices`` along ``dim`` for a list ``[t, indices]`` (Lua:
    ``nn.Index(dim)``, ``index(dim, indices)``); 0-based integer ``indices`` (1-D)."""

    input_kind = "table"
    integer_inputs = True  # the indices

    def __init__(self, dim: int = 0):
        super().__init__()
        self.dim = int(dim)

    def _split(self, input: Any) -> tuple[Array, Array, int]:
        if len(input) != 2:
            raise InputError(f"{self.describe()}: expected [array, indices], got "
                             f"{shape_str(input)}")
        t, idx = input
        axis = self.dim if self.dim >= 0 else self.dim + t.ndim
        if not 0 <= axis < t.ndim:
            raise ShapeError(f"{self.describe()}: axis {self.dim} is out of range for "
                             f"{shape_str(t)}")
        if idx.ndim != 1:
            raise ShapeError(f"{self.describe()}: expected 1-D indices, got {shape_str(idx)}")
        check_indices(self, idx, int(t.shape[axis]))
        return t, idx, axis

    def update_output(self, input: list[Array]) -> Array:
        t, idx, axis = self._split(input)
        self.output = backend.get_array_module(t).take(t, idx, axis=axis)
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        t, idx, axis = self._split(input)
        xp = backend.get_array_module(t)
        grad = xp.zeros_like(t)
        moved = xp.moveaxis(grad, axis, 0)  # a view: the scatter-add lands in grad
        xp.add.at(moved, idx, xp.moveaxis(grad_output, axis, 0))
        self.grad_input = [grad, xp.zeros_like(idx)]
        return self.grad_input

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class MaskedSelect(Module):
    """The entries of ``t`` where ``mask`` is true, as a 1-D array, for a list ``[t, mask]``
    (Lua: ``nn.MaskedSelect``); ``mask`` is boolean (or 0/1 integers) of ``t``'s shape."""

    input_kind = "table"
    integer_inputs = True  # the mask

    def _split(self, input: Any) -> tuple[Array, Array]:
        if len(input) != 2 or tuple(input[0].shape) != tuple(input[1].shape):
            raise ShapeError(f"{self.describe()}: expected [array, mask] of one shape, got "
                             f"{shape_str(input)}")
        t, mask = input
        if mask.dtype.kind not in "biu":
            raise InputError(f"{self.describe()}: expected a boolean mask, got {mask.dtype}")
        return t, mask.astype(bool)

    def update_output(self, input: list[Array]) -> Array:
        t, mask = self._split(input)
        self.output = t[mask]
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        t, mask = self._split(input)
        xp = backend.get_array_module(t)
        grad = xp.zeros_like(t)
        grad[mask] = grad_output
        self.grad_input = [grad, xp.zeros_like(input[1])]
        return self.grad_input


class Contiguous(Module):
    """A C-contiguous copy when the input is not contiguous, else the input (Lua:
    ``nn.Contiguous``)."""

    input_kind = "array"

    def update_output(self, input: Array) -> Array:
        self.output = backend.get_array_module(input).ascontiguousarray(input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = backend.get_array_module(grad_output).ascontiguousarray(grad_output)
        return self.grad_input


class Copy(Module):
    """A copy of the input (Lua: ``nn.Copy(inputType, outputType)``; floating inputs are already
    cast to the module's dtype on arrival, so the types need not be given)."""

    input_kind = "array"

    def update_output(self, input: Array) -> Array:
        self.output = input.copy()
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output.copy()
        return self.grad_input


class Bottle(Module):
    """Apply ``module`` over the leading axes (Lua: ``nn.Bottle(module, nInputDim, nOutputDim)``).

    The module takes ``num_input_dims``-D input (a batch of examples); an input with more axes has
    its leading ones folded into that batch and unfolded from the output, which is expected with
    ``num_output_dims`` axes. ``Bottle(Linear(4, 3))`` on ``(2, 5, 4)`` gives ``(2, 5, 3)``.
    """

    input_kind = "array"

    def __init__(self, module: Module, num_input_dims: int = 2,
                 num_output_dims: int | None = None):
        super().__init__()
        if not isinstance(module, Module):
            raise InputError(f"Bottle expects a module, got {type(module).__name__}")
        self.module = module
        self.num_input_dims = int(num_input_dims)
        self.num_output_dims = self.num_input_dims if num_output_dims is None \
            else int(num_output_dims)

    def children(self) -> list[Module]:
        return [self.module]

    def _fold(self, x: Array) -> tuple[Array, tuple[int, ...]]:
        check(x.ndim >= self.num_input_dims, self, f"with at least {self.num_input_dims} axes", x)
        k = x.ndim - self.num_input_dims + 1
        lead = tuple(int(s) for s in x.shape[:k])
        return x.reshape((math.prod(lead),) + tuple(x.shape[k:])), lead

    def update_output(self, input: Array) -> Array:
        folded, lead = self._fold(input)
        out = self.module.forward(folded)
        check(out.ndim == self.num_output_dims, self,
              f"the inner module to return {self.num_output_dims}-D output", out)
        self.output = out.reshape(lead + tuple(out.shape[1:]))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        folded, lead = self._fold(input)
        g = grad_output.reshape((math.prod(lead),) + tuple(grad_output.shape[len(lead):]))
        self.grad_input = self.module.update_grad_input(folded, g).reshape(input.shape)
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        folded, lead = self._fold(input)
        g = grad_output.reshape((math.prod(lead),) + tuple(grad_output.shape[len(lead):]))
        self.module.acc_grad_parameters(folded, g, scale)

    def __repr__(self) -> str:
        inner = repr(self.module).replace("\n", "\n  ")
        return f"nn.Bottle({inner})"


class ZeroGrad(Module):
    """The identity forward; a zero gradient backward (Lua: ``nn.ZeroGrad``)."""

    input_kind = "array"

    def update_output(self, input: Array) -> Array:
        self.output = input
        return input

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = backend.get_array_module(input).zeros_like(input)
        return self.grad_input


class Collapse(Module):
    """Flatten every axis but the batch's (Lua: ``nn.Collapse(nInputDim)``): an input of more than
    ``num_input_dims`` axes becomes ``(batch, -1)``, one example becomes 1-D."""

    input_kind = "array"

    def __init__(self, num_input_dims: int):
        super().__init__()
        self.num_input_dims = int(num_input_dims)

    def update_output(self, input: Array) -> Array:
        batched = input.ndim > self.num_input_dims
        self.output = input.reshape((int(input.shape[0]), -1) if batched else (-1,))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output.reshape(input.shape)
        return self.grad_input

    def extra_repr(self) -> str:
        return str(self.num_input_dims)


class Constant(Module):
    """Output a constant, whatever the input (Lua: ``nn.Constant(value, nInputDim)``): the value
    (a number or an array), repeated along a batch axis when the input has more than
    ``num_input_dims`` axes. The gradient w.r.t. the input is zeros."""

    input_kind = "array"

    def __init__(self, value: Any, num_input_dims: int | None = None):
        super().__init__()
        host = backend.to_numpy(value) if backend.is_array(value) else value
        np_ = backend.array_module("cpu")  # the constructor's value lives on the host
        self.value = np_.atleast_1d(np_.asarray(host, dtype=self._dtype)).copy()
        self.num_input_dims = None if num_input_dims is None else int(num_input_dims)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        if self.num_input_dims is not None and input.ndim > self.num_input_dims:
            shape = (int(input.shape[0]),) + tuple(self.value.shape)
            self.output = xp.broadcast_to(self.value[None], shape).copy()
        else:
            self.output = self.value.copy()
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = backend.get_array_module(input).zeros_like(input)
        return self.grad_input
