"""The optional numba step kernels (``lstm.accel``) compute what the NumPy passes compute.

Skipped where numba is not installed, except the checks of how the optimizer chooses.
"""
from __future__ import annotations

import math

import numpy
import pytest

from nngraph_py import backend, nn, optim
from lstm import LSTM
from nngraph_py.compile import accel
from lstm.cell import make_lstm_cell
from nngraph_py.compile import recipes as fast
from lstm.fast import FusedLSTM, _step_backward, _step_forward

needs_numba = pytest.mark.skipif(not accel.available(),
                                 reason="numba not installed (pip install 'nngraph_py[accel]')")


def test_importing_lstm_does_not_import_numba():
    import subprocess
    import sys

    code = "import sys, lstm, lstm.fast, nngraph_py.compile; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rational_tanh_is_within_one_float32_ulp():
    xs = numpy.concatenate([numpy.linspace(-12, 12, 20001), numpy.geomspace(1e-6, 9, 2000)])
    for x in xs:
        ref = math.tanh(x)
        got = numpy.float32(accel.tanh32(float(x)))
        assert abs(float(got) - ref) <= numpy.spacing(numpy.float32(abs(ref))) + 1e-45, x
    assert accel.tanh32(0.0) == 0.0 and accel.tanh32(-3.0) == -accel.tanh32(3.0)


