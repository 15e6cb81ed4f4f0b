"""``gModule``: a module defined by a graph of nodes (Lua: nngraph's ``nn.gModule``).

The graph is checked and ordered once, at construction. ``update_output`` walks the nodes in
topological order; ``update_grad_input`` walks them backwards, summing the gradients that reach a
node from all its consumers (fan-out) before calling its module, and keeps that sum for
``acc_grad_parameters``.
"""
from __future__ import annotations

import numbers
import os
import tempfile
from typing import Any, NamedTuple, Sequence

import networkx as nx
import numpy

from .. import backend, nest
from ..errors import GraphBuildError, GraphError, InputError, NNGraphError, shape_str
from ..module import Module, grad_output_mismatch, refuse_integers, reuse_error
from .node import Node, next_node_id

__all__ = ["gModule", "set_debug", "get_debug", "Step", "make_plan"]

_NDARRAY = numpy.ndarray
_SCALARS = numpy.generic


class Step(NamedTuple):
    """One entry of a gModule's plan: how node ``i`` (in topological order) runs.

    Attributes:
        module: what runs (the node's module, or a stand-in such as a fused Linear group member).
        parents: plan indices of the nodes it reads, in order.
        table: whether it receives a list (it was called on a list of nodes).
        slot: the gModule input it receives, or -1.
        want_list: for a node reading one node, whether its module must receive a list (True),
            one array (False) or either (None): checked at run time.
    """

    module: Module
    parents: tuple[int, ...]
    table: bool
    slot: int
    want_list: bool | None


def make_plan(order: list[Node], input_nodes: list[Node], index: dict[int, int]) -> list[Step]:
    """The plan of a graph whose nodes are in topological ``order`` (the one place it is built)."""
    slots = {id(n): k for k, n in enumerate(input_nodes)}
    return [Step(n.module, tuple(index[id(p)] for p in n.inputs), n.table, slots.get(id(n), -1),
                 gModule._runtime_kind(n, is_input=id(n) in slots))
            for n in order]

_debug: dict[str, Any] = {"on": False, "dir": None}


def set_debug(on: bool = True, directory: str | None = None) -> None:
    """On an error inside forward/backward, also write the graph with the failing node in red.

    (Lua: ``nngraph.setDebug(true)``.) The picture goes to ``directory`` (default: the system's
    temporary directory) as ``nngraph_<name>.dot``, plus ``.svg`` when Graphviz is installed;
    the error message gives its path.
    """
    _debug["on"] = bool(on)
    _debug["dir"] = directory


def get_debug() -> bool:
    """Whether :func:`set_debug` is on."""
    return bool(_debug["on"])


def _as_node_list(value: Any, what: str) -> list[Node]:
    if isinstance(value, Node):
        return [value]
    if not isinstance(value, (list, tuple)):
        from .node import _reject

        raise _reject(value, f"the {what} of gModule")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, Node):
            from .node import _reject

            raise _reject(v, f"{what}[{i}] of gModule")
        out.append(v)
    if not out:
        raise GraphBuildError(f"gModule needs at least one {what[:-1]} node")
    return out


def _collect(outputs: list[Node]) -> list[Node]:
    """All nodes the outputs depend on; raises on a cycle, naming the nodes on it."""
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done
    found: list[Node] = []
    for out in outputs:
        stack: list[tuple[Node, int]] = [(out, 0)]
        path: list[Node] = []
        while stack:
            node, k = stack.pop()
            if k == 0:
                if state.get(id(node)) == 2:
                    continue
                if state.get(id(node)) == 1:
                    continue
                state[id(node)] = 1
                path.append(node)
            if k < len(node.inputs):
                stack.append((node, k + 1))
                parent = node.inputs[k]
                if state.get(id(parent)) == 1:
                    cycle = path[path.index(parent):] + [parent]
                    raise GraphBuildError(
                        "the graph has a cycle: "
                        + " -> ".join(f"{n.label()} ({n.created_at})" for n in reversed(cycle))
                    )
                if state.get(id(parent)) != 2:
                    stack.append((parent, 0))
            else:
                state[id(node)] = 2
                path.pop()
                found.append(node)
    return found


