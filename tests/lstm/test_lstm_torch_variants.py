"""GRU, bidirectional layers and lengths against PyTorch in float64 (``nn.GRU``, ``nn.LSTM`` and
``nn.RNN`` with ``bidirectional=True``, ``pack_padded_sequence``): outputs, final states and every
gradient (input, initial states, each weight) over random sizes, on the fused path and node by
node (``optimize=False``)."""
from __future__ import annotations

import numpy
import pytest

from lstm import GRU, LSTM, RNN, load_torch_state_dict, to_torch_state_dict, torch_keys

torch = pytest.importorskip("torch", reason="PyTorch is the reference (pip install torch==2.13.0)")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

TOL = dict(rtol=1e-7, atol=1e-9)
KINDS = {"lstm": (LSTM, torch.nn.LSTM), "gru": (GRU, torch.nn.GRU), "rnn": (RNN, torch.nn.RNN)}


def _build(kind: str, rng: numpy.random.Generator, bidirectional: bool, optimize: bool,
           batch_first: bool):
    ours_cls, ref_cls = KINDS[kind]
    input_size, hidden, layers = (int(v) for v in rng.integers(1, 5, size=3))
    layers = min(layers, 3)
    kwargs = dict(batch_first=batch_first, bidirectional=bidirectional)
    model = ours_cls(input_size, hidden, layers, optimize=optimize, **kwargs).double()
    ref = ref_cls(input_size, hidden, layers, dtype=torch.float64, **kwargs)
    # PyTorch's weights into ours (the direction of the mapping tested here).
    load_torch_state_dict(model, {k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return model, ref


def compare(kind: str, rng: numpy.random.Generator, bidirectional: bool, optimize: bool,
            with_state: bool, with_lengths: bool, batch_first: bool = True) -> None:
    model, ref = _build(kind, rng, bidirectional, optimize, batch_first)
    n_states = len(model.carried)
    D = 2 if bidirectional else 1
    batch, steps = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    x = rng.standard_normal((batch, steps, model.input_size) if batch_first
                            else (steps, batch, model.input_size))
    lengths = rng.integers(1, steps + 1, size=batch) if with_lengths else None
    states = [rng.standard_normal((model.num_layers * D, batch, model.hidden_size))
              for _ in range(n_states)] if with_state else []
    given = [x] + states if with_state else x

    outputs = model.forward(given, lengths=lengths)
    assert model.executors[0].kind == (("compiled" if kind == "rnn" else f"recipe-{kind}")
                                       if optimize else "unrolled")  # the path under test ran
    ours = [outputs[0]] + (list(outputs[1]) if n_states == 2 else [outputs[1]])
    weights = [rng.standard_normal(o.shape) for o in ours]
    model.zero_grad_parameters()
    grad_input = model.backward(given, weights)

    x_t = torch.tensor(x, requires_grad=True)
    states_t = [torch.tensor(s, requires_grad=True) for s in states]
    feed = x_t
    if with_lengths:
        feed = pack_padded_sequence(x_t, torch.tensor(lengths), batch_first=batch_first,
                                    enforce_sorted=False)
    if with_state:
        out_t, final_t = ref(feed, tuple(states_t) if n_states == 2 else states_t[0])
    else:
        out_t, final_t = ref(feed)
    if with_lengths:
        out_t, _ = pad_packed_sequence(out_t, batch_first=batch_first, total_length=steps)
    theirs = [out_t] + (list(final_t) if n_states == 2 else [final_t])
    loss = sum((t * torch.from_numpy(w)).sum() for t, w in zip(theirs, weights))
    loss.backward()

    what = f"{kind} {model!r} batch={batch} T={steps} lengths={lengths}"
    for name, a, b in zip(["outputs", "h_n", "c_n"], ours, theirs):
        numpy.testing.assert_allclose(a, b.detach().numpy(), **TOL, err_msg=f"{name}: {what}")
    grads = grad_input if with_state else [grad_input]
    numpy.testing.assert_allclose(grads[0], x_t.grad.numpy(), **TOL, err_msg=f"grad x: {what}")
    for name, g, s in zip(["grad h0", "grad c0"], grads[1:], states_t):
        numpy.testing.assert_allclose(g, s.grad.numpy(), **TOL, err_msg=f"{name}: {what}")
    our_param_grads = to_torch_state_dict(model, gradients=True)
    assert list(our_param_grads) == [name for name, _ in ref.named_parameters()]
    for name, p in ref.named_parameters():
        numpy.testing.assert_allclose(our_param_grads[name], p.grad.numpy(), **TOL,
                                      err_msg=f"grad {name}: {what}")


@pytest.mark.parametrize("optimize", [True, False], ids=["fused", "node_by_node"])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_against_pytorch_over_random_sizes(kind: str, bidirectional: bool, optimize: bool) -> None:
    rng = numpy.random.default_rng([7, len(kind), bidirectional, optimize])
    for trial in range(6):
        compare(kind, rng, bidirectional, optimize, with_state=trial % 2 == 1,
                with_lengths=trial % 3 != 0, batch_first=trial != 4)


@pytest.mark.parametrize("optimize", [True, False], ids=["compiled", "node_by_node"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_rnn_against_pytorch_with_lengths(bidirectional: bool, optimize: bool) -> None:
    rng = numpy.random.default_rng([8, bidirectional])
    for trial in range(4):
        compare("rnn", rng, bidirectional, optimize, with_state=trial % 2 == 1,
                with_lengths=True, batch_first=trial != 2)


@pytest.mark.parametrize("kind", ["gru", "lstm", "rnn"])
def test_state_dict_round_trip_with_reverse_keys(kind: str) -> None:
    rng = numpy.random.default_rng(3)
    model, ref = _build(kind, rng, True, True, True)
    keys = torch_keys(model)
    assert keys == list(ref.state_dict())
    assert any(k.endswith("_reverse") for k in keys)
    ours = to_torch_state_dict(model)
    for k, v in ref.state_dict().items():
        numpy.testing.assert_array_equal(ours[k], v.numpy())
    # ours -> PyTorch: a fresh PyTorch module loads our weights and agrees.
    other = KINDS[kind][1](model.input_size, model.hidden_size, model.num_layers,
                           batch_first=True, bidirectional=True, dtype=torch.float64)
    other.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})
    x = rng.standard_normal((2, 3, model.input_size))
    numpy.testing.assert_allclose(model.forward(x)[0], other(torch.from_numpy(x))[0].detach(),
                                  **TOL)


def test_gru_state_dict_shapes_refused() -> None:
    model = GRU(2, 3)
    sd = to_torch_state_dict(model)
    sd["weight_hh_l0"] = numpy.zeros((4 * 3, 3))
    with pytest.raises(Exception, match=r"weight_hh_l0: expected shape \(9, 3\)"):
        load_torch_state_dict(model, sd)
