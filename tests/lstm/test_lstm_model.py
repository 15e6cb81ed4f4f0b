"""The stacked models over whole sequences: shapes, BPTT by finite differences, clones shared
and reused, the Module protocol (parameters, get_parameters, to, clone, clear_state, modes)."""
from __future__ import annotations

import numpy
import pytest

from nngraph_py import backend, gradcheck, nn
from nngraph_py.errors import GraphError, InputError, ShapeError

from lstm import LSTM, RNN


def dev(device: str, *arrays: numpy.ndarray):
    moved = [backend.to_device(a, device) for a in arrays]
    return moved[0] if len(moved) == 1 else moved


def host(x) -> numpy.ndarray:
    return backend.to_numpy(x).copy()


class SeededLSTM(LSTM):
    """Draws the same dropout masks at every forward, so finite differences apply."""

    def update_output(self, input):
        backend.manual_seed(7)
        return super().update_output(input)


# ------------------------------------------------------------------------------------------------
# Shapes and the forward interface
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [True, False])
def test_shapes_and_return_values(rng: numpy.random.Generator, batch_first: bool) -> None:
    model = LSTM(3, 5, 2, batch_first=batch_first)
    x = rng.standard_normal((2, 4, 3) if batch_first else (4, 2, 3)).astype("float32")
    outputs, (h_n, c_n) = model.forward(x)
    assert outputs.shape == ((2, 4, 5) if batch_first else (4, 2, 5))
    assert h_n.shape == c_n.shape == (2, 2, 5)
    assert outputs.dtype == numpy.float32
    assert isinstance(model.output, list) and model.output[0] is outputs
    # The last step of the outputs is the top layer's h_n.
    last = outputs[:, -1] if batch_first else outputs[-1]
    numpy.testing.assert_array_equal(last, h_n[-1])
    # state=None is zeros; the list form and state= agree.
    zeros = model.zero_state(2)
    assert [z.shape for z in zeros] == [(2, 2, 5), (2, 2, 5)]
    again, (h2, c2) = model.forward(x, zeros)
    numpy.testing.assert_array_equal(again, outputs)
    numpy.testing.assert_array_equal(c2, c_n)
    as_list = model.forward([x, zeros[0], zeros[1]])
    numpy.testing.assert_array_equal(as_list[1][1], c_n)


def test_rnn_shapes_and_state() -> None:
    model = RNN(2, 3, 2)
    outputs, h_n = model.forward(numpy.ones((4, 6, 2), "float32"))
    assert outputs.shape == (4, 6, 3) and h_n.shape == (2, 4, 3)
    assert model.zero_state(4).shape == (2, 4, 3)
    again, h2 = model.forward(numpy.ones((4, 6, 2), "float32"), h_n)
    assert again.shape == (4, 6, 3) and not numpy.allclose(h2, h_n)


# ------------------------------------------------------------------------------------------------
# BPTT against finite differences
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first", [True, False])
def test_two_layer_lstm_gradcheck_with_state(device: str, rng: numpy.random.Generator,
                                             batch_first: bool) -> None:
    model = LSTM(2, 3, 2, batch_first=batch_first).double().to(device)
    x = rng.standard_normal((2, 3, 2) if batch_first else (3, 2, 2))
    h0, c0 = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3))
    result = gradcheck(model, dev(device, x, h0, c0))
    assert result.ok
    assert {"input[0]", "input[1]", "input[2]", "layer2.h2h_output.weight"} <= set(result.errors)


def test_lstm_gradcheck_without_state(device: str, rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2).double().to(device)
    assert gradcheck(model, dev(device, rng.standard_normal((2, 3, 2)))).ok


