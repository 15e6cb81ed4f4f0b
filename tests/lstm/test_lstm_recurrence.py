"""``lstm.Recurrence`` runs any cell over time: values and gradients equal the cell unrolled by
hand with clones; lengths as the layers; a graph node with ``.split(k + 1)``; parameters named
through it; the cell's dtype and device; bad cells and lengths refused with clear messages."""
from __future__ import annotations

import numpy
import pytest

from conftest import on
from nngraph_py import backend, gradcheck, nn
from nngraph_py.errors import InputError, ShapeError

from lstm import GRU, LSTM, Recurrence, clone_many_times


def peephole_cell(n_in: int, n_h: int) -> nn.gModule:
    """A user's own two-state cell (not a recipe): [x, h, m] -> [h', m'], m a running memory."""
    x, h, m = nn.Identity()(), nn.Identity()(), nn.Identity()()
    gate = nn.Sigmoid()(nn.CAddTable()([nn.Linear(n_in, n_h)(x), nn.Linear(n_h, n_h)(m)]))
    cand = nn.Tanh()(nn.CAddTable()([nn.Linear(n_in, n_h)(x), nn.Linear(n_h, n_h)(h)]))
    new_m = nn.CAddTable()([nn.CMulTable()([gate, m]), cand]).annotate(name="memory")
    new_h = nn.Tanh()(nn.CMulTable()([new_m, cand])).annotate(name="hidden")
    return nn.gModule([x, h, m], [new_h, new_m])


def hand_unroll(cell, x, states, g_out, g_fin, output):
    """char-rnn's loop: clones of the cell, forward over time, then BPTT by hand."""
    T = x.shape[1]
    clones = clone_many_times(cell, T)
    inputs, outs, s = [], [], list(states)
    for t in range(T):
        inp = [x[:, t]] + s
        new = clones[t].forward(inp)
        new = list(new) if isinstance(new, list) else [new]
        inputs.append(inp)
        s = [a.copy() for a in new]
        outs.append(s[output])
    g_s = list(g_fin)
    g_x = [None] * T
    for t in range(T - 1, -1, -1):
        g_s[output] = g_s[output] + g_out[:, t]
        g = clones[t].backward(inputs[t], g_s if len(g_s) > 1 else g_s[0])
        g_x[t], g_s = g[0], list(g[1:])
    return numpy.stack(outs, axis=1), s, numpy.stack(g_x, axis=1), g_s


@pytest.mark.parametrize("output", [0, 1, -1])
def test_equals_the_cell_unrolled_by_hand(rng, output):
    B, T, I, H = 3, 5, 2, 4
    cell = peephole_cell(I, H).double()
    x = rng.standard_normal((B, T, I))
    s0 = [rng.standard_normal((B, H)) for _ in range(2)]
    g_out = rng.standard_normal((B, T, H))
    g_fin = [rng.standard_normal((B, H)) for _ in range(2)]
    cell.zero_grad_parameters()
    ref = hand_unroll(cell, x, s0, g_out, g_fin, output % 2)
    ref_grads = [g.copy() for g in cell.parameters()[1]]
    cell.zero_grad_parameters()

    rec = Recurrence(cell, [H, H], output=output)
    outputs, finals = rec.forward(x, state=s0)
    numpy.testing.assert_allclose(outputs, ref[0], atol=1e-12)
    for a, b in zip(finals, ref[1]):
        numpy.testing.assert_allclose(a, b, atol=1e-12)
    grads = rec.backward([x] + s0, [g_out] + g_fin)
    numpy.testing.assert_allclose(grads[0], ref[2], atol=1e-12)
    for a, b in zip(grads[1:], ref[3]):
        numpy.testing.assert_allclose(a, b, atol=1e-12)
    for a, b in zip(cell.parameters()[1], ref_grads):
        numpy.testing.assert_allclose(a, b, atol=1e-12)


