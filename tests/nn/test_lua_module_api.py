"""Lua nn / nngraph API pieces of issue 11: CMul, CAdd, JustTable, JustElement, Parallel, Concat
(float64 finite differences and PyTorch values), apply / replace / reset, Linear.no_bias and
any rank, ignore_index, Dropout's Lua arguments, View over several leading axes, conversions
that keep views of one buffer shared, Lua's split and dangling-node checks, debug labels and
DOT labels, and the engine pieces of issues 12 and 14 (threads, sharing through flattening).
"""
from __future__ import annotations

import threading

import numpy
import pytest
import torch

from conftest import on
from nngraph_py import backend, gradcheck, nest, nn
from nngraph_py.errors import GraphBuildError, InputError, NNGraphError, ShapeError
from nngraph_py.graph.dot import to_dot
from nngraph_py.module import ConcurrentUseError


def rand(rng, *shape):
    return rng.standard_normal(shape)


def host(a):
    return backend.to_numpy(a)


def t(a):
    return torch.tensor(numpy.asarray(a), dtype=torch.float64, requires_grad=True)


# ------------------------------------------------------------------------------------------------
# CMul and CAdd: Lua's three layouts, against PyTorch
# ------------------------------------------------------------------------------------------------
CMUL_LAYOUTS = [((3,), (3,)), ((4, 3), (3,)), ((4, 3), (1, 3)), ((2, 4, 3), (4, 3)),
                ((2, 4, 3), (1, 4, 1)), ((5, 2, 3), (2, 3))]


@pytest.mark.parametrize("xshape,size", CMUL_LAYOUTS)
@pytest.mark.parametrize("cls", [nn.CMul, nn.CAdd])
def test_cmul_cadd_gradcheck(device, rng, cls, xshape, size):
    m = cls(*size).double().to(device)
    assert gradcheck(m, on(device, rand(rng, *xshape))).ok


