"""One harness for every module of ``nngraph_py.nn`` (Chainer / tinygrad style).

Each case gives a module factory, host inputs and a plain-NumPy reference of the forward. For each
case and each device (cpu, strict, cuda) the harness checks: the float64 forward against the
reference, the default float32 dtype, and ``gradcheck`` of inputs and parameters (Lua's
``nn.Jacobian``). The strict device proves the module never hands its arrays to NumPy directly.
Repr pins and shape-error messages follow the harness.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from nngraph_py import backend, gradcheck, nn
from nngraph_py.errors import InputError, NNGraphError, ShapeError
from nngraph_py.module import Module


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def to_dev(value: Any, device: str) -> Any:
    """Host arrays (nested in lists) moved to ``device``."""
    if isinstance(value, list):
        return [to_dev(v, device) for v in value]
    return backend.to_device(np.asarray(value), device)


def to_host(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [to_host(v) for v in value]
    return backend.to_numpy(value)


def assert_close(actual: Any, expected: Any, device: str, rtol: float, atol: float,
                 dtype: Any = None) -> None:
    """Recursive comparison; also checks that every output array lives on ``device``."""
    if isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_close(a, e, device, rtol, atol, dtype)
        return
    assert backend.is_array(actual), f"expected an array, got {type(actual).__name__}"
    assert backend.device_of(actual) == device
    if dtype is not None:
        assert actual.dtype == dtype
    host = backend.to_numpy(actual)
    assert host.shape == np.shape(expected)
    np.testing.assert_allclose(host, expected, rtol=rtol, atol=atol)


def P(module: Module, name: str) -> np.ndarray:
    """A parameter of ``module`` as a float64 host array."""
    return backend.to_numpy(getattr(module, name)).astype(np.float64)


def weights_of(m: Module) -> np.ndarray:
    """The class weights of a ModuleFromCriterion's criterion, as float64 host values."""
    return P(m.criterion, "weights")


