"""``compile(gmodule)``: the same graph, run by an execution plan built once per input shapes.

The first call for given input shapes and dtype runs the gModule node by node (its own executor)
and reads the shape of every node's value; from them it builds a plan that later calls with the
same shapes and dtype follow:

* Linears reading the same node (directly, not through a list) run as one matrix product over
  their stacked weights (:class:`nngraph_py.graph.optimize.FusedLinearGroup`, reused here
  without touching the gModule's own plan);
* element-wise regions (:mod:`nngraph_py.compile.elementwise`) of two or more nodes of one shape
  run as one generated function forward and one backward, into buffers allocated once;
* every other node runs through its own module, as in the gModule.

The wrapped gModule is this module's only content: parameters, names, children, ``summary``,
pictures and checkpoints are the gModule's. In evaluation mode (``evaluate()``) or with
``no_grad=True`` a forward keeps nothing for backward (and a backward is refused).

No Lua Torch original: nngraph runs every node through its module.
"""
from __future__ import annotations

from typing import Any

import numpy

from .. import backend, nest
from ..errors import GraphError
from ..graph.gmodule import gModule
from ..graph.optimize import FusedLinearGroup, _Member
from ..module import Module
from ..nn.identity import Identity
from ..nn.linear import Linear
from .elementwise import Region, is_elementwise, numba_available

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


class _Plan:
    """The execution plan of one (input shapes, dtype): entries in topological order.

    Each entry is ``(i, kind, payload)``: ``kind`` ``"input"`` (node ``i`` is a gModule input
    read through an Identity), ``"module"`` (payload: the module to run, the gModule's own or a
    fused Linear member), or ``"region"`` (payload: a :class:`Region` whose root is node ``i``).
    """

    def __init__(self, g: gModule, vals: list[Any], keep: bool, kernels: str = "numpy"):
        plan = g._plan
        n = len(plan)
        consumers: list[list[int]] = [[] for _ in range(n)]
        for i, step in enumerate(plan):
            for p in step.parents:
                consumers[p].append(i)
        outputs = set(g._out_idx)
        # (i) Linears reading one node: one product per group.
        modules = [step.module for step in plan]
        by_parent: dict[int, list[int]] = {}
        for i, step in enumerate(plan):
            if type(step.module) is Linear and not step.table and step.slot < 0 \
                    and backend.is_array(vals[step.parents[0]]):
                by_parent.setdefault(step.parents[0], []).append(i)
        self.groups = 0
        for members in by_parent.values():
            if len(members) < 2:
                continue
            group = FusedLinearGroup([plan[i].module for i in members])  # type: ignore[misc]
            for k, i in enumerate(members):
                modules[i] = _Member(group, k, leader=(k == 0))
            self.groups += 1
        # (ii) element-wise regions: a fusable node joins its consumer's region when it has one
        # consumer, that consumer is fusable, it is not an output, and shapes/dtypes agree.
        fusable = [step.slot < 0 and is_elementwise(step.module, step.table, len(step.parents))
                   and backend.is_array(vals[i]) for i, step in enumerate(plan)]
        joins: dict[int, int] = {}
        for i in range(n):
            if fusable[i] and i not in outputs and len(consumers[i]) == 1:
                c = consumers[i][0]
                if fusable[c] and vals[c].shape == vals[i].shape \
                        and vals[c].dtype == vals[i].dtype and plan[c].parents.count(i) == 1:
                    joins[i] = c
        members_of: dict[int, list[int]] = {}
        for i in range(n):
            if fusable[i] and i not in joins:
                members_of[i] = []
        for i in range(n):
            if fusable[i]:
                root = i
                while root in joins:
                    root = joins[root]
                members_of[root].append(i)
        absorbed: set[int] = set()
        self.regions: dict[int, Region] = {}
        for root, nodes in members_of.items():
            if len(nodes) < 2:
                continue
            # Every input of the region must have the root's shape (no broadcasting here).
            shape, dtype = vals[root].shape, vals[root].dtype
            ok = all(p in nodes or (backend.is_array(vals[p]) and vals[p].shape == shape
                                    and vals[p].dtype == dtype)
                     for i in nodes for p in plan[i].parents)
            if not ok:
                continue
            xp = backend.get_array_module(vals[root])
            # "auto" is NumPy passes for now: measured on the GRU cell (batch 100, hidden 128,
            # float32), the generated scalar numba loops over the strided Linear slices are
            # 2-5x slower than NumPy's vectorised exp/tanh (benchmarks/RESULTS.md).
            use = "numpy" if kernels == "auto" else kernels
            if use == "numba" and not (type(vals[root]) is numpy.ndarray
                                       and dtype in (numpy.float32, numpy.float64)):
                use = "numpy"
            self.regions[root] = Region(sorted(nodes), plan, shape, dtype, xp, keep, use)
            absorbed.update(nodes)
        self.entries: list[tuple[int, str, Any]] = []
        for i, step in enumerate(plan):
            if i in self.regions:
                self.entries.append((i, "region", self.regions[i]))
            elif i in absorbed:
                continue
            elif step.slot >= 0 and type(step.module) is Identity:
                self.entries.append((i, "input", None))
            else:
                self.entries.append((i, "module", modules[i]))


