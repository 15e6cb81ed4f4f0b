"""Affine layer (Lua: ``nn.Linear``)."""
from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..errors import ArgumentError, check
from ..module import Array, Module

__all__ = ["Linear", "linear"]


def linear(xp: Any, x: Array, weight: Array, bias: Array | None, out: Array | None = None) -> Array:
    """``x @ weight.T + bias`` for ``x`` of shape ``(..., in)`` (any leading axes)."""
    y = xp.matmul(x, weight.T, out=out)
    if bias is not None:
        y += bias
    return y


class Linear(Module):
    """``y = W x + b`` (Lua: ``nn.Linear(inputSize, outputSize, [bias])``).

    Args:
        in_features: size of each input vector.
        out_features: size of each output vector.
        bias: whether to add a learned bias (Lua's third argument).

    Shape:
        input ``(..., in_features)``: any number of leading axes, applied over the last one as
        PyTorch's ``nn.Linear`` (``(batch, T, in)`` needs no View; Lua needed ``nn.Bottle``);
        output ``(..., out_features)``.

    Parameters ``weight`` ``(out_features, in_features)`` and ``bias`` ``(out_features,)`` are
    initialised uniformly in ``+-1/sqrt(in_features)`` as Lua's ``reset``.

    Example:
        >>> lin = Linear(20, 10)
        >>> lin.forward(numpy.ones((4, 20), "float32")).shape
        (4, 10)
    """

    input_kind = "array"

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ArgumentError(f"Linear sizes must be positive, got {in_features} -> {out_features}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.has_bias = bool(bias)
        self.register_parameter("weight", backend.new_parameter((self.out_features, self.in_features)))
        if self.has_bias:
            self.register_parameter("bias", backend.new_parameter((self.out_features,)))
        self.reset()

    def reset(self, stdv: float | None = None) -> "Linear":
        """Re-initialise uniformly in ``[-stdv, stdv]``, ``stdv = 1/sqrt(in)`` by default (Lua: ``reset``)."""
        stdv = 1.0 / math.sqrt(self.in_features) if stdv is None else float(stdv)
        rng = backend.host_rng()
        for name in self._param_names:
            p = getattr(self, name)
            host = rng.uniform(-stdv, stdv, size=p.shape).astype(p.dtype)
            p[...] = backend.to_device(host, self._device)
        return self

    def no_bias(self) -> "Linear":
        """Remove the bias (Lua: ``Linear:noBias()``); returns self."""
        if self.has_bias:
            self._param_names.remove("bias")
            del self.bias, self.grad_bias
            self.has_bias = False
        return self

    def _check(self, x: Array) -> None:
        check(x.ndim >= 1 and x.shape[-1] == self.in_features, self,
              f"(batch, {self.in_features}) or ({self.in_features},)", x)  # or (..., in)

    def update_output(self, input: Array) -> Array:
        self._check(input)
        xp = backend.get_array_module(input)
        self.output = linear(xp, input, self.weight, self.bias if self.has_bias else None)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(grad_output)
        self.grad_input = xp.matmul(grad_output, self.weight)
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = backend.get_array_module(grad_output)
        if input.ndim == 1:
            gw = xp.multiply.outer(grad_output, input)
            gb = grad_output
        else:
            g2 = grad_output.reshape(-1, self.out_features)
            gw = xp.matmul(g2.T, input.reshape(-1, self.in_features))
            gb = g2.sum(axis=0)
        if scale != 1.0:
            gw *= scale
            gb = gb * scale
        self.grad_weight += gw
        if self.has_bias:
            self.grad_bias += gb

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}"

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if self.has_bias else text + " without bias"
