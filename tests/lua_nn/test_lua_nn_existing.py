"""Ports of nn's ``test.lua`` for the modules the library had before issue 13, one Python test
per Lua test (named ``test_<Lua name>``).

Lua's ``jac.testJacobian`` is :func:`nngraph_py.gradcheck`; ``jac.testIO`` (save, load, same
results) is a pickle round trip here. Values are compared with Lua's own, computed by
``tests/fixtures/lua/engine/make_nn_fixtures.lua``. Dimensions and indices are 0-based, and
JoinTable/SplitTable have no ``nInputDims`` argument (the batch axis is counted instead): Lua's
``JoinTable(d, 2)`` on a batch is ``JoinTable(d)`` here.
"""
from __future__ import annotations

import os
import pickle
import sys
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lua_nngraph"))
from lua_reference import assert_nest, load  # noqa: E402

from nngraph_py import backend, gradcheck, nn  # noqa: E402


def lua_case(module: Any, case: str) -> dict:
    """Run ``module`` (float64) on the fixture ``nn_<case>`` and compare with Lua's results."""
    ref = load(f"nn_{case}")
    module.double()
    for name in ("weight", "bias"):
        if isinstance(ref.get(name), np.ndarray):
            getattr(module, name)[...] = ref[name]
    module.zero_grad_parameters()
    assert_nest(module.forward(ref["input"]), ref["output"], f"{case}: output")
    assert_nest(module.backward(ref["input"], ref["gradOutput"]), ref["gradInput"],
                f"{case}: gradInput")
    for lua, ours in (("gradWeight", "grad_weight"), ("gradBias", "grad_bias")):
        if isinstance(ref.get(lua), np.ndarray):
            assert_nest(getattr(module, ours), ref[lua], f"{case}: {ours}")
    return ref


def test_io(module: Any, x: Any, g: Any) -> None:
    """jac.testIO: a serialised and restored copy gives the same forward and backward."""
    copy = pickle.loads(pickle.dumps(module))
    assert_nest(copy.forward(x), backend.to_numpy(module.forward(x)), "testIO forward", 0, 0)
    assert_nest(copy.backward(x, g), backend.to_numpy(module.backward(x, g)),
                "testIO backward", 0, 0)


test_io.__test__ = False  # a helper, not a test


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def test_Linear() -> None:
    """test.lua: nntest.Linear (values vs Lua in 2-D and 1-D, the 1-output case, Jacobians of
    input, weight and bias, gradient accumulation with scale; testIO)."""
    lua_case(nn.Linear(4, 3), "Linear_2d")
    lua_case(nn.Linear(4, 1), "Linear_1d")
    for out in (4, 1):
        m = nn.Linear(5, out).double()
        gradcheck(m, np.zeros(5))
        gradcheck(m, np.zeros((7, 5)))
        x, g = rand(7, 5), rand(7, out)
        m.zero_grad_parameters()
        m.forward(x)
        m.backward(x, g, scale=0.5)
        m.backward(x, g, scale=1.5)
        np.testing.assert_allclose(m.grad_weight, 2.0 * g.T @ x)
        np.testing.assert_allclose(m.grad_bias, 2.0 * g.sum(0))
        test_io(m, x, g)


def test_Tanh() -> None:
    """test.lua: nntest.Tanh."""
    lua_case(nn.Tanh(), "Tanh")
    m = nn.Tanh().double()
    gradcheck(m, np.zeros((4, 3, 5)))
    test_io(m, rand(4, 3, 5), rand(4, 3, 5, seed=1))


def test_Sigmoid() -> None:
    """test.lua: nntest.Sigmoid."""
    lua_case(nn.Sigmoid(), "Sigmoid")
    m = nn.Sigmoid().double()
    gradcheck(m, np.zeros((4, 3, 5)))
    test_io(m, rand(4, 3, 5), rand(4, 3, 5, seed=1))


