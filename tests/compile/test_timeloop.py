"""The time-loop compiler (``nngraph_py.compile.timeloop.CompiledSequence``) computes what the
node-by-node executor computes, on the cells users write; named regression tests."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.cells import peephole_lstm_cell as peephole_cell  # [x, h, c] -> [h', c']
from lstm import Recurrence, make_gru_cell, make_lstm_cell
from lstm.model import lengths_mask
from nngraph_py import nn
from nngraph_py.compile import CellSignature, compile_sequence
from nngraph_py.compile.elementwise import numba_available
from nngraph_py.compile.timeloop import CompiledSequence

H, F = 5, 3


def reference(cell, sizes, out_state, x, s0, gout, gfin, lengths):
    """Outputs, finals, input gradients and parameter gradients, node by node."""
    rec = Recurrence(cell, sizes, output=out_state, batch_first=False)
    rec.optimize(False)
    inp = [x] + s0
    out, fin = rec.forward(inp, lengths=lengths)
    rec.zero_grad_parameters()
    grads = rec.backward(inp, [gout] + gfin) if lengths is None else None
    if lengths is not None:
        rec.set_lengths(lengths)
        rec.forward(inp)
        rec.zero_grad_parameters()
        grads = rec.backward(inp, [gout] + gfin)
        rec.set_lengths(None)
    pg = [g.copy() for g in rec.parameters()[1]]
    rec.zero_grad_parameters()
    return out, fin, grads, pg, rec


def compare(cell, sig, T=4, B=3, kernels="numpy", lengths=None, seed=0):
    rng = np.random.default_rng(seed)
    cell.double()
    x = rng.standard_normal((T, B, F))
    s0 = [rng.standard_normal((B, s)) for s in sig.state_sizes]
    gout = rng.standard_normal((T, B, sig.state_sizes[sig.output_state]))
    gfin = [rng.standard_normal((B, s)) for s in sig.state_sizes]
    out, fin, grads, pg, rec = reference(cell, list(sig.state_sizes), sig.output_state, x, s0,
                                         gout, gfin, lengths)
    mask = None if lengths is None else lengths_mask(np.array(lengths), B, T, "cpu", "test")
    ex = CompiledSequence(cell, sig, kernels=kernels)
    for _ in range(2):  # the second call reuses the plan and its buffers
        c_out, c_fin = ex.forward(x, s0, mask)
        c_gx, c_g0 = ex.backward(gout, gfin)
        rec.zero_grad_parameters()
        ex.acc_grad_parameters(1.0)
        np.testing.assert_allclose(c_out, out, atol=1e-10)
        for a, b in zip(c_fin, fin):
            np.testing.assert_allclose(a, b, atol=1e-10)
        np.testing.assert_allclose(c_gx, grads[0], atol=1e-10)
        for a, b in zip(c_g0, grads[1:]):
            np.testing.assert_allclose(a, b, atol=1e-10)
        for a, b in zip(rec.parameters()[1], pg):
            np.testing.assert_allclose(a, b, atol=1e-10)
    return ex


GRU_SIG = CellSignature(0, (1,), (0,), (H,), 0)
LSTM_SIG = CellSignature(0, (1, 2), (0, 1), (H, H), 1)  # gModule([x, c, h], [c', h'])
PEEP_SIG = CellSignature(0, (1, 2), (0, 1), (H, H), 0)  # gModule([x, h, c], [h', c'])
KERNELS = ["numpy"] + (["numba"] if numba_available() else [])


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("lengths", [None, [4, 1, 2]])
def test_gru_cell_compiled_equals_node_by_node(kernels, lengths):
    ex = compare(make_gru_cell(F, H), GRU_SIG, kernels=kernels, lengths=lengths)
    info = ex.plan_info()[0]
    assert len(info["hoisted"]) == 3 and [len(g) for g in info["linear_groups"]] == [3]
    assert len(info["regions"]) == 1 and info["per_step_modules"] == []


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("lengths", [None, [2, 4, 3]])
def test_lstm_recipe_through_the_general_compiler(kernels, lengths):
    ex = compare(make_lstm_cell(F, H), LSTM_SIG, kernels=kernels, lengths=lengths)
    info = ex.plan_info()[0]
    assert len(info["hoisted"]) == 4
    # The static loop, with one gradient per gate for the i2h and h2h products.
    assert info["static_loop"] and info["shared_gate_gradients"]


@pytest.mark.parametrize("kernels", KERNELS)
def test_peephole_cell_compiled_equals_node_by_node(kernels):
    ex = compare(peephole_cell(F, H), PEEP_SIG, kernels=kernels, lengths=[4, 2, 3])
    assert ex.plan_info()[0]["shared_gate_gradients"]


def test_regression_per_step_module_gradients_outlive_region_buffers():
    """A per-step module with parameters (CMul) fed by a region's input gradient kept a
    reference to the region's buffer, which the next step overwrote: its weight gradient came
    out wrong (by 0.2-1.3 here) while every other gradient was right."""
    compare(peephole_cell(F, H), PEEP_SIG, T=5)


def test_compile_sequence_passes_recipes_first_and_general_otherwise():
    lstm_cell = make_lstm_cell(F, H)
    sig = CellSignature(0, (2, 1), (1, 0), (H, H), 0)
    assert compile_sequence(lstm_cell, sig).kind == "recipe-lstm"
    assert compile_sequence(lstm_cell, sig, recipes=False).kind == "compiled"
    assert compile_sequence(peephole_cell(F, H), PEEP_SIG).kind == "compiled"


def test_inference_keeps_nothing_and_refuses_backward():
    from nngraph_py.errors import GraphError

    cell = make_gru_cell(F, H).double()
    ex = CompiledSequence(cell, GRU_SIG, kernels="numpy")
    x = np.random.default_rng(1).standard_normal((6, 2, F))
    out_keep, _ = ex.forward(x, [None], keep=True)
    out_infer, _ = ex.forward(x, [None], keep=False)
    np.testing.assert_allclose(out_infer, out_keep, atol=1e-12)
    with pytest.raises(GraphError, match="kept nothing"):
        ex.backward(np.ones_like(out_keep), [None])


def test_outputs_survive_the_next_call():
    cell = make_gru_cell(F, H).double()
    ex = CompiledSequence(cell, GRU_SIG, kernels="numpy")
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((3, 2, F)), rng.standard_normal((3, 2, F))
    out1, fin1 = ex.forward(x1, [None])
    kept = out1.copy(), fin1[0].copy()
    ex.forward(x2, [None])
    np.testing.assert_array_equal(out1, kept[0])
    np.testing.assert_array_equal(fin1[0], kept[1])


def stacked_gru_cell(input_size: int, hidden: int) -> nn.gModule:
    """A GRU written the char-rnn way: one Linear per input for all gates, Narrow per gate."""
    x, h = nn.Identity()(), nn.Identity()()
    xs, hs = nn.Linear(input_size, 3 * hidden)(x), nn.Linear(hidden, 3 * hidden)(h)

    def part(v, k):
        return nn.Narrow(1, k * hidden, hidden)(v)

    r = nn.Sigmoid()(nn.CAddTable()([part(xs, 0), part(hs, 0)]))
    z = nn.Sigmoid()(nn.CAddTable()([part(xs, 1), part(hs, 1)]))
    n = nn.Tanh()(nn.CAddTable()([part(xs, 2), nn.CMulTable()([r, part(hs, 2)])]))
    one_minus = nn.AddConstant(1.0)(nn.MulConstant(-1.0)(z))
    return nn.gModule([x, h], [nn.CAddTable()([nn.CMulTable()([one_minus, n]),
                                               nn.CMulTable()([z, h])])])


def test_narrowed_input_products_are_hoisted():
    ex = compare(stacked_gru_cell(F, H), GRU_SIG, lengths=[4, 2, 3])
    info = ex.plan_info()[0]
    assert len(info["hoisted"]) == 4  # the x Linear and its three Narrows
    assert len(info["per_step_modules"]) == 3  # the Narrows of the recurrent product


@pytest.mark.parametrize("kernels", KERNELS)
def test_inference_equals_training_forward_with_folded_biases(kernels):
    """Paired gates fold the recurrent bias into the hoisted product, in both modes."""
    cell = peephole_cell(F, H).double()
    for m in cell.modules():
        if isinstance(m, nn.Linear):
            m.bias[...] = np.random.default_rng(3).standard_normal(m.bias.shape)
    ex = CompiledSequence(cell, PEEP_SIG, kernels=kernels)
    x = np.random.default_rng(4).standard_normal((5, 3, F))
    out_train, fin_train = ex.forward(x, [None, None], keep=True)
    out_infer, fin_infer = ex.forward(x, [None, None], keep=False)
    np.testing.assert_allclose(out_infer, out_train, atol=1e-12)
    rec = Recurrence(cell, [H, H], output=0, batch_first=False).optimize(False)
    np.testing.assert_allclose(rec.forward(x)[0], out_train, atol=1e-12)
