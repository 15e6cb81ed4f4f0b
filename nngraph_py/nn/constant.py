"""Multiply or shift by a fixed number (Lua: ``nn.MulConstant``, ``nn.AddConstant``)."""
from __future__ import annotations

import numbers
from typing import Any

import numpy

from .. import backend
from ..errors import ArgumentError, check
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
    """``x + constant`` element-wise (Lua: ``nn.AddConstant(constant, ip)``). Any shape.

    Args:
        constant: the number added, or as Lua a 1-D array of one value per feature, added
            along the last axis (of one example or of each row of a batch); the output keeps the
            input's dtype. An array constant moves and casts with the module (``double()``
            computes with the values as given).
        inplace: add into the input array itself (Lua's ``ip``); backward subtracts it back,
            as Lua does, so the producer's output is restored.

    The gradient passes through unchanged (the graph never writes into received gradients).
    """

    input_kind = "array"

    def __init__(self, constant: Any, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)
        self._given: tuple[float, ...] | None = None  # an array constant, exactly as given
        if isinstance(constant, numbers.Real):
            self.constant: Any = float(constant)
        else:
            values = numpy.asarray(backend.to_numpy(constant), dtype=numpy.float64)
            if values.ndim != 1 or values.size == 0:
                raise ArgumentError(f"AddConstant takes a number or a 1-D array of one value "
                                    f"per feature, got shape {values.shape}")
            self._given = tuple(float(v) for v in values)
            self.constant = backend.to_device(values.astype(self._dtype), self._device)

    def _after_parameters_replaced(self) -> None:
        # After a conversion, rebuild an array constant from the values as given.
        if self._given is not None and backend.is_array(self.constant):
            exact = numpy.asarray(self._given, dtype=numpy.float64)
            self.constant = backend.to_device(exact, backend.device_of(self.constant),
                                              self.constant.dtype)

    def _check(self, input: Array) -> None:
        if self._given is not None:
            check(input.ndim >= 1 and int(input.shape[-1]) == len(self._given), self,
                  f"(..., {len(self._given)}): one feature per value of the constant", input)

    def update_output(self, input: Array) -> Array:
        self._check(input)
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
        if self._given is not None:
            return "[" + ", ".join(f"{v:g}" for v in self._given) + "]"
        return f"{self.constant:g}"