def away_from_zero(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Values with magnitude in [0.2, 1.2]: safe around kinks (ReLU) and poles (division)."""
    return rng.choice([-1.0, 1.0], size=shape) * (0.2 + rng.random(shape))


def normal(*shapes: tuple) -> Callable[[np.random.Generator], Any]:
    if len(shapes) == 1:
        return lambda r: r.standard_normal(shapes[0])
    return lambda r: [r.standard_normal(s) for s in shapes]


def log_softmax_np(x: np.ndarray) -> np.ndarray:
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def linear_np(m: Module, x: np.ndarray) -> np.ndarray:
    y = x @ P(m, "weight").T
    return y + P(m, "bias") if m.has_bias else y


def sigmoid_np(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def nll_np(logp: np.ndarray, t: np.ndarray, w: np.ndarray | None = None,
           size_average: bool = True) -> float:
    logp2, t1 = np.atleast_2d(logp), np.reshape(t, -1)
    w_t = np.ones(len(t1)) if w is None else w[t1]
    total = -(w_t * logp2[np.arange(len(t1)), t1]).sum()
    return total / w_t.sum() if size_average else total


def torch_fn(name: str, *args: Any, **kwargs: Any) -> np.ndarray:
    """``torch.nn.functional.<name>`` on float64 host arrays (the reference of many cases)."""
    import torch

    conv = [torch.from_numpy(np.asarray(a, dtype=np.float64)) if isinstance(a, np.ndarray)
            else a for a in args]
    with torch.no_grad():
        return getattr(torch.nn.functional, name)(*conv, **kwargs).numpy()


def torch_t(a: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def torch_long(a: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.int64))


def labels(shape: Any, n_classes: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda r: r.integers(0, n_classes, size=shape).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# The cases
# ------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """A module factory, its inputs and the NumPy reference of its forward."""

    name: str
    make: Callable[[], Module]
    inputs: Callable[[np.random.Generator], Any]
    reference: Callable[[Module, Any], Any]
    gradcheck_kwargs: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return self.name


def _seq_mlp_ref(m: Module, x: np.ndarray) -> np.ndarray:
    return linear_np(m[2], np.tanh(linear_np(m[0], x)))


def _graph_readme() -> Module:
    x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(4, 3)(x3)])])
    return nn.gModule([x1, x2, x3], [z])


def _graph_readme_ref(m: Module, x: list) -> np.ndarray:
    lin = next(c for c in m.children() if isinstance(c, nn.Linear))
    return x[0] + x[1] * linear_np(lin, x[2])


def _graph_loss() -> Module:
    x, t = nn.Identity()(), nn.Identity()()
    h = nn.Tanh()(nn.Linear(4, 3)(x))
    loss = nn.CrossEntropyCriterion()([h, t])
    return nn.gModule([x, t], [loss])


def _graph_loss_ref(m: Module, x: list) -> np.ndarray:
    lin = next(c for c in m.children() if isinstance(c, nn.Linear))
    return np.asarray(nll_np(log_softmax_np(np.tanh(linear_np(lin, x[0]))), x[1]))


W3 = np.array([0.2, 1.0, 3.0])

CASES = [
    # Linear: with and without bias, batched and 1-D.
    Case("Linear", lambda: nn.Linear(4, 3), normal((5, 4)), linear_np),
    Case("Linear-1d", lambda: nn.Linear(4, 3), normal((4,)), linear_np),
    Case("Linear-nobias", lambda: nn.Linear(4, 3, bias=False), normal((5, 4)), linear_np),
    Case("Linear-nobias-1d", lambda: nn.Linear(4, 3, bias=False), normal((4,)), linear_np),
    Case("Identity", nn.Identity, normal((3, 4)), lambda m, x: x),
    Case("Identity-list", nn.Identity, normal((3, 4), (2,)), lambda m, x: x),
    # Transfer functions.
    Case("Sigmoid", nn.Sigmoid, normal((3, 4)), lambda m, x: sigmoid_np(x)),
    Case("Tanh", nn.Tanh, normal((3, 4)), lambda m, x: np.tanh(x)),
    Case("ReLU", nn.ReLU, lambda r: away_from_zero(r, (3, 4)), lambda m, x: np.maximum(x, 0)),
    Case("SoftMax", nn.SoftMax, normal((3, 5)), lambda m, x: np.exp(log_softmax_np(x))),
    Case("SoftMax-1d", nn.SoftMax, normal((5,)), lambda m, x: np.exp(log_softmax_np(x))),
    Case("LogSoftMax", nn.LogSoftMax, normal((3, 5)), lambda m, x: log_softmax_np(x)),
    Case("LogSoftMax-1d", nn.LogSoftMax, normal((5,)), lambda m, x: log_softmax_np(x)),
    # Tables.
    Case("CAddTable", nn.CAddTable, normal((2, 3), (2, 3)), lambda m, x: x[0] + x[1]),
    Case("CAddTable-3", nn.CAddTable, normal((2, 3), (2, 3), (2, 3)), lambda m, x: sum(x)),
    Case("CSubTable", nn.CSubTable, normal((2, 3), (2, 3)), lambda m, x: x[0] - x[1]),
    Case("CMulTable", nn.CMulTable, normal((2, 3), (2, 3)), lambda m, x: x[0] * x[1]),
    Case("CMulTable-3", nn.CMulTable, normal((2, 3), (2, 3), (2, 3)),
         lambda m, x: x[0] * x[1] * x[2]),
    Case("CDivTable", nn.CDivTable,
         lambda r: [r.standard_normal((2, 3)), away_from_zero(r, (2, 3))],
         lambda m, x: x[0] / x[1]),
    Case("JoinTable", lambda: nn.JoinTable(1), normal((2, 3), (2, 4)),
         lambda m, x: np.concatenate(x, axis=1)),
    Case("JoinTable-1d", lambda: nn.JoinTable(-1), normal((3,), (2,)),
         lambda m, x: np.concatenate(x)),
    Case("SplitTable", lambda: nn.SplitTable(1), normal((2, 3, 4)),
         lambda m, x: [x[:, i] for i in range(3)]),
    Case("SplitTable-last", lambda: nn.SplitTable(-1), normal((2, 3)),
         lambda m, x: [x[:, i] for i in range(3)]),
    Case("SelectTable", lambda: nn.SelectTable(1), normal((2, 3), (2, 4), (3,)), lambda m, x: x[1]),
    Case("SelectTable-neg", lambda: nn.SelectTable(-1), normal((2, 3), (3,)), lambda m, x: x[-1]),
    Case("NarrowTable", lambda: nn.NarrowTable(1, 2), normal((2,), (3,), (4,), (5,)),
         lambda m, x: x[1:3]),
    # Shapes.
    Case("Narrow", lambda: nn.Narrow(1, 1, 2), normal((3, 5)), lambda m, x: x[:, 1:3]),
    Case("Narrow-to-end", lambda: nn.Narrow(1, 2, -1), normal((3, 5)), lambda m, x: x[:, 2:]),
    Case("Narrow-neg-offset", lambda: nn.Narrow(-1, -3, 2), normal((3, 5)),
         lambda m, x: x[:, 2:4]),
    Case("Narrow-batch-axis", lambda: nn.Narrow(0, 1), normal((4, 3)), lambda m, x: x[1:2]),
    Case("Narrow-1d", lambda: nn.Narrow(0, 2, -2), normal((6,)), lambda m, x: x[2:5]),
    Case("Select", lambda: nn.Select(1, -1), normal((2, 3, 4)), lambda m, x: x[:, -1]),
    Case("Select-batch-axis", lambda: nn.Select(0, 1), normal((3, 2)), lambda m, x: x[1]),
    Case("Reshape", lambda: nn.Reshape(2, 3), normal((4, 6)), lambda m, x: x.reshape(4, 2, 3)),
    Case("Reshape-1d", lambda: nn.Reshape(2, 3), normal((6,)), lambda m, x: x.reshape(2, 3)),
    Case("Reshape-batch-of-one", lambda: nn.Reshape(3, 2), normal((1, 6)),
         lambda m, x: x.reshape(1, 3, 2)),
    Case("Reshape-flatten-example", lambda: nn.Reshape(6), normal((2, 3)),
         lambda m, x: x.reshape(6)),
    Case("Reshape-batch-mode", lambda: nn.Reshape(3, batch_mode=True), normal((2, 3)),
         lambda m, x: x),
    Case("View", lambda: nn.View(2, 3), normal((4, 6)), lambda m, x: x.reshape(4, 2, 3)),
    Case("View-1d", lambda: nn.View(3, -1), normal((12,)), lambda m, x: x.reshape(3, 4)),
    Case("View-num-input-dims", lambda: nn.View(-1, num_input_dims=2), normal((4, 2, 3)),
         lambda m, x: x.reshape(4, 6)),
    # Noise and constants.
    Case("Dropout-evaluate", lambda: nn.Dropout(0.3).evaluate(), normal((3, 4)), lambda m, x: x),
    Case("Dropout-p0", lambda: nn.Dropout(0.0), normal((3, 4)), lambda m, x: x),
    Case("MulConstant", lambda: nn.MulConstant(2.5), normal((3, 4)), lambda m, x: 2.5 * x),
    Case("AddConstant", lambda: nn.AddConstant(-1.5), normal((3, 4)), lambda m, x: x - 1.5),
    # Containers.
    Case("Sequential", lambda: nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)),
         normal((5, 4)), _seq_mlp_ref),
    Case("Sequential-1d", lambda: nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)),
         normal((4,)), _seq_mlp_ref),
    Case("Sequential-empty", nn.Sequential, normal((2, 3)), lambda m, x: x),
    Case("ConcatTable", lambda: nn.ConcatTable(nn.Linear(4, 3), nn.Tanh()), normal((5, 4)),
         lambda m, x: [linear_np(m[0], x), np.tanh(x)]),
    Case("ConcatTable-list-input",
         lambda: nn.ConcatTable(nn.SelectTable(0), nn.CAddTable(), nn.Identity()),
         normal((2, 3), (2, 3)), lambda m, x: [x[0], x[0] + x[1], x]),
    Case("ParallelTable", lambda: nn.ParallelTable(nn.Linear(4, 3), nn.Sigmoid()),
         normal((5, 4), (2,)), lambda m, x: [linear_np(m[0], x[0]), sigmoid_np(x[1])]),
    Case("Sequential-nested",
         lambda: nn.Sequential(nn.ConcatTable(nn.Linear(4, 3), nn.Linear(4, 3)), nn.CAddTable(),
                               nn.Tanh()),
         normal((5, 4)), lambda m, x: np.tanh(linear_np(m[0][0], x) + linear_np(m[0][1], x))),
    Case("ParallelTable-of-Sequential",
         lambda: nn.ParallelTable(nn.Sequential(nn.Linear(3, 2), nn.ReLU()), nn.MulConstant(-2)),
         normal((4, 3), (4, 2)),
         lambda m, x: [np.maximum(linear_np(m[0][0], x[0]), 0), -2 * x[1]]),
    # Criteria, through ModuleFromCriterion (integer targets are not perturbed by gradcheck).
    Case("MSECriterion", lambda: nn.ModuleFromCriterion(nn.MSECriterion()),
         lambda r: [r.standard_normal((3, 4)), r.integers(-2, 3, size=(3, 4))],
         lambda m, x: np.asarray(((x[0] - x[1]) ** 2).mean())),
    Case("MSECriterion-sum", lambda: nn.ModuleFromCriterion(nn.MSECriterion(size_average=False)),
         lambda r: [r.standard_normal((5,)), r.integers(-2, 3, size=(5,))],
         lambda m, x: np.asarray(((x[0] - x[1]) ** 2).sum())),
    Case("ClassNLLCriterion", lambda: nn.ModuleFromCriterion(nn.ClassNLLCriterion()),
         lambda r: [r.standard_normal((4, 3)), labels((4,), 3)(r)],
         lambda m, x: np.asarray(nll_np(x[0], x[1]))),
    Case("ClassNLLCriterion-1d", lambda: nn.ModuleFromCriterion(nn.ClassNLLCriterion()),
         lambda r: [r.standard_normal((3,)), np.asarray(2)],
         lambda m, x: np.asarray(-x[0][2])),
    Case("ClassNLLCriterion-weights", lambda: nn.ModuleFromCriterion(nn.ClassNLLCriterion(W3)),
         lambda r: [r.standard_normal((5, 3)), np.array([0, 2, 2, 1, 0])],
         lambda m, x: np.asarray(nll_np(x[0], x[1], weights_of(m)))),
    Case("ClassNLLCriterion-weights-sum",
         lambda: nn.ModuleFromCriterion(nn.ClassNLLCriterion(W3, size_average=False)),
         lambda r: [r.standard_normal((5, 3)), np.array([0, 2, 2, 1, 0])],
         lambda m, x: np.asarray(nll_np(x[0], x[1], weights_of(m),
                                              size_average=False))),
    Case("CrossEntropyCriterion", lambda: nn.ModuleFromCriterion(nn.CrossEntropyCriterion()),
         lambda r: [r.standard_normal((4, 3)), labels((4,), 3)(r)],
         lambda m, x: np.asarray(nll_np(log_softmax_np(x[0]), x[1]))),
    Case("CrossEntropyCriterion-1d", lambda: nn.ModuleFromCriterion(nn.CrossEntropyCriterion()),
         lambda r: [r.standard_normal((3,)), np.array([1])],
         lambda m, x: np.asarray(-log_softmax_np(x[0])[1])),
    Case("CrossEntropyCriterion-weights",
         lambda: nn.ModuleFromCriterion(nn.CrossEntropyCriterion(W3)),
         lambda r: [r.standard_normal((5, 3)), np.array([0, 2, 2, 1, 0])],
         lambda m, x: np.asarray(nll_np(log_softmax_np(x[0]), x[1], weights_of(m)))),
    # Graphs.
    Case("gModule", _graph_readme, normal((2, 3), (2, 3), (2, 4)), _graph_readme_ref),
    Case("gModule-loss", _graph_loss, lambda r: [r.standard_normal((3, 4)), labels((3,), 3)(r)],
         _graph_loss_ref),
]

# ------------------------------------------------------------------------------------------------
# The catalogue (issue 13): one family per block, references from PyTorch or independent NumPy
# ------------------------------------------------------------------------------------------------
CASES += [
    # Embeddings (nn/embedding.py).
    Case("LookupTable", lambda: nn.LookupTable(6, 3), lambda r: np.array([[0, 5, 2], [2, 2, 1]]),
         lambda m, x: P(m, "weight")[x]),
    Case("LookupTable-1d-repeats", lambda: nn.LookupTable(4, 2), lambda r: np.array([3, 3, 0, 3]),
         lambda m, x: P(m, "weight")[x]),
    Case("OneHot", lambda: nn.OneHot(4), lambda r: np.array([[0, 3], [1, 1]]),
         lambda m, x: np.eye(4)[x]),
    # Transfer functions (nn/transfer.py); references from torch.nn.functional.
    Case("Abs", nn.Abs, lambda r: away_from_zero(r, (3, 4)), lambda m, x: np.abs(x)),
    Case("Square", nn.Square, normal((3, 4)), lambda m, x: x * x),
    Case("Sqrt", nn.Sqrt, lambda r: 0.5 + r.random((3, 4)), lambda m, x: np.sqrt(x)),
    Case("Sqrt-eps", lambda: nn.Sqrt(0.1), lambda r: 0.5 + r.random((4,)),
         lambda m, x: np.sqrt(x + 0.1)),
    Case("Power", lambda: nn.Power(3), normal((3, 4)), lambda m, x: x ** 3),
    Case("Power-frac", lambda: nn.Power(0.5), lambda r: 0.5 + r.random((3, 4)),
         lambda m, x: x ** 0.5),
    Case("Exp", nn.Exp, normal((3, 4)), lambda m, x: np.exp(x)),
    Case("Log", nn.Log, lambda r: 0.5 + r.random((3, 4)), lambda m, x: np.log(x)),
    Case("Clamp", lambda: nn.Clamp(-0.5, 0.3), lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: np.clip(x, -0.5, 0.3)),
    Case("HardTanh", nn.HardTanh, lambda r: 1.7 * away_from_zero(r, (3, 4)),
         lambda m, x: torch_fn("hardtanh", x)),
    Case("ReLU6", nn.ReLU6, lambda r: 5 * away_from_zero(r, (3, 4)) + 3,
         lambda m, x: torch_fn("relu6", x)),
    Case("Threshold", lambda: nn.Threshold(0.1, -2.0), lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: torch_fn("threshold", x, 0.1, -2.0)),
    Case("HardShrink", nn.HardShrink, lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: torch_fn("hardshrink", x, 0.5)),
    Case("SoftShrink", lambda: nn.SoftShrink(0.3), lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: torch_fn("softshrink", x, 0.3)),
    Case("SoftPlus", nn.SoftPlus, normal((3, 4)), lambda m, x: torch_fn("softplus", x)),
    Case("SoftPlus-beta", lambda: nn.SoftPlus(2.0, 3.0), lambda r: 2 * r.standard_normal((3, 4)),
         lambda m, x: torch_fn("softplus", x, 2.0, 3.0)),
    Case("SoftSign", nn.SoftSign, lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: torch_fn("softsign", x)),
    Case("LogSigmoid", nn.LogSigmoid, normal((3, 4)), lambda m, x: torch_fn("logsigmoid", x)),
    Case("SoftMin", nn.SoftMin, normal((3, 5)), lambda m, x: torch_fn("softmin", x, -1)),
    Case("SoftMin-1d", nn.SoftMin, normal((5,)), lambda m, x: torch_fn("softmin", x, -1)),
    Case("ELU", lambda: nn.ELU(0.7), lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: torch_fn("elu", x, 0.7)),
    Case("LeakyReLU", lambda: nn.LeakyReLU(0.1), lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: torch_fn("leaky_relu", x, 0.1)),
    Case("PReLU", nn.PReLU, lambda r: away_from_zero(r, (3, 4)),
         lambda m, x: np.where(x > 0, x, P(m, "weight")[0] * x)),
    Case("PReLU-planes", lambda: nn.PReLU(3), lambda r: away_from_zero(r, (2, 3, 2, 2)),
         lambda m, x: torch_fn("prelu", x, P(m, "weight"))),
    Case("PReLU-planes-1d", lambda: nn.PReLU(3), lambda r: away_from_zero(r, (3,)),
         lambda m, x: np.where(x > 0, x, P(m, "weight") * x)),
    Case("GatedLinearUnit", nn.GatedLinearUnit, normal((3, 4)), lambda m, x: torch_fn("glu", x)),
    Case("GatedLinearUnit-dim0", lambda: nn.GatedLinearUnit(0), normal((4, 3)),
         lambda m, x: torch_fn("glu", x, 0)),
    Case("Normalize", nn.Normalize, normal((3, 4)),
         lambda m, x: x / np.sqrt((x * x).sum(-1, keepdims=True) + 1e-10)),
    Case("Normalize-p1-1d", lambda: nn.Normalize(1), lambda r: away_from_zero(r, (4,)),
         lambda m, x: x / (np.abs(x).sum() + 1e-10)),
    Case("Normalize-p3", lambda: nn.Normalize(3), normal((2, 4)),
         lambda m, x: x / ((np.abs(x) ** 3).sum(-1, keepdims=True) + 1e-10) ** (1 / 3)),
    Case("Normalize-inf", lambda: nn.Normalize(np.inf), normal((3, 4)),
         lambda m, x: x / (np.abs(x).max(-1, keepdims=True) + 1e-10)),
    Case("Mul", nn.Mul, normal((3, 4)), lambda m, x: P(m, "weight")[0] * x),
    Case("Add", lambda: nn.Add(4), normal((3, 4)), lambda m, x: x + P(m, "bias")),
    Case("Add-1example", lambda: nn.Add(6), normal((2, 3)),
         lambda m, x: x + P(m, "bias").reshape(2, 3)),
    Case("Add-scalar", lambda: nn.Add(1, scalar=True), normal((3, 4)),
         lambda m, x: x + P(m, "bias")[0]),
    Case("Bilinear", lambda: nn.Bilinear(3, 4, 2), normal((5, 3), (5, 4)),
         lambda m, x: torch_fn("bilinear", x[0], x[1], P(m, "weight"), P(m, "bias"))),
    Case("Bilinear-nobias", lambda: nn.Bilinear(3, 2, 4, bias=False), normal((2, 3), (2, 2)),
         lambda m, x: torch_fn("bilinear", x[0], x[1], P(m, "weight"))),
    # Reductions (nn/reduction.py): Lua's dimension - 1, nInputDims shifting for batches.
    Case("Sum", nn.Sum, normal((3, 4)), lambda m, x: x.sum(0)),
    Case("Sum-num-input-dims", lambda: nn.Sum(0, num_input_dims=1), normal((3, 4)),
         lambda m, x: x.sum(1)),
    Case("Sum-size-average-keep", lambda: nn.Sum(-1, size_average=True, squeeze=False),
         normal((2, 3, 4)), lambda m, x: x.mean(-1, keepdims=True)),
    Case("Mean", lambda: nn.Mean(1), normal((2, 3, 4)), lambda m, x: x.mean(1)),
    Case("Max", lambda: nn.Max(1), normal((3, 5)), lambda m, x: x.max(1)),
    Case("Max-num-input-dims", lambda: nn.Max(1, num_input_dims=2), normal((2, 3, 4)),
         lambda m, x: x.max(2)),
    Case("Min", lambda: nn.Min(0), normal((3, 5)), lambda m, x: x.min(0)),
    Case("Min-keep", lambda: nn.Min(-1, squeeze=False), normal((4,)),
         lambda m, x: x.min(-1, keepdims=True)),
    # Shape and selection (nn/selection.py).
    Case("Replicate", lambda: nn.Replicate(3), normal((2, 4)),
         lambda m, x: np.broadcast_to(x, (3, 2, 4))),
    Case("Replicate-dim-batched", lambda: nn.Replicate(3, 1, num_input_dims=1), normal((2, 4)),
         lambda m, x: np.repeat(x[:, None, :], 3, axis=1)[:, :, None, :].squeeze(2)
         if False else np.repeat(x[:, :, None], 3, axis=2)),
    Case("Transpose", lambda: nn.Transpose((0, 1), (1, 2)), normal((2, 3, 4)),
         lambda m, x: x.transpose(1, 2, 0)),
    Case("Squeeze", nn.Squeeze, normal((2, 1, 3, 1)), lambda m, x: x.reshape(2, 3)),
    Case("Squeeze-dim", lambda: nn.Squeeze(1), normal((1, 1, 3)), lambda m, x: x.reshape(1, 3)),
    Case("Unsqueeze", lambda: nn.Unsqueeze(1), normal((2, 3)), lambda m, x: x[:, None]),
    Case("Unsqueeze-batched", lambda: nn.Unsqueeze(0, num_input_dims=1), normal((2, 3)),
         lambda m, x: x[:, None]),
    Case("Padding-after", lambda: nn.Padding(1, 2, value=-1.0), normal((2, 3)),
         lambda m, x: np.pad(x, ((0, 0), (0, 2)), constant_values=-1.0)),
    Case("Padding-before", lambda: nn.Padding(0, -1, num_input_dims=1), normal((2, 3)),
         lambda m, x: np.pad(x, ((0, 0), (1, 0)))),
    Case("Padding-index", lambda: nn.Padding(0, -2, index=1), normal((3,)),
         lambda m, x: np.concatenate([x[:1], [0, 0], x[1:]])),
    Case("Index", lambda: nn.Index(1), lambda r: [r.standard_normal((2, 4)), np.array([3, 0, 3])],
         lambda m, x: x[0][:, x[1]]),
    Case("MaskedSelect", nn.MaskedSelect,
         lambda r: [r.standard_normal((3, 4)), r.random((3, 4)) > 0.5],
         lambda m, x: x[0][x[1]]),
    Case("Contiguous", lambda: nn.Sequential(nn.Transpose((0, 1)), nn.Contiguous()),
         normal((2, 3)), lambda m, x: x.T),
    Case("Copy", nn.Copy, normal((2, 3)), lambda m, x: x),
    Case("Bottle", lambda: nn.Bottle(nn.Linear(4, 3)), normal((2, 5, 4)),
         lambda m, x: linear_np(m.module, x)),
    Case("Bottle-2d-input", lambda: nn.Bottle(nn.Sequential(nn.Linear(4, 3), nn.Tanh())),
         normal((5, 4)), lambda m, x: np.tanh(linear_np(m.module[0], x))),
    # Tables (nn/table_math.py, nn/table_structure.py).
    Case("CMaxTable", nn.CMaxTable, normal((2, 3), (2, 3), (2, 3)),
         lambda m, x: np.maximum(np.maximum(x[0], x[1]), x[2])),
    Case("CMinTable", nn.CMinTable, normal((2, 3), (2, 3)), lambda m, x: np.minimum(x[0], x[1])),
    Case("CAveTable", nn.CAveTable, normal((2, 3), (2, 3), (2, 3)), lambda m, x: sum(x) / 3),
    Case("DotProduct", nn.DotProduct, normal((3, 4), (3, 4)), lambda m, x: (x[0] * x[1]).sum(1)),
    Case("DotProduct-1d", nn.DotProduct, normal((4,), (4,)),
         lambda m, x: np.asarray((x[0] * x[1]).sum())),
    Case("CosineDistance", nn.CosineDistance, normal((3, 4), (3, 4)),
         lambda m, x: torch_fn("cosine_similarity", x[0], x[1], dim=-1, eps=0.0)),
    Case("PairwiseDistance", nn.PairwiseDistance, normal((3, 4), (3, 4)),
         lambda m, x: np.linalg.norm(x[0] - x[1], axis=1)),
    Case("PairwiseDistance-p1", lambda: nn.PairwiseDistance(1), normal((3, 4), (3, 4)),
         lambda m, x: np.abs(x[0] - x[1]).sum(1)),
    Case("PairwiseDistance-p3-1d", lambda: nn.PairwiseDistance(3), normal((4,), (4,)),
         lambda m, x: np.asarray((np.abs(x[0] - x[1]) ** 3).sum() ** (1 / 3))),
    Case("MM", nn.MM, normal((2, 3), (3, 4)), lambda m, x: x[0] @ x[1]),
    Case("MM-batched-transposed", lambda: nn.MM(True, True), normal((2, 3, 4), (2, 5, 3)),
         lambda m, x: x[0].transpose(0, 2, 1) @ x[1].transpose(0, 2, 1)),
    Case("MixtureTable-list", nn.MixtureTable,
         lambda r: [r.random((2, 3)), [r.standard_normal((2, 4)) for _ in range(3)]],
         lambda m, x: sum(x[0][:, i:i + 1] * x[1][i] for i in range(3))),
    Case("MixtureTable-tensor", nn.MixtureTable,
         lambda r: [r.random((2, 3)), r.standard_normal((2, 3, 4))],
         lambda m, x: (x[0][:, :, None] * x[1]).sum(1)),
    Case("MixtureTable-1example", nn.MixtureTable,
         lambda r: [r.random((3,)), r.standard_normal((3, 4))],
         lambda m, x: (x[0][:, None] * x[1]).sum(0)),
    Case("MapTable", lambda: nn.MapTable(nn.Linear(3, 2)), normal((4, 3), (2, 3), (3,)),
         lambda m, x: [linear_np(m.module, v) for v in x]),
    Case("FlattenTable", nn.FlattenTable,
         lambda r: [r.standard_normal((2,)), [r.standard_normal((3,)), [r.standard_normal((1,))]]],
         lambda m, x: [x[0], x[1][0], x[1][1][0]]),
    Case("CriterionTable", lambda: nn.CriterionTable(nn.MSECriterion()),
         lambda r: [r.standard_normal((3, 4)), r.integers(-2, 3, size=(3, 4))],
         lambda m, x: np.asarray(((x[0] - x[1]) ** 2).mean())),
]


def signs(shape: Any) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda r: r.choice([-1, 1], size=shape)


def crit(c: Any) -> Callable[[], Module]:
    return lambda: nn.ModuleFromCriterion(c())


def bce_np(x: np.ndarray, t: np.ndarray, w: Any = 1.0, mean: bool = True) -> np.ndarray:
    v = -w * (t * np.log(x + 1e-12) + (1 - t) * np.log(1 - x + 1e-12))
    return np.asarray(v.mean() if mean else v.sum())


def cos_embed_np(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, margin: float) -> np.ndarray:
    cos = (x1 * x2).sum(1) / np.sqrt(((x1 ** 2).sum(1) + 1e-12) * ((x2 ** 2).sum(1) + 1e-12))
    return np.asarray(np.where(y > 0, 1 - cos, np.maximum(cos - margin, 0)).mean())


PROB = lambda r: 0.1 + 0.8 * r.random((3, 4))  # noqa: E731
W4 = np.array([0.5, 1.0, 2.0, 0.3])

# Criteria (nn/criteria.py), as graph modules; integer targets are not perturbed by gradcheck.
CASES += [
    Case("BCECriterion", crit(nn.BCECriterion), lambda r: [PROB(r), r.integers(0, 2, (3, 4))],
         lambda m, x: bce_np(x[0], x[1])),
    Case("BCECriterion-weights-sum",
         crit(lambda: nn.BCECriterion(W4, size_average=False)),
         lambda r: [PROB(r), r.integers(0, 2, (3, 4))],
         lambda m, x: bce_np(x[0], x[1], weights_of(m), mean=False)),
    Case("AbsCriterion", crit(nn.AbsCriterion), lambda r: [r.standard_normal((3, 4)),
                                                           r.integers(-2, 3, (3, 4))],
         lambda m, x: torch_fn("l1_loss", x[0], x[1].astype(float))),
    Case("AbsCriterion-sum", crit(lambda: nn.AbsCriterion(False)),
         lambda r: [r.standard_normal((5,)), r.integers(-2, 3, (5,))],
         lambda m, x: torch_fn("l1_loss", x[0], x[1].astype(float), reduction="sum")),
    Case("SmoothL1Criterion", crit(nn.SmoothL1Criterion),
         lambda r: [2 * r.standard_normal((3, 4)), r.integers(-2, 3, (3, 4))],
         lambda m, x: torch_fn("smooth_l1_loss", x[0], x[1].astype(float))),
    Case("DistKLDivCriterion", crit(nn.DistKLDivCriterion),
         lambda r: [r.standard_normal((3, 4)), r.integers(0, 3, (3, 4))],
         lambda m, x: np.asarray(np.where(x[1] > 0, x[1] * (np.log(np.maximum(x[1], 1))
                                                             - x[0]), 0).mean())),
    Case("MarginCriterion", crit(lambda: nn.MarginCriterion(0.7)),
         lambda r: [r.standard_normal((3, 4)), signs((3, 4))(r)],
         lambda m, x: np.asarray(np.maximum(0.7 - x[0] * x[1], 0).mean())),
    Case("SoftMarginCriterion", crit(nn.SoftMarginCriterion),
         lambda r: [r.standard_normal((3, 4)), signs((3, 4))(r)],
         lambda m, x: torch_fn("soft_margin_loss", x[0], x[1].astype(float))),
    Case("MultiMarginCriterion", crit(nn.MultiMarginCriterion),
         lambda r: [r.standard_normal((5, 4)), r.integers(0, 4, (5,))],
         lambda m, x: torch_fn("multi_margin_loss", x[0], torch_long(x[1]))),
    Case("MultiMarginCriterion-p2-weights-margin",
         crit(lambda: nn.MultiMarginCriterion(2, W4, margin=0.5)),
         lambda r: [r.standard_normal((5, 4)), r.integers(0, 4, (5,))],
         lambda m, x: torch_fn("multi_margin_loss", x[0], torch_long(x[1]), p=2, margin=0.5,
                               weight=torch_t(weights_of(m)))),
    Case("MultiMarginCriterion-1d-sum", crit(lambda: nn.MultiMarginCriterion(
        size_average=False)), lambda r: [r.standard_normal((4,)), np.array(2)],
         lambda m, x: torch_fn("multi_margin_loss", x[0][None], torch_long(x[1][None]),
                               reduction="sum")),
    Case("MultiLabelSoftMarginCriterion", crit(nn.MultiLabelSoftMarginCriterion),
         lambda r: [r.standard_normal((3, 4)), r.integers(0, 2, (3, 4))],
         lambda m, x: torch_fn("multilabel_soft_margin_loss", x[0], x[1].astype(float))),
    Case("MultiLabelSoftMarginCriterion-weights",
         crit(lambda: nn.MultiLabelSoftMarginCriterion(W4)),
         lambda r: [r.standard_normal((3, 4)), r.integers(0, 2, (3, 4))],
         lambda m, x: torch_fn("multilabel_soft_margin_loss", x[0], x[1].astype(float),
                               weight=torch_t(weights_of(m)))),
    Case("HingeEmbeddingCriterion", crit(lambda: nn.HingeEmbeddingCriterion(0.8)),
         lambda r: [r.random((3, 4)) * 1.5, signs((3, 4))(r)],
         lambda m, x: torch_fn("hinge_embedding_loss", x[0], x[1].astype(float), margin=0.8)),
    Case("CosineEmbeddingCriterion",
         lambda: nn.CriterionTable(nn.CosineEmbeddingCriterion(0.1), n_predictions=2),
         lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3)), signs((4,))(r)],
         lambda m, x: cos_embed_np(x[0], x[1], x[2], 0.1)),
    Case("MarginRankingCriterion",
         lambda: nn.CriterionTable(nn.MarginRankingCriterion(0.5), n_predictions=2),
         lambda r: [r.standard_normal((5,)), r.standard_normal((5,)), signs((5,))(r)],
         lambda m, x: torch_fn("margin_ranking_loss", x[0], x[1], x[2].astype(float),
                               margin=0.5)),
    Case("MultiCriterion",
         crit(lambda: nn.MultiCriterion().add(nn.MSECriterion()).add(nn.AbsCriterion(), 0.5)),
         lambda r: [r.standard_normal((3, 4)), r.integers(-2, 3, (3, 4))],
         lambda m, x: np.asarray(((x[0] - x[1]) ** 2).mean() + 0.5 * np.abs(x[0] - x[1]).mean())),
    Case("ParallelCriterion",
         lambda: nn.CriterionTable(nn.ParallelCriterion().add(nn.MSECriterion(), 2.0)
                                   .add(nn.ClassNLLCriterion()), n_predictions=2),
         lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 5)),
                    r.integers(-2, 3, (3, 4)), r.integers(0, 5, (3,))],
         lambda m, x: np.asarray(2 * ((x[0] - x[2]) ** 2).mean() + nll_np(x[1], x[3]))),
    Case("ParallelCriterion-repeat-target",
         lambda: nn.CriterionTable(nn.ParallelCriterion(True).add(nn.MSECriterion())
                                   .add(nn.AbsCriterion(), 0.3), n_predictions=2),
         lambda r: [r.standard_normal((4,)), r.standard_normal((4,)), r.integers(-2, 3, (4,))],
         lambda m, x: np.asarray(((x[0] - x[2]) ** 2).mean() + 0.3 * np.abs(x[1] - x[2]).mean())),
]




def bn_np(x: np.ndarray, m: Module, eps: float = 1e-5) -> np.ndarray:
    axes = tuple(a for a in range(x.ndim) if a != 1)
    shape = [1] * x.ndim
    shape[1] = -1
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    if m.affine:
        y = y * P(m, "weight").reshape(shape) + P(m, "bias").reshape(shape)
    return y


def temporal_conv_np(m: Module, x: np.ndarray) -> np.ndarray:
    w = P(m, "weight").reshape(m.out_frame, m.kw, m.in_frame).transpose(0, 2, 1)
    xt = x.transpose(0, 2, 1) if x.ndim == 3 else x.T[None]
    y = torch_fn("conv1d", xt, w, P(m, "bias"), stride=m.dw)
    return y.transpose(0, 2, 1) if x.ndim == 3 else y[0].T


def conv_ref(m: Module, x: np.ndarray) -> np.ndarray:
    x4 = x if x.ndim == 4 else x[None]
    y = torch_fn("conv2d", x4, P(m, "weight"), P(m, "bias") if m.has_bias else None,
                 stride=(m.dh, m.dw), padding=(m.pad_h, m.pad_w))
    return y if x.ndim == 4 else y[0]


def images(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    """Distinct values (a permutation), so that a max-pooling window never has a tie."""
    return lambda r: (r.permutation(int(np.prod(shape))).reshape(shape) / np.prod(shape)
                      - 0.5) * 4


# Normalization, regularization, convolutions and pooling (nn/normalization.py,
# nn/regularization.py, nn/convolution.py, nn/pooling.py).
CASES += [
    Case("BatchNormalization", lambda: nn.BatchNormalization(3), normal((5, 3)),
         lambda m, x: bn_np(x, m)),
    Case("BatchNormalization-3d-noaffine", lambda: nn.BatchNormalization(3, affine=False),
         normal((2, 3, 4)), lambda m, x: bn_np(x, m)),
    Case("BatchNormalization-evaluate", lambda: nn.BatchNormalization(3).evaluate(),
         normal((5, 3)),
         lambda m, x: x / np.sqrt(1 + 1e-5) * P(m, "weight") + P(m, "bias")),
    Case("SpatialBatchNormalization", lambda: nn.SpatialBatchNormalization(2, eps=1e-3),
         normal((3, 2, 2, 3)), lambda m, x: bn_np(x, m, 1e-3)),
    Case("LayerNormalization", lambda: nn.LayerNormalization(4), normal((3, 4)),
         lambda m, x: torch_fn("layer_norm", x, (4,), P(m, "weight"), P(m, "bias"))),
    Case("LayerNormalization-3d-noaffine", lambda: nn.LayerNormalization(5, affine=False),
         normal((2, 3, 5)), lambda m, x: torch_fn("layer_norm", x, (5,))),
    Case("SpatialDropout-evaluate", lambda: nn.SpatialDropout(0.25).evaluate(),
         normal((2, 3, 2, 2)), lambda m, x: 0.75 * x),
    Case("SpatialDropout-p0", lambda: nn.SpatialDropout(0.0), normal((3, 2, 2)), lambda m, x: x),
    Case("WhiteNoise-evaluate", lambda: nn.WhiteNoise(0.5, 2).evaluate(), normal((3, 4)),
         lambda m, x: x),
    Case("WhiteNoise-std0", lambda: nn.WhiteNoise(0.5, 0.0), normal((3, 4)),
         lambda m, x: x + 0.5),
    # These two change the gradient on purpose: their backward is checked in
    # tests/nn/test_nn_catalogue.py.
    Case("L1Penalty", lambda: nn.L1Penalty(0.1), normal((3, 4)), lambda m, x: x,
         dict(check_inputs=False)),
    Case("GradientReversal", lambda: nn.GradientReversal(0.5), normal((3, 4)), lambda m, x: x,
         dict(check_inputs=False)),
    Case("TemporalConvolution", lambda: nn.TemporalConvolution(3, 2, 3), normal((2, 6, 3)),
         temporal_conv_np),
    Case("TemporalConvolution-stride-1example", lambda: nn.TemporalConvolution(2, 4, 2, 3),
         normal((8, 2)), temporal_conv_np),
    Case("SpatialConvolution", lambda: nn.SpatialConvolution(2, 3, 3, 3), normal((2, 2, 5, 5)),
         conv_ref),
    Case("SpatialConvolution-stride-pad-rect",
         lambda: nn.SpatialConvolution(2, 3, 3, 2, 2, 1, 1, 0), normal((2, 2, 5, 6)), conv_ref),
    Case("SpatialConvolution-1image-nobias",
         lambda: nn.SpatialConvolution(1, 2, 2, 2, 1, 1, 1, 1, bias=False), normal((1, 4, 3)),
         conv_ref),
    Case("SpatialMaxPooling", lambda: nn.SpatialMaxPooling(2, 2), images(2, 2, 4, 6),
         lambda m, x: torch_fn("max_pool2d", x, (2, 2))),
    Case("SpatialMaxPooling-overlap-pad",
         lambda: nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1), images(2, 1, 5, 5),
         lambda m, x: torch_fn("max_pool2d", x, 3, 2, 1)),
    Case("SpatialMaxPooling-ceil-1image", lambda: nn.SpatialMaxPooling(2, 2).ceil(),
         images(2, 5, 5), lambda m, x: torch_fn("max_pool2d", x[None], 2, ceil_mode=True)[0]),
    Case("SpatialAveragePooling", lambda: nn.SpatialAveragePooling(2, 2, 2, 2), normal((2, 2, 4, 4)),
         lambda m, x: torch_fn("avg_pool2d", x, 2)),
    Case("SpatialAveragePooling-stride1-default", lambda: nn.SpatialAveragePooling(3, 2),
         normal((1, 2, 4, 5)), lambda m, x: torch_fn("avg_pool2d", x, (2, 3), 1)),
    Case("SpatialAveragePooling-pad-ceil",
         lambda: nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1).ceil(), normal((1, 2, 6, 6)),
         lambda m, x: torch_fn("avg_pool2d", x, 3, 2, 1, ceil_mode=True)),
    Case("SpatialAveragePooling-exclude-pad",
         lambda: nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1, count_include_pad=False),
         normal((1, 1, 5, 5)),
         lambda m, x: torch_fn("avg_pool2d", x, 3, 2, 1, count_include_pad=False)),
    Case("SpatialZeroPadding", lambda: nn.SpatialZeroPadding(1, 2, 0, 1), normal((2, 1, 3, 3)),
         lambda m, x: np.pad(x, ((0, 0), (0, 0), (0, 1), (1, 2)))),
    Case("SpatialZeroPadding-crop", lambda: nn.SpatialZeroPadding(-1, 1, 2, -2),
         normal((2, 4, 4)), lambda m, x: np.pad(x, ((0, 0), (2, 0), (0, 1)))[:, :-2, 1:]),
    Case("SpatialUpSamplingNearest", lambda: nn.SpatialUpSamplingNearest(2), normal((2, 1, 2, 3)),
         lambda m, x: torch_fn("interpolate", x, scale_factor=2, mode="nearest")),
    # What users of these families reach for next.
    Case("SpatialDilatedConvolution",
         lambda: nn.SpatialDilatedConvolution(2, 3, 3, 2, 1, 2, 1, 1, 2, 1), normal((2, 2, 6, 5)),
         lambda m, x: torch_fn("conv2d", x, P(m, "weight"), P(m, "bias"), stride=(2, 1),
                               padding=(1, 1), dilation=(1, 2))),
    Case("SpatialFullConvolution", lambda: nn.SpatialFullConvolution(2, 3, 3, 3, 2, 2, 1, 1, 1, 1),
         normal((2, 2, 3, 4)),
         lambda m, x: torch_fn("conv_transpose2d", x, P(m, "weight"), P(m, "bias"), stride=2,
                               padding=1, output_padding=1)),
    Case("SpatialFullConvolution-1image-nobias",
         lambda: nn.SpatialFullConvolution(1, 2, 2, 3, bias=False), normal((1, 3, 2)),
         lambda m, x: torch_fn("conv_transpose2d", x[None], P(m, "weight"))[0]),
    Case("TemporalMaxPooling", lambda: nn.TemporalMaxPooling(2), images(2, 6, 3),
         lambda m, x: torch_fn("max_pool1d", x.transpose(0, 2, 1), 2).transpose(0, 2, 1)),
    Case("TemporalMaxPooling-overlap-1seq", lambda: nn.TemporalMaxPooling(3, 2), images(7, 2),
         lambda m, x: torch_fn("max_pool1d", x.T[None], 3, 2)[0].T),
    Case("SpatialReflectionPadding", lambda: nn.SpatialReflectionPadding(1, 2, 2, 0),
         normal((2, 1, 3, 4)), lambda m, x: np.pad(x, ((0, 0), (0, 0), (2, 0), (1, 2)), "reflect")),
    Case("SpatialReplicationPadding", lambda: nn.SpatialReplicationPadding(2, 0, 1, 3),
         normal((2, 3, 3)), lambda m, x: np.pad(x, ((0, 0), (1, 3), (2, 0)), "edge")),
    Case("PixelShuffle", lambda: nn.PixelShuffle(2), normal((2, 8, 2, 3)),
         lambda m, x: torch_fn("pixel_shuffle", x, 2)),
    Case("SpatialSoftMax", nn.SpatialSoftMax, normal((2, 3, 2, 2)),
         lambda m, x: torch_fn("softmax", x, 1)),
    Case("SpatialLogSoftMax-1image", nn.SpatialLogSoftMax, normal((3, 2, 2)),
         lambda m, x: torch_fn("log_softmax", x, 0)),
    Case("CReLU", lambda: nn.CReLU(3), lambda r: away_from_zero(r, (2, 2, 3, 2)),
         lambda m, x: np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)], 1)),
    Case("CReLU-1example", lambda: nn.CReLU(1), lambda r: away_from_zero(r, (4,)),
         lambda m, x: np.concatenate([np.maximum(x, 0), np.maximum(-x, 0)])),
    Case("Euclidean", lambda: nn.Euclidean(3, 4), normal((5, 3)),
         lambda m, x: np.sqrt(((x[:, :, None] - P(m, "weight")[None]) ** 2).sum(1))),
    Case("Euclidean-1d", lambda: nn.Euclidean(3, 2), normal((3,)),
         lambda m, x: np.sqrt(((x[:, None] - P(m, "weight")) ** 2).sum(0))),
]



def cosine_np(m: Module, x: np.ndarray) -> np.ndarray:
    w = P(m, "weight")
    x2 = np.atleast_2d(x)
    y = x2 @ w.T / (np.linalg.norm(w, axis=1) + 1e-12) / (
        np.linalg.norm(x2, axis=1, keepdims=True) + 1e-12)
    return y if x.ndim == 2 else y[0]


CASES += [
    Case("SpatialConvolutionMM", lambda: nn.SpatialConvolutionMM(2, 2, 3, 3, 1, 1, 1, 1),
         normal((2, 2, 4, 4)), conv_ref),
    Case("SpatialDilatedMaxPooling", lambda: nn.SpatialDilatedMaxPooling(2, 2, 1, 1, 1, 1, 2, 2),
         images(2, 2, 5, 5),
         lambda m, x: torch_fn("max_pool2d", x, 2, 1, 1, dilation=2)),
    Case("MV", nn.MV, normal((3, 4), (4,)), lambda m, x: x[0] @ x[1]),
    Case("MV-batched-trans", lambda: nn.MV(True), normal((2, 4, 3), (2, 4)),
         lambda m, x: np.einsum("bmn,bm->bn", x[0], x[1])),
    Case("ZipTable", nn.ZipTable,
         lambda r: [[r.standard_normal(2), r.standard_normal(3)],
                    [r.standard_normal(1), r.standard_normal(4)]],
         lambda m, x: [[x[0][0], x[1][0]], [x[0][1], x[1][1]]]),
    Case("ZipTableOneToMany", nn.ZipTableOneToMany,
         lambda r: [r.standard_normal(2), [r.standard_normal(3), r.standard_normal(1)]],
         lambda m, x: [[x[0], x[1][0]], [x[0], x[1][1]]]),
    Case("Collapse", lambda: nn.Collapse(2), normal((3, 2, 4)), lambda m, x: x.reshape(3, 8)),
    Case("Collapse-1example", lambda: nn.Collapse(2), normal((2, 4)), lambda m, x: x.reshape(8)),
    Case("Constant-batched", lambda: nn.Sequential(nn.ConcatTable(
        nn.Constant(np.array([1.5, -2.0]), 1), nn.Identity()), nn.JoinTable(1)),
         normal((3, 4)), lambda m, x: np.concatenate([np.tile([1.5, -2.0], (3, 1)), x], 1)),
    Case("ZeroGrad", lambda: nn.Sequential(nn.ConcatTable(nn.ZeroGrad(), nn.Identity()),
                                           nn.CAddTable()),
         normal((2, 3)), lambda m, x: 2 * x, dict(check_inputs=False)),  # see test_nn_catalogue
    Case("TanhShrink", nn.TanhShrink, normal((3, 4)), lambda m, x: torch_fn("tanhshrink", x)),
    Case("Cosine", lambda: nn.Cosine(3, 4), normal((5, 3)), cosine_np),
    Case("Cosine-1d", lambda: nn.Cosine(3, 2), normal((3,)), cosine_np),
    Case("L1Cost", crit(nn.L1Cost), lambda r: [away_from_zero(r, (3, 4)), np.zeros(1, int)],
         lambda m, x: np.asarray(np.abs(x[0]).sum())),
    Case("SpatialAdaptiveAveragePooling", lambda: nn.SpatialAdaptiveAveragePooling(3, 2),
         normal((2, 2, 5, 7)), lambda m, x: torch_fn("adaptive_avg_pool2d", x, (2, 3))),
    # (by a scale: checked against Lua's values, tests/lua_nn; its ratios are not exact in float32)
    Case("SpatialUpSamplingBilinear-size-1image",
         lambda: nn.SpatialUpSamplingBilinear(out_h=5, out_w=9), normal((2, 3, 3)),
         lambda m, x: torch_fn("interpolate", x[None], size=(5, 9), mode="bilinear",
                               align_corners=True)[0]),  # ratios exact in float32, as Lua's
    Case("WeightedMSECriterion", crit(lambda: nn.WeightedMSECriterion(np.array([0.5, 2.0, 1.0]))),
         lambda r: [r.standard_normal((4, 3)), r.integers(-2, 3, (4, 3))],
         lambda m, x: np.asarray(((x[0] - x[1] * np.array([0.5, 2.0, 1.0])) ** 2).mean())),
]

# The engine issue's modules (nn/cmul.py, nn/just.py, nn/container.py), so that the harness covers
# every export; their Lua semantics are tested in tests/nn/test_lua_module_api.py.
CASES += [
    Case("CMul", lambda: nn.CMul(4), normal((3, 4)), lambda m, x: x * P(m, "weight")),
    Case("CMul-broadcast", lambda: nn.CMul(1, 4), normal((3, 4)),
         lambda m, x: x * P(m, "weight")),
    Case("CAdd", lambda: nn.CAdd(4), normal((3, 4)), lambda m, x: x + P(m, "bias")),
    Case("JustTable", nn.JustTable, normal((2, 3)), lambda m, x: [x]),
    Case("JustElement", nn.JustElement, lambda r: [r.standard_normal((2, 3))],
         lambda m, x: x[0]),
    Case("Parallel", lambda: nn.Parallel(0, 1, nn.Linear(3, 2), nn.Tanh()), normal((2, 4, 3)),
         lambda m, x: np.concatenate([linear_np(m[0], x[0]), np.tanh(x[1])], 1)),
    Case("Concat", lambda: nn.Concat(1, nn.Linear(3, 2), nn.Tanh()), normal((4, 3)),
         lambda m, x: np.concatenate([linear_np(m[0], x), np.tanh(x)], 1)),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


# ------------------------------------------------------------------------------------------------
# The harness
# ------------------------------------------------------------------------------------------------
def test_forward_matches_reference_float64(case: Case, device: str, rng: np.random.Generator):
    module = case.make().double().to(device)
    x = case.inputs(rng)
    out = module.forward(to_dev(x, device))
    assert_close(out, case.reference(module, x), device, rtol=1e-10, atol=1e-12,
                 dtype=np.float64 if not isinstance(out, list) else None)
    assert module.output is out


def test_default_dtype_float32(case: Case, device: str, rng: np.random.Generator):
    module = case.make().to(device)
    assert module.dtype == np.float32
    x = case.inputs(rng)
    out = module.forward(to_dev(x, device))  # float64 inputs are cast to the module's dtype
    expected = case.reference(module, x)
    assert_close(out, expected, device, rtol=1e-4, atol=1e-5)
    for arr in (out if isinstance(out, list) else [out]):
        for a in (arr if isinstance(arr, list) else [arr]):
            if backend.is_floating(a):
                assert a.dtype == np.float32


def test_gradcheck_inputs_and_parameters(case: Case, device: str, rng: np.random.Generator):
    module = case.make().double().to(device)
    result = gradcheck(module, to_dev(case.inputs(rng), device), **case.gradcheck_kwargs)
    assert result.ok
    n_params = len(list(module.named_parameters()))
    assert len(result.errors) >= n_params


def test_print_clone_and_checkpoint_round_trip(case: Case, tmp_path: Any,
                                               rng: np.random.Generator):
    """Every case prints as Torch (``nn.<Name>``), clones to an equal but independent module, and
    its parameters survive a checkpoint save/load into a freshly built module."""
    from nngraph_py.checkpoint import load_checkpoint, save_checkpoint

    module = case.make().double()
    text = repr(module)
    assert text.startswith("nn.") and type(module).__name__ in text.splitlines()[0]
    x = case.inputs(rng)
    expected = to_host(module.forward(to_dev(x, "cpu")))
    twin = module.clone()
    assert_close(twin.forward(to_dev(x, "cpu")), expected, "cpu", rtol=1e-12, atol=1e-12)
    for (_, p), (_, q) in zip(module.named_parameters(), twin.named_parameters()):
        assert p is not q
    path = save_checkpoint(str(tmp_path / "m.npz"), module)
    backend.manual_seed(99)  # a fresh module with other initial values
    fresh = case.make().double()
    load_checkpoint(path, fresh)
    fresh.train = module.train
    for m_old, m_new in zip(module.modules(), fresh.modules()):
        m_new.train = m_old.train
        for name in getattr(m_old, "_buffer_names", ()):
            getattr(m_new, name)[...] = getattr(m_old, name)
    assert_close(fresh.forward(to_dev(x, "cpu")), expected, "cpu", rtol=1e-12, atol=1e-12)


def test_bad_input_kind_names_the_node(case: Case, rng: np.random.Generator):
    """A node given the wrong kind of input (a list for a one-array module, an array for a table
    module) fails naming the node's annotation and the shapes it got."""
    module = case.make().double()
    if module.input_kind == "any":
        pytest.skip("the module takes any input")
    x = case.inputs(rng)
    wrong = [x, x] if module.input_kind == "array" else np.zeros((2, 3))
    inp = nn.Identity()()
    node = module(inp).annotate(name="catalogue_culprit")
    graph = nn.gModule([inp], [node])
    with pytest.raises(NNGraphError) as info:
        graph.forward(wrong)
    assert "catalogue_culprit" in str(info.value)


def _exported_types() -> tuple[set[type], set[type]]:
    modules, criteria = set(), set()
    for name in nn.__all__:
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, Module) and obj not in (Module, nn.Container):
            modules.add(obj)
        if isinstance(obj, type) and issubclass(obj, nn.Criterion) and obj is not nn.Criterion:
            criteria.add(obj)
    return modules, criteria


