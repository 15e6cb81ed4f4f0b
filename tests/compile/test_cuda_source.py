"""The CuPy ``ElementwiseKernel`` source of element-wise regions (``nngraph_py.compile.cuda``),
proved without a GPU: each generated ``operation`` body is compiled as C by the system compiler
inside a harness that does what CuPy's kernel does (one loop over the elements, every parameter
name bound to its element: strided column views and broadcast weight vectors included), loaded
through ctypes and run on NumPy arrays by :class:`CudaRegionKernels` itself; forward values and
backward gradients must match the NumPy passes of the same Region (float32 and float64)."""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.cells import peephole_lstm_cell as peephole_cell  # [x, h, c] -> [h', c']
from lstm import make_gru_cell, make_lstm_cell
from nngraph_py import nn
from nngraph_py.compile import CellSignature
from nngraph_py.compile.cuda import CudaRegionKernels, KernelSource, cuda_source, region_source
from nngraph_py.compile.elementwise import Op, Region
from nngraph_py.compile.timeloop import CompiledSequence
from nngraph_py.errors import GraphError

CC = shutil.which("gcc") or shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (gcc/cc) on this machine")

_CT = {"float32": "float", "float64": "double"}
_RESERVED = re.compile(r"(?<![A-Za-z0-9_])(n|i|_[A-Za-z0-9_]*)(?![A-Za-z0-9_])")


def _params(text: str) -> list[tuple[str, str]]:
    return [tuple(p.split()) for p in text.split(",") if p.strip()]  # type: ignore[misc]


def c_function(src: KernelSource) -> str:
    """A C function running ``src.operation`` over ``rows x cols`` elements, as CuPy's
    elementwise kernel does: inputs are values, outputs are the elements themselves (CuPy binds a
    reference; here a macro over a pointer); ``RS``/``CS`` are each argument's row and column
    strides in elements (0 for a broadcast axis, the wide array's width for a column view)."""
    ins, outs = _params(src.in_params), _params(src.out_params)
    lines = [f"void {src.name}(long rows, long cols, char **P, const long *RS, const long *CS)",
             "{", "  for (long i = 0; i < rows * cols; i++) {",
             "    long r_ = i / cols, c_ = i % cols;"]
    for q, (t, name) in enumerate(ins):
        ct = _CT[t]
        lines.append(f"    const {ct} {name} = "
                     f"((const {ct} *)P[{q}])[r_ * RS[{q}] + c_ * CS[{q}]];")
    for q, (t, name) in enumerate(outs, len(ins)):
        ct = _CT[t]
        lines.append(f"    {ct} *p_{name} = ({ct} *)P[{q}] + r_ * RS[{q}] + c_ * CS[{q}];")
        lines.append(f"#define {name} (*p_{name})")
    lines += ["    {", src.operation, "    }"]
    lines += [f"#undef {name}" for _, name in outs]
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


