"""The recipe executors' inference mode (``forward(..., keep=False)``), ``invalidate()`` and the
GRU recipe's numba step kernels.

keep=False gives the outputs keep=True gives (LSTM and GRU, float32 and float64, NumPy passes and
numba kernels, with and without a lengths mask and initial states), keeps nothing for backward
(backward raises GraphError), plans one-step scratch instead of per-step histories; invalidate()
rebinds to new arrays, devices and dtypes; the GRU kernels equal the array passes and pass a
float64 finite-difference check through ``lstm.GRU`` / ``lstm.LSTM``.
"""
from __future__ import annotations

import numpy
import pytest
from conftest import on

import lstm
from lstm.cell import make_gru_cell, make_lstm_cell
from nngraph_py import backend, gradcheck
from nngraph_py.compile import accel, recipes
from nngraph_py.compile.recipes import FusedGRULayer, FusedLSTMLayer
from nngraph_py.errors import GraphError

needs_numba = pytest.mark.skipif(not accel.available(),
                                 reason="numba not installed (pip install 'nngraph_py[accel]')")
KERNELS = ["numpy", pytest.param("numba", marks=needs_numba)]
T, B, I, H = 5, 4, 3, 6


def make_executor(kind: str, kernels: str, dtype: str):
    if kind == "lstm":
        return FusedLSTMLayer(make_lstm_cell(I, H).to(dtype=dtype), kernels=kernels)
    return FusedGRULayer(make_gru_cell(I, H).to(dtype=dtype), kernels=kernels)


def inputs(rng, kind: str, dtype: str, with_state: bool, lengths: bool):
    x = rng.standard_normal((T, B, I)).astype(dtype)
    n = 2 if kind == "lstm" else 1
    state = [rng.standard_normal((B, H)).astype(dtype) if with_state else None for _ in range(n)]
    mask = None
    if lengths:
        mask = (numpy.arange(T)[:, None] < numpy.array([5, 1, 3, 2])[None, :])[:, :, None]
    return x, state, mask


def copy_result(result):
    out, finals = result
    return [out.copy()] + [f.copy() for f in finals]