@pytest.mark.parametrize("xshape,size", CMUL_LAYOUTS)
@pytest.mark.parametrize("cls", [nn.CMul, nn.CAdd])
def test_cmul_cadd_match_torch(rng, cls, xshape, size):
    m = cls(*size).double()
    p_name = "weight" if cls is nn.CMul else "bias"
    p = getattr(m, p_name)
    x, g = rand(rng, *xshape), rand(rng, *xshape)
    tx, tp = t(x), t(p)
    n = int(numpy.prod(size))
    if x.size == n:
        tview = tp.reshape(xshape)
    elif len(xshape) == len(size):
        tview = tp
    else:
        tview = tp.reshape(1, n)
    tx2 = tx if x.size == n or len(xshape) == len(size) else tx.reshape(xshape[0], n)
    ty = (tx2 * tview if cls is nn.CMul else tx2 + tview).reshape(xshape)
    ty.backward(torch.tensor(g))
    y = m.forward(x)
    gi = m.backward(x, g)
    numpy.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(gi, tx.grad.numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(getattr(m, "grad_" + p_name), tp.grad.numpy(), rtol=1e-12)


def test_cmul_refuses_an_input_that_does_not_fit():
    with pytest.raises(ShapeError, match=r"expected an input of 3 elements"):
        nn.CMul(3).forward(numpy.ones((4, 5), "float32"))
    with pytest.raises(NNGraphError):
        nn.CAdd(0)


def test_cmul_reset_follows_lua():
    m = nn.CMul(100)
    w = host(m.weight)
    assert numpy.abs(w).max() <= 1 / numpy.sqrt(100) + 1e-7
    m.reset(0.5)
    assert numpy.abs(host(m.weight)).max() <= 0.5 * numpy.sqrt(3) + 1e-6


# ------------------------------------------------------------------------------------------------
# JustTable and JustElement (nngraph/test/test_JustTable.lua, test_JustElement.lua)
# ------------------------------------------------------------------------------------------------
def test_just_table_and_just_element(device, rng):
    x = on(device, rand(rng, 3, 2))
    jt = nn.JustTable().double().to(device)
    out = jt.forward(x)
    assert isinstance(out, list) and len(out) == 1 and out[0] is x
    g = on(device, rand(rng, 3, 2))
    assert jt.backward(x, [g]) is g
    je = nn.JustElement().double().to(device)
    assert je.forward([x]) is x
    gl = je.backward([x], g)
    assert isinstance(gl, list) and gl[0] is g
    with pytest.raises(InputError, match="one element"):
        je.forward([x, x])


def test_just_table_and_just_element_in_a_graph_gradcheck(device, rng):
    """test_JustElement.lua / test_JustTable.lua: a graph around them trains like the identity."""
    inp = nn.Identity()()
    h = nn.JustElement()(nn.JustTable()(nn.Linear(3, 2)(inp)))
    g = nn.gModule([inp], [nn.Tanh()(h)]).double().to(device)
    assert gradcheck(g, on(device, rand(rng, 4, 3))).ok


# ------------------------------------------------------------------------------------------------
# Parallel and Concat (nn/test.lua: Parallel, Concat), against PyTorch
# ------------------------------------------------------------------------------------------------
def test_parallel_gradcheck_and_torch(device, rng):
    par = nn.Parallel(1, 1, nn.Linear(4, 2), nn.Linear(4, 3), nn.Tanh()).double()
    # The Tanh member gets a (batch, 4) slice too.
    x = rand(rng, 5, 3, 4)
    y = par.forward(x)
    assert y.shape == (5, 2 + 3 + 4)
    tx = t(x)
    lins = [par[0], par[1]]
    outs = [tx[:, k, :] @ t(host(m.weight)).T + t(host(m.bias)) for k, m in enumerate(lins)]
    outs.append(torch.tanh(tx[:, 2, :]))
    ty = torch.cat(outs, dim=1)
    g = rand(rng, *y.shape)
    ty.backward(torch.tensor(g))
    numpy.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(par.backward(x, g), tx.grad.numpy(), rtol=1e-12)
    par.to(device)
    assert gradcheck(par, on(device, x)).ok


def test_parallel_needs_one_slice_per_member():
    par = nn.Parallel(0, 0, nn.Linear(3, 2))
    with pytest.raises(ShapeError, match=r"expected 1 slices"):
        par.forward(numpy.ones((2, 3), "float32"))


def test_concat_gradcheck_and_torch(device, rng):
    cat = nn.Concat(1, nn.Linear(4, 2), nn.Tanh(), nn.Linear(4, 1)).double()
    x = rand(rng, 5, 4)
    y = cat.forward(x)
    tx = t(x)
    ty = torch.cat([tx @ t(host(cat[0].weight)).T + t(host(cat[0].bias)), torch.tanh(tx),
                    tx @ t(host(cat[2].weight)).T + t(host(cat[2].bias))], dim=1)
    g = rand(rng, *y.shape)
    ty.backward(torch.tensor(g))
    numpy.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(cat.backward(x, g), tx.grad.numpy(), rtol=1e-12)
    cat.to(device)
    assert gradcheck(cat, on(device, x)).ok


def test_parallel_and_concat_print_as_lua_trees():
    text = repr(nn.Concat(1, nn.Linear(2, 3), nn.Tanh()))
    assert text.startswith("nn.Concat {") and "|`-> (1): nn.Linear(2 -> 3)" in text


# ------------------------------------------------------------------------------------------------
# apply, replace, reset
# ------------------------------------------------------------------------------------------------
def _graph_with_dropout():
    x = nn.Identity()()
    h = nn.Dropout(0.5)(nn.Linear(3, 4)(x)).annotate(name="drop")
    inner = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3))
    return nn.gModule([x], [nn.Tanh()(inner(h))])


def test_apply_visits_every_module():
    g = _graph_with_dropout()
    seen = []
    assert g.apply(lambda m: seen.append(type(m).__name__)) is g
    assert seen.count("Dropout") == 2 and seen[0] == "gModule" and "Sequential" in seen


