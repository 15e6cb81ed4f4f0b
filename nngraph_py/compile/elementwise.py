"""Element-wise regions of a graph fused into one generated function, forward and backward.

A *region* is a tree of element-wise nodes (``Sigmoid``, ``Tanh``, ``ReLU``, ``Identity``,
``CAddTable``, ``CSubTable``, ``CMulTable``, ``MulConstant``, ``AddConstant``) whose inner nodes
each feed exactly one node of the region and nothing else: the GRU's
``tanh(i2h_new + sigmoid(i2h_r + h2h_r) * h2h_new)`` is one region with five external inputs.
For every region, Python source is generated once per (shapes, dtype): the forward writes each
node into a buffer planned once and reused across calls, with in-place NumPy ufunc passes
(``out=``); the backward walks the tree in reverse, computing each input's gradient in place from
the kept buffers. Nodes of a region have their own ``output`` left as the last node-by-node run
set it: the region's buffers are its state.

No Lua Torch original: nngraph runs every node through its module.
"""
from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from ..errors import GraphError
from ..nn.activation import ReLU, Sigmoid, Tanh
from ..nn.constant import AddConstant, MulConstant
from ..nn.identity import Identity
from ..nn.table import CAddTable, CMulTable, CSubTable

__all__ = ["is_elementwise", "Region"]

_NDARRAY = numpy.ndarray  # numba kernels take plain NumPy arrays only (a type test, no call)
_TYPES = (Sigmoid, Tanh, ReLU, Identity, CAddTable, CSubTable, CMulTable, MulConstant,
          AddConstant)


def is_elementwise(module: Any, table: bool, n_parents: int) -> bool:
    """Whether the compiler can fuse this node (in-place variants and odd arities are left)."""
    if type(module) not in _TYPES or getattr(module, "inplace", False):
        return False
    if type(module) in (CAddTable, CMulTable):
        return table and n_parents >= 1
    if type(module) is CSubTable:
        return table and n_parents == 2
    return not table and n_parents == 1