def test_recipe_cells_through_recurrence_equal_the_layers(rng):
    """The LSTM recipe as [x, c, h] -> [c', h'] and the GRU recipe, with lengths."""
    B, T, I, H = 4, 6, 3, 5
    x = rng.standard_normal((B, T, I))
    lengths = numpy.array([6, 1, 3, 4])
    lstm = LSTM(I, H).double()
    rec = Recurrence(lstm.cells[0], [H, H], output=1)  # states [c, h], the output h
    out, (h_n, c_n) = lstm.forward(x, lengths=lengths)
    r_out, (r_c, r_h) = rec.forward(x, lengths=lengths)
    numpy.testing.assert_allclose(r_out, out, atol=1e-12)
    numpy.testing.assert_allclose(r_h, h_n[0], atol=1e-12)
    numpy.testing.assert_allclose(r_c, c_n[0], atol=1e-12)
    g = rng.standard_normal(out.shape)
    lstm.zero_grad_parameters()
    gx = lstm.backward(x, g)
    want = [p.copy() for p in lstm.parameters()[1]]
    lstm.zero_grad_parameters()
    numpy.testing.assert_allclose(rec.backward(x, g), gx, atol=1e-12)
    for a, b in zip(lstm.parameters()[1], want):
        numpy.testing.assert_allclose(a, b, atol=1e-12)

    gru = GRU(I, H).double()
    rec = Recurrence(gru.cells[0], [H])
    out, h_n = gru.forward(x, lengths=lengths)
    r_out, (r_h,) = rec.forward(x, lengths=lengths)
    numpy.testing.assert_allclose(r_out, out, atol=1e-12)
    numpy.testing.assert_allclose(r_h, h_n[0], atol=1e-12)


def test_gradcheck_with_lengths_on_every_backend(device, rng):
    rec = Recurrence(peephole_cell(2, 3).double().to(device), [3, 3], output=0)
    assert rec.device == device and rec.dtype == numpy.float64  # the cell's
    rec.set_lengths(numpy.array([3, 1]))
    x, s1, s2 = on(device, rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3)),
                   rng.standard_normal((2, 3)))
    assert gradcheck(rec, [x, s1, s2]).ok
    out, _ = rec.forward(x)
    assert float(abs(backend.to_numpy(out)[1, 1:]).max()) == 0.0  # zeros past the length


def test_a_graph_node_splits_into_outputs_and_final_states(rng):
    B, T, I, H = 2, 4, 3, 5
    rec = Recurrence(peephole_cell(I, H), [H, H], output=0, batch_first=False)
    x = nn.Identity()()
    outputs, h_n, m_n = rec(x).annotate(name="rec").split(3)
    last = nn.Linear(H, 1)(h_n)
    model = nn.gModule([x], [outputs, last, m_n])
    names = [name for name, _ in model.named_parameters()]
    assert names[0].startswith("rec.cell.") and len(names) == 10
    xs = rng.standard_normal((T, B, I)).astype("float32")
    y_out, y_last, y_m = model.forward(xs)
    assert y_out.shape == (T, B, H) and y_last.shape == (B, 1) and y_m.shape == (B, H)
    grads = model.backward(xs, [numpy.ones_like(y_out), numpy.ones_like(y_last), None])
    assert grads.shape == xs.shape
    assert repr(rec) == "nn.Recurrence(states=(5, 5), output=0, batch_first=False)"


def test_bad_cells_states_and_lengths_are_refused(rng):
    cell = peephole_cell(2, 3)
    with pytest.raises(InputError, match=r"inputs \[x_t, s_1..s_1\] \(2\) .* 3 input\(s\)"):
        Recurrence(cell, [3])
    with pytest.raises(ValueError, match="state_sizes must be positive integers"):
        Recurrence(cell, [3, 0])
    with pytest.raises(ValueError, match="output must index one of the 2 states"):
        Recurrence(cell, [3, 3], output=2)
    rec = Recurrence(cell, [3, 3])
    x = rng.standard_normal((2, 4, 2)).astype("float32")
    with pytest.raises(ShapeError, match=r"expected s_1_0 of shape \(batch, size\) = \(2, 3\)"):
        rec.forward([x, numpy.zeros((1, 2, 3), "float32"), numpy.zeros((2, 3), "float32")])
    with pytest.raises(InputError, match=r"lengths must lie in \[1, T\] = \[1, 4\], got min 0"):
        rec.forward(x, lengths=[0, 4])
    with pytest.raises(ShapeError, match=r"lengths must have shape \(batch,\) = \(2,\)"):
        rec.forward(x, lengths=[4, 4, 4])
    with pytest.raises(InputError, match="lengths must be integers"):
        rec.forward(x, lengths=numpy.array([1.5, 2.0]))
