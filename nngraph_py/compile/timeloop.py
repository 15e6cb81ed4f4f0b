"""The general time-loop compiler: any cell gModule run over a sequence, compiled.

:func:`nngraph_py.compile.compile_sequence` ends here when no recipe pass matches. From the cell's
plan and the shapes of one probe step, :class:`CompiledSequence` builds, once per
``(T, batch, features, dtype, keep)``, a plan of the whole sequence:

1. **Hoisting.** Nodes that depend on ``x_t`` alone (not on the carried state) and act on each
   row independently (``Linear``, element-wise modules, ``CMul``, ``LayerNormalization``,
   ``LookupTable``, ``Narrow`` of the features) run once for all ``T`` steps, on ``(T * batch, ...)``: the input products
   of an LSTM or GRU become one matrix product each per sequence. Their backward and parameter
   gradients run once too, after the time loop.
2. **Linear groups.** The recurrent Linears that read the same node run as one product over
   their joined weights (gathered once per call), written into a ``(T, batch, sum of outputs)``
   history; their weight gradients are one product over all steps after the loop
   (``dW = G^T X`` with ``G`` and ``X`` the ``(T * batch, ...)`` histories).
3. **Element-wise regions** (:mod:`nngraph_py.compile.elementwise`): the recurrent element-wise
   nodes (and ``CMul`` by a learned vector) form convex regions, each one generated function
   (NumPy passes, numba loops or CUDA kernels) forward and backward per step, over member
   histories planned once; a member keeps a history only if backward reads it.
4. **Everything else** runs through its module, through per-step clones sharing its parameters
   (the node-by-node executor's way) when backward needs each step's state.
5. **Buffers.** Histories, carried states and gradient buffers are allocated once per plan and
   reused across steps and calls; with ``keep=False`` (inference) nothing is kept for backward:
   one step of scratch is reused over time.
6. **The static step loop** (:mod:`nngraph_py.compile.steploop`): when the step is hoisted
   products, recurrent products of the carried state and one region (the usual cells), every
   call of the time loop is bound once and the loop below is not used.

Lengths (a ``(T, B, 1)`` mask) follow PyTorch's packed sequences, as every executor does.

No Lua Torch original: nngraph's users unrolled cells by hand with clones.
"""
from __future__ import annotations

from typing import Any, Sequence

from .. import backend, nest
from ..clones import clone_sharing
from ..errors import GraphError
from ..graph.gmodule import gModule
from ..module import Array, Module
from ..nn.cmul import CMul
from ..nn.embedding import LookupTable
from ..nn.linear import Linear
from ..nn.normalization import LayerNormalization
from ..nn.shape import Narrow
from ..nn.transfer import _Pointwise
from .elementwise import Region, is_cmul, is_elementwise
from .linear import LinearGroup
from .schedule import consumers_of, form_regions, order_entries
from . import steploop
from .sequence import CellSignature, CompileError

__all__ = ["CompiledSequence", "is_rowwise"]


def is_rowwise(module: Module, table: bool) -> bool:
    """Whether ``module`` maps each row (first axis) of its input independently of the others,
    deterministically, so that ``T`` steps can run as one batch of ``T * batch`` rows."""
    if getattr(module, "inplace", False):
        return False
    if isinstance(module, (Linear, _Pointwise, LayerNormalization, LookupTable)) \
            and not table:
        return True
    if type(module) is CMul and not table:
        return len(module.size) == 1  # one weight vector over the features of every row
    if type(module) is Narrow and not table:
        return module.dim >= 1  # a slice of every row's features
    return is_elementwise(module, table, 2 if table else 1)


def _is_array(v: Any) -> bool:
    return backend.is_array(v)