@pytest.mark.parametrize("optimize", [True, False])
def test_lstm_gradcheck_with_dropout_masks(rng: numpy.random.Generator, optimize: bool) -> None:
    model = SeededLSTM(2, 3, 3, dropout=0.5, optimize=optimize).double()
    x = rng.standard_normal((2, 3, 2))
    assert gradcheck(model, x).ok
    model.forward(x)
    masks = model._masks
    # Between layers, not after the last.
    assert masks is not None and len([m for m in masks if m is not None]) == 2


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_two_layer_rnn_gradcheck(device: str, rng: numpy.random.Generator,
                                 nonlinearity: str) -> None:
    model = RNN(2, 3, 2, nonlinearity=nonlinearity).double().to(device)
    x, h0 = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 2, 3))
    assert gradcheck(model, dev(device, x, h0)).ok


def test_grad_output_forms_agree(rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2).double()
    x = rng.standard_normal((2, 4, 2))
    g = rng.standard_normal((2, 4, 3))
    zeros = numpy.zeros((2, 2, 3))
    results = []
    for grad_output in (g, [g, None, None], [g, [None, None]], (g, (zeros, zeros))):
        model.zero_grad_parameters()
        model.forward(x)
        results.append((host(model.backward(x, grad_output)),
                        host(model.get_parameters()[1])))
    for gx, gp in results[1:]:
        numpy.testing.assert_array_equal(gx, results[0][0])
        numpy.testing.assert_array_equal(gp, results[0][1])
    # Only a gradient on c_n: everything still flows.
    model.forward(x)
    gx = model.backward(x, [None, None, numpy.ones((2, 2, 3))])
    assert numpy.abs(gx).sum() > 0


# ------------------------------------------------------------------------------------------------
# Clones: shared, counted once, made lazily and reused
# ------------------------------------------------------------------------------------------------
def test_parameters_are_shared_by_clones_and_counted_once(rng: numpy.random.Generator) -> None:
    model = LSTM(3, 4, 2, optimize=False)  # clones are the graph path
    per_cell = [4 * (3 * 4 + 4) + 4 * (4 * 4 + 4), 4 * (4 * 4 + 4) + 4 * (4 * 4 + 4)]
    before = model.num_parameters()
    assert before == sum(per_cell)
    model.forward(rng.standard_normal((2, 6, 3)).astype("float32"))
    assert model.num_clones() == 6
    assert model.num_parameters() == before
    params, grads = model.parameters()
    assert len(params) == len(grads) == 2 * 16
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(set(names)) == 32
    assert names[:2] == ["layer1.i2h_input.weight", "layer1.i2h_input.bias"]
    assert "layer2.h2h_forget.weight" in names
    proto = dict(model.cells[0].named_children())["i2h_forget"]
    for clone in model.executors[0].clones:
        lin = dict(clone.named_children())["i2h_forget"]
        assert lin is not proto
        assert lin.weight is proto.weight and lin.grad_weight is proto.grad_weight


def test_variable_length_reuses_clones(rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2, optimize=False).double()
    model.forward(rng.standard_normal((2, 5, 2)))
    first = [list(e.clones) for e in model.executors]
    assert model.num_clones() == 5
    x3 = rng.standard_normal((2, 3, 2))
    out3, _ = model.forward(x3)
    assert model.num_clones() == 5
    assert all(a is b for e, old in zip(model.executors, first) for a, b in zip(e.clones, old))
    model.backward(x3, numpy.ones_like(out3))
    model.forward(rng.standard_normal((1, 7, 2)))          # longer, and another batch size
    assert model.num_clones() == 7
    assert all(model.executors[k].clones[:5] == first[k] for k in range(2))
    # A fresh model on the short sequence computes the same thing.
    fresh = model.clone()
    numpy.testing.assert_array_equal(fresh.forward(x3)[0], out3)


