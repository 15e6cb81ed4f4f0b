"""Arithmetic on lists of arrays (Lua: ``nn.CMaxTable``, ``nn.CMinTable``, ``nn.CAveTable``,
``nn.DotProduct``, ``nn.CosineDistance``, ``nn.PairwiseDistance``, ``nn.MM``,
``nn.MixtureTable``).

Pairwise modules take ``[a, b]`` of shape ``(batch, n)`` or ``(n,)`` and give one value per row:
``(batch,)`` or a 0-d array.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import InputError, ShapeError, shape_str
from ..module import Array, Module

__all__ = ["CMaxTable", "CMinTable", "CAveTable", "DotProduct", "CosineDistance",
           "PairwiseDistance", "MM", "MV", "MixtureTable", "cosine_similarity"]


def _same_shapes(module: Module, input: Any, n: int | None = None) -> None:
    if not input or (n is not None and len(input) != n):
        want = f"{n} arrays" if n is not None else "one or more arrays"
        raise ShapeError(f"{module.describe()}: expected a list of {want} of one shape, got "
                         f"{shape_str(input)}")
    if any(tuple(x.shape) != tuple(input[0].shape) for x in input[1:]):
        raise ShapeError(f"{module.describe()}: expected arrays of one shape, got "
                         f"{shape_str(input)}")


def _pair(module: Module, input: Any) -> tuple[Array, Array]:
    _same_shapes(module, input, 2)
    a, b = input
    if a.ndim not in (1, 2):
        raise ShapeError(f"{module.describe()}: expected [(batch, n), (batch, n)] or [(n,), (n,)],"
                         f" got {shape_str(input)}")
    return a, b


def cosine_similarity(xp: Any, a: Array, b: Array, eps: float = 1e-12) -> Array:
    """``a.b / sqrt((a.a + eps)(b.b + eps))`` over the last axis (Lua's CosineDistance)."""
    return (a * b).sum(-1) / xp.sqrt(((a * a).sum(-1) + eps) * ((b * b).sum(-1) + eps))


class _Extremum(Module):
    input_kind = "table"
    _state_names = ("winner",)

    def _better(self, xp: Any, a: Array, b: Array) -> Array:
        raise NotImplementedError

    def update_output(self, input: list[Array]) -> Array:
        _same_shapes(self, input)
        xp = backend.get_array_module(input[0])
        out = input[0].copy()
        winner = xp.zeros(input[0].shape, dtype="int64")
        for i, x in enumerate(input[1:], start=1):
            better = self._better(xp, x, out)  # strict: the first extremum wins ties, as Lua
            out = xp.where(better, x, out)
            winner = xp.where(better, i, winner)
        self.output, self.winner = out, winner
        return out

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        self.grad_input = [grad_output * (self.winner == i) for i in range(len(input))]
        return self.grad_input


class CMaxTable(_Extremum):
    """Element-wise maximum of a list of arrays (Lua: ``nn.CMaxTable``); the gradient goes to
    the first maximum."""

    def _better(self, xp: Any, a: Array, b: Array) -> Array:
        return a > b


class CMinTable(_Extremum):
    """Element-wise minimum of a list of arrays (Lua: ``nn.CMinTable``); as :class:`CMaxTable`."""

    def _better(self, xp: Any, a: Array, b: Array) -> Array:
        return a < b


class CAveTable(Module):
    """Element-wise mean of a list of arrays (Lua: ``nn.CAveTable``)."""

    input_kind = "table"

    def update_output(self, input: list[Array]) -> Array:
        _same_shapes(self, input)
        out = input[0].copy()
        for x in input[1:]:
            out += x
        out /= len(input)
        self.output = out
        return out

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        g = grad_output / len(input)
        self.grad_input = [g] * len(input)
        return self.grad_input


class DotProduct(Module):
    """Row-wise dot product of ``[a, b]`` (Lua: ``nn.DotProduct``); output ``(batch,)`` or 0-d."""

    input_kind = "table"

    def update_output(self, input: list[Array]) -> Array:
        a, b = _pair(self, input)
        self.output = (a * b).sum(-1)
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        a, b = _pair(self, input)
        g = grad_output[..., None]
        self.grad_input = [g * b, g * a]
        return self.grad_input


class CosineDistance(Module):
    """Row-wise cosine similarity of ``[a, b]`` (Lua: ``nn.CosineDistance``, despite its name);
    squared norms get ``1e-12`` added, as Lua's."""

    input_kind = "table"
    eps = 1e-12

    def update_output(self, input: list[Array]) -> Array:
        a, b = _pair(self, input)
        self.output = cosine_similarity(backend.get_array_module(a), a, b, self.eps)
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        a, b = _pair(self, input)
        xp = backend.get_array_module(a)
        aa = (a * a).sum(-1, keepdims=True) + self.eps
        bb = (b * b).sum(-1, keepdims=True) + self.eps
        ab = (a * b).sum(-1, keepdims=True)
        inv = 1.0 / xp.sqrt(aa * bb)
        g = grad_output[..., None]
        self.grad_input = [g * inv * (b - a * ab / aa), g * inv * (a - b * ab / bb)]
        return self.grad_input


class PairwiseDistance(Module):
    """Row-wise ``||a - b||_p`` of ``[a, b]`` (Lua: ``nn.PairwiseDistance(p)``); as Lua's, the
    gradient divides by ``(distance + 1e-6)^(p-1)``, so it is finite (0) at distance 0."""

    input_kind = "table"

    def __init__(self, p: float = 2.0):
        super().__init__()
        if float(p) <= 0:
            raise ValueError(f"PairwiseDistance needs p > 0, got {p}")
        self.p = float(p)

    def update_output(self, input: list[Array]) -> Array:
        a, b = _pair(self, input)
        xp = backend.get_array_module(a)
        self.output = (xp.abs(a - b) ** self.p).sum(-1) ** (1.0 / self.p)
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        a, b = _pair(self, input)
        xp = backend.get_array_module(a)
        d = a - b
        if self.p == 1:
            ga = xp.sign(d)
        else:  # Lua adds 1e-6 to the distance here (no division by zero at d = 0)
            n = self.output[..., None] + 1e-6
            ga = xp.sign(d) * xp.abs(d) ** (self.p - 1.0) / n ** (self.p - 1.0)
        ga = ga * grad_output[..., None]
        self.grad_input = [ga, -ga]
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.p:g}"


