"""More element-wise transfer functions and simple learnable element-wise layers (Lua: ``nn.Abs``,
``nn.Square``, ``nn.Sqrt``, ``nn.Power``, ``nn.Exp``, ``nn.Log``, ``nn.Clamp``, ``nn.HardTanh``,
``nn.HardShrink``, ``nn.SoftShrink``, ``nn.SoftPlus``, ``nn.SoftSign``, ``nn.LogSigmoid``,
``nn.SoftMin``, ``nn.ELU``, ``nn.LeakyReLU``, ``nn.PReLU``, ``nn.ReLU6``, ``nn.Threshold``,
``nn.GatedLinearUnit``, ``nn.Normalize``, ``nn.Mul``, ``nn.Add``, ``nn.Bilinear``).

Each module works on any shape unless its docstring says otherwise; gradients at a kink are those
of Lua (the side named in the docstring). Axis arguments are 0-based, counting the batch axis.
"""
from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..errors import InputError, ShapeError, check, shape_str
from ..module import Array, Module
from .activation import log_softmax, sigmoid, softmax

__all__ = ["Abs", "Square", "Sqrt", "Power", "Exp", "Log", "Clamp", "HardTanh", "HardShrink",
           "SoftShrink", "SoftPlus", "SoftSign", "LogSigmoid", "SoftMin", "ELU", "LeakyReLU",
           "PReLU", "ReLU6", "Threshold", "GatedLinearUnit", "Normalize", "Mul", "Add",
           "Bilinear", "SpatialSoftMax", "SpatialLogSoftMax", "CReLU", "Euclidean", "TanhShrink",
           "Cosine", "softplus", "log_sigmoid", "normalize"]


# --------------------------------------------------------------------------------------------
# The math
# --------------------------------------------------------------------------------------------
def softplus(xp: Any, x: Array, beta: float = 1.0, threshold: float = 20.0) -> Array:
    """``log(1 + exp(beta x)) / beta``, linear where ``beta x > threshold`` (as Lua)."""
    bx = x * beta
    soft = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
    return xp.where(bx > threshold, x, soft)


def log_sigmoid(xp: Any, x: Array) -> Array:
    """``-log(1 + exp(-x))`` without overflow."""
    return xp.minimum(x, 0) - xp.log1p(xp.exp(-xp.abs(x)))


def _lp_norm(xp: Any, x: Array, p: float, eps: float) -> Array:
    if math.isinf(p):
        return xp.abs(x).max(axis=-1, keepdims=True) + eps
    return ((xp.abs(x) ** p).sum(axis=-1, keepdims=True) + eps) ** (1.0 / p)


def normalize(xp: Any, x: Array, p: float = 2.0, eps: float = 1e-10) -> Array:
    """``x / ||x||_p`` over the last axis, the norm being ``(sum |x|^p + eps)^(1/p)`` as Lua's
    (``max |x| + eps`` for ``p = inf``)."""
    return x / _lp_norm(xp, x, p, eps)


# --------------------------------------------------------------------------------------------
# Parameter-free element-wise functions
# --------------------------------------------------------------------------------------------
class _Pointwise(Module):
    input_kind = "array"