def _check_input_nodes(inputs: list[Node]) -> None:
    """Each input node given once, and made with no argument."""
    seen: dict[int, int] = {}
    for k, node in enumerate(inputs):
        if id(node) in seen:
            raise GraphBuildError(
                f"the same node ({node.label()}, created at {node.created_at}) is given twice "
                f"as a gModule input (positions {seen[id(node)]} and {k}); "
                f"make one input node per input"
            )
        seen[id(node)] = k
        if node.inputs:
            raise GraphBuildError(
                f"input {k} ({node.describe()}) is computed from other nodes; gModule inputs "
                f"are nodes made with no argument, e.g. nn.Identity()()"
            )


def _check_inputs_reach_outputs(inputs: list[Node], found: list[Node]) -> None:
    found_ids = {id(n) for n in found}
    for k, node in enumerate(inputs):
        if id(node) not in found_ids:
            raise GraphBuildError(
                f"input {k} ({node.describe()}) does not reach any output; "
                f"remove it from the inputs or connect it"
            )


def _check_sources_are_inputs(inputs: list[Node], found: list[Node]) -> None:
    input_ids = {id(n) for n in inputs}
    for node in found:
        if not node.inputs and id(node) not in input_ids:
            raise GraphBuildError(
                f"an output depends on {node.describe()}, which has no inputs but is not "
                f"among the gModule's inputs: the output is not reachable from the inputs; "
                f"add that node to the inputs list"
            )


def _check_splits_used(found: list[Node]) -> None:
    """Every output of a ``split(n)`` is used when one is (Lua's gmodule check)."""
    found_ids = {id(n) for n in found}
    for node in found:
        siblings = getattr(node.module, "split_siblings", None)
        if not siblings:
            continue
        unused = [s for s in siblings if id(s) not in found_ids]
        if unused:
            source = node.inputs[0]
            raise GraphBuildError(
                f"{len(unused)} of split({len(siblings)}) outputs from the node declared at "
                f"{source.debug_label} ({source.describe()}) are unused: "
                f"{', '.join(s.debug_label for s in unused)}; use every output, or pick the ones "
                f"needed with nn.SelectTable(i)(node) instead of split"
            )


def _check_no_dangling_nodes(found: list[Node]) -> None:
    """No node reads a node of the graph without reaching an output (Lua: "node declared on
    ... does not connect to gmodule output")."""
    found_ids = {id(n) for n in found}
    for node in found:
        for consumer in node.consumers:
            if id(consumer) not in found_ids:
                raise GraphBuildError(
                    f"{consumer.describe()} reads {node.describe()} but does not connect to any "
                    f"output of the gModule; make it an output or remove it"
                )


def _check_modules_used_once(found: list[Node]) -> None:
    """No module, criterion or sub-module appears twice in the graph's tree."""
    owners: dict[int, Node] = {}
    criteria: dict[int, Node] = {}
    for node in found:
        for m in node.module.modules():
            prev = owners.setdefault(id(m), node)
            if prev is not node:
                raise reuse_error(m, f"by two nodes ({prev.describe()} and {node.describe()})")
            crit = getattr(m, "criterion", None)
            if crit is not None:
                prev = criteria.setdefault(id(crit), node)
                if prev is not node:
                    raise reuse_error(crit, f"by two nodes ({prev.describe()} and "
                                            f"{node.describe()})")


