"""Multiply or shift by a fixed number (Lua: ``nn.MulConstant``, ``nn.AddConstant``)."""
from __future__ import annotations

from ..errors import ArgumentError
from ..module import Array, Module

__all__ = ["MulConstant", "AddConstant"]


class MulConstant(Module):
    """``x * constant`` element-wise (Lua: ``nn.MulConstant(constant)``). Any shape.

    Args:
        constant: the factor (a number; the output keeps the input's dtype).
        inplace: multiply the input array itself (Lua's ``ip``); backward divides it back, as
            Lua does, so the producer's output is restored (the constant must not be 0).

    Example:
        >>> MulConstant(0.5).forward(numpy.ones(3, "float32"))
        array([0.5, 0.5, 0.5], dtype=float32)
    """

    input_kind = "array"

    def __init__(self, constant: float, inplace: bool = False):
        super().__init__()
        self.constant = float(constant)
        self.inplace = bool(inplace)
        if self.inplace and self.constant == 0.0:
            raise ArgumentError("MulConstant(0, inplace=True) cannot restore its input")

    def update_output(self, input: Array) -> Array:
        if self.inplace:
            input *= self.constant
            self.output = input
        else:
            self.output = input * self.constant
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * self.constant
        if self.inplace and input is self.output:
            input /= self.constant  # Lua restores the input in updateGradInput
            self.output = None
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.constant:g}"


class AddConstant(Module):
    """``x + constant`` element-wise (Lua: ``nn.AddConstant(constant)``). Any shape.

    Args:
        constant: the number added (the output keeps the input's dtype).
        inplace: add into the input array itself (Lua's ``ip``); backward subtracts it back,
            as Lua does, so the producer's output is restored.

    The gradient passes through unchanged (the graph never writes into received gradients).
    """

    input_kind = "array"

    def __init__(self, constant: float, inplace: bool = False):
        super().__init__()
        self.constant = float(constant)
        self.inplace = bool(inplace)

    def update_output(self, input: Array) -> Array:
        if self.inplace:
            input += self.constant
            self.output = input
        else:
            self.output = input + self.constant
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output
        if self.inplace and input is self.output:
            input -= self.constant  # Lua restores the input in updateGradInput
            self.output = None
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.constant:g}"
