"""GRU, bidirectional layers and lengths beyond the PyTorch comparison: finite differences on
every backend (fused and node by node), lengths given to a model that is a graph node, the recipe
matcher of the fused GRU, and the sharing of a hand-unrolled GRU trained by an optimizer."""
from __future__ import annotations

import numpy
import pytest

from conftest import on
from nngraph_py import backend, gradcheck, nn, optim

from lstm import GRU, LSTM, RNN, clone_many_times, gru_cell, make_gru_cell
from lstm.fast import RecipeMismatch, match_gru_cell


class Seeded:
    """Draws the same dropout masks at every forward, so finite differences apply."""

    def update_output(self, input):
        backend.manual_seed(7)
        return super().update_output(input)


class SeededGRU(Seeded, GRU):
    pass


class SeededLSTM(Seeded, LSTM):
    pass


@pytest.mark.parametrize("optimize", [True, False], ids=["fused", "node_by_node"])
@pytest.mark.parametrize("cls", [SeededGRU, SeededLSTM])
def test_gradcheck_bidirectional_with_lengths_and_dropout(device, rng, cls, optimize):
    model = cls(2, 2, 2, dropout=0.3, bidirectional=True, optimize=optimize).double().to(device)
    model.set_lengths(numpy.array([3, 1]))
    n = len(model.carried)
    x = rng.standard_normal((2, 3, 2))
    states = [rng.standard_normal((4, 2, 2)) for _ in range(n)]
    assert gradcheck(model, on(device, x, *states)).ok
    recipe = "recipe-gru" if cls is SeededGRU else "recipe-lstm"
    assert model.executors[0].kind == (recipe if optimize else "unrolled")  # the path under test
    assert model._masks is not None and model._masks[0] is not None


def test_rnn_bidirectional_gradcheck(device, rng):
    model = RNN(2, 3, 2, bidirectional=True).double().to(device)
    model.set_lengths([3, 1])
    assert gradcheck(model, on(device, rng.standard_normal((2, 3, 2)))).ok


@pytest.mark.parametrize("optimize", [True, False])
def test_lengths_for_a_model_inside_a_graph(rng, optimize):
    gru = GRU(3, 4, bidirectional=True, optimize=optimize).double()
    x = nn.Identity()()
    outputs, h_n = gru(x).annotate(name="gru").split(2)
    graph = nn.gModule([x], [outputs, h_n])
    xs = rng.standard_normal((3, 5, 3))
    lengths = numpy.array([5, 2, 3])
    want_out, want_h = (a.copy() for a in gru.forward(xs, lengths=lengths))
    gru.zero_grad_parameters()
    g = [rng.standard_normal(want_out.shape), rng.standard_normal(want_h.shape)]
    want_gx = gru.backward(xs, g).copy()
    want_grads = [p.copy() for p in gru.parameters()[1]]
    assert gru.lengths is None  # forward(lengths=) is for one call

    gru.set_lengths(lengths)
    got_out, got_h = graph.forward(xs)
    numpy.testing.assert_allclose(got_out, want_out, atol=1e-12)
    numpy.testing.assert_allclose(got_h, want_h, atol=1e-12)
    assert not got_out[1, 2:].any()
    gru.zero_grad_parameters()
    numpy.testing.assert_allclose(graph.backward(xs, g), want_gx, atol=1e-12)
    for a, b in zip(gru.parameters()[1], want_grads):
        numpy.testing.assert_allclose(a, b, atol=1e-12)
    gru.set_lengths(None)
    full, _ = graph.forward(xs)
    assert full[1, 2:].any()


def test_names_of_the_reverse_direction_and_printing():
    gru = GRU(3, 4, 2, bidirectional=True)
    names = [name for name, _ in gru.named_parameters()]
    assert names[:2] == ["layer1.i2h_reset.weight", "layer1.i2h_reset.bias"]
    assert any(n.startswith("layer1_reverse.h2h_new") for n in names)
    assert any(n.startswith("layer2_reverse.") for n in names)
    assert gru.cells[2].modules().__next__() is gru.cells[2]
    assert dict(gru.cells[2].named_children())["i2h_reset"].in_features == 8  # both directions
    assert repr(gru) == "nn.GRU(3 -> 4, layers=2, bidirectional)"
    # PyTorch's count: per direction 3H(in + H + 2) for layer 1, 3H(2H + H + 2) for layer 2
    assert gru.num_parameters() == 2 * 12 * (3 + 4 + 2) + 2 * 12 * (8 + 4 + 2)
    steps = gru.summary_steps()
    assert [c for c, _ in steps] == gru.cells
    assert [s[0].shape for _, s in steps] == [(1, 3), (1, 3), (1, 8), (1, 8)]


