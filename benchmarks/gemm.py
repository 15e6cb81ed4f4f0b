"""The matrix products of one LSTM training step, timed alone: NumPy's BLAS against PyTorch's.

``python -m benchmarks.lstm`` times whole training steps. This script answers the question behind
its ratios: how much of a difference is the BLAS itself? For each workload it lists every matrix
product of a training step of the benchmark's model (input projections of whole sequences, the
per-step recurrent products, their backward, the batched weight gradients, the head), times each
shape with ``numpy.matmul(a, b, out=...)`` and ``torch.mm(a, b, out=...)`` in the same process,
interleaved, one thread each, and adds them up per step: the GEMM work alone, the floor under
any implementation that calls the library once per product.

Run ``python -m benchmarks.gemm --help``. The thread variables are set and OpenBLAS's kernel pins
removed (as for the benchmark's children) before NumPy and PyTorch are imported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from .childenv import OPENBLAS_PINS, THREAD_VARS, blas_info, limit_threads
from .lstm import markdown_table  # imports neither NumPy nor PyTorch
from .workloads import QUICK, WORKLOADS, Workload

__all__ = ["Product", "step_products", "main"]


@dataclass(frozen=True)
class Product:
    """One matrix product ``(m, k) @ (k, n)`` made ``count`` times per training step."""

    what: str
    m: int
    k: int
    n: int
    count: int

    @property
    def flops(self) -> int:
        """Floating-point operations of one call (a multiply and an add per term)."""
        return 2 * self.m * self.k * self.n


def step_products(w: Workload) -> list[Product]:
    """The products of one training step of ``w``'s model, as an LSTM computes them in batches.

    Per layer: the input projection of all ``T`` steps at once and its input gradient, the
    recurrent product and its gradient at every step, the two weight gradients over all steps;
    then the head on the last step (MNIST) or on every step (char) and its two gradients.
    """
    tb, gates, out = w.steps * w.batch, 4 * w.hidden, []
    for layer in range(1, w.layers + 1):
        features = w.input_size if layer == 1 else w.hidden
        out += [
            Product(f"layer {layer}: input projection, all steps", tb, features, gates, 1),
            Product(f"layer {layer}: recurrent product, per step", w.batch, w.hidden, gates,
                    w.steps),
            Product(f"layer {layer}: grad of h, per step", w.batch, gates, w.hidden, w.steps),
            Product(f"layer {layer}: grad of the input, all steps", tb, gates, features, 1),
            Product(f"layer {layer}: grad of W_ih, all steps", gates, tb, features, 1),
            Product(f"layer {layer}: grad of W_hh, all steps", gates, tb, w.hidden, 1),
        ]
    rows = tb if w.every_step else w.batch
    out += [
        Product("head: forward", rows, w.hidden, w.classes, 1),
        Product("head: grad of the input", rows, w.classes, w.hidden, 1),
        Product("head: grad of the weight", w.classes, rows, w.hidden, 1),
    ]
    return out


def _median_us(call: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``call`` in microseconds over ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def time_product(p: Product, repeat: int, rounds: int, seed: int = 0) -> dict[str, float]:
    """Median microseconds of one call of ``p`` in NumPy and (when installed) PyTorch."""
    import numpy

    rng = numpy.random.default_rng(seed)
    a = rng.standard_normal((p.m, p.k), dtype=numpy.float32)
    b = rng.standard_normal((p.k, p.n), dtype=numpy.float32)
    c = numpy.empty((p.m, p.n), dtype=numpy.float32)
    calls = {"numpy": lambda: numpy.matmul(a, b, out=c)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.empty(p.m, p.n)
        calls["torch"] = lambda: torch.mm(ta, tb, out=tc)
    for call in calls.values():  # warm up: first touches, BLAS buffers
        for _ in range(3):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):  # interleaved, so that a slow spell of the machine hits both
        for name, call in calls.items():
            samples[name].append(_median_us(call, repeat))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(w: Workload, products: list[Product], times: list[dict[str, float]]) -> str:
    """The table of one workload: per product and per step, NumPy against PyTorch."""
    peers = [name for name in ("numpy", "torch") if all(name in t for t in times)]
    header = ["product", "shape (m x k x n)", "calls / step"]
    header += [f"{name} us / call" for name in peers]
    header += ["numpy / torch"] if len(peers) == 2 else []
    header += [f"{name} GFLOP/s" for name in peers]
    rows = []
    totals = {name: 0.0 for name in peers}
    for p, t in zip(products, times):
        row = [p.what, f"{p.m} x {p.k} x {p.n}", str(p.count)]
        row += [f"{t[name]:.1f}" for name in peers]
        row += [f"{t['numpy'] / t['torch']:.2f}x"] if len(peers) == 2 else []
        row += [f"{p.flops / t[name] / 1e3:.0f}" for name in peers]
        rows.append(row)
        for name in peers:
            totals[name] += p.count * t[name]
    row = ["all products of one training step", "", str(sum(p.count for p in products))]
    row += [f"{totals[name] / 1e3:.2f} ms / step" for name in peers]
    row += [f"{totals['numpy'] / totals['torch']:.2f}x"] if len(peers) == 2 else []
    row += [f"{sum(p.count * p.flops for p in products) / totals[name] / 1e3:.0f}"
            for name in peers]
    rows.append(row)
    return f"### {w.name}: {w.describe()}\n\n" + markdown_table(header, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gemm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=("mnist", "char", "all"), default="all")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default: 1)")
    parser.add_argument("--repeat", type=int, default=30, help="calls per timing (default: 30)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved timings per product and library, median (default: 5)")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help=f"keep {' / '.join(OPENBLAS_PINS)} as inherited")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (smoke test)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "numpy" in sys.modules or "torch" in sys.modules:
        print("note: NumPy or PyTorch was imported before the thread settings; run this as "
              "`python -m benchmarks.gemm` for exact thread counts", file=sys.stderr)
    for name in THREAD_VARS:  # before NumPy and PyTorch load their BLAS
        os.environ[name] = str(args.threads)
    if not args.keep_openblas_env:
        for name in OPENBLAS_PINS:
            os.environ.pop(name, None)
    import numpy  # noqa: F401 - loads OpenBLAS with the settings above

    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch is not installed: NumPy only", file=sys.stderr)
    limited = limit_threads(args.threads)
    table = QUICK if args.quick else WORKLOADS
    names = list(table) if args.workload == "all" else [args.workload]
    blas = "; ".join(f"{b.get('api')} {b.get('version')} {b.get('kernel')} ({b.get('threads')} "
                     f"threads)" for b in blas_info())
    print(f"threads: {args.threads} ({', '.join(limited + list(THREAD_VARS[:3]))}); "
          f"float32; median of {args.rounds} interleaved timings of {args.repeat} calls")
    print(f"BLAS: {blas}\n")
    results: dict[str, Any] = {"args": vars(args), "workloads": {}}
    for name in names:
        w = table[name]
        products = step_products(w)
        times = [time_product(p, args.repeat, args.rounds) for p in products]
        print(report(w, products, times) + "\n")
        results["workloads"][name] = [dict(asdict(p), us=t) for p, t in zip(products, times)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