class gModule(Module):  # noqa: N801 - the Lua name, kept for recognisability
    """A module built from a graph of nodes (Lua: ``nn.gModule``).

    Args:
        inputs: the input nodes (made with ``module()``), in the order of the input list.
        outputs: the output nodes.

    Example:
        >>> from nngraph_py import nn
        >>> x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
        >>> z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(20, 10)(x3)])])
        >>> mlp = nn.gModule([x1, x2, x3], [z])

    A gModule with one input takes a bare array, one with several a list; with one output it
    returns an array, with several a list. Inputs are checked when they arrive (a list of one
    array for a one-input gModule, a wrong count, None...), every node receives the kind its
    module takes (one array or a list), and ``backward`` checks ``grad_output`` against the last
    outputs; the errors name the node. ``fg`` and ``bg`` are the forward and backward graphs as
    networkx DiGraphs whose nodes are :class:`Node` objects.
    """

    integer_inputs = True  # each node checks what it receives

    def __init__(self, inputs: Sequence[Node] | Node, outputs: Sequence[Node] | Node):
        super().__init__()
        self.input_nodes = _as_node_list(inputs, "inputs")
        self.output_nodes = _as_node_list(outputs, "outputs")
        self._validate_and_order()
        self._adopt_device_and_dtype()
        self._vals: list[Any] | None = None
        self._gouts: list[Any] | None = None
        self._input_cache: list[Any] | None = None

    # ----------------------------------------------------------------------------------------
    # Construction: check once, order once
    # ----------------------------------------------------------------------------------------
    def _validate_and_order(self) -> None:
        """Check the graph (each check a named function below) and build the plan once."""
        _check_input_nodes(self.input_nodes)
        found = _collect(self.output_nodes)
        _check_inputs_reach_outputs(self.input_nodes, found)
        _check_sources_are_inputs(self.input_nodes, found)
        _check_splits_used(found)
        _check_no_dangling_nodes(found)
        _check_modules_used_once(found)
        self._build(found)

    def _build(self, found: list[Node]) -> None:
        """Order the nodes, name them, draw the networkx graphs and make the plan."""
        fg = nx.DiGraph()
        for node in found:
            fg.add_node(node)
        for node in found:
            for pos, parent in enumerate(node.inputs):
                if fg.has_edge(parent, node):
                    fg.edges[parent, node]["positions"].append(pos)
                else:
                    fg.add_edge(parent, node, positions=[pos])
        order = list(nx.lexicographical_topological_sort(fg, key=lambda n: n.id))
        self.nodes: list[Node] = order
        self.fg = fg
        self.bg = fg.reverse(copy=True)
        self._index = {id(n): i for i, n in enumerate(order)}
        self._names = self._name_nodes(order)
        for node, name in zip(order, self._names):
            node.graph_name = name
            self.fg.nodes[node]["name"] = name
            self.bg.nodes[node]["name"] = name
        self.fg.graph["inputs"] = list(self.input_nodes)
        self.fg.graph["outputs"] = list(self.output_nodes)
        self._plan: list[Step] = make_plan(order, self.input_nodes, self._index)
        # What each input takes, "array", "table" or "any" (checked on arrival, see
        # _check_inputs); a gModule used as a node takes what its inputs take.
        self._slot_kinds = [self._slot_kind(n) for n in self.input_nodes]
        self.input_kind = self._slot_kinds[0] if len(self.input_nodes) == 1 else "table"
        self._out_idx = [self._index[id(n)] for n in self.output_nodes]
        self._in_idx = [self._index[id(n)] for n in self.input_nodes]
        for node in order:
            node.module._owner = self

    # ----------------------------------------------------------------------------------------
    # Cloning (see module.clone_tree): fresh nodes wired to the copied modules
    # ----------------------------------------------------------------------------------------
    def _prepare_clone(self, memo: dict[int, Any]) -> None:
        for node in self.nodes:
            memo[id(node)] = Node.__new__(Node)

    def _finish_clone(self, original: Module, memo: dict[int, Any]) -> None:
        for old in original.nodes:
            new = memo[id(old)]
            new.module = memo[id(old.module)]
            new.inputs = [memo[id(p)] for p in old.inputs]
            new.consumers = [memo[id(c)] for c in old.consumers if id(c) in memo]
            new.table = old.table
            new.name = old.name
            new.description = old.description
            new.graph_attributes = dict(old.graph_attributes)
            new.created_at = old.created_at
            new.debug_label = old.debug_label
            new.id = next_node_id()
            new.graph_name = old.graph_name
        self._index = {id(n): i for i, n in enumerate(self.nodes)}

    @staticmethod
    def _runtime_kind(node: Node, is_input: bool) -> bool | None:
        """Whether the node must receive a list (True), one array (False), or either (None).

        Only a node reading one other node needs the check at run time: a node reading a list
        always receives a list (and a one-array module called on a list is refused when the graph
        is built); an input node receives an input checked on arrival.
        """
        if is_input or node.table:
            return None
        kind = getattr(node.module, "input_kind", "any")
        return None if kind == "any" else kind == "table"

    def _slot_kind(self, node: Node) -> str:
        """What an input node takes: its module's kind, or for a pass-through module (Identity)
        the kind its consumers agree on; ``"any"`` when they do not say or disagree."""
        kind = getattr(node.module, "input_kind", "any")
        if kind != "any":
            return kind
        wanted = {getattr(c.module, "input_kind", "any") for c in self.fg.successors(node)
                  if not c.table} - {"any"}
        return wanted.pop() if len(wanted) == 1 else "any"

    def _adopt_device_and_dtype(self) -> None:
        """Take the device and dtype of the modules that hold parameters; refuse a mixture."""
        holders = [m for m in self.modules() if m is not self and m._param_names]
        kinds = {(m._device, str(m._dtype)) for m in holders}
        if len(kinds) > 1:
            raise GraphBuildError(
                f"the modules of this graph hold parameters on several devices/dtypes "
                f"{sorted(kinds)}; convert them with .to(device, dtype) first"
            )
        if holders:
            device, dtype = holders[0]._device, holders[0]._dtype
            for m in self.modules():
                m._device, m._dtype = device, dtype

    @staticmethod
    def _name_nodes(order: list[Node]) -> list[str]:
        names: list[str] = []
        counts: dict[str, int] = {}
        used: dict[str, str] = {}
        for node in order:
            if node.name is not None:
                if node.name in used:
                    raise GraphBuildError(
                        f"two nodes are annotated {node.name!r} ({used[node.name]} and "
                        f"{node.created_at}); names must be unique within a gModule"
                    )
                used[node.name] = node.created_at
        for node in order:
            if node.name is not None:
                names.append(node.name)
                continue
            kind = type(node.module).__name__
            k = counts.get(kind, 0) + 1
            while f"{kind}{k}" in used:
                k += 1
            counts[kind] = k
            names.append(f"{kind}{k}")
            used[names[-1]] = node.created_at
        return names

    def node_name(self, node: Node) -> str:
        """The name of ``node`` in this graph: its annotation, else ``<ModuleType><index>``."""
        return self._names[self._index[id(node)]]

    # ----------------------------------------------------------------------------------------
    # Module tree
    # ----------------------------------------------------------------------------------------
    def children(self) -> list[Module]:
        return [n.module for n in self.nodes]

    def named_children(self) -> list[tuple[str, Module]]:
        return [(name, n.module) for name, n in zip(self._names, self.nodes)]

    def _replace_child(self, index: int, old: Module, new: Module) -> None:
        node = self.nodes[index]
        if new._node is not None or new._owner is not None:
            raise reuse_error(new, "elsewhere; replace() needs a new module")
        node.module = new
        new._node, new._owner = node, self
        old._node = old._owner = None
        # The plan is rebuilt from the nodes (a fused group of the old module is undone).
        self._plan = make_plan(self.nodes, self.input_nodes, self._index)
        self._slot_kinds = [self._slot_kind(n) for n in self.input_nodes]
        self.input_kind = self._slot_kinds[0] if len(self.input_nodes) == 1 else "table"

    @property
    def n_inputs(self) -> int:
        """Number of inputs."""
        return len(self.input_nodes)

    @property
    def n_outputs(self) -> int:
        """Number of outputs."""
        return len(self.output_nodes)

    # ----------------------------------------------------------------------------------------
    # Forward and backward
    # ----------------------------------------------------------------------------------------
    def _split_input(self, input: Any) -> list[Any]:
        n = len(self.input_nodes)
        if n == 1:
            return [input]
        if not isinstance(input, (list, tuple)) or len(input) != n:
            raise self._count_error(input)
        return list(input)

    def _count_error(self, input: Any) -> InputError:
        n = len(self.input_nodes)
        got = (f"a list of {len(input)} {shape_str(input)}" if isinstance(input, (list, tuple))
               else shape_str(input))
        names = ", ".join(self._input_names())
        return InputError(f"{self.describe()}: this gModule has {n} inputs ({names}): pass a list "
                          f"of {n} arrays, got {got}")

    def _accept_input(self, value: Any, what: str = "input") -> Any:
        if what == "input":
            self._check_inputs(value)
        return super()._accept_input(value, what)

    def _check_inputs(self, value: Any) -> None:
        """Refuse what cannot be this gModule's input, naming the input node (before any node
        runs)."""
        if len(self.input_nodes) == 1:
            error = self._slot_error(0, value)
        elif not isinstance(value, (list, tuple)) or len(value) != len(self.input_nodes):
            error = self._count_error(value)
        else:
            error = next((e for e in (self._slot_error(k, v) for k, v in enumerate(value)) if e),
                         None)
        if error is not None:
            raise error

    def _slot_error(self, k: int, value: Any) -> InputError | None:
        """The error for ``value`` given to input ``k``, or None when it is of the right kind."""
        kind, node = self._slot_kinds[k], self.input_nodes[k]
        if len(self.input_nodes) == 1:
            where = f"this gModule has one input, {node.describe()}, which"
        else:
            where = f"input[{k}] goes to {node.describe()}, which"
        is_list = isinstance(value, (list, tuple))
        if kind == "array" and is_list:
            hint = ": call forward(x), not forward([x])" if len(value) == 1 else ""
            return InputError(f"{self.describe()}: {where} takes one array, not a list of "
                              f"{len(value)} {shape_str(value)}{hint}")
        if kind == "table" and not is_list:
            return InputError(f"{self.describe()}: {where} takes a list of arrays, got "
                              f"{'one array ' if backend.is_array(value) else ''}"
                              f"{shape_str(value)}")
        if not (is_list or backend.is_array(value) or isinstance(value, numbers.Real)):
            return InputError(f"{self.describe()}: {where} takes "
                              f"{'a list of arrays' if kind == 'table' else 'an array'}, got "
                              f"{type(value).__name__}")
        return None

    def _kind_error(self, value: Any) -> InputError:
        # Used when this gModule is a node of another graph and receives the wrong kind.
        if len(self.input_nodes) == 1:
            return self._slot_error(0, value) or super()._kind_error(value)
        return self._count_error(value)

    def _input_names(self) -> list[str]:
        return [self._names[i] for i in self._in_idx]

    def _gather(self, vals: list[Any], parents: tuple, table: bool) -> Any:
        if table:
            return [vals[p] for p in parents]
        return vals[parents[0]]

    def update_output(self, input: Any) -> Any:
        inputs = self._split_input(input)
        vals: list[Any] = [None] * len(self._plan)
        for i, (module, parents, table, slot, want_list) in enumerate(self._plan):
            if slot >= 0:
                x = inputs[slot]
            elif table:
                x = [vals[p] for p in parents]
            else:
                x = vals[parents[0]]
                # The kind check Module.forward does, at the cost of a type test per node.
                if want_list is not None and isinstance(x, (list, tuple)) is not want_list:
                    raise self._node_error(i, "forward", self.nodes[i].module._kind_error(x), x)
            if not module.integer_inputs and (type(x) is not _NDARRAY or x.dtype.kind != "f"):
                refuse_integers(self.nodes[i].module, x)  # the dtype policy (Module docstring)
            try:
                y = module.update_output(x)
            except Exception as exc:  # noqa: BLE001 - re-raised with the node named
                raise self._node_error(i, "forward", exc, x) from exc
            if type(y) is not _NDARRAY and isinstance(y, _SCALARS):  # numpy made a scalar
                y = module.output = nest.as_array(y)
            vals[i] = y
        self._vals = vals
        self._input_cache = inputs
        outs = [vals[i] for i in self._out_idx]
        self.output = outs[0] if len(outs) == 1 else outs
        return self.output

    def _node_input(self, i: int) -> Any:
        step = self._plan[i]
        assert self._vals is not None and self._input_cache is not None  # after a forward
        if step.slot >= 0:
            return self._input_cache[step.slot]
        return self._gather(self._vals, step.parents, step.table)

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        if self._vals is None:
            raise GraphError("backward called before forward: call forward(input) first")
        n_out = len(self._out_idx)
        gouts: list[Any] = [None] * len(self._plan)
        owned = [False] * len(self._plan)
        grads = [grad_output] if n_out == 1 else self._split_grad_output(grad_output)
        for i, g in zip(self._out_idx, grads):
            self._accumulate(gouts, owned, i, g)
        grad_inputs: list[Any] = [None] * len(self.input_nodes)
        for i in range(len(self._plan) - 1, -1, -1):
            module, parents, table, slot, _ = self._plan[i]
            g = gouts[i]
            if g is None:
                g = gouts[i] = nest.zeros_like(self._vals[i])
            elif type(g) is list:
                g = gouts[i] = nest.fill_none(g, self._vals[i])
            x = self._node_input(i)
            try:
                gi = module.update_grad_input(x, g)
            except Exception as exc:  # noqa: BLE001
                raise self._node_error(i, "backward", exc, x, g) from exc
            if slot >= 0:
                grad_inputs[slot] = nest.zeros_like(x) if gi is None else nest.as_array(gi)
            elif table:
                for j, p in enumerate(parents):
                    self._accumulate(gouts, owned, p, gi[j])
            else:
                self._accumulate(gouts, owned, parents[0], gi)
        self._gouts = gouts
        self.grad_input = grad_inputs[0] if len(grad_inputs) == 1 else grad_inputs
        return self.grad_input

    def _split_grad_output(self, grad_output: Any) -> list[Any]:
        n = len(self._out_idx)
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != n:
            got = (f"a list of {len(grad_output)} {shape_str(grad_output)}"
                   if isinstance(grad_output, (list, tuple)) else shape_str(grad_output))
            names = ", ".join(self._names[i] for i in self._out_idx)
            raise InputError(f"{self.describe()}: this gModule has {n} outputs ({names}): "
                             f"grad_output must be a list of {n} (None for zeros), got {got}")
        return list(grad_output)

    def _check_grad_output(self, grad_output: Any) -> Any:
        """Compare each gradient with its output node's last output, naming the node."""
        if self._vals is None:
            return grad_output  # update_grad_input says to call forward first
        n = len(self._out_idx)
        grads = [grad_output] if n == 1 else self._split_grad_output(grad_output)
        for k, (i, g) in enumerate(zip(self._out_idx, grads)):
            problem = grad_output_mismatch(self._vals[i], g,
                                           "grad_output" if n == 1 else f"grad_output[{k}]",
                                           f"output {self.nodes[i].describe()} in the last "
                                           f"forward")
            if problem is not None:
                raise problem[0](f"{self.describe()}: {problem[1]}")
        return grad_output

    @staticmethod
    def _accumulate(gouts: list, owned: list, i: int, g: Any) -> None:
        """Add ``g`` to node ``i``'s gradient (fan-out); ``None`` is zeros.

        The first gradient is kept as given (no copy); the second sum makes a new value that this
        graph owns, and later ones are added into it (0-d values and lists included).
        """
        if g is None:
            return
        if isinstance(g, _SCALARS):  # NumPy turned a 0-d gradient into a scalar
            g = numpy.asarray(g)
        cur = gouts[i]
        if cur is None:
            gouts[i] = g
        elif owned[i]:
            gouts[i] = nest.add_into(cur, g)
        else:
            gouts[i] = nest.add(cur, g)
            owned[i] = True

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        if self._gouts is None:
            raise GraphError("acc_grad_parameters called before update_grad_input")
        for i in range(len(self._plan) - 1, -1, -1):
            module = self._plan[i].module
            x = self._node_input(i)
            try:
                module.acc_grad_parameters(x, self._gouts[i], scale)
            except Exception as exc:  # noqa: BLE001
                raise self._node_error(i, "backward", exc, x, self._gouts[i]) from exc

    # ----------------------------------------------------------------------------------------
    # Errors
    # ----------------------------------------------------------------------------------------
    def _node_error(self, i: int, phase: str, exc: Exception, x: Any, g: Any = None) -> GraphError:
        node = self.nodes[i]
        if isinstance(exc, GraphError):
            msg = f"{exc}\n  inside {node.describe()}"
            err = GraphError(msg, node=exc.node, phase=exc.phase, cause=exc.cause)
        else:
            detail = str(exc) if isinstance(exc, NNGraphError) else f"{type(exc).__name__}: {exc}"
            prefix = node.describe() + ": "
            if detail.startswith(prefix):  # the module already named itself by its node
                detail = detail[len(prefix):]
            msg = (f"{phase} failed at {node.describe()}: {detail}\n"
                   f"  input shape(s): {shape_str(x)}")
            if g is not None:
                msg += f"; grad_output shape(s): {shape_str(g)}"
            err = GraphError(msg, node=node, phase=phase, cause=exc)
        if _debug["on"] and not isinstance(exc, GraphError):
            path = self._write_debug_picture(node)
            err.args = (f"{err.args[0]}\n  graph with the failing node in red: {path}",)
        return err

    def describe(self) -> str:
        """The node holding this gModule, or ``nn.gModule([inputs] -> [outputs])`` by node names."""
        if self._node is not None:
            return self._node.describe()
        outs = ", ".join(self._names[i] for i in self._out_idx)
        return f"nn.gModule([{', '.join(self._input_names())}] -> [{outs}])"

    def _write_debug_picture(self, node: Node) -> str:
        from .dot import save_dot

        directory = _debug["dir"] or tempfile.gettempdir()
        base = os.path.join(directory, f"nngraph_{self.node_name(node)}")
        return save_dot(self, base, highlight=node)

    # ----------------------------------------------------------------------------------------
    # State
    # ----------------------------------------------------------------------------------------
    _state_names = ("_vals", "_gouts", "_input_cache")

    def _apply_extra(self, convert: Any) -> None:
        for attr in ("_vals", "_gouts", "_input_cache"):
            value = getattr(self, attr)
            if value is not None:
                setattr(self, attr, [nest.map(convert, v) for v in value])

    def __repr__(self) -> str:
        ins = ", ".join(self._input_names())
        outs = ", ".join(self._names[i] for i in self._out_idx)
        lines = ["nn.gModule {", f"  [{ins}] -> [{outs}]"]
        for name, node in zip(self._names, self.nodes):
            parents = [self.node_name(p) for p in node.inputs]
            src = ("(" + ", ".join(parents) + ")") if node.table else (parents[0] if parents else "input")
            body = repr(node.module).replace("\n", "\n  ")
            lines.append(f"  ({name}) {body} <- {src}")
        lines.append("}")
        return "\n".join(lines)