class MM(Module):
    """Matrix product of ``[A, B]``, 2-D or batched 3-D (Lua: ``nn.MM(transA, transB)``).

    Args:
        trans_a: use ``A`` transposed (its last two axes).
        trans_b: use ``B`` transposed.

    Shape: ``(n, m) x (m, p) -> (n, p)`` or ``(batch, n, m) x (batch, m, p) -> (batch, n, p)``.
    """

    input_kind = "table"

    def __init__(self, trans_a: bool = False, trans_b: bool = False):
        super().__init__()
        self.trans_a, self.trans_b = bool(trans_a), bool(trans_b)

    def _operands(self, input: Any) -> tuple[Array, Array]:
        if len(input) != 2:
            raise InputError(f"{self.describe()}: expected [A, B], got {shape_str(input)}")
        a, b = input
        a2 = a.swapaxes(-1, -2) if self.trans_a and a.ndim >= 2 else a
        b2 = b.swapaxes(-1, -2) if self.trans_b and b.ndim >= 2 else b
        ok = (a.ndim == b.ndim and a.ndim in (2, 3) and a2.shape[-1] == b2.shape[-2]
              and (a.ndim == 2 or a.shape[0] == b.shape[0]))
        if not ok:
            raise ShapeError(f"{self.describe()}: expected [(n, m), (m, p)] or batched "
                             f"[(b, n, m), (b, m, p)] after the transposes, got "
                             f"{shape_str(input)}")
        return a2, b2

    def update_output(self, input: list[Array]) -> Array:
        a, b = self._operands(input)
        self.output = backend.get_array_module(a).matmul(a, b)
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        a, b = self._operands(input)
        xp = backend.get_array_module(a)
        ga = xp.matmul(grad_output, b.swapaxes(-1, -2))  # d/d(op(A))
        gb = xp.matmul(a.swapaxes(-1, -2), grad_output)  # d/d(op(B))
        self.grad_input = [ga.swapaxes(-1, -2) if self.trans_a else ga,
                           gb.swapaxes(-1, -2) if self.trans_b else gb]
        return self.grad_input

    def extra_repr(self) -> str:
        return f"trans_a={self.trans_a}, trans_b={self.trans_b}"