def test_ReLU() -> None:
    """test.lua: nntest.ReLU (output x * (x > 0), gradInput g * (x > 0))."""
    lua_case(nn.ReLU(), "ReLU")
    x, g = rand(3, 4), rand(3, 4, seed=1)
    m = nn.ReLU().double()
    np.testing.assert_allclose(m.forward(x), (x > 0) * x, atol=1e-6)
    np.testing.assert_allclose(m.backward(x, g), (x > 0) * g, atol=1e-6)


def test_Softmax() -> None:
    """test.lua: nntest.Softmax."""
    lua_case(nn.SoftMax(), "Softmax")
    lua_case(nn.SoftMax(), "Softmax_1d")
    m = nn.SoftMax().double()
    gradcheck(m, np.zeros((4, 5)))
    test_io(m, rand(4, 5), rand(4, 5, seed=1))


def test_LogSoftmax() -> None:
    """test.lua: nntest.LogSoftmax (with a non-contiguous gradOutput)."""
    lua_case(nn.LogSoftMax(), "LogSoftmax")
    m = nn.LogSoftMax().double()
    gradcheck(m, np.zeros((4, 5)), atol=1e-3)
    test_io(m, rand(4, 5), rand(4, 5, seed=1))
    x = rand(4, 10)
    data = rand(4, 20, seed=2)
    g = data[:, :10]
    g[...] = 0
    m.forward(x)
    g1 = m.backward(x, g).copy()
    m.forward(x)
    g2 = m.backward(x, np.ascontiguousarray(g)).copy()
    assert np.abs(g1 - g2).max() < 1e-10


def test_JoinTable() -> None:
    """test.lua: nntest.JoinTable (every dimension, the minibatch form; values vs Lua)."""
    lua_case(nn.JoinTable(1), "JoinTable_2")
    t = np.random.default_rng(0).random((3, 4, 5))
    for d in range(3):
        assert nn.JoinTable(d).double().forward([t, t]).shape[d] == t.shape[d] * 2
    for d in range(1, 3):  # Lua's JoinTable(d, 2): d counts from the first non-batch axis
        assert nn.JoinTable(d).double().forward([t, t]).shape[d] == t.shape[d] * 2


def test_SplitTable() -> None:
    """test.lua: nntest.SplitTable (every dimension, minibatch, negative indices; Lua's
    values)."""
    lua_case(nn.SplitTable(1), "SplitTable_2")
    x = rand(3, 4, 5)
    for d in range(3):
        assert len(nn.SplitTable(d).double().forward(x)) == x.shape[d]
    for d in range(1, 3):
        assert len(nn.SplitTable(d).double().forward(x)) == x.shape[d]
    assert len(nn.SplitTable(-3).double().forward(x)) == 3
    assert len(nn.SplitTable(-3).double().forward(rand(2, 3, 4, 5))) == 3


def test_Select() -> None:
    """test.lua: nntest.Select (negative dimension and index)."""
    x = np.array([[4.0, 6, 7], [8, 0, 1]])
    assert nn.Select(0, -1).double().forward(x)[0] == 8
    assert nn.Select(0, -1).double().forward(x)[1] == 0
    assert nn.Select(0, -2).double().forward(x)[1] == 6
    assert nn.Select(-1, -1).double().forward(x)[0] == 7
    assert nn.Select(-1, -1).double().forward(x)[1] == 1


def _nested(seed: int) -> list:
    rng = np.random.default_rng(seed)

    def r() -> np.ndarray:
        return rng.random((3, 4, 5))

    return [r(), r(), [r()], [r(), [r()]]]


def _zeros_like(v: Any) -> Any:
    return [_zeros_like(x) for x in v] if isinstance(v, list) else np.zeros_like(v)


