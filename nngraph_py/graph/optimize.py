"""Graph optimization passes for any gModule: the graph stays as written, it runs faster.

:func:`fuse_linears` finds the ``Linear`` nodes that read the same node (the four i2h Linears of
an LSTM cell read ``x``, the four h2h read ``prev_h``) and runs each group as one matrix product
over the stacked weights. Nodes, names, parameters, pictures and checkpoints do not change: only
the gModule's execution plan does, and it reads the members' own weights at every call, so an
optimizer updating them (or ``get_parameters`` re-homing them) is seen at once.

The sequence-level passes for recipe LSTMs (input projections hoisted out of the recurrence, fused
gate kernels, static buffers) live in ``lstm.fast``: they need to know about time.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..module import Array, Module
from ..nn.linear import Linear
from .gmodule import gModule

__all__ = ["fuse_linears", "unfuse", "FusedLinearGroup"]


class FusedLinearGroup:
    """The shared state of Linears that read one input: one product forward, one backward.

    The member that comes first in the graph's order (the *leader*) does the work; the others
    hand out slices of its result and hand in their gradients.
    """

    def __init__(self, members: list[Linear]):
        self.members = members
        self.sizes = [m.out_features for m in members]
        self.offsets = [sum(self.sizes[:k]) for k in range(len(members))]
        self.total = sum(self.sizes)
        self.output: Array | None = None
        self.grads: list[Array | None] = [None] * len(members)
        self.weight: Array | None = None

    def _gather_weight(self, xp: Any, dtype: Any) -> Array:
        w = xp.concatenate([m.weight for m in self.members], axis=0)
        return w if w.dtype == dtype else w.astype(dtype)

    def forward(self, x: Array) -> None:
        xp = backend.get_array_module(x)
        self.weight = self._gather_weight(xp, x.dtype)
        out = xp.matmul(x, self.weight.T)
        for m, off, size in zip(self.members, self.offsets, self.sizes):
            if m.has_bias:
                out[..., off:off + size] += m.bias
        self.output = out
        self.grads = [None] * len(self.members)

    def slice(self, k: int) -> Array:
        off = self.offsets[k]
        return self.output[..., off:off + self.sizes[k]]

    def stacked_grad(self, xp: Any, like: Array) -> Array:
        shape = tuple(like.shape[:-1]) + (self.total,)
        g = xp.zeros(shape, dtype=like.dtype)
        for grad, off, size in zip(self.grads, self.offsets, self.sizes):
            if grad is not None:
                g[..., off:off + size] = grad
        return g


class _Member(Module):
    """A plan step standing for one Linear of a fused group (not part of the module tree)."""

    def __init__(self, group: FusedLinearGroup, k: int, leader: bool):
        super().__init__()
        self.group, self.k, self.leader = group, k, leader
        self.linear = group.members[k]
        self._node = self.linear._node

    def update_output(self, input: Array) -> Array:
        lin = self.linear
        lin._check(input)
        if self.leader:
            self.group.forward(input)
        lin.output = self.group.slice(self.k)
        return lin.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array | None:
        self.group.grads[self.k] = grad_output
        if not self.leader:
            return None  # the leader returns the whole group's gradient for the shared input
        xp = backend.get_array_module(input)
        self._stacked = self.group.stacked_grad(xp, grad_output)
        self.linear.grad_input = xp.matmul(self._stacked, self.group.weight)
        return self.linear.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        if not self.leader:
            return
        g = self._stacked
        xp = backend.get_array_module(input)
        if input.ndim == 1:
            gw = xp.multiply.outer(g, input)
            gb = g
        else:  # any leading axes (Linear applies over the last one)
            g2 = g.reshape(-1, int(g.shape[-1]))
            gw = xp.matmul(g2.T, input.reshape(-1, int(input.shape[-1])))
            gb = g2.sum(axis=0)
        if scale != 1.0:
            gw *= scale
            gb = gb * scale
        for m, off, size in zip(self.group.members, self.group.offsets, self.group.sizes):
            m.grad_weight += gw[off:off + size]
            if m.has_bias:
                m.grad_bias += gb[off:off + size]

    def __repr__(self) -> str:
        return repr(self.linear) + f" [fused {self.k + 1}/{len(self.group.members)}]"


def fuse_linears(model: gModule, min_group: int = 2) -> int:
    """Run the Linears of ``model`` that read the same node as one product (in place).

    Applies to nested gModules too. Groups need at least ``min_group`` members, all reading one
    node directly (not through a list). The graph, its names and its parameters are unchanged.

    Returns:
        The number of groups formed.

    Example:
        >>> cell = lstm.make_lstm_cell(28, 128)
        >>> fuse_linears(cell)      # i2h x4 and h2h x4: two products per step instead of eight
        2
    """
    count = 0
    for m in model.modules():
        if isinstance(m, gModule):
            count += _fuse_one(m, min_group)
    return count


def _fuse_one(g: gModule, min_group: int) -> int:
    by_parent: dict[int, list[int]] = {}
    for i, step in enumerate(g._plan):
        if isinstance(step.module, Linear) and not step.table and step.slot < 0:
            by_parent.setdefault(step.parents[0], []).append(i)
    plan = list(g._plan)
    groups = 0
    for members in by_parent.values():
        if len(members) < min_group:
            continue
        group = FusedLinearGroup([plan[i].module for i in members])  # type: ignore[misc]
        for k, i in enumerate(members):
            plan[i] = plan[i]._replace(module=_Member(group, k, leader=(k == 0)))
        groups += 1
    g._plan = plan
    return groups


def unfuse(model: gModule) -> None:
    """Undo :func:`fuse_linears`: every node runs its own module again."""
    for m in model.modules():
        if isinstance(m, gModule):
            m._plan = [step._replace(module=step.module.linear)
                       if isinstance(step.module, _Member) else step for step in m._plan]
