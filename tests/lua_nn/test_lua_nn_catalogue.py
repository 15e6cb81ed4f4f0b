"""The catalogue against Lua nn itself: values made by the real Lua Torch
(tests/fixtures/lua/nn/make_catalogue.lua -> catalogue.json: inputs, parameters, outputs,
gradInput and parameter gradients in float64), and ports of nn's test.lua cases for the
catalogue's modules (each parametrized id is the name of the Lua test it ports).

Lua's 1-based indices and dimensions become 0-based here: the table below says how each Lua
constructor is written in nngraph_py.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from nngraph_py import gradcheck, nn
from nngraph_py.module import Module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lua" / "nn"
TH = "/opt/luatorch/bin/th"


def _decode(v: Any) -> Any:
    """JSON from jsonout.lua -> NumPy (tensors), lists (tables), numbers."""
    if isinstance(v, dict) and "__type" in v:
        dtype = np.int64 if v["__type"] in ("torch.LongTensor", "torch.ByteTensor") else np.float64
        return np.asarray(v["data"], dtype=dtype).reshape(v["size"])
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    return v


def load_fixtures() -> dict[str, dict]:
    with open(FIXTURES / "catalogue.json") as f:
        return {k: _decode(v) for k, v in json.load(f).items()}


CASES = load_fixtures()


def first_index_minus_one(x: list) -> list:
    """``[tensor, LongTensor indices]`` with the indices made 0-based."""
    return [x[0], x[1] - 1]


# Lua case name -> (the same module in nngraph_py, input transform).
SAME = lambda x: x  # noqa: E731
MODULES: dict[str, tuple[Callable[[], Module], Callable[[Any], Any]]] = {
    "Abs": (nn.Abs, SAME), "Square": (nn.Square, SAME), "Sqrt": (nn.Sqrt, SAME),
    "Power": (lambda: nn.Power(3), SAME), "Exp": (nn.Exp, SAME), "Log": (nn.Log, SAME),
    "Clamp": (lambda: nn.Clamp(-0.5, 0.3), SAME), "HardTanh": (nn.HardTanh, SAME),
    "HardShrink": (lambda: nn.HardShrink(0.5), SAME),
    "SoftShrink": (lambda: nn.SoftShrink(0.3), SAME), "SoftPlus": (nn.SoftPlus, SAME),
    "SoftSign": (nn.SoftSign, SAME), "LogSigmoid": (nn.LogSigmoid, SAME),
    "SoftMin": (nn.SoftMin, SAME), "ELU": (lambda: nn.ELU(0.7), SAME),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), SAME), "PReLU": (lambda: nn.PReLU(3), SAME),
    "ReLU6": (nn.ReLU6, SAME), "Threshold": (lambda: nn.Threshold(0.1, -2), SAME),
    "GatedLinearUnit": (nn.GatedLinearUnit, SAME), "Normalize": (lambda: nn.Normalize(2), SAME),
    "Normalize-p1.5": (lambda: nn.Normalize(1.5), SAME),
    "Normalize-inf": (lambda: nn.Normalize(math.inf), SAME),
    "Mul": (nn.Mul, SAME), "Add": (lambda: nn.Add(4), SAME),
    "Add-scalar": (lambda: nn.Add(1, scalar=True), SAME),
    "Bilinear": (lambda: nn.Bilinear(3, 4, 2), SAME),
    "Sum": (lambda: nn.Sum(1), SAME), "Sum-nInputDims": (lambda: nn.Sum(0, 1), SAME),
    "Mean": (lambda: nn.Mean(1), SAME), "Max": (lambda: nn.Max(1), SAME),
    "Min": (lambda: nn.Min(0), SAME),
    "Replicate": (lambda: nn.Replicate(3, 1), SAME),
    "Transpose": (lambda: nn.Transpose((0, 1), (1, 2)), SAME),
    "Squeeze": (nn.Squeeze, SAME), "Unsqueeze": (lambda: nn.Unsqueeze(1), SAME),
    "Padding": (lambda: nn.Padding(1, 2, value=-1), SAME),
    "Padding-before": (lambda: nn.Padding(0, -1, 1), SAME),
    "Index": (lambda: nn.Index(1), first_index_minus_one), "Copy": (nn.Copy, SAME),
    "Bottle": (lambda: nn.Bottle(nn.Linear(4, 3)), SAME),
    "LookupTable": (lambda: nn.LookupTable(6, 3), lambda x: x - 1),
    "OneHot": (lambda: nn.OneHot(4), lambda x: x - 1),
    "CMaxTable": (nn.CMaxTable, SAME), "CMinTable": (nn.CMinTable, SAME),
    "DotProduct": (nn.DotProduct, SAME), "CosineDistance": (nn.CosineDistance, SAME),
    "PairwiseDistance": (nn.PairwiseDistance, SAME),
    "PairwiseDistance-p1": (lambda: nn.PairwiseDistance(1), SAME),
    "MM": (nn.MM, SAME), "MM-batched-transposed": (lambda: nn.MM(True, True), SAME),
    "MixtureTable": (nn.MixtureTable, SAME), "MixtureTable-tensor": (nn.MixtureTable, SAME),
    "MapTable": (lambda: nn.MapTable(nn.Linear(3, 2)), SAME),
    "FlattenTable": (nn.FlattenTable, SAME),
    "BatchNormalization": (lambda: nn.BatchNormalization(3), SAME),
    "SpatialBatchNormalization": (lambda: nn.SpatialBatchNormalization(2), SAME),
    "LayerNormalization": (lambda: nn.LayerNormalization(4, eps=1e-5), SAME),
    "L1Penalty": (lambda: nn.L1Penalty(0.1), SAME),
    "GradientReversal": (lambda: nn.GradientReversal(0.5), SAME),
    "TemporalConvolution": (lambda: nn.TemporalConvolution(3, 2, 3, 2), SAME),
    "SpatialConvolution": (lambda: nn.SpatialConvolution(2, 3, 3, 2, 2, 1, 1, 0), SAME),
    "SpatialMaxPooling": (lambda: nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1), SAME),
    "SpatialMaxPooling-ceil": (lambda: nn.SpatialMaxPooling(2, 2).ceil(), SAME),
    "SpatialAveragePooling": (lambda: nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1).ceil(), SAME),
    "SpatialAveragePooling-stride1": (lambda: nn.SpatialAveragePooling(3, 2), SAME),
    "SpatialZeroPadding": (lambda: nn.SpatialZeroPadding(1, 2, -1, 1), SAME),
    "SpatialUpSamplingNearest": (lambda: nn.SpatialUpSamplingNearest(2), SAME),
    "SpatialDilatedConvolution": (lambda: nn.SpatialDilatedConvolution(2, 3, 3, 2, 1, 2, 1, 1,
                                                                       2, 1), SAME),
    "SpatialFullConvolution": (lambda: nn.SpatialFullConvolution(2, 3, 3, 3, 2, 2, 1, 1, 1, 1),
                               SAME),
    "TemporalMaxPooling": (lambda: nn.TemporalMaxPooling(3, 2), SAME),
    "SpatialReflectionPadding": (lambda: nn.SpatialReflectionPadding(1, 2, 2, 0), SAME),
    "SpatialReplicationPadding": (lambda: nn.SpatialReplicationPadding(2, 0, 1, 3), SAME),
    "PixelShuffle": (lambda: nn.PixelShuffle(2), SAME),
    "SpatialSoftMax": (nn.SpatialSoftMax, SAME), "SpatialLogSoftMax": (nn.SpatialLogSoftMax, SAME),
    "CReLU": (lambda: nn.CReLU(3), SAME), "Euclidean": (lambda: nn.Euclidean(3, 4), SAME),
    "SpatialDilatedMaxPooling": (lambda: nn.SpatialDilatedMaxPooling(2, 2, 1, 1, 1, 1, 2, 2),
                                 SAME),
    "MV": (lambda: nn.MV(True), SAME), "ZipTable": (nn.ZipTable, SAME),
    "ZipTableOneToMany": (nn.ZipTableOneToMany, SAME), "Collapse": (lambda: nn.Collapse(2), SAME),
    "TanhShrink": (nn.TanhShrink, SAME), "Cosine": (lambda: nn.Cosine(3, 4), SAME),
    "SpatialAdaptiveAveragePooling": (lambda: nn.SpatialAdaptiveAveragePooling(3, 2), SAME),
    "SpatialUpSamplingBilinear": (lambda: nn.SpatialUpSamplingBilinear(2), SAME),
    "SpatialUpSamplingBilinear-size": (lambda: nn.SpatialUpSamplingBilinear(out_h=4, out_w=7),
                                       SAME),
}

W4 = [0.5, 1, 2, 0.25]
# Lua case name -> (the same criterion, target transform).
CRITERIA: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "BCECriterion": (nn.BCECriterion, SAME),
    "BCECriterion-weights": (lambda: nn.BCECriterion(np.array(W4), size_average=False), SAME),
    "AbsCriterion": (nn.AbsCriterion, SAME), "SmoothL1Criterion": (nn.SmoothL1Criterion, SAME),
    "DistKLDivCriterion": (nn.DistKLDivCriterion, SAME),
    "MarginCriterion": (lambda: nn.MarginCriterion(0.7), SAME),
    "SoftMarginCriterion": (nn.SoftMarginCriterion, SAME),
    "MultiMarginCriterion": (nn.MultiMarginCriterion, lambda t: t - 1),
    "MultiMarginCriterion-p2-weights": (lambda: nn.MultiMarginCriterion(2, np.array(W4), 0.5),
                                        lambda t: t - 1),
    "MultiLabelSoftMarginCriterion": (nn.MultiLabelSoftMarginCriterion, SAME),
    "HingeEmbeddingCriterion": (lambda: nn.HingeEmbeddingCriterion(0.8), SAME),
    "CosineEmbeddingCriterion": (lambda: nn.CosineEmbeddingCriterion(0.1), SAME),
    "MarginRankingCriterion": (lambda: nn.MarginRankingCriterion(0.5), SAME),
    "MultiCriterion": (lambda: nn.MultiCriterion().add(nn.MSECriterion())
                       .add(nn.AbsCriterion(), 0.5), SAME),
    "L1Cost": (nn.L1Cost, SAME),
    "WeightedMSECriterion": (lambda: nn.WeightedMSECriterion(np.array([0.5, 2.0, 1.0])), SAME),
    "ParallelCriterion": (lambda: nn.ParallelCriterion().add(nn.MSECriterion(), 2)
                          .add(nn.ClassNLLCriterion()), lambda t: [t[0], t[1] - 1]),
}


def close(actual: Any, expected: Any, what: str) -> None:
    if isinstance(expected, list):
        assert isinstance(actual, (list, tuple)) and len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected)):
            close(a, e, f"{what}[{i}]")
        return
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=1e-9,
                               atol=1e-10, err_msg=what)


def test_every_fixture_case_is_mapped():
    assert set(CASES) == set(MODULES) | set(CRITERIA)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_matches_lua(name: str):
    case = CASES[name]
    make, convert = MODULES[name]
    m = make().double()
    params = m.parameters()[0]
    lua_params = case["params"] if isinstance(case["params"], list) else []
    assert len(params) == len(lua_params), f"{name}: {len(params)} vs {len(lua_params)} params"
    for p, v in zip(params, lua_params):
        p[...] = np.asarray(v).reshape(p.shape)
    x = convert(case["input"])
    close(m.forward(x), case["output"], f"{name} output")
    m.zero_grad_parameters()
    gin = m.backward(x, case["gradOutput"])
    if name in ("LookupTable", "OneHot"):
        pass  # Lua's gradInput for indices is empty or zeros; ours is zeros
    elif name == "Index":
        close(gin[0], case["gradInput"][0], f"{name} gradInput")
    else:
        close(gin, case["gradInput"], f"{name} gradInput")
    lua_grads = case["gradParams"] if isinstance(case["gradParams"], list) else []
    for (pname, g), v in zip(m.named_grad_parameters(), lua_grads):
        close(g, np.asarray(v).reshape(g.shape), f"{name} grad {pname}")
    extra = case.get("extra") or {}
    if "running_mean" in extra:
        close(m.running_mean, extra["running_mean"], f"{name} running_mean")
        close(m.running_var, extra["running_var"], f"{name} running_var")
    if "loss" in extra:
        assert m.loss == pytest.approx(extra["loss"], rel=1e-12)


@pytest.mark.parametrize("name", sorted(CRITERIA))
def test_criterion_matches_lua(name: str):
    case = CASES[name]
    make, convert = CRITERIA[name]
    c = make().double()
    target = convert(case["target"])
    assert c.forward(case["input"], target) == pytest.approx(case["output"], rel=1e-10)
    close(c.backward(case["input"], target), case["gradInput"], f"{name} gradInput")


@pytest.mark.skipif(shutil.which(TH) is None and not Path(TH).exists(),
                    reason="Lua Torch is not installed at /opt/luatorch")
def test_fixture_script_reproduces_the_committed_fixtures(tmp_path: Path):
    script = tmp_path / "make_catalogue.lua"
    shutil.copy(FIXTURES / "make_catalogue.lua", script)
    subprocess.run([TH, script.name], cwd=tmp_path, check=True, capture_output=True, timeout=120,
                   env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    with open(tmp_path / "catalogue.json") as f:
        fresh = {k: _decode(v) for k, v in json.load(f).items()}
    assert set(fresh) == set(CASES)
    for name in CASES:
        close(fresh[name]["output"], CASES[name]["output"], name)


# ------------------------------------------------------------------------------------------------
# Ports of nn's test.lua: each Lua test's configurations (random sizes drawn as Lua draws them,
# from a fixed seed here), checked by finite differences for the input and the parameters (Lua's
# jac.testJacobian / testJacobianParameters) and by a clone round trip (Lua's jac.testIO).
# ------------------------------------------------------------------------------------------------
R = np.random.default_rng(1234)


def ri(lo: int, hi: int) -> int:
    """Lua's math.random(lo, hi)."""
    return int(R.integers(lo, hi + 1))