def test_replace_is_recursive_also_inside_gmodules(rng):
    g = _graph_with_dropout().double()
    out = g.replace(lambda m: nn.Identity() if isinstance(m, nn.Dropout) else m)
    assert out is g
    assert not any(isinstance(m, nn.Dropout) for m in g.modules())
    x = rand(rng, 2, 3)
    y1 = g.forward(x)
    numpy.testing.assert_array_equal(y1, g.forward(x))  # no dropout left: deterministic
    g.backward(x, numpy.ones_like(y1))
    assert "drop" in repr(g) and "nn.Identity" in repr(g)


def test_replace_refuses_a_module_used_elsewhere():
    used = nn.Linear(3, 3)
    nn.Sequential(used)
    seq = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(GraphBuildError, match="clone"):
        seq.replace(lambda m: used if isinstance(m, nn.Linear) else m)


def test_reset_on_containers_and_gmodules():
    g = _graph_with_dropout()
    before = [host(p).copy() for p in g.parameters()[0]]
    assert g.reset() is g
    after = [host(p) for p in g.parameters()[0]]
    assert all(not numpy.array_equal(a, b) for a, b in zip(before, after))
    seq = nn.Sequential(nn.Linear(50, 50))
    seq.reset(0.01)
    assert numpy.abs(host(seq[0].weight)).max() <= 0.01


# ------------------------------------------------------------------------------------------------
# Linear: no_bias and any rank (issue 14)
# ------------------------------------------------------------------------------------------------
def test_linear_no_bias():
    lin = nn.Linear(3, 2)
    assert lin.no_bias() is lin
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    x = numpy.ones((4, 3), "float32")
    numpy.testing.assert_allclose(lin.forward(x), x @ host(lin.weight).T, rtol=1e-6)
    assert "without bias" in repr(lin)