@pytest.mark.parametrize("feature_major", [True, False])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "state"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_keep_false_gives_the_outputs_of_keep_true(rng, monkeypatch, kind, kernels, dtype,
                                                   with_state, lengths, feature_major):
    monkeypatch.setattr(recipes, "FEATURE_MAJOR_BELOW", 10**9 if feature_major else 0)
    ex = make_executor(kind, kernels, dtype)
    x, state, mask = inputs(rng, kind, dtype, with_state, lengths)
    assert ex.uses_kernels(x) == (kernels == "numba")
    first = copy_result(ex.forward(x, state, mask, keep=False))  # on a fresh executor
    kept = copy_result(ex.forward(x, state, mask, keep=True))
    for got in (first, copy_result(ex.forward(x, state, mask, keep=False))):  # planned buffers
        tol = {"rtol": 2e-6, "atol": 2e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}
        for a, b in zip(got, kept):
            numpy.testing.assert_allclose(a, b, **tol)
    if lengths:
        assert not got[0][1:, 1].any()  # zeros past the length


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_backward_after_keep_false_raises(rng, kind, kernels):
    ex = make_executor(kind, kernels, "float32")
    x, state, _ = inputs(rng, kind, "float32", True, False)
    grads = [None] * len(state)
    with pytest.raises(GraphError, match="before forward"):
        ex.backward(numpy.ones((T, B, H), "float32"), grads)
    ex.forward(x, state, keep=True)
    ex.backward(numpy.ones((T, B, H), "float32"), grads)
    ex.acc_grad_parameters()
    ex.forward(x, state, keep=False)  # after a kept one: the kept one is gone
    with pytest.raises(GraphError, match="kept nothing for backward"):
        ex.backward(numpy.ones((T, B, H), "float32"), grads)
    with pytest.raises(GraphError, match="kept nothing for backward"):
        ex.acc_grad_parameters()
    assert ex._x is None  # no reference to the input either


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_keep_false_plans_one_step_scratch_and_reuses_it(rng, kind):
    ex = make_executor(kind, "numpy", "float32")
    x, state, _ = inputs(rng, kind, "float32", False, False)
    out, _ = ex.forward(x, state, keep=False)
    (plan,) = ex.buffers.values()
    # Per-step arrays: only the outputs (and the GRU's input projection, activated in place;
    # the LSTM multiplies [x_t, h] by the stacked weights step by step).
    per_step = sorted(k for k, a in plan.items() if a.ndim == 3 and a.shape[0] == T)
    assert per_step == (["h"] if kind == "lstm" else ["gates", "h"])
    assert not any(k.startswith("d") for k in plan)  # no gradient buffers
    again, _ = ex.forward(x * 2, state, keep=False)
    assert again is out and len(ex.buffers) == 1  # planned once per (T, B, dtype, keep)
    ex.forward(x, state, keep=True)
    kept_bytes = sum(a.nbytes for a in ex.buffers[(T, B, "float32", True)].values())
    assert sum(a.nbytes for a in plan.values()) < 0.6 * kept_bytes


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_invalidate_rebinds_to_new_weights_device_and_dtype(rng, kind, kernels):
    ex = make_executor(kind, kernels, "float64")
    cell_linears = ex.cell.i2h + ex.cell.h2h
    x, state, mask = inputs(rng, kind, "float64", True, True)
    first = copy_result(ex.forward(x, state, mask, keep=False))
    # New weight arrays (what get_parameters()/share() do): the executor reads them again.
    for lin in cell_linears:
        lin.weight = lin.weight * 0.5
    ex.invalidate()
    assert ex.w_ih is None and not ex.buffers and ex._kept is None
    with pytest.raises(GraphError, match="before forward"):
        ex.backward(None, [None] * len(state))
    halved = copy_result(ex.forward(x, state, mask, keep=True))
    fresh = make_executor(kind, kernels, "float64")
    for mine, theirs in zip(cell_linears, fresh.cell.i2h + fresh.cell.h2h):
        theirs.weight[...] = mine.weight
        if mine.has_bias:
            theirs.bias[...] = mine.bias
    want = copy_result(fresh.forward(x, state, mask, keep=True))
    for a, b in zip(halved, want):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert not numpy.allclose(halved[0], first[0])
    # Another device (the strict backend proves no stray NumPy call) and another dtype.
    for device, dtype, tol in (("strict", "float64", 1e-12), ("cpu", "float32", 2e-5)):
        for lin in cell_linears:
            lin.to(device, dtype)
        ex.invalidate()
        xs = [on(device, a.astype(dtype)) for a in [x] + state]
        for keep in (True, False):
            got = copy_result(ex.forward(xs[0], xs[1:], None if mask is None else on(device, mask),
                                         keep=keep))
            for a, b in zip(got, want):
                assert a.dtype == dtype
                numpy.testing.assert_allclose(backend.to_numpy(a), b, rtol=tol, atol=tol)
        for lin in cell_linears:
            lin.to("cpu", "float64")


@pytest.mark.parametrize("feature_major", [True, False])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_in_place_weight_updates_reach_the_next_forward(rng, monkeypatch, kind, feature_major):
    """An optimizer step writes into the weights: the next forward (either keep) reads them."""
    monkeypatch.setattr(recipes, "FEATURE_MAJOR_BELOW", 10**9 if feature_major else 0)
    ex, ref = (make_executor(kind, "auto", "float64") for _ in range(2))
    x, state, mask = inputs(rng, kind, "float64", True, False)
    for keep in (True, False, True):
        for mine, theirs in zip(ex.cell.i2h + ex.cell.h2h, ref.cell.i2h + ref.cell.h2h):
            mine.weight *= 0.9
            theirs.weight[...] = mine.weight
            if mine.has_bias:
                theirs.bias[...] = mine.bias
        got = copy_result(ex.forward(x, state, mask, keep=keep))
        want = copy_result(ref.forward(x, state, mask, keep=True))
        for a, b in zip(got, want):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [lstm.LSTM, lstm.GRU])
