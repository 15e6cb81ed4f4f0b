"""Regularizers and noise (Lua: ``nn.SpatialDropout``, ``nn.WhiteNoise``, ``nn.L1Penalty``,
``nn.GradientReversal``)."""
from __future__ import annotations

from .. import backend
from ..errors import check
from ..module import Array, Module

__all__ = ["SpatialDropout", "WhiteNoise", "L1Penalty", "GradientReversal"]


class SpatialDropout(Module):
    """Drop whole feature maps with probability ``p`` (Lua: ``nn.SpatialDropout(p)``).

    As Lua's (and unlike :class:`Dropout`'s default), the kept maps are not rescaled at training
    time; evaluation multiplies by ``1 - p`` instead.

    Shape: ``(batch, C, H, W)`` or ``(C, H, W)``; one draw per (example, channel).
    """

    input_kind = "array"
    _state_names = ("noise",)

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"SpatialDropout probability must satisfy 0 <= p < 1, got {p}")
        self.p = float(p)
        self.noise: Array | None = None

    def update_output(self, input: Array) -> Array:
        check(input.ndim in (3, 4), self, "(batch, C, H, W) or (C, H, W)", input)
        if self.train:
            xp = backend.get_array_module(input)
            shape = tuple(input.shape[:input.ndim - 2]) + (1, 1)
            self.noise = (xp.random.random_sample(shape) >= self.p).astype(input.dtype)
            self.output = input * self.noise
        else:
            self.output = input * (1.0 - self.p)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * (self.noise if self.train else (1.0 - self.p))
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.p:f}"


class WhiteNoise(Module):
    """Add Gaussian noise ``N(mean, std^2)`` at training time; the identity in evaluation (Lua:
    ``nn.WhiteNoise(mean, std)``, defaults 0 and 0.1). Any shape."""

    input_kind = "array"

    def __init__(self, mean: float = 0.0, std: float = 0.1):
        super().__init__()
        self.mean, self.std = float(mean), float(std)

    def update_output(self, input: Array) -> Array:
        if self.train:
            xp = backend.get_array_module(input)
            noise = xp.random.standard_normal(tuple(input.shape)).astype(input.dtype)
            self.output = input + (noise * self.std + self.mean)
        else:
            self.output = input
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output
        return self.grad_input

    def extra_repr(self) -> str:
        return f"mean={self.mean:g}, std={self.std:g}"


class L1Penalty(Module):
    """The identity, with an L1 penalty on its input added in backward (Lua:
    ``nn.L1Penalty(l1weight, sizeAverage, provideOutput)``).

    Forward keeps ``loss = l1weight * sum |x|`` (divided by the number of elements when
    ``size_average``); backward adds its gradient ``l1weight * sign(x)`` to ``grad_output`` (or
    returns it alone when ``provide_output`` is False: the output then feeds nothing).
    """

    input_kind = "array"

    def __init__(self, l1weight: float, size_average: bool = False,
                 provide_output: bool = True):
        super().__init__()
        self.l1weight, self.size_average = float(l1weight), bool(size_average)
        self.provide_output = bool(provide_output)
        self.loss = 0.0

    def _weight(self, x: Array) -> float:
        return self.l1weight / int(x.size) if self.size_average and x.size else self.l1weight

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        self.loss = float(self._weight(input) * xp.abs(input).sum())
        self.output = input
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        g = self._weight(input) * xp.sign(input)
        self.grad_input = g + grad_output if self.provide_output else g
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.l1weight:g}"


class GradientReversal(Module):
    """The identity forward; backward multiplies the gradient by ``-lambda`` (Lua:
    ``nn.GradientReversal(lambda)``, default 1). Any shape."""

    input_kind = "array"

    def __init__(self, lambd: float = 1.0):
        super().__init__()
        self.lambd = float(lambd)

    def update_output(self, input: Array) -> Array:
        self.output = input
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output * -self.lambd
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.lambd:g}"