def test_get_parameters_views_reach_the_clones(rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2, optimize=False).double()
    x = rng.standard_normal((2, 4, 2))
    model.forward(x)                               # clones exist before the flattening
    flat_p, flat_g = model.get_parameters()
    assert flat_p.shape == (model.num_parameters(),)
    out, _ = model.forward(x)
    model.backward(x, numpy.ones_like(out))
    assert numpy.abs(flat_g).sum() > 0
    numpy.testing.assert_array_equal(
        flat_g, numpy.concatenate([g.ravel() for g in model.parameters()[1]]))
    assert len(model.executors[1].clones) == 4
    for clone in model.executors[1].clones:
        lin = dict(clone.named_children())["h2h_cell"]
        assert numpy.shares_memory(lin.weight, flat_p) and numpy.shares_memory(lin.grad_weight, flat_g)
    flat_p[...] = 0                                # every gate 1/2, candidate 0: outputs are 0
    out, _ = model.forward(x)
    numpy.testing.assert_array_equal(out, numpy.zeros_like(out))
    try:
        from nngraph_py.optim import clip_grad_norm
    except ImportError:  # pragma: no cover - the optim package is optional here
        return
    norm = clip_grad_norm(flat_g, 1e-3)
    assert norm > 1e-3 and numpy.linalg.norm(flat_g) == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("optimize", [True, False])
def test_conversions_after_clones_exist(rng: numpy.random.Generator, optimize: bool) -> None:
    model = LSTM(2, 3, 2, optimize=optimize)
    x = rng.standard_normal((2, 4, 2))
    out32, _ = model.forward(x.astype("float32"))
    model.double()
    out64, _ = model.forward(x)
    assert out64.dtype == numpy.float64
    clones = getattr(model.executors[0], "clones", [])
    assert len(clones) == (0 if optimize else 4)
    assert all(dict(c.named_children())["i2h_input"].weight.dtype == numpy.float64
               for c in clones)
    numpy.testing.assert_allclose(out64, out32, rtol=1e-5, atol=1e-6)
    model.to("strict")
    out_strict, _ = model.forward(backend.to_device(x, "strict"))
    assert backend.device_of(out_strict) == "strict"
    numpy.testing.assert_allclose(backend.to_numpy(out_strict), out64, rtol=1e-12)
    model.backward(backend.to_device(x, "strict"), out_strict)
    model.to("cpu")
    numpy.testing.assert_allclose(model.forward(x)[0], out64, rtol=1e-12)


def test_clone_copies_or_shares(rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2).double()
    x = rng.standard_normal((2, 4, 2))
    out, _ = model.forward(x)
    copy = model.clone()
    assert copy.num_clones() == 0 and copy.output is None
    numpy.testing.assert_array_equal(copy.forward(x)[0], out)
    copy.reset()
    assert not numpy.allclose(copy.forward(x)[0], out)
    numpy.testing.assert_array_equal(model.forward(x)[0], out)
    tied = model.clone("weight", "bias", "grad_weight", "grad_bias")
    model.zero_grad_parameters()
    tied.forward(x)
    tied.backward(x, numpy.ones((2, 4, 3)))
    assert numpy.abs(model.get_parameters()[1]).sum() > 0


def test_clear_state_drops_caches(rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2, optimize=False).double()
    x = rng.standard_normal((2, 4, 2))
    out, _ = model.forward(x)
    model.backward(x, numpy.ones_like(out))
    model.clear_state()
    assert model.output is None and model.grad_input is None
    assert all(e._inputs is None for e in model.executors)
    assert all(c.output is None and c._vals is None for e in model.executors for c in e.clones)
    assert model.num_clones() == 4                  # the clones stay, empty
    with pytest.raises(GraphError, match="backward called before forward"):
        model.backward(x, numpy.ones_like(out))
    numpy.testing.assert_array_equal(model.forward(x)[0], out)


