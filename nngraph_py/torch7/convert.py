"""Lua Torch ``nn`` objects -> the library's modules, with their weights.

Each converter takes the :class:`~nngraph_py.torch7.reader.TorchObject` read from the file (its
Lua fields in ``obj.fields``) and returns a module. Lua's 1-based dimensions and indices become
the library's 0-based ones here: ``nn.SplitTable(2)`` -> ``SplitTable(1)``, ``nn.SelectTable(1)``
-> ``SelectTable(0)``, ``nn.Narrow(2, 3, 4)`` -> ``Narrow(1, 2, 4)``; a Lua dimension given with
``nInputDims`` (counted within one example) becomes a negative axis, which means the same thing
with or without a batch axis. ``nn.gModule`` is rebuilt node by node from its forward graph
(:func:`convert_gmodule`).
"""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy

from .. import nn
from ..graph.gmodule import gModule
from ..graph.node import Node
from ..module import Module
from .reader import Torch7Error, TorchObject

__all__ = ["CONVERTERS", "MACHINERY", "ConversionError", "make_converter", "supported_classes"]


class ConversionError(Exception):
    """A Torch object of a known class that this library cannot represent as it is."""


#: Classes that are kept as plain records (the graph machinery a gModule is rebuilt from).
MACHINERY = {"nngraph.Node", "graph.Node", "graph.Graph", "graph.Edge", "torch.CmdLine"}


def _f(obj: TorchObject, name: str, default: Any = None) -> Any:
    fields = obj.fields if isinstance(obj.fields, dict) else {}
    return fields.get(name, default)


def _need(obj: TorchObject, name: str) -> Any:
    value = _f(obj, name)
    if value is None:
        raise ConversionError(f"field {name!r} is missing")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ConversionError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _tensor(obj: TorchObject, name: str, ndim: int | None = None, required: bool = True) -> Any:
    value = _f(obj, name)
    if value is None and not required:
        return None
    if not isinstance(value, numpy.ndarray) or value.dtype.kind != "f":
        raise ConversionError(f"field {name!r} must be a floating tensor, got "
                              f"{type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ConversionError(f"field {name!r} must have {ndim} dimensions, got shape "
                              f"{value.shape}")
    return value


def _grad(obj: TorchObject, name: str, like: numpy.ndarray) -> numpy.ndarray:
    """The Lua gradient buffer when it has the parameter's shape, else zeros (cleared state)."""
    g = _f(obj, name)
    if isinstance(g, numpy.ndarray) and g.shape == like.shape and g.dtype == like.dtype:
        return g
    return numpy.zeros_like(like)


def _set_params(module: Module, obj: TorchObject, pairs: list[tuple[str, str, str]]) -> Module:
    """Register the Lua tensors ``(our name, Lua name, Lua grad name)`` as the module's
    parameters (the arrays themselves: shared storage stays shared), in their dtype."""
    dtype = None
    for ours, lua, lua_grad in pairs:
        value = getattr(module, ours)
        w = _tensor(obj, lua)
        if tuple(w.shape) != tuple(value.shape):
            raise ConversionError(f"{lua} has shape {w.shape}, expected {tuple(value.shape)}")
        module.register_parameter(ours, w, _grad(obj, lua_grad, w))
        dtype = w.dtype
    if dtype is not None:
        module.to(dtype=dtype)
    return module


def _dim(obj: TorchObject, name: str = "dimension") -> int:
    """A Lua dimension (1-based, negative from the end; ``nInputDims`` for batch handling)."""
    d = _int(_need(obj, name), name)
    n_input = _f(obj, "nInputDims")
    if d < 0:
        return d
    if d == 0:
        raise ConversionError(f"{name} 0 is not a Lua dimension (they start at 1)")
    if n_input is not None:
        n_input = _int(n_input, "nInputDims")
        if d > n_input:
            raise ConversionError(f"{name} {d} exceeds nInputDims {n_input}")
        return d - 1 - n_input  # negative: the same axis of an example, batched or not
    return d - 1


def _index(value: Any, what: str) -> int:
    """A Lua index (1-based, negative from the end) as a 0-based one."""
    i = _int(value, what)
    if i == 0:
        raise ConversionError(f"{what} 0 is not a Lua index (they start at 1)")
    return i - 1 if i > 0 else i


def _members(obj: TorchObject) -> list[Module]:
    mods = _f(obj, "modules", [])
    if isinstance(mods, dict) and not mods:
        mods = []
    if not isinstance(mods, list):
        raise ConversionError("field 'modules' must be a list of modules")
    for k, m in enumerate(mods):
        if not isinstance(m, Module):
            name = getattr(m, "torch_typename", type(m).__name__)
            raise ConversionError(f"member {k + 1} is {name}, not a module")
    return _same_dtype(mods)


def _same_dtype(mods: list[Any]) -> list[Any]:
    holders = [m for m in mods if m.parameters()[0]]
    if holders:
        dtype = holders[0]._dtype
        for m in mods:
            if m._dtype != dtype:
                m.to(dtype=dtype)
    return mods


def _train(module: Module, obj: TorchObject) -> Module:
    if _f(obj, "train") is False:
        module.evaluate()
    return module


# ---------------------------------------------------------------------------------------------
# One converter per Lua class
# ---------------------------------------------------------------------------------------------
def _linear(obj: TorchObject) -> Module:
    w = _tensor(obj, "weight", 2)
    bias = _tensor(obj, "bias", 1, required=False)
    m = nn.Linear(int(w.shape[1]), int(w.shape[0]), bias=bias is not None)
    pairs = [("weight", "weight", "gradWeight")]
    if bias is not None:
        pairs.append(("bias", "bias", "gradBias"))
    return _set_params(m, obj, pairs)


