"""LookupTable and OneHot beyond the harness: padding, repeated indices, refused indices."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nngraph_py import backend, nn
from nngraph_py.errors import InputError, NNGraphError, ShapeError


def test_lookup_table_repeated_indices_accumulate_as_torch(device):
    rng = np.random.default_rng(0)
    m = nn.LookupTable(5, 3).double().to(device)
    idx = np.array([[1, 1, 4], [1, 0, 4]])
    g = rng.standard_normal((2, 3, 3))
    m.zero_grad_parameters()
    m.forward(backend.to_device(idx, device))
    m.backward(backend.to_device(idx, device), backend.to_device(g, device), scale=0.5)
    w = torch.tensor(backend.to_numpy(m.weight), requires_grad=True)
    (torch.nn.functional.embedding(torch.tensor(idx), w) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(m.grad_weight), 0.5 * w.grad.numpy(), rtol=1e-12)


def test_lookup_table_padding_idx_gets_no_gradient_as_torch(device):
    m = nn.LookupTable(4, 2, padding_idx=2).double().to(device)
    assert np.all(backend.to_numpy(m.weight)[2] == 0)
    idx = np.array([2, 0, 2, 3])
    g = np.arange(8.0).reshape(4, 2)
    m.forward(backend.to_device(idx, device))
    m.backward(backend.to_device(idx, device), backend.to_device(g, device))
    w = torch.tensor(backend.to_numpy(m.weight), requires_grad=True)
    out = torch.nn.functional.embedding(torch.tensor(idx), w, padding_idx=2)
    (out * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(m.grad_weight), w.grad.numpy())
    assert repr(m) == "nn.LookupTable(4 -> 2, padding_idx=2)"


def test_lookup_table_out_of_range_index_names_the_node_and_index():
    x = nn.Identity()()
    emb = nn.LookupTable(10, 4)(x).annotate(name="word_embedding")
    g = nn.gModule([x], [emb])
    with pytest.raises(NNGraphError) as info:
        g.forward(np.array([[1, 2], [3, 10]]))
    message = str(info.value)
    for fragment in ("word_embedding", "index 10", "(1, 1)", "[0, 10)"):
        assert fragment in message, message
    with pytest.raises(ShapeError, match=r"index -1 at position \(0,\)"):
        nn.LookupTable(3, 2).forward(np.array([-1, 0]))


@pytest.mark.parametrize("module", [lambda: nn.LookupTable(3, 2), lambda: nn.OneHot(3)],
                         ids=["LookupTable", "OneHot"])
def test_float_indices_are_refused(module):
    with pytest.raises(InputError, match="integer indices"):
        module().forward(np.array([0.0, 1.0]))


def test_one_hot_out_of_range_refused():
    with pytest.raises(ShapeError, match=r"index 3 at position \(1,\).*\[0, 3\)"):
        nn.OneHot(3).forward(np.array([0, 3]))


def test_lookup_table_constructor_checks():
    with pytest.raises(ValueError, match="positive"):
        nn.LookupTable(0, 3)
    with pytest.raises(ValueError, match="padding_idx"):
        nn.LookupTable(3, 3, padding_idx=3)
