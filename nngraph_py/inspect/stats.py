"""Statistics of parameters and gradients: norm, mean, std, min, max, NaN/Inf counts, update ratio.

What one looks at when training goes wrong (TensorBoard's histograms, Karpathy's "update / weight
ratio around 1e-3" rule, Lua's ``print(params:norm(), gradParams:norm())``), per parameter and
named as :meth:`Module.named_parameters` names it (``i2h_forget.weight``).

Reductions run on the arrays' own device (``xp = get_array_module(a)``); only the resulting
scalars come to the host. Sums are accumulated in float64 so a float32 parameter of millions of
elements still gets a precise norm and mean.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy

from .. import backend
from ..module import Module

__all__ = ["ParamStats", "array_stats", "stats", "grad_stats", "snapshot", "update_ratio",
           "format_stats", "named_arrays"]

Array = Any


@dataclass
class ParamStats:
    """Statistics of one parameter (or gradient) array.

    ``norm``, ``mean``, ``std``, ``min`` and ``max`` are over the finite entries, so that a few
    Infs do not hide the magnitude of the rest; ``nan`` and ``inf`` count the others. They are NaN
    when there is no finite entry. ``std`` is the population standard deviation (NumPy's default,
    ``ddof=0``; PyTorch's ``Tensor.std`` uses ``ddof=1``).

    Attributes:
        name: the parameter's name (``i2h_forget.weight``).
        kind: ``"param"`` or ``"grad"``.
        shape: the array's shape.
        dtype: its dtype, as text.
        count: number of elements.
        norm: L2 norm (Lua: ``x:norm()``).
        mean: mean.
        std: standard deviation.
        min: smallest entry.
        max: largest entry.
        nan: number of NaN entries.
        inf: number of +-Inf entries.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str
    count: int
    norm: float
    mean: float
    std: float
    min: float
    max: float
    nan: int = 0
    inf: int = 0

    @property
    def finite(self) -> bool:
        """True when the array holds no NaN and no Inf."""
        return self.nan == 0 and self.inf == 0

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (the shape as a list), for JSON."""
        out = asdict(self)
        out["shape"] = list(self.shape)
        return out


def array_stats(name: str, array: Array, kind: str = "param") -> ParamStats:
    """Statistics of one array of any backend (NumPy, CuPy, strict).

    Args:
        name: the name to report.
        array: the array.
        kind: ``"param"`` or ``"grad"`` (a label).

    Returns:
        A :class:`ParamStats`.
    """
    xp = backend.get_array_module(array)
    count = int(array.size)
    shape = tuple(int(s) for s in array.shape)
    dtype = numpy.dtype(array.dtype)
    nan = inf = 0
    values = array
    if dtype.kind in "fc":
        finite = xp.isfinite(array)
        n_finite = int(finite.sum())
        if n_finite != count:
            nan = int(xp.isnan(array).sum())
            inf = count - n_finite - nan
            values = array[finite]
    if int(values.size) == 0:
        return ParamStats(name, kind, shape, dtype.name, count, math.nan, math.nan, math.nan,
                          math.nan, math.nan, nan, inf)
    wide = values.astype(xp.float64) if dtype != numpy.float64 else values
    return ParamStats(
        name=name, kind=kind, shape=shape, dtype=dtype.name, count=count,
        norm=float(xp.sqrt((wide * wide).sum())), mean=float(wide.mean()), std=float(wide.std()),
        min=float(values.min()), max=float(values.max()), nan=nan, inf=inf)


def named_arrays(source: Any, kind: str = "param") -> list[tuple[str, Array]]:
    """``(name, array)`` pairs from a module, a mapping or an iterable of pairs.

    Args:
        source: a :class:`Module` (its ``named_parameters``, or ``named_grad_parameters`` when
            ``kind == "grad"``), a mapping ``{name: array}`` (e.g. a loaded checkpoint's
            ``params``) or an iterable of ``(name, array)``.
        kind: ``"param"`` or ``"grad"``.

    Returns:
        The pairs, in the source's order.
    """
    if kind not in ("param", "grad"):
        raise ValueError(f"kind must be 'param' or 'grad', got {kind!r}")
    if isinstance(source, Module):
        pairs = source.named_grad_parameters() if kind == "grad" else source.named_parameters()
        return list(pairs)
    if isinstance(source, Mapping):
        return list(source.items())
    return list(source)


def stats(source: Any, kind: str = "param") -> list[ParamStats]:
    """Statistics of every parameter of a model (or of named arrays), in ``named_parameters`` order.

    (Lua: ``p:norm()``, ``p:mean()``, ``p:std()``, ``p:min()``, ``p:max()`` per tensor of
    ``model:parameters()``; PyTorch: the same tensor methods over ``named_parameters()``;
    TensorBoard: ``add_histogram``.)

    Args:
        source: a module, a mapping ``{name: array}`` or an iterable of ``(name, array)``.
        kind: ``"param"`` for the parameters, ``"grad"`` for their gradients.

    Returns:
        One :class:`ParamStats` per parameter; an array shared by clones appears once, under its
        first name.

    Example:
        >>> from nngraph_py import nn
        >>> [s.name for s in stats(nn.Linear(3, 2))]
        ['weight', 'bias']
    """
    return [array_stats(name, a, kind) for name, a in named_arrays(source, kind)]


def grad_stats(source: Any) -> list[ParamStats]:
    """Statistics of every parameter gradient (``stats(source, kind="grad")``).

    (Lua: the same over ``model:parameters()``'s second table; PyTorch: over ``p.grad``.)

    Args:
        source: a module (its ``named_grad_parameters``), or named gradient arrays.

    Returns:
        One :class:`ParamStats` per gradient, ``kind == "grad"``.
    """
    return stats(source, kind="grad")


def snapshot(source: Any) -> dict[str, Array]:
    """Copies of the parameters, on their device, to measure an update later.

    Args:
        source: a module or named arrays (see :func:`named_arrays`).

    Returns:
        ``{name: copy}``.
    """
    return {name: a.copy() for name, a in named_arrays(source)}


def update_ratio(before: Any, after: Any) -> dict[str, float]:
    """``||after - before|| / ||before||`` per parameter: how far one step moved each weight.

    (No Lua or PyTorch built-in: the "ratio of the updates to the values" of CS231n's notes on
    babysitting training, computed here per named parameter.)

    A healthy step is around 1e-3 (much smaller: the learning rate is too low or the gradient
    vanishes; much larger: it will diverge). A parameter whose ``before`` norm is zero gets
    ``inf`` if it moved, 0.0 if not.

    Args:
        before: a :func:`snapshot` (or a module / named arrays) taken before the step.
        after: the module after the step (or named arrays).

    Returns:
        ``{name: ratio}`` for the names present in both, in ``after``'s order.
    """
    old = dict(named_arrays(before))
    out: dict[str, float] = {}
    for name, new in named_arrays(after):
        prev = old.get(name)
        if prev is None or tuple(prev.shape) != tuple(new.shape):
            continue
        xp = backend.get_array_module(new)
        prev = backend.to_device(prev, backend.device_of(new))
        wide_new = new.astype(xp.float64)
        wide_old = prev.astype(xp.float64)
        delta = wide_new - wide_old
        step = float(xp.sqrt((delta * delta).sum()))
        weight = float(xp.sqrt((wide_old * wide_old).sum()))
        if weight > 0:
            out[name] = step / weight
        else:
            out[name] = math.inf if step > 0 else 0.0
    return out


def _num(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return f"{x:.4g}"


def format_stats(rows: Iterable[ParamStats], ratios: Mapping[str, float] | None = None,
                 title: str | None = None) -> str:
    """A text table of statistics (one line per array), non-finite counts flagged.

    Args:
        rows: :class:`ParamStats` entries.
        ratios: optional ``{name: update ratio}`` shown as a last column.
        title: a line printed above the table.

    Returns:
        The table.
    """
    rows = list(rows)
    columns = ["name", "shape", "norm", "mean", "std", "min", "max", "nan", "inf"]
    if ratios:
        columns.append("update/weight")
    lines = []
    for r in rows:
        cells = {"name": r.name, "shape": str(r.shape), "norm": _num(r.norm), "mean": _num(r.mean),
                 "std": _num(r.std), "min": _num(r.min), "max": _num(r.max), "nan": str(r.nan),
                 "inf": str(r.inf)}
        if ratios:
            cells["update/weight"] = _num(ratios[r.name]) if r.name in ratios else ""
        lines.append(cells)
    widths = {c: max([len(c)] + [len(cells[c]) for cells in lines]) for c in columns}
    left = {"name", "shape"}

    def fmt(cells: dict[str, str]) -> str:
        return "  ".join(cells[c].ljust(widths[c]) if c in left else cells[c].rjust(widths[c])
                         for c in columns).rstrip()

    header = fmt({c: c for c in columns})
    out = [title] if title else []
    out += [header, "-" * len(header)]
    out += [fmt(cells) for cells in lines]
    bad = [r.name for r in rows if not r.finite]
    if bad:
        out.append(f"NOT FINITE: {', '.join(bad)}")
    return "\n".join(out)