def test_every_exported_module_and_criterion_has_a_case():
    covered_modules, covered_criteria = set(), set()
    for c in CASES:
        for m in c.make().modules():
            covered_modules.add(type(m))
            if isinstance(m, nn.ModuleFromCriterion):
                covered_criteria.add(type(m.criterion))
    modules, criteria = _exported_types()
    assert modules - covered_modules == set()
    assert criteria - covered_criteria == set()


# ------------------------------------------------------------------------------------------------
# Printing (Torch style)
# ------------------------------------------------------------------------------------------------
def test_repr_leaf_modules():
    assert repr(nn.Linear(20, 10)) == "nn.Linear(20 -> 10)"
    assert repr(nn.Linear(20, 10, bias=False)) == "nn.Linear(20 -> 10) without bias"
    assert repr(nn.Tanh()) == "nn.Tanh"
    assert repr(nn.Reshape(2, 3)) == "nn.Reshape(2x3)"
    assert repr(nn.View(2, -1)) == "nn.View(2, -1)"
    assert repr(nn.Dropout()) == "nn.Dropout(0.500000)"
    assert repr(nn.Narrow(1, 0, -1)) == "nn.Narrow(dim=1, offset=0, length=-1)"
    assert repr(nn.MulConstant(2)) == "nn.MulConstant(2)"
    assert repr(nn.AddConstant(-1.5)) == "nn.AddConstant(-1.5)"
    assert repr(nn.MSECriterion()) == "nn.MSECriterion"
    assert repr(nn.ClassNLLCriterion()) == "nn.ClassNLLCriterion"
    assert repr(nn.CrossEntropyCriterion()) == "nn.CrossEntropyCriterion"
    assert repr(nn.ModuleFromCriterion(nn.MSECriterion())) == \
        "nn.ModuleFromCriterion(nn.MSECriterion)"