@pytest.mark.parametrize("optimize", [True, False])
def test_dropout_between_layers_and_modes(rng: numpy.random.Generator, optimize: bool) -> None:
    model = LSTM(2, 6, 2, dropout=0.5, optimize=optimize).double()
    x = rng.standard_normal((3, 5, 2))
    backend.manual_seed(1)
    train_out, (train_h, _) = model.forward(x)
    model.evaluate()
    eval_out, (eval_h, _) = model.forward(x)
    assert not numpy.allclose(train_out, eval_out)
    # h_n is taken before dropout (evaluate mode runs the inference kernels: other rounding)
    numpy.testing.assert_allclose(train_h[0], eval_h[0], rtol=1e-12, atol=1e-14)
    assert model._masks is None
    numpy.testing.assert_array_equal(model.forward(x)[0], eval_out)
    model.training()
    assert not numpy.allclose(model.forward(x)[0], eval_out)
    # evaluate() on an enclosing container reaches the LSTM and its clones too.
    seq = nn.Sequential().add(model) if hasattr(nn, "Sequential") else None
    if seq is not None:
        seq.evaluate()
        numpy.testing.assert_array_equal(model.forward(x)[0], eval_out)
        assert all(not c.train for c in getattr(model.executors[0], "clones", []))
        assert all(not m.train for c in model.cells for m in c.modules())


def test_dropout_with_one_layer_warns_and_does_nothing(rng: numpy.random.Generator) -> None:
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        model = LSTM(2, 3, 1, dropout=0.3).double()
    x = rng.standard_normal((2, 4, 2))
    train_out, _ = model.forward(x)
    numpy.testing.assert_allclose(model.evaluate().forward(x)[0], train_out, rtol=1e-12,
                                  atol=1e-14)  # the inference kernels round differently


def test_as_a_graph_node(rng: numpy.random.Generator) -> None:
    x_node = nn.Identity()()
    seq, h_n, c_n = LSTM(2, 3, 2)(x_node).split(3)
    head = nn.Linear(3, 1)(nn.SelectTable(-1)(nn.SplitTable(0)(h_n)))   # top layer's h_n
    graph = nn.gModule([x_node], [seq, head, c_n]).double()
    x = rng.standard_normal((2, 4, 2))
    out_seq, out_head, out_c = graph.forward(x)
    assert out_seq.shape == (2, 4, 3) and out_head.shape == (2, 1) and out_c.shape == (2, 2, 3)
    names = [n for n, _ in graph.named_parameters()]
    assert "LSTM1.layer1.i2h_forget.weight" in names
    assert gradcheck(graph, x).ok


# ------------------------------------------------------------------------------------------------
# Errors and printing
# ------------------------------------------------------------------------------------------------
def test_errors_name_expected_and_actual() -> None:
    model = LSTM(3, 4, 2)
    x = numpy.zeros((2, 5, 3), "float32")
    with pytest.raises(ShapeError, match=r"expected x of rank 3 \(batch, T, 3\) \(batch_first=True\), "
                                         r"got shape \(5, 3\); for one sequence add a batch axis"):
        model.forward(numpy.zeros((5, 3), "float32"))
    with pytest.raises(ShapeError, match=r"expected x with 3 features .* got shape \(2, 5, 7\)"):
        model.forward(numpy.zeros((2, 5, 7), "float32"))
    with pytest.raises(ShapeError, match=r"\(T, batch, 3\) \(batch_first=False\)"):
        LSTM(3, 4, batch_first=False).forward(numpy.zeros((5, 3), "float32"))
    with pytest.raises(ShapeError, match=r"expected c0 of shape \(num_layers, batch, hidden_size\) = "
                                         r"\(2, 2, 4\), got \(1, 2, 4\)"):
        model.forward(x, (numpy.zeros((2, 2, 4), "float32"), numpy.zeros((1, 2, 4), "float32")))
    with pytest.raises(ShapeError, match=r"expected h0 .* got \(2, 3, 4\); its batch size 3 does "
                                         r"not match the input's 2"):
        model.forward(x, (numpy.zeros((2, 3, 4), "float32"), numpy.zeros((2, 2, 4), "float32")))
    with pytest.raises(InputError, match=r"state must be the pair \(h0, c0\)"):
        model.forward(x, numpy.zeros((2, 2, 4), "float32"))
    with pytest.raises(InputError, match=r"expected x or the list \[x, h0, c0\], got a list of 2"):
        model.forward([x, numpy.zeros((2, 2, 4), "float32")])
    with pytest.raises(InputError, match="expected x or the list"):
        model.forward([x, numpy.zeros((2, 2, 4), "float32")])
    with pytest.raises(InputError, match="given twice"):
        model.forward([x, None, None], model.zero_state(2))
    with pytest.raises(InputError, match=r"expected x to be an array"):
        model.forward([None, None, None])
    with pytest.raises(ShapeError, match="no time steps"):
        model.forward(numpy.zeros((2, 0, 3), "float32"))
    with pytest.raises(ShapeError, match=r"expected h0 .* \(1, 2, 4\), got \(2, 2, 4\)"):
        RNN(3, 4).forward(x, numpy.zeros((2, 2, 4), "float32"))


