"""Convolutions, NCHW as Lua (Lua: ``nn.SpatialConvolution``, ``nn.TemporalConvolution``).

Both unfold the input into columns (im2col) with one strided copy per kernel position (never a
loop over pixels) and multiply by the weights in one matrix product; backward is two products
and the matching fold (col2im).
"""
from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..errors import check
from ..module import Array, Module

__all__ = ["SpatialConvolution", "SpatialConvolutionMM", "SpatialDilatedConvolution",
           "SpatialFullConvolution",
           "TemporalConvolution", "conv_output_size", "im2col", "col2im"]


def conv_output_size(size: int, kernel: int, stride: int, pad: int, ceil: bool = False) -> int:
    """The number of windows along one axis (Lua's formula; ``ceil`` as ``:ceil()`` pooling)."""
    span = size + 2 * pad - kernel
    n = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (n - 1) * stride >= size + pad:  # the last window must start inside
        n -= 1
    return n


def im2col(xp: Any, x: Array, kh: int, kw: int, dh: int, dw: int, oh: int, ow: int,
           dil_h: int = 1, dil_w: int = 1) -> Array:
    """Columns ``(C, kh, kw, B, oh, ow)`` of an (already padded) ``(B, C, H, W)`` input.

    ``cols.reshape(C*kh*kw, B*oh*ow)`` is the matrix the weights multiply; kernel taps are
    ``dil_h`` / ``dil_w`` pixels apart (dilated convolution).
    """
    b, c = int(x.shape[0]), int(x.shape[1])
    cols = xp.empty((c, kh, kw, b, oh, ow), dtype=x.dtype)
    xt = x.transpose(1, 0, 2, 3)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dil_h, j * dil_w
            cols[:, i, j] = xt[:, :, r:r + dh * (oh - 1) + 1:dh, q:q + dw * (ow - 1) + 1:dw]
    return cols