class MV(Module):
    """Matrix-vector product of ``[M, v]``, 2-D or batched (Lua: ``nn.MV(trans)``).

    Shape: ``(n, m) x (m,) -> (n,)`` or ``(batch, n, m) x (batch, m) -> (batch, n)``; with
    ``trans`` the matrix is used transposed.
    """

    input_kind = "table"

    def __init__(self, trans: bool = False):
        super().__init__()
        self.trans = bool(trans)

    def _operands(self, input: Any) -> tuple[Array, Array]:
        if len(input) != 2:
            raise InputError(f"{self.describe()}: expected [M, v], got {shape_str(input)}")
        m, v = input
        m2 = m.swapaxes(-1, -2) if self.trans and m.ndim >= 2 else m
        ok = (m.ndim == v.ndim + 1 and m.ndim in (2, 3) and m2.shape[-1] == v.shape[-1]
              and (m.ndim == 2 or m.shape[0] == v.shape[0]))
        if not ok:
            raise ShapeError(f"{self.describe()}: expected [(n, m), (m,)] or batched "
                             f"[(b, n, m), (b, m)] after the transpose, got {shape_str(input)}")
        return m2, v

    def update_output(self, input: list[Array]) -> Array:
        m, v = self._operands(input)
        xp = backend.get_array_module(m)
        self.output = xp.matmul(m, v[..., None])[..., 0]
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        m, v = self._operands(input)
        xp = backend.get_array_module(m)
        gm = grad_output[..., :, None] * v[..., None, :]
        gv = xp.matmul(m.swapaxes(-1, -2), grad_output[..., None])[..., 0]
        self.grad_input = [gm.swapaxes(-1, -2) if self.trans else gm, gv]
        return self.grad_input

    def extra_repr(self) -> str:
        return "trans=True" if self.trans else ""


class MixtureTable(Module):
    """``sum_i g[:, i] * expert_i`` for ``[g, experts]`` (Lua: ``nn.MixtureTable(dim)``).

    ``g`` is ``(batch, n)`` (or ``(n,)``), the gater's weights; ``experts`` is a list of ``n``
    arrays ``(batch, ...)`` or one array holding them along axis ``dim`` (0-based, default 1:
    ``(batch, n, ...)``).
    """

    input_kind = "table"

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = int(dim)

    def _gate(self, g: Array, expert: Array, batched: bool) -> Array:
        # g[:, i] broadcast over an expert's trailing axes.
        return g.reshape(tuple(g.shape) + (1,) * (expert.ndim - (1 if batched else 0)))

    def update_output(self, input: list[Any]) -> Array:
        if len(input) != 2:
            raise InputError(f"{self.describe()}: expected [gater, experts], got "
                             f"{shape_str(input)}")
        g, experts = input
        batched = g.ndim == 2
        xp = backend.get_array_module(g)
        if isinstance(experts, (list, tuple)):
            if len(experts) != int(g.shape[-1]):
                raise ShapeError(f"{self.describe()}: expected {int(g.shape[-1])} experts (one "
                                 f"per gater weight), got {len(experts)}")
            out = xp.zeros_like(experts[0])
            for i, e in enumerate(experts):
                gi = g[:, i] if batched else g[i]
                out = out + self._gate(gi, e, batched) * e
            self.output = out
        else:
            axis = self.dim if batched else self.dim - 1
            if not (0 <= axis < experts.ndim and experts.shape[axis] == g.shape[-1]):
                raise ShapeError(f"{self.describe()}: expected experts with {int(g.shape[-1])} "
                                 f"entries along axis {axis}, got {shape_str(experts)}")
            shape = [1] * experts.ndim
            if batched:
                shape[0] = int(g.shape[0])
            shape[axis] = int(g.shape[-1])
            self.output = (g.reshape(tuple(shape)) * experts).sum(axis=axis)
        return self.output

    def update_grad_input(self, input: list[Any], grad_output: Array) -> list[Any]:
        g, experts = input
        batched = g.ndim == 2
        xp = backend.get_array_module(g)
        if isinstance(experts, (list, tuple)):
            gg = xp.stack([(grad_output * e).reshape(int(g.shape[0]), -1).sum(1) if batched
                           else (grad_output * e).sum() for e in experts], axis=-1)
            ge = []
            for i, e in enumerate(experts):
                gi = g[:, i] if batched else g[i]
                ge.append(self._gate(gi, e, batched) * grad_output)
            self.grad_input = [gg, ge]
        else:
            axis = self.dim if batched else self.dim - 1
            shape = [1] * experts.ndim
            if batched:
                shape[0] = int(g.shape[0])
            shape[axis] = int(g.shape[-1])
            go = xp.expand_dims(grad_output, axis)
            prod = go * experts
            other = tuple(a for a in range(experts.ndim) if a != axis and (a != 0 or not batched))
            gg = prod.sum(axis=other) if other else prod
            self.grad_input = [gg.reshape(g.shape), g.reshape(tuple(shape)) * go]
        return self.grad_input

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
