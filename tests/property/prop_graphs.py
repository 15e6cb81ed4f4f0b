"""Random graph descriptions (a Hypothesis strategy) and how to build them with nngraph_py.

A :class:`GraphDesc` is plain data: a list of steps, each creating values (node outputs) whose
types are known (``prop_types``). The steps are

* ``input``: a gModule input node (``nn.Identity()()``) of a type; label inputs (integer class
  indices) are added when a classification criterion is drawn;
* ``apply``: a module expression applied to one value, or to a list of values (a table node);
* ``split``: ``node.split(n)`` of a list value into its ``n`` elements;
* ``share``: a clone of an earlier step's module sharing its parameters and gradients
  (``clone("weight", "bias", "grad_weight", "grad_bias")``) applied to another value.

Module expressions nest: a registry leaf, ``Sequential`` / ``ConcatTable`` / ``ParallelTable``
of expressions, a whole nested gModule (its own description), or a ``clone()`` of an expression.
Every value no step consumes is an output, so no node dangles and every split output is used;
some consumed values are outputs as well (a loss that is an output and feeds other nodes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from nngraph_py import backend, nn
from prop_registry import REGISTRY, is_arr
from prop_types import Arr, Labels, Lst, Type, arrays_of, same_structure

__all__ = ["Leaf", "Composite", "Clone", "Step", "GraphDesc", "graphs", "build", "make_inputs",
           "make_grad_outputs", "LIMITS"]

#: Size limits of generated graphs (the long profile raises none of them: more examples instead).
LIMITS = {"max_steps": 7, "max_depth": 2, "max_rank": 3, "max_dim": 4}


@dataclass(frozen=True)
class Leaf:
    name: str
    args: Any


@dataclass(frozen=True)
class Composite:
    """``Sequential``, ``ConcatTable``, ``ParallelTable`` of member expressions, or ``gModule``
    of a nested description (``graph``)."""

    name: str
    members: tuple = ()
    graph: Any = None
    args: tuple = ()


@dataclass(frozen=True)
class Clone:
    """``build(expr).clone()``: an independent deep copy (weights copied, not shared)."""

    expr: Any


@dataclass
class Step:
    kind: str                 # "input", "apply", "split", "share"
    type: Any = None          # input: the input's type
    expr: Any = None          # apply: the module expression
    srcs: tuple = ()          # apply/split/share: the values read
    table: bool = False       # apply: the module receives the list of srcs
    n: int = 0                # split: how many outputs
    of: int = -1              # share: the index of the step whose module is cloned


@dataclass
class GraphDesc:
    steps: list = field(default_factory=list)
    types: list = field(default_factory=list)      # the type of every value, in creation order
    outputs: list = field(default_factory=list)    # value indices
    n_steps: int = 0                               # steps of this graph and nested ones

    @property
    def output_type(self) -> Type:
        outs = [self.types[i] for i in self.outputs]
        return outs[0] if len(outs) == 1 else Lst(tuple(outs))

    @property
    def input_types(self) -> list:
        return [s.type for s in self.steps if s.kind == "input"]

    def describe(self, indent: str = "") -> str:
        """A readable listing, printed by Hypothesis with a failing example."""
        lines, v = [], 0
        for k, s in enumerate(self.steps):
            if s.kind == "input":
                what = f"input {s.type}"
            elif s.kind == "apply":
                what = f"{_expr_str(s.expr, indent)}({'[' if s.table else ''}" \
                       f"{', '.join(f'v{i}' for i in s.srcs)}{']' if s.table else ''})"
            elif s.kind == "split":
                what = f"v{s.srcs[0]}.split({s.n})"
            else:
                what = f"shared clone of step {s.of}'s module (v{s.srcs[0]})"
            n_vals = s.n if s.kind == "split" else 1
            outs = ", ".join(f"v{v + j}" for j in range(n_vals))
            lines.append(f"{indent}{k}: {outs} = {what}")
            v += n_vals
        lines.append(f"{indent}outputs: {', '.join(f'v{i}' for i in self.outputs)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "GraphDesc(\n" + self.describe("  ") + "\n)"


def _expr_str(e: Any, indent: str) -> str:
    if isinstance(e, Leaf):
        return f"{e.name}{e.args!r}"
    if isinstance(e, Clone):
        return f"clone({_expr_str(e.expr, indent)})"
    if e.name == "gModule":
        return "gModule[\n" + e.graph.describe(indent + "    ") + f"\n{indent}  ]"
    return f"{e.name}(" + ", ".join(_expr_str(m, indent) for m in e.members) + ")"


def expr_has_params(e: Any) -> bool:
    if isinstance(e, Leaf):
        return "params" in REGISTRY[e.name].tags
    if isinstance(e, Clone):
        return expr_has_params(e.expr)
    if e.name == "gModule":
        return any(s.kind in ("apply", "share") and (s.kind == "share" or expr_has_params(s.expr))
                   for s in e.graph.steps)
    return any(expr_has_params(m) for m in e.members)


# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------
def _shape(draw: Any, min_rank: int = 0, max_rank: int | None = None) -> tuple:
    max_rank = LIMITS["max_rank"] if max_rank is None else max_rank
    rank = draw(st.integers(min_rank, max_rank))
    return tuple(draw(st.integers(1, LIMITS["max_dim"])) for _ in range(rank))


def _input_type(draw: Any) -> Type:
    kind = draw(st.sampled_from(("array", "array", "array", "list", "nested")))
    if kind == "array":
        return Arr(_shape(draw))
    if kind == "list":
        shape = _shape(draw)
        items = [Arr(shape) if draw(st.integers(0, 3)) else Arr(_shape(draw))
                 for _ in range(draw(st.integers(2, 3)))]
        return Lst(tuple(items))
    shape = _shape(draw, 1, 2)
    return Lst((Arr(shape), Lst((Arr(shape), Arr(shape)))))  # nngraph's {x, {h, c}}


def _leaf(draw: Any, t: Type, only: set | None = None) -> tuple[Any, Type] | None:
    names = [n for n, e in REGISTRY.items()
             if "composite" not in e.tags and (only is None or only & e.tags or n in only)
             and e.accepts(t)]
    if not names:
        return None
    weights = [REGISTRY[n].weight for n in names]
    names = [n for n, w in zip(names, weights) for _ in range(w)]
    name = draw(st.sampled_from(sorted(names)))
    entry = REGISTRY[name]
    args = entry.draw_args(draw, t)
    return Leaf(name, args), entry.out_type(args, t)


def draw_expr(draw: Any, t: Type, depth: int) -> tuple[Any, Type] | None:
    """A module expression accepting type ``t`` and its output type, or None."""
    kinds = ["leaf"] * 6
    if depth < LIMITS["max_depth"]:
        kinds += ["sequential", "sequential", "concat", "gmodule", "gmodule", "clone",
                  "clone_gmodule"]
        if isinstance(t, Lst) and not any(isinstance(i, Labels) for i in t.items):
            kinds += ["parallel", "parallel"]
        if isinstance(t, Arr) and t.ndim >= 1:
            kinds += ["parallel_dim", "concat_dim"]
    kind = draw(st.sampled_from(kinds))
    if kind == "sequential":
        members, cur = [], t
        for _ in range(draw(st.integers(1, 3))):
            got = draw_expr(draw, cur, depth + 1)
            if got is None:
                break
            members.append(got[0])
            cur = got[1]
        if not members:
            return None
        return Composite("Sequential", tuple(members)), cur
    if kind == "concat":
        got = [draw_expr(draw, t, depth + 1) for _ in range(draw(st.integers(1, 3)))]
        got = [g for g in got if g is not None]
        if not got:
            return None
        return Composite("ConcatTable", tuple(g[0] for g in got)), Lst(tuple(g[1] for g in got))
    if kind == "parallel":
        got = [draw_expr(draw, item, depth + 1) for item in t.items]
        if any(g is None for g in got):
            return None
        return Composite("ParallelTable", tuple(g[0] for g in got)), Lst(tuple(g[1] for g in got))
    if kind in ("parallel_dim", "concat_dim"):
        # nn.Parallel / nn.Concat: copies of one member expression, so the outputs can be joined
        if kind == "parallel_dim":
            in_dim = draw(st.integers(-t.ndim, t.ndim - 1))
            axis = in_dim % t.ndim
            n, member_t = t.shape[axis], Arr(t.shape[:axis] + t.shape[axis + 1:])
        else:
            n, member_t = draw(st.integers(1, 3)), t
        got = draw_expr(draw, member_t, depth + 1)
        if got is None or not isinstance(got[1], Arr) or got[1].ndim == 0:
            return None
        out = got[1]
        out_dim = draw(st.integers(-out.ndim, out.ndim - 1))
        axis = out_dim % out.ndim
        joined = Arr(out.shape[:axis] + (out.shape[axis] * n,) + out.shape[axis + 1:])
        if kind == "parallel_dim":
            return Composite("Parallel", (got[0],) * n, args=(in_dim, out_dim)), joined
        return Composite("Concat", (got[0],) * n, args=(out_dim,)), joined
    if kind in ("gmodule", "clone_gmodule"):
        if isinstance(t, Lst) and len(t) >= 2 and draw(st.booleans()):
            inputs = list(t.items)  # a gModule of len(t) inputs, given the list
        else:
            inputs = [t]
        if any(isinstance(i, Labels) for i in inputs):
            return None
        sub = draw_graph(draw, inputs, depth + 1)
        expr = Composite("gModule", graph=sub)
        return (Clone(expr) if kind == "clone_gmodule" else expr), sub.output_type
    if kind == "clone":
        got = draw_expr(draw, t, depth + 1)
        return None if got is None else (Clone(got[0]), got[1])
    return _leaf(draw, t)


class _Builder:
    """The state of one graph description while it is drawn."""

    def __init__(self, draw: Any, depth: int):
        self.draw, self.depth = draw, depth
        self.desc = GraphDesc()
        self.consumed: list[int] = []

    def add(self, step: Step, out_types: list) -> list[int]:
        self.desc.steps.append(step)
        first = len(self.desc.types)
        self.desc.types.extend(out_types)
        self.consumed.extend(step.srcs)
        self.desc.n_steps += 1
        return list(range(first, len(self.desc.types)))

    def pick(self, pred: Any) -> int | None:
        candidates = [i for i, t in enumerate(self.desc.types)
                      if not isinstance(t, Labels) and pred(t)]
        if not candidates:
            return None
        return self.draw(st.sampled_from(candidates))

    # Steps -------------------------------------------------------------------------------------
    def unary(self) -> None:
        v = self.pick(lambda t: True)
        got = draw_expr(self.draw, self.desc.types[v], self.depth)
        if got is not None:
            self.add(Step("apply", expr=got[0], srcs=(v,)), [got[1]])
            self._count(got[0])

    def table(self) -> None:
        draw = self.draw
        first = self.pick(lambda t: True)
        srcs = [first]
        for _ in range(draw(st.integers(0, 2))):
            t0 = self.desc.types[first]
            kind = draw(st.integers(0, 5))
            if kind == 0:  # [x, positive]: CDivTable's denominator
                den = self.pick(lambda t: isinstance(t, Arr) and t.positive)
                if den is not None:
                    shape = self.desc.types[den].shape
                    srcs = [self.pick(lambda t: isinstance(t, Arr) and t.shape == shape), den]
                    break
                v = first
            elif kind > 1:  # mostly same-shape arrays: CAddTable & co apply
                v = self.pick(lambda t: same_structure(t, t0))
            else:
                v = self.pick(lambda t: True)
            srcs.append(v)
        in_type = Lst(tuple(self.desc.types[s] for s in srcs))
        if REGISTRY["CDivTable"].accepts(in_type) and draw(st.booleans()):
            got = Leaf("CDivTable", ()), Arr(in_type.items[0].shape)  # else rarely drawn
        else:
            got = draw_expr(draw, in_type, self.depth)
        if got is not None:
            self.add(Step("apply", expr=got[0], srcs=tuple(srcs), table=True), [got[1]])
            self._count(got[0])

    def fanout(self) -> None:
        # Three or more consumers of one value (0-d values included), each a one-array module.
        v = self.pick(is_arr)
        if v is None:
            return
        for _ in range(self.draw(st.integers(3, 4))):
            got = _leaf(self.draw, self.desc.types[v], only={"elementwise"})
            self.add(Step("apply", expr=got[0], srcs=(v,)), [got[1]])

    def split(self) -> None:
        v = self.pick(lambda t: isinstance(t, Lst))
        if v is None:  # make a list first
            v = self.pick(lambda t: is_arr(t) and t.ndim >= 1)
            if v is None:
                return
            t = self.desc.types[v]
            args = REGISTRY["SplitTable"].draw_args(self.draw, t)
            [v] = self.add(Step("apply", expr=Leaf("SplitTable", args), srcs=(v,)),
                           [REGISTRY["SplitTable"].out_type(args, t)])
        t = self.desc.types[v]
        self.add(Step("split", srcs=(v,), n=len(t)), list(t.items))

    def share(self) -> None:
        shareable = [k for k, s in enumerate(self.desc.steps)
                     if s.kind in ("apply", "share") and not s.table
                     and (s.kind == "share" or expr_has_params(s.expr))]
        if not shareable:  # make one: a Linear or CMul to share
            v = self.pick(lambda t: is_arr(t) and t.ndim in (1, 2))
            if v is None:
                return
            got = _leaf(self.draw, self.desc.types[v], only={"Linear", "CMul"})
            self.add(Step("apply", expr=got[0], srcs=(v,)), [got[1]])
            shareable = [len(self.desc.steps) - 1]
        k = self.draw(st.sampled_from(shareable))
        src_t = self.desc.types[self.desc.steps[k].srcs[0]]
        v = self.pick(lambda t: same_structure(t, src_t))
        out_t = self.desc.types[self._first_value_of(k)]
        self.add(Step("share", srcs=(v,), of=k), [out_t])

    def labels(self) -> None:
        # A classification criterion on scores and a new integer-label input of the gModule.
        v = self.pick(lambda t: is_arr(t) and t.ndim in (1, 2))
        if v is None:
            return
        scores = self.desc.types[v]
        lab_t = Labels(scores.shape[:-1], scores.shape[-1])
        [lab] = self.add(Step("input", type=lab_t), [lab_t])
        in_t = Lst((scores, lab_t))
        got = _leaf(self.draw, in_t, only={"labels"})
        self.add(Step("apply", expr=got[0], srcs=(v, lab), table=True), [got[1]])

    # Helpers ----------------------------------------------------------------------------------
    def _first_value_of(self, k: int) -> int:
        return sum(s.n if s.kind == "split" else 1 for s in self.desc.steps[:k])

    def _count(self, e: Any) -> None:
        if isinstance(e, Composite) and e.name == "gModule":
            self.desc.n_steps += e.graph.n_steps
        elif isinstance(e, Composite):
            for m in e.members:
                self._count(m)
        elif isinstance(e, Clone):
            self._count(e.expr)

    def finish(self) -> GraphDesc:
        consumed = set(self.consumed)
        outputs = [i for i, t in enumerate(self.desc.types) if i not in consumed]
        extra = [i for i in range(len(self.desc.types))
                 if i in consumed and not isinstance(self.desc.types[i], Labels)]
        if extra and self.draw(st.integers(0, 3)) == 0:
            outputs.append(self.draw(st.sampled_from(extra)))
        self.desc.outputs = sorted(set(outputs))
        return self.desc


def draw_graph(draw: Any, input_types: list, depth: int = 0) -> GraphDesc:
    """A graph description with inputs of ``input_types``."""
    b = _Builder(draw, depth)
    for t in input_types:
        b.add(Step("input", type=t), [t])
    steps = ["unary"] * 4 + ["table"] * 3 + ["fanout", "split", "share"]
    if depth == 0:
        steps += ["labels"]
    max_steps = LIMITS["max_steps"] if depth == 0 else 3
    for _ in range(draw(st.integers(1, max_steps))):
        getattr(b, draw(st.sampled_from(steps)))()
    return b.finish()


@st.composite
def graphs(draw: Any) -> GraphDesc:
    """A random top-level graph description (the property suite's strategy)."""
    inputs = [_input_type(draw) for _ in range(draw(st.integers(1, 3)))]
    return draw_graph(draw, inputs)


# ------------------------------------------------------------------------------------------------
# Building with nngraph_py
# ------------------------------------------------------------------------------------------------
def build_expr(e: Any) -> Any:
    """Our module for an expression; leaves are tagged with their registry name and arguments
    (the reference reads them: a clone keeps the tags)."""
    if isinstance(e, Leaf):
        m = REGISTRY[e.name].make(e.args)
        m._prop_name, m._prop_args = e.name, e.args
        return m
    if isinstance(e, Clone):
        return build_expr(e.expr).clone()
    if e.name == "gModule":
        m = build(e.graph)
    else:
        m = REGISTRY[e.name].make([build_expr(x) for x in e.members], e.args)
    m._prop_name, m._prop_args = e.name, e.args
    return m


def build(desc: GraphDesc) -> Any:
    """The gModule of a description (modules in the default dtype; convert it afterwards)."""
    values: list[Any] = []
    inputs: list[Any] = []
    modules: dict[int, Any] = {}
    for k, s in enumerate(desc.steps):
        if s.kind == "input":
            node = nn.Identity()()
            inputs.append(node)
            values.append(node)
        elif s.kind == "apply":
            m = build_expr(s.expr)
            modules[k] = m
            arg = [values[i] for i in s.srcs] if s.table else values[s.srcs[0]]
            values.append(m(arg))
        elif s.kind == "split":
            values.extend(values[s.srcs[0]].split(s.n))
        else:
            m = modules[s.of].clone("weight", "bias", "grad_weight", "grad_bias")
            modules[k] = m
            values.append(m(values[s.srcs[0]]))
    return nn.gModule(inputs, [values[i] for i in desc.outputs])


def _host_value(t: Type, rng: np.random.Generator) -> Any:
    if isinstance(t, Lst):
        return [_host_value(i, rng) for i in t.items]
    if isinstance(t, Labels):
        return rng.integers(0, t.classes, size=t.shape).astype(np.int64)
    if t.positive:
        return np.asarray(rng.uniform(0.1, 1.0, size=t.shape))
    return np.asarray(rng.standard_normal(t.shape))


def make_inputs(desc: GraphDesc, rng: np.random.Generator) -> Any:
    """Host input values for the gModule: a bare value for one input, else a list."""
    vals = [_host_value(t, rng) for t in desc.input_types]
    return vals[0] if len(vals) == 1 else vals


def _grad_value(t: Type, rng: np.random.Generator, none_ok: bool) -> Any:
    if isinstance(t, Lst):
        return [_grad_value(i, rng, True) for i in t.items]
    if none_ok and rng.random() < 0.2:
        return None  # documented as zeros
    return np.asarray(rng.standard_normal(t.shape))


def make_grad_outputs(desc: GraphDesc, rng: np.random.Generator) -> Any:
    """A host ``grad_output`` for the gModule's outputs, with None entries in lists."""
    outs = [desc.types[i] for i in desc.outputs]
    if len(outs) == 1:
        return _grad_value(outs[0], rng, False)
    return [_grad_value(t, rng, True) for t in outs]


def to_device(value: Any, device: str, dtype: Any = None) -> Any:
    """Host values (nested lists, None kept) on ``device``, floating ones cast to ``dtype``."""
    if value is None:
        return None
    if isinstance(value, list):
        return [to_device(v, device, dtype) for v in value]
    return backend.to_device(np.asarray(value), device, dtype)
