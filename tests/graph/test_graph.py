"""Graph construction, forward/backward through gModule, and every graph error, on each backend."""
from __future__ import annotations

import networkx as nx
import numpy
import pytest

from conftest import on
from nngraph_py import backend, gradcheck, nn, set_debug
from nngraph_py.errors import GraphBuildError, GraphError, InputError
from nngraph_py.graph.dot import graphviz_available, render, to_dot


def seed_mlp():
    """The tutorial's mlp: z = x1 + x2 * Linear(20, 10)(x3)."""
    x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(20, 10)(x3)])])
    return nn.gModule([x1, x2, x3], [z])


def rand(rng, *shape):
    return rng.standard_normal(shape)


# ------------------------------------------------------------------------------------------------
# The seed's check
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [None, 4])
def test_seed_mlp_forward_equals_formula(device, rng, batch):
    mlp = seed_mlp().double().to(device)
    shape = (batch,) if batch else ()
    h1, h2, h3 = rand(rng, *shape, 10), rand(rng, *shape, 10), rand(rng, *shape, 20)
    out = mlp.forward(on(device, h1, h2, h3))
    weight, bias = mlp.parameters()[0]
    w, b = backend.to_numpy(weight), backend.to_numpy(bias)
    numpy.testing.assert_allclose(backend.to_numpy(out), h1 + h2 * (h3 @ w.T + b), rtol=1e-12)


def test_seed_mlp_tutorial_values():
    """The tutorial's exact inputs: h1 = 1..3? no: h1 = ones(10), h2 = fill(1), h3 = fill(2)."""
    mlp = seed_mlp()
    h1, h2, h3 = numpy.ones(10, "float32"), numpy.ones(10, "float32"), numpy.full(20, 2, "float32")
    b = mlp.forward([h1, h2, h3])
    params = mlp.parameters()[0]
    numpy.testing.assert_allclose(b, h1 + h2 * (params[0] @ h3 + params[1]), rtol=1e-6)


def test_seed_mlp_gradcheck(device, rng):
    mlp = seed_mlp().double().to(device)
    result = gradcheck(mlp, on(device, rand(rng, 3, 10), rand(rng, 3, 10), rand(rng, 3, 20)))
    assert result.ok and set(result.errors) >= {"input[0]", "input[2]", "Linear1.weight"}


def test_backward_returns_input_grads_and_accumulates_parameters(rng):
    mlp = seed_mlp().double()
    x = [rand(rng, 2, 10), rand(rng, 2, 10), rand(rng, 2, 20)]
    g = rand(rng, 2, 10)
    mlp.forward(x)
    grads = mlp.backward(x, g)
    weight, bias = mlp.parameters()[0]
    numpy.testing.assert_allclose(grads[0], g)
    numpy.testing.assert_allclose(grads[1], g * (x[2] @ weight.T + bias))
    numpy.testing.assert_allclose(grads[2], (g * x[1]) @ weight)
    gw = mlp.parameters()[1][0].copy()
    mlp.backward(x, g)
    numpy.testing.assert_allclose(mlp.parameters()[1][0], 2 * gw)  # accumulates
    mlp.zero_grad_parameters()
    assert not mlp.parameters()[1][0].any()


def test_parameters_are_live_arrays(rng):
    mlp = seed_mlp()
    weight, bias = mlp.parameters()[0]
    assert weight is mlp.nodes[3].module.weight
    weight[...] = 0
    bias[...] = 1
    out = mlp.forward([numpy.zeros(10, "float32"), numpy.ones(10, "float32"), numpy.ones(20, "float32")])
    numpy.testing.assert_allclose(out, numpy.ones(10))


# ------------------------------------------------------------------------------------------------
# Graph shapes: fan-out, repeated inputs, several outputs, nesting, split
# ------------------------------------------------------------------------------------------------
def test_fan_out_accumulates(device, rng):
    x = nn.Identity()()
    h = nn.Linear(4, 3)(x)
    a = nn.Tanh()(h)
    b = nn.Sigmoid()(h)
    c = nn.Linear(3, 3)(h)
    out = nn.CAddTable()([a, b, c])
    g = nn.gModule([x], [out]).double().to(device)
    assert gradcheck(g, on(device, rand(rng, 5, 4))).ok


