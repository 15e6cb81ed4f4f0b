"""``compile(gmodule)``: the same graph, run by an execution plan built once per input shapes.

The first call for given input shapes and dtype runs the gModule node by node (its own executor)
and reads the shape of every node's value; from them it builds a plan that later calls with the
same shapes and dtype follow:

* Linears reading the same node (directly, not through a list) run as one matrix product over
  their joined weights (:class:`nngraph_py.compile.linear.LinearGroup`), into a buffer planned
  once (a Linear alone too: no fresh output array per call);
* element-wise regions of nodes of one shape (any convex sub-DAG,
  :mod:`nngraph_py.compile.schedule`) run as one generated function forward and one backward
  (:mod:`nngraph_py.compile.elementwise`), into buffers planned once;
* every other node runs through its own module, as in the gModule.

The wrapped gModule is this module's only content: parameters, names, children, ``summary``,
pictures and checkpoints are the gModule's. In evaluation mode (``evaluate()``) or with
``no_grad=True`` a forward keeps nothing for backward (and a backward is refused).

No Lua Torch original: nngraph runs every node through its module.
"""
from __future__ import annotations

from typing import Any

from .. import backend, nest
from ..errors import GraphError
from ..graph.gmodule import gModule
from ..module import Module
from ..nn.identity import Identity
from ..nn.linear import Linear
from .elementwise import Region, is_elementwise, numba_available
from .linear import LinearGroup
from .schedule import form_regions, order_entries

__all__ = ["compile", "CompiledGraph"]


def _key(inputs: list[Any]) -> tuple:
    out: list[tuple] = []
    for x in inputs:
        if isinstance(x, (list, tuple)):
            out.append(("list", _key(list(x))))
        elif backend.is_array(x):
            out.append((tuple(x.shape), str(x.dtype), type(x).__name__))
        else:
            out.append((type(x).__name__,))
    return tuple(out)


def _copy(a: Any) -> Any:
    return a.copy()


class _Plan:
    """The execution plan of one (input shapes, dtype): ``entries`` in topological order, each
    ``("input", i)``, ``("node", i)``, ``("group", k)`` (``groups[k]``) or ``("region", k)``
    (``regions[k]``, member values in ``region_v[k]``)."""

    def __init__(self, g: gModule, vals: list[Any], keep: bool, kernels: str):
        plan = g._plan
        n = len(plan)
        outputs = set(g._out_idx)
        xp = None
        for v in vals:
            if backend.is_array(v):
                xp = backend.get_array_module(v)
                break
        # (i) Linears reading one node (2-D values): one product per group.
        by_parent: dict[int, list[int]] = {}
        for i, step in enumerate(plan):
            if type(step.module) is Linear and not step.table and step.slot < 0 \
                    and backend.is_array(vals[i]) and vals[i].ndim == 2 \
                    and backend.is_array(vals[step.parents[0]]):
                by_parent.setdefault(step.parents[0], []).append(i)
        self.groups = [LinearGroup(m, [plan[i].module for i in m], p)
                       for p, m in by_parent.items()]
        self.group_y = [xp.empty((vals[g.members[0]].shape[0], g.total),
                                 dtype=vals[g.members[0]].dtype) for g in self.groups]
        self.group_g = [xp.empty_like(y) for y in self.group_y] if keep else None
        in_group = {i: k for k, g in enumerate(self.groups) for i in g.members}
        # (ii) element-wise regions.
        cand = {i for i, step in enumerate(plan)
                if step.slot < 0 and i not in in_group and backend.is_array(vals[i])
                and is_elementwise(step.module, step.table, len(step.parents))
                and all(backend.is_array(vals[p]) and vals[p].shape == vals[i].shape
                        and vals[p].dtype == vals[i].dtype for p in step.parents)}

        def same(a: int, b: int) -> bool:
            return vals[a].shape == vals[b].shape and vals[a].dtype == vals[b].dtype

        self.regions: list[Region] = []
        self.region_v: list[list[Any]] = []
        entry_of: dict[int, tuple[str, int]] = {}
        for nodes, exposed in form_regions(plan, cand, same, outputs,
                                           groups=[g.members for g in self.groups]):
            r = Region(nodes, plan, exposed, tuple(vals[nodes[0]].shape), vals[nodes[0]].dtype,
                       xp, keep, kernels)
            for i in nodes:
                entry_of[i] = ("region", len(self.regions))
            self.regions.append(r)
            self.region_v.append([xp.empty(r.shape, dtype=r.dtype) for _ in nodes])
        for k, grp in enumerate(self.groups):
            for i in grp.members:
                entry_of[i] = ("group", k)
        for i, step in enumerate(plan):
            if i not in entry_of:
                is_input = step.slot >= 0 and type(step.module) is Identity
                entry_of[i] = ("input" if is_input else "node", i)
        self.entries = order_entries(plan, entry_of, g.describe())
        self.n = n
        # Values that may live in (or view) this plan's buffers: members of groups and regions,
        # and, conservatively, whatever a module makes of them (a view, a table holding them).
        tainted = [False] * n
        for i, step in enumerate(plan):
            kind = entry_of[i][0]
            tainted[i] = kind in ("group", "region") or (
                kind == "node" and any(tainted[q] for q in step.parents))
        #: Outputs to copy before they are returned (the next call overwrites the buffers).
        self.copy_out = {i for i in outputs if tainted[i]}