class _Plan:
    """The compiled plan of one ``(T, B, features, dtype, keep)``; see the module docstring."""

    def __init__(self, owner: "CompiledSequence", x: Array, vals: list[Any], keep: bool):
        cell, sig = owner.cell, owner.sig
        plan = cell._plan
        n = len(plan)
        self.keep = keep
        self.T, self.B = int(x.shape[0]), int(x.shape[1])
        xp = self.xp = backend.get_array_module(x)
        T, B = self.T, self.B
        self.out_nodes = [cell._out_idx[j] for j in sig.state_outputs]
        outputs = set(cell._out_idx)
        # Inputs: which plan index receives x_t and each carried state.
        self.x_node = -1
        self.state_node: dict[int, int] = {}
        for i, step in enumerate(plan):
            if step.slot == sig.x:
                self.x_node = i
            elif step.slot >= 0:
                self.state_node[i] = sig.state_inputs.index(step.slot)
        # (1) Dependence on the carried state, and hoisting.
        dep = [False] * n
        hoist = [False] * n
        for i, step in enumerate(plan):
            if step.slot >= 0:
                dep[i] = i in self.state_node
                continue
            dep[i] = any(dep[p] for p in step.parents)
            hoist[i] = (not dep[i] and is_rowwise(step.module, step.table)
                        and _is_array(vals[i]) and vals[i].ndim >= 1
                        and int(vals[i].shape[0]) == B
                        and all(_is_array(vals[p]) and (hoist[p] or p == self.x_node)
                                for p in step.parents))
        self.hoisted = [i for i in range(n) if hoist[i]]
        # (2) Linear groups among the recurrent nodes.
        rec = [i for i in range(n) if plan[i].slot < 0 and not hoist[i]]
        by_parent: dict[int, list[int]] = {}
        for i in rec:
            step = plan[i]
            if type(step.module) is Linear and not step.table and _is_array(vals[i]) \
                    and vals[i].ndim == 2 and vals[step.parents[0]].ndim == 2:
                by_parent.setdefault(step.parents[0], []).append(i)
        self.groups = [LinearGroup(m, [plan[i].module for i in m], p) for p, m in by_parent.items()]
        in_group = {i: (g, k) for g in self.groups for k, i in enumerate(g.members)}
        self.group_of = {i: gi for gi, g in enumerate(self.groups) for i in g.members}
        # (3) Element-wise regions: greedy, convex, one shape each.
        cand = {i for i in rec if i not in in_group and _is_array(vals[i])
                and (is_elementwise(plan[i].module, plan[i].table, len(plan[i].parents))
                     or is_cmul(plan[i].module, plan[i].table, vals[i].shape))
                and all(_is_array(vals[p]) and vals[p].shape == vals[i].shape
                        and vals[p].dtype == vals[i].dtype for p in plan[i].parents)}

        def same(a: int, b: int) -> bool:
            return vals[a].shape == vals[b].shape and vals[a].dtype == vals[b].dtype

        self.regions: list[Region] = []
        self.direct: set[int] = set()  # group members whose gradient a region writes in place
        consumers = consumers_of(plan)
        region_entry: dict[int, int] = {}
        for nodes, exposed in form_regions(plan, cand, same, outputs,
                                           groups=[g.members for g in self.groups]):
            cols = {q: (in_group[q][0].offsets[in_group[q][1]], in_group[q][0].sizes[in_group[q][1]])
                    for m in nodes for q in plan[m].parents if q in in_group}
            # A group member read by this region alone: the region writes its gradient into the
            # group's gradient history directly.
            direct = [q for q in cols if q not in outputs and set(consumers[q]) <= set(nodes)]
            r = Region(nodes, plan, exposed, tuple(vals[nodes[0]].shape), vals[nodes[0]].dtype,
                       xp, keep, owner.kernels, ext_cols=cols, direct=direct)
            self.direct.update(r.ext[j] for j in r.direct)
            for i in nodes:
                region_entry[i] = len(self.regions)
            self.regions.append(r)
        self.opaque = [i for i in rec if i not in in_group and i not in region_entry]
        # (4) The order of the per-step entries: a topological sort of groups, regions, nodes.
        entry_of: dict[int, tuple[str, int]] = {}
        for gi, g in enumerate(self.groups):
            for i in g.members:
                entry_of[i] = ("group", gi)
        for i, ri in region_entry.items():
            entry_of[i] = ("region", ri)
        for i in self.opaque:
            entry_of[i] = ("node", i)
        order = order_entries(plan, entry_of, cell.describe())
        self.order = order
        # (5) Buffers. Histories have T entries when backward will run, else 1 (scratch).
        L = T if keep else 1
        self.S = [xp.empty((T + 1, B, size), dtype=x.dtype) for size in sig.state_sizes]
        self.group_y = [xp.empty((L, B, g.total), dtype=x.dtype) for g in self.groups]
        # A member's history has T entries only when backward reads it (or another step
        # might: a value read by a Linear's batched weight gradient); else one, reused.
        linear_inputs = {g.parent for g in self.groups}
        self.region_v = [[xp.empty((L if k in r.needed_members() or i in linear_inputs else 1,)
                                   + r.shape, dtype=r.dtype) for k, i in enumerate(r.nodes)]
                         for r in self.regions]
        if keep:
            self.group_g = [xp.empty((T, B, g.total), dtype=x.dtype) for g in self.groups]
        self.group_skip = [{k for k, i in enumerate(g.members) if i in self.direct}
                           for g in self.groups]
        self.clones: dict[int, list[Module]] = {i: [] for i in self.opaque}

    def clone_for(self, i: int, t: int, proto: Module) -> Module:
        clones = self.clones[i]
        while len(clones) <= t:
            clones.append(clone_sharing(proto))
        return clones[t]


