"""Normalization layers (Lua: ``nn.BatchNormalization``, ``nn.SpatialBatchNormalization``; and
``LayerNormalization``, which Lua nn lacks, as PyTorch's ``LayerNorm`` over the last axis).

Running statistics are buffers, not parameters: they are listed in ``_buffer_names`` and updated
in place, so a broadcast or a load into them sticks.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import check
from ..module import Array, Module

__all__ = ["BatchNormalization", "SpatialBatchNormalization", "LayerNormalization",
           "batch_norm_train", "batch_norm_grad"]


def batch_norm_train(xp: Any, x: Array, axes: tuple[int, ...], eps: float
                     ) -> tuple[Array, Array, Array, Array]:
    """Normalise ``x`` with the statistics over ``axes``.

    Returns:
        ``(x_hat, mean, biased variance, 1 / sqrt(var + eps))``, the statistics kept with
        ``keepdims``.
    """
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    invstd = 1.0 / xp.sqrt(var + eps)
    return centred * invstd, mean, var, invstd


def batch_norm_grad(x_hat: Array, invstd: Array, g: Array, axes: tuple[int, ...]) -> Array:
    """The gradient w.r.t. ``x`` of ``x_hat`` (batch statistics) given ``g = dL/dx_hat``."""
    mean_g = g.mean(axis=axes, keepdims=True)
    mean_gx = (g * x_hat).mean(axis=axes, keepdims=True)
    return invstd * (g - mean_g - x_hat * mean_gx)


class BatchNormalization(Module):
    """Batch normalization over the feature axis 1 (Lua: ``nn.BatchNormalization(N, eps,
    momentum, affine)``).

    Args:
        num_features: the size of axis 1.
        eps: added to the variance (1e-5).
        momentum: the running statistics move by this fraction of the batch's (0.1).
        affine: learn ``weight`` (initialised uniform in [0, 1), as Lua's ``reset``) and ``bias``
            (zeros).

    Shape: ``(batch, N)`` or ``(batch, N, L)``; the output has the input's shape.

    In training mode the batch's mean and biased variance normalise the input and the running
    statistics are updated with the unbiased variance (as Lua and PyTorch); in evaluation mode the
    running statistics are used. Buffers: ``running_mean`` (zeros), ``running_var`` (ones).
    """

    input_kind = "array"
    _buffer_names = ("running_mean", "running_var")
    _state_names = ("x_hat", "invstd")
    _ndims: tuple[int, ...] = (2, 3)
    _shape_text = "(batch, {n}) or (batch, {n}, length)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True):
        super().__init__()
        if int(num_features) <= 0:
            raise ValueError(f"{type(self).__name__} needs a positive size, got {num_features}")
        self.num_features = int(num_features)
        self.eps, self.momentum, self.affine = float(eps), float(momentum), bool(affine)
        n = self.num_features
        if self.affine:
            self.register_parameter("weight", backend.new_parameter((n,)))
            self.register_parameter("bias", backend.new_parameter((n,)))
        self.running_mean = backend.new_parameter((n,))
        self.running_var = backend.new_parameter((n,))
        self.x_hat: Array | None = None
        self.invstd: Array | None = None
        self.reset()

    def reset(self) -> "BatchNormalization":  # type: ignore[override]  # Lua's reset(): no stdv
        """Weight uniform in [0, 1), bias 0, running mean 0 and variance 1 (Lua: ``reset``)."""
        if self.affine:
            host = backend.host_rng().uniform(0.0, 1.0, size=(self.num_features,))
            self.weight[...] = backend.to_device(host.astype(self.weight.dtype), self._device)
            self.bias[...] = 0
        self.running_mean[...] = 0
        self.running_var[...] = 1
        return self

    def _axes_and_shape(self, x: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
        check(x.ndim in self._ndims and int(x.shape[1]) == self.num_features, self,
              self._shape_text.format(n=self.num_features), x)
        axes = tuple(a for a in range(x.ndim) if a != 1)
        shape = tuple(self.num_features if a == 1 else 1 for a in range(x.ndim))
        return axes, shape

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        axes, shape = self._axes_and_shape(input)
        if self.train:
            count = int(input.size) // self.num_features
            check(count > 1, self, "with more than one value per feature in training mode",
                  input)
            x_hat, mean, var, invstd = batch_norm_train(xp, input, axes, self.eps)
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean.reshape(-1)
            unbiased = var.reshape(-1) * (count / (count - 1))
            self.running_var[...] = (1 - m) * self.running_var + m * unbiased
        else:
            invstd = (1.0 / xp.sqrt(self.running_var + self.eps)).reshape(shape)
            x_hat = (input - self.running_mean.reshape(shape)) * invstd
        self.x_hat, self.invstd = x_hat, invstd
        out = x_hat
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        self.output = out
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axes, shape = self._axes_and_shape(input)
        g = grad_output * self.weight.reshape(shape) if self.affine else grad_output
        if self.train:
            self.grad_input = batch_norm_grad(self.x_hat, self.invstd, g, axes)
        else:
            self.grad_input = g * self.invstd
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        if not self.affine:
            return
        axes, _ = self._axes_and_shape(input)
        self.grad_weight += scale * (grad_output * self.x_hat).sum(axis=axes)
        self.grad_bias += scale * grad_output.sum(axis=axes)

    def extra_repr(self) -> str:
        text = f"{self.num_features}"
        if self.eps != 1e-5:
            text += f", eps={self.eps:g}"
        if self.momentum != 0.1:
            text += f", momentum={self.momentum:g}"
        return text + ("" if self.affine else ", affine=False")


class SpatialBatchNormalization(BatchNormalization):
    """Batch normalization per channel of ``(batch, C, H, W)`` images (Lua:
    ``nn.SpatialBatchNormalization(N, eps, momentum, affine)``); as :class:`BatchNormalization`,
    the statistics taken over the batch and both spatial axes."""

    _ndims = (4,)
    _shape_text = "(batch, {n}, height, width)"


class LayerNormalization(Module):
    """Normalise each example over its last axis, then scale and shift (Lua:
    ``nn.LayerNormalization(nOutput, bias, eps, affine)``; PyTorch's ``LayerNorm`` over the last
    axis).

    ``eps`` is added to the variance, as PyTorch's; Lua adds its ``eps`` to the sum of squares, so
    ``LayerNormalization(n, eps)`` is Lua's ``nn.LayerNormalization(n, 0, n * eps)``. Lua's
    ``bias`` argument (the initial shift) is ``module.bias[...] = value`` here.

    Args:
        size: the size of the last axis.
        eps: added to the variance (1e-5).
        affine: learn ``weight`` (ones) and ``bias`` (zeros) of shape ``(size,)``.

    Shape: any ``(..., size)``; the output has the input's shape.
    """

    input_kind = "array"
    _state_names = ("x_hat", "invstd")

    def __init__(self, size: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        if int(size) <= 0:
            raise ValueError(f"LayerNormalization needs a positive size, got {size}")
        self.size, self.eps, self.affine = int(size), float(eps), bool(affine)
        if self.affine:
            w = backend.new_parameter((self.size,))
            w[...] = 1
            self.register_parameter("weight", w)
            self.register_parameter("bias", backend.new_parameter((self.size,)))
        self.x_hat: Array | None = None
        self.invstd: Array | None = None

    def update_output(self, input: Array) -> Array:
        check(input.ndim >= 1 and int(input.shape[-1]) == self.size, self,
              f"(..., {self.size})", input)
        xp = backend.get_array_module(input)
        x_hat, _, _, invstd = batch_norm_train(xp, input, (-1,), self.eps)
        self.x_hat, self.invstd = x_hat, invstd
        self.output = x_hat * self.weight + self.bias if self.affine else x_hat
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        g = grad_output * self.weight if self.affine else grad_output
        self.grad_input = batch_norm_grad(self.x_hat, self.invstd, g, (-1,))
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        if not self.affine:
            return
        axes = tuple(range(input.ndim - 1))
        self.grad_weight += scale * (grad_output * self.x_hat).sum(axis=axes)
        self.grad_bias += scale * grad_output.sum(axis=axes)

    def extra_repr(self) -> str:
        return f"{self.size}" + ("" if self.affine else ", affine=False")