@pytest.mark.parametrize("shape", [(7,), (2, 7), (2, 3, 7), (2, 1, 3, 7)])
def test_linear_over_any_rank_matches_torch(device, rng, shape):
    lin = nn.Linear(7, 4).double()
    x, g = rand(rng, *shape), rand(rng, *shape[:-1], 4)
    tl = torch.nn.Linear(7, 4).double()
    with torch.no_grad():
        tl.weight.copy_(torch.tensor(host(lin.weight)))
        tl.bias.copy_(torch.tensor(host(lin.bias)))
    tx = t(x)
    ty = tl(tx)
    ty.backward(torch.tensor(g))
    lin.to(device)
    y = lin.forward(on(device, x))
    gi = lin.backward(on(device, x), on(device, g))
    numpy.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(host(gi), tx.grad.numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(host(lin.grad_weight), tl.weight.grad.numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(host(lin.grad_bias), tl.bias.grad.numpy(), rtol=1e-12)
    assert gradcheck(lin, on(device, x)).ok


# ------------------------------------------------------------------------------------------------
# Criteria: positional Lua arguments and ignore_index
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [nn.ClassNLLCriterion, nn.CrossEntropyCriterion])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("size_average", [True, False])
def test_ignore_index_matches_torch(rng, cls, weighted, size_average):
    w = numpy.array([0.5, 1.0, 2.0, 1.5]) if weighted else None
    crit = cls(w, size_average, 2).double()  # Lua's positional order
    assert crit.ignore_index == 2 and crit.size_average is size_average
    x = rand(rng, 6, 4)
    if cls is nn.ClassNLLCriterion:
        x = x - numpy.log(numpy.exp(x).sum(axis=1, keepdims=True))
    target = numpy.array([0, 2, 3, 2, 1, 0])
    tx = t(x)
    reduction = "mean" if size_average else "sum"
    tw = None if w is None else torch.tensor(w)
    tf = torch.nn.functional.nll_loss if cls is nn.ClassNLLCriterion else \
        torch.nn.functional.cross_entropy
    tloss = tf(tx, torch.tensor(target), weight=tw, ignore_index=2, reduction=reduction)
    tloss.backward()
    assert crit.forward(x, target) == pytest.approx(float(tloss.detach()), rel=1e-12)
    numpy.testing.assert_allclose(crit.backward(x, target), tx.grad.numpy(), rtol=1e-10,
                                  atol=1e-15)


def test_all_targets_ignored_gives_zero_as_lua():
    crit = nn.ClassNLLCriterion(ignore_index=1).double()
    x = numpy.log(numpy.full((2, 3), 1 / 3))
    assert crit.forward(x, numpy.array([1, 1])) == 0.0
    numpy.testing.assert_array_equal(crit.backward(x, numpy.array([1, 1])), numpy.zeros((2, 3)))


def test_ignore_index_is_not_a_range_error_and_other_values_are():
    crit = nn.ClassNLLCriterion(ignore_index=-1)
    x = numpy.zeros((2, 3), "float32")
    crit.forward(x, numpy.array([-1, 2]))
    with pytest.raises(ShapeError, match=r"\[0, 3\)"):
        crit.forward(x, numpy.array([-2, 2]))


# ------------------------------------------------------------------------------------------------
# Dropout: Lua's arguments (p, v1, inplace, stochasticInference)
# ------------------------------------------------------------------------------------------------
def test_dropout_takes_lua_positional_arguments_and_keywords():
    d = nn.Dropout(0.25, True, True)
    assert (d.p, d.v1, d.inplace) == (0.25, True, True)
    d = nn.Dropout(p=0.4, v1=False, inplace=False, stochastic_inference=True)
    assert d.stochastic_inference


def test_dropout_v1_scales_at_evaluation():
    d = nn.Dropout(0.25, True).double()
    x = numpy.ones((200, 50))
    y = d.forward(x)
    assert set(numpy.unique(y)) <= {0.0, 1.0}  # no scaling while training
    numpy.testing.assert_array_equal(d.backward(x, numpy.ones_like(x)), y)
    d.evaluate()
    numpy.testing.assert_allclose(d.forward(x), 0.75 * x)
    numpy.testing.assert_allclose(d.backward(x, numpy.ones_like(x)), 0.75 * x)


def test_dropout_in_place_writes_into_the_input_and_not_into_the_gradient():
    d = nn.Dropout(0.5, False, True).double()
    x = numpy.ones((50, 40))
    y = d.forward(x)
    assert y is x and set(numpy.unique(x)) <= {0.0, 2.0}
    g = numpy.ones_like(x)
    gi = d.backward(x, g)
    assert gi is not g and numpy.all(g == 1.0)
    numpy.testing.assert_array_equal(gi, d.noise)


def test_dropout_stochastic_inference_drops_in_evaluation():
    d = nn.Dropout(0.5, stochastic_inference=True).double().evaluate()
    y = d.forward(numpy.ones((100, 10)))
    assert (y == 0).any()


# ------------------------------------------------------------------------------------------------
# View over several leading axes (nn/test.lua: View)
# ------------------------------------------------------------------------------------------------
def test_view_takes_several_leading_axes_as_the_batch(device):
    v = nn.View(6).to(device)
    x = on(device, numpy.arange(60, dtype="float32").reshape(5, 2, 6))
    assert v.forward(x).shape == (10, 6)
    assert v.backward(x, on(device, numpy.ones((10, 6), "float32"))).shape == (5, 2, 6)
    assert nn.View(2, 3).forward(numpy.ones((4, 2, 3), "float32")).shape == (4, 2, 3)
    with pytest.raises(ShapeError):
        nn.View(7).forward(numpy.ones((5, 2, 6), "float32"))


# ------------------------------------------------------------------------------------------------
# Conversions keep arrays that are views of one buffer shared (Lua's Typecast tests)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_double_keeps_views_of_one_buffer_shared(device):
    a, b = nn.Linear(3, 2).to(device), nn.Linear(3, 2).to(device)
    xp = backend.array_module(device)
    buffer = xp.arange(12, dtype="float32")
    a.weight = buffer[0:6].reshape(2, 3)
    b.weight = buffer[3:9].reshape(2, 3)  # overlaps a.weight
    seq = nn.Sequential(a, b).double()
    assert a.weight.dtype == numpy.float64
    a.weight[1, 0] = 100.0  # element 3 of the buffer: b.weight[0, 0]
    assert float(b.weight[0, 0]) == 100.0
    numpy.testing.assert_array_equal(host(b.weight).reshape(-1), [100, 4, 5, 6, 7, 8])


def test_get_parameters_buffers_stay_shared_after_float():
    seq = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)).double()
    flat, _ = seq.get_parameters()
    seq.float()
    flat32 = seq[0].weight.base
    assert flat32 is not None and flat32 is seq[1].bias.base
    seq[0].weight[...] = 7.0
    assert (host(flat32)[:6] == 7.0).all()


