"""Pooling, padding and up-sampling of NCHW images (Lua: ``nn.SpatialMaxPooling``,
``nn.SpatialAveragePooling``, ``nn.SpatialZeroPadding``, ``nn.SpatialUpSamplingNearest``).

Inputs are ``(batch, C, H, W)`` or one image ``(C, H, W)``. Windows are visited one kernel
position at a time over the whole batch (strided views), never pixel by pixel.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import check
from ..module import Array, Module
from .convolution import conv_output_size

__all__ = ["SpatialMaxPooling", "SpatialAveragePooling", "SpatialZeroPadding",
           "SpatialUpSamplingNearest", "TemporalMaxPooling", "SpatialReflectionPadding",
           "SpatialReplicationPadding", "PixelShuffle", "SpatialDilatedMaxPooling",
           "SpatialAdaptiveAveragePooling", "SpatialUpSamplingBilinear"]


def _window(i: int, j: int, dh: int, dw: int, oh: int, ow: int) -> tuple:
    return (Ellipsis, slice(i, i + dh * (oh - 1) + 1, dh), slice(j, j + dw * (ow - 1) + 1, dw))


class _Pool(Module):
    input_kind = "array"

    def __init__(self, kw: int, kh: int | None, dw: int | None, dh: int | None, pad_w: int,
                 pad_h: int | None, default_stride_is_kernel: bool):
        super().__init__()
        self.kw = int(kw)
        self.kh = self.kw if kh is None else int(kh)
        if dw is None:
            dw = self.kw if default_stride_is_kernel else 1
        self.dw = int(dw)
        self.dh = (self.kh if default_stride_is_kernel else 1) if dh is None else int(dh)
        self.pad_w = int(pad_w)
        self.pad_h = self.pad_w if pad_h is None else int(pad_h)
        self.dil_w = self.dil_h = 1
        self.ceil_mode = False
        if min(self.kw, self.kh, self.dw, self.dh) <= 0 or min(self.pad_w, self.pad_h) < 0:
            raise ValueError(f"{type(self).__name__}: kernel and strides must be positive, pads "
                             f"non-negative, got {self.extra_repr()}")
        if self.pad_w > self.kw // 2 or self.pad_h > self.kh // 2:
            raise ValueError(f"{type(self).__name__}: a pad must be at most half the kernel, "
                             f"got {self.extra_repr()}")

    def ceil(self) -> "_Pool":
        """Count a last, partial window (Lua: ``:ceil()``); returns self."""
        self.ceil_mode = True
        return self

    def floor(self) -> "_Pool":
        """Drop a last, partial window (Lua: ``:floor()``, the default); returns self."""
        self.ceil_mode = False
        return self

    def _geometry(self, x: Array) -> tuple[int, int, int, int]:
        check(x.ndim in (3, 4), self, "(batch, C, height, width) or (C, height, width)", x)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        span_h, span_w = self.dil_h * (self.kh - 1) + 1, self.dil_w * (self.kw - 1) + 1
        oh = conv_output_size(h, span_h, self.dh, self.pad_h, self.ceil_mode)
        ow = conv_output_size(w, span_w, self.dw, self.pad_w, self.ceil_mode)
        check(oh > 0 and ow > 0, self, f"images of at least {span_h}x{span_w} pixels "
              f"(with padding)", x)
        # The padded extent the windows reach (ceil mode may reach past the padding).
        ph = max(h + 2 * self.pad_h, (oh - 1) * self.dh + span_h)
        pw = max(w + 2 * self.pad_w, (ow - 1) * self.dw + span_w)
        return oh, ow, ph, pw

    def _pad(self, xp: Any, x: Array, ph: int, pw: int, value: float) -> Array:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        extra = ((0, 0),) * (x.ndim - 2)
        pads = extra + ((self.pad_h, ph - h - self.pad_h), (self.pad_w, pw - w - self.pad_w))
        if all(p == (0, 0) for p in pads):
            return x
        return xp.pad(x, pads, constant_values=value)

    def _crop(self, g: Array, h: int, w: int) -> Array:
        return g[..., self.pad_h:self.pad_h + h, self.pad_w:self.pad_w + w]

    def extra_repr(self) -> str:
        text = f"{self.kw}x{self.kh}, {self.dw},{self.dh}"
        if self.pad_w or self.pad_h:
            text += f", {self.pad_w},{self.pad_h}"
        return text + (", ceil" if self.ceil_mode else "")


class SpatialMaxPooling(_Pool):
    """Maximum over ``kh x kw`` windows (Lua: ``nn.SpatialMaxPooling(kW, kH, dW, dH, padW,
    padH)``; strides default to the kernel size, ``:ceil()`` for Lua's ceil mode). Padding is
    ``-inf``; the gradient goes to the first maximum of each window (row-major), as Lua's."""

    _state_names = ("padded",)

    def __init__(self, kw: int, kh: int | None = None, dw: int | None = None,
                 dh: int | None = None, pad_w: int = 0, pad_h: int | None = None):
        super().__init__(kw, kh, dw, dh, pad_w, pad_h, default_stride_is_kernel=True)
        self.padded: Array | None = None

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        oh, ow, ph, pw = self._geometry(input)
        x = self._pad(xp, input, ph, pw, -float("inf"))
        best = None
        for i in range(self.kh):
            for j in range(self.kw):
                v = x[_window(i * self.dil_h, j * self.dil_w, self.dh, self.dw, oh, ow)]
                best = v.copy() if best is None else xp.maximum(best, v)
        # Backward finds each window's first maximum again from the padded input (cheaper than
        # tracking indices here: one maximum per kernel position).
        self.padded, self.output = x, best
        return best

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        oh, ow, ph, pw = self._geometry(input)
        g = xp.zeros(tuple(input.shape[:-2]) + (ph, pw), dtype=grad_output.dtype)
        taken = None  # windows whose first maximum has been found
        for i in range(self.kh):
            for j in range(self.kw):
                where = _window(i * self.dil_h, j * self.dil_w, self.dh, self.dw, oh, ow)
                hit = self.padded[where] == self.output
                if taken is None:
                    taken = hit
                else:
                    hit &= ~taken
                    taken |= hit
                g[where] += grad_output * hit
        self.grad_input = self._crop(g, int(input.shape[-2]), int(input.shape[-1]))
        return self.grad_input


class SpatialDilatedMaxPooling(SpatialMaxPooling):
    """Max pooling over windows whose taps are ``dil_w`` / ``dil_h`` pixels apart (Lua:
    ``nn.SpatialDilatedMaxPooling(kW, kH, dW, dH, padW, padH, dilationW, dilationH)``)."""

    def __init__(self, kw: int, kh: int | None = None, dw: int | None = None,
                 dh: int | None = None, pad_w: int = 0, pad_h: int | None = None,
                 dil_w: int = 1, dil_h: int | None = None):
        super().__init__(kw, kh, dw, dh, pad_w, pad_h)
        self.dil_w = int(dil_w)
        self.dil_h = self.dil_w if dil_h is None else int(dil_h)
        if min(self.dil_w, self.dil_h) <= 0:
            raise ValueError(f"SpatialDilatedMaxPooling: dilations must be positive, got "
                             f"{dil_w}, {dil_h}")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dilation {self.dil_w},{self.dil_h}"


class SpatialAveragePooling(_Pool):
    """Mean over ``kh x kw`` windows (Lua: ``nn.SpatialAveragePooling(kW, kH, dW, dH, padW,
    padH)``; strides default to 1 as in Lua, ``:ceil()`` for ceil mode).

    Args:
        count_include_pad: divide by the window's size including the zero padding (Lua's
            default, True), or by the number of image pixels it covers. A ceil-mode window that
            reaches past the padding is divided by the part inside it, as Lua's.
    """

    _state_names = ("divisor",)

    def __init__(self, kw: int, kh: int | None = None, dw: int | None = None,
                 dh: int | None = None, pad_w: int = 0, pad_h: int | None = None,
                 count_include_pad: bool = True):
        super().__init__(kw, kh, dw, dh, pad_w, pad_h, default_stride_is_kernel=False)
        self.count_include_pad = bool(count_include_pad)
        self.divisor: Array | None = None

    def _sum_windows(self, x: Array, oh: int, ow: int) -> Array:
        total = None
        for i in range(self.kh):
            for j in range(self.kw):
                v = x[_window(i, j, self.dh, self.dw, oh, ow)]
                total = v.copy() if total is None else total + v
        return total

    def _divisor(self, xp: Any, input: Array, oh: int, ow: int, ph: int, pw: int) -> Array:
        h, w = int(input.shape[-2]), int(input.shape[-1])
        cover = xp.zeros((ph, pw), dtype=input.dtype)
        if self.count_include_pad:
            cover[:h + 2 * self.pad_h, :w + 2 * self.pad_w] = 1
        else:
            cover[self.pad_h:self.pad_h + h, self.pad_w:self.pad_w + w] = 1
        return self._sum_windows(cover, oh, ow)

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        oh, ow, ph, pw = self._geometry(input)
        self.divisor = self._divisor(xp, input, oh, ow, ph, pw)
        x = self._pad(xp, input, ph, pw, 0.0)
        self.output = self._sum_windows(x, oh, ow) / self.divisor
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        oh, ow, ph, pw = self._geometry(input)
        gd = grad_output / self.divisor
        g = xp.zeros(tuple(input.shape[:-2]) + (ph, pw), dtype=grad_output.dtype)
        for i in range(self.kh):
            for j in range(self.kw):
                g[_window(i, j, self.dh, self.dw, oh, ow)] += gd
        self.grad_input = self._crop(g, int(input.shape[-2]), int(input.shape[-1]))
        return self.grad_input


class SpatialZeroPadding(Module):
    """Zero padding (negative values crop) of the last two axes (Lua:
    ``nn.SpatialZeroPadding(padLeft, padRight, padTop, padBottom)``; the last three default to
    ``pad_left``)."""

    input_kind = "array"

    def __init__(self, pad_left: int, pad_right: int | None = None, pad_top: int | None = None,
                 pad_bottom: int | None = None):
        super().__init__()
        self.pad_left = int(pad_left)
        self.pad_right = self.pad_left if pad_right is None else int(pad_right)
        self.pad_top = self.pad_left if pad_top is None else int(pad_top)
        self.pad_bottom = self.pad_left if pad_bottom is None else int(pad_bottom)

    @staticmethod
    def _pad_crop(xp: Any, x: Array, top: int, bottom: int, left: int, right: int) -> Array:
        """Pad the positive amounts with zeros, crop the negative ones."""
        extra = ((0, 0),) * (x.ndim - 2)
        pads = extra + ((max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0)))
        if any(p != (0, 0) for p in pads):
            x = xp.pad(x, pads)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        return x[..., max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]

    def update_output(self, input: Array) -> Array:
        h = int(input.shape[-2]) + self.pad_top + self.pad_bottom if input.ndim >= 2 else 0
        w = int(input.shape[-1]) + self.pad_left + self.pad_right if input.ndim >= 2 else 0
        check(input.ndim in (3, 4) and h > 0 and w > 0, self,
              "(batch, C, height, width) or (C, height, width) larger than the crop", input)
        xp = backend.get_array_module(input)
        self.output = self._pad_crop(xp, input, self.pad_top, self.pad_bottom, self.pad_left,
                                     self.pad_right)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        self.grad_input = self._pad_crop(xp, grad_output, -self.pad_top, -self.pad_bottom,
                                         -self.pad_left, -self.pad_right)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"l={self.pad_left}, r={self.pad_right}, t={self.pad_top}, b={self.pad_bottom}"