def test_SelectTable() -> None:
    """test.lua: nntest.SelectTable (nested tables, zeros for the other elements, negative
    index)."""
    x, g = _nested(0), _nested(1)
    non_idx = [1, 2, 3, 0]
    for idx in range(4):
        m = nn.SelectTable(idx).double()
        assert_nest(m.forward(x), x[idx], "output", 0, 0)
        gi = m.backward(x, g[idx])
        assert_nest(gi[idx], g[idx], "gradInput[idx]", 0, 0)
        assert_nest(gi[non_idx[idx]], _zeros_like(x[non_idx[idx]]), "gradInput[nonIdx]", 0, 0)
    m = nn.SelectTable(-2).double()
    assert_nest(m.forward(x), x[-2], "output -2", 0, 0)
    assert_nest(m.backward(x, g[-2])[-2], g[-2], "gradInput -2", 0, 0)


def test_Narrow() -> None:
    """test.lua: nntest.Narrow (positive and negative lengths; Lua's 1-based offset 3 is 2)."""
    lua_case(nn.Narrow(0, 2, 5), "Narrow_1")
    lua_case(nn.Narrow(0, 2, -3), "Narrow_1neg")
    lua_case(nn.Narrow(1, 4, 3), "Narrow_2")
    x = np.random.default_rng(0).random((9, 4, 14))
    g = np.random.default_rng(1).random((5, 4, 14))
    expected_gi = np.zeros_like(x)
    expected_gi[2:7] = g
    for m in (nn.Narrow(0, 2, 5), nn.Narrow(0, 2, -3)):
        m.double()
        np.testing.assert_array_equal(m.forward(x), x[2:7])
        np.testing.assert_array_equal(m.backward(x, g), expected_gi)


def test_NarrowTable() -> None:
    """test.lua: nntest.NarrowTable (SplitTable, NarrowTable, JoinTable, Reshape equals Narrow;
    a smaller input; float)."""
    nt = nn.NarrowTable(4, 3)
    seq = nn.Sequential(nn.SplitTable(1), nt, nn.JoinTable(1), nn.Reshape(3, 3, 4)).double()
    seq2 = nn.Narrow(1, 4, 3).double()
    x, g = rand(3, 10, 4), rand(3, 3, 4, seed=1)
    for inp in (x, x[:, :8]):
        np.testing.assert_allclose(seq.forward(inp), seq2.forward(inp), atol=1e-7)
        np.testing.assert_allclose(seq.backward(inp, g), seq2.backward(inp, g), atol=1e-5)
    seq.float()
    seq2.float()
    x32, g32 = x[:, :8].astype(np.float32), g.astype(np.float32)
    np.testing.assert_allclose(seq.forward(x32), seq2.forward(x32), atol=1e-7)
    np.testing.assert_allclose(seq.backward(x32, g32), seq2.backward(x32, g32), atol=1e-5)


def test_View() -> None:
    """test.lua: nntest.View (sizes, minibatch, -1 with setNumInputDims, several leading axes)."""
    x = np.random.default_rng(0).random(10)
    assert nn.View((5, 2)).double().forward(x).shape == (5, 2)
    module = nn.View(5, 2).double()
    assert module.forward(x).shape == (5, 2)
    minibatch = np.random.default_rng(1).random((5, 10))
    assert module.forward(minibatch).shape[0] == 5
    assert module.forward(minibatch).size == minibatch.size
    module = nn.View(-1).set_num_input_dims(1).double()
    assert module.forward(minibatch).shape[0] == 5
    assert module.forward(minibatch).size == minibatch.size
    assert nn.View(-1).set_num_input_dims(2).double().forward(rand(5, 4, 10)).shape[0] == 5
    out = nn.View(4, -1).set_num_input_dims(2).double().forward(rand(2, 5, 4, 10))
    assert out.shape == (10, 4, 10)
    out = nn.View(6).double().forward(rand(5, 2, 6))  # Lua's minibatch generalization
    assert out.shape[0] == 10 and out.size == 60


def test_Reshape() -> None:
    """test.lua: nntest.Reshape."""
    x = np.random.default_rng(0).random(10)
    assert nn.Reshape((5, 2)).double().forward(x).shape == (5, 2)
    module = nn.View(5, 2).double()
    assert module.forward(x).shape == (5, 2)
    minibatch = np.random.default_rng(1).random((5, 10))
    assert module.forward(minibatch).shape[0] == 5
    assert module.forward(minibatch).size == minibatch.size
    assert nn.Reshape(5, 2).double().forward(minibatch).shape == (5, 5, 2)