@needs_numba
@pytest.mark.parametrize("first_step", [True, False])
def test_step_kernels_equal_the_array_passes(rng, first_step):
    B, H = 5, 7
    f32 = numpy.float32
    g0 = (3 * rng.standard_normal((B, 4 * H))).astype(f32)
    r = None if first_step else rng.standard_normal((B, 4 * H)).astype(f32)
    c_prev = None if first_step else rng.standard_normal((B, H)).astype(f32)
    zeros = numpy.zeros((B, 4 * H), f32)
    outs = {}
    for name in ("numpy", "numba"):
        g, c, tc, h = g0.copy(), *(numpy.empty((B, H), f32) for _ in range(3))
        if name == "numpy":
            _step_forward(numpy, g, r, c_prev, c, tc, h, numpy.empty((B, H), f32))
        else:
            accel.kernels().step_forward(g, zeros if r is None else r, zeros[:, :H] if c_prev is None else c_prev,
                               c, tc, h)
        outs[name] = (g, c, tc, h)
    for a, b in zip(outs["numpy"], outs["numba"]):
        numpy.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)

    g, tc = outs["numpy"][0], outs["numpy"][2]
    d_above, dh0, dc0 = (rng.standard_normal((B, H)).astype(f32) for _ in range(3))
    bufs = {k: numpy.empty(s, f32) for k, s in (("tmp", (B, H)), ("tmp2", (B, H)), ("tmp3", (B, 3 * H)))}
    dh, dc, dg = dh0 + d_above, dc0.copy(), numpy.empty((B, 4 * H), f32)
    _step_backward(numpy, g, tc, c_prev, dh, dc, dg, bufs)
    kdc, kdg = dc0.copy(), numpy.empty((B, 4 * H), f32)
    accel.kernels().step_backward(g, tc, zeros[:, :H] if c_prev is None else c_prev, d_above, dh0, kdc, kdg)
    numpy.testing.assert_allclose(kdg, dg, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(kdc, dc, rtol=1e-5, atol=1e-6)


def run_fused(kernels, cells, x, h0, c0, gout, ghn, gcn):
    for c in cells:
        c.zero_grad_parameters()
    fused = FusedLSTM(cells, kernels=kernels)
    out, h_n, c_n = (a.copy() for a in fused.forward(x, h0, c0))
    dx, dh0, dc0 = (a.copy() for a in fused.backward(gout, ghn, gcn))
    fused.acc_grad_parameters(scale=0.5)
    grads = [g.copy() for c in cells for g in c.parameters()[1]]
    return fused, [out, h_n, c_n, dx, dh0, dc0] + grads


@needs_numba
@pytest.mark.parametrize("feature_major", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_fused_lstm_with_kernels_equals_numpy_passes(rng, with_state, feature_major, monkeypatch):
    monkeypatch.setattr(fast, "FEATURE_MAJOR_BELOW", 10**9 if feature_major else 0)
    T, B, I, H = 6, 4, 5, 8
    cells = [make_lstm_cell(I, H), make_lstm_cell(H, H)]
    f32 = numpy.float32
    x = rng.standard_normal((T, B, I)).astype(f32)
    h0 = rng.standard_normal((2, B, H)).astype(f32) if with_state else None
    c0 = rng.standard_normal((2, B, H)).astype(f32) if with_state else None
    # a transposed (non-contiguous) output gradient, as batch-first models pass it
    gout = numpy.ascontiguousarray(rng.standard_normal((B, T, H)).astype(f32)).transpose(1, 0, 2)
    ghn, gcn = (rng.standard_normal((2, B, H)).astype(f32) for _ in range(2))
    plain, want = run_fused("numpy", cells, x, h0, c0, gout, ghn, gcn)
    compiled, got = run_fused("numba", cells, x, h0, c0, gout, ghn, gcn)
    assert compiled.uses_kernels(x) and not plain.uses_kernels(x)
    for a, b in zip(got, want):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@needs_numba
def test_training_with_kernels_follows_the_numpy_path(rng):
    x = rng.standard_normal((8, 6, 3)).astype("float32")
    y = rng.integers(0, 4, size=8)
    losses = {}
    for kernels in ("numpy", "numba"):
        backend.manual_seed(3)
        lstm = LSTM(3, 10, 2).optimize(kernels=kernels)
        head = nn.Linear(10, 4)
        model = nn.Sequential(lstm, nn.SelectTable(0), nn.Select(1, -1), head)
        crit = nn.CrossEntropyCriterion()
        opt = optim.Adam(model, lr=0.01)
        trace = []
        for _ in range(5):
            opt.zero_grad()
            out = model.forward(x)
            trace.append(crit.forward(out, y))
            model.backward(x, crit.backward(out, y))
            opt.step()
        losses[kernels] = trace
    numpy.testing.assert_allclose(losses["numba"], losses["numpy"], rtol=1e-5)
    assert losses["numba"][-1] < losses["numba"][0]


def test_kernels_are_chosen_only_where_they_apply(rng, monkeypatch):
    cells = [make_lstm_cell(2, 3)]
    x32 = numpy.zeros((2, 1, 2), "float32")
    assert not FusedLSTM(cells, kernels="numpy").uses_kernels(x32)
    assert FusedLSTM(cells).uses_kernels(x32) == accel.available()
    assert not FusedLSTM(cells).uses_kernels(x32.astype("float64"))  # exact tanh: array passes
    assert not FusedLSTM(cells).uses_kernels(backend.to_device(x32, "strict"))
    with pytest.raises(ValueError, match="kernels must be"):
        FusedLSTM(cells, kernels="fast")
    with pytest.raises(ValueError, match="kernels must be"):
        LSTM(2, 3).optimize(kernels="fast")
    monkeypatch.setenv("NNGRAPH_PY_NUMBA", "0")
    assert not accel.available()
    with pytest.raises(RuntimeError, match="needs numba"):
        FusedLSTM(cells, kernels="numba")
    with pytest.raises(RuntimeError, match="need numba"):
        accel.kernels()
    fused = FusedLSTM(cells)  # auto without numba: the array passes
    assert not fused.uses_kernels(x32)
    out, _, _ = fused.forward(x32, None, None)
    assert out.shape == (2, 1, 3)


@needs_numba
@pytest.mark.parametrize("with_state", [True, False])
def test_kernels_with_lengths_and_both_directions_follow_the_numpy_passes(rng, with_state):
    """The compiled steps under a lengths mask (state kept, outputs zero, gradient passed through
    padded steps) and on the reversed sequence, against the array passes."""
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    lengths = numpy.array([6, 1, 4, 2])
    state = [rng.standard_normal((4, 4, 5)).astype("float32") for _ in range(2)]
    given = [x] + state if with_state else x
    results = {}
    for kernels in ("numpy", "numba"):
        backend.manual_seed(3)
        model = LSTM(3, 5, 2, bidirectional=True).optimize(kernels=kernels)
        assert model.executors[0].uses_kernels(x) == (kernels == "numba")
        outputs, (h_n, c_n) = model.forward(given, lengths=lengths)
        grads = model.backward(given, [numpy.ones_like(outputs), h_n, c_n])
        grads = grads if with_state else [grads]
        results[kernels] = [outputs, h_n, c_n] + grads + [g.copy() for g in model.parameters()[1]]
    assert not results["numba"][0][1, 1:].any()  # zeros past the length
    for a, b in zip(results["numba"], results["numpy"]):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