# ------------------------------------------------------------------------------------------------
# Lua nngraph's graph checks (nngraph/test/test_nngraph.lua)
# ------------------------------------------------------------------------------------------------
def test_split_more_raises_as_lua():
    """test_splitMore: split(2) of a 3-element list."""
    in1 = nn.Identity()()
    out1, out2 = nn.SplitTable(1)(in1).split(2)
    model = nn.gModule([in1], [out1, out2])
    with pytest.raises(NNGraphError, match=r"split\(2\) cannot split 3 outputs"):
        model.forward(numpy.ones((10, 3), "float32"))


def test_split_less_raises():
    """test_splitLess: split(3) of a 2-element list."""
    in1 = nn.Identity()()
    outs = nn.SplitTable(1)(in1).split(3)
    model = nn.gModule([in1], outs)
    with pytest.raises(NNGraphError, match=r"split\(3\) cannot split 2 outputs"):
        model.forward(numpy.ones((10, 2), "float32"))


def test_unused_split_outputs_are_refused_naming_them():
    x = nn.Identity()()
    a, b, c = nn.SplitTable(1)(x).split(3)
    with pytest.raises(GraphBuildError, match=r"2 of split\(3\) outputs .* unused: .*-1, .*-2"):
        nn.gModule([x], [a])


def test_dangling_node_is_refused_naming_it():
    """test_connectivity.lua: a node reading a used node without reaching the output."""
    x = nn.Identity()()
    h = nn.Linear(3, 3)(x)
    nn.Tanh()(h).annotate(name="dangling")
    with pytest.raises(GraphBuildError, match=r"node 'dangling'.*does not connect"):
        nn.gModule([x], [h])


def test_split_outputs_get_debug_labels():
    x = nn.Identity()()
    parts = nn.SplitTable(1)(x).split(2)
    source = parts[0].inputs[0]
    assert [p.debug_label for p in parts] == [f"{source.debug_label}-0",
                                             f"{source.debug_label}-1"]


def test_dot_label_has_the_description_and_attributes_beside_it():
    """test_nngraph.lua test_annotateGraph: description in the label, a tooltip kept beside."""
    x = nn.Identity()()
    h = nn.Tanh()(x).annotate(name="nodeB", description="DescB",
                              graph_attributes={"tooltip": "I am green", "color": "green"})
    g = nn.gModule([x], [h])
    for which in ("forward", "backward"):
        dot = to_dot(g, which=which)
        line = next(ln for ln in dot.splitlines() if "DescB" in ln)
        assert 'tooltip="I am green"' in line and 'color="green"' in line
        assert 'label="nodeB\\nnn.Tanh\\nDescB"' in line


# ------------------------------------------------------------------------------------------------
# nest: the public nesting helpers (nngraph/test/test_nest.lua)
# ------------------------------------------------------------------------------------------------
def test_nest_helpers():
    a = [numpy.ones(2), [numpy.zeros(()), numpy.full(3, 2.0)]]
    z = nest.zeros_like(a)
    assert z[1][0].shape == () and isinstance(z[1][0], numpy.ndarray)
    s = nest.add(a, [None, [numpy.array(1.0), None]])
    assert float(s[1][0]) == 1.0 and s[0] is not a[0]
    acc = nest.add_into(nest.copy(a), a)
    numpy.testing.assert_array_equal(acc[1][1], numpy.full(3, 4.0))
    scalar = nest.add_into(numpy.float64(1.0), numpy.array(2.0))
    assert isinstance(scalar, numpy.ndarray) and float(scalar) == 3.0
    assert nest.fill_none([None, numpy.ones(1)], [numpy.ones(2), numpy.ones(1)])[0].shape == (2,)
    assert len(nest.flatten(a)) == 3
    doubled = nest.map(lambda v: v * 2, a)
    numpy.testing.assert_array_equal(doubled[1][1], numpy.full(3, 4.0))