class SpatialUpSamplingNearest(Module):
    """Nearest-neighbour up-sampling by an integer ``scale`` (Lua:
    ``nn.SpatialUpSamplingNearest(scale)``): ``(..., H, W) -> (..., H*scale, W*scale)``."""

    input_kind = "array"

    def __init__(self, scale: int):
        super().__init__()
        if int(scale) < 1 or int(scale) != scale:
            raise ValueError(f"SpatialUpSamplingNearest needs a positive integer scale, got "
                             f"{scale}")
        self.scale = int(scale)

    def update_output(self, input: Array) -> Array:
        check(input.ndim in (3, 4), self, "(batch, C, height, width) or (C, height, width)",
              input)
        xp = backend.get_array_module(input)
        s = self.scale
        self.output = xp.repeat(xp.repeat(input, s, axis=-2), s, axis=-1)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        s = self.scale
        h, w = int(input.shape[-2]), int(input.shape[-1])
        g = grad_output.reshape(tuple(input.shape[:-2]) + (h, s, w, s))
        self.grad_input = g.sum(axis=(-3, -1))
        return self.grad_input

    def extra_repr(self) -> str:
        return str(self.scale)


class TemporalMaxPooling(Module):
    """Maximum over windows of ``kw`` time steps, ``dw`` apart (Lua: ``nn.TemporalMaxPooling(kW,
    dW)``; ``dw`` defaults to ``kw``): ``(batch, T, F)`` or ``(T, F)`` -> ``T' = (T - kw) // dw
    + 1`` steps. The gradient goes to the first maximum of each window."""

    input_kind = "array"
    _state_names = ("winner",)

    def __init__(self, kw: int, dw: int | None = None):
        super().__init__()
        self.kw = int(kw)
        self.dw = self.kw if dw is None else int(dw)
        if min(self.kw, self.dw) <= 0:
            raise ValueError(f"TemporalMaxPooling: kernel and stride must be positive, got "
                             f"{kw}, {dw}")
        self.winner: Array | None = None

    def _steps(self, x: Array) -> int:
        check(x.ndim in (2, 3) and int(x.shape[-2]) >= self.kw, self,
              f"(batch, time, features) or (time, features) with at least {self.kw} steps", x)
        return (int(x.shape[-2]) - self.kw) // self.dw + 1

    def _slice(self, k: int, t: int) -> tuple:
        return (Ellipsis, slice(k, k + self.dw * (t - 1) + 1, self.dw), slice(None))

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        t = self._steps(input)
        best = input[self._slice(0, t)].copy()
        winner = xp.zeros(best.shape, dtype="int32")
        for k in range(1, self.kw):
            v = input[self._slice(k, t)]
            better = v > best
            best = xp.where(better, v, best)
            winner = xp.where(better, k, winner)
        self.output, self.winner = best, winner
        return best

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        t = self._steps(input)
        g = xp.zeros_like(input)
        for k in range(self.kw):
            g[self._slice(k, t)] += grad_output * (self.winner == k)
        self.grad_input = g
        return g

    def extra_repr(self) -> str:
        return f"{self.kw}, {self.dw}"