def test_Dropout() -> None:
    """test.lua: nntest.Dropout (v2 scaling, in place, v1; means within 0.05)."""
    p = 0.2
    x = np.full(1000, 1 - p)
    m = nn.Dropout(p).double()
    assert abs(m.forward(x).mean() - (1 - p)) < 0.05
    assert abs(m.backward(x, x).mean() - (1 - p)) < 0.05
    m = nn.Dropout(p, None, True).double()  # in place
    assert abs(m.forward(x.copy()).mean() - (1 - p)) < 0.05
    assert abs(m.backward(x.copy(), x.copy()).mean() - (1 - p)) < 0.05
    x = np.ones(1000)
    m = nn.Dropout(p, True).double()  # version 1: scaled at evaluation instead
    assert abs(m.forward(x).mean() - (1 - p)) < 0.05
    assert abs(m.backward(x, x).mean() - (1 - p)) < 0.05


def _inplace_comparison(cls: Any, constant: float, tol: float) -> None:
    """The in-place half of nn's MulConstant/AddConstant tests: same forward and backward as
    the copying module, and the input is restored after backward."""
    rng = np.random.default_rng(3)

    def torch_rand(shape: tuple) -> np.ndarray:  # torch.rand's values: 32 random bits
        return rng.integers(0, 2**32, size=shape) / 2.0**32

    input1 = torch_rand((4, 3, 5))
    input2 = input1.copy()
    module1, module2 = cls(constant, True).double(), cls(constant).double()
    g1 = rng.random((4, 3, 5))
    g2 = g1.copy()
    out1 = module1.forward(input1).copy()
    assert np.abs(out1 - module2.forward(input2)).max() == 0
    assert np.abs(module1.backward(input1, g1) - module2.backward(input2, g2)).max() == 0
    input1 = torch_rand((4, 3, 5))
    input2 = input1.copy()
    module1.forward(input1)
    module1.backward(module1.output, rng.random((4, 3, 5)))
    assert np.abs(input1 - input2).max() <= tol


def test_MulConstant() -> None:
    """test.lua: nntest.MulConstant (fprop scale, Jacobian, in place; Lua's values)."""
    ref = lua_case(nn.MulConstant(-0.7), "MulConstant")
    x = ref["input"]
    m = nn.MulConstant(-0.7).double()
    assert np.abs(m.forward(x) / x + 0.7).max() < 1e-6
    gradcheck(m, x[:2, :2])
    _inplace_comparison(nn.MulConstant, 3.7, 1e-15)


def test_AddConstant() -> None:
    """test.lua: nntest.AddConstant (fprop shift, Jacobian, in place; Lua's values; the tensor
    constant part is test_AddConstant_tensor_constant)."""
    ref = lua_case(nn.AddConstant(1.3), "AddConstant")
    x = ref["input"]
    m = nn.AddConstant(1.3).double()
    assert np.abs(m.forward(x) - x - 1.3).max() < 1e-6
    gradcheck(m, x[:2, :2])
    _inplace_comparison(nn.AddConstant, 3.7, 0)


def test_AddConstant_tensor_constant() -> None:
    """test.lua: nntest.AddConstant, its last part (engine_bugs #7): a tensor constant, also
    broadcast over a batch."""
    module3 = nn.AddConstant(np.array([1.0, 2, 3])).double()
    assert np.abs(module3.forward(np.array([-1.0, -2, -3]))).max() == 0
    assert np.abs(module3.forward(np.array([[-1.0, -2, -3], [-1, -2, -3]]))).max() == 0