def test_fan_out_with_a_zero_gradient_branch_still_accumulates_parameters(rng):
    """Lua nngraph left a fan-out node's summed gradient unset when one branch's gradient was
    zero; acc_grad_parameters must see the full sum."""
    x, zero = nn.Identity()(), nn.Identity()()
    h = nn.Linear(4, 3)(x)
    dead = nn.CMulTable()([h, zero])           # contributes an all-zero gradient to h
    alive = nn.Tanh()(h)
    g = nn.gModule([x, zero], [nn.CAddTable()([dead, alive])]).double()
    xs = [rand(rng, 5, 4), numpy.zeros((5, 3))]
    assert gradcheck(g, xs).ok
    # The same parameter gradient as the graph without the dead branch.
    x2 = nn.Identity()()
    lin = g.nodes[2].module.clone()
    ref = nn.gModule([x2], [nn.Tanh()(lin(x2))]).double()
    gout = rand(rng, 5, 3)
    for model, inp in ((g, xs), (ref, xs[0])):
        model.zero_grad_parameters()
        model.forward(inp)
        model.backward(inp, gout)
    numpy.testing.assert_allclose(g.parameters()[1][0], ref.parameters()[1][0])
    assert g.parameters()[1][0].any()


def test_same_node_twice_in_one_list(device, rng):
    x = nn.Identity()()
    sq = nn.gModule([x], [nn.CMulTable()([x, x])]).double().to(device)
    xv = rand(rng, 3, 2)
    numpy.testing.assert_allclose(backend.to_numpy(sq.forward(on(device, xv))), xv * xv)
    grad = sq.backward(on(device, xv), on(device, numpy.ones((3, 2))))
    numpy.testing.assert_allclose(backend.to_numpy(grad), 2 * xv)
    assert gradcheck(sq, on(device, xv)).ok


def test_several_inputs_and_outputs(device, rng):
    a, b = nn.Identity()(), nn.Identity()()
    s = nn.CAddTable()([a, b])
    p = nn.Linear(3, 2)(nn.CMulTable()([a, b]))
    g = nn.gModule([a, b], [s, p]).double().to(device)
    outs = g.forward(on(device, rand(rng, 4, 3), rand(rng, 4, 3)))
    assert isinstance(outs, list) and [o.shape for o in outs] == [(4, 3), (4, 2)]
    assert gradcheck(g, on(device, rand(rng, 4, 3), rand(rng, 4, 3))).ok


def test_input_node_can_also_be_an_output(rng):
    a, b = nn.Identity()(), nn.Identity()()
    g = nn.gModule([a, b], [a, nn.CAddTable()([a, b])]).double()
    assert gradcheck(g, [rand(rng, 2, 3), rand(rng, 2, 3)]).ok


def test_nested_gmodule_and_split(device, rng):
    x, y = nn.Identity()(), nn.Identity()()
    inner = nn.gModule([x, y], [nn.Linear(3, 3)(x).annotate(name="proj"), nn.Tanh()(y)])
    u, v = nn.Identity()(), nn.Identity()()
    first, second = inner([u, v]).annotate(name="block").split(2)
    out = nn.CMulTable()([first, second])
    outer = nn.gModule([u, v], [out]).double().to(device)
    assert [n for n, _ in outer.named_parameters()] == ["block.proj.weight", "block.proj.bias"]
    assert gradcheck(outer, on(device, rand(rng, 2, 3), rand(rng, 2, 3))).ok


def test_module_receives_array_for_one_node_and_list_for_a_list(rng):
    seen = []

    class Spy(nn.Identity):
        def update_output(self, input):
            seen.append(type(input))
            return super().update_output(input)

    x = nn.Identity()()
    g = nn.gModule([x], [Spy()([Spy()(x)])])
    g.forward(numpy.ones((2, 2), "float32"))
    assert seen == [numpy.ndarray, list]


def test_single_input_gmodule_takes_a_bare_array():
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Tanh()(x)])
    assert g.forward(numpy.zeros((2, 3), "float32")).shape == (2, 3)


def test_order_is_computed_once(monkeypatch, rng):
    mlp = seed_mlp()
    def boom(*a, **k):
        raise AssertionError("topological sort recomputed")
    monkeypatch.setattr(nx, "topological_sort", boom)
    monkeypatch.setattr(nx, "lexicographical_topological_sort", boom)
    x = [numpy.ones(10, "float32"), numpy.ones(10, "float32"), numpy.ones(20, "float32")]
    mlp.forward(x)
    mlp.backward(x, numpy.ones(10, "float32"))


def test_fg_and_bg_are_networkx_digraphs():
    mlp = seed_mlp()
    assert isinstance(mlp.fg, nx.DiGraph) and isinstance(mlp.bg, nx.DiGraph)
    lin = mlp.nodes[3]
    mul = mlp.nodes[4]
    assert mlp.fg.has_edge(lin, mul) and mlp.bg.has_edge(mul, lin)
    assert nx.is_directed_acyclic_graph(mlp.fg) and mlp.fg.number_of_nodes() == 6


