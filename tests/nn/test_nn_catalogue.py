"""Catalogue modules beyond the harness: gradients changed on purpose, running statistics, noise,
an attention step from MM + SoftMax + Replicate, and bad input naming the node."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nngraph_py import backend, gradcheck, nn
from nngraph_py.errors import NNGraphError, ShapeError


def dev(x, device):
    return backend.to_device(np.asarray(x), device)


def test_l1_penalty_adds_the_l1_gradient_and_keeps_the_loss(device):
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    m = nn.L1Penalty(0.3, size_average=True).double().to(device)
    assert m.forward(dev(x, device)) is not None
    assert m.loss == pytest.approx(0.3 * np.abs(x).sum() / 12)
    gi = m.backward(dev(x, device), dev(g, device))
    np.testing.assert_allclose(backend.to_numpy(gi), g + 0.3 / 12 * np.sign(x))
    alone = nn.L1Penalty(0.3, provide_output=False).double()
    alone.forward(x)
    np.testing.assert_allclose(alone.backward(x, g), 0.3 * np.sign(x))


def test_gradient_reversal_negates_and_scales(device):
    m = nn.GradientReversal(0.5).double().to(device)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(backend.to_numpy(m.forward(dev(x, device))), x)
    gi = m.backward(dev(x, device), dev(np.ones((2, 3)), device))
    np.testing.assert_array_equal(backend.to_numpy(gi), -0.5 * np.ones((2, 3)))


def test_zero_grad_stops_the_gradient(device):
    m = nn.Sequential(nn.ConcatTable(nn.ZeroGrad(), nn.Identity()), nn.CAddTable()).double()
    m.to(device)
    x, g = dev(np.ones((2, 3)), device), dev(np.arange(6.0).reshape(2, 3), device)
    np.testing.assert_array_equal(backend.to_numpy(m.forward(x)), 2 * np.ones((2, 3)))
    np.testing.assert_array_equal(backend.to_numpy(m.backward(x, g)), backend.to_numpy(g))


@pytest.mark.parametrize("spatial", [False, True], ids=["BatchNormalization",
                                                        "SpatialBatchNormalization"])
def test_batch_norm_running_statistics_match_torch(spatial, device):
    rng = np.random.default_rng(1)
    shape = (6, 3, 2, 2) if spatial else (6, 3)
    m = (nn.SpatialBatchNormalization(3, momentum=0.2) if spatial
         else nn.BatchNormalization(3, momentum=0.2)).double().to(device)
    t = (torch.nn.BatchNorm2d if spatial else torch.nn.BatchNorm1d)(3, momentum=0.2).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(backend.to_numpy(m.weight)))
    running_mean = m.running_mean
    for _ in range(3):
        x = rng.standard_normal(shape) * 2 + 1
        y = m.forward(dev(x, device))
        np.testing.assert_allclose(backend.to_numpy(y), t(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-10, atol=1e-12)
    assert m.running_mean is running_mean  # updated in place (the buffer protocol)
    np.testing.assert_allclose(backend.to_numpy(m.running_mean), t.running_mean.numpy())
    np.testing.assert_allclose(backend.to_numpy(m.running_var), t.running_var.numpy())
    m.evaluate()
    t.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(backend.to_numpy(m.forward(dev(x, device))),
                               t(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    assert gradcheck(m, dev(x, device)).ok  # evaluation mode: an affine map


def test_batch_norm_buffers_are_listed_and_converted():
    m = nn.SpatialBatchNormalization(4)
    assert m._buffer_names == ("running_mean", "running_var")
    m.double()
    assert m.running_mean.dtype == np.float64 and m.running_var.dtype == np.float64
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]


def test_spatial_dropout_drops_whole_channels():
    backend.manual_seed(3)
    m = nn.SpatialDropout(0.5).double()
    x = np.ones((8, 6, 3, 3))
    y = m.forward(x)
    per_channel = y.reshape(8, 6, 9)
    assert np.all((per_channel.min(-1) == per_channel.max(-1)))  # one value per channel
    assert 0 < (per_channel[..., 0] == 0).mean() < 1
    np.testing.assert_array_equal(m.backward(x, np.ones_like(x)), y)


def test_white_noise_has_its_mean_and_std():
    backend.manual_seed(4)
    y = nn.WhiteNoise(1.0, 0.5).double().forward(np.zeros((200, 200)))
    assert abs(y.mean() - 1.0) < 0.01 and abs(y.std() - 0.5) < 0.01


def test_attention_step_from_mm_softmax_replicate():
    """One attention read: scores = keys @ query, weights = softmax, read = weights @ values;
    the query is Replicated over a batch of one to feed MM. Checked against torch and by
    finite differences."""
    rng = np.random.default_rng(5)
    keys_in, query_in = nn.Identity()(), nn.Identity()()
    q = nn.Reshape(4, 1)(query_in)                         # (4,) -> (4, 1)
    qb = nn.Replicate(1)(q)                                # (1, 4, 1): a batch of one
    kb = nn.Replicate(1)(keys_in)                          # (1, 5, 4)
    scores = nn.Reshape(5, batch_mode=False)(nn.MM()([kb, qb]))              # (1, 5, 1) -> (5,)
    weights = nn.SoftMax()(scores)
    read = nn.MM(True, False)([nn.Reshape(1, 5, 1, batch_mode=False)(weights), kb])  # (1, 1, 4)
    g = nn.gModule([keys_in, query_in], [nn.Reshape(4, batch_mode=False)(read)]).double()
    keys, query = rng.standard_normal((5, 4)), rng.standard_normal(4)
    out = g.forward([keys, query])
    w = torch.softmax(torch.from_numpy(keys) @ torch.from_numpy(query), 0)
    np.testing.assert_allclose(out, (w @ torch.from_numpy(keys)).numpy(), rtol=1e-12)
    assert gradcheck(g, [keys, query]).ok


@pytest.mark.parametrize("module, bad, fragment", [
    (lambda: nn.SpatialConvolution(3, 4, 3), np.zeros((2, 2, 5, 5)), "(batch, 3, height, width)"),
    (lambda: nn.SpatialMaxPooling(2), np.zeros((4, 5)), "(batch, C, height, width)"),
    (lambda: nn.TemporalConvolution(3, 2, 2), np.zeros((4, 5)), "(batch, time, 3)"),
    (lambda: nn.BatchNormalization(3), np.zeros((4, 5)), "(batch, 3)"),
    (lambda: nn.LayerNormalization(3), np.zeros((4, 5)), "(..., 3)"),
    (lambda: nn.Sum(2), np.zeros((4, 5)), "axis 2"),
    (lambda: nn.SoftMin(), np.zeros((2, 4, 5)), "(batch, features)"),
    (lambda: nn.GatedLinearUnit(), np.zeros((4, 5)), "even size"),
    (lambda: nn.MM(), [np.zeros((2, 3)), np.zeros((4, 2))], "[(n, m), (m, p)]"),
    (lambda: nn.DotProduct(), [np.zeros((2, 3)), np.zeros((2, 4))], "one shape"),
    (lambda: nn.Bilinear(3, 4, 2), [np.zeros((2, 3)), np.zeros((2, 3))], "(batch, 4)"),
], ids=["SpatialConvolution", "SpatialMaxPooling", "TemporalConvolution", "BatchNormalization",
        "LayerNormalization", "Sum", "SoftMin", "GatedLinearUnit", "MM", "DotProduct", "Bilinear"])
def test_bad_input_names_the_node(module, bad, fragment):
    inputs = [nn.Identity()() for _ in (bad if isinstance(bad, list) else [bad])]
    node = module()(inputs if isinstance(bad, list) else inputs[0]).annotate(name="the_culprit")
    g = nn.gModule(inputs, [node]).double()
    with pytest.raises(NNGraphError) as info:
        g.forward(bad)
    assert "the_culprit" in str(info.value) and fragment in str(info.value), str(info.value)
    with pytest.raises(ShapeError):
        module().double().forward(bad)


def test_map_table_shares_parameters_across_elements_and_get_parameters():
    m = nn.MapTable(nn.Linear(3, 2)).double()
    flat, grads = m.get_parameters()
    xs = [np.ones((1, 3)), 2 * np.ones((1, 3))]
    m.forward(xs)
    m.backward(xs, [np.ones((1, 2)), np.ones((1, 2))])
    np.testing.assert_allclose(m.module.grad_weight, 3 * np.ones((2, 3)))
    assert grads.sum() == pytest.approx(3 * 6 + 2 * 2)
    flat[...] = 0
    assert np.all(m.forward(xs)[1] == 0)  # every clone sees the flat buffer


def test_multi_margin_and_bce_with_lua_targets_refuse_bad_shapes():
    with pytest.raises(ShapeError, match="class indices in \\[0, 3\\)"):
        nn.MultiMarginCriterion().forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ShapeError, match="target of the input's shape"):
        nn.BCECriterion().forward(np.full((2, 3), 0.5), np.zeros((3, 2)))