def test_ParallelTable() -> None:
    """test.lua: nntest.ParallelTable (SplitTable, three Views, JoinTable: a transpose)."""
    x = rand(3, 4, 5)
    m = nn.Sequential(nn.SplitTable(0),
                      nn.ParallelTable(nn.View(4, 5, 1), nn.View(4, 5, 1), nn.View(4, 5, 1)),
                      nn.JoinTable(2)).double()
    expected = np.transpose(x, (1, 2, 0))
    np.testing.assert_allclose(m.forward(x), expected, atol=1e-6)
    np.testing.assert_allclose(m.backward(x, expected), x, atol=1e-6)


def test_ConcatTable() -> None:
    """test.lua: nntest.ConcatTable (tensor input through JoinTable: Jacobian and testIO; a
    nested table input in float32: output and gradInput structure)."""
    m = nn.Sequential(nn.ConcatTable(nn.Identity()), nn.JoinTable(0)).double()
    x = np.random.default_rng(0).random((5, 5, 5))
    gradcheck(m, x)
    test_io(m, x, rand(5, 5, 5))
    rng = np.random.default_rng(1)
    inp = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2)]
    inp.append([rng.standard_normal((3, 4)).astype(np.float32)])
    grad = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2)]
    grad.append([rng.standard_normal((3, 4)).astype(np.float32)])
    concat = nn.ConcatTable(nn.Identity(), nn.Identity()).float()
    out = concat.forward(inp)
    assert_nest(out, [inp, inp], "output", 0, 0)
    gi = concat.backward(inp, [grad, grad])
    expected = [2 * grad[0], 2 * grad[1], [2 * grad[2][0]]]
    assert_nest(gi, expected, "gradInput", 1e-6, 1e-6)