class CHarness:
    """``compile_kernel`` for :class:`CudaRegionKernels`: kernels registered are compiled
    together into one shared library on the first call of any of them."""

    def __init__(self, tmp: object):
        self.tmp, self.pending, self.lib, self.count = tmp, {}, None, 0
        self.calls = 0  # kernel launches, so that a test knows the kernels ran

    def __call__(self, src: KernelSource):
        self.pending[src.name] = src
        return lambda *arrays: self.run(src, arrays)

    def _build(self) -> None:
        self.count += 1
        path_c = self.tmp / f"kernels{self.count}.c"
        path_so = self.tmp / f"kernels{self.count}.so"
        path_c.write_text("#include <math.h>\n\n" + "\n".join(c_function(s)
                                                                for s in self.pending.values()))
        proc = subprocess.run([CC, "-std=c99", "-O1", "-Wall", "-Werror", "-ffp-contract=off",
                               "-shared", "-fPIC", "-o", str(path_so), str(path_c), "-lm"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr + "\n" + path_c.read_text()
        self.lib, self.built = ctypes.CDLL(str(path_so)), set(self.pending)

    def run(self, src: KernelSource, arrays: tuple) -> None:
        if self.lib is None or src.name not in self.built:
            self._build()
        ins, outs = _params(src.in_params), _params(src.out_params)
        assert len(arrays) == len(ins) + len(outs), (src, len(arrays))
        shape = np.broadcast_shapes(*[a.shape for a in arrays])
        for a in arrays[len(ins):]:
            assert a.shape == shape and a.flags.writeable, "an output must have the full shape"
        full = shape if len(shape) == 2 else (1,) + shape
        ptrs, rs, cs = [], [], []
        for a, (t, _) in zip(arrays, ins + outs):
            assert a.dtype == np.dtype(t), f"{t} parameter given {a.dtype}"
            b = np.broadcast_to(a, full)
            ptrs.append(b.ctypes.data)
            rs.append(b.strides[0] // b.itemsize)
            cs.append(b.strides[1] // b.itemsize)
        k = len(arrays)
        self.calls += 1
        getattr(self.lib, src.name)(ctypes.c_long(full[0]), ctypes.c_long(full[1]),
                                    (ctypes.c_void_p * k)(*ptrs), (ctypes.c_long * k)(*rs),
                                    (ctypes.c_long * k)(*cs))


@pytest.fixture()
def harness(tmp_path):
    return CHarness(tmp_path)


# ------------------------------------------------------------------------------------------------
# Regions to check
# ------------------------------------------------------------------------------------------------


H, F, B = 6, 4, 5
CELLS = {
    "gru": (lambda: make_gru_cell(F, H), CellSignature(0, (1,), (0,), (H,), 0)),
    "lstm": (lambda: make_lstm_cell(F, H), CellSignature(0, (2, 1), (1, 0), (H, H), 0)),
    "peephole": (lambda: peephole_cell(F, H), CellSignature(0, (1, 2), (0, 1), (H, H), 0)),
}


def cell_regions(name: str, dtype) -> tuple[list[Region], CompiledSequence, object]:
    """The regions the time-loop compiler forms for a cell (NumPy passes)."""
    make, sig = CELLS[name]
    cell = make()
    cell.float() if dtype == np.float32 else cell.double()
    ex = CompiledSequence(cell, sig, kernels="numpy")
    x = np.random.default_rng(0).standard_normal((3, B, F)).astype(dtype)
    ex.forward(x, [None] * len(sig.state_sizes))
    (plan,) = ex._plans.values()
    assert plan.regions
    return plan.regions, ex, x


def random_region(rng, dtype, n_ext: int, n_members: int) -> Region:
    """A region of random ops over a fake plan: plan entries 0..n_ext-1 are external inputs (some
    of them columns of a wider array, some written direct), then the members."""
    plan = [SimpleNamespace(parents=[], module=None) for _ in range(n_ext)]
    unary = [nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Square, nn.Identity, nn.Exp,
             lambda: nn.MulConstant(float(rng.choice([-1.5, 0.25, 3.0]))),
             lambda: nn.AddConstant(float(rng.choice([-0.5, 1e-3, 2.0])))]
    for m in range(n_members):
        avail = list(range(len(plan)))
        kind = rng.choice(["unary", "add", "mul", "sub", "cmul"], p=[.45, .2, .15, .1, .1])
        if kind == "unary":
            f = unary[rng.integers(len(unary))]
            parent = int(rng.choice(avail))
            if f is nn.Exp:  # keep exp's argument bounded: apply it to a squashed value
                plan.append(SimpleNamespace(parents=[parent], module=nn.Tanh()))
                parent = len(plan) - 1
            plan.append(SimpleNamespace(parents=[parent], module=f()))
        elif kind == "cmul":
            plan.append(SimpleNamespace(parents=[int(rng.choice(avail))], module=nn.CMul(H)))
        else:
            k = 2 if kind == "sub" else int(rng.integers(1, 4))
            parents = [int(p) for p in rng.choice(avail, size=k)]
            module = {"add": nn.CAddTable, "mul": nn.CMulTable, "sub": nn.CSubTable}[kind]()
            plan.append(SimpleNamespace(parents=parents, module=module))
    nodes = list(range(n_ext, len(plan)))
    exposed = sorted({nodes[-1], *[int(q) for q in rng.choice(nodes, size=2)]})
    cols = {q: (int(rng.integers(0, 3)) * H, H) for q in range(n_ext) if rng.random() < 0.5}
    direct = [q for q in range(n_ext) if rng.random() < 0.4]
    return Region(nodes, plan, exposed, (B, H), dtype, np, True, "numpy", ext_cols=cols,
                  direct=direct)


def region_inputs(r: Region, rng) -> tuple[list, list, list | None]:
    """External inputs (wide arrays for columns, vectors for weights), exposed gradients, and
    ``dest`` (wide gradient arrays, pre-filled, for direct inputs)."""
    dt = r.dtype
    ext = []
    for j, c in enumerate(r.ext_cols):
        if j in r.params:
            ext.append(rng.standard_normal(r.shape[-1]).astype(dt))
        elif c is not None:
            ext.append(rng.standard_normal((r.shape[0], c[0] + c[1] + 3)).astype(dt))
        else:
            ext.append(rng.standard_normal(r.shape).astype(dt))
    gx = [rng.standard_normal(r.shape).astype(dt) for _ in r.exposed]
    dest = None
    if r.direct:
        dest = [None] * len(r.ext)
        for j in r.direct:
            c = r.ext_cols[j]
            shape = r.shape if c is None else (r.shape[0], c[0] + c[1] + 2)
            dest[j] = rng.standard_normal(shape).astype(dt)
    return ext, gx, dest


def check_region(r: Region, harness: CHarness, rng, keep_false: bool = True) -> None:
    """Forward and backward of the generated kernels (via C) against the NumPy passes."""
    tol = dict(rtol=2e-5, atol=2e-6) if r.dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    ext, gx, dest = region_inputs(r, rng)
    # Reference: the NumPy passes.
    ref_v = [np.empty(r.shape, r.dtype) for _ in r.nodes]
    r.forward(ext, ref_v)
    ref_dest = None if dest is None else [None if d is None else d.copy() for d in dest]
    ref_g = [g.copy() for g in r.backward(ext, ref_v, gx, ref_dest)]
    # The generated kernels.
    k = CudaRegionKernels(r, keep=True, compile_kernel=harness)
    vals = [np.full(r.shape, np.nan, r.dtype) for _ in r.nodes]
    k.forward(ext, vals)
    stored = set(k.source.fwd_stored)
    assert set(r.exposed) <= stored
    for m in range(len(r.nodes)):
        if m in stored:
            np.testing.assert_allclose(vals[m], ref_v[m], **tol, err_msg=f"member {m}")
        else:
            assert np.isnan(vals[m]).all(), f"member {m} is not stored but was written"
    mine_dest = None if dest is None else [None if d is None else d.copy() for d in dest]
    ge = k.backward(ext, vals, gx, mine_dest)
    assert len(ge) == len(r.ext)
    for j, (a, b) in enumerate(zip(ge, ref_g)):
        np.testing.assert_allclose(a, b, **tol, err_msg=f"gradient of external input {j}")
    if dest is not None:
        for j in r.direct:  # the columns written, the rest of the wide array untouched
            np.testing.assert_allclose(mine_dest[j], ref_dest[j], **tol)
            c = r.ext_cols[j]
            if c is not None:
                np.testing.assert_array_equal(mine_dest[j][:, :c[0]], dest[j][:, :c[0]])
                np.testing.assert_array_equal(mine_dest[j][:, c[0] + c[1]:],
                                              dest[j][:, c[0] + c[1]:])
            assert np.shares_memory(ge[j], mine_dest[j])
    # A second call on the same buffers gives the same (nothing accumulates across calls).
    ge2 = [g.copy() for g in k.backward(ext, vals, gx, mine_dest)]
    for a, b in zip(ge2, ref_g):
        np.testing.assert_allclose(a, b, **tol)
    if keep_false:
        k0 = CudaRegionKernels(r, keep=False, compile_kernel=harness)
        assert k0.source.backward is None and set(k0.source.fwd_stored) == set(r.exposed)
        v0 = [np.full(r.shape, np.nan, r.dtype) for _ in r.nodes]
        k0.forward(ext, v0)
        for m in r.exposed:
            np.testing.assert_allclose(v0[m], ref_v[m], **tol)
        with pytest.raises(GraphError, match="inference"):
            k0.backward(ext, v0, gx, dest)


def check_source_text(r: Region) -> None:
    """No CuPy-reserved names; every input parameter is read by the body; the backward reads
    only what its rules need (a subset of what the forward stores)."""
    src = region_source(r.ops, len(r.ext), r.exposed, r.dtype, keep=True)
    ct = "float" if r.dtype == np.float32 else "double"
    for ks in (src.forward, src.backward):
        names = [n for _, n in _params(ks.in_params) + _params(ks.out_params)]
        assert not any(_RESERVED.fullmatch(n) for n in names), names
        assert not _RESERVED.search(ks.operation), ks.operation
        for t, name in _params(ks.in_params) + _params(ks.out_params):
            assert t == str(r.dtype)
            assert re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", ks.operation), name
        other = "double" if ct == "float" else "float"
        assert not re.search(rf"\b{other}\b", ks.operation)
        if ct == "double":
            assert not re.search(r"\b(tanhf|expf)\(|\d+f\b", ks.operation)
        else:
            assert not re.search(r"\b(tanh|exp)\(", ks.operation)
    assert set(src.bwd_vals) <= set(src.fwd_stored)


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------
@needs_cc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_cell_regions_match_numpy_passes(cell, dtype, harness):
    regions, _, _ = cell_regions(cell, dtype)
    rng = np.random.default_rng(1)
    for r in regions:
        check_source_text(r)
        check_region(r, harness, rng)
    if cell == "peephole":  # the CMul weight vectors enter as broadcast (H,) inputs
        assert any(r.params for r in regions)
    else:  # the gates read columns of the Linear groups' products
        assert any(c is not None for r in regions for c in r.ext_cols)


@needs_cc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_regions_match_numpy_passes(dtype, harness):
    rng = np.random.default_rng(7 if dtype == np.float32 else 8)
    regions = [random_region(rng, dtype, int(rng.integers(1, 5)), int(rng.integers(2, 10)))
               for _ in range(12)]
    kinds = {op.kind for r in regions for op in r.ops}
    assert kinds >= {"tanh", "sigmoid", "relu", "exp", "square", "mulc", "addc", "add", "mul",
                     "sub", "identity"}, kinds
    for r in regions:
        CudaRegionKernels(r, compile_kernel=harness).build()  # one C library for all of them
    for r in regions:
        check_source_text(r)
        check_region(r, harness, rng, keep_false=False)


@needs_cc
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_sequence_with_generated_kernels(harness, monkeypatch, masked):
    """``CompiledSequence(kernels="cuda")`` end to end, its regions run by the generated kernels
    (compiled as C: ``cuda.applies`` is made to accept NumPy arrays and the kernel builder is
    the harness): the same outputs and gradients as the NumPy passes, through the static step
    loop (no mask) and the general time loop (a mask)."""
    from lstm.model import lengths_mask
    from nngraph_py.compile import cuda

    monkeypatch.setattr(cuda, "applies", lambda xp, dtype: np.dtype(dtype) in (np.float32,
                                                                              np.float64))
    monkeypatch.setattr(cuda, "_cupy_kernel", harness)
    for name in sorted(CELLS):
        make, sig = CELLS[name]
        cell = make()
        cell.double()
        rng = np.random.default_rng(3)
        T = 4
        x = rng.standard_normal((T, B, F))
        s0 = [rng.standard_normal((B, s)) for s in sig.state_sizes]
        gout = rng.standard_normal((T, B, H))
        gfin = [rng.standard_normal((B, s)) for s in sig.state_sizes]
        mask = lengths_mask(np.array([4, 1, 2, 4, 3]), B, T, "cpu", "test") if masked else None

        def run(ex):
            out, fin = ex.forward(x, s0, mask)
            out, fin = out.copy(), [f.copy() for f in fin]
            gx, g0 = ex.backward(gout, gfin)
            cell.zero_grad_parameters()
            ex.acc_grad_parameters(1.0)
            return [out, *fin, gx.copy(), *[g.copy() for g in g0],
                    *[g.copy() for g in cell.parameters()[1]]]

        ref = run(CompiledSequence(cell, sig, kernels="numpy"))
        ex = CompiledSequence(cell, sig, kernels="cuda")
        before = harness.calls
        for _ in range(2):  # the second call reuses the plan and its buffers
            got = run(ex)
            for a, b in zip(got, ref):
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12, err_msg=name)
        (info,) = ex.plan_info()
        assert set(info["region_kernels"]) == {"cuda"}, info
        if "static_loop" in info:
            assert info["static_loop"] is True  # (used only without a mask)
        assert harness.calls - before >= 2 * 2 * T  # a forward and a backward per step


def test_source_typed_by_dtype():
    ops = [Op("sigmoid", (("e", 0),)), Op("mulc", (("v", 0),), -2.5), Op("exp", (("v", 1),)),
           Op("relu", (("e", 1),)), Op("mul", (("v", 2), ("v", 3), ("e", 0)))]
    f32 = region_source(ops, 2, [4], np.float32)
    f64 = region_source(ops, 2, [4], np.float64)
    assert "tanhf(0.5f * e0)" in f32.forward.operation and "expf(m1)" in f32.forward.operation
    assert "(-2.5f)" in f32.forward.operation and "float m0" in f32.forward.operation
    assert "tanh(0.5 * e0)" in f64.forward.operation and "exp(m1)" in f64.forward.operation
    assert "double m4" in f64.forward.operation
    assert f32.forward.in_params == "float32 e0, float32 e1"
    assert f64.backward.out_params == "float64 ge0, float64 ge1"
    assert f32.forward.name != f64.forward.name and f32.forward.name.startswith("nngraph_region")
    # ReLU keeps NaN (x * 0), as NumPy's maximum does; its gradient is g where x > 0.
    assert "((e1) > 0.0f ? (e1) : (e1) * 0.0f)" in f32.forward.operation
    assert "? (g3) : (g3) * 0.0f)" in f32.backward.operation
    # The backward reads what the rules need: e0 (a factor of the product; sigmoid's rule reads
    # its output), e1 (ReLU's input), v0 (sigmoid), v2 (exp, product), v3 (product); not v1
    # (mulc's rule reads nothing) and not v4 (the product's own value).
    assert f32.bwd_ext == (0, 1) and f32.bwd_vals == (0, 2, 3)
    assert "v1" not in f32.backward.in_params and "v4" not in f32.backward.in_params
    assert f32.fwd_stored == (0, 2, 3, 4)
    # Inference: only the exposed member is written, and there is no backward.
    inf = region_source(ops, 2, [4], np.float32, keep=False)
    assert inf.fwd_stored == (4,) and inf.backward is None
    assert inf.forward.out_params == "float32 v4"
    with pytest.raises(GraphError, match="float32 or float64"):
        region_source(ops, 2, [4], np.float16)


def test_cuda_source_forward_of_every_member():
    """``Region.cuda_source()`` (moved here): the forward with every member an output."""
    ops = [Op("tanh", (("e", 0),)), Op("add", (("v", 0), ("e", 1)))]
    ks = cuda_source(ops, 2, np.float64)
    assert isinstance(ks, tuple) and len(ks) == 4
    assert ks.out_params == "float64 v0, float64 v1"
    assert ks.operation.splitlines()[-2:] == ["v0 = m0;", "v1 = m1;"]


def test_device_check_script_runs_on_the_host(capsys):
    """``python -m benchmarks.cuda_check``: without a GPU it says so and exits 0; its
    checks themselves run on the host with ``--cpu-selftest`` (so the script works before a
    device is lent)."""
    from nngraph_py import backend
    from benchmarks import cuda_check

    if not backend.cuda_available():
        assert cuda_check.main([]) == 0
        assert "skipped, no GPU" in capsys.readouterr().out
    assert cuda_check.main(["--cpu-selftest"]) == 0
    out = capsys.readouterr().out
    assert "18/18 checks passed" in out and "FAIL" not in out


def _nvrtc():
    """CuPy's NVRTC bindings, where CuPy and the NVRTC library are installed (no GPU needed)."""
    try:
        from cupy_backends.cuda.libs import nvrtc  # type: ignore

        nvrtc.compileProgram(nvrtc.createProgram(
            'extern "C" __global__ void k(float *y) { y[0] = tanhf(y[0]); }', "k.cu", [], []),
            ["-arch=compute_75"])
        return nvrtc
    except Exception as exc:  # noqa: BLE001 - any failure means: not here
        pytest.skip(f"NVRTC not available ({type(exc).__name__}: {str(exc)[:80]})")


def nvrtc_wrapper(ks: KernelSource) -> str:
    """A CUDA kernel binding the parameter names as CuPy does (inputs as values, outputs as
    references) around the generated operation (contiguous arrays: the body is what is
    checked)."""
    ins, outs = _params(ks.in_params), _params(ks.out_params)
    args = [f"const {_CT[t]} *p_{n}" for t, n in ins] + [f"{_CT[t]} *p_{n}" for t, n in outs]
    bind = [f"const {_CT[t]} {n} = p_{n}[k_];" for t, n in ins] + \
        [f"{_CT[t]} &{n} = p_{n}[k_];" for t, n in outs]
    return (f'extern "C" __global__ void {ks.name}({", ".join(args)}, long size_) {{\n'
            "  long k_ = blockIdx.x * (long)blockDim.x + threadIdx.x;\n  if (k_ < size_) {\n"
            + "\n".join(bind) + "\n{\n" + ks.operation + "\n}\n  }\n}\n")


def test_operation_bodies_compile_with_nvrtc():
    """Where CuPy and NVRTC are installed (a GPU is not needed), every generated body compiles as
    CUDA C++ for the device, warning-free."""
    nvrtc = _nvrtc()
    kernels = {}
    for dtype in (np.float32, np.float64):
        regions = [r for name in sorted(CELLS) for r in cell_regions(name, dtype)[0]]
        rng = np.random.default_rng(11)
        regions += [random_region(rng, dtype, int(rng.integers(1, 5)), int(rng.integers(2, 10)))
                    for _ in range(8)]
        for r in regions:
            for keep in (True, False):
                src = region_source(r.ops, len(r.ext), r.exposed, r.dtype, keep=keep)
                for ks in (src.forward, src.backward):
                    if ks is not None:
                        kernels[ks.name] = nvrtc_wrapper(ks)
    prog = nvrtc.createProgram("\n".join(kernels.values()), "regions.cu", [], [])
    try:
        nvrtc.compileProgram(prog, ["-arch=compute_75", "--std=c++14"])
    except Exception:  # noqa: BLE001
        pytest.fail(nvrtc.getProgramLog(prog)[:4000])
    assert nvrtc.getProgramLog(prog).strip() == "", nvrtc.getProgramLog(prog)