def test_annotate_returns_the_node_and_names_parameters():
    x = nn.Identity()()
    node = nn.Linear(2, 2)(x)
    assert node.annotate(name="proj", graph_attributes={"color": "blue"}) is node
    g = nn.gModule([x], [node])
    assert [n for n, _ in g.named_parameters()] == ["proj.weight", "proj.bias"]
    assert 'color="blue"' in to_dot(g)


def test_criterion_free_repr_is_torch_like():
    text = repr(seed_mlp())
    assert text.splitlines()[0] == "nn.gModule {"
    assert "(Linear1) nn.Linear(20 -> 10) <- Identity3" in text
    assert "(CAddTable1) nn.CAddTable <- (Identity1, CMulTable1)" in text


# ------------------------------------------------------------------------------------------------
# Devices, dtypes and state
# ------------------------------------------------------------------------------------------------
def test_to_converts_parameters_and_cached_state(rng):
    mlp = seed_mlp()
    x = [numpy.ones((2, 10), "float32"), numpy.ones((2, 10), "float32"), numpy.ones((2, 20), "float32")]
    mlp.forward(x)
    mlp.to("strict", "float64")
    lin = mlp.nodes[3].module
    assert backend.device_of(lin.weight) == "strict" and lin.weight.dtype == numpy.float64
    assert backend.device_of(lin.output) == "strict"
    assert all(backend.device_of(v) == "strict" for v in mlp._vals)
    mlp.cpu().float()
    assert backend.device_of(lin.output) == "cpu" and lin.weight.dtype == numpy.float32


def test_float64_inputs_are_cast_to_the_model_dtype():
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Linear(3, 2)(x)])
    assert g.forward(numpy.ones((1, 3))).dtype == numpy.float32


def test_clear_state_drops_caches():
    mlp = seed_mlp()
    mlp.forward([numpy.ones(10, "float32"), numpy.ones(10, "float32"), numpy.ones(20, "float32")])
    mlp.clear_state()
    assert mlp._vals is None and all(m.output is None for m in mlp.modules())


def test_get_parameters_flattens_into_views(rng):
    mlp = seed_mlp()
    flat, gflat = mlp.get_parameters()
    assert flat.shape == (210,) and gflat.shape == (210,)
    flat[:] = 0.5
    assert (mlp.parameters()[0][0] == 0.5).all()
    mlp.forward([numpy.ones(10, "float32")] * 2 + [numpy.ones(20, "float32")])
    mlp.backward([numpy.ones(10, "float32")] * 2 + [numpy.ones(20, "float32")], numpy.ones(10, "float32"))
    assert gflat[:200].sum() == 200 * 1.0


# ------------------------------------------------------------------------------------------------
# Errors: each one clear, and the graph still usable afterwards
# ------------------------------------------------------------------------------------------------
def test_wrong_number_of_inputs():
    mlp = seed_mlp()
    with pytest.raises(InputError, match=r"3 inputs .*got a list of 2"):
        mlp.forward([numpy.ones(10, "float32"), numpy.ones(10, "float32")])


def test_shape_mismatch_names_the_node_and_shapes():
    x = nn.Identity()()
    h = nn.Linear(20, 10)(x).annotate(name="projection")
    g = nn.gModule([x], [nn.Tanh()(h)])
    with pytest.raises(GraphError) as info:
        g.forward(numpy.ones((5, 19), "float32"))
    msg = str(info.value)
    assert "projection" in msg and "nn.Linear(20 -> 10)" in msg
    assert "test_graph.py:" in msg  # where the node was created
    assert "(batch, 20)" in msg and "(5, 19)" in msg
    assert info.value.node is h
    # Still usable.
    assert g.forward(numpy.ones((5, 20), "float32")).shape == (5, 10)


def test_unannotated_node_is_named_by_its_creation_line():
    a, b = nn.Identity()(), nn.Identity()()
    s = nn.CAddTable()([a, b])
    g = nn.gModule([a, b], [s])
    with pytest.raises(GraphError, match=r"nn.CAddTable, created at .*test_graph.py:\d+.*\(2, 3\), \(2, 4\)"):
        g.forward([numpy.ones((2, 3), "float32"), numpy.ones((2, 4), "float32")])


def test_cycle_is_detected():
    x = nn.Identity()()
    a = nn.Tanh()(x)
    b = nn.Sigmoid()(a)
    a.inputs = [b]  # nodes are immutable through the API: force a cycle
    with pytest.raises(GraphBuildError, match="cycle"):
        nn.gModule([x], [b])


def test_input_not_reaching_an_output():
    x, unused = nn.Identity()(), nn.Identity()()
    with pytest.raises(GraphBuildError, match=r"input 1 .* does not reach any output"):
        nn.gModule([x, unused], [nn.Tanh()(x)])


