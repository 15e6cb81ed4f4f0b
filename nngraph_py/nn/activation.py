"""Element-wise transfer functions (Lua: ``nn.Sigmoid``, ``nn.Tanh``, ``nn.ReLU``, ``nn.SoftMax``,
``nn.LogSoftMax``). Each math kernel is a small function usable without the module."""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import check
from ..module import Array, Module

__all__ = ["Sigmoid", "Tanh", "ReLU", "SoftMax", "LogSoftMax", "sigmoid", "softmax", "log_softmax"]


def sigmoid(xp: Any, x: Array, out: Array | None = None) -> Array:
    """``1 / (1 + exp(-x))``, overflow-free: computed as ``(1 + tanh(x/2)) / 2``."""
    if out is None:
        out = xp.empty_like(x)  # an array even for 0-d x (NumPy would return a scalar)
    y = xp.multiply(x, 0.5, out=out)
    xp.tanh(y, out=y)
    y += 1.0
    y *= 0.5
    return y


def log_softmax(xp: Any, x: Array, axis: int = -1) -> Array:
    """``x - logsumexp(x)`` along ``axis``, shifted by the maximum for stability."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(xp: Any, x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the maximum for stability."""
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` element-wise (Lua: ``nn.Sigmoid``). Any shape."""

    input_kind = "array"

    def update_output(self, input: Array) -> Array:
        self.output = sigmoid(backend.get_array_module(input), input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        y = self.output
        self.grad_input = grad_output * y * (1.0 - y)
        return self.grad_input


class Tanh(Module):
    """``tanh(x)`` element-wise (Lua: ``nn.Tanh``). Any shape."""

    input_kind = "array"

    def update_output(self, input: Array) -> Array:
        self.output = backend.get_array_module(input).tanh(input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        y = self.output
        self.grad_input = grad_output * (1.0 - y * y)
        return self.grad_input


class ReLU(Module):
    """``max(0, x)`` element-wise (Lua: ``nn.ReLU(ip)``). Any shape.

    Args:
        inplace: write the result into the input array (Lua's ``ip``; the producer's output is
            overwritten, so not after a module whose backward reads its own output). The
            gradient is unchanged: ``x > 0`` and ``relu(x) > 0`` are the same mask.
    """

    input_kind = "array"

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.maximum(input, 0, out=input) if self.inplace and input.ndim \
            else xp.maximum(input, 0)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * (input > 0)
        return self.grad_input


def _check_feature_input(module: Module, x: Array) -> None:
    check(x.ndim in (1, 2), module, "(batch, features) or (features,)", x)


class SoftMax(Module):
    """Softmax over the last axis (Lua: ``nn.SoftMax``).

    Shape: ``(features,)`` or ``(batch, features)``.
    """

    input_kind = "array"

    def update_output(self, input: Array) -> Array:
        _check_feature_input(self, input)
        self.output = softmax(backend.get_array_module(input), input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        y = self.output
        self.grad_input = y * (grad_output - (grad_output * y).sum(axis=-1, keepdims=True))
        return self.grad_input


class LogSoftMax(Module):
    """Log of the softmax over the last axis (Lua: ``nn.LogSoftMax``).

    Shape: ``(features,)`` or ``(batch, features)``.
    """

    input_kind = "array"

    def update_output(self, input: Array) -> Array:
        _check_feature_input(self, input)
        self.output = log_softmax(backend.get_array_module(input), input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        self.grad_input = grad_output - xp.exp(self.output) * grad_output.sum(axis=-1, keepdims=True)
        return self.grad_input
