"""More loss functions (Lua: ``nn.BCECriterion``, ``nn.AbsCriterion``, ``nn.SmoothL1Criterion``,
``nn.DistKLDivCriterion``, ``nn.MarginCriterion``, ``nn.SoftMarginCriterion``,
``nn.MultiMarginCriterion``, ``nn.MultiLabelSoftMarginCriterion``, ``nn.HingeEmbeddingCriterion``,
``nn.CosineEmbeddingCriterion``, ``nn.MarginRankingCriterion``, ``nn.MultiCriterion``,
``nn.ParallelCriterion``).

``size_average`` divides by what Lua divides by (named in each docstring). Class targets are
0-based integers; sign targets are ``+1`` / ``-1`` (integers or floats). Criteria whose input is a
list (``[x1, x2]``) are usable as graph nodes as the others: ``crit([[a, b], target])``.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import InputError, ShapeError, shape_str
from ..module import Array
from .activation import sigmoid
from .criterion import Criterion
from .table_math import cosine_similarity
from .table_structure import CriterionTable
from .transfer import softplus

__all__ = ["BCECriterion", "AbsCriterion", "SmoothL1Criterion", "DistKLDivCriterion",
           "MarginCriterion", "SoftMarginCriterion", "MultiMarginCriterion",
           "MultiLabelSoftMarginCriterion", "HingeEmbeddingCriterion",
           "CosineEmbeddingCriterion", "MarginRankingCriterion", "MultiCriterion",
           "ParallelCriterion"]


def _mean_or_sum(total: Array, n: int, size_average: bool) -> Array:
    return total / n if size_average and n else total


def _as_input_dtype(target: Array, input: Array) -> Array:
    return target if target.dtype == input.dtype else target.astype(input.dtype)


class _ElementwiseCriterion(Criterion):
    """A loss summed over elements of ``input`` and a ``target`` of its shape."""

    def __init__(self, size_average: bool = True):
        super().__init__()
        self.size_average = bool(size_average)

    def _check(self, input: Array, target: Array) -> Array:
        if tuple(target.shape) != tuple(input.shape):
            raise ShapeError(f"{self.describe()}: expected a target of the input's shape "
                             f"{shape_str(input)}, got {shape_str(target)}")
        return _as_input_dtype(target, input)

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        raise NotImplementedError

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        raise NotImplementedError

    def update_output(self, input: Array, target: Array) -> Array:
        t = self._check(input, target)
        xp = backend.get_array_module(input)
        total = self._loss(xp, input, t).sum()
        self.output = xp.asarray(_mean_or_sum(total, int(input.size), self.size_average),
                                 dtype=input.dtype)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        t = self._check(input, target)
        xp = backend.get_array_module(input)
        g = self._grad(xp, input, t)
        self.grad_input = g / int(input.size) if self.size_average and input.size else g
        return self.grad_input

    def extra_repr(self) -> str:
        return "" if self.size_average else "size_average=False"


class AbsCriterion(_ElementwiseCriterion):
    """``sum |x - t|``, divided by the number of elements when ``size_average`` (Lua:
    ``nn.AbsCriterion(sizeAverage)``)."""

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        return xp.abs(x - t)

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return xp.sign(x - t)


class SmoothL1Criterion(_ElementwiseCriterion):
    """Huber loss: ``0.5 d^2`` for ``|d| < 1``, ``|d| - 0.5`` otherwise, ``d = x - t``; divided by
    the number of elements when ``size_average`` (Lua: ``nn.SmoothL1Criterion(sizeAverage)``)."""

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        d = xp.abs(x - t)
        return xp.where(d < 1, 0.5 * d * d, d - 0.5)

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return xp.clip(x - t, -1.0, 1.0)


class DistKLDivCriterion(_ElementwiseCriterion):
    """Kullback-Leibler divergence ``sum t (log t - x)`` over ``t > 0``, for log-probabilities
    ``x`` and probabilities ``t``; divided by the number of elements when ``size_average`` (Lua:
    ``nn.DistKLDivCriterion(sizeAverage)``)."""

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        positive = t > 0
        safe = xp.where(positive, t, 1.0)
        return xp.where(positive, t * (xp.log(safe) - x), 0.0)

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return xp.where(t > 0, -t, 0.0)


class MarginCriterion(_ElementwiseCriterion):
    """Two-class hinge loss ``sum max(0, margin - x y)`` for labels ``y`` of +-1; divided by the
    number of elements when ``size_average`` (Lua: ``nn.MarginCriterion(margin)``, margin 1)."""

    def __init__(self, margin: float = 1.0, size_average: bool = True):
        super().__init__(size_average)
        self.margin = float(margin)

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        return xp.maximum(self.margin - x * t, 0.0)

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return -t * (self.margin - x * t > 0)


class SoftMarginCriterion(_ElementwiseCriterion):
    """Two-class logistic loss ``sum log(1 + exp(-y x))`` for labels ``y`` of +-1; divided by
    the number of elements when ``size_average`` (Lua: ``nn.SoftMarginCriterion``)."""

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        return softplus(xp, -x * t)

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return -t * sigmoid(xp, -x * t)


class _WeightedElementwise(_ElementwiseCriterion):
    def __init__(self, weights: Any = None, size_average: bool = True):
        super().__init__(size_average)
        self.weights: Array | None = None
        if weights is not None:
            host = backend.to_numpy(weights).astype(self._dtype)
            self.weights = backend.to_device(host, self._device)

    def _check(self, input: Array, target: Array) -> Array:
        t = super()._check(input, target)
        w = self.weights
        if w is not None and tuple(w.shape) != tuple(input.shape[input.ndim - w.ndim:]):
            raise ShapeError(f"{self.describe()}: the weights {shape_str(w)} do not match the "
                             f"trailing axes of the input {shape_str(input)}")
        return t

    def _weighted(self, v: Array) -> Array:
        return v if self.weights is None else v * self.weights


class BCECriterion(_WeightedElementwise):
    """Binary cross-entropy ``-sum w (t log(x + eps) + (1 - t) log(1 - x + eps))`` of
    probabilities ``x``, ``eps = 1e-12``; divided by the number of elements when ``size_average``
    (Lua: ``nn.BCECriterion(weights, sizeAverage)``; ``weights`` of one example's shape, repeated
    over the batch)."""

    eps = 1e-12

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        return -self._weighted(t * xp.log(x + self.eps) + (1 - t) * xp.log(1 - x + self.eps))

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return -self._weighted((t - x) / ((1 - x + self.eps) * (x + self.eps)))


class MultiLabelSoftMarginCriterion(_WeightedElementwise):
    """Sigmoid then binary cross-entropy, per label, for 0/1 targets (Lua:
    ``nn.MultiLabelSoftMarginCriterion(weights)``); computed from the scores directly (stable);
    divided by the number of elements when ``size_average``."""

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        return self._weighted(t * softplus(xp, -x) + (1 - t) * softplus(xp, x))

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return self._weighted(sigmoid(xp, x) - t)


class HingeEmbeddingCriterion(_ElementwiseCriterion):
    """``x`` where ``y = 1``, ``max(0, margin - x)`` where ``y = -1`` (Lua:
    ``nn.HingeEmbeddingCriterion(margin)``, margin 1), summed; divided by the number of elements
    when ``size_average``. ``x`` is typically a distance (``PairwiseDistance``)."""

    def __init__(self, margin: float = 1.0, size_average: bool = True):
        super().__init__(size_average)
        self.margin = float(margin)

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        return xp.where(t > 0, x, xp.maximum(self.margin - x, 0.0))

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return xp.where(t > 0, 1.0, -1.0 * (self.margin - x > 0))


class MultiMarginCriterion(Criterion):
    """Multi-class hinge loss (Lua: ``nn.MultiMarginCriterion(p, weights, margin)``).

    Per example: ``sum_{i != y} w[y] max(0, margin - x[y] + x[i])^p / classes``; summed over the
    batch, divided by the batch size when ``size_average``. ``p`` is 1 or 2.

    Shape: input ``(batch, classes)`` with 0-based integer target ``(batch,)``, or ``(classes,)``
    with one target.
    """

    def __init__(self, p: int = 1, weights: Any = None, margin: float = 1.0,
                 size_average: bool = True):
        super().__init__()
        if int(p) not in (1, 2):
            raise ValueError(f"MultiMarginCriterion supports p = 1 or 2, got {p}")
        self.p, self.margin, self.size_average = int(p), float(margin), bool(size_average)
        self.weights: Array | None = None
        if weights is not None:
            self.weights = backend.to_device(backend.to_numpy(weights).astype(self._dtype),
                                             self._device)

    def _rows(self, input: Array, target: Array) -> tuple[Array, Array]:
        who = self.describe()
        x = input if input.ndim == 2 else input.reshape(1, -1)
        if input.ndim not in (1, 2):
            raise ShapeError(f"{who}: expected input (batch, classes) or (classes,), got "
                             f"{shape_str(input)}")
        if target.dtype.kind not in "iu":
            raise InputError(f"{who}: expected integer class indices (0-based), got "
                             f"{target.dtype} {shape_str(target)}")
        t = target.reshape(-1)
        if int(t.shape[0]) != int(x.shape[0]):
            raise ShapeError(f"{who}: expected {int(x.shape[0])} targets for input "
                             f"{shape_str(input)}, got {shape_str(target)}")
        n = int(x.shape[1])
        if t.size and bool(((t < 0) | (t >= n)).any()):
            raise ShapeError(f"{who}: expected class indices in [0, {n}), got values from "
                             f"{int(t.min())} to {int(t.max())}")
        return x, t

    def _margins(self, xp: Any, x: Array, t: Array) -> tuple[Array, Array, Array]:
        rows = xp.arange(int(x.shape[0]))
        z = self.margin - x[rows, t][:, None] + x
        z[rows, t] = 0.0
        z = xp.maximum(z, 0.0)
        w = xp.ones((int(x.shape[0]),), dtype=x.dtype) if self.weights is None \
            else self.weights[t]
        return z, w[:, None], rows

    def update_output(self, input: Array, target: Array) -> Array:
        x, t = self._rows(input, target)
        xp = backend.get_array_module(input)
        z, w, _ = self._margins(xp, x, t)
        total = (w * (z if self.p == 1 else z * z)).sum() / int(x.shape[1])
        self.output = xp.asarray(_mean_or_sum(total, int(x.shape[0]), self.size_average),
                                 dtype=input.dtype)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        x, t = self._rows(input, target)
        xp = backend.get_array_module(input)
        z, w, rows = self._margins(xp, x, t)
        g = w * ((z > 0).astype(x.dtype) if self.p == 1 else 2 * z) / int(x.shape[1])
        g[rows, t] = -g.sum(axis=1)
        if self.size_average:
            g = g / int(x.shape[0])
        self.grad_input = g.reshape(input.shape)
        return self.grad_input


class _PairCriterion(Criterion):
    """A loss of a list input ``[x1, x2]`` and a +-1 target; a graph node via CriterionTable."""

    def __init__(self, margin: float = 0.0, size_average: bool = True):
        super().__init__()
        self.margin, self.size_average = float(margin), bool(size_average)

    def _accept(self, value: Any, what: str) -> Any:
        if isinstance(value, (list, tuple)):
            return [super(_PairCriterion, self)._accept(v, f"{what}[{i}]")
                    for i, v in enumerate(value)]
        return super()._accept(value, what)

    def __call__(self, *args: Any) -> Any:
        from ..graph.node import make_node

        items = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else []
        if len(items) == 2 and isinstance(items[0], (list, tuple)):
            items = list(items[0]) + [items[1]]
        if len(items) != 3:
            raise InputError(f"{self!r}([x1, x2, target]) (or [[x1, x2], target]) builds a graph "
                             f"node from three nodes")
        return make_node(CriterionTable(self, n_predictions=2), (items,))

    def _pair(self, input: Any, target: Array) -> tuple[Array, Array, Array]:
        if not isinstance(input, (list, tuple)) or len(input) != 2:
            raise InputError(f"{self.describe()}: expected input [x1, x2], got "
                             f"{shape_str(input)}")
        a, b = input
        if tuple(a.shape) != tuple(b.shape):
            raise ShapeError(f"{self.describe()}: expected x1 and x2 of one shape, got "
                             f"{shape_str(input)}")
        n = int(a.shape[0]) if a.ndim >= 1 and a.ndim > self._example_ndim else 1
        if int(target.size) != n:
            raise ShapeError(f"{self.describe()}: expected {n} targets (+1/-1) for input "
                             f"{shape_str(input)}, got {shape_str(target)}")
        return a, b, _as_input_dtype(target, a).reshape(-1)

    _example_ndim = 0

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}" if self.margin else ""


class CosineEmbeddingCriterion(_PairCriterion):
    """``1 - cos(x1, x2)`` where ``y = 1``, ``max(0, cos(x1, x2) - margin)`` where ``y = -1``
    (Lua: ``nn.CosineEmbeddingCriterion(margin)``, margin 0); summed over the batch, divided by
    its size when ``size_average``. Norms get ``1e-12`` added to their squares, as Lua's.

    Shape: input ``[(batch, d), (batch, d)]`` (or two ``(d,)``), target ``(batch,)``.
    """

    eps = 1e-12
    _example_ndim = 1

    def update_output(self, input: Any, target: Array) -> Array:
        a, b, y = self._pair(input, target)
        xp = backend.get_array_module(a)
        a2, b2 = a.reshape(-1, int(a.shape[-1])), b.reshape(-1, int(b.shape[-1]))
        cos = cosine_similarity(xp, a2, b2, self.eps)
        per = xp.where(y > 0, 1.0 - cos, xp.maximum(cos - self.margin, 0.0))
        self.output = xp.asarray(_mean_or_sum(per.sum(), int(y.shape[0]), self.size_average),
                                 dtype=a.dtype)
        return self.output

    def update_grad_input(self, input: Any, target: Array) -> list[Array]:
        a, b, y = self._pair(input, target)
        xp = backend.get_array_module(a)
        a2, b2 = a.reshape(-1, int(a.shape[-1])), b.reshape(-1, int(b.shape[-1]))
        aa = (a2 * a2).sum(1, keepdims=True) + self.eps
        bb = (b2 * b2).sum(1, keepdims=True) + self.eps
        ab = (a2 * b2).sum(1, keepdims=True)
        inv = 1.0 / xp.sqrt(aa * bb)
        cos = ab * inv
        da = inv * (b2 - a2 * ab / aa)
        db = inv * (a2 - b2 * ab / bb)
        coef = xp.where(y[:, None] > 0, -1.0, 1.0 * (cos - self.margin > 0))
        if self.size_average:
            coef = coef / int(y.shape[0])
        self.grad_input = [(coef * da).reshape(a.shape), (coef * db).reshape(b.shape)]
        return self.grad_input


class MarginRankingCriterion(_PairCriterion):
    """``max(0, -y (x1 - x2) + margin)``, summed over the batch and divided by its size when
    ``size_average`` (Lua: ``nn.MarginRankingCriterion(margin)``, margin 0).

    Shape: input ``[(batch,), (batch,)]`` (or two one-element arrays), target ``(batch,)``.
    """

    def update_output(self, input: Any, target: Array) -> Array:
        a, b, y = self._pair(input, target)
        xp = backend.get_array_module(a)
        per = xp.maximum(-y * (a.reshape(-1) - b.reshape(-1)) + self.margin, 0.0)
        self.output = xp.asarray(_mean_or_sum(per.sum(), int(y.shape[0]), self.size_average),
                                 dtype=a.dtype)
        return self.output

    def update_grad_input(self, input: Any, target: Array) -> list[Array]:
        a, b, y = self._pair(input, target)
        active = (-y * (a.reshape(-1) - b.reshape(-1)) + self.margin > 0)
        g = -y * active
        if self.size_average:
            g = g / int(y.shape[0])
        self.grad_input = [g.reshape(a.shape), (-g).reshape(b.shape)]
        return self.grad_input


class MultiCriterion(Criterion):
    """A weighted sum of criteria of one input and target (Lua: ``nn.MultiCriterion``).

    Example:
        >>> crit = MultiCriterion().add(MSECriterion()).add(AbsCriterion(), weight=0.5)
    """

    def __init__(self) -> None:
        super().__init__()
        self.criteria: list[Criterion] = []
        self.weights_list: list[float] = []

    def add(self, criterion: Criterion, weight: float = 1.0) -> "MultiCriterion":
        """Append ``criterion`` with ``weight`` (Lua: ``add(criterion, weight)``); returns self."""
        if not isinstance(criterion, Criterion):
            raise InputError(f"{type(self).__name__}.add expects a criterion, got "
                             f"{type(criterion).__name__}")
        criterion.to(self._device, self._dtype)
        self.criteria.append(criterion)
        self.weights_list.append(float(weight))
        return self

    def _pairs(self, input: Any, target: Any) -> list[tuple[Any, Any]]:
        return [(input, target)] * len(self.criteria)

    def _accept(self, value: Any, what: str) -> Any:
        if isinstance(value, (list, tuple)):
            return [self._accept(v, f"{what}[{i}]") for i, v in enumerate(value)]
        return super()._accept(value, what)

    def update_output(self, input: Any, target: Any) -> Array:
        xp = backend.array_module(self._device)
        total = 0.0
        for c, w, (x, t) in zip(self.criteria, self.weights_list, self._pairs(input, target)):
            total = total + w * c.update_output(x, t)
        self.output = xp.asarray(total, dtype=self._dtype)
        return self.output

    def _combine(self, grads: list[Any]) -> Any:
        out = grads[0]
        for g in grads[1:]:
            out = out + g
        return out

    def update_grad_input(self, input: Any, target: Any) -> Any:
        grads = [_scale(c.update_grad_input(x, t), w) for c, w, (x, t)
                 in zip(self.criteria, self.weights_list, self._pairs(input, target))]
        self.grad_input = self._combine(grads)
        return self.grad_input

    def to(self, device: str | None = None, dtype: Any = None) -> "MultiCriterion":
        super().to(device, dtype)
        for c in self.criteria:
            c.to(device, dtype)
        return self

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i + 1}): {c!r} x {w:g}"
                          for i, (c, w) in enumerate(zip(self.criteria, self.weights_list)))
        return f"nn.{type(self).__name__} {{\n{inner}\n}}" if inner else f"nn.{type(self).__name__}"


def _scale(g: Any, w: float) -> Any:
    if isinstance(g, (list, tuple)):
        return [_scale(v, w) for v in g]
    return g * w


class ParallelCriterion(MultiCriterion):
    """Criterion ``i`` applied to ``input[i]`` and ``target[i]``, weighted and summed (Lua:
    ``nn.ParallelCriterion(repeatTarget)``; with ``repeat_target`` every criterion gets the whole
    target). The gradient is the list of the criteria's gradients."""

    def __init__(self, repeat_target: bool = False):
        super().__init__()
        self.repeat_target = bool(repeat_target)

    def _pairs(self, input: Any, target: Any) -> list[tuple[Any, Any]]:
        n = len(self.criteria)
        if not isinstance(input, (list, tuple)) or len(input) != n:
            raise InputError(f"{self.describe().splitlines()[0]}: expected input as a list of "
                             f"{n} (one per criterion), got {shape_str(input)}")
        if self.repeat_target:
            return [(x, target) for x in input]
        if not isinstance(target, (list, tuple)) or len(target) != n:
            raise InputError(f"{self.describe().splitlines()[0]}: expected target as a list of "
                             f"{n} (one per criterion), got {shape_str(target)}")
        return list(zip(input, target))

    def _combine(self, grads: list[Any]) -> Any:
        return grads

    def __call__(self, *args: Any) -> Any:
        from ..graph.node import make_node

        if len(args) != 1 or not isinstance(args[0], (list, tuple)) or len(args[0]) != 2 \
                or not isinstance(args[0][0], (list, tuple)):
            raise InputError(f"{self!r}([[inputs...], target or [targets...]]) builds a graph "
                             f"node from a list of input nodes and the target node(s)")
        inputs, targets = args[0]
        targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
        return make_node(CriterionTable(self, n_predictions=len(inputs)),
                         (list(inputs) + targets,))



class L1Cost(Criterion):
    """``sum |x|``, the target ignored (Lua: ``nn.L1Cost``; ``forward(input, target)`` as every
    criterion here, any target)."""

    def update_output(self, input: Array, target: Any) -> Array:
        xp = backend.get_array_module(input)
        self.output = xp.asarray(xp.abs(input).sum(), dtype=input.dtype)
        return self.output

    def update_grad_input(self, input: Array, target: Any) -> Array:
        self.grad_input = backend.get_array_module(input).sign(input)
        return self.grad_input


class WeightedMSECriterion(_ElementwiseCriterion):
    """``MSE(x, t * w)``, Lua's ``nn.WeightedMSECriterion(w)``: the *target* is multiplied by the
    weights (one example's shape, repeated over a batch), then the mean squared error."""

    def __init__(self, weight: Any, size_average: bool = True):
        super().__init__(size_average)
        self.weight = backend.to_device(backend.to_numpy(weight).astype(self._dtype),
                                        self._device)

    def _loss(self, xp: Any, x: Array, t: Array) -> Array:
        d = x - t * self.weight
        return d * d

    def _grad(self, xp: Any, x: Array, t: Array) -> Array:
        return 2.0 * (x - t * self.weight)