def test_evaluate_mode_through_the_layer_equals_training_mode(rng, cls):
    x = rng.standard_normal((3, T, I)).astype("float32")
    lengths = numpy.array([5, 2, 4])
    model = cls(I, H, 2, bidirectional=True)
    want = model.forward(x, lengths=lengths)
    want = [want[0].copy()] + [numpy.array(s) for s in (want[1] if cls is lstm.LSTM else [want[1]])]
    model.evaluate()
    got = model.forward(x, lengths=lengths)
    got = [got[0]] + list(got[1] if cls is lstm.LSTM else [got[1]])
    assert model.executors[0].kind.startswith("recipe")
    assert model.executors[0]._kept is False
    for a, b in zip(got, want):
        numpy.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)
    # .to() and new dtypes reach the executors through invalidate()/rebuild
    model.double().to("strict")
    out = model.forward(on("strict", x.astype("float64")), lengths=lengths)[0]
    numpy.testing.assert_allclose(backend.to_numpy(out), want[0], rtol=2e-5, atol=2e-5)


# ------------------------------------------------------------------------------------------------
# The GRU recipe's numba kernels
# ------------------------------------------------------------------------------------------------
@needs_numba
@pytest.mark.parametrize("first_step", [True, False])
def test_gru_step_kernels_equal_the_array_passes(rng, first_step):
    """Kernels against a plain NumPy transcription of PyTorch's equations and their derivatives."""
    f32, k = numpy.float32, accel.kernels()
    a0 = (3 * rng.standard_normal((B, 3 * H))).astype(f32)
    gh = numpy.zeros((B, 3 * H), f32) if first_step else rng.standard_normal((B, 3 * H)).astype(f32)
    b_hh = rng.standard_normal(3 * H).astype(f32)
    h_prev = numpy.zeros((B, H), f32) if first_step else rng.standard_normal((B, H)).astype(f32)
    def sig(v):
        return 1 / (1 + numpy.exp(-v.astype("float64")))

    q = gh[:, 2 * H:] + b_hh[2 * H:]
    r = sig(a0[:, :H] + gh[:, :H] + b_hh[:H])
    z = sig(a0[:, H:2 * H] + gh[:, H:2 * H] + b_hh[H:2 * H])
    n = numpy.tanh(a0[:, 2 * H:] + r * q)
    want_h = n + z * (h_prev - n)
    a, ghn, h = a0.copy(), numpy.empty((B, H), f32), numpy.empty((B, H), f32)
    k.gru_step_forward(a, gh, b_hh, h_prev, ghn, h)
    numpy.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(a, numpy.concatenate([r, z, n], axis=1), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(ghn, q, rtol=1e-6, atol=1e-6)
    h_inf, a_inf = numpy.empty((B, H), f32), a0.copy()
    k.gru_step_infer(a_inf, gh, b_hh, h_prev, h_inf)
    numpy.testing.assert_allclose(h_inf, want_h, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_array_equal(a_inf, a0)  # read only

    d_above, dh0 = (rng.standard_normal((B, H)).astype(f32) for _ in range(2))
    d = (dh0 + d_above).astype("float64")
    dn = d * (1 - z) * (1 - n * n)
    dz = d * (h_prev - n) * z * (1 - z)
    dr = dn * q * r * (1 - r)
    dh, dgi, dgh = dh0.copy(), numpy.empty((B, 3 * H), f32), numpy.empty((B, 3 * H), f32)
    k.gru_step_backward(a, ghn, h_prev, d_above, dh, dgi, dgh)
    numpy.testing.assert_allclose(dgi, numpy.concatenate([dr, dz, dn], axis=1), rtol=1e-4, atol=1e-5)
    numpy.testing.assert_allclose(dgh, numpy.concatenate([dr, dz, dn * r], axis=1), rtol=1e-4,
                                  atol=1e-5)
    numpy.testing.assert_allclose(dh, d * z, rtol=1e-5, atol=1e-6)


@needs_numba
def test_the_inference_tanh_is_within_six_float32_ulps():
    """The inference kernels' float32 evaluation of the rational tanh, on every 1009th float32 of
    [0, 10] and their negatives."""
    pos = numpy.arange(0, numpy.float32(10).view(numpy.int32), 1009, dtype=numpy.int32)
    xs = pos.view(numpy.float32)
    xs = numpy.concatenate([xs, -xs])
    got = numpy.empty_like(xs)
    accel.kernels().tanh_infer(xs, got)
    ref = numpy.tanh(xs.astype(numpy.float64))
    ulp = numpy.spacing(numpy.abs(ref).astype(numpy.float32)).astype(numpy.float64)
    err = numpy.abs(got - ref) / ulp
    assert err.max() <= 6, (err.max(), xs[err.argmax()])
    assert numpy.median(err[numpy.abs(xs) > 0.1]) < 1
    assert got[0] == 0 and (got[:len(pos)] == -got[len(pos):]).all()
    wide = numpy.array([9.5, 50, 1e30, numpy.inf], numpy.float32)
    out = numpy.empty_like(wide)
    accel.kernels().tanh_infer(wide, out)
    numpy.testing.assert_allclose(out, 1, rtol=3e-7)
    accel.kernels().tanh_infer(xs.astype(numpy.float64), ref_out := numpy.empty_like(ref))
    numpy.testing.assert_allclose(ref_out, ref, rtol=1e-15, atol=0)  # float64: math.tanh


@needs_numba
def test_lstm_infer_kernel_equals_the_training_kernel(rng):
    f32, k = numpy.float32, accel.kernels()
    g, r = (rng.standard_normal((B, 4 * H)).astype(f32) for _ in range(2))
    bias = rng.standard_normal(4 * H).astype(f32)
    c_prev = rng.standard_normal((B, H)).astype(f32)
    c, tc, h = (numpy.empty((B, H), f32) for _ in range(3))
    k.step_forward(g + bias, r, c_prev, c, tc, h)
    c2, h2, g2 = numpy.empty((B, H), f32), numpy.empty((B, H), f32), g.copy()
    k.step_infer(g2, r, bias, c_prev, c2, h2)
    numpy.testing.assert_allclose(c2, c, rtol=1e-6, atol=1e-6)
    numpy.testing.assert_allclose(h2, h, rtol=1e-6, atol=1e-6)
    numpy.testing.assert_array_equal(g2, g)


@needs_numba
@pytest.mark.parametrize("with_state", [True, False])
def test_gru_with_kernels_equals_numpy_passes(rng, with_state):
    """Whole layers, both directions, lengths, stacked: forward, backward, weight gradients."""
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    lengths = numpy.array([6, 1, 4, 2])
    state = rng.standard_normal((4, 4, 5)).astype("float32")
    given = [x, state] if with_state else x
    # a non-contiguous gradient of the outputs, as a transposed view
    g_out = numpy.ascontiguousarray(rng.standard_normal((6, 4, 10)).astype("float32"))
    results = {}
    for kernels in ("numpy", "numba"):
        backend.manual_seed(3)
        model = lstm.GRU(3, 5, 2, bidirectional=True).optimize(kernels=kernels)
        outputs, h_n = model.forward(given, lengths=lengths)
        assert model.executors[0].kind == "recipe-gru"
        assert model.executors[0].uses_kernels(x) == (kernels == "numba")
        model.zero_grad_parameters()
        grads = model.backward(given, [g_out.transpose(1, 0, 2), h_n])
        grads = grads if with_state else [grads]
        results[kernels] = [outputs, h_n] + grads + [g.copy() for g in model.parameters()[1]]
    for a, b in zip(results["numba"], results["numpy"]):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@needs_numba
@pytest.mark.parametrize("cls", [lstm.LSTM, lstm.GRU])
def test_float64_gradcheck_through_the_kernels(rng, cls):
    """kernels='numba' runs the kernels on float64 too (exact tanh): finite differences."""
    model = cls(2, 3, 2, bidirectional=True).optimize(kernels="numba").double()
    model.set_lengths(numpy.array([3, 1]))
    x = rng.standard_normal((2, 3, 2))
    states = [rng.standard_normal((4, 2, 3)) for _ in model.carried]
    assert gradcheck(model, [x, *states]).ok
    assert model.executors[0].uses_kernels(x) and model.executors[0]._fused_steps