def _lookup(obj: TorchObject) -> Module:
    w = _tensor(obj, "weight", 2)
    if _f(obj, "maxNorm") is not None:
        raise ConversionError("maxNorm renormalisation is not supported")
    pad = _f(obj, "paddingValue", 0)
    pad = _int(pad, "paddingValue") if pad is not None else 0
    padding = pad - 1 if 1 <= pad <= w.shape[0] else None  # Lua's 0 means none
    m = nn.LookupTable(int(w.shape[0]), int(w.shape[1]), padding_idx=padding)
    return _set_params(m, obj, [("weight", "weight", "gradWeight")])


def _one_hot(obj: TorchObject) -> Module:
    return nn.OneHot(_int(_need(obj, "outputSize"), "outputSize"))


def _relu(obj: TorchObject) -> Module:
    th, val = _f(obj, "threshold", 0), _f(obj, "val", 0)
    if th != 0 or val != 0:
        raise ConversionError(f"a ReLU with threshold {th} and value {val} (only 0, 0 is ReLU)")
    return nn.ReLU()


def _threshold(obj: TorchObject) -> Module:
    th, val = _f(obj, "threshold", 1e-6), _f(obj, "val", 0)
    if th == 0 and val == 0:
        return nn.ReLU()
    cls = getattr(nn, "Threshold", None)
    if cls is None:
        raise ConversionError(f"nn.Threshold({th}, {val}) has no counterpart here")
    return cls(th, val)


def _dropout(obj: TorchObject) -> Module:
    v1 = _f(obj, "v2", True) is False  # Lua's old dropout, scaled at evaluation
    stochastic = bool(_f(obj, "stochastic_inference", False))
    try:
        m = nn.Dropout(float(_f(obj, "p", 0.5)), v1=v1, stochastic_inference=stochastic)
    except TypeError:  # an older Dropout without Lua's options
        if v1 or stochastic:
            raise ConversionError("Dropout v1 / stochastic inference is not supported") from None
        m = nn.Dropout(float(_f(obj, "p", 0.5)))
    return _train(m, obj)


def _reshape(obj: TorchObject) -> Module:
    size = _need(obj, "size")
    sizes = [int(s) for s in numpy.asarray(size).reshape(-1)]
    batch = _f(obj, "batchMode")
    return nn.Reshape(*sizes, batch_mode=batch if isinstance(batch, bool) else None)


def _view(obj: TorchObject) -> Module:
    size = _need(obj, "size")
    sizes = [int(s) for s in numpy.asarray(size).reshape(-1)]
    n = _f(obj, "numInputDims")
    return nn.View(*sizes, num_input_dims=None if n is None else _int(n, "numInputDims"))


def _narrow(obj: TorchObject) -> Module:
    d = _int(_need(obj, "dimension"), "dimension")
    index = _int(_need(obj, "index"), "index")
    length = _int(_f(obj, "length", 1), "length")
    if index < 0:
        # Lua's Narrow reads a negative index as "from 1, all but `length` entries"
        if length < 0:
            raise ConversionError(f"Narrow with a negative index {index} and a negative length "
                                  f"{length} has no counterpart here")
        return nn.Narrow(d - 1 if d > 0 else d, 0, -(length + 1))
    return nn.Narrow(d - 1 if d > 0 else d, _index(index, "index"), length)


def _select(obj: TorchObject) -> Module:
    d = _int(_need(obj, "dimension"), "dimension")
    return nn.Select(d - 1 if d > 0 else d, _index(_need(obj, "index"), "index"))


def _constant(cls: type) -> Callable[[TorchObject], Module]:
    def convert(obj: TorchObject) -> Module:
        return cls(float(_need(obj, "constant_scalar")))
    return convert


def _plain(cls: type) -> Callable[[TorchObject], Module]:
    def convert(obj: TorchObject) -> Module:
        return cls()
    return convert


def _container(cls: type) -> Callable[[TorchObject], Module]:
    def convert(obj: TorchObject) -> Module:
        return _train(cls(*_members(obj)), obj)
    return convert


def _class_nll(obj: TorchObject) -> Any:
    weights = _f(obj, "weights")
    ignore = _f(obj, "ignoreIndex")
    extra = {}
    if isinstance(ignore, int) and not isinstance(ignore, bool):
        extra["ignore_index"] = ignore - 1 if ignore > 0 else ignore  # Lua's targets are 1-based
    c = nn.ClassNLLCriterion(weights=weights, size_average=bool(_f(obj, "sizeAverage", True)),
                             **extra)
    if isinstance(weights, numpy.ndarray):
        c.to(dtype=weights.dtype)
    return c


def _cross_entropy(obj: TorchObject) -> Any:
    nll = _f(obj, "nll")
    weights = getattr(nll, "weights", None) if isinstance(nll, nn.ClassNLLCriterion) else None
    return nn.CrossEntropyCriterion(weights=weights,
                                    size_average=bool(_f(obj, "sizeAverage", True)))


def _mse(obj: TorchObject) -> Any:
    return nn.MSECriterion(size_average=bool(_f(obj, "sizeAverage", True)))


def _module_from_criterion(obj: TorchObject) -> Module:
    crit = _need(obj, "criterion")
    if not isinstance(crit, nn.Criterion):
        raise ConversionError("field 'criterion' is not a criterion")
    return nn.ModuleFromCriterion(crit)


def _just_element(obj: TorchObject) -> Module:
    return nn.SelectTable(0)  # nngraph's split(1): the only element of a one-element table


