"""Data-parallel training speed: samples per second at 1 and 2 processes, and the allreduce.

``python -m benchmarks.distributed`` launches itself under ``mpiexec`` (the one beside this
Python, from the mpich wheel) and prints a Markdown report:

1. training throughput of the MNIST model of ``examples/mnist_lstm.py`` (seed 000: LSTM 128 x 2,
   ``Linear(128, 10)``, Adam, float32, synthetic batches: the step time does not depend on the
   pixel values) at 1 process, at 2 processes with the same global batch (each takes half:
   strong scaling), and at 2 processes with twice the global batch (each takes a whole one: weak
   scaling); each row also gives the time the step spent in the gradient allreduce;
2. one allreduce of that model's gradient (float32) between 2 processes: the whole flat buffer
   in one call (what ``DistributedOptimizer`` does), through the library's watchdog and as a
   bare mpi4py call, and split into buckets (blocking one after another, or all started at once
   non-blocking and waited for together), to see whether buckets help;
3. the ring-allreduce model: the step time on N machines,
   ``compute + 2 (N - 1) / N * gradient bytes / link bandwidth + 2 (N - 1) * latency``, for
   common links, from the measured one-process step.

``--quick`` runs a few steps of a tiny model (the smoke test). Inner mode (``--worker``) is what
the launched processes run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "ring_allreduce_seconds", "scaling_rows"]

REPO = Path(__file__).resolve().parents[1]

#: Links of the on-paper table: (name, bytes per second, one-way latency in seconds).
LINKS = (("1 GbE", 125e6, 50e-6), ("10 GbE", 1.25e9, 20e-6), ("25 GbE", 3.125e9, 10e-6),
         ("100 Gb/s InfiniBand", 12.5e9, 2e-6))
NODES = (2, 4, 8, 16, 64)


# ------------------------------------------------------------------------------------------------
# Inside the launched processes
# ------------------------------------------------------------------------------------------------
def _model(hidden: int, layers: int, input_size: int, classes: int) -> Any:
    from lstm import LSTM
    from nngraph_py import nn
    from nngraph_py.nn.select import Select

    rows = nn.Identity()()
    outputs = nn.SelectTable(0)(LSTM(input_size, hidden, layers)(rows))
    logits = nn.Linear(hidden, classes)(Select(1, -1)(outputs))
    return nn.gModule([rows], [logits])


def _throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` data-parallel steps; each process takes its shard of the batch."""
    import numpy as np

    from nngraph_py import distributed, nn, optim
    from nngraph_py.backend import manual_seed

    world = distributed.init()
    manual_seed(0)
    model = _model(args.hidden, args.layers, args.input_size, args.classes)
    opt = distributed.DistributedOptimizer(optim.Adam(model, lr=1e-3))
    distributed.broadcast_parameters(model)
    criterion = nn.CrossEntropyCriterion()
    rng = np.random.default_rng(world.rank)
    part = distributed.shard(args.global_batch, world)
    local = part.stop - part.start
    x = rng.random((local, args.seq, args.input_size)).astype(opt.params.dtype)
    y = rng.integers(0, args.classes, size=local)
    step_times, sync_times = [], []
    for k in range(args.warmup + args.steps):
        world.barrier()
        start = time.perf_counter()
        opt.zero_grad()
        logits = model.forward(x)
        criterion.forward(logits, y)
        model.backward(x, criterion.backward(logits, y))
        before_sync = time.perf_counter()
        opt.synchronize(batch_size=local)
        synced = time.perf_counter()
        opt.step()
        end = time.perf_counter()
        if k >= args.warmup:
            step_times.append(end - start)
            sync_times.append(synced - before_sync)
    # The slowest process sets the pace: take the per-step maximum over the processes.
    all_steps = world.allgather(step_times)
    all_syncs = world.allgather(sync_times)
    steps = [max(column) for column in zip(*all_steps)]
    syncs = [max(column) for column in zip(*all_syncs)]
    median = statistics.median(steps)
    return {"processes": world.size, "global_batch": args.global_batch, "local_batch": local,
            "parameters": int(opt.params.size), "dtype": str(opt.params.dtype),
            "median_step_s": median, "samples_per_s": args.global_batch / median,
            "median_allreduce_s": statistics.median(syncs), "steps": args.steps}


