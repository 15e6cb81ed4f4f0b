"""Element-wise regions as CuPy ``ElementwiseKernel`` source, forward and backward.

The third printer of a region's scalar expressions (:mod:`nngraph_py.compile.elementwise` holds
the rules, ``_scalar_forward`` and ``_scalar_grads``, shared with the numba printer): the same
ops, printed as CUDA C for one ``cupy.ElementwiseKernel`` forward and one backward, typed by the
region's dtype (``float``: ``tanhf``, ``expf``, ``0.5f``; ``double``: ``tanh``, ``exp``, ``0.5``).

Parameters (CuPy binds each name to one element of its array; ``n``, ``i`` and names starting
with ``_`` are CuPy's own and never used):

* forward: inputs ``e<j>`` (the external inputs), outputs ``v<k>`` (the members stored: what the
  backward reads and what leaves the region; only the exposed members when no backward follows);
* backward: inputs ``e<j>`` and ``v<k>`` that the gradient rules read (and nothing else), the
  exposed members' gradients ``gx<p>``; outputs ``ge<j>``, the gradient of every external input,
  the sum of its contributions.

Locals: ``m<k>`` (a member's value, forward) and ``g<k>`` (a member's gradient, backward); only
the members the stored ones depend on are computed.

An external input that is the columns ``[off, off + width)`` of a wider array (a Linear group's
product) is passed as that column view, and a ``CMul`` weight vector ``(H,)`` as is: CuPy indexes
strided views and broadcasts the vector over the rows. The gradient of a weight vector is
written per row (the caller sums the rows), and that of a ``direct`` input into the caller's wide
gradient array, at its columns.

:class:`CudaRegionKernels` builds the ``ElementwiseKernel`` objects (CuPy is imported there only)
and runs them with the contract of ``Region.forward`` / ``Region.backward``.

No Lua Torch original: cutorch ran every node as its own kernel.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy

from ..errors import GraphError
from .elementwise import Op, _scalar_forward, _scalar_grads

__all__ = ["KernelSource", "RegionSource", "region_source", "cuda_source", "applies",
           "CudaRegionKernels"]

_CTYPES = {numpy.dtype(numpy.float32): ("float", "float32", "f"),
           numpy.dtype(numpy.float64): ("double", "float64", "")}


class KernelSource(NamedTuple):
    """The parts of one ``cupy.ElementwiseKernel``: ``cupy.ElementwiseKernel(*source)``."""

    in_params: str
    out_params: str
    operation: str
    name: str


@dataclass(frozen=True)
class RegionSource:
    """A region's kernels and the order of their arguments.

    Attributes:
        forward: the forward kernel.
        backward: the backward kernel (None: planned for inference).
        fwd_ext: external inputs the forward reads, in parameter order.
        fwd_stored: members the forward writes, in parameter order.
        bwd_ext: external inputs the backward reads.
        bwd_vals: members the backward reads (a subset of ``fwd_stored``).
        n_exposed: how many exposed gradients (``gx<p>``) the backward takes.
        n_ext: how many external inputs (the backward writes ``ge<j>`` for each).
    """

    forward: KernelSource
    backward: KernelSource | None
    fwd_ext: tuple[int, ...]
    fwd_stored: tuple[int, ...]
    bwd_ext: tuple[int, ...]
    bwd_vals: tuple[int, ...]
    n_exposed: int
    n_ext: int


def applies(xp: Any, dtype: Any) -> bool:
    """Whether the generated kernels can run: CuPy arrays of float32 or float64."""
    return getattr(xp, "__name__", "") == "cupy" and numpy.dtype(dtype) in _CTYPES


# ------------------------------------------------------------------------------------------------
# Printing the shared scalar expressions as C
# ------------------------------------------------------------------------------------------------
def _literal(ctype: str) -> Callable[[float], str]:
    suffix = "f" if ctype == "float" else ""

    def lit(c: float) -> str:
        c = float(c)
        if c != c:
            return f"(({ctype})(0.0 / 0.0))"
        if c in (float("inf"), float("-inf")):
            return f"(({ctype})({'-' if c < 0 else ''}1.0 / 0.0))"
        text = repr(c)
        if "e" not in text and "." not in text:
            text += ".0"
        return f"({text}{suffix})" if c < 0 or text.startswith("-") else f"{text}{suffix}"

    return lit


def _split_call(expr: str, start: int) -> tuple[list[str], int]:
    """The top-level comma-separated arguments of the call whose ``(`` is at ``start``, and the
    index just past its ``)``."""
    depth, args, cur = 0, [], start + 1
    for pos in range(start, len(expr)):
        ch = expr[pos]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(expr[cur:pos].strip())
                return args, pos + 1
        elif ch == "," and depth == 1:
            args.append(expr[cur:pos].strip())
            cur = pos + 1
    raise GraphError(f"cuda printer: unbalanced parentheses in {expr!r}")


def _expand(expr: str, name: str, rule: Callable[[list[str]], str]) -> str:
    """Replace every call ``name(...)`` of ``expr`` by ``rule(args)`` (arguments expanded
    first)."""
    pattern = re.compile(r"(?<![A-Za-z0-9_])" + name + r"\(")
    while True:
        m = pattern.search(expr)
        if m is None:
            return expr
        args, end = _split_call(expr, m.end() - 1)
        args = [_expand(a, name, rule) for a in args]
        expr = expr[:m.start()] + rule(args) + expr[end:]


def _printer(ctype: str) -> Callable[[str], str]:
    """The C spelling of the shared rules' helpers: ``TANH``, ``EXP``, ``MAX0`` (ReLU: ``x`` where
    ``x > 0``, else ``x * 0``, so NaN stays NaN as in NumPy) and ``POS`` (ReLU's gradient)."""
    f = "f" if ctype == "float" else ""
    zero = _literal(ctype)(0.0)

    def c(expr: str) -> str:
        expr = _expand(expr, "TANH", lambda a: f"tanh{f}({a[0]})")
        expr = _expand(expr, "EXP", lambda a: f"exp{f}({a[0]})")
        expr = _expand(expr, "MAX0",
                       lambda a: f"(({a[0]}) > {zero} ? ({a[0]}) : ({a[0]}) * {zero})")
        return _expand(expr, "POS",
                       lambda a: f"(({a[0]}) > {zero} ? ({a[1]}) : ({a[1]}) * {zero})")

    return c


def _name(kind: str, ctype: str, in_params: str, out_params: str, operation: str) -> str:
    digest = hashlib.sha1("\n".join((in_params, out_params, operation)).encode()).hexdigest()
    return f"nngraph_region_{kind}_{'f32' if ctype == 'float' else 'f64'}_{digest[:12]}"


_NAME_RE = re.compile(r"(?<![A-Za-z0-9_.])([ev])(\d+)(?![A-Za-z0-9_])")


def region_source(ops: Sequence[Op], n_ext: int, exposed: Sequence[int], dtype: Any,
                  keep: bool = True) -> RegionSource:
    """The CuPy kernels of a region (see the module docstring).

    Args:
        ops: the members (``elementwise.region_ops``), in topological order.
        n_ext: how many external inputs.
        exposed: the members (indices into ``ops``) whose values and gradients cross the
            region's boundary, in the order the backward takes their gradients.
        dtype: float32 or float64.
        keep: whether a backward follows (False: the forward stores only the exposed members and
            there is no backward kernel).
    """
    dt = numpy.dtype(dtype)
    if dt not in _CTYPES:
        raise GraphError(f"CUDA region kernels take float32 or float64, got {dt}")
    ctype, tname, _ = _CTYPES[dt]
    lit, c = _literal(ctype), _printer(ctype)
    n = len(ops)
    exposed = list(exposed)

    # Backward first: what it reads decides what the forward stores.
    bwd_lines: list[str] = []
    contrib: dict[tuple[str, int], list[str]] = {}
    position = {k: p for p, k in enumerate(exposed)}
    for k in range(n - 1, -1, -1):
        op = ops[k]
        terms = contrib.pop(("v", k), [])
        if k in position:
            terms = [f"gx{position[k]}"] + terms
        if not terms:
            continue  # no gradient reaches this member
        bwd_lines.append(f"{ctype} g{k} = {' + '.join(terms)};")
        a = [f"{s}{j}" for s, j in op.args]
        for arg, term in zip(op.args, _scalar_grads(op, a, f"v{k}", f"g{k}", lit)):
            contrib.setdefault(arg, []).append(c(term))
    bwd_lines = [c(line) for line in bwd_lines]
    bwd_lines += [f"ge{j} = " + (" + ".join(contrib.get(("e", j), [])) or lit(0.0)) + ";"
                  for j in range(n_ext)]
    read = {(s, int(j)) for line in bwd_lines for s, j in _NAME_RE.findall(line)}
    bwd_ext = tuple(sorted(j for s, j in read if s == "e"))
    bwd_vals = tuple(sorted(k for s, k in read if s == "v"))

    # Forward: the members the stored ones depend on as locals (m<k>), the stored written out.
    stored = tuple(sorted(set(bwd_vals) | set(exposed))) if keep else tuple(sorted(exposed))
    live = set(stored)
    for k in range(n - 1, -1, -1):
        if k in live:
            live.update(j for s, j in ops[k].args if s == "v")
    fwd_lines = []
    for k, op in enumerate(ops):
        if k not in live:
            continue
        a = [f"e{j}" if s == "e" else f"m{j}" for s, j in op.args]
        fwd_lines.append(f"{ctype} m{k} = {c(_scalar_forward(op, a, lit))};")
    fwd_lines += [f"v{k} = m{k};" for k in stored]
    fwd_ext = tuple(sorted({j for k in live for s, j in ops[k].args if s == "e"}))
    f_in = ", ".join(f"{tname} e{j}" for j in fwd_ext)
    f_out = ", ".join(f"{tname} v{k}" for k in stored)
    f_op = "\n".join(fwd_lines)
    forward = KernelSource(f_in, f_out, f_op, _name("fwd", ctype, f_in, f_out, f_op))
    backward = None
    if keep:
        b_in = ", ".join([f"{tname} e{j}" for j in bwd_ext] + [f"{tname} v{k}" for k in bwd_vals]
                         + [f"{tname} gx{p}" for p in range(len(exposed))])
        b_out = ", ".join(f"{tname} ge{j}" for j in range(n_ext))
        b_op = "\n".join(bwd_lines)
        backward = KernelSource(b_in, b_out, b_op, _name("bwd", ctype, b_in, b_out, b_op))
    return RegionSource(forward, backward, fwd_ext, stored, bwd_ext, bwd_vals,
                        len(exposed), n_ext)


def cuda_source(ops: Sequence[Op], n_ext: int, dtype: Any) -> KernelSource:
    """The forward of a region writing every member, as ``ElementwiseKernel`` parts
    ``(in_params, out_params, operation, name)``: ``cupy.ElementwiseKernel(*cuda_source(...))``.
    """
    return region_source(ops, n_ext, range(len(ops)), dtype, keep=False).forward


# ------------------------------------------------------------------------------------------------
# Running them
# ------------------------------------------------------------------------------------------------
def _cupy_kernel(source: KernelSource) -> Callable[..., Any]:
    import cupy  # type: ignore  # only where the kernels run

    return cupy.ElementwiseKernel(*source, no_return=True)


class CudaRegionKernels:
    """A region run by its generated CuPy kernels, with the contract of ``Region.forward`` and
    ``Region.backward`` (numba's: the forward writes the stored members into ``vals``; the
    backward returns the external inputs' gradients, region-owned arrays or ``dest`` columns).

    Args:
        region: an ``elementwise.Region`` (its ops, external inputs, columns, weight vectors,
            direct inputs, exposed members, shape, dtype, array module).
        keep: whether backward will be called (gradient buffers are planned only then).
        compile_kernel: turns a :class:`KernelSource` into a callable taking the inputs then the
            outputs (default: ``cupy.ElementwiseKernel``, built on first use).

    Attributes:
        source: the :class:`RegionSource`.
    """

    def __init__(self, region: Any, keep: bool = True,
                 compile_kernel: Callable[[KernelSource], Callable[..., Any]] | None = None):
        self.region = region
        self.source = region_source(region.ops, len(region.ext), region.exposed, region.dtype,
                                    keep)
        self._compile = compile_kernel or _cupy_kernel
        self._fwd: Callable[..., Any] | None = None
        self._bwd: Callable[..., Any] | None = None
        xp = region.xp
        self._gext = [xp.empty(region.shape, dtype=region.dtype) for _ in region.ext] \
            if keep else None

    def text(self) -> str:
        """The generated source, for inspection (``Region.source``)."""
        parts = [self.source.forward] + ([self.source.backward] if self.source.backward else [])
        return "\n\n".join(f"// {k.name}\n// in: {k.in_params}\n// out: {k.out_params}\n"
                           f"{k.operation}" for k in parts) + "\n"

    def build(self) -> None:
        """Create the kernel objects now (else on the first call)."""
        if self._fwd is None:
            self._fwd = self._compile(self.source.forward)
        if self._bwd is None and self.source.backward is not None:
            self._bwd = self._compile(self.source.backward)

    def _arg(self, j: int, a: Any) -> Any:
        cols = self.region.ext_cols[j]
        return a if cols is None else a[:, cols[0]:cols[0] + cols[1]]

    def forward(self, ext: Sequence[Any], vals: Sequence[Any]) -> None:
        """Compute the stored members into ``vals`` (one array per member, the region's shape)."""
        if self._fwd is None:
            self.build()
        assert self._fwd is not None
        src = self.source
        self._fwd(*[self._arg(j, ext[j]) for j in src.fwd_ext],
                  *[vals[k] for k in src.fwd_stored])

    def backward(self, ext: Sequence[Any], vals: Sequence[Any], g_exposed: Sequence[Any],
                 dest: Sequence[Any] | None = None) -> list[Any]:
        """The gradients of the external inputs (``ext`` order) from those of the exposed members;
        ``dest[j]`` for the region's ``direct`` inputs (their columns are written there)."""
        if self._gext is None or self.source.backward is None:
            raise GraphError("this region was planned for inference: it has no gradient buffers")
        if self._bwd is None:
            self.build()
        region, src = self.region, self.source
        ge = list(self._gext)
        if region.direct:
            if dest is None:
                raise GraphError("a region with direct gradients needs dest")
            for j in region.direct:  # the caller's array, or its columns
                cols = region.ext_cols[j]
                ge[j] = dest[j] if cols is None else dest[j][:, cols[0]:cols[0] + cols[1]]
        if len(g_exposed) != src.n_exposed:
            raise GraphError(f"region backward: expected {src.n_exposed} exposed gradients, got "
                             f"{len(g_exposed)}")
        assert self._bwd is not None
        self._bwd(*[self._arg(j, ext[j]) for j in src.bwd_ext], *[vals[k] for k in src.bwd_vals],
                  *g_exposed, *ge)
        return ge