CONVERTERS: dict[str, Callable[[TorchObject], Any]] = {
    "nn.Linear": _linear,
    "nn.Identity": _plain(nn.Identity),
    "nn.Sigmoid": _plain(nn.Sigmoid),
    "nn.Tanh": _plain(nn.Tanh),
    "nn.ReLU": _relu,
    "nn.Threshold": _threshold,
    "nn.SoftMax": _plain(nn.SoftMax),
    "nn.LogSoftMax": _plain(nn.LogSoftMax),
    "nn.CAddTable": _plain(nn.CAddTable),
    "nn.CSubTable": _plain(nn.CSubTable),
    "nn.CMulTable": _plain(nn.CMulTable),
    "nn.CDivTable": _plain(nn.CDivTable),
    "nn.JoinTable": lambda o: nn.JoinTable(_dim(o)),
    "nn.SplitTable": lambda o: nn.SplitTable(_dim(o)),
    "nn.SelectTable": lambda o: nn.SelectTable(_index(_need(o, "index"), "index")),
    "nn.NarrowTable": lambda o: nn.NarrowTable(_index(_need(o, "offset"), "offset"),
                                               _int(_f(o, "length", 1), "length")),
    "nn.Narrow": _narrow,
    "nn.Select": _select,
    "nn.Reshape": _reshape,
    "nn.View": _view,
    "nn.MulConstant": _constant(nn.MulConstant),
    "nn.AddConstant": _constant(nn.AddConstant),
    "nn.Dropout": _dropout,
    "nn.Sequential": _container(nn.Sequential),
    "nn.ConcatTable": _container(nn.ConcatTable),
    "nn.ParallelTable": _container(nn.ParallelTable),
    "nn.LookupTable": _lookup,
    "nn.OneHot": _one_hot,
    "OneHot": _one_hot,  # char-rnn's util/OneHot.lua
    "nngraph.JustElement": _just_element,
    "nn.ClassNLLCriterion": _class_nll,
    "nn.CrossEntropyCriterion": _cross_entropy,
    "nn.MSECriterion": _mse,
    "nn.ModuleFromCriterion": _module_from_criterion,
}


def _register_optional() -> None:
    """Modules that exist only in newer versions of the library's catalogue."""
    def weight_only(cls_name: str, pairs: list[tuple[str, str, str]]) -> None:
        cls = getattr(nn, cls_name, None)
        if cls is None:
            return

        def convert(obj: TorchObject) -> Module:
            first = _tensor(obj, pairs[0][1])
            m = cls(*[int(s) for s in first.shape])
            return _set_params(m, obj, pairs)
        CONVERTERS[f"nn.{cls_name}"] = convert

    weight_only("CMul", [("weight", "weight", "gradWeight")])
    weight_only("CAdd", [("bias", "bias", "gradBias")])
    if hasattr(nn, "JustTable"):
        CONVERTERS["nngraph.JustTable"] = _plain(nn.JustTable)
    if hasattr(nn, "Parallel"):
        CONVERTERS["nn.Parallel"] = lambda o: _train(nn.Parallel(
            _int(_need(o, "inputDimension"), "inputDimension") - 1,
            _int(_need(o, "outputDimension"), "outputDimension") - 1, *_members(o)), o)
    if hasattr(nn, "Concat"):
        CONVERTERS["nn.Concat"] = lambda o: _train(nn.Concat(
            _dim(o), *_members(o)), o)


try:
    _register_optional()
except Exception:  # noqa: BLE001 - a catalogue change must not break loading the rest
    pass


