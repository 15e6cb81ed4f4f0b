"""Graph nodes: what ``module(node)`` returns (Lua: nngraph's ``nngraph.Node``).

A node holds the module it applies and the nodes it reads. It is immutable once made; gModule
orders the nodes once and runs them.
"""
from __future__ import annotations

import itertools
import os
import sys
from typing import Any

from ..errors import ArgumentError, GraphBuildError, InputError

__all__ = ["Node", "make_node", "next_node_id"]

_ids = itertools.count()


def next_node_id() -> int:
    """A new node number (nodes are ordered by creation among equals)."""
    return next(_ids)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller_location() -> str:
    """``file:line`` of the first frame outside this package (where the user built the node)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep):
            return f"{_short_path(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def _short_path(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


class Node:
    """A node of a graph: a module applied to the outputs of other nodes.

    Attributes:
        module: the module this node applies.
        inputs: the nodes it reads, in order (empty for an input node).
        table: True when the module receives a list (it was called on a list of nodes).
        name: the annotation (None until :meth:`annotate`).
        graph_attributes: Graphviz attributes for pictures (``{"color": "red"}``).
        created_at: ``file:line`` where the node was made, for error messages.
        debug_label: Lua's ``_debugLabel``: ``created_at`` for a node made by a module call,
            ``<source's label>-<i>`` for output ``i`` (0-based) of a ``split``; the pictures'
            tooltip and the split errors use it.
        consumers: the nodes made from this one (Lua's ``reverseMap``), for the gModule check
            that every node reading a used node reaches an output.
    """

    __slots__ = ("module", "inputs", "table", "name", "graph_attributes", "description",
                 "created_at", "debug_label", "consumers", "id", "graph_name", "__weakref__")

    def __init__(self, module: Any, inputs: list["Node"], table: bool):
        self.module = module
        self.inputs = inputs
        self.table = table
        self.name: str | None = None
        self.description: str | None = None
        self.graph_attributes: dict[str, str] = {}
        self.created_at = _caller_location()
        self.debug_label = self.created_at
        self.consumers: list[Node] = []
        self.id = next(_ids)
        self.graph_name: str | None = None  # the name a gModule gave it (``Linear1``)

    def annotate(self, name: str | None = None, graph_attributes: dict | None = None,
                 description: str | None = None) -> "Node":
        """Name the node and set its drawing attributes (Lua: ``node:annotate{name=...}``).

        Args:
            name: the node's name, used in errors, parameter names and pictures.
            graph_attributes: Graphviz node attributes, e.g. ``{"style": "filled"}``.
            description: a longer text shown in pictures.
        Returns:
            The node itself, so ``nn.Linear(3, 4)(x).annotate(name="proj")`` chains.
        """
        if name is not None:
            if not isinstance(name, str) or not name or "." in name:
                raise ArgumentError(f"a node name must be a non-empty string without '.', got {name!r}")
            self.name = name
        if graph_attributes:
            self.graph_attributes = {**self.graph_attributes, **graph_attributes}
        if description is not None:
            self.description = description
        return self

    def split(self, n: int) -> list["Node"]:
        """``n`` nodes selecting the outputs of a node whose module returns a list.

        Each is a ``SelectTable(i)`` node (Lua: ``node:split(n)``), labelled
        ``<this node's debug label>-<i>``. As in Lua, the list must have exactly ``n`` elements
        when the graph runs ("split(2) cannot split 3 outputs"), and a gModule refuses a graph
        that uses some of the ``n`` outputs but not all.
        """
        # The one upward reference of the graph layer (nodes are made before nn is complete).
        from ..nn.table import SelectTable

        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ArgumentError(f"split expects a positive number of outputs, got {n!r}")
        nodes = []
        for i in range(n):
            node = SelectTable(i, split_count=n)(self)
            node.created_at = self.created_at if node.created_at == "<unknown>" else node.created_at
            node.debug_label = f"{self.debug_label}-{i}"
            nodes.append(node)
        for node in nodes:
            node.module.split_siblings = nodes
        return nodes

    @property
    def is_input(self) -> bool:
        """Whether this node reads nothing (it receives one of the gModule's inputs)."""
        return not self.inputs

    def label(self) -> str:
        """The name shown for this node: its annotation, else its module's type."""
        return self.name or type(self.module).__name__

    def describe(self) -> str:
        """``node 'name' (nn.Linear(20 -> 10), created at file.py:12)`` for error messages."""
        module = repr(self.module).splitlines()[0].removesuffix(" {")
        name = self.name or self.graph_name
        who = f"node '{name}'" if name else "node"
        return f"{who} ({module}, created at {self.created_at})"

    def __repr__(self) -> str:
        return f"<Node {self.label()} #{self.id} at {self.created_at}>"


def _reject(value: Any, position: str) -> InputError:
    if hasattr(value, "update_output") and hasattr(value, "_node"):  # a module (or criterion)
        first = repr(value).splitlines()[0]
        return InputError(
            f"{position} is a module ({first}), not a node: did you forget its second call? "
            f"Write e.g. nn.Identity()() for an input node, or module(node) to apply it"
        )
    if value is None:
        return InputError(f"{position} is None, not a node")
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return InputError(
            f"{position} is an array: calling a module on nodes builds a graph; "
            f"to compute on an array, use module.forward(array)"
        )
    return InputError(f"{position} is a {type(value).__name__}, not a node")


def _reuse_error(module: Any, where: str) -> GraphBuildError:
    first = repr(module).splitlines()[0].removesuffix(" {")
    return GraphBuildError(
        f"{first} is already used {where}; a module appears once in a graph or container tree: "
        f"use module.clone() for a copy, or module.clone('weight', 'bias', 'grad_weight', "
        f"'grad_bias') to share its parameters"
    )


def make_node(module: Any, args: tuple, criterion: Any = None) -> Node:
    """The node for ``module(*args)``: an input node, a one-input node or a table node.

    ``criterion`` is the criterion a ``ModuleFromCriterion`` wraps (``crit([a, b])``): a
    criterion, like a module, makes one node.
    """
    if module._node is not None:
        raise _reuse_error(module, f"by {module._node.describe()}")
    if getattr(module, "_owner", None) is not None:
        raise _reuse_error(module, f"as a member of {module._owner.describe()}")
    if criterion is None:
        criterion = getattr(module, "criterion", None)  # a ModuleFromCriterion
    if criterion is not None and getattr(criterion, "_node", None) is not None:
        raise _reuse_error(criterion, f"by {criterion._node.describe()}")
    if len(args) == 0:
        node = Node(module, [], table=False)
    elif len(args) > 1:
        raise InputError(
            f"{repr(module).splitlines()[0]} was called with {len(args)} arguments; "
            f"pass several nodes as one list: module([a, b])"
        )
    elif isinstance(args[0], Node):
        node = Node(module, [args[0]], table=False)
    elif isinstance(args[0], (list, tuple)):
        items = list(args[0])
        if not items:
            raise InputError(f"{repr(module).splitlines()[0]} was called on an empty list of nodes")
        for i, item in enumerate(items):
            if not isinstance(item, Node):
                raise _reject(item, f"element {i} of the list given to {type(module).__name__}")
        if getattr(module, "input_kind", "any") == "array":
            raise GraphBuildError(
                f"{repr(module).splitlines()[0].removesuffix(' {')} takes one array but was called "
                f"on a list of {len(items)} nodes ({', '.join(n.label() for n in items)}); call it "
                f"on one node, or combine them first (nn.JoinTable, nn.CAddTable, ...)"
            )
        node = Node(module, items, table=True)
    else:
        raise _reject(args[0], f"the argument of {type(module).__name__}(...)")
    module._node = node
    if criterion is not None:
        criterion._node = node
    for parent in node.inputs:
        if not any(c is node for c in parent.consumers):
            parent.consumers.append(node)
    return node
