"""The compiler's Linear groups (it replaced ``graph/optimize.py``'s in-place ``fuse_linears``):
same graph, same numbers, fewer products."""
from __future__ import annotations

import numpy

from conftest import on
from nngraph_py import backend, gradcheck, nn
from nngraph_py.compile import compile
from lstm.cell import make_lstm_cell


def run(model, xs, gout):
    model.zero_grad_parameters()
    out = model.forward(xs)
    gin = model.backward(xs, gout)
    host = lambda v: [backend.to_numpy(a).copy() for a in v] if isinstance(v, list) else backend.to_numpy(v).copy()
    return host(out), host(gin), [backend.to_numpy(g).copy() for g in model.parameters()[1]]


def test_lstm_cell_fuses_into_two_products(device, rng):
    cell = make_lstm_cell(3, 4).double().to(device)
    B = 5
    xs = on(device, rng.standard_normal((B, 3)), rng.standard_normal((B, 4)), rng.standard_normal((B, 4)))
    gout = on(device, rng.standard_normal((B, 4)), rng.standard_normal((B, 4)))
    before = run(cell, xs, gout)
    names = [n for n, _ in cell.named_parameters()]
    fast = compile(cell)
    run(fast, xs, gout)  # the first call plans
    after = run(fast, xs, gout)
    assert [len(m) for m in fast.plan_info()[0]["linear_groups"]] == [4, 4]
    for a, b in zip(before[0] + before[1] + before[2], after[0] + after[1] + after[2]):
        numpy.testing.assert_allclose(a, b, atol=1e-12)
    assert [n for n, _ in fast.named_parameters()] == names  # the graph as written
    assert gradcheck(fast, xs).ok
    assert run(cell, xs, gout)[0][0].tolist() == before[0][0].tolist()  # cell left as it was


def test_groups_need_a_shared_input_and_mixed_bias_works(rng):
    x, y = nn.Identity()(), nn.Identity()()
    a = nn.Linear(3, 2)(x)
    b = nn.Linear(3, 4, bias=False)(x)
    c = nn.Linear(3, 2)(y)           # reads another node: not in the group
    g = compile(nn.gModule([x, y], [nn.JoinTable(1)([a, b, c])]).double())
    xs = [rng.standard_normal((2, 3)), rng.standard_normal((2, 3))]
    g.forward(xs)
    assert [len(m) for m in g.plan_info()[0]["linear_groups"]] == [2, 1]  # c runs alone
    assert gradcheck(g, xs).ok


def test_fused_graph_sees_weight_updates_and_flat_buffers(rng):
    cell = compile(make_lstm_cell(3, 4).double())
    xs = [rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))]
    cell.forward(xs)
    first = cell.forward(xs)[1].copy()
    flat, _ = cell.get_parameters()
    flat *= 0.5
    second = cell.forward(xs)[1]
    assert not numpy.allclose(first, second)
    unfused = make_lstm_cell(3, 4).double()
    unfused.get_parameters()[0][...] = flat
    numpy.testing.assert_allclose(unfused.forward(xs)[1], second, atol=1e-12)


def test_a_nested_graph_compiles_on_its_own(rng):
    inner = make_lstm_cell(2, 3).double()
    x, c, h = nn.Identity()(), nn.Identity()(), nn.Identity()()
    outer = nn.gModule([x, c, h], [nn.SelectTable(1)(compile(inner)([x, c, h]))]).double()
    xs = [rng.standard_normal((2, 2)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))]
    assert gradcheck(outer, xs).ok