def _catalogue() -> None:
    """Converters for the rest of the library's catalogue (Lua field names from torch/nn)."""
    def zero_based(value: Any, what: str) -> int:
        d = _int(value, what)
        return d - 1 if d > 0 else d

    def opt_int(o: TorchObject, name: str) -> int | None:
        v = _f(o, name)
        return None if v is None else _int(v, name)

    def num(o: TorchObject, name: str, default: float) -> float:
        v = _f(o, name, default)
        return float(default if v is None else v)

    def weights(o: TorchObject) -> Any:
        w = _f(o, "weights")
        return w if isinstance(w, numpy.ndarray) and w.size else None

    def with_params(make: Callable[[TorchObject], Module],
                    pairs: list[tuple[str, str, str]]) -> Callable[[TorchObject], Module]:
        def convert(o: TorchObject) -> Module:
            m = make(o)
            present = [pr for pr in pairs if isinstance(_f(o, pr[1]), numpy.ndarray)
                       and getattr(m, pr[0], None) is not None]
            return _set_params(m, o, present)
        return convert

    WB = [("weight", "weight", "gradWeight"), ("bias", "bias", "gradBias")]
    table: dict[str, Callable[[TorchObject], Any]] = {
        "Abs": lambda o: nn.Abs(), "Square": lambda o: nn.Square(),
        "Sqrt": lambda o: nn.Sqrt(0.0),  # Lua's THNN ignores nn.Sqrt's eps: sqrt(x)
        "Power": lambda o: nn.Power(float(_need(o, "pow"))),
        "Exp": lambda o: nn.Exp(), "Log": lambda o: nn.Log(),
        "Clamp": lambda o: nn.Clamp(float(_need(o, "min_val")), float(_need(o, "max_val"))),
        "HardTanh": lambda o: nn.HardTanh(num(o, "min_val", -1.0), num(o, "max_val", 1.0)),
        "HardShrink": lambda o: nn.HardShrink(num(o, "lambda", 0.5)),
        "SoftShrink": lambda o: nn.SoftShrink(num(o, "lambda", 0.5)),
        "SoftPlus": lambda o: nn.SoftPlus(num(o, "beta", 1.0), num(o, "threshold", 20.0)),
        "SoftSign": lambda o: nn.SoftSign(), "LogSigmoid": lambda o: nn.LogSigmoid(),
        "SoftMin": lambda o: nn.SoftMin(), "ELU": lambda o: nn.ELU(num(o, "alpha", 1.0)),
        "LeakyReLU": lambda o: nn.LeakyReLU(num(o, "negval", 0.01)),
        "PReLU": with_params(lambda o: nn.PReLU(_int(_f(o, "nOutputPlane", 0), "nOutputPlane")),
                             WB[:1]),
        "ReLU6": lambda o: nn.ReLU6(),
        "GatedLinearUnit": lambda o: nn.GatedLinearUnit(
            -1 if _f(o, "dim") is None else zero_based(_f(o, "dim"), "dim")),
        "Normalize": lambda o: nn.Normalize(float(_need(o, "p")), num(o, "eps", 1e-10)),
        "Mul": with_params(lambda o: nn.Mul(), WB[:1]),
        "Add": with_params(lambda o: nn.Add(int(_tensor(o, "bias").size),
                                            scalar=bool(_f(o, "scalar", False))), WB[1:]),
        "Bilinear": with_params(_bilinear, WB),
        "Sum": lambda o: nn.Sum(zero_based(_f(o, "dimension", 1), "dimension"),
                                opt_int(o, "nInputDims"), bool(_f(o, "sizeAverage", False)),
                                _f(o, "squeeze", True) is not False),
        "Mean": lambda o: nn.Mean(zero_based(_f(o, "dimension", 1), "dimension"),
                                  opt_int(o, "nInputDims"), _f(o, "squeeze", True) is not False),
        "Max": lambda o: nn.Max(zero_based(_f(o, "dimension", 1), "dimension"),
                                opt_int(o, "nInputDims")),
        "Min": lambda o: nn.Min(zero_based(_f(o, "dimension", 1), "dimension"),
                                opt_int(o, "nInputDims")),
        "Replicate": lambda o: nn.Replicate(_int(_need(o, "nfeatures"), "nfeatures"),
                                            zero_based(_f(o, "dim", 1), "dim"), opt_int(o, "ndim")),
        "Transpose": lambda o: nn.Transpose(*[(zero_based(a, "dim"), zero_based(b, "dim"))
                                              for a, b in _f(o, "permutations", [])]),
        "Squeeze": lambda o: nn.Squeeze(None if _f(o, "dim") is None
                                        else zero_based(_f(o, "dim"), "dim"),
                                        opt_int(o, "numInputDims")),
        "Unsqueeze": lambda o: nn.Unsqueeze(zero_based(_need(o, "pos"), "pos"),
                                            opt_int(o, "numInputDims")),
        "Padding": lambda o: nn.Padding(zero_based(_need(o, "dim"), "dim"),
                                        _int(_need(o, "pad"), "pad"), opt_int(o, "nInputDim"),
                                        num(o, "value", 0.0),
                                        _int(_f(o, "index", 1), "index") - 1),
        "Index": lambda o: nn.Index(zero_based(_need(o, "dimension"), "dimension")),
        "MaskedSelect": lambda o: nn.MaskedSelect(), "Contiguous": lambda o: nn.Contiguous(),
        "Copy": lambda o: nn.Copy(),
        "Bottle": lambda o: nn.Bottle(_members(o)[0], _int(_f(o, "nInputDim", 2), "nInputDim"),
                                      opt_int(o, "nOutputDim")),
        "CMaxTable": lambda o: nn.CMaxTable(), "CMinTable": lambda o: nn.CMinTable(),
        "CAveTable": lambda o: nn.CAveTable(), "DotProduct": lambda o: nn.DotProduct(),
        "CosineDistance": lambda o: nn.CosineDistance(),
        "PairwiseDistance": lambda o: nn.PairwiseDistance(num(o, "norm", 2.0)),
        "MM": lambda o: nn.MM(bool(_f(o, "transA", False)), bool(_f(o, "transB", False))),
        "MixtureTable": lambda o: nn.MixtureTable(
            1 if _f(o, "dim") is None else zero_based(_f(o, "dim"), "dim")),
        "MapTable": lambda o: nn.MapTable(_members(o)[0]),
        "FlattenTable": lambda o: nn.FlattenTable(),
        "BCECriterion": lambda o: nn.BCECriterion(weights(o), bool(_f(o, "sizeAverage", True))),
        "AbsCriterion": lambda o: nn.AbsCriterion(bool(_f(o, "sizeAverage", True))),
        "SmoothL1Criterion": lambda o: nn.SmoothL1Criterion(bool(_f(o, "sizeAverage", True))),
        "DistKLDivCriterion": lambda o: nn.DistKLDivCriterion(bool(_f(o, "sizeAverage", True))),
        "MarginCriterion": lambda o: nn.MarginCriterion(num(o, "margin", 1.0),
                                                        bool(_f(o, "sizeAverage", True))),
        "SoftMarginCriterion": lambda o: nn.SoftMarginCriterion(bool(_f(o, "sizeAverage", True))),
        "MultiMarginCriterion": lambda o: nn.MultiMarginCriterion(
            _int(_f(o, "p", 1), "p"), weights(o), num(o, "margin", 1.0),
            bool(_f(o, "sizeAverage", True))),
        "MultiLabelSoftMarginCriterion": lambda o: nn.MultiLabelSoftMarginCriterion(
            weights(o), bool(_f(o, "sizeAverage", True))),
        "HingeEmbeddingCriterion": lambda o: nn.HingeEmbeddingCriterion(
            num(o, "margin", 1.0), bool(_f(o, "sizeAverage", True))),
        "CosineEmbeddingCriterion": lambda o: nn.CosineEmbeddingCriterion(
            num(o, "margin", 0.0), bool(_f(o, "sizeAverage", True))),
        "MarginRankingCriterion": lambda o: nn.MarginRankingCriterion(
            num(o, "margin", 0.0), bool(_f(o, "sizeAverage", True))),
        "SpatialDropout": lambda o: _train(nn.SpatialDropout(num(o, "p", 0.5)), o),
        "WhiteNoise": lambda o: _train(nn.WhiteNoise(num(o, "mean", 0.0), num(o, "std", 0.1)), o),
        "L1Penalty": lambda o: nn.L1Penalty(float(_need(o, "l1weight")),
                                            bool(_f(o, "sizeAverage", False)),
                                            _f(o, "provideOutput", True) is not False),
        "GradientReversal": lambda o: nn.GradientReversal(num(o, "lambda", 1.0)),
        "TemporalConvolution": with_params(lambda o: nn.TemporalConvolution(
            _int(_need(o, "inputFrameSize"), "inputFrameSize"),
            _int(_need(o, "outputFrameSize"), "outputFrameSize"), _int(_need(o, "kW"), "kW"),
            _int(_f(o, "dW", 1), "dW")), WB),
        "SpatialConvolution": with_params(lambda o: nn.SpatialConvolution(
            _int(_need(o, "nInputPlane"), "nInputPlane"),
            _int(_need(o, "nOutputPlane"), "nOutputPlane"), _int(_need(o, "kW"), "kW"),
            _int(_need(o, "kH"), "kH"), _int(_f(o, "dW", 1), "dW"), _int(_f(o, "dH", 1), "dH"),
            _int(_f(o, "padW", 0), "padW"), _int(_f(o, "padH", 0), "padH"),
            bias=isinstance(_f(o, "bias"), numpy.ndarray)), WB),
        "SpatialMaxPooling": lambda o: _pooling(nn.SpatialMaxPooling, o),
        "SpatialAveragePooling": lambda o: _pooling(nn.SpatialAveragePooling, o),
        "SpatialZeroPadding": lambda o: nn.SpatialZeroPadding(
            _int(_need(o, "pad_l"), "pad_l"), _int(_need(o, "pad_r"), "pad_r"),
            _int(_need(o, "pad_t"), "pad_t"), _int(_need(o, "pad_b"), "pad_b")),
        "SpatialUpSamplingNearest": lambda o: nn.SpatialUpSamplingNearest(
            _int(_need(o, "scale_factor"), "scale_factor")),
        "SpatialAdaptiveAveragePooling": lambda o: nn.SpatialAdaptiveAveragePooling(
            _int(_need(o, "W"), "W"), _int(_need(o, "H"), "H")),
        "SpatialUpSamplingBilinear": _upsampling_bilinear,
        "SpatialConvolutionMM": _conv_mm,
        "SpatialDilatedConvolution": with_params(lambda o: nn.SpatialDilatedConvolution(
            *_conv_args(o), _int(_f(o, "dilationW", 1), "dilationW"),
            _int(_f(o, "dilationH", 1), "dilationH"),
            bias=isinstance(_f(o, "bias"), numpy.ndarray)), WB),
        "SpatialFullConvolution": with_params(lambda o: nn.SpatialFullConvolution(
            *_conv_args(o), _int(_f(o, "adjW", 0), "adjW"), _int(_f(o, "adjH", 0), "adjH"),
            bias=isinstance(_f(o, "bias"), numpy.ndarray)), WB),
        "SpatialDilatedMaxPooling": lambda o: _pooling(nn.SpatialDilatedMaxPooling, o),
        "TemporalMaxPooling": lambda o: nn.TemporalMaxPooling(
            _int(_need(o, "kW"), "kW"), _int(_f(o, "dW", _need(o, "kW")), "dW")),
        "SpatialReflectionPadding": lambda o: nn.SpatialReflectionPadding(*_pads(o)),
        "SpatialReplicationPadding": lambda o: nn.SpatialReplicationPadding(*_pads(o)),
        "PixelShuffle": lambda o: nn.PixelShuffle(_int(_need(o, "upscaleFactor"),
                                                       "upscaleFactor")),
        "SpatialSoftMax": lambda o: nn.SpatialSoftMax(),
        "SpatialLogSoftMax": lambda o: nn.SpatialLogSoftMax(),
        "CReLU": lambda o: nn.CReLU(_int(_need(o, "nInputDims"), "nInputDims")),
        "Euclidean": with_params(lambda o: nn.Euclidean(
            *[int(n) for n in _tensor(o, "weight", 2).shape]), WB[:1]),
        "Cosine": with_params(lambda o: nn.Cosine(
            *[int(n) for n in reversed(_tensor(o, "weight", 2).shape)]), WB[:1]),
        "MV": lambda o: nn.MV(bool(_f(o, "trans", False))),
        "ZipTable": lambda o: nn.ZipTable(), "ZipTableOneToMany": lambda o: nn.ZipTableOneToMany(),
        "ZeroGrad": lambda o: nn.ZeroGrad(),
        "Collapse": lambda o: nn.Collapse(_int(_need(o, "nInputDim"), "nInputDim")),
        "Constant": lambda o: nn.Constant(_need(o, "value"), opt_int(o, "nInputDim")),
        "TanhShrink": lambda o: nn.TanhShrink(), "L1Cost": lambda o: nn.L1Cost(),
        "WeightedMSECriterion": lambda o: nn.WeightedMSECriterion(
            _need(o, "weight"), bool(_f(o, "sizeAverage", True))),
    }
    for name, fn in table.items():
        if hasattr(nn, name):
            CONVERTERS[f"nn.{name}"] = fn
    if hasattr(nn, "LayerNormalization"):
        CONVERTERS["nn.LayerNormalization"] = _layer_norm
    if hasattr(nn, "MultiCriterion"):
        CONVERTERS["nn.MultiCriterion"] = lambda o: _criteria(nn.MultiCriterion(), o)
        CONVERTERS["nn.ParallelCriterion"] = lambda o: _criteria(
            nn.ParallelCriterion(bool(_f(o, "repeatTarget", False))), o)
        CONVERTERS["nn.CriterionTable"] = lambda o: nn.CriterionTable(_need(o, "criterion"))
    if hasattr(nn, "BatchNormalization"):
        CONVERTERS["nn.BatchNormalization"] = lambda o: _batch_norm(nn.BatchNormalization, o)
        CONVERTERS["nn.SpatialBatchNormalization"] = \
            lambda o: _batch_norm(nn.SpatialBatchNormalization, o)