class CompiledGraph(Module):
    """A gModule run by compiled execution plans (see the module docstring).

    Args:
        graph: the gModule; it stays usable on its own (its plan is not changed).
        no_grad: when True, forward never keeps anything for backward (inference only).
        kernels: how element-wise regions run: ``"numpy"``, ``"numba"`` or ``"auto"`` (see
            :func:`compile`).

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
        if kernels not in ("auto", "numpy", "numba"):
            raise GraphError(f"compile(): kernels must be 'auto', 'numpy' or 'numba', got "
                             f"{kernels!r}")
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
        self._outputs = set(graph._out_idx)
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
        """For each compiled (shapes, dtype): the Linear groups and fused regions formed."""
        return [{"key": k, "linear_groups": p.groups,
                 "regions": [len(r.nodes) for r in p.regions.values()],
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
            self._ran = "graph"
            self.output = out
            return out
        keep = self.train and not self.no_grad
        vals = self._run_forward(plan, inputs)
        outs = [vals[i] for i in g._out_idx]
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
        vals: list[Any] = [None] * len(steps)
        for i, kind, payload in plan.entries:
            step = steps[i]
            if kind == "input":
                vals[i] = inputs[step.slot]
                continue
            if kind == "region":
                y = payload.forward([vals[p] for p in payload.ext])
                # An output must outlive the next call, which overwrites the region's buffers.
                vals[i] = y.copy() if i in self._outputs else y
                continue
            if step.slot >= 0:
                x = inputs[step.slot]
            elif step.table:
                x = [vals[p] for p in step.parents]
            else:
                x = vals[step.parents[0]]
            try:
                y = payload.update_output(x)
            except Exception as exc:  # noqa: BLE001 - re-raised with the node named
                raise g._node_error(i, "forward", exc, x) from exc
            vals[i] = nest.as_array(y) if not isinstance(y, list) and not backend.is_array(y) \
                else y
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
        n = len(g._plan)
        gouts: list[Any] = [None] * n
        owned = [False] * n
        grads = [grad_output] if len(g._out_idx) == 1 else g._split_grad_output(grad_output)
        for i, gr in zip(g._out_idx, grads):
            g._accumulate(gouts, owned, i, gr)
        grad_inputs: list[Any] = [None] * len(g.input_nodes)
        steps = g._plan
        for i, kind, payload in reversed(self._last_plan.entries):
            step = steps[i]
            gr = gouts[i]
            if gr is None:
                gr = gouts[i] = nest.zeros_like(self._vals[i])
            elif type(gr) is list:
                gr = gouts[i] = nest.fill_none(gr, self._vals[i])
            if kind == "input":
                grad_inputs[step.slot] = gr
                continue
            if kind == "region":
                ge = payload.backward([self._vals[p] for p in payload.ext], gr)
                for p, gp in zip(payload.ext, ge):
                    # The region's buffers are reused by the next backward: what can reach the
                    # caller (an input's gradient) is copied; the rest is used within this call.
                    if gouts[p] is None and steps[p].slot >= 0:
                        gp = gp.copy()
                    g._accumulate(gouts, owned, p, gp)
                continue
            x = self._node_input(i)
            try:
                gi = payload.update_grad_input(x, gr)
            except Exception as exc:  # noqa: BLE001
                raise g._node_error(i, "backward", exc, x, gr) from exc
            if step.slot >= 0:
                grad_inputs[step.slot] = nest.zeros_like(x) if gi is None else nest.as_array(gi)
            elif step.table:
                for j, p in enumerate(step.parents):
                    g._accumulate(gouts, owned, p, gi[j])
            else:
                g._accumulate(gouts, owned, step.parents[0], gi)
        self._gouts = gouts
        self.grad_input = grad_inputs[0] if len(grad_inputs) == 1 else grad_inputs
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        if self._ran == "graph":
            self.graph.acc_grad_parameters(input, grad_output, scale)
            return
        if self._gouts is None:
            raise GraphError("acc_grad_parameters called before update_grad_input")
        for i, kind, payload in reversed(self._last_plan.entries):
            if kind != "module":
                continue  # inputs and element-wise regions hold no parameters
            x = self._node_input(i)
            try:
                payload.acc_grad_parameters(x, self._gouts[i], scale)
            except Exception as exc:  # noqa: BLE001
                raise self.graph._node_error(i, "backward", exc, x, self._gouts[i]) from exc

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
            (2-D float32/float64 NumPy values; others fall back to NumPy passes), or ``"auto"``
            (today: NumPy passes, which measured faster than the generated numba loops).

    Returns:
        A :class:`CompiledGraph` wrapping ``graph``.
    """
    return CompiledGraph(graph, no_grad=no_grad, kernels=kernels)
