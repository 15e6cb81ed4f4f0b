"""The child process that measures one peer: ``python -m benchmarks.worker '<json spec>'``.

Started by :mod:`benchmarks.lstm` with the environment of :func:`benchmarks.childenv.child_env`
(threads fixed, OpenBLAS pins removed). It prints one line, :data:`MARK` followed by the result
as JSON, last on stdout; anything a library prints before it is ignored.

Modes (``spec["mode"]``):
    ``bench``    one peer on one workload: warm-up steps, timed training steps, memory, timed
                 forward-only steps.
    ``scaling``  one peer on a list of workloads: timed training steps for each.
    ``guard``    :func:`benchmarks.guard.run_guard` (our two entries, and PyTorch, compute the
                 same model).
    ``profile``  :func:`benchmarks.breakdown.run_profile` (where the time of a step goes).
"""
from __future__ import annotations

import gc
import json
import statistics
import sys
import time
import traceback
from typing import Any, Callable

from . import childenv
from .workloads import Workload, make_batches

__all__ = ["MARK", "main", "timed", "load_peer"]

MARK = "@@benchmark-result "


def load_peer(key: str, threads: int) -> tuple[Any, str | None]:
    """``(peer class, None)``, or ``(None, why)`` when the peer's framework does not import.

    Thread limits are applied right after the import, to the pools it loaded.
    """
    from . import peers

    try:
        cls = peers.load(key)
    except Exception as exc:  # noqa: BLE001 - any import failure makes the peer unavailable
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
    childenv.limit_threads(threads)
    return cls, None


def timed(fn: Callable[..., float], batches: list, warmup: int, repeat: int) -> dict[str, list]:
    """Run ``fn(*batch)`` ``warmup`` times untimed, then ``repeat`` times timed.

    Returns:
        ``{"ms": wall milliseconds, "cpu_ms": CPU milliseconds, "faults": minor page faults,
        "values": return values}``, one entry per timed call. The CPU time is the process's
        (all its threads): with one thread it is the work itself, nearly unaffected by other
        processes competing for the cores, which the wall time is not.
    """
    n = len(batches)
    for i in range(warmup):
        fn(*batches[i % n])
    gc.collect()
    out: dict[str, list] = {"ms": [], "cpu_ms": [], "faults": [], "values": []}
    for i in range(repeat):
        batch = batches[i % n]
        f0, c0, t0 = childenv.page_faults(), time.process_time(), time.perf_counter()
        out["values"].append(fn(*batch))
        t1, c1, f1 = time.perf_counter(), time.process_time(), childenv.page_faults()
        out["ms"].append((t1 - t0) * 1e3)
        out["cpu_ms"].append((c1 - c0) * 1e3)
        out["faults"].append(f1 - f0)
    return out


def bench(spec: dict[str, Any]) -> dict[str, Any]:
    """One peer, one workload: see the module docstring."""
    mem_start = childenv.memory()
    import numpy  # noqa: F401 - every peer's data come from NumPy: part of every baseline

    cls, why = load_peer(spec["peer"], spec["threads"])
    if cls is None:
        return {"unavailable": why}
    mem_import = childenv.memory()
    w = Workload.from_dict(spec["workload"])
    peer = cls(w, spec["seed"])
    batches = [peer.prepare(x, y) for x, y in make_batches(w, 4, spec["seed"] + 1)]
    mem_built = childenv.memory()
    t0 = time.perf_counter()
    first_loss = peer.train_step(*batches[0])
    first_ms = (time.perf_counter() - t0) * 1e3
    step = timed(peer.train_step, batches, max(0, spec["warmup"] - 1), spec["repeat"])
    mem_trained = childenv.memory()
    fwd = timed(peer.eval_step, batches, max(1, spec["warmup"] // 2), spec["repeat"])
    return {
        "label": cls.label,
        "step_ms": step["ms"],
        "step_cpu_ms": step["cpu_ms"],
        "step_faults": step["faults"],
        "fwd_ms": fwd["ms"],
        "fwd_cpu_ms": fwd["cpu_ms"],
        "median_step_ms": statistics.median(step["ms"]),
        "median_step_cpu_ms": statistics.median(step["cpu_ms"]),
        "median_step_faults": statistics.median(step["faults"]),
        "median_fwd_ms": statistics.median(fwd["ms"]),
        "median_fwd_cpu_ms": statistics.median(fwd["cpu_ms"]),
        "first_step_ms": first_ms,
        "loss_first": first_loss,
        "loss_last": step["values"][-1],
        "memory": {
            "start_mb": mem_start["rss_mb"],
            "import_mb": mem_import["rss_mb"],
            "built_mb": mem_built["rss_mb"],
            "peak_mb": mem_trained["peak_mb"],
        },
        "blas": childenv.blas_info(),
        "versions": peer.versions(),
    }


def scaling(spec: dict[str, Any]) -> dict[str, Any]:
    """One peer over several workloads: median training-step time of each."""
    import numpy  # noqa: F401

    cls, why = load_peer(spec["peer"], spec["threads"])
    if cls is None:
        return {"unavailable": why}
    points = []
    for d in spec["workloads"]:
        w = Workload.from_dict(d)
        peer = cls(w, spec["seed"])
        batches = [peer.prepare(x, y) for x, y in make_batches(w, 2, spec["seed"] + 1)]
        step = timed(peer.train_step, batches, spec["warmup"], spec["repeat"])
        points.append({"workload": w.name, "step_ms": step["ms"], "step_cpu_ms": step["cpu_ms"],
                       "median_step_ms": statistics.median(step["ms"]),
                       "median_step_cpu_ms": statistics.median(step["cpu_ms"]),
                       "median_step_faults": statistics.median(step["faults"])})
        del peer, batches
        gc.collect()
    return {"label": cls.label, "points": points, "blas": childenv.blas_info()}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Dispatch on ``spec["mode"]``."""
    mode = spec["mode"]
    if mode == "bench":
        return bench(spec)
    if mode == "scaling":
        return scaling(spec)
    if mode == "guard":
        from .guard import run_guard

        childenv.limit_threads(spec["threads"])
        return run_guard([Workload.from_dict(d) for d in spec["workloads"]], spec["seed"],
                         tuple(spec.get("torch_peers", ("torch-lstm", "torch-cell"))))
    if mode == "profile":
        from .breakdown import run_profile

        return run_profile(spec)
    raise ValueError(f"unknown mode {mode!r}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    try:
        result = run(spec)
    except Exception:  # noqa: BLE001 - reported to the parent, which prints it
        result = {"error": traceback.format_exc()}
    sys.stdout.flush()
    print(MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
