"""Linears that read the same node, run as one matrix product over their joined weights.

Shared by :func:`nngraph_py.compile.compile` and the time-loop compiler. The members stay the
user's modules (names, parameters, checkpoints): the group joins their current weights once per
call (an optimizer may have changed them in place, ``get_parameters`` may have moved them), runs
one product forward and one backward, and hands each member its columns; weight gradients are one
product too (over all time steps in a recurrence), split back into the members' gradients.

No Lua Torch original (Lua's users joined such Linears by hand, as char-rnn's ``i2h``).
"""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["LinearGroup"]


class LinearGroup:
    """The Linears ``linears`` (``nn.Linear`` modules at plan indices ``members``) reading plan
    node ``parent``.

    Attributes:
        sizes, offsets: each member's output width and first column in the joined product.
        total: the joined product's width.
        w, wt, b: the joined weight ``(total, in)``, its contiguous transpose, the joined bias
            (None when no member has one), as of the last :meth:`gather`.
    """

    def __init__(self, members: Sequence[int], linears: Sequence[Any], parent: int):
        self.members, self.linears, self.parent = list(members), list(linears), parent
        self.sizes = [m.out_features for m in linears]
        self.offsets = [sum(self.sizes[:k]) for k in range(len(linears))]
        self.total = sum(self.sizes)
        self.in_features = linears[0].in_features

    def gather(self, xp: Any, dtype: Any) -> None:
        """Join the members' current weights and biases (once per call; a group of one reads
        its Linear's arrays, no copy)."""
        if len(self.linears) == 1:
            w = self.linears[0].weight
        else:
            w = xp.concatenate([m.weight for m in self.linears], axis=0)
        self.w = w if w.dtype == dtype else w.astype(dtype)
        self.wt = self.w.T  # a transposed view: BLAS reads it as such, nothing is copied
        self.b = None
        if len(self.linears) == 1 and self.linears[0].has_bias:
            b = self.linears[0].bias
            self.b = b if b.dtype == dtype else b.astype(dtype)
        elif any(m.has_bias for m in self.linears):
            b = xp.concatenate([m.bias if m.has_bias else xp.zeros(m.out_features, dtype=dtype)
                                for m in self.linears])
            self.b = b if b.dtype == dtype else b.astype(dtype)

    def planned(self, xp: Any, dtype: Any) -> None:
        """Planned joined weight and bias buffers for :meth:`gather_into` (static arrays that
        precomputed step calls can bind)."""
        self.w = xp.empty((self.total, self.in_features), dtype=dtype)
        self.wt = self.w.T
        self.b = xp.empty(self.total, dtype=dtype) if any(m.has_bias for m in self.linears) \
            else None

    def gather_into(self) -> None:
        """Copy the members' current weights and biases into the planned buffers."""
        for m, off, size in zip(self.linears, self.offsets, self.sizes):
            self.w[off:off + size] = m.weight
            if self.b is not None:
                if m.has_bias:
                    self.b[off:off + size] = m.bias
                else:
                    self.b[off:off + size] = 0

    def forward(self, xp: Any, x: Any, out: Any) -> list[Any]:
        """``out = x @ W^T + b`` (``out`` a planned ``(rows, total)`` buffer); the members'
        column views."""
        xp.matmul(x, self.wt, out=out)
        if self.b is not None:
            out += self.b
        return [out[:, off:off + size] for off, size in zip(self.offsets, self.sizes)]

    def stack_grads(self, grads: Sequence[Any], out: Any, skip: Any = ()) -> Any:
        """Write the members' output gradients (None: zeros) side by side into ``out``; the
        members at positions in ``skip`` are already there (written by their consumer)."""
        for k, (g, off, size) in enumerate(zip(grads, self.offsets, self.sizes)):
            if k in skip:
                continue
            if g is None:
                out[:, off:off + size] = 0
            else:
                out[:, off:off + size] = g
        return out

    def grad_input(self, xp: Any, g: Any) -> Any:
        """The gradient of the shared input for the stacked output gradient ``g``."""
        return xp.matmul(g, self.w)

    def acc_grad_parameters(self, xp: Any, x: Any, g: Any, scale: float = 1.0) -> None:
        """Add ``scale`` times the weight and bias gradients for inputs ``x`` ``(rows, in)`` and
        stacked output gradients ``g`` ``(rows, total)`` (all time steps at once) to the
        members' gradients."""
        gw = xp.matmul(g.T, x)
        gb = g.sum(axis=0)
        if scale != 1.0:
            gw *= scale
            gb *= scale
        for m, off, size in zip(self.linears, self.offsets, self.sizes):
            m.grad_weight += gw[off:off + size]
            if m.has_bias:
                m.grad_bias += gb[off:off + size]