def _pad_index(xp: Any, n: int, before: int, after: int, mode: str) -> Array:
    """For each padded position, the source position along an axis of length ``n``."""
    i = xp.arange(-before, n + after)
    if mode == "reflect":
        i = xp.abs(i)
        i = xp.where(i >= n, 2 * (n - 1) - i, i)
    else:
        i = xp.clip(i, 0, n - 1)
    return i


class _IndexPadding(Module):
    input_kind = "array"
    _mode = "reflect"

    def __init__(self, pad_left: int, pad_right: int | None = None, pad_top: int | None = None,
                 pad_bottom: int | None = None):
        super().__init__()
        self.pad_left = int(pad_left)
        self.pad_right = self.pad_left if pad_right is None else int(pad_right)
        self.pad_top = self.pad_left if pad_top is None else int(pad_top)
        self.pad_bottom = self.pad_left if pad_bottom is None else int(pad_bottom)
        if min(self.pad_left, self.pad_right, self.pad_top, self.pad_bottom) < 0:
            raise ValueError(f"{type(self).__name__}: pads must be non-negative, got "
                             f"{self.extra_repr()}")

    def _maps(self, xp: Any, x: Array) -> tuple[Array, Array]:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        limit = 1 if self._mode == "reflect" else 0
        ok = x.ndim in (3, 4) and max(self.pad_top, self.pad_bottom) <= h - limit \
            and max(self.pad_left, self.pad_right) <= w - limit
        check(ok, self, "(batch, C, height, width) or (C, height, width)"
              + (" larger than the pads" if limit else ""), x)
        return (_pad_index(xp, h, self.pad_top, self.pad_bottom, self._mode),
                _pad_index(xp, w, self.pad_left, self.pad_right, self._mode))

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        rows, cols = self._maps(xp, input)
        self.output = xp.take(xp.take(input, rows, axis=-2), cols, axis=-1)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        # Each padded position adds its gradient to its source: two small selection matrices.
        xp = backend.get_array_module(input)
        rows, cols = self._maps(xp, input)
        dtype = grad_output.dtype
        a_h = (rows[:, None] == xp.arange(int(input.shape[-2]))).astype(dtype)
        a_w = (cols[:, None] == xp.arange(int(input.shape[-1]))).astype(dtype)
        self.grad_input = xp.matmul(xp.matmul(a_h.T, grad_output), a_w)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"l={self.pad_left}, r={self.pad_right}, t={self.pad_top}, b={self.pad_bottom}"


