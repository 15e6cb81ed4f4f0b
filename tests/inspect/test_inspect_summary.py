"""summary(): rows, output shapes, parameter names, sharing, nesting, totals against hand counts."""
from __future__ import annotations

import io
import json

import numpy
import pytest

from inspect_models import GATES, lstm_cell_model, nested_model, seed_mlp, shared_model
from nngraph_py import backend, nn
from nngraph_py.errors import ShapeError
from nngraph_py.inspect import Summary, is_trainable, summary

MLP_SHAPES = [(10,), (10,), (20,)]


def test_seed_mlp_rows_shapes_and_hand_counted_total(device):
    mlp = seed_mlp().to(device)
    s = summary(mlp, MLP_SHAPES, print_table=False)
    assert s.total_params == 20 * 10 + 10 == mlp.num_parameters()
    assert s.trainable_params == 210 and s.non_trainable_params == 0
    assert s.total_bytes == 210 * 4 and s.grad_bytes == 210 * 4
    assert [r.name for r in s.rows] == ["Identity1", "Identity2", "Identity3", "Linear1",
                                        "CMulTable1", "CAddTable1"]
    assert [r.output_shape for r in s.rows] == [(10,), (10,), (20,), (10,), (10,), (10,)]
    linear = s.rows[3]
    assert linear.module == "nn.Linear(20 -> 10)" and linear.inputs == ["Identity3"]
    assert [(p.name, p.shape, p.count) for p in linear.params] == [
        ("Linear1.weight", (10, 20), 200), ("Linear1.bias", (10,), 10)]
    assert s.rows[4].inputs == ["Identity2", "Linear1"] and s.rows[4].table
    assert [r.input_slot for r in s.rows[:3]] == [0, 1, 2]
    assert s.rows[-1].output_slots == [0]
    assert s.output_shape == (10,)
    assert s.device == device and s.dtype == "float32"


def test_seed_mlp_table_text():
    text = str(summary(seed_mlp(), MLP_SHAPES, print_table=False))
    for piece in ("Linear1.weight", "(10, 20)", "200", "Linear1.bias", "nn.Linear(20 -> 10)",
                  "(Identity2, Linear1)", "input 3", "Parameters: 210", "840 B"):
        assert piece in text, piece
    lines = text.splitlines()
    # rows in topological order
    order = [next(i for i, line in enumerate(lines) if f"  {n}" in line)
             for n in ("Identity3", "Linear1", "CMulTable1", "CAddTable1")]
    assert order == sorted(order)


def test_batch_dimension_and_model_dtype():
    mlp = seed_mlp().double()
    s = summary(mlp, [(4, 10), (4, 10), (4, 20)], print_table=False)
    assert s.rows[3].output_shape == (4, 10) and s.dtype == "float64"
    assert s.total_bytes == 210 * 8


def test_lstm_recipe_total_is_the_hand_count_of_8_linear():
    n_in, h = 5, 4
    cell = lstm_cell_model(n_in, h)
    s = summary(cell, [(2, n_in), (2, h), (2, h)], print_table=False)
    hand = 4 * (n_in * h + h) + 4 * (h * h + h)
    assert s.total_params == hand == cell.num_parameters() == 176
    linears = [r for r in s.rows if r.module_type == "Linear"]
    assert len(linears) == 8
    assert sorted(r.name for r in linears) == sorted(
        f"{kind}_{gate}" for kind in ("i2h", "h2h") for gate in GATES)
    by_name = {r.name: r for r in s.rows}
    assert [p.name for p in by_name["i2h_forget"].params] == [
        "i2h_forget.weight", "i2h_forget.bias"]
    assert by_name["i2h_forget"].params[0].shape == (h, n_in)
    assert by_name["next_c"].output_shape == (2, h) and by_name["next_h"].output_slots == [1]
    # The summary names parameters exactly as named_parameters does, in the same order.
    assert [p.name for p in s.parameters()] == [n for n, _ in cell.named_parameters()]


def test_lstm_model_two_layers():
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    model = lstm.LSTM(10, 20, 2)
    s = summary(model, (3, 6, 10), print_table=False)
    layer1 = 4 * (10 * 20 + 20) + 4 * (20 * 20 + 20)
    layer2 = 8 * (20 * 20 + 20)
    assert s.total_params == layer1 + layer2 == model.num_parameters()
    assert [r.subtree_params for r in s.rows if r.depth == 0] == [layer1, layer2]
    assert "layer2.i2h_forget.weight" in [p.name for p in s.parameters()]
    assert s.output_shape == [(3, 6, 20), (2, 3, 20), (2, 3, 20)]