class Region:
    """One fused region: ``nodes`` (plan indices, in topological order, the last is the root),
    its external inputs ``ext`` (plan indices), and the generated forward/backward."""

    def __init__(self, nodes: list[int], plan: list[Any], shape: tuple, dtype: Any, xp: Any,
                 keep: bool, kernels: str = "numpy"):
        self.nodes, self.root = nodes, nodes[-1]
        inside = set(nodes)
        self.ext: list[int] = []
        for i in nodes:
            for p in plan[i].parents:
                if p not in inside and p not in self.ext:
                    self.ext.append(p)
        self.xp = xp
        self.shape, self.dtype = shape, dtype
        # One buffer per node (value) and, for backward, one gradient buffer per node and per
        # external input, allocated once here and reused by every call.
        self.vals = [xp.empty(shape, dtype=dtype) for _ in nodes]
        self.gbufs = [xp.empty(shape, dtype=dtype) for _ in nodes] if keep else None
        self.gext = [xp.empty(shape, dtype=dtype) for _ in self.ext] if keep else None
        self.tmp = xp.empty(shape, dtype=dtype)
        self._forward_src, self._backward_src = self._generate(plan)
        env = {"xp": xp}
        exec(compile(self._forward_src, "<nngraph_py.compile region forward>", "exec"), env)
        exec(compile(self._backward_src, "<nngraph_py.compile region backward>", "exec"), env)
        self._fwd, self._bwd = env["forward"], env["backward"]
        self.kernels = "numpy"
        if kernels == "numba" and len(shape) == 2 and type(self.vals[0]) is _NDARRAY:
            self._kernel_src = self._generate_scalar(plan)
            self._nfwd, self._nbwd = _numba_kernels(self._kernel_src)
            self.kernels = "numba"

    # Names inside the generated source: e0.. external inputs, v0.. node values, g0.. node
    # gradients, ge0.. external input gradients, t a scratch buffer, c0.. constants.
    def _name(self, p: int) -> str:
        return f"v{self.nodes.index(p)}" if p in self.nodes else f"e{self.ext.index(p)}"

    def _generate(self, plan: list[Any]) -> tuple[str, str]:
        fwd = ["def forward(E, V, T):", "    " + ", ".join(f"e{k}" for k in
                                                          range(len(self.ext))) + ", = E",
               "    " + ", ".join(f"v{k}" for k in range(len(self.nodes))) + ", = V"]
        consts: dict[str, float] = {}
        for k, i in enumerate(self.nodes):
            m = plan[i].module
            a = [self._name(p) for p in plan[i].parents]
            y = f"v{k}"
            kind = type(m)
            if kind is Identity:
                fwd.append(f"    xp.copyto({y}, {a[0]})")
            elif kind is Tanh:
                fwd.append(f"    xp.tanh({a[0]}, out={y})")
            elif kind is Sigmoid:
                fwd += [f"    xp.negative({a[0]}, out={y})", f"    xp.exp({y}, out={y})",
                        f"    {y} += 1.0", f"    xp.reciprocal({y}, out={y})"]
            elif kind is ReLU:
                fwd.append(f"    xp.maximum({a[0]}, 0.0, out={y})")
            elif kind is MulConstant:
                consts[f"c{k}"] = m.constant
                fwd.append(f"    xp.multiply({a[0]}, c{k}, out={y})")
            elif kind is AddConstant:
                consts[f"c{k}"] = m.constant
                fwd.append(f"    xp.add({a[0]}, c{k}, out={y})")
            elif kind is CSubTable:
                fwd.append(f"    xp.subtract({a[0]}, {a[1]}, out={y})")
            elif kind in (CAddTable, CMulTable):
                op = "add" if kind is CAddTable else "multiply"
                if len(a) == 1:
                    fwd.append(f"    xp.copyto({y}, {a[0]})")
                else:
                    fwd.append(f"    xp.{op}({a[0]}, {a[1]}, out={y})")
                    fwd += [f"    xp.{op}({y}, {b}, out={y})" for b in a[2:]]
        self.consts = consts
        fwd.insert(1, "    " + "; ".join(f"{n} = {v!r}" for n, v in consts.items())
                   if consts else "    pass")
        fwd.append(f"    return v{len(self.nodes) - 1}")

        # Backward: gradients flow root -> leaves; a node's gradient buffer is complete when it
        # is reached (its only consumer is later in the order). ``seen`` tracks first writes.
        bwd = ["def backward(E, V, G, GE, g_root, T):",
               "    " + ", ".join(f"e{k}" for k in range(len(self.ext))) + ", = E",
               "    " + ", ".join(f"v{k}" for k in range(len(self.nodes))) + ", = V",
               "    " + ", ".join(f"g{k}" for k in range(len(self.nodes))) + ", = G",
               ("    " + ", ".join(f"ge{k}" for k in range(len(self.ext))) + ", = GE")
               if self.ext else "    pass",
               "    " + "; ".join(f"{n} = {v!r}" for n, v in consts.items()) if consts
               else "    pass",
               f"    xp.copyto(g{len(self.nodes) - 1}, g_root)"]
        seen: set[str] = set()

        def give(target: str, expr_lines: list[str]) -> list[str]:
            """Lines that put T (computed by expr_lines) into target, or add it there."""
            gname = target.replace("v", "g", 1) if target.startswith("v") else \
                target.replace("e", "ge", 1)
            if gname in seen:
                return expr_lines + [f"    xp.add({gname}, T, out={gname})"]
            seen.add(gname)
            return [line.replace("T", gname) if line.startswith("    xp.") else line
                    for line in expr_lines]

        for k in range(len(self.nodes) - 1, -1, -1):
            i = self.nodes[k]
            m = plan[i].module
            a = [self._name(p) for p in plan[i].parents]
            g, y = f"g{k}", f"v{k}"
            kind = type(m)
            if kind in (Identity, AddConstant, CAddTable):
                for b in a:
                    bwd += give(b, [f"    xp.copyto(T, {g})"])
            elif kind is Tanh:
                bwd += give(a[0], [f"    xp.multiply({y}, {y}, out=T)",
                                   "    xp.subtract(1.0, T, out=T)",
                                   f"    xp.multiply(T, {g}, out=T)"])
            elif kind is Sigmoid:
                bwd += give(a[0], [f"    xp.subtract(1.0, {y}, out=T)",
                                   f"    xp.multiply(T, {y}, out=T)",
                                   f"    xp.multiply(T, {g}, out=T)"])
            elif kind is ReLU:
                bwd += give(a[0], [f"    xp.multiply({g}, {a[0]} > 0.0, out=T)"])
            elif kind is MulConstant:
                bwd += give(a[0], [f"    xp.multiply({g}, c{k}, out=T)"])
            elif kind is CSubTable:
                bwd += give(a[0], [f"    xp.copyto(T, {g})"])
                bwd += give(a[1], [f"    xp.negative({g}, out=T)"])
            elif kind is CMulTable:
                for j, b in enumerate(a):
                    others = [o for jj, o in enumerate(a) if jj != j]
                    lines = [f"    xp.multiply({g}, {others[0]}, out=T)"] if others else \
                        [f"    xp.copyto(T, {g})"]
                    lines += [f"    xp.multiply(T, {o}, out=T)" for o in others[1:]]
                    bwd += give(b, lines)
        for k in range(len(self.ext)):
            if f"ge{k}" not in seen:  # cannot happen: every external input is read
                bwd.append(f"    ge{k}.fill(0)")
        bwd.append("    return GE")
        return "\n".join(fwd) + "\n", "\n".join(bwd) + "\n"

    def forward(self, inputs: list[Any]) -> Any:
        """The root's value (a buffer of this region, overwritten by the next call)."""
        if self.kernels == "numba":
            self._nfwd(tuple(inputs), tuple(self.vals))
            return self.vals[-1]
        return self._fwd(inputs, self.vals, self.tmp)

    def backward(self, inputs: list[Any], g_root: Any) -> list[Any]:
        """The gradients of the external inputs (buffers of this region), in ``ext`` order."""
        if self.gext is None:
            raise GraphError("this region was planned for inference: it has no gradient "
                               "buffers")
        if self.kernels == "numba":
            self._nbwd(tuple(inputs), tuple(self.vals), g_root, tuple(self.gext))
            return self.gext
        return self._bwd(inputs, self.vals, self.gbufs, self.gext, g_root, self.tmp)

    def _generate_scalar(self, plan: list[Any]) -> str:
        """Source of two loop kernels over ``(rows, cols)``: one pass reads the inputs and writes
        every node's value; one pass reads the kept values and writes the inputs' gradients."""
        fwd, bwd, consts = [], [], []
        for k, i in enumerate(self.nodes):
            m = plan[i].module
            a = [self._name(p) for p in plan[i].parents]
            kind = type(m)
            if kind in (MulConstant, AddConstant):
                consts.append(f"c{k} = {m.constant!r}")
            expr = {Identity: lambda: a[0], Tanh: lambda: f"math.tanh({a[0]})",
                    Sigmoid: lambda: f"1.0 / (1.0 + math.exp(-{a[0]}))",
                    ReLU: lambda: f"max({a[0]}, 0.0)",
                    MulConstant: lambda: f"{a[0]} * c{k}", AddConstant: lambda: f"{a[0]} + c{k}",
                    CSubTable: lambda: f"{a[0]} - {a[1]}",
                    CAddTable: lambda: " + ".join(a), CMulTable: lambda: " * ".join(a)}[kind]()
            fwd.append(f"v{k} = {expr}")
        grads: dict[str, list[str]] = {}
        for k in range(len(self.nodes) - 1, -1, -1):
            i = self.nodes[k]
            m = plan[i].module
            a = [self._name(p) for p in plan[i].parents]
            g = "g_root[r, s]" if k == len(self.nodes) - 1 else f"g{k}"
            if k != len(self.nodes) - 1:
                bwd.append(f"g{k} = " + " + ".join(grads.pop(f"v{k}")))
            kind = type(m)
            parts: list[tuple[str, str]]
            if kind in (Identity, AddConstant, CAddTable):
                parts = [(b, g) for b in a]
            elif kind is Tanh:
                parts = [(a[0], f"{g} * (1.0 - v{k} * v{k})")]
            elif kind is Sigmoid:
                parts = [(a[0], f"{g} * v{k} * (1.0 - v{k})")]
            elif kind is ReLU:
                parts = [(a[0], f"({g} if {a[0]} > 0.0 else 0.0)")]
            elif kind is MulConstant:
                parts = [(a[0], f"{g} * c{k}")]
            elif kind is CSubTable:
                parts = [(a[0], g), (a[1], f"-{g}")]
            else:  # CMulTable
                parts = [(b, " * ".join([g] + [o for jj, o in enumerate(a) if jj != j]))
                         for j, b in enumerate(a)]
            for b, term in parts:
                grads.setdefault(b, []).append(f"({term})")
        n_e, n_v = len(self.ext), len(self.nodes)
        load_e = [f"e{k} = E[{k}][r, s]" for k in range(n_e)]
        load_v = [f"v{k} = V[{k}][r, s]" for k in range(n_v)]
        store_v = [f"V[{k}][r, s] = v{k}" for k in range(n_v)]
        store_g = [f"GE[{k}][r, s] = " + " + ".join(grads[f"e{k}"]) for k in range(n_e)]
        ind = "            "
        lines = ["def forward(E, V):", *("    " + c for c in consts),
                 "    for r in range(V[0].shape[0]):", "        for s in range(V[0].shape[1]):",
                 *(ind + x for x in load_e + fwd + store_v),
                 "def backward(E, V, g_root, GE):", *("    " + c for c in consts),
                 "    for r in range(V[0].shape[0]):", "        for s in range(V[0].shape[1]):",
                 *(ind + x for x in load_e + load_v + bwd + store_g)]
        return "\n".join(lines) + "\n"


_KERNELS: dict[str, tuple[Any, Any]] = {}


def numba_available() -> bool:
    """Whether numba can be imported (the optional ``accel`` extra)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _numba_kernels(src: str) -> tuple[Any, Any]:
    """The jitted ``(forward, backward)`` of a generated source, compiled once per source."""
    if src not in _KERNELS:
        import math

        import numba

        env: dict[str, Any] = {"math": math}
        exec(compile(src, "<nngraph_py.compile region kernel>", "exec"), env)
        _KERNELS[src] = (numba.njit(cache=False, fastmath=False)(env["forward"]),
                         numba.njit(cache=False, fastmath=False)(env["backward"]))
    return _KERNELS[src]


def array_module(x: Any) -> Any:
    """The array module of ``x`` (the backend's choice, strict module included)."""
    return backend.get_array_module(x)