def _criteria(multi: Any, o: TorchObject) -> Any:
    crits = _f(o, "criterions", [])
    weights = _f(o, "weights", [])
    weights = [float(w) for w in numpy.asarray(weights, dtype=numpy.float64).reshape(-1)]
    if not isinstance(crits, list) or len(weights) != len(crits):
        raise ConversionError("criterions and weights do not match")
    for c, w in zip(crits, weights):
        if not isinstance(c, nn.Criterion):
            raise ConversionError(f"{getattr(c, 'torch_typename', type(c).__name__)} is not a "
                                  f"criterion")
        multi.add(c, weight=w)
    return multi


def _bilinear(o: TorchObject) -> Module:
    out, in1, in2 = (int(n) for n in _tensor(o, "weight", 3).shape)
    return nn.Bilinear(in1, in2, out, bias=isinstance(_f(o, "bias"), numpy.ndarray))


def _layer_norm(o: TorchObject) -> Module:
    """Lua's LayerNormalization is a Sequential (mean, Normalize(2, eps), MulConstant(sqrt n),
    then CMul and Add when affine), correct for one example; ours normalises each example of a
    batch, with ``eps`` on the variance: Lua's ``eps`` over ``n``."""
    members = _members(o)
    norm = next((m for m in members if isinstance(m, nn.Normalize)), None)
    scale = next((m for m in members if isinstance(m, nn.MulConstant)), None)
    if norm is None or scale is None:
        raise ConversionError("not the Sequential nn.LayerNormalization builds")
    n = int(round(scale.constant ** 2))
    gain = next((m for m in members if type(m).__name__ == "CMul"), None)
    shift = next((m for m in members if type(m).__name__ == "Add"), None)
    affine = gain is not None and shift is not None
    m = nn.LayerNormalization(n, eps=float(norm.eps) / n, affine=affine)
    if affine:
        def flat(a: Any) -> Any:  # the Lua array itself when it already has the shape
            return a if tuple(a.shape) == (n,) else a.reshape(n)

        m.register_parameter("weight", flat(gain.weight), flat(gain.grad_weight))
        m.register_parameter("bias", flat(shift.bias), flat(shift.grad_bias))
        m.to(dtype=gain.weight.dtype)
    return m


