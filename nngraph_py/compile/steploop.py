"""The static step loop: a compiled cell's time loop as a flat list of precomputed calls.

For the cells people write most (the LSTM and GRU recipes, peepholes, Elman RNNs: input
products hoisted, recurrent products of the carried state, one element-wise region computing
the new state), every array the time loop touches is a buffer planned once per shapes: the
input, the hoisted products, the recurrent products and their gradients, the region's member
histories, the carried states and two gradient buffers per state used in turn. So every call of
the loop, forward and backward, is known when the plan is made: :class:`StepLoop` binds them
(``functools.partial`` of ufuncs with ``out=``, and the generated region kernels) once, and a
forward or backward through time is one pass over that list: about one Python call per array
operation, nothing else.

:func:`build` says whether a plan qualifies (and why not); the general loop in
:mod:`nngraph_py.compile.timeloop` runs the others (several regions, modules run per step,
lengths masks).

No Lua Torch original.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from ..nn.linear import Linear
from ..nn.table import CAddTable
from .elementwise import Region
from .linear import LinearGroup

__all__ = ["StepLoop", "build"]


def build(p: Any, cell: Any, sig: Any, x: Any) -> "StepLoop | str":
    """The static loop of plan ``p`` of ``cell``, or a string saying why it does not qualify."""
    plan = cell._plan
    if p.opaque:
        return "modules run per step"
    if len(p.regions) != 1:
        return f"{len(p.regions)} element-wise regions"
    r = p.regions[0]
    out_nodes = p.out_nodes
    if len(set(out_nodes)) != len(out_nodes) or not all(o in r.nodes for o in out_nodes):
        return "a new state is not computed by the region"
    if {r.nodes[k] for k in r.exposed} != set(out_nodes):
        return "the region exposes values other than the new states"
    for i in p.hoisted:
        step = plan[i]
        if type(step.module) is not Linear or step.parents[0] != p.x_node:
            return "a hoisted node is not a Linear of x"
    consumers: dict[int, list[int]] = {}
    for i, step in enumerate(plan):
        for q in step.parents:
            consumers.setdefault(q, []).append(i)
    members = set(r.nodes)
    for i in p.hoisted:
        if not set(consumers.get(i, [])) <= members:
            return "a hoisted product is read outside the region"
    for g in p.groups:
        if g.parent not in p.state_node:
            return "a recurrent product reads something other than a carried state"
        if not all(i in p.direct for i in g.members):
            return "a recurrent product is read outside the region"
    for q in r.ext:
        if isinstance(q, tuple) or q in p.state_node or q in p.direct or q in p.hoisted:
            continue
        return "the region reads x or another value directly"
    if any(q == p.x_node for q in consumers) and not set(consumers[p.x_node]) <= set(p.hoisted):
        return "x is read by a node that is not hoisted"
    return StepLoop(p, cell, sig, x)


class StepLoop:
    """The precomputed calls of one plan (see the module docstring)."""

    def __init__(self, p: Any, cell: Any, sig: Any, x: Any):
        xp, T, B, dt = p.xp, p.T, p.B, x.dtype
        self.p, self.xp, self.T, self.B = p, xp, T, B
        plan = cell._plan
        r0 = p.regions[0]
        keep = p.keep
        self.xb = xp.empty(x.shape, dtype=dt)
        self.flat_x = self.xb.reshape(T * B, -1)
        # The hoisted Linears: one group, one product for all steps.
        hl = list(p.hoisted)
        self.hg = LinearGroup(hl, [plan[i].module for i in hl], p.x_node) if hl else None
        if self.hg is not None:
            self.hg.planned(xp, dt)
            self.hy = xp.empty((T * B, self.hg.total), dtype=dt)
            self.hy3 = self.hy.reshape(T, B, self.hg.total)
            if keep:
                self.ghy = xp.empty_like(self.hy)
                self.ghy3 = self.ghy.reshape(T, B, self.hg.total)
        for g in p.groups:
            g.planned(xp, dt)
        self.params = {i: xp.empty(plan[i].module.weight.size, dtype=dt)
                       for i in r0.params.values()}
        state_of_out = {o: k for k, o in enumerate(p.out_nodes)}
        hoff = {} if self.hg is None else {
            i: (off, size) for i, off, size in zip(self.hg.members, self.hg.offsets,
                                                   self.hg.sizes)}

        def member_views(t: int) -> list[Any]:
            h = t if keep else 0
            out = []
            for k, i in enumerate(r.nodes):
                if i in state_of_out:
                    out.append(p.S[state_of_out[i]][t + 1])
                else:
                    hist = p.region_v[0][k]
                    out.append(hist[h if len(hist) > 1 else 0])
            return out

        def ext_arrays(t: int) -> list[Any]:
            h = t if keep else 0
            out = []
            for q in r.ext:
                if isinstance(q, tuple):
                    out.append(self.params[q[1]])
                elif q in p.state_node:
                    out.append(p.S[p.state_node[q]][t])
                elif q in hoff:
                    out.append(self.hy3[t])
                else:
                    out.append(p.group_y[p.group_of[q]][h])
            return out

        # The loop's own region: it reads hoisted and recurrent products as columns of their
        # groups' products and writes every input's gradient where the loop wants it.
        cols = dict(hoff)
        for q in r0.ext:
            if not isinstance(q, tuple) and q in p.group_of:
                g = p.groups[p.group_of[q]]
                k = g.members.index(q)
                cols[q] = (g.offsets[k], g.sizes[k])
        # When each input product and the recurrent product of the same gate feed one sum and
        # nothing else (every gate of an LSTM, GRU, peephole or Elman cell), their gradients
        # are the same array: the loop keeps one, for both weight gradients and for dx.
        self.paired = self._gradients_shared(p, plan, r0)
        self.shared = keep and self.paired
        if self.shared:
            self.ghy3 = p.group_g[0]
            self.ghy = self.ghy3.reshape(T * B, self.hg.total)
        r = self.region = Region(r0.nodes, plan, [r0.nodes[k] for k in r0.exposed], r0.shape,
                                 r0.dtype, xp, keep, r0.kernels,
                                 ext_cols=cols,
                                 direct=[q for q in r0.ext if not isinstance(q, tuple)],
                                 skip_grads=self.hg.members if self.shared else ())
        r.compiled()
        self._ext_arrays, self._member_views, self._hoff = ext_arrays, member_views, hoff
        self._state_of_out = state_of_out
        self.sig = sig
        self.masks: Any = None  # (T, B, 1) mask buffers of masked calls, planned on first use
        self.fops, self.bops = self._build(masked=False)
        self._masked_ops: tuple[list[Any], list[Any]] | None = None

    def _build(self, masked: bool) -> tuple[list[Any], list[Any]]:
        """The forward and backward calls, for calls without or with a lengths mask."""
        p, xp, T, B, sig, r = self.p, self.xp, self.T, self.B, self.sig, self.region
        keep, dt = p.keep, self.xb.dtype
        ext_arrays, member_views, hoff = self._ext_arrays, self._member_views, self._hoff
        state_of_out = self._state_of_out
        numba = r.kernels == "numba"
        nstates = len(sig.state_sizes)
        if masked:
            # m (float), 1 - m (float) and not m (bool), each (T, B, 1).
            self.masks = (xp.empty((T, B, 1), dtype=dt), xp.empty((T, B, 1), dtype=dt),
                          xp.empty((T, B, 1), dtype=bool))
            mf, nmf, nmb = self.masks
        fops: list[Any] = []
        for t in range(T):
            h = t if keep else 0
            for gi, g in enumerate(p.groups):
                k = p.state_node[g.parent]
                y = p.group_y[gi][h]
                fops.append(partial(xp.matmul, p.S[k][t], g.wt, out=y))
                if g.b is not None and not self.paired:  # (paired: folded into the hoisted)
                    fops.append(partial(xp.add, y, g.b, out=y))
            ext, vals = ext_arrays(t), member_views(t)
            fops.append(partial(r._fwd, tuple(ext), tuple(vals)) if numba
                        else partial(r._fwd, ext, vals, r._tmp))
            if masked:  # a padded step keeps the state
                for k in range(nstates):
                    fops.append(partial(xp.copyto, p.S[k][t + 1], p.S[k][t], where=nmb[t]))
        if not keep:
            return fops, []
        if not hasattr(self, "carry"):
            # Carried gradients in two buffers per state, used in turn.
            self.carry = [[xp.empty((B, sig.state_sizes[k]), dtype=dt) for _ in range(2)]
                          for k in range(nstates)]
            self.kept = [xp.empty((B, sig.state_sizes[k]), dtype=dt) for k in range(nstates)]
            self.go = xp.empty((T, B, sig.state_sizes[sig.output_state]), dtype=dt)
            self.pacc = {i: xp.zeros_like(w) for i, w in self.params.items()}
            self.psum = {i: xp.empty_like(w) for i, w in self.params.items()}
            self.tmp = {gi: xp.empty((B, g.in_features), dtype=dt)
                        for gi, g in enumerate(p.groups)}
        tmp = self.tmp
        region_reads = {p.state_node[q] for q in r.ext
                        if not isinstance(q, tuple) and q in p.state_node}
        exposed_state = [state_of_out[r.nodes[k]] for k in r.exposed]
        bops: list[Any] = []
        o = sig.output_state
        for t in range(T - 1, -1, -1):
            c_in = [self.carry[k][(t + 1) % 2] for k in range(nstates)]
            c_out = [self.carry[k][t % 2] for k in range(nstates)]
            if masked:  # the gradient of a padded step's state passes to the previous state
                for k in range(nstates):
                    bops.append(partial(xp.multiply, c_in[k], nmf[t], out=self.kept[k]))
                    bops.append(partial(xp.multiply, c_in[k], mf[t], out=c_in[k]))
            bops.append(partial(xp.add, c_in[o], self.go[t], out=c_in[o]))
            ext, vals = ext_arrays(t), member_views(t)
            gx = [c_in[k] for k in exposed_state]
            dest: list[Any] = []
            for j, q in enumerate(r.ext):
                if isinstance(q, tuple):  # a numba kernel sums it into the accumulator itself
                    dest.append(self.pacc[q[1]] if r.sums_params else None)
                elif q in p.state_node:
                    dest.append(c_out[p.state_node[q]])
                elif q in hoff:
                    dest.append(self.ghy3[t])
                else:
                    dest.append(p.group_g[p.group_of[q]][t])
            bops.append(partial(self._region_backward, ext, vals, gx, dest))
            for j, q in enumerate(r.ext):
                if isinstance(q, tuple) and not r.sums_params:
                    bops.append(partial(self._param_sum, q[1], j))
            written = set(region_reads)  # states whose gradient buffer holds a first value
            for gi, g in enumerate(p.groups):
                k = p.state_node[g.parent]
                gg = p.group_g[gi][t]
                if k in written:
                    bops.append(partial(xp.matmul, gg, g.w, out=tmp[gi]))
                    bops.append(partial(xp.add, c_out[k], tmp[gi], out=c_out[k]))
                else:
                    bops.append(partial(xp.matmul, gg, g.w, out=c_out[k]))
                    written.add(k)
            for k in range(nstates):
                if k not in written:  # a state nothing in the step reads
                    bops.append(partial(c_out[k].fill, 0))
                if masked:
                    bops.append(partial(xp.add, c_out[k], self.kept[k], out=c_out[k]))
        return fops, bops

    def _ops(self, mask: Any) -> tuple[list[Any], list[Any]]:
        if mask is None:
            return self.fops, self.bops
        if self._masked_ops is None:
            self._masked_ops = self._build(masked=True)
        mf, nmf, nmb = self.masks
        mf[...] = mask
        xp = self.xp
        xp.subtract(1, mf, out=nmf)
        xp.logical_not(mask, out=nmb)
        return self._masked_ops

    def _gradients_shared(self, p: Any, plan: Any, r0: Any) -> bool:
        """Whether hoisted member ``k`` and recurrent member ``k`` always get one gradient."""
        if self.hg is None or len(p.groups) != 1 or r0.kernels not in ("numpy", "numba"):
            return False
        g = p.groups[0]
        if self.hg.sizes != g.sizes:
            return False
        readers: dict[int, list[int]] = {}
        for i, step in enumerate(plan):
            for q in step.parents:
                readers.setdefault(q, []).append(i)
        for a, b in zip(self.hg.members, g.members):
            ra, rb = readers.get(a, []), readers.get(b, [])
            if len(ra) != 1 or ra != rb or ra[0] not in r0.nodes:
                return False
            total = plan[ra[0]]
            if type(total.module) is not CAddTable or total.parents.count(a) != 1 \
                    or total.parents.count(b) != 1:
                return False
        return True

    def _region_backward(self, ext: list[Any], vals: list[Any], gx: list[Any],
                         dest: list[Any]) -> None:
        self._last_ge = self.region.backward(ext, vals, gx, dest)

    def _param_sum(self, i: int, j: int) -> None:
        self._last_ge[j].sum(axis=0, out=self.psum[i])
        self.xp.add(self.pacc[i], self.psum[i], out=self.pacc[i])

    # ------------------------------------------------------------------------------------------
    def forward(self, x: Any, s0: list[Any], cell: Any, mask: Any = None) -> None:
        p, xp = self.p, self.xp
        fops, _ = self._ops(mask)
        self._mask = mask
        self.xb[...] = x
        for k, s in enumerate(s0):
            p.S[k][0] = s
        plan = cell._plan
        for i, buf in self.params.items():
            buf[...] = plan[i].module.weight.reshape(-1)
        if self.hg is not None:
            self.hg.gather_into()
            xp.matmul(self.flat_x, self.hg.wt, out=self.hy)
            if self.hg.b is not None:
                self.hy += self.hg.b
        for g in p.groups:
            g.gather_into()
            if self.paired and g.b is not None:
                # Each gate sums its two products: the recurrent bias joins the hoisted one,
                # once for all steps instead of once per step.
                self.hy += g.b
        for f in fops:
            f()

    def backward(self, grad_out: Any, grad_final: list[Any]) -> tuple[Any, list[Any]]:
        xp, T = self.xp, self.T
        _, bops = self._ops(self._mask)
        if grad_out is None:
            self.go.fill(0)
        elif self._mask is None:
            self.go[...] = grad_out
        else:  # no gradient flows from a padded step's (zero) output
            xp.multiply(grad_out, self.masks[0], out=self.go)
        for k, g in enumerate(grad_final):
            c = self.carry[k][T % 2]
            if g is None:
                c.fill(0)
            else:
                c[...] = g
        for acc in self.pacc.values():
            acc.fill(0)
        for f in bops:
            f()
        g0 = [c[0].copy() for c in self.carry]
        if self.hg is None:
            gx = xp.zeros(self.xb.shape, dtype=self.xb.dtype)
        else:
            gx = xp.matmul(self.ghy, self.hg.w).reshape(self.xb.shape)
        return gx, g0

    def acc_grad_parameters(self, cell: Any, scale: float) -> None:
        p, xp, T, B = self.p, self.xp, self.T, self.B
        if self.hg is not None:
            self.hg.acc_grad_parameters(xp, self.flat_x, self.ghy, scale)
        for gi, g in enumerate(p.groups):
            k = p.state_node[g.parent]
            X = p.S[k][:T].reshape(T * B, g.in_features)
            g.acc_grad_parameters(xp, X, p.group_g[gi].reshape(T * B, g.total), scale)
        plan = cell._plan
        for i, acc in self.pacc.items():
            m = plan[i].module
            m.grad_weight += (acc * scale if scale != 1.0 else acc).reshape(m.grad_weight.shape)