def _allreduce(args: argparse.Namespace) -> dict[str, Any]:
    """Median times of one allreduce of the model's gradient, whole and in buckets."""
    import numpy as np
    from mpi4py import MPI

    from nngraph_py import distributed

    world = distributed.init()
    comm = world.comm
    model = _model(args.hidden, args.layers, args.input_size, args.classes)
    n = model.num_parameters()
    grads = np.random.default_rng(world.rank).random(n).astype(np.float32)

    calls = {"library (World.allreduce_, one call)": lambda: world.allreduce_(grads),
             "bare mpi4py Allreduce, one call": lambda: comm.Allreduce(MPI.IN_PLACE, grads,
                                                                        op=MPI.SUM)}
    for bucket_bytes in (64 << 10, 256 << 10):
        size = bucket_bytes // grads.itemsize
        buckets = [grads[i:i + size] for i in range(0, n, size)]

        def blocking(buckets: list = buckets) -> None:
            for b in buckets:
                comm.Allreduce(MPI.IN_PLACE, b, op=MPI.SUM)

        def nonblocking(buckets: list = buckets) -> None:
            MPI.Request.Waitall([comm.Iallreduce(MPI.IN_PLACE, b, op=MPI.SUM) for b in buckets])

        label = f"{bucket_bytes >> 10} KiB buckets ({len(buckets)})"
        calls[f"{label}, blocking one by one"] = blocking
        calls[f"{label}, non-blocking, waited together"] = nonblocking
    # Warm up every variant (the first large messages fault pages in), then interleave them
    # round by round so that a change of the machine's load weighs on all alike.
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for k in range(args.warmup * 5 + args.repeat):
        for name, call in calls.items():
            comm.Barrier()
            start = time.perf_counter()
            call()
            if k >= args.warmup * 5:
                samples[name].append(time.perf_counter() - start)
    results: dict[str, Any] = {"parameters": n, "bytes": int(grads.nbytes),
                               "processes": world.size, "repeat": args.repeat}
    for name, times in samples.items():
        medians = world.allgather([statistics.median(times), min(times)])
        results[name] = max(m[0] for m in medians)
        results[name + " (min)"] = max(m[1] for m in medians)
    return results


# ------------------------------------------------------------------------------------------------
# The launcher and the report
# ------------------------------------------------------------------------------------------------
def ring_allreduce_seconds(nbytes: float, nodes: int, bandwidth: float, latency: float) -> float:
    """Time of a ring allreduce of ``nbytes`` over ``nodes`` machines: each sends and receives
    ``2 (N - 1) / N`` times the buffer (reduce-scatter then allgather), in ``2 (N - 1)``
    latency-bound rounds."""
    if nodes < 2:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes / bandwidth + 2 * (nodes - 1) * latency


def scaling_rows(nbytes: float, compute_s: float, batch: int) -> list[list[str]]:
    """Rows of the on-paper table: per link and machine count, the step time and efficiency of
    weak scaling (every machine takes ``batch`` samples: compute stays ``compute_s``)."""
    rows = []
    for name, bandwidth, latency in LINKS:
        cells = [name]
        for nodes in NODES:
            comm = ring_allreduce_seconds(nbytes, nodes, bandwidth, latency)
            step = compute_s + comm  # no overlap of communication with backward
            cells.append(f"{1e3 * comm:.2f} ms, {compute_s / step:.0%}, "
                         f"{nodes * batch / step:,.0f}/s")
        rows.append(cells)
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if not found:
        raise SystemExit("benchmarks.distributed: no mpiexec beside this Python or on PATH; "
                         "pip install 'nngraph_py[distributed]'")
    return found


