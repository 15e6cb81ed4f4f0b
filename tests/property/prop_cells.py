"""Random row-wise graphs and recurrent cells (Hypothesis strategies) for the compiler's tests.

Every value of a :class:`RowDesc` is a ``(batch, width)`` array, so the same graph runs at any
batch size (what ``compile(g)``'s per-shape plans and a cell run over time need). The values are
numbered: first the graph's inputs, then one per op. Each op is plain data (``kind``, ``args``,
``srcs``) built by :func:`build_rows`:

* ``Linear(w_in, w_out[, bias=False])``; several Linears often read one value (a Linear group);
* element-wise one-input modules: ``Sigmoid``, ``Tanh``, ``ReLU``, ``Identity``,
  ``MulConstant``, ``AddConstant``, ``CMul`` (a learned vector), ``LayerNormalization``;
* tables of same-width values: ``CAddTable`` (2-3), ``CSubTable``, ``CMulTable`` (2-3);
* ``JoinTable(1)`` of 2-3 values, ``Narrow(1, offset, length)``, ``SelectTable(i)`` of a list
  node;
* fan-out: one value read by three or more consumers;
* ``Share``: a clone of an earlier Linear or CMul sharing its parameters and gradients (tied
  weights, e.g. one Linear on ``x_t`` and on the state);
* rarely: the modules of :data:`EXTRA` (``SoftMax``, ``ELU``, ``CAdd``, ``PReLU``,
  ``GatedLinearUnit``, ``Dropout(0)``...), ``CMaxTable``/``CMinTable``/``CDivTable`` (positive
  denominators), and modules holding modules (a ``Sequential``, a nested gModule).

For a *cell* (:func:`cells`) inputs are ``[x_t, s_1, ..., s_k]`` and outputs the ``k`` new states;
ops are drawn so that some read ``x_t`` only (hoistable over time), some the state only, some both,
and a state may pass through unchanged (``Identity(s_j)``, or the input node ``s_j`` itself as
the output). Every input reaches an output.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from nngraph_py import nn

__all__ = ["Op", "RowDesc", "row_graphs", "cells", "build_rows", "has_layer_norm"]

UNARY = ("Sigmoid", "Tanh", "ReLU", "Identity", "MulConstant", "AddConstant", "CMul",
         "LayerNormalization")


#: Drawn by the "extra" ops: more element-wise and row-wise modules, some with parameters.
EXTRA = ("SoftMax", "LogSoftMax", "Abs", "Square", "ELU", "LeakyReLU", "SoftPlus", "HardTanh",
         "SoftSign", "CAdd", "PReLU", "Mul", "Add", "Clamp", "GatedLinearUnit", "Dropout")


def has_layer_norm() -> bool:
    return hasattr(nn, "LayerNormalization")


@dataclass(frozen=True)
class Op:
    kind: str
    args: tuple
    srcs: tuple


@dataclass
class RowDesc:
    """A graph of ``(batch, width)`` values: ``inputs`` widths, ``ops``, ``outputs`` (value
    indices). ``deps[v]`` is the set of input indices value ``v`` depends on."""

    inputs: tuple
    ops: list = field(default_factory=list)
    widths: list = field(default_factory=list)
    deps: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    passthrough: tuple = ()   # cells: states whose output is Identity(state)

    def describe(self) -> str:
        n = len(self.inputs)
        lines = [f"v{i} = input ({w})" for i, w in enumerate(self.inputs)]
        for k, op in enumerate(self.ops):
            v = n + k
            args = ", ".join(repr(a) for a in op.args)
            lines.append(f"v{v} = {op.kind}({args})({', '.join(f'v{s}' for s in op.srcs)})"
                         f"  # width {self.widths[v]}, reads inputs {sorted(self.deps[v])}")
        lines.append(f"outputs: {', '.join(f'v{o}' for o in self.outputs)}")
        if self.passthrough:
            lines.append(f"pass-through states: {self.passthrough}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "RowDesc(\n  " + self.describe().replace("\n", "\n  ") + "\n)"


WIDTH = st.integers(1, 5)


class _Draw:
    def __init__(self, draw: Any, inputs: tuple):
        self.draw = draw
        self.d = RowDesc(inputs=tuple(inputs), widths=list(inputs),
                         deps=[frozenset([i]) for i in range(len(inputs))])
        self.consumed: set[int] = set()

    def add(self, kind: str, args: tuple, srcs: tuple, width: int) -> int:
        d = self.d
        d.ops.append(Op(kind, tuple(args), tuple(srcs)))
        d.widths.append(width)
        d.deps.append(frozenset().union(*(d.deps[s] for s in srcs)))
        self.consumed.update(srcs)
        return len(d.widths) - 1

    def pick(self, pool: list[int] | None = None, width: int | None = None) -> int | None:
        n = len(self.d.widths)
        cands = [v for v in (range(n) if pool is None else pool)
                 if width is None or self.d.widths[v] == width]
        if not cands:
            return None
        return self.draw(st.sampled_from(cands))

    def pool(self, mode: str, cell_k: int | None) -> list[int] | None:
        """Values to read from: ``x`` only, state only, or any (cells); any (graphs)."""
        if cell_k is None or mode == "any":
            return None
        d = self.d
        if mode == "x":
            return [v for v in range(len(d.widths)) if d.deps[v] <= {0}]
        return [v for v in range(len(d.widths)) if 0 not in d.deps[v]]

    def op(self, pool: list[int] | None) -> None:
        draw, d = self.draw, self.d
        kind = draw(st.sampled_from(
            ("linear", "linear", "linear_group", "unary", "unary", "unary", "table", "table",
             "join", "narrow", "select", "fanout", "extra", "extra", "extra_table", "composite",
             "share")))
        v = self.pick(pool)
        if v is None:
            return
        w = d.widths[v]
        if kind == "linear":
            out = draw(WIDTH)
            args = (w, out) if draw(st.integers(0, 3)) else (w, out, False)
            self.add("Linear", args, (v,), out)
        elif kind == "linear_group":  # 2-3 Linears reading one value
            for _ in range(draw(st.integers(2, 3))):
                out = draw(WIDTH)
                self.add("Linear", (w, out), (v,), out)
        elif kind == "unary":
            self._unary(v)
        elif kind == "extra":
            self._extra(v)
        elif kind == "extra_table":
            name = draw(st.sampled_from(("CMaxTable", "CMinTable", "CDivTable")))
            u = self.pick(pool, w)
            if name == "CDivTable":  # a positive denominator: 0.5 + sigmoid(u)
                u = self.add("AddConstant", (0.5,), (self.add("Sigmoid", (), (u,), w),), w)
            self.add(name, (), (v, u), w)
        elif kind == "composite":  # a module holding modules: run as one opaque node
            out = draw(WIDTH)
            name = draw(st.sampled_from(("Sequential", "SubGraph")))
            self.add(name, (w, out, draw(st.integers(0, 1))), (v,), out)
        elif kind == "share":  # a clone sharing an earlier Linear's or CMul's parameters
            n = len(d.inputs)
            owners = [k for k, o in enumerate(d.ops) if o.kind in ("Linear", "CMul")
                      and d.widths[o.srcs[0]] == w]
            if not owners:
                return self._unary(v)
            k = draw(st.sampled_from(owners))
            self.add("Share", (k,), (v,), d.widths[n + k])
        elif kind == "fanout":
            for _ in range(draw(st.integers(3, 4))):
                self._unary(v)
        elif kind == "table":
            name = draw(st.sampled_from(("CAddTable", "CSubTable", "CMulTable")))
            n = 2 if name == "CSubTable" else draw(st.integers(2, 3))
            srcs = [v] + [self.pick(pool, w) for _ in range(n - 1)]
            self.add(name, (), tuple(srcs), w)
        elif kind == "join":
            srcs = [v] + [self.pick(pool) for _ in range(draw(st.integers(1, 2)))]
            self.add("JoinTable", (1,), tuple(srcs), sum(d.widths[s] for s in srcs))
        elif kind == "narrow":
            if w < 2:
                return self._unary(v)
            offset = draw(st.integers(0, w - 1))
            length = draw(st.integers(1, w - offset))
            self.add("Narrow", (1, offset, length), (v,), length)
        else:  # select: SelectTable(i) of a list node [v, u, ...]
            srcs = [v] + [self.pick(pool) for _ in range(draw(st.integers(1, 2)))]
            i = draw(st.integers(-len(srcs), len(srcs) - 1))
            self.add("SelectTable", (i,), tuple(srcs), d.widths[srcs[i]])

    def _unary(self, v: int) -> None:
        names = [n for n in UNARY if n != "LayerNormalization" or has_layer_norm()]
        name = self.draw(st.sampled_from(names))
        w = self.d.widths[v]
        if name == "MulConstant":
            args: tuple = (self.draw(st.sampled_from((0.5, -1.5, 2.0))),)
        elif name == "AddConstant":
            args = (self.draw(st.sampled_from((0.3, -1.0))),)
        elif name in ("CMul", "LayerNormalization"):
            if name == "LayerNormalization" and w < 2:
                name, args = "Tanh", ()
            else:
                args = (w,)
        else:
            args = ()
        self.add(name, args, (v,), w)

    def _extra(self, v: int) -> None:
        """The less common one-input modules (each drawn rarely)."""
        w = self.d.widths[v]
        name = self.draw(st.sampled_from(EXTRA))
        args: tuple = ()
        out = w
        if name in ("CAdd", "Add"):
            args = (w,)
        elif name == "PReLU":
            args = self.draw(st.sampled_from(((), (w,))))
        elif name == "LeakyReLU":
            args = (0.1,)
        elif name == "Clamp":
            args = (-0.5, 0.5)
        elif name == "Dropout":
            args = (0.0,)
        elif name == "GatedLinearUnit":
            if w % 2:
                name = "SoftSign"
            else:
                out = w // 2
        self.add(name, args, (v,), out)

    def to_width(self, v: int, width: int) -> int:
        """``v`` made ``width`` wide (a Linear, or a Narrow when wider)."""
        w = self.d.widths[v]
        if w == width:
            return v
        if w > width and self.draw(st.booleans()):
            return self.add("Narrow", (1, self.draw(st.integers(0, w - width)), width), (v,), width)
        return self.add("Linear", (w, width), (v,), width)

    def fold(self, target: int, v: int) -> int:
        """``target + Linear(v)``: ``v`` reaches the output ``target``."""
        width = self.d.widths[target]
        return self.add("CAddTable", (), (target, self.to_width(v, width)), width)


@st.composite
def row_graphs(draw: Any, max_inputs: int = 3, max_ops: int = 8) -> RowDesc:
    """A random graph of ``(batch, width)`` values with 1..``max_inputs`` inputs."""
    b = _Draw(draw, tuple(draw(WIDTH) for _ in range(draw(st.integers(1, max_inputs)))))
    for _ in range(draw(st.integers(1, max_ops))):
        b.op(None)
    d = b.d
    unused = [v for v in range(len(d.widths)) if v not in b.consumed]
    outs = [v for v in unused if v >= len(d.inputs)] or [len(d.widths) - 1]
    # Every input reaches an output: fold unreached ones into the first output.
    for i in range(len(d.inputs)):
        if not any(i in d.deps[o] for o in outs):
            outs[0] = b.fold(outs[0], i)
    if len(outs) > 1 and draw(st.integers(0, 3)) == 0:  # a consumed value as an output too
        extra = draw(st.sampled_from(range(len(d.inputs), len(d.widths))))
        if extra not in outs:
            outs.append(extra)
    d.outputs = outs
    return d


@st.composite
def cells(draw: Any, max_states: int = 3, max_ops: int = 9) -> RowDesc:
    """A random cell ``[x_t, s_1..s_k] -> [s_1'..s_k']`` (k = 1..``max_states``)."""
    k = draw(st.integers(1, max_states))
    sizes = tuple(draw(WIDTH) for _ in range(k))
    b = _Draw(draw, (draw(WIDTH),) + sizes)
    # Some ops on x_t alone, some on the state alone, then a mix of everything.
    for mode in ("x", "state", "any"):
        for _ in range(draw(st.integers(0 if mode != "any" else 1, max_ops // 3))):
            b.op(b.pool(mode, k))
    d = b.d
    passthrough = tuple(j for j in range(k) if k > 1 and draw(st.integers(0, 4)) == 0)
    if len(passthrough) == k:
        passthrough = passthrough[1:]
    candidates = [v for v in range(len(d.widths)) if v not in b.consumed] or [0]
    outs: list[int] = []
    for j in range(k):
        if j in passthrough:  # through an Identity, or the input node itself as the output
            outs.append(b.add("Identity", (), (1 + j,), sizes[j]) if draw(st.booleans())
                        else 1 + j)
        else:
            outs.append(b.to_width(draw(st.sampled_from(candidates)), sizes[j]))
    # Every input and every value reaches a (non pass-through) output (gModule refuses dangling
    # nodes); the latest unreached value first, as folding it reaches its ancestors too.
    live = [j for j in range(k) if j not in passthrough]
    while True:
        reached = _ancestors(d, outs)
        loose = [v for v in range(len(d.widths)) if v not in reached]
        if not loose:
            break
        j = draw(st.sampled_from(live))
        outs[j] = b.fold(outs[j], loose[-1])
    d.outputs = outs
    d.passthrough = passthrough
    return d


def _ancestors(d: RowDesc, outs: list[int]) -> set[int]:
    """The values the outputs ``outs`` are computed from (themselves included)."""
    n = len(d.inputs)
    seen, todo = set(), list(outs)
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v >= n:
            todo.extend(d.ops[v - n].srcs)
    return seen


def _module(op: Op) -> Any:
    if op.kind == "Sequential":
        w, out, variant = op.args
        second = nn.Tanh() if variant else nn.CMul(out)
        return nn.Sequential(nn.Linear(w, out), second)
    if op.kind == "SubGraph":
        w, out, variant = op.args
        i = nn.Identity()()
        h = nn.Linear(w, out)(i)
        o = nn.CMulTable()([nn.Sigmoid()(h), nn.Tanh()(h)]) if variant else nn.Tanh()(h)
        return nn.gModule([i], [o])
    if op.kind == "Linear":
        return nn.Linear(*op.args[:2], bias=op.args[2] if len(op.args) > 2 else True)
    return getattr(nn, op.kind)(*op.args)


def build_rows(desc: RowDesc) -> Any:
    """The gModule of a description (default dtype; convert it afterwards)."""
    values: list[Any] = [nn.Identity()() for _ in desc.inputs]
    inputs = list(values)
    made: list[Any] = []
    for op in desc.ops:
        if op.kind == "Share":
            proto = made[op.args[0]]
            names = [a for a in ("weight", "bias", "grad_weight", "grad_bias")
                     if getattr(proto, a, None) is not None]
            m = proto.clone(*names)
        else:
            m = _module(op)
        made.append(m)
        if op.kind in ("CAddTable", "CSubTable", "CMulTable", "JoinTable", "SelectTable",
                       "CMaxTable", "CMinTable", "CDivTable"):
            values.append(m([values[s] for s in op.srcs]))
        else:
            values.append(m(values[op.srcs[0]]))
    return nn.gModule(inputs, [values[o] for o in desc.outputs])