def test_repr_sequential():
    mlp = nn.Sequential().add(nn.Linear(20, 10)).add(nn.Tanh())
    assert repr(mlp) == (
        "nn.Sequential {\n"
        "  [input -> (1) -> (2) -> output]\n"
        "  (1): nn.Linear(20 -> 10)\n"
        "  (2): nn.Tanh\n"
        "}"
    )


def test_repr_concat_and_parallel_tables_are_lua_trees():
    inner = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    assert repr(nn.ConcatTable(nn.Linear(4, 3), inner, nn.Identity())) == (
        "nn.ConcatTable {\n"
        "  input\n"
        "    |`-> (1): nn.Linear(4 -> 3)\n"
        "    |`-> (2): nn.Sequential {\n"
        "    |      [input -> (1) -> (2) -> output]\n"
        "    |      (1): nn.Linear(4 -> 3)\n"
        "    |      (2): nn.Tanh\n"
        "    |    }\n"
        "     `-> (3): nn.Identity\n"
        "     ... -> output\n"
        "}"
    )
    assert repr(nn.ParallelTable(nn.Linear(4, 3), nn.Sigmoid())) == (
        "nn.ParallelTable {\n"
        "  input\n"
        "    |`-> (1): nn.Linear(4 -> 3)\n"
        "     `-> (2): nn.Sigmoid\n"
        "     ... -> output\n"
        "}"
    )