class CompiledGraph(Module):
    """A gModule run by compiled execution plans (see the module docstring).

    Args:
        graph: the gModule; it stays usable on its own (its plan is not changed).
        no_grad: when True, forward never keeps anything for backward (inference only).
        kernels: how element-wise regions run: ``"numpy"``, ``"numba"``, ``"cuda"`` or
            ``"auto"`` (see :func:`compile`).

    Example:
        >>> import numpy
        >>> from nngraph_py import nn
        >>> from nngraph_py.compile import compile
        >>> x = nn.Identity()()
        >>> net = compile(nn.gModule([x], [nn.Tanh()(nn.Linear(3, 2)(x))]))
        >>> net.forward(numpy.ones((4, 3), "float32")).shape
        (4, 2)
    """

    integer_inputs = True  # as gModule: each node checks what it receives

    def __init__(self, graph: gModule, no_grad: bool = False, kernels: str = "auto"):
        super().__init__()
        if kernels not in ("auto", "numpy", "numba", "cuda"):
            raise GraphError(f"compile(): kernels must be 'auto', 'numpy', 'numba' or 'cuda', "
                             f"got {kernels!r}")
        if kernels == "numba" and not numba_available():
            raise GraphError("compile(kernels='numba'): numba is not installed "
                             "(pip install 'nngraph_py[accel]')")
        self.kernels = kernels
        if not isinstance(graph, gModule):
            raise GraphError(f"compile() takes a gModule, got {type(graph).__name__}")
        self.graph = graph
        self.no_grad = bool(no_grad)
        self.input_kind = graph.input_kind
        self._device, self._dtype = graph._device, graph._dtype
        self._plans: dict[tuple, _Plan] = {}
        self._ran: str | None = None  # "graph", "plan", or "nograd" for the last forward
        self._vals: list[Any] | None = None
        self._inputs: list[Any] | None = None
        self._gouts: list[Any] | None = None
        self._last_plan: _Plan | None = None

    # The module tree is the gModule's: same names, parameters, summary and checkpoints.
    def children(self) -> list[Module]:
        return self.graph.children()

    def named_children(self) -> list[tuple[str, Module]]:
        return self.graph.named_children()

    def training(self) -> "CompiledGraph":
        self.graph.training()
        self.train = True
        return self

    def evaluate(self) -> "CompiledGraph":
        self.graph.evaluate()
        self.train = False
        return self

    def plan_info(self) -> list[dict[str, Any]]:
        """For each compiled (shapes, dtype): the Linear groups and fused regions formed (plan
        indices) and how many entries run per call."""
        return [{"key": k, "linear_groups": [list(g.members) for g in p.groups],
                 "regions": [list(r.nodes) for r in p.regions],
                 "region_kernels": [r.kernels for r in p.regions],
                 "steps": len(p.entries)} for k, p in self._plans.items()]

    def update_output(self, input: Any) -> Any:
        g = self.graph
        g._check_inputs(input)
        inputs = g._split_input(input)
        key = _key(inputs)
        plan = self._plans.get(key)
        if plan is None:
            out = g.update_output(input)
            # Plans are built with gradient buffers unless this wrapper is inference-only.
            assert g._vals is not None  # set by the forward just run
            self._plans[key] = _Plan(g, g._vals, keep=not self.no_grad, kernels=self.kernels)
            # As every later call: nothing kept for backward in evaluate mode or with no_grad.
            self._ran = "graph" if self.train and not self.no_grad else "nograd"
            self.output = out
            return out
        keep = self.train and not self.no_grad
        vals = self._run_forward(plan, inputs)
        # An output must outlive the next call, which overwrites the plan's buffers.
        outs = [nest.map(_copy, vals[i]) if i in plan.copy_out else vals[i]
                for i in g._out_idx]
        self.output = outs[0] if len(outs) == 1 else outs
        if keep:
            self._vals, self._inputs, self._last_plan, self._ran = vals, inputs, plan, "plan"
        else:
            self._vals = self._inputs = None
            self._ran = "nograd"
        return self.output

    def _run_forward(self, plan: _Plan, inputs: list[Any]) -> list[Any]:
        g = self.graph
        steps = g._plan
        vals: list[Any] = [None] * plan.n
        xp = None
        for kind, e in plan.entries:
            if kind == "input":
                vals[e] = inputs[steps[e].slot]
            elif kind == "group":
                grp = plan.groups[e]
                x = vals[grp.parent]
                xp = backend.get_array_module(x)
                for lin in grp.linears:
                    lin._check(x)
                grp.gather(xp, x.dtype)
                for i, v in zip(grp.members, grp.forward(xp, x, plan.group_y[e])):
                    vals[i] = v
            elif kind == "region":
                r = plan.regions[e]
                vs = plan.region_v[e]
                r.forward([vals[q] for q in r.ext], vs)
                for i, v in zip(r.nodes, vs):
                    vals[i] = v
            else:
                step = steps[e]
                if step.slot >= 0:
                    x = inputs[step.slot]
                elif step.table:
                    x = [vals[q] for q in step.parents]
                else:
                    x = vals[step.parents[0]]
                try:
                    y = step.module.update_output(x)
                except Exception as exc:  # noqa: BLE001 - re-raised with the node named
                    raise g._node_error(e, "forward", exc, x) from exc
                vals[e] = nest.as_array(y) if not isinstance(y, list) \
                    and not backend.is_array(y) else y
        return vals

    def _node_input(self, i: int) -> Any:
        step = self.graph._plan[i]
        if step.slot >= 0:
            return self._inputs[step.slot]
        if step.table:
            return [self._vals[p] for p in step.parents]
        return self._vals[step.parents[0]]

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        g = self.graph
        if self._ran == "graph":
            self.grad_input = g.update_grad_input(input, grad_output)
            return self.grad_input
        if self._ran != "plan":
            raise GraphError(f"{self.describe()}: backward after a forward that kept nothing for "
                             f"it (evaluate mode or no_grad=True); call training() and forward "
                             f"again")
        plan = self._last_plan
        vals = self._vals
        n = plan.n
        gouts: list[Any] = [None] * n
        owned = [False] * n
        grads = [grad_output] if len(g._out_idx) == 1 else g._split_grad_output(grad_output)
        for i, gr in zip(g._out_idx, grads):
            g._accumulate(gouts, owned, i, gr)
        grad_inputs: list[Any] = [None] * len(g.input_nodes)
        steps = g._plan

        def grad_of(i: int) -> Any:
            gr = gouts[i]
            if gr is None:
                gr = gouts[i] = nest.zeros_like(vals[i])
            elif type(gr) is list:
                gr = gouts[i] = nest.fill_none(gr, vals[i])
            return gr

        for kind, e in reversed(plan.entries):
            if kind == "input":
                grad_inputs[steps[e].slot] = grad_of(e)
            elif kind == "group":
                grp = plan.groups[e]
                x = vals[grp.parent]
                xp = backend.get_array_module(x)
                gg = grp.stack_grads([gouts[i] for i in grp.members], plan.group_g[e])
                g._accumulate(gouts, owned, grp.parent, grp.grad_input(xp, gg))
            elif kind == "region":
                r = plan.regions[e]
                gx = [grad_of(r.nodes[k]) for k in r.exposed]
                ge = r.backward([vals[q] for q in r.ext], plan.region_v[e], gx)
                for q, gq in zip(r.ext, ge):
                    g._accumulate(gouts, owned, q, gq)
            else:
                step = steps[e]
                gr = grad_of(e)
                x = self._node_input(e)
                try:
                    gi = step.module.update_grad_input(x, gr)
                except Exception as exc:  # noqa: BLE001
                    raise g._node_error(e, "backward", exc, x, gr) from exc
                if step.slot >= 0:
                    grad_inputs[step.slot] = nest.zeros_like(x) if gi is None \
                        else nest.as_array(gi)
                elif step.table:
                    for j, q in enumerate(step.parents):
                        g._accumulate(gouts, owned, q, gi[j])
                else:
                    g._accumulate(gouts, owned, step.parents[0], gi)
        self._gouts = gouts
        # The input gradients may be (views of) buffers the next backward overwrites: copies.
        grad_inputs = [nest.map(_copy, gi) for gi in grad_inputs]
        self.grad_input = grad_inputs[0] if len(grad_inputs) == 1 else grad_inputs
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        if self._ran == "graph":
            self.graph.acc_grad_parameters(input, grad_output, scale)
            return
        if self._gouts is None:
            raise GraphError("acc_grad_parameters called before update_grad_input")
        plan = self._last_plan
        steps = self.graph._plan
        for kind, e in reversed(plan.entries):
            if kind == "group":
                grp = plan.groups[e]
                x = self._vals[grp.parent]
                grp.acc_grad_parameters(backend.get_array_module(x), x, plan.group_g[e], scale)
            elif kind == "node":
                x = self._node_input(e)
                try:
                    steps[e].module.acc_grad_parameters(x, self._gouts[e], scale)
                except Exception as exc:  # noqa: BLE001
                    raise self.graph._node_error(e, "backward", exc, x,
                                                 self._gouts[e]) from exc

    def _apply_extra(self, convert: Any) -> None:
        # Plans hold buffers of the old device/dtype: rebuild them on the next call.
        self._plans.clear()
        self._vals = self._inputs = self._gouts = None
        self._ran = None
        self._device, self._dtype = self.graph._device, self.graph._dtype

    def describe(self) -> str:
        return "compile(" + self.graph.describe() + ")"

    def __repr__(self) -> str:
        return "compiled " + repr(self.graph)


def compile(graph: gModule, no_grad: bool = False,  # noqa: A001 - the name
            kernels: str = "auto") -> CompiledGraph:
    """Compile a gModule (see :class:`CompiledGraph`): same results, parameters and names.

    Args:
        graph: the gModule to run.
        no_grad: inference only (a forward keeps nothing for backward).
        kernels: element-wise regions as ``"numpy"`` in-place passes, ``"numba"`` loop kernels
            (2-D float32/float64 NumPy values; others fall back to NumPy passes), ``"cuda"``
            CuPy ``ElementwiseKernel`` s (CuPy float arrays; see
            :mod:`nngraph_py.compile.cuda`), or ``"auto"`` (numba where it applies and is
            installed, else NumPy passes).

    Returns:
        A :class:`CompiledGraph` wrapping ``graph``.
    """
    return CompiledGraph(graph, no_grad=no_grad, kernels=kernels)