def test_shared_parameters_are_counted_once_and_name_their_first_name():
    model = shared_model()
    s = summary(model, [(3,), (3,)], print_table=False)
    assert s.total_params == 3 * 2 + 2 == model.num_parameters()
    right = next(r for r in s.rows if r.name == "right")
    left = next(r for r in s.rows if r.name == "left")
    assert [p.shared_with for p in right.params] == ["left.weight", "left.bias"]
    assert right.num_params == 0 and left.num_params == 8
    assert left.params[0].also == ["right.weight"]
    assert s.shared == 2
    text = str(s)
    assert "shared with" in text and "also right.weight" in text


def test_module_share_is_seen_as_sharing():
    a, b = nn.Identity()(), nn.Identity()()
    l1, l2 = nn.Linear(3, 3), nn.Linear(3, 3)
    l2.share(l1, "weight")
    model = nn.gModule([a, b], [nn.CAddTable()([l1(a), l2(b)])])
    s = summary(model, print_table=False)
    shared = [p for p in s.parameters() if p.shared_with]
    assert [(p.name, p.shared_with) for p in shared] == [("Linear2.weight", "Linear1.weight")]
    assert s.total_params == 9 + 3 + 3 == model.num_parameters()


def test_nested_gmodule_rows_are_indented_and_named_by_path():
    model = nested_model()
    s = summary(model, [(2, 3), (2, 3)], print_table=False)
    block = next(r for r in s.rows if r.name == "block")
    assert block.container == "graph" and block.subtree_params == 12 and block.num_params == 0
    assert block.output_shape == [(2, 3), (2, 3)]
    inner = [r for r in s.rows if r.depth == 1]
    assert [r.name for r in inner] == ["Identity1", "Identity2", "proj", "Tanh1"]
    assert [p.name for p in inner[2].params] == ["block.proj.weight", "block.proj.bias"]
    assert inner[2].number == f"{block.number}.3"
    lines = str(s).splitlines()
    proj_line = next(line for line in lines if "block.proj.weight" in line)
    block_line = next(line for line in lines if " block " in line)
    assert proj_line.index("proj") > block_line.index("block")  # indented under its container


def test_depth_folds_nested_rows_into_their_container():
    s = summary(nested_model(), depth=0, print_table=False)
    assert all(r.depth == 0 for r in s.rows)
    assert s.total_params == 12
    text = str(s)
    assert "(inside)" in text and "block.proj" not in text and "folded" in text


def test_sequential():
    if not hasattr(nn, "Sequential"):
        pytest.skip("nn.Sequential is not available yet")
    seq = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    s = summary(seq, (5, 4), print_table=False)
    assert s.container == "sequence"
    assert [(r.name, r.output_shape) for r in s.rows] == [
        ("1", (5, 3)), ("2", (5, 3)), ("3", (5, 2))]
    assert [p.name for p in s.parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert s.total_params == 4 * 3 + 3 + 3 * 2 + 2 == seq.num_parameters()
    # A Sequential inside a graph is a nested container
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Sequential(nn.Linear(4, 4), nn.ReLU())(x).annotate(name="mlp")])
    rows = summary(g, (2, 4), print_table=False).rows
    assert [r.path for r in rows] == ["Identity1", "mlp", "mlp.1", "mlp.2"]
    assert rows[1].container == "sequence"


def test_leaf_module():
    s = summary(nn.Linear(3, 2), (3,), print_table=False)
    assert len(s.rows) == 1 and s.rows[0].name == "Linear"
    assert [p.name for p in s.rows[0].params] == ["weight", "bias"]
    assert s.rows[0].output_shape == (2,) and s.total_params == 8


def test_frozen_module_is_not_trainable():
    mlp = seed_mlp()
    linear = mlp.nodes[3].module
    assert is_trainable(linear)
    linear.acc_grad_parameters = lambda *args, **kwargs: None  # Lua's freezing idiom
    s = summary(mlp, print_table=False)
    assert s.trainable_params == 0 and s.non_trainable_params == 210
    assert [p.trainable for p in s.parameters()] == [False, False]
    assert " no" in str(s)


def test_forward_on_zeros_clears_state_and_restores_modes():
    mlp = seed_mlp()
    mlp.nodes[3].module.evaluate()  # a mixed mode must survive
    summary(mlp, MLP_SHAPES, print_table=False)
    assert mlp.output is None and all(m.output is None for m in mlp.modules())
    assert mlp.train and not mlp.nodes[3].module.train


def test_shapes_of_the_last_forward_when_no_input_shapes():
    mlp = seed_mlp()
    assert summary(mlp, print_table=False).shapes_from is None
    mlp.forward([numpy.ones((3, 10), "float32"), numpy.ones((3, 10), "float32"),
                 numpy.ones((3, 20), "float32")])
    s = summary(mlp, print_table=False)
    assert s.shapes_from == "last forward" and s.rows[3].output_shape == (3, 10)
    assert mlp.output is not None  # the user's state is left alone


