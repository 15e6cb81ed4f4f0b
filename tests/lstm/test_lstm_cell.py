"""The recipe cells: structure, names, the equations, and finite-difference gradients."""
from __future__ import annotations

import numpy
import pytest

from nngraph_py import backend, gradcheck, nn
from nngraph_py.errors import InputError

from lstm import LSTM_GATES, lstm_cell, make_lstm_cell, make_rnn_cell, rnn_cell

LINEARS = [f"{side}_{gate}" for gate in ("input", "forget", "output", "cell") for side in ("i2h", "h2h")]
GATES = ["input_gate", "forget_gate", "output_gate", "cell_candidate"]
SUMS = ["input_sum", "forget_sum", "output_sum", "cell_sum"]
PRODUCTS = ["forget_c", "input_g", "next_c", "tanh_c", "next_h"]


def _sigmoid(z: numpy.ndarray) -> numpy.ndarray:
    return 1.0 / (1.0 + numpy.exp(-z))


def test_issue_example_builds_the_recipe() -> None:
    x, prev_c, prev_h = nn.Identity()(), nn.Identity()(), nn.Identity()()
    next_c, next_h = lstm_cell(x, prev_c, prev_h, input_size=400, rnn_size=400)
    cell = nn.gModule([x, prev_c, prev_h], [next_c, next_h])
    names = dict(cell.named_parameters())
    assert "i2h_forget.weight" in names and names["i2h_forget.weight"].shape == (400, 400)
    assert cell.num_parameters() == 4 * (400 * 400 + 400) + 4 * (400 * 400 + 400)


def test_recipe_structure_and_names() -> None:
    cell = make_lstm_cell(3, 5)
    linears = {name: m for name, m in cell.named_children() if isinstance(m, nn.Linear)}
    assert sorted(linears) == sorted(LINEARS)
    for name, lin in linears.items():
        assert (lin.in_features, lin.out_features) == ((3, 5) if name.startswith("i2h") else (5, 5))
    # Every node carries a meaningful annotation: none fell back to "<ModuleType><k>".
    assert all(node.name is not None for node in cell.nodes)
    assert sorted(node.name for node in cell.nodes) == sorted(
        ["x", "prev_c", "prev_h"] + LINEARS + SUMS + GATES + PRODUCTS)
    kinds = {node.name: type(node.module).__name__ for node in cell.nodes}
    assert [kinds[g] for g in GATES] == ["Sigmoid", "Sigmoid", "Sigmoid", "Tanh"]
    assert {kinds[s] for s in SUMS} == {"CAddTable"}
    assert [kinds[p] for p in PRODUCTS] == ["CMulTable", "CMulTable", "CAddTable", "Tanh", "CMulTable"]
    assert cell.n_inputs == 3 and cell.n_outputs == 2
    assert cell.num_parameters() == 4 * (3 * 5 + 5) + 4 * (5 * 5 + 5)
    assert LSTM_GATES == ("input", "forget", "output", "cell")


def test_prefix_lets_two_cells_share_a_graph() -> None:
    x, c1, h1, c2, h2 = (nn.Identity()() for _ in range(5))
    nc1, nh1 = lstm_cell(x, c1, h1, 3, 4, prefix="l1_")
    nc2, nh2 = lstm_cell(nh1, c2, h2, 4, 4, prefix="l2_")
    g = nn.gModule([x, c1, h1, c2, h2], [nc1, nh1, nc2, nh2])
    names = [n for n, _ in g.named_parameters()]
    assert "l1_i2h_forget.weight" in names and "l2_h2h_cell.bias" in names
    assert len(names) == 32


def test_cell_computes_the_lstm_equations(rng: numpy.random.Generator) -> None:
    cell = make_lstm_cell(3, 4).double()
    lin = {name: m for name, m in cell.named_children() if isinstance(m, nn.Linear)}
    x, c, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))

    def pre(gate: str) -> numpy.ndarray:
        i2h, h2h = lin[f"i2h_{gate}"], lin[f"h2h_{gate}"]
        return x @ i2h.weight.T + i2h.bias + h @ h2h.weight.T + h2h.bias

    i, f, o, g = _sigmoid(pre("input")), _sigmoid(pre("forget")), _sigmoid(pre("output")), numpy.tanh(pre("cell"))
    want_c = f * c + i * g
    want_h = o * numpy.tanh(want_c)
    next_c, next_h = cell.forward([x, c, h])
    numpy.testing.assert_allclose(next_c, want_c, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(next_h, want_h, rtol=1e-12, atol=1e-12)


def test_lstm_cell_gradcheck(device: str, rng: numpy.random.Generator) -> None:
    cell = make_lstm_cell(3, 4).double().to(device)
    inputs = [backend.to_device(rng.standard_normal(s), device) for s in ((2, 3), (2, 4), (2, 4))]
    result = gradcheck(cell, inputs)
    assert result.ok and "i2h_forget.weight" in result.errors and "input[2]" in result.errors


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_cell_structure_and_gradcheck(device: str, rng: numpy.random.Generator,
                                          activation: str) -> None:
    cell = make_rnn_cell(3, 4, activation).double().to(device)
    assert sorted(node.name for node in cell.nodes) == ["h2h", "h_sum", "i2h", "next_h", "prev_h", "x"]
    kind = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    assert isinstance(dict(cell.named_children())["next_h"], kind)
    assert cell.num_parameters() == (3 * 4 + 4) + (4 * 4 + 4)
    inputs = [backend.to_device(rng.standard_normal(s), device) for s in ((2, 3), (2, 4))]
    assert gradcheck(cell, inputs).ok


def test_rnn_cell_computes_the_elman_step(rng: numpy.random.Generator) -> None:
    x_node, h_node = nn.Identity()(), nn.Identity()()
    cell = nn.gModule([x_node, h_node], [rnn_cell(x_node, h_node, 3, 4)]).double()
    lin = dict(cell.named_children())
    x, h = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    want = numpy.tanh(x @ lin["i2h"].weight.T + lin["i2h"].bias + h @ lin["h2h"].weight.T + lin["h2h"].bias)
    numpy.testing.assert_allclose(cell.forward([x, h]), want, rtol=1e-12, atol=1e-12)


def test_cell_builders_reject_bad_arguments() -> None:
    x, c, h = nn.Identity()(), nn.Identity()(), nn.Identity()()
    with pytest.raises(InputError, match=r"lstm_cell: prev_c must be a graph node, got Identity "
                                         r"\(did you forget its second call"):
        lstm_cell(x, nn.Identity(), h, 3, 4)
    with pytest.raises(InputError, match="rnn_cell: x must be a graph node, got ndarray"):
        rnn_cell(numpy.zeros(3), h, 3, 4)
    with pytest.raises(ValueError, match="rnn_size must be a positive integer, got 0"):
        lstm_cell(x, c, h, 3, 0)
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'tanh'\], got 'sigmoid'"):
        rnn_cell(x, h, 3, 4, activation="sigmoid")
