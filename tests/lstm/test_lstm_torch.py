"""Our LSTM / RNN against ``torch.nn.LSTM`` / ``torch.nn.RNN`` with the same weights (float64):
outputs, final states and every gradient (input, h0, c0, each weight) to 1e-6."""
from __future__ import annotations

import numpy
import pytest

from nngraph_py.errors import ShapeError

from lstm import LSTM, RNN, load_torch_state_dict, to_torch_state_dict, torch_keys

torch = pytest.importorskip("torch", reason="PyTorch is the reference (pip install torch==2.13.0)")

TOL = dict(rtol=1e-6, atol=1e-6)


def _torch_model(model, nonlinearity: str = "tanh"):
    if isinstance(model, LSTM):
        ref = torch.nn.LSTM(model.input_size, model.hidden_size, model.num_layers,
                            batch_first=model.batch_first, dtype=torch.float64)
    else:
        ref = torch.nn.RNN(model.input_size, model.hidden_size, model.num_layers,
                           nonlinearity=nonlinearity, batch_first=model.batch_first,
                           dtype=torch.float64)
    return ref


def _compare(model, ref, rng: numpy.random.Generator, with_state: bool) -> None:
    n_states = len(model.carried)
    batch, steps = 3, 4
    x = rng.standard_normal((batch, steps, model.input_size) if model.batch_first
                            else (steps, batch, model.input_size))
    states = [rng.standard_normal((model.num_layers, batch, model.hidden_size))
              for _ in range(n_states)] if with_state else []
    given = [x] + states if with_state else x

    outputs = model.forward(given)
    ours = [outputs[0]] + (list(outputs[1]) if n_states == 2 else [outputs[1]])
    weights = [rng.standard_normal(o.shape) for o in ours]
    model.zero_grad_parameters()
    grad_input = model.backward(given, weights)

    x_t = torch.tensor(x, requires_grad=True)
    states_t = [torch.tensor(s, requires_grad=True) for s in states]
    if with_state:
        out_t, final_t = ref(x_t, tuple(states_t) if n_states == 2 else states_t[0])
    else:
        out_t, final_t = ref(x_t)
    theirs = [out_t] + (list(final_t) if n_states == 2 else [final_t])
    loss = sum((t * torch.from_numpy(w)).sum() for t, w in zip(theirs, weights))
    loss.backward()

    for name, a, b in zip(["outputs", "h_n", "c_n"], ours, theirs):
        numpy.testing.assert_allclose(a, b.detach().numpy(), **TOL, err_msg=name)
    grads = grad_input if with_state else [grad_input]
    numpy.testing.assert_allclose(grads[0], x_t.grad.numpy(), **TOL, err_msg="grad x")
    for name, g, s in zip(["grad h0", "grad c0"], grads[1:], states_t):
        numpy.testing.assert_allclose(g, s.grad.numpy(), **TOL, err_msg=name)
    our_param_grads = to_torch_state_dict(model, gradients=True)
    assert list(our_param_grads) == [name for name, _ in ref.named_parameters()]
    for name, p in ref.named_parameters():
        numpy.testing.assert_allclose(our_param_grads[name], p.grad.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize("optimize", [True, False], ids=["fused", "graph"])
@pytest.mark.parametrize("with_state", [True, False], ids=["state", "zeros"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
def test_lstm_matches_torch(rng: numpy.random.Generator, batch_first: bool, with_state: bool,
                            optimize: bool) -> None:
    model = LSTM(3, 5, 2, batch_first=batch_first, optimize=optimize).double()
    ref = _torch_model(model)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(model).items()})
    _compare(model, ref, rng, with_state)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
def test_rnn_matches_torch(rng: numpy.random.Generator, batch_first: bool, nonlinearity: str) -> None:
    model = RNN(3, 5, 2, batch_first=batch_first, nonlinearity=nonlinearity).double()
    ref = _torch_model(model, nonlinearity)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(model).items()})
    _compare(model, ref, rng, with_state=True)


def test_load_torch_weights_into_our_model(rng: numpy.random.Generator) -> None:
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 4, 3, batch_first=True, dtype=torch.float64)
    model = LSTM(3, 4, 3).double()
    model.forward(rng.standard_normal((2, 5, 3)))          # clones exist: loading is in place
    load_torch_state_dict(model, {k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((2, 5, 3))
    out, (h_n, c_n) = model.forward(x)
    out_t, (h_t, c_t) = ref(torch.from_numpy(x))
    numpy.testing.assert_allclose(out, out_t.detach().numpy(), **TOL)
    numpy.testing.assert_allclose(c_n, c_t.detach().numpy(), **TOL)
    # Round trip: our export is the torch state dict.
    for key, value in to_torch_state_dict(model).items():
        numpy.testing.assert_array_equal(value, ref.state_dict()[key].numpy())


def test_state_dict_layout_and_errors() -> None:
    model = LSTM(3, 4, 2)
    assert torch_keys(model) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                 "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    sd = to_torch_state_dict(model)
    assert sd["weight_ih_l0"].shape == (16, 3) and sd["bias_hh_l1"].shape == (16,)
    assert sd["weight_ih_l0"].dtype == numpy.float32
    forget = dict(model.cells[0].named_children())["i2h_forget"].weight
    numpy.testing.assert_array_equal(sd["weight_ih_l0"][4:8], forget)   # gate order i, f, g, o
    assert torch_keys(RNN(3, 4)) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]

    missing = dict(sd)
    del missing["bias_hh_l1"]
    with pytest.raises(KeyError, match=r"missing keys \['bias_hh_l1'\]"):
        load_torch_state_dict(model, missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['weight_ih_l2'\]"):
        load_torch_state_dict(model, {**sd, "weight_ih_l2": sd["weight_ih_l1"]})
    load_torch_state_dict(model, {**sd, "extra": sd["bias_hh_l1"]}, strict=False)
    with pytest.raises(ShapeError, match=r"weight_hh_l0: expected shape \(16, 4\) .* got \(12, 4\)"):
        load_torch_state_dict(model, {**sd, "weight_hh_l0": numpy.zeros((12, 4))})