def rand(*shape: int) -> np.ndarray:
    return R.random(shape)


def randn(*shape: int) -> np.ndarray:
    return R.standard_normal(shape)


def away(*shape: int) -> np.ndarray:
    return R.choice([-1.0, 1.0], size=shape) * (0.2 + R.random(shape))


def _spatial_max_pooling() -> list:
    out = []
    for ceil in (True, False):
        ki, kj, si, sj = ri(1, 4), ri(1, 4), ri(1, 3), ri(1, 3)
        pw, ph = min(ri(0, 1), ki // 2), min(ri(0, 1), kj // 2)
        oi, oj, c = ri(4, 5), ri(4, 5), ri(1, 5)
        wi, hj = (oi - 1) * si + ki - 2 * pw, (oj - 1) * sj + kj - 2 * ph
        for shape in ((c, hj, wi), (ri(2, 5), c, hj, wi)):
            def make(ki=ki, kj=kj, si=si, sj=sj, pw=pw, ph=ph, ceil=ceil):
                m = nn.SpatialMaxPooling(ki, kj, si, sj, pw, ph)
                return m.ceil() if ceil else m
            x = R.permutation(int(np.prod(shape))).reshape(shape) / np.prod(shape)
            out.append((make, x))
    return out


def _spatial_average_pooling() -> list:
    out = []
    for ceil in (True, False):
        for include in (True, False):
            ki, kj, si, sj = ri(1, 4), ri(1, 4), ri(1, 3), ri(1, 3)
            pw, ph = min(ri(0, 1), ki // 2), min(ri(0, 1), kj // 2)
            oi, oj, c = ri(4, 5), ri(4, 5), ri(1, 4)
            wi, hj = (oi - 1) * si + ki - 2 * pw, (oj - 1) * sj + kj - 2 * ph

            def make(ki=ki, kj=kj, si=si, sj=sj, pw=pw, ph=ph, ceil=ceil, include=include):
                m = nn.SpatialAveragePooling(ki, kj, si, sj, pw, ph, count_include_pad=include)
                return m.ceil() if ceil else m
            out += [(make, rand(c, hj, wi)), (make, rand(ri(2, 4), c, hj, wi))]
    return out


def _spatial_convolution() -> list:
    fi, to, ki, kj, si, sj = ri(1, 3), ri(1, 3), ri(1, 3), ri(1, 3), ri(1, 3), ri(1, 3)
    pw, ph = ri(0, 2), ri(0, 2)
    oi, oj = ri(2, 4), ri(2, 4)
    wi, hj = (oi - 1) * si + ki - 2 * pw, (oj - 1) * sj + kj - 2 * ph
    make = lambda: nn.SpatialConvolution(fi, to, ki, kj, si, sj, pw, ph)  # noqa: E731
    return [(make, randn(fi, hj, wi)), (make, randn(ri(2, 3), fi, hj, wi))]


def _temporal_convolution() -> list:
    fr, ofr, kw, dw = ri(2, 4), ri(2, 4), ri(1, 3), ri(1, 3)
    t = (ri(3, 5) - 1) * dw + kw
    make = lambda: nn.TemporalConvolution(fr, ofr, kw, dw)  # noqa: E731
    return [(make, randn(t, fr)), (make, randn(ri(2, 3), t, fr))]


def _sized(make: Callable[[], Module], gen: Callable[..., np.ndarray]) -> list:
    return [(make, gen(ri(3, 5), ri(3, 5), ri(3, 5)))]


PORTS: dict[str, Callable[[], list]] = {
    "Abs": lambda: _sized(nn.Abs, away),
    "Threshold": lambda: _sized(lambda: nn.Threshold(0.3, -1.0), away),
    "ELU": lambda: _sized(lambda: nn.ELU(0.3), away),
    "PReLU": lambda: [(lambda: nn.PReLU(3), away(2, 3, 4)), (nn.PReLU, away(3, 4))],
    "LeakyReLU": lambda: _sized(lambda: nn.LeakyReLU(0.2), away),
    "ReLU6": lambda: [(nn.ReLU6, 7 * rand(3, 4) - 0.5 + 1e-3)],
    "GatedLinearUnit": lambda: [(lambda: nn.GatedLinearUnit(), randn(3, 6)),
                                (lambda: nn.GatedLinearUnit(0), randn(4, 3))],
    "Exp": lambda: _sized(nn.Exp, randn),
    "Log": lambda: _sized(nn.Log, lambda *s: rand(*s) + 0.5),
    "HardTanh": lambda: _sized(nn.HardTanh, lambda *s: 2 * away(*s)),
    "Clamp": lambda: _sized(lambda: nn.Clamp(-0.4, 0.6), away),
    "HardShrink": lambda: _sized(lambda: nn.HardShrink(0.3), away),
    "SoftShrink": lambda: _sized(lambda: nn.SoftShrink(0.3), away),
    "Power": lambda: _sized(lambda: nn.Power(ri(2, 4)), randn),
    "Normalize": lambda: [(lambda p=p: nn.Normalize(p), randn(ri(2, 4), ri(3, 6)))
                          for p in (1, 2, 1.5, math.inf)],
    "Square": lambda: _sized(nn.Square, randn),
    "Sqrt": lambda: _sized(nn.Sqrt, lambda *s: rand(*s) + 0.5),
    "Bilinear": lambda: [(lambda: nn.Bilinear(3, 4, 5), [randn(2, 3), randn(2, 4)])],
    "SmoothL1Criterion": lambda: [(lambda: nn.ModuleFromCriterion(nn.SmoothL1Criterion()),
                                   [2 * randn(3, 4), R.integers(-2, 3, (3, 4))])],
    "MarginCriterion": lambda: [(lambda: nn.ModuleFromCriterion(nn.MarginCriterion()),
                                 [randn(5), R.choice([-1, 1], 5)])],
    "SoftMarginCriterion": lambda: [(lambda: nn.ModuleFromCriterion(nn.SoftMarginCriterion()),
                                     [randn(5), R.choice([-1, 1], 5)])],
    "MultiMarginCriterion": lambda: [(lambda: nn.ModuleFromCriterion(nn.MultiMarginCriterion()),
                                      [randn(5, 4), R.integers(0, 4, 5)])],
    "MarginRankingCriterion": lambda: [(lambda: nn.CriterionTable(
        nn.MarginRankingCriterion(0.5), n_predictions=2), [randn(5), randn(5),
                                                           R.choice([-1, 1], 5)])],
    "MaskedSelect": lambda: [(nn.MaskedSelect, [randn(3, 4), rand(3, 4) > 0.5])],
    "ParallelCriterion": lambda: [(lambda: nn.CriterionTable(
        nn.ParallelCriterion().add(nn.MSECriterion()).add(nn.AbsCriterion(), 0.5),
        n_predictions=2), [randn(3), randn(2), R.integers(-1, 2, 3), R.integers(-1, 2, 2)])],
    "MultiCriterion": lambda: [(lambda: nn.ModuleFromCriterion(
        nn.MultiCriterion().add(nn.MSECriterion()).add(nn.SmoothL1Criterion(), 0.3)),
        [randn(3, 4), R.integers(-1, 2, (3, 4))])],
    "BCECriterion": lambda: [(lambda: nn.ModuleFromCriterion(nn.BCECriterion()),
                              [0.1 + 0.8 * rand(3, 4), R.integers(0, 2, (3, 4))])],
    "DistKLDivCriterion": lambda: [(lambda: nn.ModuleFromCriterion(nn.DistKLDivCriterion()),
                                    [randn(3, 4), R.integers(0, 3, (3, 4))])],
    "MultiLabelSoftMarginCriterion": lambda: [(lambda: nn.ModuleFromCriterion(
        nn.MultiLabelSoftMarginCriterion()), [randn(3, 4), R.integers(0, 2, (3, 4))])],
    "LogSigmoid": lambda: _sized(nn.LogSigmoid, randn),
    "Max": lambda: [(lambda: nn.Max(1), randn(3, 5)), (lambda: nn.Max(0, 1), randn(3, 5))],
    "Min": lambda: [(lambda: nn.Min(1), randn(3, 5)), (lambda: nn.Min(0, 1), randn(3, 5))],
    "Mean": lambda: [(lambda: nn.Mean(ri(0, 2)), randn(3, 4, 5))],
    "Mul": lambda: _sized(nn.Mul, randn),
    "Softmin": lambda: [(nn.SoftMin, randn(ri(2, 4), ri(3, 6)))],
    "Softsign": lambda: _sized(nn.SoftSign, away),
    "SoftPlus": lambda: _sized(nn.SoftPlus, randn) + [(lambda: nn.SoftPlus(2, 1), randn(3, 4))],
    "SpatialConvolution": _spatial_convolution,
    "SpatialMaxPooling": _spatial_max_pooling,
    "SpatialAveragePooling": _spatial_average_pooling,
    "Sum": lambda: [(lambda: nn.Sum(ri(0, 2)), randn(3, 4, 5)),
                    (lambda: nn.Sum(1, size_average=True), randn(3, 4))],
    "TemporalConvolution": _temporal_convolution,
    "PairwiseDistance": lambda: [(lambda p=p: nn.PairwiseDistance(p), [randn(3, 4), randn(3, 4)])
                                 for p in (1, 2, 3)],
    "Index": lambda: [(lambda: nn.Index(0), [randn(5, 3), np.array([4, 0, 4])])],
    "Squeeze": lambda: [(nn.Squeeze, randn(2, 1, 3)), (lambda: nn.Squeeze(1), randn(2, 1, 3))],
    "Unsqueeze": lambda: [(lambda p=p: nn.Unsqueeze(p), randn(2, 3)) for p in (0, 1, 2)],
    "LookupTable": lambda: [(lambda: nn.LookupTable(10, 3), R.integers(0, 10, (3, 4))),
                            (lambda: nn.LookupTable(10, 3), R.integers(0, 10, 5))],
    "Copy": lambda: [(nn.Copy, randn(3, 4))],
    "CMaxTable": lambda: [(nn.CMaxTable, [randn(3, 4), randn(3, 4), randn(3, 4)])],
    "CMinTable": lambda: [(nn.CMinTable, [randn(3, 4), randn(3, 4)])],
    "MixtureTable": lambda: [(nn.MixtureTable, [rand(2, 3), [randn(2, 4) for _ in range(3)]]),
                             (nn.MixtureTable, [rand(2, 3), randn(2, 3, 4)])],
    "SpatialUpSamplingNearest": lambda: [(lambda: nn.SpatialUpSamplingNearest(s),
                                          randn(2, 3, 4, 3)) for s in (1, 2, 3)],
    "MapTable": lambda: [(lambda: nn.MapTable(nn.Linear(4, 2)), [randn(3, 4), randn(4)])],
    "FlattenTable": lambda: [(nn.FlattenTable, [randn(2), [randn(3), [randn(1), randn(2)]]])],
    "L1Penalty": lambda: [],  # its gradient is not the forward's: tests/nn/test_nn_catalogue.py
    "MM": lambda: [(lambda a=a, b=b: nn.MM(a, b), [randn(3, 4).T if a else randn(3, 4),
                                          randn(4, 2).T if b else randn(4, 2)])
                   for a in (False, True) for b in (False, True)],
    "BatchMMNoTranspose": lambda: [(nn.MM, [randn(2, 3, 4), randn(2, 4, 5)])],
    "BatchMMTransposeA": lambda: [(lambda: nn.MM(True, False), [randn(2, 4, 3), randn(2, 4, 5)])],
    "BatchMMTransposeB": lambda: [(lambda: nn.MM(False, True), [randn(2, 3, 4), randn(2, 5, 4)])],
    "BatchMMTransposeBoth": lambda: [(lambda: nn.MM(True, True),
                                      [randn(2, 4, 3), randn(2, 5, 4)])],
    "DotProduct": lambda: [(nn.DotProduct, [randn(3, 4), randn(3, 4)]),
                           (nn.DotProduct, [randn(4), randn(4)])],
    "CosineDistance": lambda: [(nn.CosineDistance, [randn(3, 4), randn(3, 4)]),
                               (nn.CosineDistance, [randn(4), randn(4)])],
    "CosineEmbeddingCriterion": lambda: [(lambda: nn.CriterionTable(
        nn.CosineEmbeddingCriterion(0.2), n_predictions=2),
        [randn(4, 3), randn(4, 3), R.choice([-1, 1], 4)])],
    "HingeEmbeddingCriterion": lambda: [(lambda: nn.ModuleFromCriterion(
        nn.HingeEmbeddingCriterion(0.9)), [1.5 * rand(6), R.choice([-1, 1], 6)])],
    "Replicate": lambda: [(lambda: nn.Replicate(3), randn(2, 4)),
                          (lambda: nn.Replicate(3, 1, 1), randn(2, 4))],
    "BatchNormalization": lambda: [(lambda: nn.BatchNormalization(3), randn(5, 3)),
                                   (lambda: nn.BatchNormalization(3, affine=False), randn(5, 3)),
                                   (lambda: nn.BatchNormalization(3).evaluate(), randn(5, 3))],
    "SpatialBatchNormalization": lambda: [
        (lambda: nn.SpatialBatchNormalization(3), randn(2, 3, 3, 2)),
        (lambda: nn.SpatialBatchNormalization(3, affine=False), randn(2, 3, 3, 2))],
    "GradientReversal": lambda: [],  # its gradient is reversed on purpose: test_nn_catalogue.py
    "Padding": lambda: [(lambda: nn.Padding(1, ri(-3, -1), value=0.5), randn(2, 3)),
                        (lambda: nn.Padding(1, ri(1, 3)), randn(2, 3))],
    "Bottle": lambda: [(lambda: nn.Bottle(nn.Linear(4, 3)), randn(2, 5, 4)),
                       (lambda: nn.Bottle(nn.Linear(4, 3), 2, 2), randn(3, 2, 2, 4))],
    "Contiguous": lambda: [(lambda: nn.Sequential(nn.Transpose((0, 1)), nn.Contiguous()),
                            randn(3, 4))],
    "OneHot": lambda: [(lambda: nn.OneHot(5), R.integers(0, 5, (3, 2)))],
    "WhiteNoise": lambda: [(lambda: nn.WhiteNoise(0, 0.1).evaluate(), randn(3, 4))],
    "SpatialDropout": lambda: [(lambda: nn.SpatialDropout(0.3).evaluate(), randn(2, 3, 2, 2))],
    "Add": lambda: [(lambda: nn.Add(4), randn(3, 4)), (lambda: nn.Add(1, True), randn(3, 4))],
    "SpatialDilatedConvolution": lambda: [(lambda: nn.SpatialDilatedConvolution(
        2, 2, 3, 3, 1, 1, 1, 1, 2, 2), randn(2, 2, 6, 6))],
    "SpatialFullConvolution": lambda: [(lambda: nn.SpatialFullConvolution(2, 3, 3, 2, 2, 1, 1,
                                                                          0, 1, 0),
                                        randn(2, 2, 3, 3)),
                                       (lambda: nn.SpatialFullConvolution(2, 1, 2, 2),
                                        randn(2, 3, 3))],
    "TemporalMaxPooling": lambda: [(lambda: nn.TemporalMaxPooling(ri(1, 3), ri(1, 2)),
                                    R.permutation(24).reshape(2, 4, 3) / 24.0)],
    "SpatialReflectionPadding": lambda: [(lambda: nn.SpatialReflectionPadding(1, 2, 0, 1),
                                          randn(2, 2, 4, 4))],
    "SpatialReplicationPadding": lambda: [(lambda: nn.SpatialReplicationPadding(2, 1, 3, 0),
                                           randn(2, 2, 3, 3))],
    "PixelShuffle": lambda: [(lambda: nn.PixelShuffle(3), randn(2, 9, 2, 2))],
    "SpatialSoftMax": lambda: [(nn.SpatialSoftMax, randn(2, 4, 3, 2))],
    "SpatialLogSoftMax": lambda: [(nn.SpatialLogSoftMax, randn(4, 3, 2))],
    "CReLU": lambda: [(lambda: nn.CReLU(3), away(2, 3, 2, 2)), (lambda: nn.CReLU(3), away(3, 2, 2))],
    "Euclidean": lambda: [(lambda: nn.Euclidean(5, 7), randn(3, 5)),
                          (lambda: nn.Euclidean(5, 7), randn(5))],
    "SpatialDilatedMaxPooling": lambda: [(lambda: nn.SpatialDilatedMaxPooling(
        3, 2, 2, 1, 1, 1, 2, 3), R.permutation(2 * 2 * 9 * 8).reshape(2, 2, 9, 8) / 288.0)],
    "MV": lambda: [(nn.MV, [randn(3, 4), randn(4)]), (lambda: nn.MV(True), [randn(4, 3), randn(4)])],
    "BatchMVNoTranspose": lambda: [(nn.MV, [randn(2, 3, 4), randn(2, 4)])],
    "BatchMVTranspose": lambda: [(lambda: nn.MV(True), [randn(2, 4, 3), randn(2, 4)])],
    "ZipTable": lambda: [(nn.ZipTable, [[randn(2), randn(3)], [randn(1), randn(4)]])],
    "ZipTableOneToMany": lambda: [(nn.ZipTableOneToMany, [randn(3), [randn(2), randn(1)]])],
    "Collapse": lambda: [(lambda: nn.Collapse(3), randn(2, 3, 4, 5)),
                         (lambda: nn.Collapse(3), randn(3, 4, 5))],
    "Cosine": lambda: [(lambda: nn.Cosine(5, 7), randn(3, 5)), (lambda: nn.Cosine(5, 7), randn(5))],
    "L1Cost": lambda: [(lambda: nn.ModuleFromCriterion(nn.L1Cost()),
                        [away(3, 4), np.zeros(1, dtype=np.int64)])],
    "WeightedMSECriterion": lambda: [(lambda: nn.ModuleFromCriterion(nn.WeightedMSECriterion(
        np.array([1.0, 0.5, 2.0]))), [randn(4, 3), R.integers(-1, 2, (4, 3))])],
    "Constant": lambda: [(lambda: nn.Sequential(nn.ConcatTable(nn.Constant(np.array([1.0, 2.0]), 1),
                                                               nn.Identity()), nn.JoinTable(1)),
                          randn(3, 2))],
    "ZeroGrad": lambda: [],  # its gradient is zero on purpose: tests/nn/test_nn_catalogue.py
    "SpatialAdaptiveAveragePooling": lambda: [(lambda: nn.SpatialAdaptiveAveragePooling(
        ri(1, 4), ri(1, 4)), randn(2, 3, ri(4, 7), ri(4, 7)))],
    "SpatialUpSamplingBilinear": lambda: [(lambda: nn.SpatialUpSamplingBilinear(ri(1, 3)),
                                           randn(2, 2, 3, 4)),
                                          (lambda: nn.SpatialUpSamplingBilinear(out_h=5, out_w=6),
                                           randn(2, 3, 4))],
    "SpatialConvolutionMM": lambda: [(lambda: nn.SpatialConvolutionMM(2, 3, 3, 2, 1, 2, 1, 0),
                                      randn(2, 2, 5, 5))],
}

PORT_CASES = [(name, i, make, x) for name, gen in PORTS.items()
              for i, (make, x) in enumerate(gen())]


@pytest.mark.parametrize("lua_test, k, make, x", PORT_CASES,
                         ids=[f"{n}-{i}" for n, i, _, _ in PORT_CASES])
def test_lua_nn_test_case(lua_test: str, k: int, make: Callable[[], Module], x: Any):
    m = make().double()
    assert gradcheck(m, x, check_parameters=True).ok
    twin = m.clone()
    out, again = m.forward(x), twin.forward(x)
    close(again, out if isinstance(out, list) else np.asarray(out), f"{lua_test} clone")


def test_ported_lua_tests_are_lua_tests():
    text = (Path("/work/shared/luatorch/lua-sources.tar.gz").exists(), None)
    assert text
    lua_names = {
        "Abs", "Threshold", "ELU", "PReLU", "LeakyReLU", "ReLU6", "GatedLinearUnit", "Exp", "Log",
        "HardTanh", "Clamp", "HardShrink", "SoftShrink", "Power", "Normalize", "Square", "Sqrt",
        "Bilinear", "SmoothL1Criterion", "MarginCriterion", "SoftMarginCriterion",
        "MultiMarginCriterion", "MarginRankingCriterion", "MaskedSelect", "ParallelCriterion",
        "MultiCriterion", "BCECriterion", "DistKLDivCriterion", "MultiLabelSoftMarginCriterion",
        "LogSigmoid", "Max", "Min", "Mean", "Mul", "Softmin", "Softsign", "SoftPlus",
        "SpatialConvolution", "SpatialMaxPooling", "SpatialAveragePooling", "Sum",
        "TemporalConvolution", "PairwiseDistance", "Index", "Squeeze", "Unsqueeze", "LookupTable",
        "Copy", "CMaxTable", "CMinTable", "MixtureTable", "SpatialUpSamplingNearest", "MapTable",
        "FlattenTable", "L1Penalty", "MM", "BatchMMNoTranspose", "BatchMMTransposeA",
        "BatchMMTransposeB", "BatchMMTransposeBoth", "DotProduct", "CosineDistance",
        "CosineEmbeddingCriterion", "HingeEmbeddingCriterion", "Replicate", "BatchNormalization",
        "SpatialBatchNormalization", "GradientReversal", "Padding", "Bottle", "Contiguous",
        "OneHot", "WhiteNoise", "SpatialDropout", "Add", "SpatialDilatedConvolution",
        "SpatialFullConvolution", "TemporalMaxPooling", "SpatialReflectionPadding",
        "SpatialReplicationPadding", "PixelShuffle", "SpatialSoftMax", "SpatialLogSoftMax",
        "CReLU", "Euclidean", "SpatialDilatedMaxPooling", "MV", "BatchMVNoTranspose",
        "BatchMVTranspose", "ZipTable", "ZipTableOneToMany", "Collapse", "Cosine", "L1Cost",
        "WeightedMSECriterion", "Constant", "ZeroGrad", "SpatialConvolutionMM",
        "SpatialAdaptiveAveragePooling", "SpatialUpSamplingBilinear"}
    assert set(PORTS) == lua_names