def test_output_not_reachable_from_inputs():
    x, stray = nn.Identity()(), nn.Identity()()
    with pytest.raises(GraphBuildError, match="not reachable from the inputs"):
        nn.gModule([x], [nn.CAddTable()([x, stray])])


def test_module_reused_without_clone():
    x = nn.Identity()()
    lin = nn.Linear(3, 3)
    lin(x)
    with pytest.raises(GraphBuildError, match=r"already used .*clone\(\)"):
        lin(x)


def test_one_array_module_called_on_a_list_of_nodes():
    a, b = nn.Identity()().annotate(name="a"), nn.Identity()().annotate(name="b")
    with pytest.raises(GraphBuildError, match=r"nn.Linear\(3 -> 2\) takes one array .* 2 nodes \(a, b\)"):
        nn.Linear(3, 2)([a, b])
    nn.Linear(3, 2)(nn.JoinTable(1)([a, b]))  # the fix the message suggests


@pytest.mark.parametrize("module", [nn.Linear(3, 2), nn.Tanh(), nn.Select(1, 0), nn.Reshape(3),
                                    nn.Narrow(1, 0, 1), nn.SoftMax(), nn.Dropout(0.5)])
def test_one_array_modules_refuse_a_list(module):
    x = numpy.ones((2, 3), "float32")
    with pytest.raises(InputError, match=r"expected one array, got a list of 2 \[\(2, 3\), \(2, 3\)\]"):
        module.forward([x, x])
    with pytest.raises(InputError, match="expected one array"):
        module.backward([x, x], x)


@pytest.mark.parametrize("module", [nn.CAddTable(), nn.CMulTable(), nn.JoinTable(1), nn.SelectTable(0)])
def test_table_modules_refuse_one_array(module):
    with pytest.raises(InputError, match=r"expected a list of arrays, got one array \(2, 3\)"):
        module.forward(numpy.ones((2, 3), "float32"))


def test_module_without_second_call():
    x = nn.Identity()()
    with pytest.raises(InputError, match="did you forget its second call"):
        nn.CAddTable()([x, nn.Identity()])
    with pytest.raises(InputError, match="did you forget its second call"):
        nn.gModule([nn.Identity()], [x])
    with pytest.raises(InputError, match="is an array"):
        nn.Tanh()(numpy.ones(3))
    with pytest.raises(InputError, match="None"):
        nn.Tanh()(None)


def test_same_node_twice_as_input():
    x = nn.Identity()()
    with pytest.raises(GraphBuildError, match="twice"):
        nn.gModule([x, x], [nn.Tanh()(x)])


def test_array_on_the_wrong_device():
    mlp = seed_mlp().to("strict")
    with pytest.raises(backend.DeviceError, match=r"to_device\(x, 'strict'\)"):
        mlp.forward([numpy.ones(10, "float32")] * 2 + [numpy.ones(20, "float32")])


def test_debug_writes_the_graph_with_the_failing_node_in_red(tmp_path):
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Linear(4, 2)(x).annotate(name="bad")])
    set_debug(True, str(tmp_path))
    try:
        with pytest.raises(GraphError, match="failing node in red") as info:
            g.forward(numpy.ones((1, 3), "float32"))
    finally:
        set_debug(False)
    path = str(info.value).rsplit(": ", 1)[1]
    text = open(path.replace(".svg", ".dot")).read()
    assert 'color="red"' in text and "bad" in text


# ------------------------------------------------------------------------------------------------
# Pictures
# ------------------------------------------------------------------------------------------------
def test_dot_export_forward_and_backward():
    mlp = seed_mlp()
    fwd, bwd = to_dot(mlp, "forward"), to_dot(mlp, "backward")
    assert fwd.startswith("digraph") and "Linear1" in fwd
    assert "n3 -> n4" in fwd and "n4 -> n3" in bwd


@pytest.mark.skipif(not graphviz_available(), reason="Graphviz 'dot' is not installed")
def test_render_svg(tmp_path):
    path = render(to_dot(seed_mlp()), str(tmp_path / "mlp.svg"))
    assert open(path).read().lstrip().startswith("<?xml")


def test_sharing_weights_without_gradients_is_refused_for_training():
    x = nn.Identity()()
    lin = nn.Linear(3, 3)
    twin = lin.clone("weight", "bias")
    g = nn.gModule([x], [nn.CAddTable()([lin(x), twin(x)])])
    assert len(g.parameters()[0]) == 2  # inspection still works
    with pytest.raises(ValueError, match="grad_weight"):
        g.get_parameters()


def test_errors_name_unannotated_nodes_by_their_graph_name():
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Linear(4, 2)(x)])
    with pytest.raises(GraphError, match="node 'Linear1'"):
        g.forward(numpy.ones((1, 3), "float32"))
