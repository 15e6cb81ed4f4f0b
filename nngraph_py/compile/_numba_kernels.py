"""The numba kernels behind :mod:`nngraph_py.compile.accel` (imported on first use; see there)."""
from __future__ import annotations

import math
from typing import Any

import numba
from numba import types
from numba.extending import overload

from .accel import _P, _Q, TANH_CLAMP

__all__ = ["step_forward", "step_backward"]

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
