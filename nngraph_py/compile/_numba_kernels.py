"""The numba kernels behind :mod:`nngraph_py.compile.accel` (imported on first use; see there)."""
from __future__ import annotations

import math
from typing import Any

import numba
import numpy
from numba import types
from numba.extending import overload

from .accel import _P, _Q, TANH_CLAMP

__all__ = ["step_forward", "step_backward", "step_infer", "gru_step_forward", "gru_step_infer",
           "gru_step_backward", "tanh_infer"]

_JIT: Any = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})


@numba.njit(inline="always", **_JIT)
def _tanh_rational(x):
    x = min(max(x, -TANH_CLAMP), TANH_CLAMP)
    s = x * x
    p = ((((_P[5] * s + _P[4]) * s + _P[3]) * s + _P[2]) * s + _P[1]) * s + _P[0]
    q = (((_Q[4] * s + _Q[3]) * s + _Q[2]) * s + _Q[1]) * s + _Q[0]
    return x * p / q


def _tanh(x):  # the typed dispatch below picks the implementation
    raise NotImplementedError


@overload(_tanh, inline="always", jit_options=_JIT)
def _tanh_impl(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: numba.float32(_tanh_rational(numba.float64(x)))
    return lambda x: math.tanh(x)


# The inference kernels evaluate the same rational function in float32 arithmetic (coefficients
# rounded to float32): eight lanes per AVX2 instruction instead of four, half the time of the
# float64 evaluation (MNIST shape: 50 vs 110 us per LSTM step), at most 6 units in the last place
# of float32 instead of 0.52 (tests/lstm/test_lstm_recipe_inference.py measures it). Training
# keeps the float64 evaluation: the gradients see the accurate tanh.
_P32 = tuple(numpy.float32(v) for v in _P)
_Q32 = tuple(numpy.float32(v) for v in _Q)
_CLAMP32 = numpy.float32(TANH_CLAMP)


@numba.njit(inline="always", **_JIT)
def _tanh_rational32(x):
    x = min(max(x, -_CLAMP32), _CLAMP32)
    s = x * x
    p = ((((_P32[5] * s + _P32[4]) * s + _P32[3]) * s + _P32[2]) * s + _P32[1]) * s + _P32[0]
    q = (((_Q32[4] * s + _Q32[3]) * s + _Q32[2]) * s + _Q32[1]) * s + _Q32[0]
    return x * p / q


def _tanh_fast(x):  # the typed dispatch below picks the implementation
    raise NotImplementedError


@overload(_tanh_fast, inline="always", jit_options=_JIT)
def _tanh_fast_impl(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: _tanh_rational32(x)
    return lambda x: math.tanh(x)


@numba.njit(**_JIT)
def tanh_infer(x, out):
    """``out[j] = tanh(x[j])`` as the inference kernels compute it (1-D arrays; for tests)."""
    for j in range(x.shape[0]):
        out[j] = _tanh_fast(x[j])


# The kernels loop over rows and take one 1-D view per operand and gate: with 2-D indexing
# LLVM cannot prove that the stores to one gate's columns miss the loads of another's, and
# leaves the loop scalar (6x slower).


@numba.njit(**_JIT)
def step_forward(g, r, c_prev, c, tc, h):
    """One step of the cell, in place (Lua's ``updateOutput`` of the recipe's element-wise nodes).

    Args:
        g: ``(B, 4H)`` input projection plus biases ``[input, forget, output, candidate]``;
            overwritten by the activated gates (kept for backward).
        r: ``(B, 4H)`` recurrent product ``prev_h @ W_hh.T`` (zeros at the first step).
        c_prev: ``(B, H)`` previous cell state (zeros at the first step).
        c, tc, h: ``(B, H)`` outputs: the cell state, ``tanh(c)`` and ``h = o * tanh(c)``.
    """
    H = c.shape[1]
    half = g.dtype.type(0.5)
    for b in range(g.shape[0]):
        gi, gf, go, ga = g[b, :H], g[b, H:2 * H], g[b, 2 * H:3 * H], g[b, 3 * H:]
        ri, rf, ro, ra = r[b, :H], r[b, H:2 * H], r[b, 2 * H:3 * H], r[b, 3 * H:]
        cp, cb, tb, hb = c_prev[b], c[b], tc[b], h[b]
        for j in range(H):
            i = half * _tanh(half * (gi[j] + ri[j])) + half
            f = half * _tanh(half * (gf[j] + rf[j])) + half
            o = half * _tanh(half * (go[j] + ro[j])) + half
            a = _tanh(ga[j] + ra[j])
            gi[j], gf[j], go[j], ga[j] = i, f, o, a
            ct = f * cp[j] + i * a
            t = _tanh(ct)
            cb[j], tb[j], hb[j] = ct, t, o * t


@numba.njit(**_JIT)
def step_backward(g, tc, c_prev, d_above, dh, dc, dg):
    """Gradients of one step's element-wise part (Lua's ``updateGradInput`` of those nodes).

    Args:
        g: ``(B, 4H)`` activated gates of the step (from :func:`step_forward`).
        tc: ``(B, H)`` ``tanh(c)`` of the step.
        c_prev: ``(B, H)`` the previous cell state (zeros at the first step).
        d_above: ``(B, H)`` gradient reaching ``h`` from above (the layer's output).
        dh: ``(B, H)`` gradient reaching ``h`` from the next step.
        dc: ``(B, H)`` gradient reaching ``c`` from the next step; overwritten by the
            gradient w.r.t. ``c_prev``.
        dg: ``(B, 4H)`` output: gradients w.r.t. the gate pre-activations.
    """
    H = tc.shape[1]
    one = g.dtype.type(1.0)
    for b in range(g.shape[0]):
        gi, gf, go, ga = g[b, :H], g[b, H:2 * H], g[b, 2 * H:3 * H], g[b, 3 * H:]
        di, df, do, da = dg[b, :H], dg[b, H:2 * H], dg[b, 2 * H:3 * H], dg[b, 3 * H:]
        tb, cp, ab, hb, cb = tc[b], c_prev[b], d_above[b], dh[b], dc[b]
        for j in range(H):
            i, f, o, a, t = gi[j], gf[j], go[j], ga[j], tb[j]
            d_h = hb[j] + ab[j]
            d_c = cb[j] + d_h * o * (one - t * t)
            di[j] = d_c * a * i * (one - i)
            df[j] = d_c * cp[j] * f * (one - f)
            do[j] = d_h * t * o * (one - o)
            da[j] = d_c * i * (one - a * a)
            cb[j] = d_c * f


@numba.njit(**_JIT)
def step_infer(g, r, bias, c_prev, c, h):
    """One LSTM step for inference: :func:`step_forward` without the stores backward reads
    (float32: the float32 evaluation of the rational tanh, see above).

    Args:
        g: ``(B, 4H)`` input projection ``[input, forget, output, candidate]`` without biases
            (read only: the activated gates are not kept).
        r: ``(B, 4H)`` recurrent product (zeros at the first step).
        bias: ``(4H,)`` both biases of each gate, summed.
        c_prev: ``(B, H)`` previous cell state (zeros at the first step).
        c, h: ``(B, H)`` outputs: the new cell state and ``h = o * tanh(c)``.
    """
    H = c.shape[1]
    half = g.dtype.type(0.5)
    bi, bf, bo, ba = bias[:H], bias[H:2 * H], bias[2 * H:3 * H], bias[3 * H:]
    for b in range(g.shape[0]):
        gi, gf, go, ga = g[b, :H], g[b, H:2 * H], g[b, 2 * H:3 * H], g[b, 3 * H:]
        ri, rf, ro, ra = r[b, :H], r[b, H:2 * H], r[b, 2 * H:3 * H], r[b, 3 * H:]
        cp, cb, hb = c_prev[b], c[b], h[b]
        for j in range(H):
            i = half * _tanh_fast(half * (gi[j] + ri[j] + bi[j])) + half
            f = half * _tanh_fast(half * (gf[j] + rf[j] + bf[j])) + half
            o = half * _tanh_fast(half * (go[j] + ro[j] + bo[j])) + half
            a = _tanh_fast(ga[j] + ra[j] + ba[j])
            ct = f * cp[j] + i * a
            cb[j] = ct
            hb[j] = o * _tanh_fast(ct)


# The GRU recipe (PyTorch's equations, gate rows [reset, update, new]):
#   r, z = sigmoid(gi_rz + gh_rz + b_hh_rz),  n = tanh(gi_n + r * (gh_n + b_hh_n)),
#   h' = n + z * (h - n)
# with gi the hoisted input projection plus b_ih and gh = h @ W_hh.T (no bias).


@numba.njit(**_JIT)
def gru_step_forward(a, gh, b_hh, h_prev, ghn, h):
    """One GRU step, in place (Lua's ``updateOutput`` of the GRU recipe's element-wise nodes).

    Args:
        a: ``(B, 3H)`` input projection plus ``b_ih``; overwritten by the activated gates
            ``r, z, n`` (kept for backward).
        gh: ``(B, 3H)`` recurrent product ``h_prev @ W_hh.T`` without bias (zeros at the first
            step).
        b_hh: ``(3H,)`` the recurrent biases.
        h_prev: ``(B, H)`` previous state.
        ghn: ``(B, H)`` output: ``gh_n + b_hh_n`` (what ``r`` multiplies; kept for backward).
        h: ``(B, H)`` output: the new state.
    """
    H = h.shape[1]
    half = a.dtype.type(0.5)
    br, bz, bn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    for b in range(a.shape[0]):
        ar, az, an = a[b, :H], a[b, H:2 * H], a[b, 2 * H:]
        hr, hz, hn = gh[b, :H], gh[b, H:2 * H], gh[b, 2 * H:]
        hp, qb, hb = h_prev[b], ghn[b], h[b]
        for j in range(H):
            r = half * _tanh(half * (ar[j] + hr[j] + br[j])) + half
            z = half * _tanh(half * (az[j] + hz[j] + bz[j])) + half
            q = hn[j] + bn[j]
            n = _tanh(an[j] + r * q)
            ar[j], az[j], an[j], qb[j] = r, z, n, q
            hb[j] = n + z * (hp[j] - n)


@numba.njit(**_JIT)
def gru_step_infer(a, gh, b_hh, h_prev, h):
    """One GRU step for inference: :func:`gru_step_forward` without the stores backward reads
    (``a`` is read only; float32: the float32 evaluation of the rational tanh, see above)."""
    H = h.shape[1]
    half = a.dtype.type(0.5)
    br, bz, bn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    for b in range(a.shape[0]):
        ar, az, an = a[b, :H], a[b, H:2 * H], a[b, 2 * H:]
        hr, hz, hn = gh[b, :H], gh[b, H:2 * H], gh[b, 2 * H:]
        hp, hb = h_prev[b], h[b]
        for j in range(H):
            r = half * _tanh_fast(half * (ar[j] + hr[j] + br[j])) + half
            z = half * _tanh_fast(half * (az[j] + hz[j] + bz[j])) + half
            n = _tanh_fast(an[j] + r * (hn[j] + bn[j]))
            hb[j] = n + z * (hp[j] - n)


@numba.njit(**_JIT)
def gru_step_backward(a, ghn, h_prev, d_above, dh, dgi, dgh):
    """Gradients of one GRU step's element-wise part (Lua's ``updateGradInput`` of those nodes).

    Args:
        a: ``(B, 3H)`` activated gates ``r, z, n`` of the step (from :func:`gru_step_forward`).
        ghn: ``(B, H)`` ``gh_n + b_hh_n`` of the step.
        h_prev: ``(B, H)`` the previous state.
        d_above: ``(B, H)`` gradient reaching ``h`` from above (the layer's output).
        dh: ``(B, H)`` gradient reaching ``h`` from the next step; overwritten by the part of
            the gradient w.r.t. ``h_prev`` that does not go through ``W_hh`` (``dh * z``).
        dgi: ``(B, 3H)`` output: gradients w.r.t. the input projection's rows (and ``b_ih``).
        dgh: ``(B, 3H)`` output: gradients w.r.t. the recurrent product's rows (and ``b_hh``).
    """
    H = dh.shape[1]
    one = a.dtype.type(1.0)
    for b in range(a.shape[0]):
        ar, az, an = a[b, :H], a[b, H:2 * H], a[b, 2 * H:]
        ir, iz, i_n = dgi[b, :H], dgi[b, H:2 * H], dgi[b, 2 * H:]
        hr, hz, hn = dgh[b, :H], dgh[b, H:2 * H], dgh[b, 2 * H:]
        qb, hp, ab, db = ghn[b], h_prev[b], d_above[b], dh[b]
        for j in range(H):
            r, z, n = ar[j], az[j], an[j]
            d = db[j] + ab[j]
            dn = d * (one - z) * (one - n * n)
            dz = d * (hp[j] - n) * z * (one - z)
            dr = dn * qb[j] * r * (one - r)
            ir[j], iz[j], i_n[j] = dr, dz, dn
            hr[j], hz[j], hn[j] = dr, dz, dn * r
            db[j] = d * z