def test_repr_nested_sequential_indents():
    mlp = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.ParallelTable(nn.Tanh()))
    assert repr(mlp) == (
        "nn.Sequential {\n"
        "  [input -> (1) -> (2) -> output]\n"
        "  (1): nn.Sequential {\n"
        "    [input -> (1) -> output]\n"
        "    (1): nn.Linear(2 -> 2)\n"
        "  }\n"
        "  (2): nn.ParallelTable {\n"
        "    input\n"
        "       `-> (1): nn.Tanh\n"
        "       ... -> output\n"
        "  }\n"
        "}"
    )


# ------------------------------------------------------------------------------------------------
# Shape errors name the expected and the actual shapes
# ------------------------------------------------------------------------------------------------
def assert_mentions(info: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_linear_shape_error_names_expected_and_actual(device: str):
    lin = nn.Linear(20, 10).to(device)
    with pytest.raises(ShapeError) as info:
        lin.forward(to_dev(np.zeros((4, 7)), device))
    assert_mentions(info, "nn.Linear(20 -> 10)", "(batch, 20) or (20,)", "(4, 7)")


def test_container_errors_name_the_member(device: str):
    mlp = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(5, 2)).to(device)
    with pytest.raises(ShapeError) as info:
        mlp.forward(to_dev(np.zeros((2, 4)), device))
    assert_mentions(info, "member (3) of nn.Sequential", "nn.Linear(5 -> 2)",
                    "(batch, 5) or (5,)", "(2, 3)")

    par = nn.ParallelTable(nn.Linear(4, 3), nn.Tanh()).to(device)
    with pytest.raises(ShapeError) as info:
        par.forward([to_dev(np.zeros((2, 4)), device)])
    assert_mentions(info, "nn.ParallelTable: expected input as a list of 2 arrays", "[(2, 4)]")
    with pytest.raises(InputError) as info:
        par.forward(to_dev(np.zeros((2, 4)), device))
    assert_mentions(info, "list of 2 arrays", "(2, 4)")

    cat = nn.ConcatTable(nn.Tanh(), nn.Tanh()).to(device)
    x = to_dev(np.zeros((2, 4)), device)
    cat.forward(x)
    with pytest.raises(InputError) as info:
        cat.backward(x, x)
    assert_mentions(info, "grad_output as a list of 2 arrays", "(2, 4)")


