"""Modules that read integer indices: embeddings and one-hot codes (Lua: ``nn.LookupTable``,
dpnn's ``nn.OneHot``).

Indices are 0-based (Lua's are 1-based), of any shape and any integer dtype; the output adds one
trailing axis of features.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import InputError, ShapeError, shape_str
from ..module import Array, Module

__all__ = ["LookupTable", "OneHot", "lookup", "lookup_grad", "one_hot", "check_indices"]


def check_indices(module: Module, index: Array, n: int) -> None:
    """Refuse non-integer arrays and indices outside ``[0, n)``, naming the first bad one.

    Raises:
        InputError: ``index`` is not an integer array.
        ShapeError: an index is out of range; the message gives its value and position.
    """
    if not backend.is_array(index) or index.dtype.kind not in "iu":
        kind = getattr(index, "dtype", type(index).__name__)
        raise InputError(f"{module.describe()}: expected integer indices (0-based), got {kind} "
                         f"{shape_str(index)}; convert with indices.astype('int64')")
    if not index.size:
        return
    xp = backend.get_array_module(index)
    bad = (index < 0) | (index >= n)
    if bool(bad.any()):
        flat = int(xp.argmax(bad.reshape(-1)))
        position = []
        for size in reversed(index.shape):
            position.append(flat % int(size))
            flat //= int(size)
        position = tuple(reversed(position))
        value = int(index[position]) if position else int(index)
        raise ShapeError(f"{module.describe()}: index {value} at position {position} is out of "
                         f"range: expected indices in [0, {n}) for input {shape_str(index)} "
                         f"(indices are 0-based; Lua's are 1-based)")


def lookup(xp: Any, weight: Array, index: Array) -> Array:
    """Rows ``weight[index]``: shape ``index.shape + (weight.shape[1],)``."""
    return xp.take(weight, index.reshape(-1), axis=0).reshape(tuple(index.shape)
                                                              + (int(weight.shape[1]),))


def lookup_grad(xp: Any, grad_weight: Array, index: Array, grad_output: Array, scale: float = 1.0,
                padding_idx: int | None = None) -> None:
    """Accumulate ``scale * grad_output`` into the rows ``index`` of ``grad_weight``, in place.

    Repeated indices accumulate (an unbuffered scatter-add); the row ``padding_idx`` receives
    nothing.
    """
    flat = index.reshape(-1)
    g = grad_output.reshape(int(flat.shape[0]), int(grad_weight.shape[1]))
    if scale != 1.0:
        g = g * scale
    if padding_idx is not None:
        g = g * (flat != padding_idx).astype(g.dtype)[:, None]
    xp.add.at(grad_weight, flat, g)


def one_hot(xp: Any, index: Array, n: int, dtype: Any) -> Array:
    """``index.shape + (n,)`` array, 1 at each index and 0 elsewhere."""
    return (index.reshape(tuple(index.shape) + (1,)) == xp.arange(n)).astype(dtype)


class LookupTable(Module):
    """An embedding: row ``i`` of ``weight`` for each index ``i`` (Lua:
    ``nn.LookupTable(nIndex, nOutput, paddingValue)``).

    Args:
        num_indices: the number of rows (indices run over ``0 .. num_indices - 1``).
        num_features: the size of each row.
        padding_idx: an index whose row receives no gradient (Lua's ``paddingValue``, 0-based
            here); its row is used in the forward as any other, and starts at zero as PyTorch's.

    Shape:
        input: integer indices of any shape; output ``input.shape + (num_features,)``. The
        gradient w.r.t. the input is zeros (indices are not differentiable).

    ``weight`` ``(num_indices, num_features)`` is initialised from N(0, 1) as Lua's ``reset``.
    Indices out of range are refused with the node, the index and its position.

    Example:
        >>> emb = LookupTable(10, 3)
        >>> emb.forward(numpy.array([[1, 2], [4, 1]])).shape
        (2, 2, 3)
    """

    input_kind = "array"
    integer_inputs = True  # the dtype policy: indices are integers

    def __init__(self, num_indices: int, num_features: int, padding_idx: int | None = None):
        super().__init__()
        if int(num_indices) <= 0 or int(num_features) <= 0:
            raise ValueError(f"LookupTable sizes must be positive, got {num_indices} x "
                             f"{num_features}")
        self.num_indices = int(num_indices)
        self.num_features = int(num_features)
        if padding_idx is not None and not 0 <= int(padding_idx) < self.num_indices:
            raise ValueError(f"LookupTable padding_idx must be in [0, {self.num_indices}), got "
                             f"{padding_idx}")
        self.padding_idx = None if padding_idx is None else int(padding_idx)
        self.register_parameter("weight",
                                backend.new_parameter((self.num_indices, self.num_features)))
        self.reset()

    def reset(self, stdv: float = 1.0) -> "LookupTable":
        """Re-initialise ``weight`` from N(0, stdv^2) (Lua: ``reset``); the padding row is zero."""
        host = backend.host_rng().normal(0.0, float(stdv), size=self.weight.shape)
        if self.padding_idx is not None:
            host[self.padding_idx] = 0.0
        self.weight[...] = backend.to_device(host.astype(self.weight.dtype), self._device)
        return self

    def update_output(self, input: Array) -> Array:
        check_indices(self, input, self.num_indices)
        self.output = lookup(backend.get_array_module(input), self.weight, input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = backend.get_array_module(input).zeros_like(input)
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        lookup_grad(backend.get_array_module(grad_output), self.grad_weight, input, grad_output,
                    scale, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_indices} -> {self.num_features}{pad}"


class OneHot(Module):
    """One-hot codes of integer indices (Lua: dpnn's ``nn.OneHot(outputSize)``).

    Args:
        num_classes: the length of each code (indices run over ``0 .. num_classes - 1``).

    Shape:
        input: integer indices of any shape; output ``input.shape + (num_classes,)`` in the
        module's dtype. The gradient w.r.t. the input is zeros.

    Example:
        >>> OneHot(3).forward(numpy.array([2, 0]))
        array([[0., 0., 1.],
               [1., 0., 0.]], dtype=float32)
    """

    input_kind = "array"
    integer_inputs = True  # the dtype policy: indices are integers

    def __init__(self, num_classes: int):
        super().__init__()
        if int(num_classes) <= 0:
            raise ValueError(f"OneHot needs a positive number of classes, got {num_classes}")
        self.num_classes = int(num_classes)

    def update_output(self, input: Array) -> Array:
        check_indices(self, input, self.num_classes)
        self.output = one_hot(backend.get_array_module(input), input, self.num_classes,
                              self._dtype)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = backend.get_array_module(input).zeros_like(input)
        return self.grad_input

    def extra_repr(self) -> str:
        return str(self.num_classes)