def test_wrong_input_shapes_name_the_node_and_the_shapes():
    with pytest.raises(ShapeError) as info:
        summary(seed_mlp(), [(3,), (3,), (10,)], print_table=False)
    text = str(info.value)
    assert "[(3,), (3,), (10,)]" in text and "Linear(20 -> 10)" in text and "(10,)" in text


def test_bad_arguments():
    with pytest.raises(TypeError):
        summary(object())
    with pytest.raises(ValueError):
        summary(seed_mlp(), depth=-1)
    with pytest.raises(TypeError):
        summary(seed_mlp(), input_shapes="10")


def test_to_dict_round_trips_through_json():
    s = summary(nested_model(), [(2, 3), (2, 3)], print_table=False)
    back = Summary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert str(back) == str(s)
    assert back.rows[2].output_shape == [(2, 3), (2, 3)]
    assert back.input_shapes == [(2, 3), (2, 3)]


def test_prints_to_file_and_repr_is_short():
    buf = io.StringIO()
    s = summary(seed_mlp(), MLP_SHAPES, file=buf)
    assert buf.getvalue().strip() == str(s)
    assert repr(s).startswith("Summary(") and "\n" not in repr(s)


def test_strict_backend_needs_no_numpy_on_model_arrays():
    mlp = seed_mlp().to("strict")
    s = summary(mlp, MLP_SHAPES, print_table=False)
    assert s.total_params == 210 and backend.device_of(mlp.parameters()[0][0]) == "strict"


def test_frozen_nested_graph_folds_as_not_trainable():
    model = nested_model()
    for m in model.modules():
        if type(m).__name__ == "Linear":
            m.acc_grad_parameters = lambda *args, **kwargs: None
    s = summary(model, depth=0, print_table=False)
    block_line = next(line for line in str(s).splitlines() if "(inside)" in line)
    assert block_line.rstrip().endswith("no")
    assert s.trainable_params == 0 and s.non_trainable_params == 12


# --------------------------------------------------------------------------------------------
# Recurrent modules: the step cells' rows show per-step shapes
# --------------------------------------------------------------------------------------------
def readme_lstm_model(optimize: bool = True, dropout: float = 0.0):
    """README's classifier: LSTM(28, 128, 2) -> Select(last step) -> Linear(128, 10)."""
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    recurrent = lstm.LSTM(28, 128, num_layers=2, dropout=dropout).optimize(optimize)
    x = nn.Identity()()
    seq = nn.SelectTable(0)(recurrent(x))  # h_n, c_n unused: pick the outputs (no split)
    logits = nn.Linear(128, 10)(nn.Select(1, -1)(seq))
    return nn.gModule([x], [logits]), recurrent


def _state_of(model):
    """Copies of everything summary() must leave alone: parameters, gradients, modes, the RNG."""
    return ([p.copy() for p in model.parameters()[0]], [g.copy() for g in model.parameters()[1]],
            [m.train for m in model.modules()], numpy.random.get_state())


def _assert_same_state(before, after):
    (params, grads, modes, rng), (params2, grads2, modes2, rng2) = before, after
    assert all(numpy.array_equal(a, b) for a, b in zip(params, params2))
    assert all(numpy.array_equal(a, b) for a, b in zip(grads, grads2))
    assert modes == modes2
    assert rng[0] == rng2[0] and numpy.array_equal(rng[1], rng2[1]) and rng[2:] == rng2[2:]


@pytest.mark.parametrize("optimize", [True, False], ids=["fused", "clones"])
def test_lstm_cell_rows_show_per_step_shapes(optimize):
    model, recurrent = readme_lstm_model(optimize, dropout=0.5)
    # A training step first, so that the gradients are not zeros and dropout is live.
    x = numpy.random.default_rng(0).standard_normal((2, 5, 28)).astype("float32")
    out = model.forward(x)
    model.backward(x, numpy.ones_like(out))
    before = _state_of(model)

    s = summary(model, (3, 28, 28), print_table=False)

    _assert_same_state(before, _state_of(model))
    assert all(cell.output is None and cell._vals is None for cell in recurrent.cells)
    assert s.total_params == 214282 == model.num_parameters()
    by_path = {r.path: r for r in s.rows}
    inside = [r for r in s.rows if r.path.startswith("LSTM1.layer")]
    assert len(inside) == 2 * 25
    assert all(r.per_step and r.output_shape is not None for r in inside)
    assert not any(r.per_step for r in s.rows if r not in inside)
    assert by_path["LSTM1"].output_shape == [(3, 28, 128), (2, 3, 128), (2, 3, 128)]
    assert by_path["LSTM1.layer1"].output_shape == [(3, 128), (3, 128)]  # [next_c, next_h]
    assert by_path["LSTM1.layer1.x"].output_shape == (3, 28)
    assert by_path["LSTM1.layer2.x"].output_shape == (3, 128)  # reads layer 1's h
    assert by_path["LSTM1.layer1.prev_c"].output_shape == (3, 128)
    for gate in GATES:
        assert by_path[f"LSTM1.layer1.i2h_{gate}"].output_shape == (3, 128)
        assert by_path[f"LSTM1.layer2.{gate}_sum"].output_shape == (3, 128)  # pre-activation
    assert by_path["LSTM1.layer2.next_h"].output_shape == (3, 128)
    text = s.table()
    line = next(t for t in text.splitlines() if "i2h_forget" in t)
    assert "(3, 128) *" in line
    assert "* per time step" in text
    # Rows made from the model's last forward (no input_shapes) get them too, with its batch.
    model.forward(x)
    s = summary(model, print_table=False)
    assert {r.path: r for r in s.rows}["LSTM1.layer2.output_gate"].output_shape == (2, 128)
    assert recurrent.output is not None and all(c.output is None for c in recurrent.cells)