# ------------------------------------------------------------------------------------------------
# Threads (issue 12 item 10): a clear error, and the supported pattern
# ------------------------------------------------------------------------------------------------
def test_two_threads_on_one_module_are_refused():
    lin = nn.Linear(3, 2).double()
    x = numpy.ones((2, 3))
    lin.forward(x)
    errors = []

    def backward_elsewhere():
        try:
            lin.backward(x, numpy.ones((2, 2)))
        except ConcurrentUseError as exc:
            errors.append(exc)

    th = threading.Thread(target=backward_elsewhere)
    th.start()
    th.join()
    assert errors and "another thread" in str(errors[0])
    # The module is busy while a thread runs it: a second entry is refused.
    lin.__dict__["_busy_thread"] = -1
    with pytest.raises(ConcurrentUseError, match="two threads"):
        lin.forward(x)
    del lin.__dict__["_busy_thread"]
    lin.forward(x)


def test_a_clone_per_thread_sharing_weights_gives_the_right_answers(rng):
    """The pattern the README documents: each thread its own clone('weight', 'bias')."""
    x = nn.Identity()()
    model = nn.gModule([x], [nn.Linear(4, 3)(nn.Tanh()(nn.Linear(5, 4)(x)))]).double()
    inputs = [rand(rng, 3, 5) for _ in range(8)]
    grads = [rand(rng, 3, 3) for _ in range(8)]
    want = []
    for xi, gi in zip(inputs, grads):
        model.forward(xi)
        want.append((model.output.copy(), model.backward(xi, gi).copy()))
    got: dict[int, list] = {}

    def work(k):
        mine = model.clone("weight", "bias")  # shares the weights, keeps its own gradients
        out = []
        for _ in range(20):
            for j in range(k, 8, 2):
                y = mine.forward(inputs[j]).copy()
                out.append((j, y, mine.backward(inputs[j], grads[j]).copy()))
        got[k] = out

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in (0, 1):
        assert len(got[k]) == 80
        for j, y, gx in got[k]:
            numpy.testing.assert_allclose(y, want[j][0], rtol=1e-12)
            numpy.testing.assert_allclose(gx, want[j][1], rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# Sharing survives flattening (issue 14)
# ------------------------------------------------------------------------------------------------
def _cell():
    x, h = nn.Identity()(), nn.Identity()()
    new_h = nn.Tanh()(nn.CAddTable()([nn.Linear(2, 3)(x), nn.Linear(3, 3)(h)]))
    return nn.gModule([x, h], [new_h]).double()


def _train(clones_first: bool, steps: int = 30):
    from lstm.clones import clone_many_times
    from nngraph_py import optim

    backend.manual_seed(7)
    cell = _cell()
    T = 4
    if clones_first:
        clones = clone_many_times(cell, T)
        opt = optim.SGD(cell, lr=0.1)
    else:
        opt = optim.SGD(cell, lr=0.1)
        clones = clone_many_times(cell, T)
    data = numpy.random.default_rng(3)
    xs = data.standard_normal((T, 5, 2))
    target = data.standard_normal((5, 3))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        hs = [numpy.zeros((5, 3))]
        for k in range(T):
            hs.append(clones[k].forward([xs[k], hs[-1]]).copy())
        diff = hs[-1] - target
        losses.append(float((diff ** 2).mean()))
        g = 2 * diff / diff.size
        for k in range(T - 1, -1, -1):
            _, g = clones[k].backward([xs[k], hs[k]], g)
        opt.step()
    for c in clones:
        for p, q in zip(c.parameters()[0], cell.parameters()[0]):
            assert p is q
    return losses


def test_clones_keep_sharing_after_the_optimizer_flattens_the_parameters():
    before, after = _train(clones_first=True), _train(clones_first=False)
    numpy.testing.assert_allclose(before, after, rtol=1e-12)
    assert before[-1] < 0.7 * before[0]


def test_clone_with_shared_names_follows_get_parameters():
    lin = nn.Linear(3, 2)
    twin = lin.clone("weight", "bias", "grad_weight", "grad_bias")
    flat, _ = lin.get_parameters()
    assert twin.weight is lin.weight and twin.weight.base is flat


def test_reset_of_a_container_uses_each_members_own_default():
    seq = nn.Sequential(nn.Linear(3, 3), nn.BatchNormalization(3), nn.Tanh())
    before = host(seq[0].weight).copy()
    assert seq.reset() is seq  # BatchNormalization.reset takes no stdv: called without one
    assert not numpy.array_equal(before, host(seq[0].weight))


# ------------------------------------------------------------------------------------------------
# Lua's other positional arguments: ip (in place) and nInputDims
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,fn", [(lambda: nn.MulConstant(2.5, True), lambda x: 2.5 * x),
                                     (lambda: nn.AddConstant(-1.5, True), lambda x: x - 1.5)],
                         ids=["MulConstant", "AddConstant"])
