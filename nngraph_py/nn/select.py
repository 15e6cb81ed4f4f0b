"""Pick one slice of an array along an axis (Lua: ``nn.Select``)."""
from __future__ import annotations

from .. import backend
from ..errors import ShapeError, shape_str
from ..module import Array, Module

__all__ = ["Select"]


class Select(Module):
    """``input[..., index, ...]`` along axis ``dim``, removing that axis (Lua: ``nn.Select``).

    Args:
        dim: NumPy axis, counting the batch axis (``1`` selects a time step of ``(batch, T, n)``).
        index: 0-based position along ``dim``; negative counts from the end (``-1`` is the last
            time step, as a sequence classifier needs).

    Example:
        >>> Select(1, -1).forward(numpy.zeros((4, 28, 128), "float32")).shape
        (4, 128)
    """

    input_kind = "array"
    integer_inputs = True  # moves values only

    def __init__(self, dim: int, index: int):
        super().__init__()
        self.dim = int(dim)
        self.index = int(index)

    def _key(self, input: Array) -> tuple:
        if not -input.ndim <= self.dim < input.ndim:
            raise ShapeError(f"expected an input with axis {self.dim}, got {shape_str(input)}")
        axis = self.dim % input.ndim
        if not -input.shape[axis] <= self.index < input.shape[axis]:
            raise ShapeError(
                f"expected axis {self.dim} longer than index {self.index}, got {shape_str(input)}"
            )
        return (slice(None),) * axis + (self.index,)

    def update_output(self, input: Array) -> Array:
        self.output = input[self._key(input)]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        grad = backend.get_array_module(input).zeros_like(input)
        grad[self._key(input)] = grad_output
        self.grad_input = grad
        return grad

    def extra_repr(self) -> str:
        return f"{self.dim}, {self.index}"
