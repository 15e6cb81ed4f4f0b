"""Ports of nngraph's ``test/test_ModuleFromCriterion.lua``, one test per Lua test.

Our loss node's output is 0-d (Lua's is a 1-element tensor), so its gradOutput is 0-d here.
"""
from __future__ import annotations

import math
import pickle

import numpy as np

from lua_reference import check_against_lua, load
from nngraph_py import gradcheck, nn


def test_call() -> None:
    """test_ModuleFromCriterion.lua: test_call (MSE as a node, scaled to bits)."""
    prediction, target = nn.Identity()(), nn.Identity()()
    mse = nn.MSECriterion()([prediction, target])
    cost_bits = nn.MulConstant(1 / math.log(2))(mse)
    net = nn.gModule([prediction, target], [cost_bits])
    ref = load("nngraph_mfc_call")
    g = ref["gradOutput"].reshape(())
    check_against_lua(net, "mfc_call", grad_output=g)
    criterion = nn.MSECriterion().double()
    x, t = ref["input"]
    np.testing.assert_allclose(net.output, criterion.forward(x, t) / math.log(2), rtol=1e-14)
    grad_pred, grad_target = net.grad_input
    np.testing.assert_allclose(grad_pred, criterion.backward(x, t) * float(g) / math.log(2),
                               rtol=1e-14)
    np.testing.assert_array_equal(grad_target, np.zeros(t.shape))


def test_grad() -> None:
    """test_ModuleFromCriterion.lua: test_grad (the target made inside the graph)."""
    prediction = nn.Identity()()
    target = nn.AddConstant(1.23)(nn.MulConstant(0)(prediction))
    net = nn.gModule([prediction], [nn.MSECriterion()([prediction, target])])
    ref = load("nngraph_mfc_grad")
    check_against_lua(net, "mfc_grad", grad_output=ref["gradOutput"].reshape(()))
    gradcheck(net, ref["input"])


def _module() -> tuple:
    module = nn.ModuleFromCriterion(nn.MSECriterion())
    rng = np.random.default_rng(0)
    return module, [rng.standard_normal((3, 5)), rng.standard_normal((3, 5))]


def test_serializable() -> None:
    """test_ModuleFromCriterion.lua: test_serializable (totem's checkSerializable: a saved and
    loaded copy computes the same forward and backward)."""
    module, x = _module()
    module.double()
    copy = pickle.loads(pickle.dumps(module))
    np.testing.assert_array_equal(copy.forward(x), module.forward(x))
    for a, b in zip(copy.backward(x, np.array(1.0)), module.backward(x, np.array(1.0))):
        np.testing.assert_array_equal(a, b)


def test_typeCastable() -> None:
    """test_ModuleFromCriterion.lua: test_typeCastable (totem's checkTypeCastable: float and
    double give the same results in their dtypes)."""
    module, x = _module()
    ref = module.double().forward(x)
    ref_grad = module.backward(x, np.array(1.0))
    module.float()
    x32 = [v.astype(np.float32) for v in x]
    out = module.forward(x32)
    assert out.dtype == np.float32 and out.shape == ()
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    grads = module.backward(x32, np.array(1.0, np.float32))
    for g, r in zip(grads, ref_grad):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    assert module.double().forward(x).dtype == np.float64
