"""The graph optimizer's fused LSTM equals the recipe graph run step by step (values and
gradients), on every backend, and refuses graphs that are not the recipe."""
from __future__ import annotations

import numpy
import pytest

from conftest import on
from nngraph_py import backend, nn
from lstm.cell import lstm_cell, make_lstm_cell
from lstm.clones import clone_many_times
from nngraph_py.compile import recipes as fast
from lstm.fast import FusedLSTM, RecipeMismatch, match_lstm_cell


def unrolled(cells, x, h0, c0, gout, ghn, gcn, device):
    """Reference: per-step clones of the cell gModules, forward then BPTT by hand."""
    T, L = x.shape[0], len(cells)
    clones = [clone_many_times(c, T) for c in cells]
    hs = [[on(device, h0[l]) if h0 is not None else on(device, numpy.zeros(ghn.shape[1:]))] for l in range(L)]
    cs = [[on(device, c0[l]) if c0 is not None else on(device, numpy.zeros(ghn.shape[1:]))] for l in range(L)]
    for t in range(T):
        inp = on(device, x[t])
        for l in range(L):
            nc, nh = clones[l][t].forward([inp, cs[l][t], hs[l][t]])
            cs[l].append(nc.copy())
            hs[l].append(nh.copy())
            inp = nh
    out = numpy.stack([backend.to_numpy(hs[-1][t + 1]) for t in range(T)])
    dh = [on(device, ghn[l]) for l in range(L)]
    dc = [on(device, gcn[l]) for l in range(L)]
    dx = [None] * T
    for t in reversed(range(T)):
        below = None
        for l in reversed(range(L)):
            g = (on(device, gout[t]) if l == L - 1 else below) + dh[l]
            xin = on(device, x[t]) if l == 0 else hs[l - 1][t + 1]
            below, dc[l], dh[l] = clones[l][t].backward([xin, cs[l][t], hs[l][t]], [dc[l], g])
        dx[t] = backend.to_numpy(below)
    return out, numpy.stack(dx), [backend.to_numpy(d) for d in dh], [backend.to_numpy(d) for d in dc]


@pytest.mark.parametrize("feature_major", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_fused_equals_the_recipe_graph(device, rng, with_state, feature_major, monkeypatch):
    # both layouts of the per-step products (chosen by batch size)
    monkeypatch.setattr(fast, "FEATURE_MAJOR_BELOW", 10**9 if feature_major else 0)
    T, B, I, H = 5, 3, 4, 6
    cells = [make_lstm_cell(I, H).double().to(device), make_lstm_cell(H, H).double().to(device)]
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((2, B, H)) if with_state else None
    c0 = rng.standard_normal((2, B, H)) if with_state else None
    gout, ghn, gcn = (rng.standard_normal(s) for s in ((T, B, H), (2, B, H), (2, B, H)))
    for c in cells:
        c.zero_grad_parameters()
    ref_out, ref_dx, ref_dh0, ref_dc0 = unrolled(cells, x, h0, c0, gout, ghn, gcn, device)
    ref_grads = [backend.to_numpy(g).copy() for c in cells for g in c.parameters()[1]]
    for c in cells:
        c.zero_grad_parameters()

    fused = FusedLSTM(cells)
    out, h_n, c_n = fused.forward(on(device, x), h0 if h0 is None else on(device, h0),
                                  c0 if c0 is None else on(device, c0))
    numpy.testing.assert_allclose(backend.to_numpy(out), ref_out, atol=1e-12)
    numpy.testing.assert_allclose(backend.to_numpy(h_n)[-1], ref_out[-1], atol=1e-12)
    dx, dh0, dc0 = fused.backward(on(device, gout), on(device, ghn), on(device, gcn))
    fused.acc_grad_parameters()
    numpy.testing.assert_allclose(backend.to_numpy(dx), ref_dx, atol=1e-12)
    numpy.testing.assert_allclose(backend.to_numpy(dh0), numpy.stack(ref_dh0), atol=1e-12)
    numpy.testing.assert_allclose(backend.to_numpy(dc0), numpy.stack(ref_dc0), atol=1e-12)
    grads = [backend.to_numpy(g) for c in cells for g in c.parameters()[1]]
    for a, b in zip(grads, ref_grads):
        numpy.testing.assert_allclose(a, b, atol=1e-12)


def test_fused_reuses_buffers_across_calls_and_lengths(rng):
    cells = [make_lstm_cell(3, 4).double()]
    fused = FusedLSTM(cells)
    a, _, _ = fused.forward(rng.standard_normal((7, 2, 3)), None, None)
    first = a.copy()
    b, _, _ = fused.forward(rng.standard_normal((4, 2, 3)), None, None)
    assert b.shape == (4, 2, 4)
    again, _, _ = fused.forward(rng.standard_normal((7, 2, 3)), None, None)
    assert again is a and not numpy.allclose(again, first)  # same buffer, new values


def test_matching_finds_gates_by_structure_not_names():
    cell = make_lstm_cell(3, 4)
    match = match_lstm_cell(cell)
    names = {id(n.module): cell.node_name(n) for n in cell.nodes}
    assert [names[id(m)] for m in match.i2h] == ["i2h_input", "i2h_forget", "i2h_output", "i2h_cell"]
    assert [names[id(m)] for m in match.h2h] == ["h2h_input", "h2h_forget", "h2h_output", "h2h_cell"]


def test_a_graph_that_is_not_the_recipe_is_refused():
    x, c, h = nn.Identity()(), nn.Identity()(), nn.Identity()()
    next_c, next_h = lstm_cell(x, c, h, input_size=3, rnn_size=4)
    other = nn.gModule([x, c, h], [next_c, nn.Sigmoid()(next_h)])
    with pytest.raises(RecipeMismatch):
        match_lstm_cell(other)
