"""Multiply or shift by a fixed number (Lua: ``nn.MulConstant``, ``nn.AddConstant``)."""
from __future__ import annotations

from ..module import Array, Module

__all__ = ["MulConstant", "AddConstant"]


class MulConstant(Module):
    """``x * constant`` element-wise (Lua: ``nn.MulConstant(constant)``). Any shape.

    Args:
        constant: the factor (a number; the output keeps the input's dtype).

    Example:
        >>> MulConstant(0.5).forward(numpy.ones(3, "float32"))
        array([0.5, 0.5, 0.5], dtype=float32)
    """

    input_kind = "array"

    def __init__(self, constant: float):
        super().__init__()
        self.constant = float(constant)

    def update_output(self, input: Array) -> Array:
        self.output = input * self.constant
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * self.constant
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.constant:g}"


class AddConstant(Module):
    """``x + constant`` element-wise (Lua: ``nn.AddConstant(constant)``). Any shape.

    Args:
        constant: the number added (the output keeps the input's dtype).

    The gradient passes through unchanged (the graph never writes into received gradients).
    """

    input_kind = "array"

    def __init__(self, constant: float):
        super().__init__()
        self.constant = float(constant)

    def update_output(self, input: Array) -> Array:
        self.output = input + self.constant
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.constant:g}"