def _upsampling_bilinear(o: Any) -> Any:
    """Lua's ``SpatialUpSamplingBilinear(scale)`` or ``({oheight=, owidth=})``."""
    if _f(o, "scale_factor") is not None:
        return nn.SpatialUpSamplingBilinear(_int(_f(o, "scale_factor"), "scale_factor"))
    return nn.SpatialUpSamplingBilinear(out_h=_int(_need(o, "oheight"), "oheight"),
                                        out_w=_int(_need(o, "owidth"), "owidth"))


def _conv_mm(o: TorchObject) -> Module:
    """Lua's SpatialConvolutionMM keeps its weight as (nOut, nIn*kH*kW): a 4-D view of it here
    (same memory)."""
    m = nn.SpatialConvolutionMM(*_conv_args(o), bias=isinstance(_f(o, "bias"), numpy.ndarray))
    w = _tensor(o, "weight")
    shape = tuple(m.weight.shape)
    if w.size != int(numpy.prod(shape)):
        raise ConversionError(f"weight has shape {w.shape}, expected {shape}")
    g = _grad(o, "gradWeight", w)
    m.register_parameter("weight", w.reshape(shape), g.reshape(shape))
    if isinstance(_f(o, "bias"), numpy.ndarray):
        b = _tensor(o, "bias", 1)
        m.register_parameter("bias", b, _grad(o, "gradBias", b))
    m.to(dtype=w.dtype)
    return m


def _conv_args(o: TorchObject) -> tuple[int, int, int, int, int, int, int, int]:
    """``nInputPlane, nOutputPlane, kW, kH, dW, dH, padW, padH`` of a Lua convolution."""
    def get(name: str, default: int | None = None) -> int:
        return _int(_need(o, name) if default is None else _f(o, name, default), name)

    return (get("nInputPlane"), get("nOutputPlane"), get("kW"), get("kH"), get("dW", 1),
            get("dH", 1), get("padW", 0), get("padH", 0))


def _pads(o: TorchObject) -> list[int]:
    return [_int(_need(o, n), n) for n in ("pad_l", "pad_r", "pad_t", "pad_b")]