def test_the_fused_gru_matches_the_recipe_only():
    cell = make_gru_cell(3, 4)
    match = match_gru_cell(cell)
    names = {id(n.module): cell.node_name(n) for n in cell.nodes}
    assert [names[id(m)] for m in match.i2h] == ["i2h_reset", "i2h_update", "i2h_new"]
    assert [names[id(m)] for m in match.h2h] == ["h2h_reset", "h2h_update", "h2h_new"]
    x, h = nn.Identity()(), nn.Identity()()
    other = nn.gModule([x, h], [nn.Tanh()(gru_cell(x, h, 3, 4))])
    with pytest.raises(RecipeMismatch):
        match_gru_cell(other)
    gru = GRU(3, 4)
    gru.cells[0] = other
    gru.forward(numpy.zeros((1, 2, 3), "float32"))
    assert gru.optimized and gru.executors[0].kind == "compiled"  # the general compiler's


def _train_hand_unrolled_gru(clones_first: bool) -> list[float]:
    """char-rnn's loop on a GRU cell: clones made before or after the optimizer flattens."""
    backend.manual_seed(5)
    rng = numpy.random.default_rng(5)
    T, B, I, H = 4, 3, 2, 5
    cell = make_gru_cell(I, H).double()
    head = nn.Linear(H, 1).double()
    holder = nn.Sequential(cell, head)
    xs = rng.standard_normal((B, T, I))
    ys = rng.standard_normal((B, 1))
    crit = nn.MSECriterion()
    if clones_first:
        clones = clone_many_times(cell, T)
        opt = optim.Adam(holder, lr=0.05)
    else:
        opt = optim.Adam(holder, lr=0.05)
        clones = clone_many_times(cell, T)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        h = numpy.zeros((B, H))
        inputs = []
        for t in range(T):
            inputs.append([xs[:, t], h])
            h = clones[t].forward(inputs[-1]).copy()
        pred = head.forward(h)
        losses.append(float(crit.forward(pred, ys)))
        g_h = head.backward(h, crit.backward(pred, ys))
        for t in range(T - 1, -1, -1):
            _, g_h = clones[t].backward(inputs[t], g_h)
        opt.step()
    return losses


def test_hand_unrolled_gru_trains_identically_with_clones_before_or_after_the_optimizer():
    before = _train_hand_unrolled_gru(clones_first=True)
    after = _train_hand_unrolled_gru(clones_first=False)
    assert after[-1] < 0.5 * after[0]
    numpy.testing.assert_allclose(before, after, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: GRU(2, 3, 2, bidirectional=True),
    lambda: GRU(2, 3, optimize=False),
    lambda: LSTM(2, 3, 2, bidirectional=True),
    lambda: LSTM(2, 3, bidirectional=True, optimize=False),
    lambda: RNN(2, 3, bidirectional=True),
], ids=["gru-fused", "gru-clones", "lstm-fused", "lstm-clones", "rnn"])
def test_padded_steps_do_not_matter(rng, make):
    """Regression for the variable-length example: with lengths, what the padding holds changes
    no output, final state or weight gradient, and the padded inputs get zero gradient."""
    model = make().double()
    lengths = numpy.array([5, 2, 3])
    x = rng.standard_normal((3, 5, 2))
    noisy = x.copy()
    for b, n in enumerate(lengths):
        noisy[b, n:] = rng.standard_normal(noisy[b, n:].shape) * 10
    results = []
    for data in (x, noisy):
        model.zero_grad_parameters()
        outputs, final = model.forward(data, lengths=lengths)
        finals = list(final) if isinstance(final, tuple) else [final]
        gx = model.backward(data, [numpy.ones_like(outputs)] + [numpy.ones_like(f) for f in finals])
        results.append([outputs.copy(), gx.copy()] + [f.copy() for f in finals]
                       + [g.copy() for g in model.parameters()[1]])
    for a, b in zip(*results):
        numpy.testing.assert_allclose(a, b, atol=1e-12)
    gx = results[0][1]
    for b, n in enumerate(lengths):
        assert not gx[b, n:].any() and gx[b, :n].any()
