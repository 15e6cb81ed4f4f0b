"""The node-by-node executor of a cell over time: per-step clones sharing the cell's parameters.

char-rnn's ``clone_many_times``: step ``t`` of a sequence runs clone ``t`` of the cell, so that
every clone keeps its own activations for backward while all of them read the prototype's
weights and accumulate into its gradients. Clones are made lazily, up to the longest sequence
seen, and reused. Every node runs through its module's ``update_output`` / ``update_grad_input``
as written: this is the reference the compiled executors are tested against, and the executor
of any cell the compiler refuses.

No Lua Torch original as a class: nngraph's users wrote this loop by hand.
"""
from __future__ import annotations

from typing import Any, Sequence, cast

from .. import backend
from ..clones import clone_sharing, share_parameters
from ..errors import GraphError
from ..graph.gmodule import gModule
from ..module import Array
from .sequence import CellSignature

__all__ = ["UnrolledSequence"]


class UnrolledSequence:
    """Run ``cell`` over a time-major sequence node by node, through per-step clones
    (a :class:`~nngraph_py.compile.sequence.SequenceExecutor`).

    Args:
        cell: the prototype cell; it owns the parameters and never runs itself.
        signature: how the cell's inputs and outputs map onto ``x_t`` and the carried state.

    Attributes:
        kind: ``"unrolled"``.
        clones: the per-step clones made so far (one per step of the longest sequence run with
            ``keep=True``; at least one after any forward).

    A forward with ``keep=False`` (inference) runs every step through the first clone and keeps
    no per-step input, so it needs one clone whatever the length; a backward after it raises
    :class:`~nngraph_py.errors.GraphError`.

    Example:
        >>> import numpy
        >>> from nngraph_py import nn
        >>> x, h = nn.Identity()(), nn.Identity()()
        >>> cell = nn.gModule([x, h], [nn.Tanh()(nn.CAddTable()([nn.Linear(3, 4)(x),
        ...                                                     nn.Linear(4, 4)(h)]))])
        >>> run = UnrolledSequence(cell, CellSignature(0, (1,), (0,), (4,)))
        >>> outputs, (h_n,) = run.forward(numpy.zeros((5, 2, 3), "float32"), [None])
        >>> outputs.shape, len(run.clones)
        ((5, 2, 4), 5)
    """

    kind = "unrolled"

    def __init__(self, cell: gModule, signature: CellSignature):
        self.cell = cell
        self.signature = signature
        self.clones: list[gModule] = []
        self._stale = False            # the prototype's arrays or mode changed: re-share
        self._made_for: tuple[str, Any] = (cell._device, cell._dtype)
        self._inputs: list[Any] | None = None    # [t] the cell input of step t (kept forward)
        self._mask: Array | None = None
        self._kept = False             # whether the last forward kept its inputs
        self._grads: list[Any] | None = None     # [t] the grad_output of step t (last backward)

    # ------------------------------------------------------------------------------------------
    def invalidate(self) -> None:
        """The prototype's arrays, device, dtype or mode changed: the clones are re-shared with
        it on the next use (re-made when its device or dtype changed), and what the last forward
        and backward kept is dropped."""
        self._stale = True
        self._inputs = self._grads = self._mask = None
        self._kept = False
        for clone in self.clones:
            clone.clear_state()

    def _prepare(self, steps: int) -> None:
        """Clones in step with the prototype, at least ``steps`` of them."""
        cell = self.cell
        if (cell._device, cell._dtype) != self._made_for:
            self.clones = []  # their own (non-shared) arrays belong to the old device/dtype
            self._made_for = (cell._device, cell._dtype)
            self._stale = False
        if self._stale:
            for clone in self.clones:
                share_parameters(clone, cell)
            self._stale = False
        while len(self.clones) < steps:
            self.clones.append(cast(gModule, clone_sharing(cell)))

    # ------------------------------------------------------------------------------------------
    def forward(self, x: Array, state0: Sequence[Array | None], mask: Array | None = None,
                keep: bool = True) -> tuple[Array, list[Array]]:
        """``(outputs (T, B, size), final states)`` (see
        :class:`~nngraph_py.compile.sequence.SequenceExecutor`); where ``mask`` ``(T, B, 1)`` is
        False the state is kept and the output is zero."""
        sig = self.signature
        xp = backend.get_array_module(x)
        steps, batch = int(x.shape[0]), int(x.shape[1])
        self._prepare(steps if keep else 1)
        state = [xp.zeros((batch, size), dtype=x.dtype) if s is None else s
                 for s, size in zip(state0, sig.state_sizes)]
        o = sig.output_state
        inputs: list[Any] = []
        outs = []
        for t in range(steps):
            cell_input = sig.cell_input(x[t], state)
            new = sig.cell_state(self.clones[t if keep else 0].update_output(cell_input))
            if keep:
                inputs.append(cell_input)
            if mask is None:
                state = new
                outs.append(new[o])
            else:
                m = mask[t]
                state = [xp.where(m, a, b) for a, b in zip(new, state)]
                outs.append(xp.where(m, new[o], 0))
        self._inputs = inputs if keep else None
        self._mask = mask if keep else None
        self._kept = keep
        self._grads = None
        return xp.stack(outs, axis=0), state

    def backward(self, grad_out: Array | None,
                 grad_final: Sequence[Array | None]) -> tuple[Array, list[Array]]:
        """BPTT through the last forward: ``(grad_x (T, B, in), gradients of the initial
        states)``; each step's grad_output is kept for :meth:`acc_grad_parameters`.

        Raises:
            GraphError: no forward yet, or the last one kept nothing (``keep=False``).
        """
        if not self._kept or self._inputs is None:
            raise GraphError(self._nothing_kept("backward"))
        self._prepare(0)
        sig, inputs, mask = self.signature, self._inputs, self._mask
        o = sig.output_state
        steps = len(inputs)
        sample = inputs[0][sig.x]
        xp = backend.get_array_module(sample)
        batch = int(sample.shape[0])
        g_state = [xp.zeros((batch, size), dtype=sample.dtype) if g is None else g
                   for g, size in zip(grad_final, sig.state_sizes)]
        grads: list[Any] = [None] * steps
        g_xs: list[Any] = [None] * steps
        for t in range(steps - 1, -1, -1):
            passed = None
            if mask is not None:  # a padded step passes the state's gradient through
                m = mask[t]
                passed = [xp.where(m, 0, g) for g in g_state]
                g_state = [xp.where(m, g, 0) for g in g_state]
            if grad_out is not None:
                above = grad_out[t] if mask is None else xp.where(m, grad_out[t], 0)
                g_state[o] = g_state[o] + above
            grads[t] = sig.cell_grad_output(g_state)
            g_xs[t], g_state = sig.cell_grad_input(
                self.clones[t].update_grad_input(inputs[t], grads[t]))
            if passed is not None:
                g_state = [a + b for a, b in zip(g_state, passed)]
        self._grads = grads
        return xp.stack(g_xs, axis=0), g_state

    def acc_grad_parameters(self, scale: float = 1.0) -> None:
        """Add ``scale`` times the parameter gradients of the last :meth:`backward` to the
        cell's (each clone accumulates into the shared gradient arrays)."""
        if self._grads is None or self._inputs is None:
            if not self._kept:
                raise GraphError(self._nothing_kept("acc_grad_parameters"))
            raise GraphError(f"{self.cell.describe()}: acc_grad_parameters called before "
                             f"backward")
        self._prepare(0)
        for clone, cell_input, grad in zip(self.clones, self._inputs, self._grads):
            clone.acc_grad_parameters(cell_input, grad, scale)

    def _nothing_kept(self, what: str) -> str:
        return (f"{self.cell.describe()}: {what} needs a forward that kept its steps: the last "
                f"forward kept nothing (keep=False: evaluate mode or inference), or there was "
                f"none since the parameters, device or mode changed; call training() and "
                f"forward again")