def _pooling(cls: type, o: TorchObject) -> Module:
    if _f(o, "ceil_mode"):
        raise ConversionError("ceil_mode pooling is not supported")
    kw = _int(_need(o, "kW"), "kW")
    kh = _int(_need(o, "kH"), "kH")
    args = dict(dw=_int(_f(o, "dW", kw), "dW"), dh=_int(_f(o, "dH", kh), "dH"),
                pad_w=_int(_f(o, "padW", 0), "padW"), pad_h=_int(_f(o, "padH", 0), "padH"))
    if cls.__name__ == "SpatialDilatedMaxPooling":
        args.update(dil_w=_int(_f(o, "dilationW", 1), "dilationW"),
                    dil_h=_int(_f(o, "dilationH", 1), "dilationH"))
    if cls.__name__ == "SpatialAveragePooling":
        if _f(o, "divide", True) is False:
            raise ConversionError("SpatialAveragePooling with divide=false is not supported")
        args["count_include_pad"] = _f(o, "count_include_pad", True) is not False
    return cls(kw, kh, **args)


def _batch_norm(cls: type, o: TorchObject) -> Module:
    mean = _need(o, "running_mean")
    affine = _f(o, "affine", True) is not False and isinstance(_f(o, "weight"), numpy.ndarray)
    m = cls(int(numpy.asarray(mean).size), eps=float(_f(o, "eps", 1e-5)),
            momentum=float(_f(o, "momentum", 0.1)), affine=affine)
    if affine:
        _set_params(m, o, [("weight", "weight", "gradWeight"), ("bias", "bias", "gradBias")])
    for ours, lua in (("running_mean", "running_mean"), ("running_var", "running_var")):
        buf = _need(o, lua)
        current = getattr(m, ours)
        if tuple(buf.shape) != tuple(current.shape):
            raise ConversionError(f"{lua} has shape {buf.shape}, expected {current.shape}")
        current[...] = buf  # buffers are updated in place (the library's buffer protocol)
    m.to(dtype=_need(o, "running_mean").dtype)
    return _train(m, o)


_catalogue()


def supported_classes() -> list[str]:
    """The Lua class names :func:`nngraph_py.torch7.load` turns into modules."""
    return sorted(set(CONVERTERS) | {"nn.gModule"})


# ---------------------------------------------------------------------------------------------
# gModule
# ---------------------------------------------------------------------------------------------
def _ordered(mapindex: Any) -> list[dict]:
    """The parents of a node, in input order: ``mapindex[1..n]`` (it also maps them back)."""
    if isinstance(mapindex, list):
        return mapindex
    if not isinstance(mapindex, dict):
        raise ConversionError("a node's mapindex is not a table")
    n = sum(1 for k in mapindex if type(k) is int)
    out = []
    for i in range(1, n + 1):
        if i not in mapindex or not isinstance(mapindex[i], dict):
            raise ConversionError(f"a node's mapindex has no entry {i}")
        out.append(mapindex[i])
    return out


_LABEL = re.compile(r"^\[(.*)\]:(-?\d+)")


def _annotate(node: Node, data: dict, used: set[str]) -> None:
    ann = data.get("annotations")
    if not isinstance(ann, dict):
        return
    label = ann.get("_debugLabel")
    if isinstance(label, str):
        m = _LABEL.match(label)
        node.created_at = f"{m.group(1)}:{m.group(2)} (Lua)" if m else f"{label} (Lua)"
    name = ann.get("name")
    attrs = ann.get("graphAttributes")
    attrs = {str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, dict) else None
    desc = ann.get("description")
    if isinstance(name, (str, int, float)) and not isinstance(name, bool):
        base = str(name).replace(".", "_") or "node"
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
    else:
        name = None
    node.annotate(name=name, graph_attributes=attrs,
                  description=desc if isinstance(desc, str) else None)


def _use(module: Module) -> Module:
    """The module itself, or a parameter-sharing clone when another node already uses it."""
    if module._node is None:
        return module
    names = []
    for m in module.modules():
        for p in m._param_names:
            names += [p, "grad_" + p]
    return module.clone(*names)