class Abs(_Pointwise):
    """``|x|`` (Lua: ``nn.Abs``); the gradient at 0 is 0."""

    def update_output(self, input: Array) -> Array:
        self.output = backend.get_array_module(input).abs(input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * backend.get_array_module(input).sign(input)
        return self.grad_input


class Square(_Pointwise):
    """``x^2`` (Lua: ``nn.Square``)."""

    def update_output(self, input: Array) -> Array:
        self.output = input * input
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = 2.0 * input * grad_output
        return self.grad_input


class Sqrt(_Pointwise):
    """``sqrt(x + eps)`` (Lua: ``nn.Sqrt(b)``, ``b`` = ``eps``, default 0); x >= 0."""

    def __init__(self, eps: float = 0.0):
        super().__init__()
        self.eps = float(eps)

    def update_output(self, input: Array) -> Array:
        self.output = backend.get_array_module(input).sqrt(input + self.eps)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = 0.5 * grad_output / self.output
        return self.grad_input


class Power(_Pointwise):
    """``x^p`` (Lua: ``nn.Power(p)``); non-integer ``p`` needs ``x >= 0``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def update_output(self, input: Array) -> Array:
        self.output = input ** self.p
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * (self.p * input ** (self.p - 1.0))
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.p:g}"


class Exp(_Pointwise):
    """``exp(x)`` (Lua: ``nn.Exp``)."""

    def update_output(self, input: Array) -> Array:
        self.output = backend.get_array_module(input).exp(input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * self.output
        return self.grad_input


class Log(_Pointwise):
    """``log(x)`` (Lua: ``nn.Log``); x > 0."""

    def update_output(self, input: Array) -> Array:
        self.output = backend.get_array_module(input).log(input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output / input
        return self.grad_input


class HardTanh(_Pointwise):
    """``x`` clipped to ``[min_value, max_value]`` (Lua: ``nn.HardTanh(min, max)``, default
    ``[-1, 1]``); the gradient is 1 strictly inside the interval, 0 outside and at its ends."""

    def __init__(self, min_value: float = -1.0, max_value: float = 1.0):
        super().__init__()
        if float(min_value) > float(max_value):
            raise ValueError(f"{type(self).__name__}: min_value {min_value} > max_value "
                             f"{max_value}")
        self.min_value, self.max_value = float(min_value), float(max_value)

    def update_output(self, input: Array) -> Array:
        self.output = backend.get_array_module(input).clip(input, self.min_value, self.max_value)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        inside = (input > self.min_value) & (input < self.max_value)
        self.grad_input = grad_output * inside
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.min_value:g}, {self.max_value:g}"


class Clamp(HardTanh):
    """``x`` clipped to ``[min_value, max_value]`` (Lua: ``nn.Clamp(min, max)``, a HardTanh)."""

    def __init__(self, min_value: float, max_value: float):
        super().__init__(min_value, max_value)


class ReLU6(HardTanh):
    """``min(max(0, x), 6)`` (Lua: ``nn.ReLU6``)."""

    def __init__(self) -> None:
        super().__init__(0.0, 6.0)

    def extra_repr(self) -> str:
        return ""


class Threshold(_Pointwise):
    """``x`` where ``x > threshold``, else ``value`` (Lua: ``nn.Threshold(th, v)``, defaults
    ``1e-6`` and 0)."""

    def __init__(self, threshold: float = 1e-6, value: float = 0.0):
        super().__init__()
        self.threshold, self.value = float(threshold), float(value)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.where(input > self.threshold, input, self.value).astype(input.dtype)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * (input > self.threshold)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.threshold:g}, {self.value:g}"


class HardShrink(_Pointwise):
    """``x`` where ``|x| > lambda``, else 0 (Lua: ``nn.HardShrink(lambda)``, default 0.5)."""

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = float(lambd)

    def update_output(self, input: Array) -> Array:
        self.output = input * (backend.get_array_module(input).abs(input) > self.lambd)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * (backend.get_array_module(input).abs(input) > self.lambd)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.lambd:g}"


class SoftShrink(_Pointwise):
    """``x - lambda`` above ``lambda``, ``x + lambda`` below ``-lambda``, else 0 (Lua:
    ``nn.SoftShrink(lambda)``, default 0.5)."""

    def __init__(self, lambd: float = 0.5):
        super().__init__()
        self.lambd = float(lambd)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.sign(input) * xp.maximum(xp.abs(input) - self.lambd, 0)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * (backend.get_array_module(input).abs(input) > self.lambd)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.lambd:g}"


class SoftPlus(_Pointwise):
    """``log(1 + exp(beta x)) / beta`` (Lua: ``nn.SoftPlus(beta, threshold)``, defaults 1 and
    20; linear where ``beta x > threshold``)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = float(beta), float(threshold)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = softplus(xp, input, self.beta, self.threshold)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        bx = input * self.beta
        self.grad_input = grad_output * xp.where(bx > self.threshold, 1.0, sigmoid(xp, bx))
        return self.grad_input


class SoftSign(_Pointwise):
    """``x / (1 + |x|)`` (Lua: ``nn.SoftSign``)."""

    def update_output(self, input: Array) -> Array:
        self.output = input / (1.0 + backend.get_array_module(input).abs(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        d = 1.0 + backend.get_array_module(input).abs(input)
        self.grad_input = grad_output / (d * d)
        return self.grad_input


class LogSigmoid(_Pointwise):
    """``log(1 / (1 + exp(-x)))`` (Lua: ``nn.LogSigmoid``), computed without overflow."""

    def update_output(self, input: Array) -> Array:
        self.output = log_sigmoid(backend.get_array_module(input), input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        self.grad_input = grad_output * sigmoid(xp, -input)
        return self.grad_input


class SoftMin(_Pointwise):
    """Softmax of ``-x`` over the last axis (Lua: ``nn.SoftMin``).

    Shape: ``(features,)`` or ``(batch, features)``.
    """

    def update_output(self, input: Array) -> Array:
        check(input.ndim in (1, 2), self, "(batch, features) or (features,)", input)
        self.output = softmax(backend.get_array_module(input), -input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        y = self.output
        self.grad_input = -y * (grad_output - (grad_output * y).sum(axis=-1, keepdims=True))
        return self.grad_input


class ELU(_Pointwise):
    """``x`` for ``x > 0``, ``alpha (exp(x) - 1)`` otherwise (Lua: ``nn.ELU(alpha)``, default 1)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.where(input > 0, input, self.alpha * xp.expm1(xp.minimum(input, 0)))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        self.grad_input = grad_output * xp.where(input > 0, 1.0, self.output + self.alpha)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"


class LeakyReLU(_Pointwise):
    """``x`` for ``x > 0``, ``negval * x`` otherwise (Lua: ``nn.LeakyReLU(negval)``, default
    0.01)."""

    def __init__(self, negval: float = 0.01):
        super().__init__()
        self.negval = float(negval)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.where(input > 0, input, input * self.negval)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        self.grad_input = grad_output * xp.where(input > 0, 1.0, self.negval)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.negval:g}"


class PReLU(Module):
    """A LeakyReLU with learned slopes (Lua: ``nn.PReLU(nOutputPlane)``).

    Args:
        num_planes: 0 (the default) for one slope shared by every element; otherwise one slope per
            channel, on axis 0 for a 1-D input and on axis 1 otherwise (as Lua's THNN).

    ``weight`` starts at 0.25 (Lua).
    """

    input_kind = "array"

    def __init__(self, num_planes: int = 0):
        super().__init__()
        self.num_planes = int(num_planes)
        size = max(self.num_planes, 1)
        w = backend.new_parameter((size,))
        w[...] = 0.25
        self.register_parameter("weight", w)

    def _slope(self, x: Array) -> Array:
        if self.num_planes == 0:
            return self.weight.reshape((1,) * x.ndim)
        axis = 0 if x.ndim == 1 else 1
        check(x.ndim > axis and int(x.shape[axis]) == self.num_planes, self,
              f"with {self.num_planes} channels on axis {axis}", x)
        shape = [1] * x.ndim
        shape[axis] = self.num_planes
        return self.weight.reshape(tuple(shape))

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.where(input > 0, input, input * self._slope(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        self.grad_input = grad_output * xp.where(input > 0, 1.0, self._slope(input))
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        g = grad_output * input * (input <= 0)
        if self.num_planes == 0:
            self.grad_weight += scale * g.sum()
        else:
            axis = 0 if input.ndim == 1 else 1
            others = tuple(a for a in range(input.ndim) if a != axis)
            self.grad_weight += scale * g.sum(axis=others)

    def extra_repr(self) -> str:
        return str(self.num_planes) if self.num_planes else ""


class GatedLinearUnit(Module):
    """``a * sigmoid(b)`` for the two halves ``a, b`` of the input along ``dim`` (Lua:
    ``nn.GatedLinearUnit(dim)``; default the last axis).

    Shape: the size along ``dim`` must be even; the output has half of it.
    """

    input_kind = "array"

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = int(dim)

    def _halves(self, x: Array) -> tuple[Array, Array, int]:
        axis = self.dim if self.dim >= 0 else x.ndim + self.dim
        check(0 <= axis < x.ndim and int(x.shape[axis]) % 2 == 0, self,
              f"with an even size along axis {self.dim}", x)
        h = int(x.shape[axis]) // 2
        index_a = (slice(None),) * axis + (slice(0, h),)
        index_b = (slice(None),) * axis + (slice(h, 2 * h),)
        return x[index_a], x[index_b], axis

    def update_output(self, input: Array) -> Array:
        a, b, _ = self._halves(input)
        self.output = a * sigmoid(backend.get_array_module(input), b)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        a, b, axis = self._halves(input)
        s = sigmoid(xp, b)
        self.grad_input = xp.concatenate([grad_output * s, grad_output * a * s * (1.0 - s)],
                                         axis=axis)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Normalize(Module):
    """``x / ||x||_p`` over the last axis (Lua: ``nn.Normalize(p, eps)``, ``eps`` 1e-10).

    The norm is ``(sum |x|^p + eps)^(1/p)`` (``max |x| + eps`` for ``p = inf``), as Lua's.
    Shape: any with at least one axis (Lua: 1-D or 2-D).
    """

    input_kind = "array"

    def __init__(self, p: float = 2.0, eps: float = 1e-10):
        super().__init__()
        if float(p) <= 0:
            raise ValueError(f"Normalize needs p > 0, got {p}")
        self.p, self.eps = float(p), float(eps)

    def update_output(self, input: Array) -> Array:
        check(input.ndim >= 1, self, "with at least one axis", input)
        self.output = normalize(backend.get_array_module(input), input, self.p, self.eps)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        n = _lp_norm(xp, input, self.p, self.eps)
        if math.isinf(self.p):
            a = xp.abs(input)
            at_max = (a == a.max(axis=-1, keepdims=True))
            first = at_max & (xp.cumsum(at_max, axis=-1) == 1)  # one maximum per row
            dn = xp.sign(input) * first
        else:
            dn = xp.sign(input) * xp.abs(input) ** (self.p - 1.0) * n ** (1.0 - self.p)
        gx = (grad_output * input).sum(axis=-1, keepdims=True)
        self.grad_input = grad_output / n - gx * dn / (n * n)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.p:g}"


# --------------------------------------------------------------------------------------------
# Learnable element-wise layers
# --------------------------------------------------------------------------------------------
class Mul(Module):
    """``w x`` with one learned scalar ``w`` (Lua: ``nn.Mul``; ``weight`` of shape ``(1,)``,
    initialised uniformly in ``[-1, 1]``)."""

    input_kind = "array"

    def __init__(self) -> None:
        super().__init__()
        self.register_parameter("weight", backend.new_parameter((1,)))
        self.reset()

    def reset(self, stdv: float = 1.0) -> "Mul":
        host = backend.host_rng().uniform(-stdv, stdv, size=(1,))
        self.weight[...] = backend.to_device(host.astype(self.weight.dtype), self._device)
        return self

    def update_output(self, input: Array) -> Array:
        self.output = input * self.weight.reshape(())
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * self.weight.reshape(())
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        self.grad_weight += scale * (input * grad_output).sum()


class Add(Module):
    """``x + b`` with a learned bias (Lua: ``nn.Add(inputSize, scalar)``).

    Args:
        size: the number of elements of one example (the bias's size).
        scalar: one learned scalar added everywhere instead (``size`` is then ignored).

    Shape: an input of ``size`` elements is one example; ``(batch, ...)`` with ``size`` elements
    per example is a batch. ``bias`` starts uniform in ``+-1/sqrt(size)`` (Lua's ``reset``).
    """

    input_kind = "array"

    def __init__(self, size: int, scalar: bool = False):
        super().__init__()
        self.scalar = bool(scalar)
        self.size = 1 if self.scalar else int(size)
        if self.size <= 0:
            raise ValueError(f"Add needs a positive size, got {size}")
        self.register_parameter("bias", backend.new_parameter((self.size,)))
        self.reset()

    def reset(self, stdv: float | None = None) -> "Add":
        stdv = 1.0 / math.sqrt(self.size) if stdv is None else float(stdv)
        host = backend.host_rng().uniform(-stdv, stdv, size=(self.size,))
        self.bias[...] = backend.to_device(host.astype(self.bias.dtype), self._device)
        return self

    def _view(self, x: Array) -> tuple[Array, bool]:
        if self.scalar:
            return x, False
        if int(x.size) == self.size:
            return x.reshape(self.size), False
        check(x.ndim >= 2 and int(x.size) == int(x.shape[0]) * self.size, self,
              f"of {self.size} elements, or (batch, ...) with {self.size} per example", x)
        return x.reshape(int(x.shape[0]), self.size), True

    def update_output(self, input: Array) -> Array:
        if self.scalar:
            self.output = input + self.bias.reshape(())
        else:
            v, _ = self._view(input)
            self.output = (v + self.bias).reshape(input.shape)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        if self.scalar:
            self.grad_bias += scale * grad_output.sum()
            return
        g, batched = self._view(grad_output)
        self.grad_bias += scale * (g.sum(axis=0) if batched else g)

    def extra_repr(self) -> str:
        return "scalar" if self.scalar else str(self.size)


class Bilinear(Module):
    """``y_k = x1^T W_k x2 + b_k`` for a list ``[x1, x2]`` (Lua: ``nn.Bilinear(inputSize1,
    inputSize2, outputSize, bias)``).

    Shape: ``x1`` ``(batch, in1)``, ``x2`` ``(batch, in2)``; output ``(batch, out)``.
    ``weight`` ``(out, in1, in2)`` and ``bias`` ``(out,)`` start uniform in ``+-1/sqrt(in1)``.
    """

    input_kind = "table"

    def __init__(self, in1: int, in2: int, out: int, bias: bool = True):
        super().__init__()
        self.in1, self.in2, self.out = int(in1), int(in2), int(out)
        if min(self.in1, self.in2, self.out) <= 0:
            raise ValueError(f"Bilinear sizes must be positive, got {in1}, {in2}, {out}")
        self.has_bias = bool(bias)
        self.register_parameter("weight", backend.new_parameter((self.out, self.in1, self.in2)))
        if self.has_bias:
            self.register_parameter("bias", backend.new_parameter((self.out,)))
        self.reset()

    def reset(self, stdv: float | None = None) -> "Bilinear":
        stdv = 1.0 / math.sqrt(self.in1) if stdv is None else float(stdv)
        rng = backend.host_rng()
        for name in self._param_names:
            p = getattr(self, name)
            p[...] = backend.to_device(rng.uniform(-stdv, stdv, size=p.shape).astype(p.dtype),
                                       self._device)
        return self

    def _split(self, input: Any) -> tuple[Array, Array]:
        if len(input) != 2:
            raise InputError(f"{self.describe()}: expected a list [x1, x2], got "
                             f"{shape_str(input)}")
        x1, x2 = input
        ok = (x1.ndim == 2 and x2.ndim == 2 and x1.shape[0] == x2.shape[0]
              and int(x1.shape[1]) == self.in1 and int(x2.shape[1]) == self.in2)
        if not ok:
            raise ShapeError(f"{self.describe()}: expected input [(batch, {self.in1}), (batch, "
                             f"{self.in2})], got {shape_str(input)}")
        return x1, x2

    def update_output(self, input: list[Array]) -> Array:
        x1, x2 = self._split(input)
        xp = backend.get_array_module(x1)
        y = xp.einsum("bi,kij,bj->bk", x1, self.weight, x2, optimize=True)
        self.output = y + self.bias if self.has_bias else y
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        x1, x2 = self._split(input)
        xp = backend.get_array_module(x1)
        dx1 = xp.einsum("bk,kij,bj->bi", grad_output, self.weight, x2, optimize=True)
        dx2 = xp.einsum("bk,kij,bi->bj", grad_output, self.weight, x1, optimize=True)
        self.grad_input = [dx1, dx2]
        return self.grad_input

    def acc_grad_parameters(self, input: list[Array], grad_output: Array,
                            scale: float = 1.0) -> None:
        x1, x2 = self._split(input)
        xp = backend.get_array_module(x1)
        gw = xp.einsum("bk,bi,bj->kij", grad_output, x1, x2, optimize=True)
        self.grad_weight += scale * gw
        if self.has_bias:
            self.grad_bias += scale * grad_output.sum(axis=0)

    def extra_repr(self) -> str:
        return f"{self.in1}, {self.in2} -> {self.out}" + ("" if self.has_bias else " without bias")


class SpatialSoftMax(_Pointwise):
    """Softmax over the channels at each pixel (Lua: ``nn.SpatialSoftMax``): ``(batch, C, H, W)``
    or ``(C, H, W)``."""

    def _axis(self, x: Array) -> int:
        check(x.ndim in (3, 4), self, "(batch, C, height, width) or (C, height, width)", x)
        return x.ndim - 3

    def update_output(self, input: Array) -> Array:
        self.output = softmax(backend.get_array_module(input), input, axis=self._axis(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        y, axis = self.output, self._axis(input)
        self.grad_input = y * (grad_output - (grad_output * y).sum(axis=axis, keepdims=True))
        return self.grad_input


class SpatialLogSoftMax(SpatialSoftMax):
    """Log-softmax over the channels at each pixel (Lua: ``nn.SpatialLogSoftMax``)."""

    def update_output(self, input: Array) -> Array:
        self.output = log_softmax(backend.get_array_module(input), input, axis=self._axis(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        axis = self._axis(input)
        self.grad_input = grad_output - xp.exp(self.output) * grad_output.sum(axis=axis,
                                                                              keepdims=True)
        return self.grad_input


class CReLU(_Pointwise):
    """``[relu(x), relu(-x)]`` joined along the feature axis (Lua: ``nn.CReLU(nInputDims)``): axis
    1 for a batch (an input of ``num_input_dims + 1`` axes), else axis 0; that axis doubles."""

    def __init__(self, num_input_dims: int):
        super().__init__()
        self.num_input_dims = int(num_input_dims)

    def _axis(self, x: Array) -> int:
        check(x.ndim in (self.num_input_dims, self.num_input_dims + 1), self,
              f"with {self.num_input_dims} axes (or one more for a batch)", x)
        return 1 if x.ndim == self.num_input_dims + 1 else 0

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.concatenate([xp.maximum(input, 0), xp.maximum(-input, 0)],
                                     axis=self._axis(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axis = self._axis(input)
        n = int(input.shape[axis])
        first = grad_output[(slice(None),) * axis + (slice(0, n),)]
        second = grad_output[(slice(None),) * axis + (slice(n, 2 * n),)]
        self.grad_input = first * (input > 0) - second * (input < 0)
        return self.grad_input

    def extra_repr(self) -> str:
        return str(self.num_input_dims)


class Euclidean(Module):
    """``y_j = ||x - w_j||`` for the ``out`` columns ``w_j`` of ``weight`` (Lua:
    ``nn.Euclidean(inputSize, outputSize)``; ``weight`` ``(in, out)`` as Lua's, uniform in
    ``+-1/sqrt(in)``).

    Shape: ``(batch, in)`` or ``(in,)`` -> ``(batch, out)`` or ``(out,)``. As Lua's, backward
    divides by the distance plus ``1e-7`` (0 at a distance of 0).
    """

    input_kind = "array"

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        if min(self.in_features, self.out_features) <= 0:
            raise ValueError(f"Euclidean sizes must be positive, got {in_features}, "
                             f"{out_features}")
        self.register_parameter("weight", backend.new_parameter((self.in_features,
                                                                 self.out_features)))
        stdv = 1.0 / math.sqrt(self.in_features)
        host = backend.host_rng().uniform(-stdv, stdv, size=self.weight.shape)
        self.weight[...] = backend.to_device(host.astype(self.weight.dtype), self._device)

    def _diff(self, x: Array) -> Array:
        check(x.ndim in (1, 2) and int(x.shape[-1]) == self.in_features, self,
              f"(batch, {self.in_features}) or ({self.in_features},)", x)
        x2 = x if x.ndim == 2 else x[None]
        return x2[:, :, None] - self.weight[None]  # (batch, in, out)

    def update_output(self, input: Array) -> Array:
        d = self._diff(input)
        y = backend.get_array_module(input).sqrt((d * d).sum(axis=1))
        self.output = y if input.ndim == 2 else y[0]
        return self.output

    def _unit(self, input: Array, grad_output: Array) -> Array:
        d = self._diff(input)
        y = self.output if input.ndim == 2 else self.output[None]
        g = grad_output if input.ndim == 2 else grad_output[None]
        return d * (g / (y + 1e-7))[:, None, :]  # Lua's 1e-7: no division by zero

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        gx = self._unit(input, grad_output).sum(axis=2)
        self.grad_input = gx if input.ndim == 2 else gx[0]
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        self.grad_weight -= scale * self._unit(input, grad_output).sum(axis=0)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}"


class TanhShrink(_Pointwise):
    """``x - tanh(x)`` (Lua: ``nn.TanhShrink``)."""

    def update_output(self, input: Array) -> Array:
        self.output = input - backend.get_array_module(input).tanh(input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        t = backend.get_array_module(input).tanh(input)
        self.grad_input = grad_output * (t * t)
        return self.grad_input


class Cosine(Module):
    """``y_j = cos(w_j, x)`` for the ``out`` rows ``w_j`` of ``weight`` (Lua:
    ``nn.Cosine(inputSize, outputSize)``): ``w_j . x / ((|w_j| + 1e-12)(|x| + 1e-12))``.

    Shape: ``(batch, in)`` or ``(in,)`` -> ``(batch, out)`` or ``(out,)``. ``weight``
    ``(out, in)`` starts uniform in ``+-1/sqrt(out)`` (Lua's ``reset`` uses ``weight:size(1)``).
    """

    input_kind = "array"

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        if min(self.in_features, self.out_features) <= 0:
            raise ValueError(f"Cosine sizes must be positive, got {in_features}, {out_features}")
        self.register_parameter("weight", backend.new_parameter((self.out_features,
                                                                 self.in_features)))
        stdv = 1.0 / math.sqrt(self.out_features)
        host = backend.host_rng().uniform(-stdv, stdv, size=self.weight.shape)
        self.weight[...] = backend.to_device(host.astype(self.weight.dtype), self._device)

    def _parts(self, x: Array) -> tuple[Array, Array, Array, Array]:
        check(x.ndim in (1, 2) and int(x.shape[-1]) == self.in_features, self,
              f"(batch, {self.in_features}) or ({self.in_features},)", x)
        xp = backend.get_array_module(x)
        x2 = x if x.ndim == 2 else x[None]
        wn = xp.sqrt((self.weight * self.weight).sum(1)) + 1e-12  # (out,)
        xn = xp.sqrt((x2 * x2).sum(1, keepdims=True)) + 1e-12      # (batch, 1)
        dot = xp.matmul(x2, self.weight.T)                          # (batch, out)
        return x2, wn, xn, dot

    def update_output(self, input: Array) -> Array:
        _, wn, xn, dot = self._parts(input)
        y = dot / wn / xn
        self.output = y if input.ndim == 2 else y[0]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        x2, wn, xn, dot = self._parts(input)
        g = grad_output if input.ndim == 2 else grad_output[None]
        y = dot / wn / xn
        # d y_j / d x = w_j / (|w_j| |x|) - y_j x / (|x| (|x| - 1e-12))
        gx = xp.matmul(g / wn / xn, self.weight)
        gx -= (g * y).sum(1, keepdims=True) * x2 / (xn * (xn - 1e-12))
        self.grad_input = gx if input.ndim == 2 else gx[0]
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = backend.get_array_module(input)
        x2, wn, xn, dot = self._parts(input)
        g = grad_output if input.ndim == 2 else grad_output[None]
        y = dot / wn / xn
        gw = xp.matmul((g / xn).T, x2) / wn[:, None]
        gw -= ((g * y).sum(0) / (wn * (wn - 1e-12)))[:, None] * self.weight
        self.grad_weight += scale * gw

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}"
