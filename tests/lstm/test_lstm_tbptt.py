"""Truncated BPTT: the carried state makes chunked forwards equal one long forward; gradients
flow within a chunk only, and equal full BPTT when the state gradient is passed back by hand."""
from __future__ import annotations

import numpy
import pytest

from nngraph_py import backend
from nngraph_py.errors import InputError, ShapeError

from lstm import LSTM, RNN, TruncatedBPTT

SHARED = ("weight", "bias", "grad_weight", "grad_bias")


def host(x) -> numpy.ndarray:
    return backend.to_numpy(x).copy()


def _grads(model) -> numpy.ndarray:
    return numpy.concatenate([host(g).ravel() for g in model.parameters()[1]])


def _cat(parts, batch_first: bool) -> numpy.ndarray:
    return numpy.concatenate([host(p) for p in parts], axis=1 if batch_first else 0)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("optimize", [True, False])
def test_chunked_forward_equals_one_long_forward(device: str, rng: numpy.random.Generator,
                                                 batch_first: bool, optimize: bool) -> None:
    model = LSTM(2, 3, 2, batch_first=batch_first, optimize=optimize).double().to(device)
    x = backend.to_device(rng.standard_normal((2, 8, 2) if batch_first else (8, 2, 2)), device)
    full, (h_n, c_n) = model.forward(x)
    full, h_n, c_n = host(full), host(h_n), host(c_n)

    tbptt = TruncatedBPTT(model, chunk_len=3)
    chunks = list(tbptt.chunks(x))
    assert [c.shape[1 if batch_first else 0] for c in chunks] == [3, 3, 2]
    outs = [host(tbptt.forward(chunk)) for chunk in chunks]
    numpy.testing.assert_allclose(_cat(outs, batch_first), full, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(host(tbptt.state[0]), h_n, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(host(tbptt.state[1]), c_n, rtol=1e-12, atol=1e-12)
    if not optimize:
        assert model.num_clones() == 8              # the long forward's clones, reused


def test_loss_within_the_first_chunk_gives_full_bptt_gradients(rng: numpy.random.Generator) -> None:
    # The gradient never crosses a chunk boundary when only the first chunk has a loss.
    model = LSTM(2, 3, 2).double()
    x = rng.standard_normal((2, 6, 2))
    g = rng.standard_normal((2, 6, 3))
    g[:, 3:] = 0
    model.zero_grad_parameters()
    model.forward(x)
    full_gx = host(model.backward(x, g))
    full_grads = host(model.get_parameters()[1])

    model.zero_grad_parameters()
    tbptt = TruncatedBPTT(model, chunk_len=3)
    gxs = []
    for chunk, g_chunk in zip(tbptt.chunks(x), tbptt.chunks(g)):
        tbptt.forward(chunk)
        gxs.append(tbptt.backward(chunk, g_chunk))
    numpy.testing.assert_allclose(_cat(gxs, True), full_gx, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(host(model.get_parameters()[1]), full_grads, rtol=1e-12, atol=1e-14)


def test_truncation_stops_the_gradient_at_the_chunk_start(rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2).double()
    x = rng.standard_normal((2, 6, 2))
    g = rng.standard_normal((2, 6, 3))
    g[:, :3] = 0                                    # loss on the second chunk only
    model.zero_grad_parameters()
    model.forward(x)
    model.backward(x, g)
    full_grads = host(model.get_parameters()[1])

    tbptt = TruncatedBPTT(model, chunk_len=3)
    model.zero_grad_parameters()
    grads_x = []
    for chunk, g_chunk in zip(tbptt.chunks(x), tbptt.chunks(g)):
        tbptt.forward(chunk)
        grads_x.append(tbptt.backward(chunk, g_chunk))
    truncated = host(model.get_parameters()[1])
    assert not numpy.allclose(truncated, full_grads)
    numpy.testing.assert_array_equal(grads_x[0], numpy.zeros_like(grads_x[0]))
    # It is exactly the gradient of the second chunk run from the carried state, held constant.
    model.forward(x[:, :3])
    state = [host(s) for s in model.output[1:]]
    model.zero_grad_parameters()
    model.forward([x[:, 3:]] + state)
    model.backward([x[:, 3:]] + state, g[:, 3:])
    numpy.testing.assert_allclose(host(model.get_parameters()[1]), truncated, rtol=1e-12)


def test_passing_the_state_gradient_back_recovers_full_bptt(rng: numpy.random.Generator) -> None:
    model = LSTM(2, 3, 2).double()
    # A second model sharing the parameters keeps the second chunk's activations. (Share after
    # get_parameters, if at all: flattening replaces the arrays of the model it is called on.)
    second = model.clone(*SHARED)
    x = rng.standard_normal((2, 7, 2))
    g = rng.standard_normal((2, 7, 3))
    g_h, g_c = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3))
    model.zero_grad_parameters()
    model.forward(x)
    full_gx = host(model.backward(x, [g, g_h, g_c]))
    full_grads = _grads(model)

    model.zero_grad_parameters()
    _, state = model.forward(x[:, :4])
    second.forward([x[:, 4:], *state])
    gx2, gh0, gc0 = second.backward([x[:, 4:], *state], [g[:, 4:], g_h, g_c])
    gx1 = model.backward(x[:, :4], [g[:, :4], gh0, gc0])
    numpy.testing.assert_allclose(numpy.concatenate([gx1, gx2], axis=1), full_gx, rtol=1e-10,
                                  atol=1e-13)
    numpy.testing.assert_allclose(_grads(model), full_grads, rtol=1e-10,
                                  atol=1e-13)


def test_reset_and_state_errors(rng: numpy.random.Generator) -> None:
    model = RNN(2, 3, 2).double()
    tbptt = TruncatedBPTT(model, chunk_len=4)
    x = rng.standard_normal((2, 4, 2))
    first = tbptt.forward(x)
    assert tbptt.state.shape == (2, 2, 3)
    second = tbptt.forward(x)
    assert not numpy.allclose(first, second)        # the carried state matters
    with pytest.raises(ShapeError, match="its batch size 2 does not match the input's 5 .* reset it"):
        tbptt.forward(rng.standard_normal((5, 4, 2)))
    tbptt.reset()
    assert tbptt.state is None
    numpy.testing.assert_array_equal(tbptt.forward(x), first)
    with pytest.raises(InputError, match="pass the chunk given to the last forward"):
        tbptt.backward(x.copy(), numpy.ones_like(first))
    tbptt.reset()
    with pytest.raises(InputError, match="backward called before forward"):
        tbptt.backward(x, numpy.ones_like(first))
    with pytest.raises(ValueError, match="chunk_len must be a positive integer"):
        TruncatedBPTT(model, chunk_len=0)
    with pytest.raises(InputError, match="runs an lstm.LSTM, lstm.GRU or lstm.RNN"):
        TruncatedBPTT(object())


def test_tbptt_training_with_clipping(rng: numpy.random.Generator) -> None:
    optim = pytest.importorskip("nngraph_py.optim", reason="the optim package is not there yet")
    model = LSTM(1, 8, 1).double()
    params, grads = model.get_parameters()
    # Predict the input delayed by one step, over a long series cut in chunks.
    series = numpy.sin(numpy.linspace(0, 12 * numpy.pi, 241))[None, :, None]
    x, y = series[:, :-1], numpy.repeat(series[:, 1:], 8, axis=2)
    tbptt = TruncatedBPTT(model, chunk_len=20)
    losses = []
    for epoch in range(15):
        tbptt.reset()
        total = 0.0
        for chunk, target in zip(tbptt.chunks(x), tbptt.chunks(y)):
            grads[...] = 0
            diff = tbptt.forward(chunk) - target
            total += float((diff ** 2).mean())
            tbptt.backward(chunk, 2 * diff / diff.size)
            norm = optim.clip_grad_norm(grads, 0.5)
            assert numpy.linalg.norm(grads) <= 0.5 + 1e-9 and norm >= 0
            params -= 0.5 * grads
        losses.append(total)
    assert losses[-1] < 0.5 * losses[0]