def test_backward_errors() -> None:
    model = LSTM(3, 4, 2)
    x = numpy.zeros((2, 5, 3), "float32")
    with pytest.raises(GraphError, match="backward called before forward"):
        model.backward(x, numpy.zeros((2, 5, 4), "float32"))
    model.forward(x)
    with pytest.raises(ShapeError, match=r"expected grad_outputs of shape \(2, 5, 4\) \(as the "
                                         r"output\), got \(2, 4, 5\)"):
        model.backward(x, numpy.zeros((2, 4, 5), "float32"))
    with pytest.raises(ShapeError, match=r"expected grad_c_n of shape \(2, 2, 4\)"):
        model.backward(x, [None, None, numpy.zeros((2, 4), "float32")])
    with pytest.raises(InputError, match=r"grad_output must be an array .* or the list "
                                         r"\[grad_outputs, grad_h_n, grad_c_n\]"):
        model.backward(x, [None, None])


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="LSTM: hidden_size must be a positive integer, got 0"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="LSTM: num_layers must be a positive integer, got 1.5"):
        LSTM(3, 4, 1.5)
    with pytest.raises(ValueError, match=r"dropout must satisfy 0 <= dropout < 1"):
        LSTM(3, 4, 2, dropout=1.0)
    with pytest.raises(ValueError, match=r"nonlinearity must be one of \['relu', 'tanh'\]"):
        RNN(3, 4, nonlinearity="sigmoid")


def test_repr() -> None:
    assert repr(LSTM(10, 20, 2)) == "nn.LSTM(10 -> 20, layers=2)"
    assert repr(LSTM(10, 20)) == "nn.LSTM(10 -> 20, layers=1)"
    assert (repr(LSTM(10, 20, 3, dropout=0.25, batch_first=False))
            == "nn.LSTM(10 -> 20, layers=3, dropout=0.25, batch_first=False)")
    assert repr(RNN(1, 50, 4, nonlinearity="relu")) == "nn.RNN(1 -> 50, layers=4, nonlinearity=relu)"
    assert repr(RNN(1, 50)) == "nn.RNN(1 -> 50, layers=1)"


def test_step_inputs_are_one_step_of_each_layer():
    lstm = LSTM(5, 7, num_layers=3).double()
    inputs = lstm.step_inputs(4)
    assert [[a.shape for a in layer] for layer in inputs] == [
        [(4, 5), (4, 7), (4, 7)], [(4, 7), (4, 7), (4, 7)], [(4, 7), (4, 7), (4, 7)]]
    assert all(a.dtype == numpy.float64 and not a.any() for layer in inputs for a in layer)
    for cell, step_input in zip(lstm.cells, inputs):  # each cell accepts its step's input
        next_c, next_h = cell.forward(step_input)
        assert next_c.shape == next_h.shape == (4, 7)
    rnn_inputs = RNN(3, 2).step_inputs(1)
    assert [[a.shape for a in layer] for layer in rnn_inputs] == [[(1, 3), (1, 2)]]