class SpatialReflectionPadding(_IndexPadding):
    """Pad the last two axes with their mirror image, the edge not repeated (Lua:
    ``nn.SpatialReflectionPadding(padL, padR, padT, padB)``); pads smaller than the size."""

    _mode = "reflect"


class SpatialReplicationPadding(_IndexPadding):
    """Pad the last two axes by repeating the edge (Lua:
    ``nn.SpatialReplicationPadding(padL, padR, padT, padB)``)."""

    _mode = "edge"


class PixelShuffle(Module):
    """``(batch, C r^2, H, W) -> (batch, C, H r, W r)``, channel blocks moved into space (Lua:
    ``nn.PixelShuffle(upscaleFactor)``; also one image ``(C r^2, H, W)``)."""

    input_kind = "array"

    def __init__(self, upscale_factor: int):
        super().__init__()
        if int(upscale_factor) < 1:
            raise ValueError(f"PixelShuffle needs a positive factor, got {upscale_factor}")
        self.r = int(upscale_factor)

    def update_output(self, input: Array) -> Array:
        r = self.r
        check(input.ndim in (3, 4) and int(input.shape[-3]) % (r * r) == 0, self,
              f"(batch, C*{r * r}, height, width) or (C*{r * r}, height, width)", input)
        x = input if input.ndim == 4 else input[None]
        b, c, h, w = (int(s) for s in x.shape)
        y = x.reshape(b, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
        y = y.reshape(b, c // (r * r), h * r, w * r)
        self.output = y if input.ndim == 4 else y[0]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        r = self.r
        x = input if input.ndim == 4 else input[None]
        b, c, h, w = (int(s) for s in x.shape)
        g = grad_output.reshape(b, c // (r * r), h, r, w, r).transpose(0, 1, 3, 5, 2, 4)
        self.grad_input = g.reshape(input.shape)
        return self.grad_input

    def extra_repr(self) -> str:
        return str(self.r)


def _adaptive_matrix(n_in: int, n_out: int) -> Any:
    """``(n_out, n_in)`` host matrix averaging Lua's adaptive windows
    ``[floor(o n_in / n_out), ceil((o + 1) n_in / n_out))``."""
    host = backend.array_module("cpu")
    a = host.zeros((n_out, n_in))
    for o in range(n_out):  # one row per output position of one axis, not per pixel
        start, end = (o * n_in) // n_out, -(-((o + 1) * n_in) // n_out)
        a[o, start:end] = 1.0 / (end - start)
    return a


def _bilinear_matrix(n_in: int, n_out: int) -> Any:
    """``(n_out, n_in)`` host matrix of Lua's bilinear interpolation (corners aligned; the
    ratio rounded to float32 as THNN computes it)."""
    host = backend.array_module("cpu")
    a = host.zeros((n_out, n_in))
    ratio = host.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else host.float32(0)
    for o in range(n_out):
        r = host.float32(ratio * host.float32(o))
        i0 = int(r)
        i1 = i0 + (1 if i0 < n_in - 1 else 0)
        lam = float(r) - i0
        a[o, i0] += 1.0 - lam
        a[o, i1] += lam
    return a


class _SeparableResize(Module):
    """``y = A_h x A_w^T`` over the last two axes, with per-axis matrices made for each size."""

    input_kind = "array"

    def _sizes(self, h: int, w: int) -> tuple[int, int]:
        raise NotImplementedError

    def _matrix(self, n_in: int, n_out: int) -> Any:
        raise NotImplementedError

    def _matrices(self, x: Array) -> tuple[Array, Array]:
        check(x.ndim in (3, 4), self, "(batch, C, height, width) or (C, height, width)", x)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        oh, ow = self._sizes(h, w)
        key = (h, w, oh, ow, backend.device_of(x), x.dtype)
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] != key:
            a_h = backend.to_device(self._matrix(h, oh).astype(x.dtype), backend.device_of(x))
            a_w = backend.to_device(self._matrix(w, ow).astype(x.dtype), backend.device_of(x))
            self._cache: tuple[Any, Array, Array] | None = (key, a_h, a_w)
            return a_h, a_w
        return cached[1], cached[2]

    def _clear_extra_state(self) -> None:
        self._cache = None

    def update_output(self, input: Array) -> Array:
        xp = backend.get_array_module(input)
        a_h, a_w = self._matrices(input)
        self.output = xp.matmul(xp.matmul(a_h, input), a_w.T)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = backend.get_array_module(input)
        a_h, a_w = self._matrices(input)
        self.grad_input = xp.matmul(xp.matmul(a_h.T, grad_output), a_w)
        return self.grad_input


class SpatialAdaptiveAveragePooling(_SeparableResize):
    """Average pooling to a fixed ``(out_h, out_w)`` whatever the input's size (Lua:
    ``nn.SpatialAdaptiveAveragePooling(W, H)``; windows ``[floor(o H / out_h), ceil((o + 1) H /
    out_h))``, as Lua's)."""

    def __init__(self, out_w: int, out_h: int | None = None):
        super().__init__()
        self.out_w = int(out_w)
        self.out_h = self.out_w if out_h is None else int(out_h)
        if min(self.out_w, self.out_h) <= 0:
            raise ValueError(f"SpatialAdaptiveAveragePooling needs positive sizes, got "
                             f"{out_w}, {out_h}")

    def _sizes(self, h: int, w: int) -> tuple[int, int]:
        return self.out_h, self.out_w

    def _matrix(self, n_in: int, n_out: int) -> Any:
        return _adaptive_matrix(n_in, n_out)

    def extra_repr(self) -> str:
        return f"{self.out_w}x{self.out_h}"


class SpatialUpSamplingBilinear(_SeparableResize):
    """Bilinear up-sampling with aligned corners (Lua: ``nn.SpatialUpSamplingBilinear(scale)`` or
    ``({oheight=, owidth=})``): by an integer ``scale``, ``H' = H scale`` (what Lua's code does;
    its comment says ``(H - 1) scale + 1``), or to ``out_h x out_w``. The interpolation ratio is
    rounded to float32, as THNN's, so values match Lua's to the last bits."""

    def __init__(self, scale: int | None = None, out_h: int | None = None,
                 out_w: int | None = None):
        super().__init__()
        if (scale is None) == (out_h is None or out_w is None):
            raise ValueError("SpatialUpSamplingBilinear takes an integer scale or out_h and out_w")
        if scale is not None and (int(scale) != scale or int(scale) < 1):
            raise ValueError(f"SpatialUpSamplingBilinear needs an integer scale >= 1, got {scale}")
        self.scale = None if scale is None else int(scale)
        self.out_h = None if out_h is None else int(out_h)
        self.out_w = None if out_w is None else int(out_w)

    def _sizes(self, h: int, w: int) -> tuple[int, int]:
        if self.scale is not None:
            return h * self.scale, w * self.scale
        assert self.out_h is not None and self.out_w is not None  # the constructor checked
        return self.out_h, self.out_w

    def _matrix(self, n_in: int, n_out: int) -> Any:
        return _bilinear_matrix(n_in, n_out)

    def extra_repr(self) -> str:
        return str(self.scale) if self.scale is not None else f"{self.out_h}x{self.out_w}"
