"""The modules the property suite builds random graphs from, each with its PyTorch reference.

One :class:`Entry` per module name: which input types it accepts and which constructor
arguments fit them (the *rule*), how to build our module from those arguments, and how PyTorch
computes the same thing with the same weights. The graph generator (``prop_graphs.py``) draws
from every entry whose rule accepts a value; the reference (``prop_reference.py``) evaluates a
built graph in PyTorch autograd by calling each module's ``torch`` function.

Adding a module (e.g. a new ``nn.CMul``): write its three functions and call :func:`register`
below, next to its family::

    register("CMul", Entry(
        accepts=lambda t: is_arr(t) and t.ndim >= 1,
        draw_args=lambda draw, t: (t.shape[-1],),
        out_type=lambda args, t: Arr(t.shape),
        make=lambda args: nn.CMul(*args),
        torch=lambda ctx, m, args, x: x * ctx.param(m.weight),
        tags={"params"}))

``test_every_exported_module_has_an_entry`` fails until every module ``nngraph_py.nn`` exports
is registered here (or listed in :data:`NOT_GRAPHABLE` with the reason).

Tags: ``"elementwise"`` (same shape out, usable for fan-out steps), ``"params"`` (holds
parameters: a candidate for sharing clones), ``"composite"`` (containers and gModule: drawn by
the generator itself, ``accepts`` is never called).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from nngraph_py import backend, nn
from prop_types import Arr, Labels, Lst, Type

__all__ = ["Entry", "REGISTRY", "NOT_GRAPHABLE", "PENDING", "register", "is_arr", "is_list_of_arrays"]


@dataclass
class Entry:
    """How one module takes part in random graphs.

    Attributes:
        accepts: whether the module can be applied to a value of this type.
        draw_args: constructor arguments for an accepted type (``draw`` is Hypothesis's).
        out_type: the type of the output for these arguments and this input type.
        make: our module for these arguments.
        torch: ``(ctx, module, args, x) -> value``: the same computation in PyTorch; ``x`` is a
            torch tensor or a (nested) list of them, parameters come from ``ctx.param(array)``
            (one torch leaf per array, so shared arrays share a leaf), sub-modules are evaluated
            with ``ctx.eval(child, x)``. ``args`` is None for modules the engine made itself
            (``node.split``'s SelectTables): read the module's attributes then.
        tags: see the module docstring.
        weight: relative probability of being drawn among the accepted entries (4 by default;
            the many issue-13 element-wise functions 1 each, so they do not crowd out the rest).
    """

    accepts: Callable[[Type], bool]
    draw_args: Callable[[Any, Type], Any]
    out_type: Callable[[Any, Type], Type]
    make: Callable[[Any], Any]
    torch: Callable[..., Any]
    tags: set = field(default_factory=set)
    weight: int = 4


REGISTRY: dict[str, Entry] = {}

#: Names ``nngraph_py.nn`` exports that are not modules to put in a graph, with the reason.
NOT_GRAPHABLE = {
    "Module": "abstract base class",
    "Container": "abstract base class",
    "Criterion": "abstract base class (criteria join as ModuleFromCriterion: see the MSE, "
                 "ClassNLL and CrossEntropy entries)",
    "Node": "a graph node, not a module",
    "ModuleFromCriterion": "built by the criterion entries (MSECriterion, ClassNLLCriterion, "
                           "CrossEntropyCriterion)",
}

#: Modules of issue 13 (the catalogue) that have no entry yet: the coverage test accepts them,
#: and says so; register an entry and remove the name here.
PENDING = {
    "LookupTable", "OneHot", "Clamp", "HardTanh", "HardShrink", "SoftShrink",
    "PReLU", "ReLU6", "Threshold", "GatedLinearUnit", "Normalize", "Mul",
    "Add", "Bilinear", "Max", "Min", "Squeeze",
    "Padding", "Index", "MaskedSelect", "Contiguous", "Copy", "Bottle", "CMaxTable",
    "CMinTable", "DotProduct", "CosineDistance", "PairwiseDistance", "MM",
    "MixtureTable", "MapTable", "FlattenTable", "CriterionTable", "BCECriterion",
    "AbsCriterion", "SmoothL1Criterion", "DistKLDivCriterion", "MarginCriterion",
    "SoftMarginCriterion", "MultiMarginCriterion", "MultiLabelSoftMarginCriterion",
    "HingeEmbeddingCriterion", "CosineEmbeddingCriterion", "MarginRankingCriterion",
    "MultiCriterion", "ParallelCriterion",
    "BatchNormalization", "SpatialBatchNormalization",
    "LayerNormalization", "SpatialDropout", "WhiteNoise", "L1Penalty", "GradientReversal",
    "TemporalConvolution", "SpatialConvolution", "SpatialMaxPooling", "SpatialAveragePooling",
    "SpatialZeroPadding", "SpatialUpSamplingNearest",
}


def register(name: str, entry: Entry) -> Entry:
    """Add ``entry`` under ``name`` (the module's class name, or the criterion's)."""
    if name in REGISTRY:
        raise ValueError(f"the property registry already has an entry {name!r}")
    REGISTRY[name] = entry
    return entry


# ------------------------------------------------------------------------------------------------
# Small helpers for rules
# ------------------------------------------------------------------------------------------------
def is_arr(t: Type) -> bool:
    return isinstance(t, Arr)


def is_list_of_arrays(t: Type, n: int | None = None) -> bool:
    return (isinstance(t, Lst) and len(t) >= 1 and all(isinstance(i, Arr) for i in t.items)
            and (n is None or len(t) == n))


def _same_shapes(t: Type) -> bool:
    return is_list_of_arrays(t) and len({i.shape for i in t.items}) == 1


def _same(args: Any, t: Type) -> Type:
    return t


def _no_args(draw: Any, t: Type) -> Any:
    return ()


def _factor(draw: Any, n: int, parts: int) -> tuple:
    """``n`` written as a product of ``parts`` positive integers, drawn."""
    sizes = []
    for _ in range(parts - 1):
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        d = draw(st.sampled_from(divisors))
        sizes.append(d)
        n //= d
    return tuple(sizes) + (n,)


def _axis_len(args_dim: int, t: Arr) -> int:
    return t.shape[args_dim % t.ndim]


# ------------------------------------------------------------------------------------------------
# Identity, Linear, element-wise
# ------------------------------------------------------------------------------------------------
register("Identity", Entry(
    accepts=lambda t: not isinstance(t, Labels),
    draw_args=_no_args, out_type=_same,
    make=lambda args: nn.Identity(),
    torch=lambda ctx, m, args, x: x,
    tags={"elementwise"}))


def _linear_args(draw: Any, t: Arr) -> tuple:
    return (t.shape[-1], draw(st.integers(1, 4)), draw(st.booleans()))


def _linear_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    bias = ctx.param(m.bias) if args[2] else None
    return F.linear(x, ctx.param(m.weight), bias)


register("Linear", Entry(
    accepts=lambda t: is_arr(t) and t.ndim in (1, 2),
    draw_args=_linear_args,
    out_type=lambda args, t: Arr(t.shape[:-1] + (args[1],)),
    make=lambda args: nn.Linear(*args),
    torch=_linear_torch, tags={"params"}, weight=12))

for _name, _fn, _positive in (("Tanh", torch.tanh, False), ("Sigmoid", torch.sigmoid, True),
                              ("ReLU", torch.relu, False)):
    register(_name, Entry(
        accepts=is_arr, draw_args=_no_args,
        out_type=(lambda args, t, p=_positive: Arr(t.shape, p)),
        make=(lambda args, n=_name: getattr(nn, n)()),
        torch=(lambda ctx, m, args, x, f=_fn: f(x)),
        tags={"elementwise"}, weight=8))

register("SoftMax", Entry(
    accepts=lambda t: is_arr(t) and t.ndim in (1, 2), draw_args=_no_args,
    out_type=lambda args, t: Arr(t.shape, True),
    make=lambda args: nn.SoftMax(),
    torch=lambda ctx, m, args, x: torch.softmax(x, dim=-1), weight=8))

register("LogSoftMax", Entry(
    accepts=lambda t: is_arr(t) and t.ndim in (1, 2), draw_args=_no_args,
    out_type=lambda args, t: Arr(t.shape),
    make=lambda args: nn.LogSoftMax(),
    torch=lambda ctx, m, args, x: torch.log_softmax(x, dim=-1), weight=12))

_CONSTANTS = (-1.5, 0.0, 0.5, 2.0)
register("MulConstant", Entry(
    accepts=is_arr,
    draw_args=lambda draw, t: (draw(st.sampled_from(_CONSTANTS)),),
    out_type=lambda args, t: Arr(t.shape),
    make=lambda args: nn.MulConstant(*args),
    torch=lambda ctx, m, args, x: x * args[0],
    tags={"elementwise"}))

register("AddConstant", Entry(
    accepts=is_arr,
    draw_args=lambda draw, t: (draw(st.sampled_from(_CONSTANTS)),),
    out_type=lambda args, t: Arr(t.shape),
    make=lambda args: nn.AddConstant(*args),
    torch=lambda ctx, m, args, x: x + args[0],
    tags={"elementwise"}))


def _dropout_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    # The mask our forward drew (the reference runs after it); None when inactive.
    if m.noise is None or not m.train or m.p == 0:
        return x
    return x * ctx.const(m.noise)


register("Dropout", Entry(
    accepts=is_arr,
    draw_args=lambda draw, t: (draw(st.sampled_from((0.0, 0.25, 0.5))),),
    out_type=lambda args, t: Arr(t.shape),
    make=lambda args: nn.Dropout(*args),
    torch=_dropout_torch, tags={"elementwise"}))


# Issue 13's element-wise transfer functions (nn/transfer.py): (arguments, torch reference,
# whether the output is positive). Kinks are only where the torch reference takes the same
# one-sided derivative (exact zeros come from ReLU and MulConstant(0)); Sqrt and Log read
# positive values only.
_TRANSFER = {
    "Abs": ((), lambda x, a: torch.abs(x), False),
    "Square": ((), lambda x, a: x * x, False),
    "Exp": ((), lambda x, a: torch.exp(x), True),
    "SoftSign": ((), lambda x, a: x / (1 + torch.abs(x)), False),
    "LogSigmoid": ((), lambda x, a: F.logsigmoid(x), False),
    "TanhShrink": ((), lambda x, a: x - torch.tanh(x), False),
    "SoftPlus": ((1.0, 20.0), lambda x, a: F.softplus(x, beta=a[0], threshold=a[1]), True),
    "ELU": ((1.0,), lambda x, a: F.elu(x, alpha=a[0]), False),
    "LeakyReLU": ((0.1,), lambda x, a: F.leaky_relu(x, negative_slope=a[0]), False),
    "Sqrt": ((), lambda x, a: torch.sqrt(x), True),
    "Log": ((), lambda x, a: torch.log(x), False),
    "Power": ((2.0,), lambda x, a: x ** a[0], False),
}
for _name, (_args, _fn, _positive) in _TRANSFER.items():
    if not hasattr(nn, _name):
        continue
    _needs_positive = _name in ("Sqrt", "Log")
    register(_name, Entry(
        accepts=(lambda t, np_=_needs_positive: is_arr(t) and (t.positive or not np_)),
        draw_args=(lambda draw, t, a=_args: a),
        out_type=(lambda args, t, p=_positive: Arr(t.shape, p)),
        make=(lambda args, n=_name: getattr(nn, n)(*args)),
        torch=(lambda ctx, m, args, x, f=_fn: f(x, args)),
        tags={"elementwise"}, weight=3 if _needs_positive else 1))

register("SoftMin", Entry(
    accepts=lambda t: is_arr(t) and t.ndim in (1, 2), draw_args=_no_args,
    out_type=lambda args, t: Arr(t.shape, True),
    make=lambda args: nn.SoftMin(),
    torch=lambda ctx, m, args, x: torch.softmax(-x, dim=-1)))


# ------------------------------------------------------------------------------------------------
# Shape modules: Narrow, Select, Reshape, View
# ------------------------------------------------------------------------------------------------
def _narrow_args(draw: Any, t: Arr) -> tuple:
    dim = draw(st.integers(-t.ndim, t.ndim - 1))
    n = t.shape[dim % t.ndim]
    start = draw(st.integers(0, n - 1))
    offset = start if draw(st.booleans()) else start - n  # 0-based, or negative from the end
    length = draw(st.integers(1, n - start))
    if draw(st.integers(0, 3)) == 0:  # Lua's negative length: -1 = to the end
        length = length - (n - start) - 1
    return (dim, offset, length)


def _narrow_range(args: tuple, shape: tuple) -> tuple[int, int, int]:
    dim, offset, length = args
    axis = dim % len(shape)
    n = shape[axis]
    start = offset + n if offset < 0 else offset
    stop = start + length if length > 0 else n + length + 1
    return axis, start, stop


def _narrow_out(args: tuple, t: Arr) -> Arr:
    axis, start, stop = _narrow_range(args, t.shape)
    return t.like(t.shape[:axis] + (stop - start,) + t.shape[axis + 1:])


def _narrow_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    axis, start, stop = _narrow_range(args, tuple(x.shape))
    return x.narrow(axis, start, stop - start)


register("Narrow", Entry(
    accepts=lambda t: is_arr(t) and t.ndim >= 1, draw_args=_narrow_args,
    out_type=_narrow_out, make=lambda args: nn.Narrow(*args), torch=_narrow_torch))


def _select_args(draw: Any, t: Arr) -> tuple:
    dim = draw(st.integers(-t.ndim, t.ndim - 1))
    n = t.shape[dim % t.ndim]
    return (dim, draw(st.integers(-n, n - 1)))


register("Select", Entry(
    accepts=lambda t: is_arr(t) and t.ndim >= 1, draw_args=_select_args,
    out_type=lambda args, t: t.like(t.shape[:args[0] % t.ndim] + t.shape[args[0] % t.ndim + 1:]),
    make=lambda args: nn.Select(*args),
    torch=lambda ctx, m, args, x: x.select(args[0] % x.dim(), args[1]),
    weight=8))


def reshape_shape(shape: tuple, size: tuple) -> tuple:
    """The output shape of ``Reshape(*size)`` on ``shape`` (Lua's rule: one example when the
    element count is that of one example and the first axis is not a batch of one)."""
    n, total = math.prod(size), math.prod(shape)
    if total == n and (len(shape) <= 1 or shape[0] != 1):
        return size
    return (shape[0],) + size


def _reshape_args(draw: Any, t: Arr) -> tuple:
    if t.ndim >= 2 and draw(st.booleans()):  # a batch of examples of shape[1:]
        per_example = math.prod(t.shape[1:])
    else:
        per_example = t.size
    return _factor(draw, per_example, draw(st.integers(1, 3)))


register("Reshape", Entry(
    accepts=lambda t: is_arr(t) and t.ndim <= 3, draw_args=_reshape_args,
    out_type=lambda args, t: t.like(reshape_shape(t.shape, args)),
    make=lambda args: nn.Reshape(*args),
    torch=lambda ctx, m, args, x: x.reshape(reshape_shape(tuple(x.shape), args))))


def view_shape(shape: tuple, size: tuple, num_input_dims: int | None) -> tuple:
    """The output shape of ``View(*size)`` on ``shape`` by Lua's ``View:batchsize`` rule.

    The one intended difference: an input ``(1, ...)`` holding exactly one example stays a batch
    of one (as Lua's Reshape; Lua's View drops that axis), as the library documents.
    """
    known = math.prod(s for s in size if s != -1)
    k = num_input_dims if num_input_dims is not None else len(shape)
    example = math.prod(shape[len(shape) - k:]) if k <= len(shape) else math.prod(shape)
    lead = math.prod(shape[:len(shape) - k]) if k < len(shape) else 1
    if -1 in size:
        inferred = tuple(example // known if s == -1 else s for s in size)
        if num_input_dims is None or len(shape) <= num_input_dims:
            return inferred
        return (lead,) + inferred
    batch = example // known * lead
    if batch == 1 and (num_input_dims is None or len(shape) <= num_input_dims):
        if num_input_dims is None and len(shape) > 1 and shape[0] == 1:
            return (1,) + size
        return size
    return (batch,) + size


def _view_args(draw: Any, t: Arr) -> tuple:
    mode = draw(st.sampled_from(("whole", "infer", "batch", "dims")))
    if mode == "whole":  # one example: the whole input
        return _factor(draw, t.size, draw(st.integers(1, 3))), None
    if mode == "infer":  # one size is -1
        size = list(_factor(draw, t.size, draw(st.integers(1, 3))))
        size[draw(st.integers(0, len(size) - 1))] = -1
        return tuple(size), None
    if mode == "dims" and t.ndim >= 2:  # setNumInputDims(k): the trailing k axes are one example
        k = draw(st.integers(1, t.ndim - 1))
        size = list(_factor(draw, math.prod(t.shape[t.ndim - k:]), draw(st.integers(1, 2))))
        if draw(st.booleans()):
            size[draw(st.integers(0, len(size) - 1))] = -1
        return tuple(size), k
    # batch: examples of the trailing axes, the leading ones the batch
    if t.ndim >= 2:
        # Lua's rule for several leading axes too: View(6) on (5, 2, 6) gives (10, 6)
        first = 1 if t.ndim == 2 else draw(st.integers(1, t.ndim - 1))
        return _factor(draw, math.prod(t.shape[first:]), draw(st.integers(1, 2))), None
    return _factor(draw, t.size, 1), None


def _view_make(args: tuple) -> Any:
    size, k = args
    return nn.View(*size) if k is None else nn.View(*size, num_input_dims=k)


register("View", Entry(
    accepts=lambda t: is_arr(t) and t.ndim <= 3, draw_args=_view_args,
    out_type=lambda args, t: t.like(view_shape(t.shape, *args)),
    make=_view_make,
    torch=lambda ctx, m, args, x: x.reshape(view_shape(tuple(x.shape), *args)), weight=8))


# Issue 13's reductions and axis moves (nn/reduction.py, nn/selection.py); Replicate's output is a
# read-only broadcast view, so every consumer of it must leave it alone.
def _sum_args(draw: Any, t: Arr) -> tuple:
    return (draw(st.integers(-t.ndim, t.ndim - 1)), draw(st.booleans()), draw(st.booleans()))


def _sum_out(args: tuple, t: Arr) -> Arr:
    axis = args[0] % t.ndim
    keep = (1,) if not args[2] else ()
    return Arr(t.shape[:axis] + keep + t.shape[axis + 1:], t.positive)


def _sum_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    axis = args[0] % x.dim()
    out = x.sum(dim=axis, keepdim=not args[2])
    return out / x.shape[axis] if args[1] else out


if hasattr(nn, "Sum"):
    register("Sum", Entry(
        accepts=lambda t: is_arr(t) and t.ndim >= 1, draw_args=_sum_args, out_type=_sum_out,
        make=lambda args: nn.Sum(args[0], None, args[1], args[2]), torch=_sum_torch))
    register("Mean", Entry(
        accepts=lambda t: is_arr(t) and t.ndim >= 1,
        draw_args=lambda draw, t: (_sum_args(draw, t)[0], True, draw(st.booleans())),
        out_type=_sum_out,
        make=lambda args: nn.Mean(args[0], None, args[2]), torch=_sum_torch))


def _replicate_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    n, dim = args
    y = x.unsqueeze(dim)
    shape = list(y.shape)
    shape[dim] = n
    return y.expand(*shape)


if hasattr(nn, "Replicate"):
    register("Replicate", Entry(
        accepts=lambda t: is_arr(t) and t.ndim <= 2,
        draw_args=lambda draw, t: (draw(st.integers(1, 3)), draw(st.integers(0, t.ndim))),
        out_type=lambda args, t: t.like(t.shape[:args[1]] + (args[0],) + t.shape[args[1]:]),
        make=lambda args: nn.Replicate(*args), torch=_replicate_torch))


def _transpose_out(args: tuple, t: Arr) -> Arr:
    shape = list(t.shape)
    for a, b in args:
        shape[a], shape[b] = shape[b], shape[a]
    return t.like(tuple(shape))


def _transpose_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    for a, b in args:
        x = x.transpose(a, b)
    return x


if hasattr(nn, "Transpose"):
    register("Transpose", Entry(
        accepts=lambda t: is_arr(t) and t.ndim >= 2,
        draw_args=lambda draw, t: tuple(
            (draw(st.integers(0, t.ndim - 1)), draw(st.integers(0, t.ndim - 1)))
            for _ in range(draw(st.integers(1, 2)))),
        out_type=_transpose_out,
        make=lambda args: nn.Transpose(*args), torch=_transpose_torch))

if hasattr(nn, "Unsqueeze"):
    register("Unsqueeze", Entry(
        accepts=lambda t: is_arr(t) and t.ndim <= 2,
        draw_args=lambda draw, t: (draw(st.integers(0, t.ndim)),),
        out_type=lambda args, t: t.like(t.shape[:args[0]] + (1,) + t.shape[args[0]:]),
        make=lambda args: nn.Unsqueeze(*args),
        torch=lambda ctx, m, args, x: x.unsqueeze(args[0])))


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------
def _sum(xs: list) -> Any:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def _prod(xs: list) -> Any:
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


register("CAddTable", Entry(
    accepts=_same_shapes, draw_args=_no_args,
    out_type=lambda args, t: Arr(t.items[0].shape),
    make=lambda args: nn.CAddTable(), torch=lambda ctx, m, args, x: _sum(list(x)), weight=12))

register("CMulTable", Entry(
    accepts=_same_shapes, draw_args=_no_args,
    out_type=lambda args, t: Arr(t.items[0].shape),
    make=lambda args: nn.CMulTable(), torch=lambda ctx, m, args, x: _prod(list(x)), weight=8))

if hasattr(nn, "CAveTable"):
    register("CAveTable", Entry(
        accepts=_same_shapes, draw_args=_no_args,
        out_type=lambda args, t: Arr(t.items[0].shape),
        make=lambda args: nn.CAveTable(), torch=lambda ctx, m, args, x: _sum(list(x)) / len(x)))

register("CSubTable", Entry(
    accepts=lambda t: _same_shapes(t) and len(t) == 2, draw_args=_no_args,
    out_type=lambda args, t: Arr(t.items[0].shape),
    make=lambda args: nn.CSubTable(), torch=lambda ctx, m, args, x: x[0] - x[1], weight=8))

register("CDivTable", Entry(
    accepts=lambda t: _same_shapes(t) and len(t) == 2 and t.items[1].positive,
    draw_args=_no_args,
    out_type=lambda args, t: Arr(t.items[0].shape),
    make=lambda args: nn.CDivTable(), torch=lambda ctx, m, args, x: x[0] / x[1], weight=12))


def _join_axes(t: Type) -> list[int]:
    """The axes along which the arrays of list type ``t`` can be joined."""
    if not is_list_of_arrays(t):
        return []
    shapes = [i.shape for i in t.items]
    ndim = len(shapes[0])
    if ndim == 0 or any(len(s) != ndim for s in shapes):
        return []
    return [a for a in range(ndim)
            if all(s[:a] + s[a + 1:] == shapes[0][:a] + shapes[0][a + 1:] for s in shapes)]


def _join_args(draw: Any, t: Lst) -> tuple:
    axis = draw(st.sampled_from(_join_axes(t)))
    ndim = t.items[0].ndim
    return (axis if draw(st.booleans()) else axis - ndim,)


def _join_out(args: tuple, t: Lst) -> Arr:
    shape = t.items[0].shape
    axis = args[0] % len(shape)
    total = sum(i.shape[axis] for i in t.items)
    positive = all(i.positive for i in t.items)
    return Arr(shape[:axis] + (total,) + shape[axis + 1:], positive)


register("JoinTable", Entry(
    accepts=lambda t: bool(_join_axes(t)), draw_args=_join_args, out_type=_join_out,
    make=lambda args: nn.JoinTable(*args),
    torch=lambda ctx, m, args, x: torch.cat(list(x), dim=args[0] % x[0].dim()), weight=8))


def _split_args(draw: Any, t: Arr) -> tuple:
    dim = draw(st.integers(-t.ndim, t.ndim - 1))
    return (dim,)


def _split_out(args: tuple, t: Arr) -> Lst:
    axis = args[0] % t.ndim
    item = t.like(t.shape[:axis] + t.shape[axis + 1:])
    return Lst((item,) * t.shape[axis])


register("SplitTable", Entry(
    accepts=lambda t: is_arr(t) and t.ndim >= 1, draw_args=_split_args, out_type=_split_out,
    make=lambda args: nn.SplitTable(*args),
    torch=lambda ctx, m, args, x: list(torch.unbind(x, dim=args[0] % x.dim())), weight=8))


def _select_table_args(draw: Any, t: Lst) -> tuple:
    return (draw(st.integers(-len(t), len(t) - 1)),)


def _select_table_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    index = args[0] if args is not None else m.index  # node.split's own SelectTables
    return x[index]


register("SelectTable", Entry(
    accepts=lambda t: isinstance(t, Lst) and len(t) >= 1, draw_args=_select_table_args,
    out_type=lambda args, t: t.items[args[0]],
    make=lambda args: nn.SelectTable(*args), torch=_select_table_torch))


def _narrow_table_args(draw: Any, t: Lst) -> tuple:
    n = len(t)
    start = draw(st.integers(0, n - 1))
    offset = start if draw(st.booleans()) else start - n
    return (offset, draw(st.integers(1, n - start)))


def _narrow_table_slice(args: tuple, n: int) -> slice:
    offset, length = args
    start = offset % n if offset < 0 else offset
    return slice(start, start + length)


register("NarrowTable", Entry(
    accepts=lambda t: isinstance(t, Lst) and len(t) >= 1, draw_args=_narrow_table_args,
    out_type=lambda args, t: Lst(t.items[_narrow_table_slice(args, len(t))]),
    make=lambda args: nn.NarrowTable(*args),
    torch=lambda ctx, m, args, x: list(x)[_narrow_table_slice(args, len(x))]))


# ------------------------------------------------------------------------------------------------
# Learnable element-wise scale and shift (Lua: nn.CMul, nn.CAdd); nngraph's JustTable/JustElement
# ------------------------------------------------------------------------------------------------
def _cmul_args(draw: Any, t: Arr) -> tuple:
    mode = draw(st.sampled_from(("same", "broadcast", "batch")))
    if mode == "batch" and t.ndim >= 2:  # one weight per example of a batch
        return tuple(t.shape[1:])
    if mode == "broadcast":  # the weight's axes of size 1 broadcast
        return tuple(1 if draw(st.booleans()) else n for n in t.shape)
    return tuple(t.shape)


def _broadcast_param(ctx: Any, array: Any, x: Any) -> Any:
    w = ctx.param(array)
    return w.reshape(tuple(x.shape)) if w.numel() == x.numel() else w


register("CMul", Entry(
    accepts=lambda t: is_arr(t) and t.ndim >= 1, draw_args=_cmul_args,
    out_type=lambda args, t: Arr(t.shape),
    make=lambda args: nn.CMul(*args),
    torch=lambda ctx, m, args, x: x * _broadcast_param(ctx, m.weight, x), tags={"params"}))

register("CAdd", Entry(
    accepts=lambda t: is_arr(t) and t.ndim >= 1, draw_args=_cmul_args,
    out_type=lambda args, t: Arr(t.shape),
    make=lambda args: nn.CAdd(*args),
    torch=lambda ctx, m, args, x: x + _broadcast_param(ctx, m.bias, x), tags={"params"}))

register("JustTable", Entry(
    accepts=lambda t: not isinstance(t, Labels), draw_args=_no_args,
    out_type=lambda args, t: Lst((t,)),
    make=lambda args: nn.JustTable(), torch=lambda ctx, m, args, x: [x]))

register("JustElement", Entry(
    accepts=lambda t: isinstance(t, Lst) and len(t) == 1, draw_args=_no_args,
    out_type=lambda args, t: t.items[0],
    make=lambda args: nn.JustElement(), torch=lambda ctx, m, args, x: x[0]))


# ------------------------------------------------------------------------------------------------
# Criteria as graph nodes (nngraph's ModuleFromCriterion): 0-d outputs
# ------------------------------------------------------------------------------------------------
def _mse_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    d = x[0] - x[1].detach()  # Lua: the target gets a zero gradient
    loss = (d * d).sum()
    return loss / d.numel() if args[0] and d.numel() else loss


register("MSECriterion", Entry(
    accepts=lambda t: _same_shapes(t) and len(t) == 2,
    draw_args=lambda draw, t: (draw(st.booleans()),),
    out_type=lambda args, t: Arr(()),
    make=lambda args: nn.ModuleFromCriterion(nn.MSECriterion(args[0])),
    torch=_mse_torch, weight=16))


def _label_accepts(t: Type) -> bool:
    return (isinstance(t, Lst) and len(t) == 2 and is_arr(t.items[0]) and t.items[0].ndim in (1, 2)
            and isinstance(t.items[1], Labels) and t.items[1].classes == t.items[0].shape[-1]
            and t.items[1].shape == t.items[0].shape[:-1])


def _label_args(draw: Any, t: Lst) -> tuple:
    classes = t.items[0].shape[-1]
    weights = None
    if draw(st.booleans()):
        weights = tuple(draw(st.sampled_from((0.5, 1.0, 2.0))) for _ in range(classes))
    return (weights, draw(st.booleans()))


def _nll_torch(log_softmax: bool) -> Callable[..., Any]:
    def fn(ctx: Any, m: Any, args: Any, x: Any) -> Any:
        scores, target = x[0], x[1]
        rows = scores.reshape(1, -1) if scores.dim() == 1 else scores
        if log_softmax:
            rows = torch.log_softmax(rows, dim=-1)
        weight = None if args[0] is None else torch.tensor(args[0], dtype=rows.dtype)
        return F.nll_loss(rows, target.reshape(-1), weight=weight,
                          reduction="mean" if args[1] else "sum")
    return fn


def _label_make(cls: type) -> Callable[[Any], Any]:
    def make(args: tuple) -> Any:
        weights = None if args[0] is None else np.array(args[0])
        return nn.ModuleFromCriterion(cls(weights, args[1]))
    return make


register("ClassNLLCriterion", Entry(
    accepts=_label_accepts, draw_args=_label_args, out_type=lambda args, t: Arr(()),
    make=_label_make(nn.ClassNLLCriterion), torch=_nll_torch(False), tags={"labels"}))

register("CrossEntropyCriterion", Entry(
    accepts=_label_accepts, draw_args=_label_args, out_type=lambda args, t: Arr(()),
    make=_label_make(nn.CrossEntropyCriterion), torch=_nll_torch(True), tags={"labels"}))


# ------------------------------------------------------------------------------------------------
# Composites: containers and gModule (the generator draws their members; see prop_graphs.py)
# ------------------------------------------------------------------------------------------------
def _sequential_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    for child in m.children():
        x = ctx.eval(child, x)
    return x


def _never(t: Type) -> bool:
    return False


def _composite(make: Callable[[Any], Any], fn: Callable[..., Any]) -> Entry:
    return Entry(accepts=_never, draw_args=_no_args, out_type=_same, make=make, torch=fn,
                 tags={"composite"})


# A composite's ``make`` takes ``(members, args)``: the built members and its own arguments.
register("Sequential", _composite(
    lambda members, args: nn.Sequential(*members), _sequential_torch))
register("ConcatTable", _composite(
    lambda members, args: nn.ConcatTable(*members),
    lambda ctx, m, args, x: [ctx.eval(c, x) for c in m.children()]))
register("ParallelTable", _composite(
    lambda members, args: nn.ParallelTable(*members),
    lambda ctx, m, args, x: [ctx.eval(c, xi) for c, xi in zip(m.children(), x)]))


def _parallel_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    in_dim, out_dim = args
    outs = [ctx.eval(c, x.select(in_dim % x.dim(), i)) for i, c in enumerate(m.children())]
    return torch.cat(outs, dim=out_dim % outs[0].dim())


def _concat_torch(ctx: Any, m: Any, args: Any, x: Any) -> Any:
    outs = [ctx.eval(c, x) for c in m.children()]
    return torch.cat(outs, dim=args[0] % outs[0].dim())


# Lua's nn.Parallel(inputDimension, outputDimension) and nn.Concat(dimension), 0-based here.
register("Parallel", _composite(
    lambda members, args: nn.Parallel(*args, *members), _parallel_torch))
register("Concat", _composite(
    lambda members, args: nn.Concat(*args, *members), _concat_torch))


def _gmodule_torch(ctx: Any, g: Any, args: Any, x: Any) -> Any:
    """Evaluate a gModule from its nodes' wiring, by recursion from the outputs (not the
    engine's order)."""
    xs = [x] if len(g.input_nodes) == 1 else list(x)
    slots = {id(node): k for k, node in enumerate(g.input_nodes)}
    memo: dict[int, Any] = {}

    def value(node: Any) -> Any:
        if id(node) not in memo:
            if id(node) in slots:
                arg = xs[slots[id(node)]]
            elif node.table:
                arg = [value(p) for p in node.inputs]
            else:
                arg = value(node.inputs[0])
            memo[id(node)] = ctx.eval(node.module, arg)
        return memo[id(node)]

    outs = [value(n) for n in g.output_nodes]
    return outs[0] if len(outs) == 1 else outs


register("gModule", _composite(lambda graph, args: graph, _gmodule_torch))


def module_name(m: Any) -> str:
    """The registry name of a built module (criteria are registered by the criterion's name)."""
    name = getattr(m, "_prop_name", None)
    if name is not None:
        return name
    if isinstance(m, nn.ModuleFromCriterion):
        return type(m.criterion).__name__
    return type(m).__name__


def to_torch(x: Any, dtype: Any = torch.float64) -> Any:
    """A host copy of an array of any backend as a torch tensor (integers kept)."""
    host = np.array(backend.to_numpy(x), copy=True)
    t = torch.from_numpy(host)
    return t.to(dtype) if host.dtype.kind == "f" else t