def test_constants_in_place_restore_their_input_in_backward(rng, make, fn):
    m = make().double()
    x = rand(rng, 3, 4)
    keep = x.copy()
    y = m.forward(x)
    assert y is x
    numpy.testing.assert_allclose(y, fn(keep))
    g = rand(rng, 3, 4)
    m.backward(x, g)
    numpy.testing.assert_allclose(x, keep, rtol=1e-14)  # Lua: input restored


def test_relu_and_cadd_table_in_place(rng):
    x = rand(rng, 3, 4)
    keep = x.copy()
    relu = nn.ReLU(True).double()
    assert relu.forward(x) is x and (x >= 0).all()
    numpy.testing.assert_array_equal(relu.backward(x, numpy.ones_like(x)), keep > 0)
    a, b = rand(rng, 2, 2), rand(rng, 2, 2)
    total = a + b
    out = nn.CAddTable(True).double().forward([a, b])
    assert out is a
    numpy.testing.assert_allclose(out, total)


def test_join_and_split_table_n_input_dims_as_lua():
    join = nn.JoinTable(0, 1)  # Lua's JoinTable(1, 1)
    v = [numpy.ones(2, "float32"), numpy.ones(3, "float32")]
    assert join.forward(v).shape == (5,)
    batch = [numpy.ones((4, 2), "float32"), numpy.ones((4, 3), "float32")]
    assert join.forward(batch).shape == (4, 5)
    split = nn.SplitTable(0, 2)  # Lua's SplitTable(1, 2): rows of a matrix, of each in a batch
    assert len(split.forward(numpy.ones((3, 5), "float32"))) == 3
    parts = split.forward(numpy.ones((7, 3, 5), "float32"))
    assert len(parts) == 3 and parts[0].shape == (7, 5)
    assert split.backward(numpy.ones((7, 3, 5), "float32"), parts).shape == (7, 3, 5)


def test_named_buffers_walk_like_named_parameters():
    from nngraph_py.distributed.parameters import named_buffers

    x = nn.Identity()()
    bn = nn.BatchNormalization(3)
    g = nn.gModule([x], [nn.Sequential(nn.Linear(2, 3), bn)(x)])
    names = [n for n, _ in g.named_buffers()]
    assert names == [n for n, _ in named_buffers(g)]
    assert names and all(n.endswith(("running_mean", "running_var")) for n in names)
    prefix = next(n for n, _ in g.named_parameters() if n.endswith("weight")).rsplit(".", 2)[0]
    assert names[0].startswith(prefix)


def test_add_constant_with_one_value_per_feature(device, rng):
    """test.lua AddConstant (engine_bugs #7): a tensor constant, over a batch too; it converts
    with the module and keeps its given values through double()."""
    c = numpy.array([0.1, 0.7, 0.2]) / 3
    m = nn.AddConstant(c).double().to(device)
    numpy.testing.assert_array_equal(host(m.constant), c)
    x = rand(rng, 4, 3)
    numpy.testing.assert_allclose(host(m.forward(on(device, x))), x + c, rtol=1e-15)
    assert gradcheck(m, on(device, x)).ok
    with pytest.raises(ShapeError, match=r"one feature per value"):
        m.forward(on(device, rand(rng, 4, 2)))
    assert repr(nn.AddConstant([1, 2])) == "nn.AddConstant([1, 2])"