def _criterion_fd(criterion: Any, x: np.ndarray, t: Any, eps: float = 1e-6) -> np.ndarray:
    """Central differences of a criterion's loss w.r.t. its input (nn's criterionJacobianTest)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        grad[i] = (float(criterion.forward(xp, t)) - float(criterion.forward(xm, t))) / (2 * eps)
    return grad


class _double_default:
    """Lua's ``torch.setdefaulttensortype('torch.DoubleTensor')`` while a criterion is built, so
    that class weights keep float64 (see engine_bugs #6)."""

    def __enter__(self) -> None:
        self.saved = backend.get_default_dtype()
        backend.set_default_dtype(np.float64)

    def __exit__(self, *exc: Any) -> None:
        backend.set_default_dtype(self.saved)


def _lua_criterion(criterion: Any, case: str, target_offset: int = 0) -> None:
    ref = load(f"nn_{case}")
    t = ref["target"]
    target = np.asarray(t, dtype=np.int64) - 1 if target_offset else np.asarray(t)
    criterion.double()
    loss = criterion.forward(ref["input"], target)
    np.testing.assert_allclose(float(loss), ref["loss"], rtol=1e-12)
    np.testing.assert_allclose(criterion.backward(ref["input"], target), ref["gradInput"],
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(criterion.backward(ref["input"], target),
                               _criterion_fd(criterion, ref["input"], target), atol=1e-6)


def test_MSECriterion() -> None:
    """test.lua: nntest.MSECriterion (criterionJacobianTest; Lua's loss and gradInput, also
    without size averaging)."""
    _lua_criterion(nn.MSECriterion(), "MSECriterion")
    _lua_criterion(nn.MSECriterion(False), "MSECriterion_sum")


def test_ClassNLLCriterion() -> None:
    """test.lua: nntest.ClassNLLCriterion (1-D input with a number and with a 1-element target,
    2-D input, class weights; ignoreIndex). Targets are 0-based here."""
    w = load("nn_ClassNLL_2d_weights")["weights"]
    with _double_default():
        _lua_criterion(nn.ClassNLLCriterion(), "ClassNLL_1d_number", 1)
        _lua_criterion(nn.ClassNLLCriterion(w), "ClassNLL_1d_1d_weights", 1)
        _lua_criterion(nn.ClassNLLCriterion(), "ClassNLL_2d", 1)
        _lua_criterion(nn.ClassNLLCriterion(w), "ClassNLL_2d_weights", 1)
    ignore = -1
    cri = nn.ClassNLLCriterion(None, None, ignore).double()
    x = rand(7)
    assert float(cri.forward(x, ignore)) == 0
    assert np.abs(cri.backward(x, ignore)).sum() == 0
    x = rand(4, 7)
    t = np.array([ignore, 3, 0, 6])
    out = cri.forward(x, t)
    gi = cri.backward(x, t).copy()
    assert np.abs(gi[0]).sum() == 0
    out2 = cri.forward(x[1:], t[1:])
    assert abs(float(out2) - float(out)) < 1e-7
    np.testing.assert_allclose(cri.backward(x[1:], t[1:]), gi[1:], atol=1e-7)


def test_CrossEntropyCriterion() -> None:
    """test.lua: nntest.CrossEntropyCriterion (1-D, batch, weights, size_average False)."""
    w = load("nn_CrossEntropy_2d_weights")["weights"]
    with _double_default():
        _lua_criterion(nn.CrossEntropyCriterion(), "CrossEntropy_1d", 1)
        _lua_criterion(nn.CrossEntropyCriterion(w), "CrossEntropy_2d_weights", 1)
        _lua_criterion(nn.CrossEntropyCriterion(w, False), "CrossEntropy_2d_weights_sum", 1)
    for shape in ((7,), (5, 7)):
        cri = nn.CrossEntropyCriterion().double()
        t = np.array(2) if len(shape) == 1 else np.array([1, 2, 6, 3, 3])
        x = np.zeros(shape)
        np.testing.assert_allclose(cri.backward(x, t), _criterion_fd(cri, x, t), atol=1e-6)


@pytest.mark.parametrize("case", ["Linear_2d", "Tanh", "Softmax"])
def test_fixtures_are_float64_references(case: str) -> None:
    """The fixtures hold Lua's float64 values (no float32 rounding), so 1e-12 comparisons
    mean something."""
    x = load(f"nn_{case}")["input"]
    assert np.any(x.astype(np.float32).astype(np.float64) != x)


def test_bug6_class_weights_keep_float64_after_double() -> None:
    """engine_bugs #6: ClassNLLCriterion(float64 weights).double() computes with the weights
    rounded to float32 at construction (Lua keeps the tensor given)."""
    w = np.array([0.1, 0.7, 0.2]) / 3.0
    cri = nn.ClassNLLCriterion(w).double()
    np.testing.assert_array_equal(backend.to_numpy(cri.weights), w)


def _seq(*modules: Any) -> Any:
    return nn.Sequential(*modules).double()


def _lin() -> Any:
    return nn.Linear(10, 10).double()


def test_Module_getParameters_1() -> None:
    """test.lua: nntest.Module_getParameters_1 (weights then bias in the flat vector)."""
    n = _seq(_lin())
    p, _ = n.get_parameters()
    assert np.linalg.norm(p[0:100] - n[0].weight.ravel()) == 0
    assert np.linalg.norm(p[100:110] - n[0].bias) == 0


def test_Module_getParameters_2() -> None:
    """test.lua: nntest.Module_getParameters_2 (a module appended after a first call)."""
    n = _seq(_lin())
    n.get_parameters()
    n.add(_lin())
    p, _ = n.get_parameters()
    assert np.linalg.norm(p[110:210] - n[1].weight.ravel()) == 0
    assert np.linalg.norm(p[210:220] - n[1].bias) == 0


def test_Module_getParameters_3() -> None:
    """test.lua: nntest.Module_getParameters_3 (a plain clone has its own parameters; reset
    redraws them in place)."""
    n = _seq(_lin())
    n.add(n[0].clone())
    p, _ = n.get_parameters()
    assert np.linalg.norm(p[0:100] - n[0].weight.ravel()) == 0
    assert np.linalg.norm(p[100:110] - n[0].bias) == 0
    assert np.linalg.norm(p[110:210] - n[1].weight.ravel()) == 0
    assert np.linalg.norm(p[210:220] - n[1].bias) == 0
    assert np.linalg.norm(p[110:210] - n[0].weight.ravel()) == 0
    n.reset()
    assert np.linalg.norm(p[110:210] - n[0].weight.ravel()) > 0
    assert np.linalg.norm(p[210:220] - n[0].bias) > 0


def test_Module_getParameters_4() -> None:
    """test.lua: nntest.Module_getParameters_4 (clone, then a new module, then again)."""
    n = _seq(_lin())
    n.add(n[0].clone())
    n.get_parameters()
    n.add(_lin())
    p, _ = n.get_parameters()
    for k in range(3):
        assert np.linalg.norm(p[110 * k:110 * k + 100] - n[k].weight.ravel()) == 0
        assert np.linalg.norm(p[110 * k + 100:110 * (k + 1)] - n[k].bias) == 0
    assert p.size == 3 * 110


def test_Module_getParameters_5() -> None:
    """test.lua: nntest.Module_getParameters_5 (a sharing clone is stored once; reset keeps
    the sharing)."""
    n = _seq(_lin())
    n.add(n[0].clone("weight", "bias", "grad_weight", "grad_bias"))
    p, _ = n.get_parameters()
    for k in range(2):
        assert np.linalg.norm(p[0:100] - n[k].weight.ravel()) == 0
        assert np.linalg.norm(p[100:110] - n[k].bias) == 0
    n.reset()
    assert np.linalg.norm(p[0:100] - n[1].weight.ravel()) == 0
    assert np.linalg.norm(p[100:110] - n[1].bias) == 0
    assert p.size == 110


def test_Module_getParameters_6() -> None:
    """test.lua: nntest.Module_getParameters_6 (sharing clone, then a new module)."""
    n = _seq(_lin())
    n.add(n[0].clone("weight", "bias", "grad_weight", "grad_bias"))
    n.get_parameters()
    n.add(_lin())
    p, _ = n.get_parameters()
    for k in range(2):
        assert np.linalg.norm(p[0:100] - n[k].weight.ravel()) == 0
        assert np.linalg.norm(p[100:110] - n[k].bias) == 0
    assert np.linalg.norm(p[110:210] - n[2].weight.ravel()) == 0
    assert np.linalg.norm(p[210:220] - n[2].bias) == 0
    assert p.size == 2 * 110


def test_Module_getParameters_7() -> None:
    """test.lua: nntest.Module_getParameters_7 (Lua puts one Sequential in two containers; the
    library refuses that with the clone hint, README: reuse is refused; a clone sharing the
    parameters gives Lua's flat vector)."""
    n1, n2 = _seq(_lin()), _seq(_lin())
    _seq(n1, n2).get_parameters()
    with pytest.raises(Exception, match="clone"):
        _seq(n1, nn.Linear(10, 1).double())
    nf = _seq(n1.clone("weight", "bias", "grad_weight", "grad_bias"), nn.Linear(10, 1).double())
    p, _ = nf.get_parameters()
    assert np.linalg.norm(p[0:100] - n1[0].weight.ravel()) == 0
    assert np.linalg.norm(p[100:110] - n1[0].bias) == 0
    assert np.linalg.norm(p[110:120] - nf[1].weight.ravel()) == 0
    assert np.linalg.norm(p[120:121] - nf[1].bias) == 0
    assert p.size == 121


def test_Module_getParameters_8() -> None:
    """test.lua: nntest.Module_getParameters_8 (members taken from two flattened MLPs keep
    their values; with sharing clones here, as a module is in one container only)."""
    def make_mlp() -> Any:
        net = _seq(nn.Linear(10, 10).double(), nn.Linear(10, 10).double())
        net.get_parameters()
        return net

    mlp1, mlp2 = make_mlp(), make_mlp()
    shared = "weight", "bias", "grad_weight", "grad_bias"
    net = _seq(mlp1[0].clone(*shared), mlp2[0].clone(*shared))
    mlp2_copy = mlp2.clone()
    p, _ = net.get_parameters()
    assert np.linalg.norm(p[0:100] - net[0].weight.ravel()) == 0
    assert np.linalg.norm(p[110:210] - net[1].weight.ravel()) == 0
    assert np.linalg.norm(net[0].weight - mlp1[0].weight) == 0
    assert np.linalg.norm(net[1].weight - mlp2_copy[0].weight) == 0


def _typecast_network() -> Any:
    seq = nn.Sequential(nn.Linear(15, 10), nn.Linear(15, 10)).double()
    seq[0].bias[...] = 1
    seq[1].bias[...] = 2
    return seq


def test_Typecast() -> None:
    """test.lua: nntest.Typecast (float() of a float64 net: separate arrays stay separate,
    shared arrays stay shared, views of one buffer, overlapping ones included, stay views of
    one buffer). Lua's tensorCache / recursiveType over a table of nets have no counterpart."""
    net = _typecast_network().float()
    assert net[0].bias.dtype == np.float32
    net[0].bias[...] = 3
    assert net[0].bias[0] == 3 and net[1].bias[0] == 2

    net = _typecast_network()
    net[1].bias = net[0].bias
    net.float()
    assert net[0].bias.dtype == np.float32 and net[0].bias is net[1].bias
    assert net[0].bias[0] == 1

    net = _typecast_network()
    net[1].bias = net[0].bias[...]  # another array object on the same memory (Lua: :set)
    net.float()
    assert net[0].bias.dtype == np.float32 and net[0].bias is not net[1].bias
    net[0].bias[...] = 3
    assert net[0].bias[0] == 3 and net[1].bias[0] == 3

    net = _typecast_network()
    overlap = np.ones(15)
    net[0].bias = overlap[0:10]
    net[1].bias = overlap[5:15]
    net.float()
    assert net[0].bias.dtype == np.float32 and net[0].bias is not net[1].bias
    net[0].bias[...] = 3
    assert net[0].bias[0] == 3 and net[1].bias[0] == 3
    assert net[1].bias[5] == 1  # only the first 5 elements overlapped


def test_Module_apply() -> None:
    """test.lua: nntest.Module_apply (reaches the Linears of nested Sequentials)."""
    s2 = nn.Sequential(nn.Linear(10, 5))
    s = nn.Sequential(nn.Linear(10, 10), s2, nn.Tanh())
    seen = []

    def resize(m: Any) -> None:
        if isinstance(m, nn.Linear):
            m.bias = np.zeros(20, dtype=m.bias.dtype)
            seen.append(m)

    s.apply(resize)
    assert len(seen) == 2
    assert s[0].bias.shape == (20,) and s2[0].bias.shape == (20,)


def test_Module_replace() -> None:
    """test.lua: nntest.Module_replace (in a container, and of a single module)."""
    s = nn.Sequential(nn.Linear(10, 10), nn.Sigmoid())
    s.replace(lambda m: nn.Tanh() if isinstance(m, nn.Sigmoid) else m)
    replaced = nn.Tanh().replace(lambda m: nn.Sigmoid() if isinstance(m, nn.Tanh) else m)
    assert isinstance(s[1], nn.Tanh)
    assert isinstance(replaced, nn.Sigmoid)


def test_Module_listModules() -> None:
    """test.lua: nntest.Module_listModules (Lua's listModules is modules(): depth first, the
    module itself first)."""
    linear, tanh, reshape = nn.Linear(7, 6), nn.Tanh(), nn.Reshape(3, 2)
    mlp3 = nn.Sequential(linear, tanh, reshape)
    view, linear2, tanh2 = nn.View(6), nn.Linear(6, 7), nn.Tanh()
    mlp2 = nn.Sequential(mlp3, view, linear2, tanh2)
    ident = nn.Identity()
    concat = nn.ConcatTable(mlp2, ident)
    add = nn.CAddTable()
    mlp = nn.Sequential(concat, add)
    expected = [mlp, concat, mlp2, mlp3, linear, tanh, reshape, view, linear2, tanh2, ident, add]
    modules = list(mlp.modules())
    assert len(modules) == len(expected)
    assert all(m is e for m, e in zip(modules, expected))