def test_per_step_rows_without_shapes_and_through_to_dict():
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    model = lstm.LSTM(4, 6, 1, batch_first=False)
    s = summary(model, print_table=False)  # never ran: no shapes, no step run either
    assert all(r.output_shape is None for r in s.rows) and "per time step" not in s.table()
    s = summary(model, (7, 2, 4), print_table=False)  # (T, batch, features)
    rows = {r.path: r for r in s.rows}
    assert rows["layer1.x"].output_shape == (2, 4) and rows["layer1.next_c"].per_step
    again = Summary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again.table() == s.table()


def test_rnn_cell_rows_show_per_step_shapes(device):
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    model = lstm.RNN(4, 6, 2, nonlinearity="relu").to(device)
    s = summary(model, (2, 3, 4), print_table=False)
    rows = {r.path: r for r in s.rows}
    assert rows["layer1.x"].output_shape == (2, 4) and rows["layer2.x"].output_shape == (2, 6)
    assert rows["layer1.next_h"].output_shape == (2, 6) and rows["layer1.next_h"].per_step
    assert s.total_params == model.num_parameters()


def test_bidirectional_gru_and_recurrence_rows_show_per_step_shapes():
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    gru = lstm.GRU(4, 3, 2, bidirectional=True)
    s = summary(gru, (2, 5, 4), print_table=False)
    rows = {r.path: r for r in s.rows}
    assert rows["layer1_reverse.x"].output_shape == (2, 4)
    assert rows["layer2.x"].output_shape == (2, 6)  # both directions of layer 1
    assert rows["layer2_reverse.next_h"].per_step
    assert rows["layer2_reverse.next_h"].output_shape == (2, 3)
    assert s.total_params == gru.num_parameters()

    x, h = nn.Identity()(), nn.Identity()()
    h2 = nn.Tanh()(nn.CAddTable()([nn.Linear(4, 3)(x), nn.Linear(3, 3)(h)])).annotate(name="h2")
    rec = lstm.Recurrence(nn.gModule([x, h], [h2]), [3])
    assert summary(rec, print_table=False).rows[0].output_shape is None  # never ran
    s = summary(rec, (2, 5, 4), print_table=False)
    rows = {r.path: r for r in s.rows}
    assert rows["cell.h2"].output_shape == (2, 3) and rows["cell.h2"].per_step


class _StepWrapper(nn.Module):
    """Not an lstm module: a cell it says it runs over time, through the hook alone."""

    def __init__(self, cell, hook=True):
        super().__init__()
        self.cells, self.cell, self.hook, self.batch_first = [cell], cell, hook, True

    def children(self):
        return [self.cell]

    def step_inputs(self, batch):  # the old duck-typed attributes: no longer read
        return [[numpy.zeros((batch, 2)), numpy.zeros((batch, 3))]]

    def summary_steps(self):
        if not self.hook:
            return super().summary_steps()
        return [(self.cell, [numpy.zeros((4, 2)), numpy.zeros((4, 3))])]

    def update_output(self, input):
        self.output = input
        return self.output


@pytest.mark.parametrize("hook", [True, False])
def test_step_cells_come_from_the_summary_steps_hook_only(hook):
    x, h = nn.Identity()(), nn.Identity()()
    out = nn.Tanh()(nn.CAddTable()([nn.Linear(2, 3)(x), nn.Linear(3, 3)(h)])).annotate(name="out")
    wrapper = _StepWrapper(nn.gModule([x, h], [out]), hook=hook)
    wrapper.forward(numpy.zeros((4, 1)))
    rows = {r.path: r for r in summary(wrapper, print_table=False).rows}
    assert rows["1.out"].per_step == hook
    assert rows["1.out"].output_shape == ((4, 3) if hook else None)
    assert wrapper.cell.output is None  # cleared after the rows were made