def convert_gmodule(obj: TorchObject) -> gModule:
    """Rebuild an ``nn.gModule`` from its topologically sorted forward nodes.

    Lua's hidden input node (split into one selector per input when there are several) becomes
    the gModule's input list, in Lua's order; module-less split nodes become ``SelectTable``
    nodes; a module reading one node receives that node's output (Lua passes ``input[1]`` alone),
    one reading several receives the list; annotations (``name``, ``graphAttributes``,
    ``description``) are kept and ``created_at`` is Lua's ``[file]:line``.
    """
    fnodes = _need(obj, "forwardnodes")
    innode, outnode = _need(obj, "innode"), _need(obj, "outnode")
    if not isinstance(fnodes, list) or not all(isinstance(n, TorchObject) for n in fnodes):
        raise ConversionError("forwardnodes is not a list of nodes")
    in_data, out_data = getattr(innode, "data", None), getattr(outnode, "data", None)
    if not isinstance(in_data, dict) or not isinstance(out_data, dict):
        raise ConversionError("innode/outnode carry no data")
    n_inputs = _f(obj, "nInputs")
    py: dict[int, Node] = {}
    special: dict[int, Any] = {id(in_data): "in"}
    slots: dict[int, Node] = {}
    outputs: list[Node] | None = None
    used: set[str] = set()
    for fnode in fnodes:
        data = fnode.fields.get("data") if isinstance(fnode.fields, dict) else None
        if not isinstance(data, dict):
            raise ConversionError("a node carries no data")
        if data is in_data:
            continue
        parents = _ordered(data.get("mapindex", {}))
        if data is out_data:
            outputs = [_lookup_node(py, p) for p in parents]
            continue
        module = data.get("module")
        if module is not None and not isinstance(module, Module):
            name = getattr(module, "torch_typename", type(module).__name__)
            raise ConversionError(f"a node holds {name}, which is not a module")
        tags = [special.get(id(p)) for p in parents]
        if parents and all(t is not None for t in tags):
            # the machinery that feeds the inputs: innode -> (split node -> selectors) -> inputs
            tag = tags[0]
            if len(parents) != 1:
                raise ConversionError("a node reads the hidden input node twice")
            if module is None and tag == "in" and data.get("nSplitOutputs") is not None:
                special[id(data)] = "split"
                continue
            if module is None and tag == "split" and data.get("selectindex") is not None:
                special[id(data)] = ("select", _int(data["selectindex"], "selectindex") - 1)
                continue
            if module is None:
                raise ConversionError("an input node without a module")
            slot = 0 if tag == "in" else tag[1] if isinstance(tag, tuple) else None
            if slot is None or slot in slots:
                raise ConversionError("cannot tell which input a node receives")
            node = _use(module)()
            slots[slot] = node
        elif any(t is not None for t in tags):
            raise ConversionError("a node reads both the hidden input node and other nodes")
        elif module is None:
            if data.get("selectindex") is not None:
                node = nn.SelectTable(_int(data["selectindex"], "selectindex") - 1)(
                    _lookup_node(py, parents[0]))
            elif len(parents) == 1:
                py[id(data)] = _lookup_node(py, parents[0])  # a split's hub, or a bare node
                continue
            elif parents:
                node = nn.Identity()([_lookup_node(py, p) for p in parents])
            else:
                raise ConversionError("a node without module or inputs")
        elif not parents:
            raise ConversionError(f"a {type(module).__name__} node without inputs that is not "
                                  f"an input of the gModule")
        elif len(parents) == 1:
            node = _use(module)(_lookup_node(py, parents[0]))
        else:
            node = _use(module)([_lookup_node(py, p) for p in parents])
        _annotate(node, data, used)
        py[id(data)] = node
    if outputs is None:
        raise ConversionError("the output node is not among forwardnodes")
    count = len(slots)
    if n_inputs is not None and _int(n_inputs, "nInputs") != count:
        raise ConversionError(f"nInputs is {n_inputs} but {count} input nodes were found")
    if sorted(slots) != list(range(count)):
        raise ConversionError(f"inputs {sorted(slots)} are not 1..{count}")
    _same_dtype([n.module for n in py.values()])
    g = gModule([slots[k] for k in range(count)], outputs)
    _train(g, obj)
    return g


def _lookup_node(py: dict[int, Node], data: Any) -> Node:
    node = py.get(id(data))
    if node is None:
        raise ConversionError("a node reads a node that comes later in forwardnodes")
    return node


CONVERTERS["nn.gModule"] = convert_gmodule


_TYPE_DTYPES = {"torch.DoubleTensor": numpy.float64, "torch.FloatTensor": numpy.float32,
                "torch.CudaTensor": numpy.float32, "torch.CudaDoubleTensor": numpy.float64}


def _lua_type(value: Any, obj: TorchObject) -> Any:
    """Give a module without parameters the dtype Lua computed in (its ``_type`` field)."""
    dtype = _TYPE_DTYPES.get(_f(obj, "_type"))
    for name in ("gradInput", "output", "output_tensor", "weights"):
        if dtype is None:  # objects never converted with :type() say it by their buffers
            buf = _f(obj, name)
            if isinstance(buf, numpy.ndarray) and buf.dtype.kind == "f" and buf.itemsize >= 4:
                dtype = buf.dtype.type
    if isinstance(value, Module) and value.parameters()[0]:
        dtype = value.parameters()[0][0].dtype.type  # the weights decide (no copy)
    if dtype is None:
        dtype = numpy.float64  # Lua's default tensor type, torch.DoubleTensor
    if hasattr(value, "to") and any(numpy.dtype(m._dtype) != dtype for m in _all(value)):
        value.to(dtype=dtype)
    if isinstance(value, nn.Criterion):
        for name in ("weights", "weight"):
            lua = _f(obj, name)
            if isinstance(lua, numpy.ndarray) and getattr(value, name, None) is not None:
                # criteria cast their weights at construction (to float32 by default): take
                # Lua's again, in the criterion's dtype
                setattr(value, name, lua.astype(dtype))
    return value


def _all(value: Any) -> list[Any]:
    return list(value.modules()) if isinstance(value, Module) else [value]


def make_converter(strict: bool) -> Callable[[TorchObject], Any]:
    """The ``convert`` callback for :func:`~nngraph_py.torch7.reader.parse`."""
    def convert(obj: TorchObject) -> Any:
        name = obj.torch_typename
        if name in MACHINERY:
            return obj
        fn = CONVERTERS.get(name)
        if fn is None:
            if strict:
                raise Torch7Error(
                    f"unknown Torch class {name!r} at byte offset {obj.offset}: this library has "
                    f"no counterpart for it (load with strict=False to get it as a plain object "
                    f"holding its fields)", offset=obj.offset, class_name=name)
            return obj
        try:
            return _lua_type(fn(obj), obj)
        except Exception as exc:  # noqa: BLE001 - any failure is reported with class and offset
            if strict:
                raise Torch7Error(f"cannot convert {name} at byte offset {obj.offset}: {exc}",
                                  offset=obj.offset, class_name=name) from exc
            return obj
    return convert