def _launch(processes: int, mode: str, args: argparse.Namespace, global_batch: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    command = [_mpiexec(), "-n", str(processes), sys.executable, "-m", "benchmarks.distributed",
               "--worker", mode, "--global-batch", str(global_batch)] + _shape_flags(args)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shape_flags(args: argparse.Namespace) -> list[str]:
    return ["--steps", str(args.steps), "--warmup", str(args.warmup), "--repeat",
            str(args.repeat), "--hidden", str(args.hidden), "--layers", str(args.layers),
            "--seq", str(args.seq), "--input-size", str(args.input_size), "--classes",
            str(args.classes)]


def report(runs: list[dict[str, Any]], comm: dict[str, Any], args: argparse.Namespace) -> str:
    one = runs[0]
    rows = []
    for r in runs:
        rows.append([str(r["processes"]), str(r["global_batch"]), str(r["local_batch"]),
                     f"{1e3 * r['median_step_s']:.1f}", f"{r['samples_per_s']:,.0f}",
                     f"{r['samples_per_s'] / one['samples_per_s']:.2f}x",
                     f"{1e3 * r['median_allreduce_s']:.2f}"])
    load = os.getloadavg()
    out = [f"## Data-parallel throughput (`python -m benchmarks.distributed"
           f"{' --quick' if args.quick else ''}`)",
           "",
           f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
           f"{platform.platform()}; load average before the runs "
           f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; one BLAS thread per process. "
           f"Model: LSTM {args.input_size} -> {args.hidden} x {args.layers}, Linear("
           f"{args.hidden}, {args.classes}), {one['parameters']:,} {one['dtype']} parameters, "
           f"sequences of {args.seq}; Adam; median of {args.steps} steps after {args.warmup} "
           f"warm-up steps, the slowest process's time per step.",
           "",
           _table(["processes", "global batch", "per process", "ms / step", "samples / s",
                   "vs 1 process", "ms in allreduce"], rows),
           "",
           f"### One allreduce of the gradient ({comm['parameters']:,} float32 = "
           f"{comm['bytes'] / 1e6:.2f} MB) between {comm['processes']} processes, median of "
           f"{comm['repeat']}",
           "",
           _table(["how", "median ms", "min ms"],
                  [[k, f"{1e3 * v:.3f}", f"{1e3 * comm[k + ' (min)']:.3f}"]
                   for k, v in comm.items() if isinstance(v, float) and "(min)" not in k]),
           "",
           f"### On paper: weak scaling to N machines (ring allreduce, no overlap)",
           ""]
    for compute_s, where in ((args.paper_compute_ms / 1e3, f"{args.paper_compute_ms:g} ms "
                              f"(--paper-compute-ms: {args.paper_compute_what})"),
                             (one["median_step_s"], f"{1e3 * one['median_step_s']:.0f} ms (the "
                              f"1-process row above)")):
        out += [f"Compute {where} per step at batch {one['global_batch']} per machine; gradient "
                f"{comm['bytes'] / 1e6:.2f} MB. Each cell: allreduce time, efficiency compute / "
                f"(compute + allreduce), samples per second.",
                "",
                _table(["link"] + [f"N = {n}" for n in NODES],
                       scaling_rows(comm["bytes"], compute_s, one["global_batch"])),
                ""]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeat", type=int, default=200, help="allreduce repetitions")
    p.add_argument("--batch", type=int, default=100, help="global batch of the 1-process run")
    p.add_argument("--quick", action="store_true", help="a tiny model, a few steps (smoke test)")
    p.add_argument("--out", type=Path, default=None, help="also write the report and JSON here")
    p.add_argument("--timeout", type=float, default=900, help="seconds per launch")
    p.add_argument("--paper-compute-ms", type=float, default=22.9,
                   help="step compute time of the on-paper table (default: %(default)s ms, the "
                        "MNIST step of the numba path on an idle 2-core VM, README's table)")
    p.add_argument("--paper-compute-what", default="the MNIST step of README's speed table, on "
                   "an idle core", help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=("throughput", "allreduce"), help=argparse.SUPPRESS)
    p.add_argument("--global-batch", type=int, default=100, help=argparse.SUPPRESS)
    for name, default in (("hidden", 128), ("layers", 2), ("seq", 28), ("input-size", 28),
                          ("classes", 10)):
        p.add_argument(f"--{name}", type=int, default=default, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and not args.worker:
        args.steps, args.warmup, args.repeat, args.batch = 3, 1, 5, 8
        args.hidden, args.layers, args.seq, args.input_size, args.classes = 8, 1, 5, 6, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = _throughput(args) if args.worker == "throughput" else _allreduce(args)
        from nngraph_py import distributed

        if distributed.init().is_root:
            print(json.dumps(result), flush=True)
        return 0
    runs = [_launch(1, "throughput", args, args.batch),
            _launch(2, "throughput", args, args.batch),
            _launch(2, "throughput", args, 2 * args.batch)]
    comm = _launch(2, "allreduce", args, args.batch)
    text = report(runs, comm, args)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"runs": runs, "allreduce": comm},
                                                            indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