class CompiledSequence:
    """A cell run over time by a compiled plan (see the module docstring).

    Args:
        cell: the cell gModule; its parameters are read at every call.
        signature: how its inputs and outputs map onto ``x_t`` and the carried state.
        kernels: element-wise regions as ``"numpy"`` passes, ``"numba"`` loops or ``"auto"``.

    Attributes:
        kind: ``"compiled"``.
    """

    kind = "compiled"

    def __init__(self, cell: gModule, signature: CellSignature, kernels: str = "auto"):
        if not isinstance(cell, gModule):
            raise CompileError(f"the compiler takes a gModule cell, got {type(cell).__name__}")
        if cell.n_inputs != 1 + len(signature.state_inputs) \
                or cell.n_outputs != len(signature.state_outputs):
            raise CompileError(f"{cell.describe()}: {cell.n_inputs} inputs and {cell.n_outputs} "
                               f"outputs do not fit the signature {signature}")
        self.cell, self.sig, self.kernels = cell, signature, kernels
        self._plans: dict[tuple, _Plan] = {}
        self._run: dict[str, Any] | None = None

    def invalidate(self) -> None:
        """Drop the plans (buffers, clones): parameters, device, dtype or mode changed."""
        self._plans.clear()
        self._run = None

    def plan_info(self) -> list[dict[str, Any]]:
        """For each plan built: its key and what the passes made of the cell (plan indices)."""
        out = []
        for key, p in self._plans.items():
            out.append({"key": key, "hoisted": list(p.hoisted),
                        "linear_groups": [list(g.members) for g in p.groups],
                        "regions": [list(r.nodes) for r in p.regions],
                        "region_kernels": [r.kernels for r in p.regions],
                        "per_step_modules": list(p.opaque),
                        "static_loop": p.steploop is not None,
                        "shared_gate_gradients": bool(p.steploop is not None
                                                      and p.steploop.shared),
                        "static_loop_refused": p.steploop_refused})
        return out

    # ------------------------------------------------------------------------------------------
    def _plan_for(self, x: Array, state0: list[Array], keep: bool) -> _Plan:
        key = (tuple(x.shape), str(x.dtype), type(x).__name__, keep)
        plan = self._plans.get(key)
        if plan is None:
            # A probe step through the cell itself gives every node's value shape.
            cell = self.cell
            cell.update_output(self.sig.cell_input(x[0], state0))
            assert cell._vals is not None  # set by the forward just run
            vals = list(cell._vals)
            plan = self._plans[key] = _Plan(self, x, vals, keep)
            loop = steploop.build(plan, cell, self.sig, x)
            plan.steploop = loop if isinstance(loop, steploop.StepLoop) else None
            plan.steploop_refused = loop if isinstance(loop, str) else None
        return plan

    def forward(self, x: Array, state0: Sequence[Array | None], mask: Array | None = None,
                keep: bool = True) -> tuple[Array, list[Array]]:
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        sig, cell = self.sig, self.cell
        steps = cell._plan
        s0 = [xp.zeros((B, size), dtype=x.dtype) if s is None else s
              for s, size in zip(state0, sig.state_sizes)]
        p = self._plan_for(x, s0, keep)
        if p.steploop is not None:
            p.steploop.forward(x, s0, cell, mask)
            o = sig.output_state
            self._run = {"plan": p, "loop": p.steploop} if keep else None
            outputs = p.S[o][1:].copy() if mask is None else xp.where(mask, p.S[o][1:], 0)
            return outputs, [S[T].copy() for S in p.S]
        for k, s in enumerate(s0):
            p.S[k][0] = s
        for g in p.groups:
            g.gather(xp, x.dtype)
        # CMul weight vectors read by regions, as of this call.
        p.param_vals = {}
        for r in p.regions:
            for i in r.params.values():
                w = steps[i].module.weight.reshape(-1)
                p.param_vals[i] = w if w.dtype == x.dtype else w.astype(x.dtype)
        # (1) Hoisted nodes: all steps at once.
        big: dict[int, Any] = {}
        flat_x = x.reshape((T * B,) + tuple(x.shape[2:]))
        for i in p.hoisted:
            step = steps[i]
            ins = [flat_x if q == p.x_node else big[q] for q in step.parents]
            try:
                y = step.module.update_output(ins if step.table else ins[0])
            except Exception as exc:  # noqa: BLE001 - re-raised with the node named
                raise cell._node_error(i, "forward", exc, ins if step.table else ins[0]) from exc
            big[i] = y
        hv = {i: big[i].reshape((T, B) + tuple(big[i].shape[1:])) for i in p.hoisted}
        # (2) The time loop.
        per_step: list[dict[int, Any]] = []
        for t in range(T):
            h = t if keep else 0
            cur: dict[int, Any] = {p.x_node: x[t]}
            for i, k in p.state_node.items():
                cur[i] = p.S[k][t]
            for i in p.hoisted:
                cur[i] = hv[i][t]
            for kind, e in p.order:
                if kind == "group":
                    g = p.groups[e]
                    for i, v in zip(g.members, g.forward(xp, cur[g.parent], p.group_y[e][h])):
                        cur[i] = v
                elif kind == "region":
                    r = p.regions[e]
                    vs = [v[h if len(v) > 1 else 0] for v in p.region_v[e]]
                    r.forward(self._region_ext(p, r, cur, h), vs)
                    for i, v in zip(r.nodes, vs):
                        cur[i] = v
                else:
                    step = steps[e]
                    m = p.clone_for(e, t if keep else 0, step.module)
                    inp = [cur[q] for q in step.parents] if step.table else cur[step.parents[0]]
                    try:
                        y = m.update_output(inp)
                    except Exception as exc:  # noqa: BLE001
                        raise cell._node_error(e, "forward", exc, inp) from exc
                    cur[e] = nest.as_array(y) if not isinstance(y, list) \
                        and not backend.is_array(y) else y
            for k, o in enumerate(p.out_nodes):
                new = cur[o]
                if mask is None:
                    p.S[k][t + 1] = new
                else:
                    p.S[k][t + 1] = xp.where(mask[t], new, p.S[k][t])
            if keep:
                per_step.append(cur)
        o = sig.output_state
        outputs = p.S[o][1:].copy() if mask is None else xp.where(mask, p.S[o][1:], 0)
        finals = [S[T].copy() for S in p.S]
        self._run = {"plan": p, "x": x, "big": big, "steps": per_step, "mask": mask,
                     "flat_x": flat_x} if keep else None
        return outputs, finals

    # ------------------------------------------------------------------------------------------
    def backward(self, grad_out: Array | None,
                 grad_final: Sequence[Array | None]) -> tuple[Array, list[Array]]:
        run = self._run
        if run is None:
            raise GraphError(f"{self.cell.describe()}: backward after a forward that kept "
                             f"nothing for it (evaluate mode or keep=False); call training() and "
                             f"forward again")
        p: _Plan = run["plan"]
        if "loop" in run:
            gx, g0 = run["loop"].backward(grad_out, list(grad_final))
            run["gh"] = True
            return gx, g0
        x, mask = run["x"], run["mask"]
        xp = p.xp
        T, B = p.T, p.B
        sig, cell = self.sig, self.cell
        steps = cell._plan
        gx = xp.zeros(x.shape, dtype=x.dtype)
        gh = {i: xp.zeros(run["big"][i].shape, dtype=x.dtype) for i in p.hoisted}
        ghv = {i: gh[i].reshape((T, B) + tuple(gh[i].shape[1:])) for i in p.hoisted}
        carry = [xp.zeros((B, size), dtype=x.dtype) if g is None else g
                 for g, size in zip(grad_final, sig.state_sizes)]
        o = sig.output_state
        grads_per_step: list[dict[int, Any]] = [{} for _ in range(T)]
        pacc = {i: xp.zeros(w.shape, dtype=x.dtype) for i, w in p.param_vals.items()}
        for t in range(T - 1, -1, -1):
            cur = run["steps"][t]
            gv: dict[int, Any] = {}
            owned: set[int] = set()

            def acc(i: int, g: Any, t: int = t) -> None:
                if g is None:
                    return
                if i in gh:  # hoisted: into the all-steps buffer
                    ghv[i][t] += g
                elif i == p.x_node:
                    gx[t] += g
                elif i not in gv:
                    gv[i] = g
                elif i in owned:
                    gv[i] = nest.add_into(gv[i], g)
                else:
                    gv[i] = nest.add(gv[i], g)
                    owned.add(i)

            keep_state: list[Any] = [None] * len(carry)
            for k, node in enumerate(p.out_nodes):
                g_new = carry[k]
                if k == o and grad_out is not None:
                    g_new = g_new + grad_out[t]
                if mask is not None:
                    keep_state[k] = xp.where(mask[t], 0, carry[k])
                    g_new = xp.where(mask[t], g_new, 0)
                acc(node, g_new)
            for kind, e in reversed(p.order):
                if kind == "group":
                    g = p.groups[e]
                    gg = g.stack_grads([gv.get(i) for i in g.members], p.group_g[e][t],
                                       p.group_skip[e])
                    acc(g.parent, g.grad_input(xp, gg))
                elif kind == "region":
                    r = p.regions[e]
                    vs = [v[t if len(v) > 1 else 0] for v in p.region_v[e]]
                    gx_exp = []
                    for i in (r.nodes[k] for k in r.exposed):
                        gi = gv.get(i)
                        gx_exp.append(xp.zeros(r.shape, dtype=r.dtype) if gi is None else gi)
                    dest = None
                    if r.direct or r.sums_params:
                        dest = [p.group_g[p.group_of[q]][t] if j in r.direct
                                else pacc[q[1]] if isinstance(q, tuple) else None
                                for j, q in enumerate(r.ext)]
                    ge = r.backward(self._region_ext(p, r, cur, t), vs, gx_exp, dest)
                    for j, (q, gq) in enumerate(zip(r.ext, ge)):
                        if isinstance(q, tuple):  # a CMul weight: summed over the rows
                            if not r.sums_params:  # (a numba kernel added it already)
                                pacc[q[1]] += gq.sum(axis=0)
                            continue
                        if q in p.direct:
                            continue  # already in the group's gradient history
                        # Region buffers are reused by the next step: what outlives the step
                        # (the carried state's gradient) is copied below.
                        acc(q, gq)
                else:
                    step = steps[e]
                    m = p.clones[e][t]
                    inp = [cur[q] for q in step.parents] if step.table else cur[step.parents[0]]
                    gi = gv.get(e)
                    if gi is None:
                        gi = nest.zeros_like(cur[e])
                    elif type(gi) is list:
                        gi = nest.fill_none(gi, cur[e])
                    try:
                        gin = m.update_grad_input(inp, gi)
                    except Exception as exc:  # noqa: BLE001
                        raise cell._node_error(e, "backward", exc, inp, gi) from exc
                    if m.parameters()[0]:
                        # Kept for acc_grad_parameters: a copy, since gradients may live in
                        # buffers the next step overwrites.
                        grads_per_step[t][e] = nest.map(lambda a: a.copy(), gi)
                    if step.table:
                        for j, q in enumerate(step.parents):
                            acc(q, gin[j])
                    else:
                        acc(step.parents[0], gin)
            new_carry = []
            for i, k in sorted(p.state_node.items(), key=lambda kv: kv[1]):
                g = gv.get(i)
                g = xp.zeros((B, sig.state_sizes[k]), dtype=x.dtype) if g is None else g.copy()
                if keep_state[k] is not None:
                    g += keep_state[k]
                new_carry.append(g)
            carry = new_carry
        # (3) Hoisted nodes, once for all steps, last first.
        flat_gx = gx.reshape((T * B,) + tuple(x.shape[2:]))
        big, flat_x = run["big"], run["flat_x"]
        for i in reversed(p.hoisted):
            step = steps[i]
            ins = [flat_x if q == p.x_node else big[q] for q in step.parents]
            inp = ins if step.table else ins[0]
            try:
                gin = step.module.update_grad_input(inp, gh[i])
            except Exception as exc:  # noqa: BLE001
                raise cell._node_error(i, "backward", exc, inp, gh[i]) from exc
            gins = gin if step.table else [gin]
            for q, gq in zip(step.parents, gins):
                if gq is None:
                    continue
                if q == p.x_node:
                    flat_gx += gq
                else:
                    gh[q] += gq
        run["gh"], run["grads"], run["pacc"] = gh, grads_per_step, pacc
        return gx, carry

    def acc_grad_parameters(self, scale: float = 1.0) -> None:
        run = self._run
        if run is None or "gh" not in run:
            raise GraphError(f"{self.cell.describe()}: acc_grad_parameters before backward")
        p: _Plan = run["plan"]
        if "loop" in run:
            run["loop"].acc_grad_parameters(self.cell, scale)
            return
        xp, T, B = p.xp, p.T, p.B
        steps = self.cell._plan
        big, flat_x = run["big"], run["flat_x"]
        for i in p.hoisted:
            step = steps[i]
            ins = [flat_x if q == p.x_node else big[q] for q in step.parents]
            step.module.acc_grad_parameters(ins if step.table else ins[0], run["gh"][i], scale)
        for gi, g in enumerate(p.groups):
            X = self._history(run, g.parent).reshape(T * B, g.in_features)
            g.acc_grad_parameters(xp, X, p.group_g[gi].reshape(T * B, g.total), scale)
        for i, g in run["pacc"].items():
            m = steps[i].module
            m.grad_weight += (g * scale if scale != 1.0 else g).reshape(m.grad_weight.shape)
        for i in p.opaque:
            step = steps[i]
            if not p.clones[i][0].parameters()[0]:
                continue
            for t in range(T):
                cur = run["steps"][t]
                inp = [cur[q] for q in step.parents] if step.table else cur[step.parents[0]]
                p.clones[i][t].acc_grad_parameters(inp, run["grads"][t][i], scale)

    @staticmethod
    def _region_ext(p: _Plan, r: Region, cur: dict[int, Any], h: int) -> list[Any]:
        """The arrays region ``r`` reads at history index ``h``: a Linear group member as its
        group's whole product (the region reads its columns)."""
        return [p.param_vals[q[1]] if isinstance(q, tuple)
                else p.group_y[p.group_of[q]][h] if c is not None else cur[q]
                for q, c in zip(r.ext, r.ext_cols)]

    @staticmethod
    def _history(run: dict[str, Any], node: int) -> Array:
        """The ``(T, B, ...)`` values of ``node`` over the last forward's steps."""
        p: _Plan = run["plan"]
        if node in p.state_node:
            return p.S[p.state_node[node]][:p.T]
        for r, hist in zip(p.regions, p.region_v):
            if node in r.nodes:
                return hist[r.nodes.index(node)]
        xp = p.xp
        return xp.stack([cur[node] for cur in run["steps"]], axis=0)