def col2im(xp: Any, cols: Array, shape: tuple[int, ...], kh: int, kw: int, dh: int,
           dw: int, dil_h: int = 1, dil_w: int = 1) -> Array:
    """The adjoint of :func:`im2col`: columns summed back into a padded ``(B, C, H, W)``."""
    b, c, h, w = shape
    oh, ow = int(cols.shape[4]), int(cols.shape[5])
    out = xp.zeros((c, b, h, w), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dil_h, j * dil_w
            out[:, :, r:r + dh * (oh - 1) + 1:dh, q:q + dw * (ow - 1) + 1:dw] += cols[:, i, j]
    return out.transpose(1, 0, 2, 3)


def _uniform_reset(module: Module, stdv: float) -> None:
    rng = backend.host_rng()
    for name in module._param_names:
        p = getattr(module, name)
        p[...] = backend.to_device(rng.uniform(-stdv, stdv, size=p.shape).astype(p.dtype),
                                   module._device)


class SpatialConvolution(Module):
    """2-D convolution of ``(batch, C_in, H, W)`` images (Lua: ``nn.SpatialConvolution(nInputPlane,
    nOutputPlane, kW, kH, dW, dH, padW, padH)``).

    Args:
        in_planes, out_planes: channels in and out.
        kw, kh: kernel width and height (``kh`` defaults to ``kw``).
        dw, dh: strides (1; ``dh`` defaults to ``dw``).
        pad_w, pad_h: zero padding on each side (0; ``pad_h`` defaults to ``pad_w``).
        bias: learn a bias per output plane.

    Shape: ``(batch, C_in, H, W)`` or ``(C_in, H, W)`` -> ``(batch, C_out, H', W')``,
    ``H' = (H + 2 pad_h - kh) // dh + 1``. ``weight`` ``(C_out, C_in, kh, kw)`` and ``bias``
    start uniform in ``+-1/sqrt(kw kh C_in)`` (Lua's ``reset``).

    Example:
        >>> conv = SpatialConvolution(1, 8, 3, 3, 1, 1, 1, 1)
        >>> conv.forward(numpy.zeros((2, 1, 28, 28), "float32")).shape
        (2, 8, 28, 28)
    """

    input_kind = "array"
    _state_names = ("cols", "_g2")

    def __init__(self, in_planes: int, out_planes: int, kw: int, kh: int | None = None,
                 dw: int = 1, dh: int | None = None, pad_w: int = 0, pad_h: int | None = None,
                 bias: bool = True):
        super().__init__()
        self.in_planes, self.out_planes = int(in_planes), int(out_planes)
        self.kw = int(kw)
        self.kh = self.kw if kh is None else int(kh)
        self.dw = int(dw)
        self.dh = self.dw if dh is None else int(dh)
        self.pad_w = int(pad_w)
        self.pad_h = self.pad_w if pad_h is None else int(pad_h)
        if min(self.in_planes, self.out_planes, self.kw, self.kh, self.dw, self.dh) <= 0 \
                or min(self.pad_w, self.pad_h) < 0:
            raise ValueError(f"SpatialConvolution: sizes and strides must be positive and pads "
                             f"non-negative, got {self.extra_repr()}")
        self.has_bias = bool(bias)
        self.dil_w = self.dil_h = 1
        self.register_parameter("weight", backend.new_parameter(
            (self.out_planes, self.in_planes, self.kh, self.kw)))
        if self.has_bias:
            self.register_parameter("bias", backend.new_parameter((self.out_planes,)))
        self.cols: Array | None = None
        self._g2: tuple | None = None
        self.reset()

    def reset(self, stdv: float | None = None) -> "SpatialConvolution":
        """Re-initialise uniformly in ``+-stdv``, ``1/sqrt(kw kh C_in)`` by default (Lua)."""
        _uniform_reset(self, 1.0 / math.sqrt(self.kw * self.kh * self.in_planes)
                       if stdv is None else float(stdv))
        return self

    def _geometry(self, x: Array) -> tuple[Array, int, int]:
        ok = x.ndim == 4 and int(x.shape[1]) == self.in_planes
        check(ok, self, f"(batch, {self.in_planes}, height, width) or ({self.in_planes}, "
              f"height, width)", x)
        span_h, span_w = self.dil_h * (self.kh - 1) + 1, self.dil_w * (self.kw - 1) + 1
        oh = conv_output_size(int(x.shape[2]), span_h, self.dh, self.pad_h)
        ow = conv_output_size(int(x.shape[3]), span_w, self.dw, self.pad_w)
        check(oh > 0 and ow > 0, self,
              f"at least {span_h - 2 * self.pad_h}x{span_w - 2 * self.pad_w} pixels", x)
        return x, oh, ow

    def _padded(self, xp: Any, x: Array) -> Array:
        if not (self.pad_h or self.pad_w):
            return x
        return xp.pad(x, ((0, 0), (0, 0), (self.pad_h, self.pad_h), (self.pad_w, self.pad_w)))

    @staticmethod
    def _batched(x: Array) -> Array:
        return x if x.ndim != 3 else x.reshape((1,) + tuple(x.shape))

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        x, oh, ow = self._geometry(self._batched(input))
        b = int(x.shape[0])
        self.cols = im2col(xp, self._padded(xp, x), self.kh, self.kw, self.dh, self.dw, oh, ow,
                           self.dil_h, self.dil_w)
        w2 = self.weight.reshape(self.out_planes, -1)
        y = xp.matmul(w2, self.cols.reshape(int(w2.shape[1]), -1))  # (C_out, B*oh*ow)
        if self.has_bias:
            y += self.bias.reshape(-1, 1)
        out = xp.ascontiguousarray(y.reshape(self.out_planes, b, oh, ow).transpose(1, 0, 2, 3))
        self.output = out if input.ndim == 4 else out.reshape(out.shape[1:])
        return self.output

    def _grad_matrix(self, xp: Any, grad_output: Array) -> Array:
        """``grad_output`` as ``(C_out, B*oh*ow)``; the copy is kept for the second caller of
        one backward (``update_grad_input`` then ``acc_grad_parameters``)."""
        cached = getattr(self, "_g2", None)
        if cached is not None and cached[0] is grad_output:
            return cached[1]
        g = self._batched(grad_output)
        g2 = xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(self.out_planes, -1)
        self._g2 = (grad_output, g2)
        return g2

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        x = self._batched(input)
        g2 = self._grad_matrix(xp, grad_output)
        gcols = xp.matmul(self.weight.reshape(self.out_planes, -1).T, g2)
        gcols = gcols.reshape(self.cols.shape)
        b, c, h, w = (int(s) for s in x.shape)
        shape = (b, c, h + 2 * self.pad_h, w + 2 * self.pad_w)
        gx = col2im(xp, gcols, shape, self.kh, self.kw, self.dh, self.dw, self.dil_h, self.dil_w)
        gx = gx[:, :, self.pad_h:self.pad_h + h, self.pad_w:self.pad_w + w]
        self.grad_input = gx.reshape(input.shape)
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = backend.get_array_module(input)
        g2 = self._grad_matrix(xp, grad_output)
        self._g2 = None  # one backward's cache, not kept past it
        gw = xp.matmul(g2, self.cols.reshape(int(self.cols.shape[0]) * self.kh * self.kw, -1).T)
        if scale != 1.0:
            gw *= scale
        self.grad_weight += gw.reshape(self.grad_weight.shape)
        if self.has_bias:
            self.grad_bias += scale * g2.sum(axis=1)

    def extra_repr(self) -> str:
        text = f"{self.in_planes} -> {self.out_planes}, {self.kw}x{self.kh}"
        if self.dw != 1 or self.dh != 1 or self.pad_w or self.pad_h:
            text += f", {self.dw},{self.dh}"
        if self.pad_w or self.pad_h:
            text += f", {self.pad_w},{self.pad_h}"
        return text

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if self.has_bias else text + " without bias"


class SpatialConvolutionMM(SpatialConvolution):
    """Lua's ``nn.SpatialConvolutionMM``, the im2col formulation of ``SpatialConvolution``: the
    same module here (every convolution is computed so)."""


class SpatialDilatedConvolution(SpatialConvolution):
    """A convolution whose kernel taps are ``dil_w`` / ``dil_h`` pixels apart (Lua:
    ``nn.SpatialDilatedConvolution(nIn, nOut, kW, kH, dW, dH, padW, padH, dilationW,
    dilationH)``); otherwise as :class:`SpatialConvolution`. ``H' = (H + 2 pad_h - dil_h (kh - 1)
    - 1) // dh + 1``."""

    def __init__(self, in_planes: int, out_planes: int, kw: int, kh: int | None = None,
                 dw: int = 1, dh: int | None = None, pad_w: int = 0, pad_h: int | None = None,
                 dil_w: int = 1, dil_h: int | None = None, bias: bool = True):
        super().__init__(in_planes, out_planes, kw, kh, dw, dh, pad_w, pad_h, bias)
        self.dil_w = int(dil_w)
        self.dil_h = self.dil_w if dil_h is None else int(dil_h)
        if min(self.dil_w, self.dil_h) <= 0:
            raise ValueError(f"SpatialDilatedConvolution: dilations must be positive, got "
                             f"{dil_w}, {dil_h}")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dilation {self.dil_w},{self.dil_h}"


class SpatialFullConvolution(Module):
    """The transposed convolution (Lua: ``nn.SpatialFullConvolution(nIn, nOut, kW, kH, dW, dH,
    padW, padH, adjW, adjH)``): the adjoint of a ``SpatialConvolution`` with these settings,
    up-sampling by the stride.

    Shape: ``(batch, C_in, H, W)`` or ``(C_in, H, W)`` -> ``H' = (H - 1) dh - 2 pad_h + kh +
    adj_h``. ``weight`` ``(C_in, C_out, kh, kw)`` (Lua's layout) and ``bias`` ``(C_out,)`` start
    uniform in ``+-1/sqrt(kw kh C_in)``, Lua's ``reset``.
    """

    input_kind = "array"
    _state_names = ("x2",)

    def __init__(self, in_planes: int, out_planes: int, kw: int, kh: int | None = None,
                 dw: int = 1, dh: int | None = None, pad_w: int = 0, pad_h: int | None = None,
                 adj_w: int = 0, adj_h: int | None = None, bias: bool = True):
        super().__init__()
        self.in_planes, self.out_planes = int(in_planes), int(out_planes)
        self.kw = int(kw)
        self.kh = self.kw if kh is None else int(kh)
        self.dw = int(dw)
        self.dh = self.dw if dh is None else int(dh)
        self.pad_w = int(pad_w)
        self.pad_h = self.pad_w if pad_h is None else int(pad_h)
        self.adj_w = int(adj_w)
        self.adj_h = self.adj_w if adj_h is None else int(adj_h)
        if self.adj_w >= self.dw or self.adj_h >= self.dh or min(self.adj_w, self.adj_h) < 0:
            raise ValueError(f"SpatialFullConvolution: adj must be in [0, stride), got "
                             f"{self.adj_w},{self.adj_h} for strides {self.dw},{self.dh}")
        self.has_bias = bool(bias)
        self.register_parameter("weight", backend.new_parameter(
            (self.in_planes, self.out_planes, self.kh, self.kw)))
        if self.has_bias:
            self.register_parameter("bias", backend.new_parameter((self.out_planes,)))
        self.x2: Array | None = None
        self.reset()

    def reset(self, stdv: float | None = None) -> "SpatialFullConvolution":
        _uniform_reset(self, 1.0 / math.sqrt(self.kw * self.kh * self.in_planes)
                       if stdv is None else float(stdv))
        return self

    def _geometry(self, x: Array) -> tuple[Array, int, int]:
        x4 = x if x.ndim != 3 else x.reshape((1,) + tuple(x.shape))
        check(x4.ndim == 4 and int(x4.shape[1]) == self.in_planes, self,
              f"(batch, {self.in_planes}, height, width) or ({self.in_planes}, height, width)", x)
        oh = (int(x4.shape[2]) - 1) * self.dh - 2 * self.pad_h + self.kh + self.adj_h
        ow = (int(x4.shape[3]) - 1) * self.dw - 2 * self.pad_w + self.kw + self.adj_w
        check(oh > 0 and ow > 0, self, "large enough for the padding", x)
        return x4, oh, ow

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        x, oh, ow = self._geometry(input)
        b, _, h, w = (int(s) for s in x.shape)
        self.x2 = xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(self.in_planes, -1)
        w2 = self.weight.reshape(self.in_planes, -1)  # (C_in, C_out*kh*kw)
        cols = xp.matmul(w2.T, self.x2).reshape(self.out_planes, self.kh, self.kw, b, h, w)
        shape = (b, self.out_planes, oh + 2 * self.pad_h, ow + 2 * self.pad_w)
        y = col2im(xp, cols, shape, self.kh, self.kw, self.dh, self.dw)
        y = y[:, :, self.pad_h:self.pad_h + oh, self.pad_w:self.pad_w + ow]
        if self.has_bias:
            y = y + self.bias.reshape(1, -1, 1, 1)
        y = xp.ascontiguousarray(y)
        self.output = y if input.ndim == 4 else y.reshape(y.shape[1:])
        return self.output

    def _grad_cols(self, xp: Any, input: Array, grad_output: Array) -> Array:
        x, oh, ow = self._geometry(input)
        h, w = int(x.shape[2]), int(x.shape[3])
        g = grad_output if grad_output.ndim == 4 else grad_output.reshape(
            (1,) + tuple(grad_output.shape))
        g = xp.pad(g, ((0, 0), (0, 0), (self.pad_h, self.pad_h), (self.pad_w, self.pad_w)))
        cols = im2col(xp, g, self.kh, self.kw, self.dh, self.dw, h, w)
        return cols.reshape(self.out_planes * self.kh * self.kw, -1)

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        x, _, _ = self._geometry(input)
        b, _, h, w = (int(s) for s in x.shape)
        gcols = self._grad_cols(xp, input, grad_output)
        gx = xp.matmul(self.weight.reshape(self.in_planes, -1), gcols)
        gx = gx.reshape(self.in_planes, b, h, w).transpose(1, 0, 2, 3)
        self.grad_input = xp.ascontiguousarray(gx).reshape(input.shape)
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = backend.get_array_module(input)
        gcols = self._grad_cols(xp, input, grad_output)
        gw = xp.matmul(self.x2, gcols.T)
        self.grad_weight += scale * gw.reshape(self.grad_weight.shape)
        if self.has_bias:
            g = grad_output if grad_output.ndim == 4 else grad_output[None]
            self.grad_bias += scale * g.sum(axis=(0, 2, 3))

    def extra_repr(self) -> str:
        text = f"{self.in_planes} -> {self.out_planes}, {self.kw}x{self.kh}, {self.dw},{self.dh}"
        if self.pad_w or self.pad_h:
            text += f", {self.pad_w},{self.pad_h}"
        if self.adj_w or self.adj_h:
            text += f", {self.adj_w},{self.adj_h}"
        return text

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if self.has_bias else text + " without bias"


class TemporalConvolution(Module):
    """1-D convolution over time of ``(batch, T, frame)`` sequences (Lua:
    ``nn.TemporalConvolution(inputFrameSize, outputFrameSize, kW, dW)``).

    Shape: ``(batch, T, in_frame)`` or ``(T, in_frame)`` -> ``(batch, T', out_frame)``,
    ``T' = (T - kw) // dw + 1``. ``weight`` ``(out_frame, kw * in_frame)`` (Lua's layout: the
    ``kw`` input frames of a window concatenated) and ``bias`` start uniform in
    ``+-1/sqrt(kw in_frame)``.
    """

    input_kind = "array"
    _state_names = ("cols",)

    def __init__(self, in_frame: int, out_frame: int, kw: int, dw: int = 1):
        super().__init__()
        self.in_frame, self.out_frame, self.kw, self.dw = (int(in_frame), int(out_frame),
                                                           int(kw), int(dw))
        if min(self.in_frame, self.out_frame, self.kw, self.dw) <= 0:
            raise ValueError(f"TemporalConvolution sizes must be positive, got "
                             f"{self.extra_repr()}")
        self.register_parameter("weight", backend.new_parameter(
            (self.out_frame, self.kw * self.in_frame)))
        self.register_parameter("bias", backend.new_parameter((self.out_frame,)))
        self.cols: Array | None = None
        self.reset()

    def reset(self, stdv: float | None = None) -> "TemporalConvolution":
        _uniform_reset(self, 1.0 / math.sqrt(self.kw * self.in_frame)
                       if stdv is None else float(stdv))
        return self

    def _geometry(self, x: Array) -> tuple[Array, int]:
        check(x.ndim in (2, 3) and int(x.shape[-1]) == self.in_frame, self,
              f"(batch, time, {self.in_frame}) or (time, {self.in_frame})", x)
        x3 = x if x.ndim == 3 else x.reshape((1,) + tuple(x.shape))
        t = (int(x3.shape[1]) - self.kw) // self.dw + 1
        check(t > 0, self, f"at least {self.kw} time steps", x)
        return x3, t

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        x, t = self._geometry(input)
        b = int(x.shape[0])
        cols = xp.empty((b, t, self.kw, self.in_frame), dtype=x.dtype)
        for k in range(self.kw):
            cols[:, :, k] = x[:, k:k + self.dw * (t - 1) + 1:self.dw]
        self.cols = cols.reshape(b * t, self.kw * self.in_frame)
        y = xp.matmul(self.cols, self.weight.T) + self.bias
        self.output = y.reshape((b, t, self.out_frame) if input.ndim == 3
                                else (t, self.out_frame))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        x, t = self._geometry(input)
        b = int(x.shape[0])
        gcols = xp.matmul(grad_output.reshape(b * t, self.out_frame), self.weight)
        gcols = gcols.reshape(b, t, self.kw, self.in_frame)
        gx = xp.zeros_like(x)
        for k in range(self.kw):
            gx[:, k:k + self.dw * (t - 1) + 1:self.dw] += gcols[:, :, k]
        self.grad_input = gx.reshape(input.shape)
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = backend.get_array_module(input)
        g = grad_output.reshape(-1, self.out_frame)
        self.grad_weight += scale * xp.matmul(g.T, self.cols)
        self.grad_bias += scale * g.sum(axis=0)

    def extra_repr(self) -> str:
        return f"{self.in_frame} -> {self.out_frame}, {self.kw}" + \
            (f", {self.dw}" if self.dw != 1 else "")
