"""Element-wise regions of a graph, fused into generated code, forward and backward.

A *region* is a set of element-wise nodes of one shape (``Sigmoid``, ``Tanh``, ``ReLU``, ``Exp``,
``Square``, ``Identity``, ``CAddTable``, ``CSubTable``, ``CMulTable``, ``MulConstant``,
``AddConstant``) connected by their edges: any DAG, a node may feed several nodes of the region.
What the region reads from outside are its *external inputs*; the members whose values are needed
outside (by other nodes, as graph outputs, as carried state) are *exposed*. The GRU step
``h' = (1 - z) * tanh(a_n + r * b_n) + z * h`` with ``r = sigmoid(a_r + b_r)`` and
``z = sigmoid(a_z + b_z)`` is one region with seven external inputs and one exposed member.

From a region the compiler generates, once per (shapes, dtype):

* **NumPy passes** (any backend's array module, the strict one included): the forward writes each
  member into an array the caller owns (planned once, reused) with in-place ufuncs (``out=``); the
  backward walks the members in reverse, computing each input's gradient in place from the kept
  values, aliasing a gradient where a node passes it through unchanged;
* **numba loop kernels** (float32/float64 NumPy arrays of rank 2): one loop over rows and columns
  forward, one backward, reading each operand once; ``tanh`` for float32 is the vectorisable
  rational function of :mod:`nngraph_py.compile.accel` (within 0.52 ulp), and the logistic
  function is ``0.5 * tanh(x / 2) + 0.5`` everywhere, as in the recipe kernels;
* the same expressions in C for CuPy's ``ElementwiseKernel``, forward and backward
  (:mod:`nngraph_py.compile.cuda`; ``kernels="cuda"`` on CuPy arrays).

No Lua Torch original: nngraph runs every node through its module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy

from ..errors import GraphError
from ..nn.activation import ReLU, Sigmoid, Tanh
from ..nn.cmul import CMul
from ..nn.constant import AddConstant, MulConstant
from ..nn.identity import Identity
from ..nn.table import CAddTable, CMulTable, CSubTable
from ..nn.transfer import Exp, Square

__all__ = ["is_elementwise", "is_cmul", "Op", "Region", "numba_available"]

_NDARRAY = numpy.ndarray  # numba kernels take plain NumPy arrays only (a type test, no call)

#: Module type -> op name. Table modules take lists; the others one array.
_OPS: dict[type, str] = {Identity: "identity", Tanh: "tanh", Sigmoid: "sigmoid", ReLU: "relu",
                         Exp: "exp", Square: "square", MulConstant: "mulc", AddConstant: "addc",
                         CAddTable: "add", CSubTable: "sub", CMulTable: "mul"}
_TABLE_OPS = {"add", "sub", "mul"}


def is_elementwise(module: Any, table: bool, n_parents: int) -> bool:
    """Whether the compiler can fuse this node (in-place variants, array constants and odd
    arities are left to their modules)."""
    op = _OPS.get(type(module))
    if op is None or getattr(module, "inplace", False):
        return False
    if op in ("mulc", "addc") and not isinstance(module.constant, (int, float)):
        return False
    if op in ("add", "mul"):
        return table and n_parents >= 1
    if op == "sub":
        return table and n_parents == 2
    return not table and n_parents == 1


@dataclass(frozen=True)
class Op:
    """One member of a region: ``kind`` (see ``_OPS``) over ``args``, each ``("e", j)`` (external
    input ``j``) or ``("v", k)`` (member ``k``), with ``const`` for ``mulc``/``addc``."""

    kind: str
    args: tuple[tuple[str, int], ...]
    const: float = 0.0


def is_cmul(module: Any, table: bool, shape: tuple) -> bool:
    """Whether this ``CMul`` (a learned vector over the last axis) can join a region of
    ``shape``: its weight enters as an external input broadcast over the rows."""
    return (type(module) is CMul and not table and len(module.size) == 1
            and len(shape) >= 1 and int(shape[-1]) == int(module.size[0]))


def region_ops(nodes: Sequence[int], plan: Sequence[Any]) -> tuple[list[Op], list[Any]]:
    """The ops of the members ``nodes`` (plan indices, topological order) and the external inputs
    they read, in first-use order: plan indices, or ``("param", i)`` for the weight vector of the
    ``CMul`` at plan index ``i`` (broadcast over the rows; its gradient, per row, is summed by the
    caller)."""
    where = {i: k for k, i in enumerate(nodes)}
    ext: list[Any] = []
    ops = []

    def ref(q: Any) -> tuple[str, int]:
        if not isinstance(q, tuple) and q in where:
            return ("v", where[q])
        if q not in ext:
            ext.append(q)
        return ("e", ext.index(q))

    for i in nodes:
        step = plan[i]
        args = [ref(p) for p in step.parents]
        m = step.module
        if type(m) is CMul:
            ops.append(Op("mul", (args[0], ref(("param", i)))))
            continue
        kind = _OPS[type(m)]
        const = float(m.constant) if kind in ("mulc", "addc") else 0.0
        ops.append(Op(kind, tuple(args), const))
    return ops, ext


# ------------------------------------------------------------------------------------------------
# Gradient rules, as scalar expressions (shared by the numba and CUDA printers)
# ------------------------------------------------------------------------------------------------
def _scalar_forward(op: Op, a: list[str], lit: Any) -> str:
    k = op.kind
    if k == "identity":
        return a[0]
    if k == "tanh":
        return f"TANH({a[0]})"
    if k == "sigmoid":
        return f"({lit(0.5)} * TANH({lit(0.5)} * {a[0]}) + {lit(0.5)})"
    if k == "relu":
        return f"MAX0({a[0]})"
    if k == "exp":
        return f"EXP({a[0]})"
    if k == "square":
        return f"({a[0]} * {a[0]})"
    if k == "mulc":
        return f"({a[0]} * {lit(op.const)})"
    if k == "addc":
        return f"({a[0]} + {lit(op.const)})"
    if k == "sub":
        return f"({a[0]} - {a[1]})"
    sep = " + " if k == "add" else " * "
    return "(" + sep.join(a) + ")"


def _scalar_grads(op: Op, a: list[str], y: str, g: str, lit: Any) -> list[str]:
    """The gradient contribution of ``op`` to each of its arguments, given its output ``y`` and
    its gradient ``g`` (scalar expressions)."""
    k = op.kind
    one = lit(1.0)
    if k in ("identity", "addc", "add"):
        return [g] * len(a)
    if k == "tanh":
        return [f"({g} * ({one} - {y} * {y}))"]
    if k == "sigmoid":
        return [f"({g} * {y} * ({one} - {y}))"]
    if k == "relu":
        return [f"POS({a[0]}, {g})"]
    if k == "exp":
        return [f"({g} * {y})"]
    if k == "square":
        return [f"({lit(2.0)} * {a[0]} * {g})"]
    if k == "mulc":
        return [f"({g} * {lit(op.const)})"]
    if k == "sub":
        return [g, f"(-{g})"]
    return ["(" + " * ".join([g] + [o for jj, o in enumerate(a) if jj != j]) + ")"
            for j in range(len(a))]


class Region:
    """One fused region (see the module docstring).

    Args:
        nodes: plan indices of the members, in topological order.
        plan: the graph's plan (``Step`` entries).
        exposed: members (plan indices) whose values and gradients cross the region's boundary.
        shape, dtype: of every member and external input.
        xp: the array module.
        keep: whether backward will be called (gradient scratch is planned only then).
        kernels: ``"numpy"``, ``"numba"`` or ``"auto"`` (numba for rank-2 float NumPy arrays
            when numba is installed), or ``"cuda"`` (float CuPy arrays: generated
            ``ElementwiseKernel`` objects, :mod:`nngraph_py.compile.cuda`; else NumPy passes).
        ext_cols: for external inputs (plan indices) that are columns of a wider array, their
            ``(offset, width)``: ``forward`` and ``backward`` then take the wide array.
        direct: external inputs (plan indices) whose gradient ``backward(..., dest)`` writes into
            ``dest[j]`` (never aliased; for inputs with columns, the wide array at its columns);
            the caller adds any other contribution after.
        skip_grads: external inputs (plan indices) whose gradient is not computed at all (the
            caller knows it equals another input's); ``backward`` returns None for them.

    Attributes:
        ext: plan indices of the external inputs, in the order ``forward`` takes them.
        kernels: what runs (``"numpy"``, ``"numba"`` or ``"cuda"``).
    """

    def __init__(self, nodes: Sequence[int], plan: Sequence[Any], exposed: Sequence[int],
                 shape: tuple, dtype: Any, xp: Any, keep: bool, kernels: str = "numpy",
                 ext_cols: dict[int, tuple[int, int]] | None = None,
                 direct: Sequence[int] = (), skip_grads: Sequence[int] = ()):
        self.nodes = list(nodes)
        self.ops, self.ext = region_ops(self.nodes, plan)
        # External inputs that are columns [off, off + width) of a wider array (a Linear group's
        # product): the caller passes the wide array, the generated code reads the columns (a
        # numba kernel then sees contiguous rows, which vectorise).
        cols = ext_cols or {}
        self.ext_cols = [None if isinstance(q, tuple) else cols.get(q) for q in self.ext]
        #: External inputs that are CMul weight vectors: ext position -> the CMul's plan index.
        self.params = {j: q[1] for j, q in enumerate(self.ext) if isinstance(q, tuple)}
        # External inputs (plan indices) whose gradient backward writes straight into an array
        # the caller gives (``dest``; the wide array, at the same columns, for those with
        # columns).
        # External inputs whose gradient the caller does not want (it equals another's).
        self.skip = {j for j, q in enumerate(self.ext) if q in set(skip_grads)}
        self.direct = [j for j, q in enumerate(self.ext) if q in set(direct) and j not in self.skip]
        self.exposed = [self.nodes.index(i) for i in exposed]
        self.xp, self.shape, self.dtype = xp, tuple(shape), numpy.dtype(dtype)
        n = len(self.nodes)
        # How many gradient contributions each member / external input receives (static).
        self._uses = {("v", k): 0 for k in range(n)}
        self._uses.update({("e", j): 0 for j in range(len(self.ext))})
        for op in self.ops:
            for arg in op.args:
                self._uses[arg] += 1
        use_numba = kernels in ("numba", "auto") and numba_available() and len(shape) == 2 \
            and xp is numpy and self.dtype in (numpy.float32, numpy.float64)
        if kernels == "numba" and not use_numba:
            use_numba = False  # other arrays: the NumPy passes (documented)
        self.kernels = "numba" if use_numba else "numpy"
        if kernels == "cuda" and _cuda().applies(xp, self.dtype):
            self.kernels = "cuda"
            self._cuda = _cuda().CudaRegionKernels(self, keep)
            self.source = self._cuda.text()
            # Callable as the NumPy passes are (``_fwd(ext, vals, tmp)``: the static step loop).
            self._fwd = lambda e, v, t=None: self._cuda.forward(e, v)
            self._bwd, self._tmp = self._cuda.backward, None
        elif self.kernels == "numba":
            self.source = self._numba_source(keep)
            self._fwd = self._bwd = None  # type: ignore[assignment] # compiled on first use
            self._gext = [xp.empty(shape, dtype=dtype) for _ in self.ext] if keep else None
        else:
            self.source = self._numpy_source()
            env: dict[str, Any] = {"xp": xp}
            exec(compile(self.source, "<nngraph_py.compile region>", "exec"), env)  # noqa: S102
            self._fwd, self._bwd = env["forward"], env["backward"]
            # Scratch: one gradient buffer per member and external input, one temporary.
            self._gv = [xp.empty(shape, dtype=dtype) for _ in range(n)] if keep else None
            self._gext = [xp.empty(shape, dtype=dtype) for _ in self.ext] if keep else None
            self._tmp = xp.empty(shape, dtype=dtype)

    # ------------------------------------------------------------------------------------------
    def compiled(self) -> tuple[Any, Any]:
        """The generated ``(forward, backward)`` functions, compiled now if not yet."""
        if self._fwd is None:
            self._fwd, self._bwd = _numba_compile(self.source)
        return self._fwd, self._bwd

    def forward(self, ext: Sequence[Any], vals: Sequence[Any]) -> None:
        """Compute every member into ``vals`` (arrays of the region's shape, one per member)."""
        if self.kernels == "cuda":
            return self._cuda.forward(ext, vals)
        if self._fwd is None:
            self.compiled()
        if self.kernels == "numba":
            self._fwd(tuple(ext), tuple(vals))
        else:
            self._fwd(ext, vals, self._tmp)

    @property
    def sums_params(self) -> bool:
        """Whether backward adds CMul weight gradients (summed over rows) into ``dest``."""
        return self.kernels == "numba" and bool(self.params)

    def backward(self, ext: Sequence[Any], vals: Sequence[Any], g_exposed: Sequence[Any],
                 dest: Sequence[Any] | None = None) -> list[Any]:
        """The gradients of the external inputs (in ``ext`` order), given those of the exposed
        members (in ``exposed`` order). The arrays returned belong to the region (or are the given
        gradients themselves, passed through): use them before the next call. For the
        ``direct`` inputs, ``dest[j]`` is the wide array their gradient is written into (its
        entry in the result is then that array's columns). For a CMul weight vector, the NumPy
        passes return the per-row gradient (the caller sums it over rows); a numba kernel adds
        the row sums into ``dest[j]`` itself (``sums_params``)."""
        if self.kernels == "cuda":
            return self._cuda.backward(ext, vals, g_exposed, dest)
        if self._gext is None:
            raise GraphError("this region was planned for inference: it has no gradient buffers")
        if self._bwd is None:
            self.compiled()
        ge = self._gext
        if self.direct:
            assert dest is not None, "a region with direct gradients needs dest"
            ge = list(ge)
            for j in self.direct:
                ge[j] = dest[j]
        if self.kernels == "numba":
            if self.params:  # the kernel sums a weight vector's gradient over rows, into dest
                assert dest is not None, "a numba region with CMul weights needs dest"
                ge = list(ge)
                for j in self.params:
                    ge[j] = dest[j]
            self._bwd(tuple(ext), tuple(vals), tuple(g_exposed), tuple(ge))
            if self.direct or self.skip:
                ge = self._dest_views(ge)
            return ge
        if self.direct or self.skip:
            ge = self._dest_views(ge)
        return self._bwd(ext, vals, g_exposed, self._gv, ge, self._tmp)

    def _dest_views(self, ge: list[Any]) -> list[Any]:
        """A copy of ``ge`` with each direct input's wide destination narrowed to its columns
        (and None for the skipped inputs)."""
        ge = list(ge)
        for j in self.direct:
            c = self.ext_cols[j]
            if c is not None:
                ge[j] = ge[j][:, c[0]:c[0] + c[1]]
        for j in self.skip:
            ge[j] = None
        return ge

    # ------------------------------------------------------------------------------------------
    # NumPy passes
    # ------------------------------------------------------------------------------------------
    def _numpy_source(self) -> str:
        n, ne = len(self.ops), len(self.ext)
        unpack_e = "\n".join(
            f"    e{j} = E[{j}]" if c is None else f"    e{j} = E[{j}][:, {c[0]}:{c[0] + c[1]}]"
            for j, c in enumerate(self.ext_cols))
        unpack_v = "    " + "".join(f"v{k}, " for k in range(n)) + "= V"
        fwd = ["def forward(E, V, T):", unpack_e, unpack_v]
        for k, op in enumerate(self.ops):
            a = [f"{s}{j}" for s, j in op.args]
            y = f"v{k}"
            kd = op.kind
            if kd == "identity":
                fwd.append(f"    xp.copyto({y}, {a[0]})")
            elif kd == "tanh":
                fwd.append(f"    xp.tanh({a[0]}, out={y})")
            elif kd == "sigmoid":
                fwd += [f"    xp.multiply({a[0]}, 0.5, out={y})", f"    xp.tanh({y}, out={y})",
                        f"    xp.multiply({y}, 0.5, out={y})", f"    xp.add({y}, 0.5, out={y})"]
            elif kd == "relu":
                fwd.append(f"    xp.maximum({a[0]}, 0.0, out={y})")
            elif kd == "exp":
                fwd.append(f"    xp.exp({a[0]}, out={y})")
            elif kd == "square":
                fwd.append(f"    xp.multiply({a[0]}, {a[0]}, out={y})")
            elif kd == "mulc":
                fwd.append(f"    xp.multiply({a[0]}, {op.const!r}, out={y})")
            elif kd == "addc":
                fwd.append(f"    xp.add({a[0]}, {op.const!r}, out={y})")
            elif kd == "sub":
                fwd.append(f"    xp.subtract({a[0]}, {a[1]}, out={y})")
            else:
                ufunc = "add" if kd == "add" else "multiply"
                if len(a) == 1:
                    fwd.append(f"    xp.copyto({y}, {a[0]})")
                else:
                    fwd.append(f"    xp.{ufunc}({a[0]}, {a[1]}, out={y})")
                    fwd += [f"    xp.{ufunc}({y}, {b}, out={y})" for b in a[2:]]
        fwd.append("    return None")

        # Backward. g{k}: the gradient of member k; ge{j}: of external input j. A target with a
        # single contribution that is a plain pass-through is aliased, not copied.
        bwd = ["def backward(E, V, GX, GV, GE, T):", unpack_e, unpack_v,
               "    " + "".join(f"gv{k}, " for k in range(n)) + "= GV",
               ("    " + "".join(f"gb{j}, " for j in range(ne)) + "= GE") if ne else ""]
        state: dict[tuple[str, int], str] = {}  # target -> "alias" | "written"
        for pos, k in enumerate(self.exposed):
            if self._uses[("v", k)] == 0:
                bwd.append(f"    g{k} = GX[{pos}]")
                state[("v", k)] = "alias"
            else:
                bwd.append(f"    g{k} = gv{k}")
                bwd.append(f"    xp.copyto(g{k}, GX[{pos}])")
                state[("v", k)] = "written"

        def target_name(t: tuple[str, int]) -> str:
            return f"g{t[1]}" if t[0] == "v" else f"ge{t[1]}"

        def buffer_name(t: tuple[str, int]) -> str:
            return f"gv{t[1]}" if t[0] == "v" else f"gb{t[1]}"

        def give(t: tuple[str, int], passthrough: str | None, compute: Any) -> None:
            """Add a contribution to target ``t``: ``passthrough`` names an existing array that is
            the contribution itself; else ``compute(out)`` emits lines writing it into ``out``."""
            if t[0] == "e" and t[1] in self.skip:
                return  # not wanted
            name = target_name(t)
            st = state.get(t)
            if st is None:
                if passthrough is not None and self._uses[t] == 1 \
                        and not (t[0] == "e" and t[1] in self.direct):
                    bwd.append(f"    {name} = {passthrough}")
                    state[t] = "alias"
                    return
                bwd.append(f"    {name} = {buffer_name(t)}")
                if passthrough is not None:
                    bwd.append(f"    xp.copyto({name}, {passthrough})")
                else:
                    compute(name)
                state[t] = "written"
                return
            if passthrough is not None:
                bwd.append(f"    xp.add({name}, {passthrough}, out={name})")
            else:
                compute("T")
                bwd.append(f"    xp.add({name}, T, out={name})")

        for k in range(n - 1, -1, -1):
            op = self.ops[k]
            if ("v", k) not in state:
                continue  # no gradient reaches this member (it feeds nothing that is exposed)
            g, y = f"g{k}", f"v{k}"
            a = [f"{s}{j}" for s, j in op.args]
            kd = op.kind
            for j, arg in enumerate(op.args):
                if kd in ("identity", "addc", "add") or (kd == "sub" and j == 0):
                    give(arg, g, None)
                    continue

                def emit(out: str, j: int = j, a: list[str] = a, kd: str = kd,
                         op: Op = op, g: str = g, y: str = y) -> None:
                    if kd == "tanh":
                        bwd.extend([f"    xp.multiply({y}, {y}, out={out})",
                                    f"    xp.subtract(1.0, {out}, out={out})",
                                    f"    xp.multiply({out}, {g}, out={out})"])
                    elif kd == "sigmoid":
                        bwd.extend([f"    xp.subtract(1.0, {y}, out={out})",
                                    f"    xp.multiply({out}, {y}, out={out})",
                                    f"    xp.multiply({out}, {g}, out={out})"])
                    elif kd == "relu":
                        bwd.append(f"    xp.multiply({g}, {a[0]} > 0.0, out={out})")
                    elif kd == "exp":
                        bwd.append(f"    xp.multiply({g}, {y}, out={out})")
                    elif kd == "square":
                        bwd.extend([f"    xp.multiply({a[0]}, {g}, out={out})",
                                    f"    xp.multiply({out}, 2.0, out={out})"])
                    elif kd == "mulc":
                        bwd.append(f"    xp.multiply({g}, {op.const!r}, out={out})")
                    elif kd == "sub":
                        bwd.append(f"    xp.negative({g}, out={out})")
                    else:  # mul
                        others = [o for jj, o in enumerate(a) if jj != j]
                        if not others:
                            bwd.append(f"    xp.copyto({out}, {g})")
                        else:
                            bwd.append(f"    xp.multiply({g}, {others[0]}, out={out})")
                            bwd.extend(f"    xp.multiply({out}, {o}, out={out})"
                                       for o in others[1:])
                give(arg, None, emit)
        outs = []
        for j in range(ne):
            if j in self.skip:
                outs.append("None")
            elif ("e", j) in state:
                outs.append(f"ge{j}")
            else:  # an input whose only consumers get no gradient
                bwd.append(f"    gb{j}.fill(0)")
                outs.append(f"gb{j}")
        bwd.append("    return [" + ", ".join(outs) + "]")
        return "\n".join(line for line in fwd if line) + "\n" + \
            "\n".join(line for line in bwd if line) + "\n"

    # ------------------------------------------------------------------------------------------
    # numba loop kernels
    # ------------------------------------------------------------------------------------------
    def needed_members(self) -> set[int]:
        """Positions of the members whose values backward reads (or that leave the region):
        the rest need no history."""
        return self._needed()[0]

    def _needed(self) -> tuple[set[int], set[int]]:
        """Members and external inputs that backward reads (besides the gradients)."""
        need_v: set[int] = set(self.exposed)
        need_e: set[int] = set()
        for k, op in enumerate(self.ops):
            if op.kind in ("tanh", "sigmoid", "exp"):
                need_v.add(k)
            if op.kind in ("mul", "relu", "square"):
                for s, j in op.args:
                    (need_v if s == "v" else need_e).add(j)
        return need_v, need_e

    def _numba_source(self, keep: bool) -> str:
        """Forward and backward loop kernels; the forward stores only what backward reads and
        what leaves the region (only the exposed members when ``keep`` is False)."""
        consts: dict[float, str] = {}

        def lit(c: float) -> str:
            # Constants in the arrays' own dtype, or float32 arithmetic would widen to float64.
            return consts.setdefault(float(c), f"K{len(consts)}")

        n, ne = len(self.ops), len(self.ext)
        need_v, need_e = self._needed()
        stored = sorted(need_v) if keep else sorted(self.exposed)
        fwd_lines, bwd_lines = [], []
        for k, op in enumerate(self.ops):
            a = [f"{s}{j}" for s, j in op.args]
            fwd_lines.append(f"v{k} = {_scalar_forward(op, a, lit)}")
        # Backward, in scalars: contributions are summed per target.
        contrib: dict[tuple[str, int], list[str]] = {}
        exposed_pos = {k: p for p, k in enumerate(self.exposed)}
        for k in range(n - 1, -1, -1):
            op = self.ops[k]
            terms = contrib.pop(("v", k), [])
            if k in exposed_pos:
                terms = [f"gx{exposed_pos[k]}[s]"] + terms
            if not terms:
                continue
            bwd_lines.append(f"g{k} = " + " + ".join(terms))
            a = [f"{s}{j}" for s, j in op.args]
            for arg, term in zip(op.args, _scalar_grads(op, a, f"v{k}", f"g{k}", lit)):
                contrib.setdefault(arg, []).append(term)
        ind = " " * 12

        def row_e(j: int) -> str:
            c = self.ext_cols[j]
            if isinstance(self.ext[j], tuple):  # a weight vector: the same for every row
                return f"re{j} = E[{j}]"
            return f"re{j} = E[{j}][r]" if c is None else f"re{j} = E[{j}][r, {c[0]}:{c[0] + c[1]}]"

        kdefs = [f"    {name} = V[0].dtype.type({c!r})" for c, name in consts.items()]
        lines = ["def forward(E, V):", *kdefs,
                 "    for r in range(V[0].shape[0]):",
                 *("        " + x for x in [row_e(j) for j in range(ne)]
                   + [f"rv{k} = V[{k}][r]" for k in stored]),
                 "        for s in range(V[0].shape[1]):",
                 *(ind + x for x in [f"e{j} = re{j}[s]" for j in range(ne)] + fwd_lines
                   + [f"rv{k}[s] = v{k}" for k in stored]),
                 "def backward(E, V, GX, GE):", *kdefs,
                 "    for r in range(V[0].shape[0]):",
                 *("        " + x for x in [row_e(j) for j in sorted(need_e)]
                   + [f"rv{k} = V[{k}][r]" for k in sorted(need_v)]
                   + [f"gx{p} = GX[{p}][r]" for p in range(len(self.exposed))]
                   + [f"rg{j} = GE[{j}]" if j in self.params else
                      f"rg{j} = GE[{j}][r]" if j not in self.direct or self.ext_cols[j] is None
                      else f"rg{j} = GE[{j}][r, {self.ext_cols[j][0]}:"
                      f"{self.ext_cols[j][0] + self.ext_cols[j][1]}]"
                      for j in range(ne) if j not in self.skip]),
                 "        for s in range(V[0].shape[1]):",
                 *(ind + x for x in [f"e{j} = re{j}[s]" for j in sorted(need_e)]
                   + [f"v{k} = rv{k}[s]" for k in sorted(need_v)] + bwd_lines
                   + [f"rg{j}[s] {'+=' if j in self.params else '='} "
                      + (" + ".join(contrib.get(("e", j), [])) or "0.0")
                      for j in range(ne) if j not in self.skip])]
        tanh = "TANH32(" if self.dtype == numpy.float32 else "math.tanh("
        return "\n".join(lines).replace("TANH(", tanh) + "\n"

    def cuda_source(self) -> tuple[str, str, str, str]:
        """CuPy ``ElementwiseKernel`` parts ``(in_params, out_params, operation, name)`` of the
        forward pass writing every member (float or double, by the region's dtype); the forward
        and backward kernels the ``"cuda"`` kernels run: ``cuda.region_source``."""
        return _cuda().cuda_source(self.ops, len(self.ext), self.dtype)


def _cuda() -> Any:
    """:mod:`nngraph_py.compile.cuda` (imported on first use: it imports this module)."""
    from . import cuda

    return cuda


# ------------------------------------------------------------------------------------------------
# numba
# ------------------------------------------------------------------------------------------------
_KERNELS: dict[str, tuple[Any, Any]] = {}


def numba_available() -> bool:
    """Whether the generated numba kernels can run (numba installed, not switched off by
    ``NNGRAPH_PY_NUMBA=0``)."""
    from . import accel

    return accel.available()


def _numba_compile(src: str) -> tuple[Any, Any]:
    """The jitted ``(forward, backward)`` of a generated source, compiled once per source and
    process (and cached on disk across processes: :mod:`nngraph_py.compile._numba_region`)."""
    if src not in _KERNELS:
        from ._numba_region import compile_source

        _KERNELS[src] = compile_source(src, ("forward", "backward"))  # type: ignore[assignment]
    return _KERNELS[src]