@pytest.mark.parametrize("module, fragments", [
    (lambda: nn.Narrow(1, 3, 3),
     ["nn.Narrow(dim=1, offset=3, length=3)", "at least 6 entries along axis 1"]),
    (lambda: nn.Narrow(-1, 2, -5), ["at least 7 entries along axis -1"]),
    (lambda: nn.Narrow(2, 0), ["dimension 2 is out of range"]),
    (lambda: nn.Reshape(2, 3), ["nn.Reshape(2x3)", "6 elements per example"]),
    (lambda: nn.Reshape(5, batch_mode=False), ["nn.Reshape(5)", "of 5 elements"]),
    (lambda: nn.View(3, -1), ["nn.View(3, -1)", "multiple of 3"]),
    (lambda: nn.View(3, num_input_dims=1), ["nn.View(3)", "examples of 3 elements"]),
], ids=["Narrow", "Narrow-to-end", "Narrow-dim", "Reshape", "Reshape-unbatched", "View-infer",
        "View-num-input-dims"])
def test_shape_module_errors(module: Callable, fragments: list, device: str):
    with pytest.raises(ShapeError) as info:
        module().to(device).forward(to_dev(np.zeros((4, 5)), device))
    assert_mentions(info, *fragments, "(4, 5)")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="selects nothing"):
        nn.Narrow(1, -2, 3)
    with pytest.raises(ValueError, match="at most one -1"):
        nn.View(-1, -1)
    with pytest.raises(ValueError, match="positive"):
        nn.Reshape(2, -1)
    with pytest.raises(ValueError, match="0 <= p < 1"):
        nn.Dropout(1.0)


def test_container_add_rejects_nodes_duplicates_and_mixed_dtypes():
    lin = nn.Linear(3, 3)
    node = nn.Linear(3, 3)(nn.Identity()())
    with pytest.raises(InputError) as info:
        nn.Sequential().add(node)
    assert_mentions(info, "graph node", "add the module itself")
    with pytest.raises(ValueError) as info:
        nn.Sequential(lin, lin)
    assert_mentions(info, "already in this Sequential", "clone()")
    with pytest.raises(backend.DeviceError) as info:
        nn.Sequential(nn.Linear(3, 3)).add(nn.Linear(3, 3).double())
    assert_mentions(info, "float64", "float32", "convert it as a whole")
