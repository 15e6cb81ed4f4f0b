"""Device check of the generated CUDA region kernels: ``python -m benchmarks.cuda_check``.

On a machine with CuPy and a GPU it runs, against NumPy on the host:

1. every element-wise region of the GRU cell, the LSTM recipe cell and a peephole LSTM cell
   (``CMul`` weight vectors) as a ``Region(kernels="cuda")`` on CuPy arrays: forward members and
   backward gradients (``direct`` destinations included), float32 and float64;
2. the cells over time, ``CompiledSequence(kernels="cuda")`` on CuPy: outputs, final states,
   input, state and parameter gradients; timings (median of repeats, forward + backward +
   parameter gradients) against the same plan with the NumPy passes on CuPy and on the host;
3. a :class:`lstm.Recurrence` moved to ``"cuda"`` (compiled executors: with ``kernels="cuda"``
   where ``optimize`` accepts it, else its default), against the same Recurrence on the host.

It prints the maximum errors and timings and exits 1 when an error exceeds its tolerance, 0
otherwise; without CuPy or a GPU it says so and exits 0. ``--cpu-selftest`` runs the same code on
the host (NumPy passes standing in for the kernels, tiny shapes): the CPU test suite runs it so
that the script itself is known to work before a device is lent.

No Lua Torch original.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from typing import Any, Callable

import numpy

from nngraph_py import backend, nn
from nngraph_py.compile.elementwise import Region
from nngraph_py.compile.sequence import CellSignature
from nngraph_py.compile.timeloop import CompiledSequence

from .cells import peephole_lstm_cell as peephole_cell

TOL = {numpy.dtype(numpy.float32): 2e-4, numpy.dtype(numpy.float64): 1e-9}


def _cells(F: int, H: int) -> dict[str, tuple[Callable[[], nn.gModule], CellSignature]]:
    from lstm import make_gru_cell, make_lstm_cell

    return {"gru": (lambda: make_gru_cell(F, H), CellSignature(0, (1,), (0,), (H,), 0)),
            "lstm": (lambda: make_lstm_cell(F, H), CellSignature(0, (2, 1), (1, 0), (H, H), 0)),
            "peephole": (lambda: peephole_cell(F, H),
                         CellSignature(0, (1, 2), (0, 1), (H, H), 0))}


class Checker:
    """Runs the checks on ``device`` with region kernels ``kernels`` and records the results."""

    def __init__(self, device: str, kernels: str, T: int, B: int, F: int, H: int,
                 repeats: int):
        self.device, self.kernels = device, kernels
        self.xp = backend.array_module(device)
        self.T, self.B, self.F, self.H, self.repeats = T, B, F, H, repeats
        self.rows: list[tuple[str, float, float, bool]] = []

    # -- helpers ----------------------------------------------------------------------------
    def dev(self, a: Any) -> Any:
        return None if a is None else backend.to_device(a, self.device)

    def sync(self) -> None:
        if self.device == "cuda":
            self.xp.cuda.Device().synchronize()

    def record(self, what: str, err: float, dtype: Any) -> None:
        tol = TOL[numpy.dtype(dtype)]
        ok = bool(err <= tol)  # NaN fails
        self.rows.append((what, err, tol, ok))
        print(f"  {'ok  ' if ok else 'FAIL'} {what:<58s} max err {err:.3e} (tol {tol:.0e})",
              flush=True)

    @staticmethod
    def err(a: Any, b: Any) -> float:
        a, b = backend.to_numpy(a), backend.to_numpy(b)
        if a.shape != b.shape:
            return float("inf")
        return float(numpy.max(numpy.abs(a.astype(numpy.float64) - b))) if a.size else 0.0

    def timed(self, fn: Callable[[], Any]) -> float:
        fn()  # warm up (kernel compilation, plans)
        self.sync()
        times = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    # -- 1. regions ---------------------------------------------------------------------------
    def check_regions(self, name: str, make: Callable[[], nn.gModule], sig: CellSignature,
                      dtype: Any) -> None:
        rng = numpy.random.default_rng(0)
        cell = make()
        cell.to(dtype=dtype)
        host = CompiledSequence(cell, sig, kernels="numpy")
        x = rng.standard_normal((2, self.B, self.F)).astype(dtype)
        host.forward(x, [None] * len(sig.state_sizes))
        (plan,) = host._plans.values()
        for ri, r in enumerate(plan.regions):
            exposed = [r.nodes[k] for k in r.exposed]
            cols = {q: c for q, c in zip(r.ext, r.ext_cols) if c is not None}
            d = Region(r.nodes, cell._plan, exposed, r.shape, r.dtype, self.xp, True,
                       self.kernels, ext_cols=cols, direct=[r.ext[j] for j in r.direct])
            if d.kernels != self.kernels:
                self.rows.append((f"{name} region {ri}: kernels {d.kernels!r}", float("nan"),
                                  0.0, False))
                print(f"  FAIL {name} region {ri} runs {d.kernels!r}, not {self.kernels!r}")
                continue
            ext = []
            for j, c in enumerate(r.ext_cols):
                shape = ((r.shape[-1],) if j in r.params else r.shape if c is None
                         else (r.shape[0], c[0] + c[1] + 3))
                ext.append(rng.standard_normal(shape).astype(dtype))
            gx = [rng.standard_normal(r.shape).astype(dtype) for _ in r.exposed]
            dest: list[Any] | None = None
            if r.direct:
                dest = [None] * len(r.ext)
                for j in r.direct:
                    c = r.ext_cols[j]
                    dest[j] = rng.standard_normal(
                        r.shape if c is None else (r.shape[0], c[0] + c[1] + 2)).astype(dtype)
            ref_v = [numpy.empty(r.shape, dtype) for _ in r.nodes]
            r.forward(ext, ref_v)
            ref_dest = None if dest is None else [None if a is None else a.copy() for a in dest]
            ref_g = [g.copy() for g in r.backward(ext, ref_v, gx, ref_dest)]
            d_ext = [self.dev(a) for a in ext]
            d_v = [self.xp.zeros(r.shape, dtype=dtype) for _ in r.nodes]
            d.forward(d_ext, d_v)
            stored = d._cuda.source.fwd_stored if d.kernels == "cuda" else range(len(r.nodes))
            e = max([self.err(d_v[k], ref_v[k]) for k in stored] + [0.0])
            d_dest = None if dest is None else [self.dev(a) for a in dest]
            d_g = d.backward(d_ext, d_v, [self.dev(g) for g in gx], d_dest)
            e = max([e] + [self.err(a, b) for a, b in zip(d_g, ref_g)]
                    + ([self.err(d_dest[j], ref_dest[j]) for j in r.direct] if dest else []))
            self.record(f"{name} {numpy.dtype(dtype).name} region {ri} ({len(r.nodes)} nodes, "
                        f"{len(r.ext)} inputs)", e, dtype)

    # -- 2. cells over time -------------------------------------------------------------------
    def _run_seq(self, ex: CompiledSequence, cell: nn.gModule, x: Any, s0: list, gout: Any,
                 gfin: list) -> list[Any]:
        out, fin = ex.forward(x, s0)
        res = [out.copy(), *[f.copy() for f in fin]]
        gx, g0 = ex.backward(gout, gfin)
        cell.zero_grad_parameters()
        ex.acc_grad_parameters(1.0)
        return res + [gx.copy(), *[g.copy() for g in g0],
                      *[g.copy() for g in cell.parameters()[1]]]

    def check_sequence(self, name: str, make: Callable[[], nn.gModule], sig: CellSignature,
                       dtype: Any) -> None:
        rng = numpy.random.default_rng(1)
        T, B, F = self.T, self.B, self.F
        cell = make()
        cell.to(dtype=dtype)
        dcell: Any = copy.deepcopy(cell).to(self.device)
        x = rng.standard_normal((T, B, F)).astype(dtype)
        s0 = [rng.standard_normal((B, s)).astype(dtype) for s in sig.state_sizes]
        gout = rng.standard_normal((T, B, sig.state_sizes[sig.output_state])).astype(dtype)
        gfin = [rng.standard_normal((B, s)).astype(dtype) for s in sig.state_sizes]
        host = CompiledSequence(cell, sig, kernels="numpy")
        ref = self._run_seq(host, cell, x, s0, gout, gfin)
        dx, ds0, dgo, dgf = self.dev(x), [self.dev(s) for s in s0], self.dev(gout), \
            [self.dev(g) for g in gfin]
        dev = CompiledSequence(dcell, sig, kernels=self.kernels)
        got = self._run_seq(dev, dcell, dx, ds0, dgo, dgf)
        kinds = sorted({k for info in dev.plan_info() for k in info["region_kernels"]})
        ok_kinds = kinds == [self.kernels]
        if not ok_kinds:
            self.rows.append((f"{name}: region kernels {kinds}", float("nan"), 0.0, False))
            print(f"  FAIL {name}: the plan's regions run {kinds}, not [{self.kernels!r}]")
        e = max(self.err(a, b) for a, b in zip(got, ref))
        self.record(f"{name} {numpy.dtype(dtype).name} CompiledSequence T={T} B={B} "
                    f"kernels={self.kernels}", e, dtype)
        # Timings: this plan, the NumPy passes on the same device, the host.
        passes = CompiledSequence(dcell, sig, kernels="numpy")
        t_k = self.timed(lambda: self._run_seq(dev, dcell, dx, ds0, dgo, dgf))
        t_p = self.timed(lambda: self._run_seq(passes, dcell, dx, ds0, dgo, dgf))
        t_h = self.timed(lambda: self._run_seq(host, cell, x, s0, gout, gfin))
        print(f"  time {name} {numpy.dtype(dtype).name} fwd+bwd+params: "
              f"{self.device}/{self.kernels} {t_k:.2f} ms, {self.device}/numpy passes "
              f"{t_p:.2f} ms, host numpy {t_h:.2f} ms", flush=True)

    # -- 3. Recurrence ------------------------------------------------------------------------
    def check_recurrence(self, name: str, make: Callable[[], nn.gModule], sig: CellSignature,
                         dtype: Any) -> None:
        from lstm import Recurrence

        rng = numpy.random.default_rng(2)
        T, B, F = self.T, self.B, self.F
        cell = make()
        cell.to(dtype=dtype)
        sizes = list(sig.state_sizes)
        host = Recurrence(cell, sizes, output=sig.output_state, batch_first=False)
        dev = Recurrence(copy.deepcopy(cell), sizes, output=sig.output_state,
                         batch_first=False).to(self.device)
        how = "default kernels"
        try:
            dev.optimize(True, kernels=self.kernels)
            how = f"kernels={self.kernels}"
        except Exception as exc:  # noqa: BLE001 - the layer may not take 'cuda' yet: say so
            print(f"  note: Recurrence.optimize(kernels={self.kernels!r}) refused ({exc}); "
                  f"running its default executors")
        x = rng.standard_normal((T, B, F)).astype(dtype)
        s0 = [rng.standard_normal((B, s)).astype(dtype) for s in sizes]
        gout = rng.standard_normal((T, B, sizes[sig.output_state])).astype(dtype)
        gfin = [rng.standard_normal((B, s)).astype(dtype) for s in sizes]

        def run(rec: Any, inp: list, grads: list) -> list[Any]:
            out, fin = rec.forward(inp)
            res = [out.copy(), *[f.copy() for f in fin]]
            rec.zero_grad_parameters()
            g = rec.backward(inp, grads)
            return res + [a.copy() for a in g] + [a.copy() for a in rec.parameters()[1]]

        ref = run(host, [x] + s0, [gout] + gfin)
        dinp, dgr = [self.dev(a) for a in [x] + s0], [self.dev(a) for a in [gout] + gfin]
        got = run(dev, dinp, dgr)
        kinds = [getattr(e, "kind", "?") for e in dev.executors]
        e = max(self.err(a, b) for a, b in zip(got, ref))
        self.record(f"{name} {numpy.dtype(dtype).name} Recurrence on {self.device} ({how}, "
                    f"{'/'.join(kinds)})", e, dtype)
        t = self.timed(lambda: run(dev, dinp, dgr))
        print(f"  time {name} {numpy.dtype(dtype).name} Recurrence on {self.device}: {t:.2f} ms",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the checks (see the module docstring); the exit status."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cuda_check",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--cpu-selftest", action="store_true",
                    help="run the script on the host (NumPy passes for the kernels)")
    args = ap.parse_args(argv)
    if args.cpu_selftest:
        device, kernels = "cpu", "numpy"
        T, B, F, H, repeats = 3, 4, 3, 5, 1
    else:
        if not backend.cuda_available():
            print(f"cuda_check: skipped, no GPU to run on: {backend.cuda_unavailable_reason()}")
            return 0
        device, kernels = "cuda", "cuda"
        T, B, F, H, repeats = (5, 8, 7, 16, 3) if args.quick else (28, 100, 28, 128, 20)
    if args.repeats:
        repeats = args.repeats
    if device == "cuda":
        cp = backend.array_module("cuda")
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        gpu = props.get("name", b"?")
        gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
        print(f"cuda_check: CuPy {cp.__version__} on {gpu}")
    print(f"cuda_check: device {device}, region kernels {kernels!r}, T={T} B={B} F={F} H={H}, "
          f"{repeats} repeats")
    chk = Checker(device, kernels, T, B, F, H, repeats)
    cells = _cells(F, H)
    for dtype in (numpy.float32, numpy.float64):
        for name, (make, sig) in cells.items():
            print(f"[{name} {numpy.dtype(dtype).name}]", flush=True)
            chk.check_regions(name, make, sig, dtype)
            chk.check_sequence(name, make, sig, dtype)
            chk.check_recurrence(name, make, sig, dtype)
    failed = [r for r in chk.rows if not r[3]]
    print(f"cuda_check: {len(chk.rows) - len(failed)}/{len(chk.rows)} checks passed")
    for what, err, tol, _ in failed:
        print(f"  FAILED: {what}: {err:.3e} > {tol:.0e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
