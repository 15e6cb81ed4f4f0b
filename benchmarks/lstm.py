"""Speed and memory of the recipe LSTM against PyTorch and Chainer, measured in the same run.

Usage::

    python -m benchmarks.lstm                      # both workloads, every peer, 1 thread
    python -m benchmarks.lstm --workload mnist --repeat 30 --json out.json
    python -m benchmarks.lstm --scaling            # + step time against hidden size and length
    python -m benchmarks.lstm --profile            # + where the time of our step goes
    python -m benchmarks.lstm --malloc-reuse       # glibc keeps freed memory: no page-fault cost
    python -m benchmarks.lstm --quick              # tiny sizes (the smoke test)

Every workload (see :mod:`benchmarks.workloads`) trains the same model in every peer: a 2-layer
LSTM, a ``Linear`` head, softmax cross-entropy and Adam. The peers:

``nngraph recipe (graph)``          ``lstm.LSTM``: per-step clones of the recipe cell graph
``nngraph optimized (FusedLSTM)``   the same cells run by ``lstm.fast.FusedLSTM`` (NumPy passes)
``nngraph optimized + numba``       the same with the optional compiled step kernels (if numba
                                    is installed: ``pip install 'nngraph_py[accel]'``)
``PyTorch nn.LSTM``                 PyTorch's fused CPU LSTM (if torch is installed)
``PyTorch LSTMCell loop``           a Python loop over ``nn.LSTMCell``
``Chainer L.NStepLSTM`` / ``L.LSTM loop``   Chainer 7 (if installed; see ``peers/chainer_peers``)

How it measures:

* Before any timing, a guard (:mod:`benchmarks.guard`) checks that our optimized entry gives the
  recipe's loss and gradients on the same weights (and PyTorch's, loaded with our weights); the
  run stops if it does not.
* Each peer runs in a fresh child process (:mod:`benchmarks.worker`) whose environment fixes the
  thread count of every BLAS / OpenMP pool before anything is imported (``--threads``, default 1)
  and drops ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (``--keep-openblas-env`` keeps them). This
  process only starts children and prints; it never computes, so it needs no re-exec.
* In the child: ``--warmup`` untimed training steps (the first touch of new memory is slow on a
  fresh VM), ``--repeat`` timed steps, then timed forward-only steps (forward + loss with no
  graph kept). Each step is timed on the wall clock (median and min reported) and in process CPU
  time (median), which background load on a shared machine barely changes. ``--rounds`` repeats
  every child, interleaved, and pools the samples, which evens out background load too.
* Memory: the child's resident set after its imports, and its peak (``VmHWM``) after the training
  steps, each peer in its own process; and the minor page faults of a step (first touches of
  fresh memory, slow on a VM). With glibc's default malloc a framework that frees and allocates
  large buffers every step pays them every step; ``--malloc-reuse`` sets glibc to keep freed
  memory (same settings for every peer), which shows each peer without that cost.

Ratios (``x nn.LSTM``) divide by PyTorch ``nn.LSTM``'s figure on the same workload: above 1 is
slower (or larger). ``--json PATH`` writes every sample and reading.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from . import childenv
from .peers import LABELS, PEERS, REFERENCE
from .workloads import QUICK, WORKLOADS, Workload, scaling_points
from .worker import MARK

__all__ = ["main", "parse_args"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALING_PEERS = ("nngraph-optimized", "nngraph-numba", "nngraph-recipe", "torch-lstm")
PROFILE_PEERS = ("nngraph-optimized", "nngraph-numba", "nngraph-recipe", "torch-lstm")


# ------------------------------------------------------------------------------------------------
# Child processes
# ------------------------------------------------------------------------------------------------
def run_child(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Run :mod:`benchmarks.worker` on ``spec`` in a fresh process; its result dict."""
    spec = dict(spec, threads=args.threads, seed=args.seed)
    env = childenv.child_env(args.threads, args.keep_openblas_env, ROOT, args.malloc_reuse)
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
                              cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=args.child_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.child_timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.silent:
        print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------
def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, columns padded for reading in a terminal."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep] + [fmt(r) for r in rows])


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, ref: float | None) -> str:
    if value is None or not ref:
        return "-"
    return f"{value / ref:.2f}x"


def _ratios(values: tuple, refs: tuple) -> str:
    """``"1.27x, 0.98x"``: each value against its reference."""
    return ", ".join(_ratio(v, r) for v, r in zip(values, refs))


def _merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the samples of several runs of one (peer, workload); medians of the memory readings."""
    ok = [r for r in rounds if "step_ms" in r]
    if not ok:
        return rounds[0]
    merged = dict(ok[0])
    for name in ("step_ms", "step_cpu_ms", "step_faults", "fwd_ms", "fwd_cpu_ms"):
        merged[name] = [t for r in ok for t in r[name]]
        merged["median_" + name] = statistics.median(merged[name]) if merged[name] else None
    merged["memory"] = {k: statistics.median(r["memory"][k] for r in ok) for k in ok[0]["memory"]}
    merged["rounds"] = len(ok)
    merged["round_medians_ms"] = [r["median_step_ms"] for r in ok]
    return merged


def main_table(w: Workload, results: dict[str, dict[str, Any]]) -> str:
    """The table of one workload: time, forward time, memory, each against ``nn.LSTM``."""
    ref = results.get(REFERENCE, {})
    ref_mem = ref.get("memory", {})
    header = ["peer", "step ms median", "min", "CPU ms", "x nn.LSTM (median, CPU)", "faults / step",
              "forward ms median", "CPU ms", "x nn.LSTM (median, CPU)",
              "peak RSS MB", "after import MB", "peak - import MB",
              "x nn.LSTM (peak, peak - import)"]
    rows = []
    for key, r in results.items():
        label = LABELS.get(key, key)
        if "step_ms" not in r:
            why = r.get("unavailable") or ("error: " + r.get("error", "?").strip().splitlines()[-1])
            rows.append([label, f"unavailable: {why}"] + [""] * (len(header) - 2))
            continue
        mem = r["memory"]
        delta = mem["peak_mb"] - mem["import_mb"]
        ref_delta = (ref_mem["peak_mb"] - ref_mem["import_mb"]) if ref_mem else None
        step = (r["median_step_ms"], r.get("median_step_cpu_ms"))
        fwd = (r["median_fwd_ms"], r.get("median_fwd_cpu_ms"))
        rows.append([
            label, _num(step[0]), _num(min(r["step_ms"])), _num(step[1]),
            _ratios(step, (ref.get("median_step_ms"), ref.get("median_step_cpu_ms"))),
            _num(r.get("median_step_faults"), 0),
            _num(fwd[0]), _num(fwd[1]),
            _ratios(fwd, (ref.get("median_fwd_ms"), ref.get("median_fwd_cpu_ms"))),
            _num(mem["peak_mb"], 0), _num(mem["import_mb"], 0), _num(delta, 0),
            _ratios((mem["peak_mb"], delta), (ref_mem.get("peak_mb"), ref_delta)),
        ])
    return f"### {w.name}: {w.describe()}\n\n" + markdown_table(header, rows)


def scaling_table(points: list[Workload], results: dict[str, dict[str, Any]]) -> str:
    """Step time of each peer at each scaling point, and our entries against ``nn.LSTM``."""
    keys = list(results)
    ref = results.get(REFERENCE, {})
    ours = [k for k in keys if k.startswith("nngraph")]
    header = ["hidden", "T"] + [f"{LABELS[k]} ms (CPU)" for k in keys]
    if "points" in ref:
        header += [f"{LABELS[k]} x nn.LSTM (median, CPU)" for k in ours]
    rows = []
    for i, w in enumerate(points):
        row = [str(w.hidden), str(w.steps)]
        med = {}
        for k in keys:
            r = results[k]
            if "points" in r:
                p = r["points"][i]
                med[k] = (p["median_step_ms"], p["median_step_cpu_ms"])
                row.append(f"{_num(med[k][0])} ({_num(med[k][1])})")
            else:
                row.append("unavailable")
        if "points" in ref:
            row += [_ratios(med[k], med[REFERENCE]) if k in med else "-" for k in ours]
        rows.append(row)
    w0 = points[0]
    return (f"### Scaling: batch {w0.batch}, input {w0.input_size}, {w0.layers} layers, "
            f"loss at the last step; median ms per training step (median CPU ms)\n\n"
            + markdown_table(header, rows))


def profile_report(prof: dict[str, Any]) -> str:
    """The phases table, FusedLSTM's array operations and cProfile's top functions."""
    from .breakdown import PHASES

    peers = prof["peers"]
    header = ["peer"] + list(PHASES) + ["total"]
    rows = []
    for key, p in peers.items():
        if "phases_ms" not in p:
            rows.append([LABELS[key], f"unavailable: {p.get('unavailable')}"] + [""] * len(PHASES))
            continue
        rows.append([LABELS[key]] + [_num(p["phases_ms"][name], 2) for name in header[1:]])
    parts = [f"### Profile, {prof['workload']}: median ms per phase of a training step\n",
             markdown_table(header, rows)]
    fused = peers.get("nngraph-optimized", {}).get("fused_ops")
    if fused:
        total = sum(fused["fused_ms"].values())
        op_rows = [[o["op"], _num(o["calls"], 0), _num(o["ms"], 2), f"{100 * o['ms'] / total:.0f}%"]
                   for o in fused["ops"]]
        op_rows.append(["other (operators +=, *=, slicing, Python)", "", _num(fused["other_ms"], 2),
                        f"{100 * fused['other_ms'] / total:.0f}%"])
        split = " + ".join(f"{name} {ms:.2f} ms" for name, ms in fused["fused_ms"].items())
        parts += [f"\nInside FusedLSTM ({prof['workload']}), per step: {split} (timed through the "
                  f"op wrapper; the whole step took {fused['step_ms']:.2f} ms)\n",
                  markdown_table(["array op", "calls / step", "ms / step", "share of FusedLSTM"], op_rows)]
    for key, p in peers.items():
        if "cprofile" in p:
            rows = [[r["function"], _num(r["calls"], 0), _num(r["own_ms"], 2), _num(r["cum_ms"], 2)]
                    for r in p["cprofile"]]
            parts += [f"\ncProfile, {LABELS[key]} ({prof['workload']}): top functions by own "
                      f"time (NumPy's ufuncs are invisible to it: their time is their caller's)\n",
                      markdown_table(["function", "calls / step", "own ms / step", "cumulative ms / step"],
                             rows)]
    return "\n".join(parts)


def guard_report(guard: dict[str, Any]) -> str:
    rows = [[name, c["what"], f"{c['error']:.1e}", f"{c['tol']:.0e}", "ok" if c["ok"] else "FAILED"]
            for name, checks in guard["workloads"].items() for c in checks]
    return ("### Guard: the optimized path is the same model (float32, errors relative to the "
            "largest value)\n\n" + markdown_table(["workload", "check", "error", "tolerance", ""], rows))


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "system": platform.platform(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def _meta_lines(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    pins = ", ".join(f"{k}={v}" for k, v in meta["openblas_pins"].items()) or "none set"
    lines = [
        f"machine: {m['cpu']} ({m['cpus']} CPUs), {m['system']}, Python {m['python']}",
        f"threads: {meta['threads']} per process ({', '.join(childenv.THREAD_VARS[:3])}, "
        f"threadpoolctl when installed, torch.set_num_threads)",
        f"OpenBLAS pins in the environment: {pins}; "
        + ("kept in the children" if meta["keep_openblas_env"] else "removed in the children"),
        "malloc: " + (", ".join(f"{k}={v}" for k, v in childenv.MALLOC_REUSE.items())
                      + " in the children (--malloc-reuse)" if meta["malloc_reuse"]
                      else "glibc defaults (large blocks mmap-ed and returned on free)"),
    ]
    if meta["main_table"]:
        lines.append(f"timing: {meta['warmup']} warm-up steps, {meta['repeat']} timed steps x "
                     f"{meta['rounds']} round(s) per peer and workload, median; seed {meta['seed']}")
    if meta.get("scaling"):
        lines.append(f"scaling: {meta['scaling']['warmup']} warm-up steps, "
                     f"{meta['scaling']['repeat']} timed steps per point, one fresh process per "
                     f"point and peer, median; seed {meta['seed']}")
    if meta.get("profile"):
        lines.append(f"profile: {meta['warmup']} warm-up steps, {meta['repeat']} profiled steps "
                     f"per view and peer")
    lines.append("columns: 'median' and 'min' are wall-clock ms; 'CPU ms' is the process's CPU "
                 "time (all threads), which other processes competing for the cores barely "
                 "change; 'x nn.LSTM' divides by PyTorch nn.LSTM's figure (above 1: slower or "
                 "larger); 'faults / step' counts minor page faults (first touches of fresh memory) in a "
                 "training step; memory is the child's resident set (VmRSS after imports, VmHWM "
                 "peak)")
    if meta.get("versions"):
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items())))
    if meta.get("blas"):
        lines.append("BLAS kernels: " + "; ".join(meta["blas"]))
    la = meta.get("load_average_after")
    if m.get("load_average") and la:
        lines.append(f"load average (1/5/15 min) before: {', '.join(f'{x:.2f}' for x in m['load_average'])}"
                     f"; after: {', '.join(f'{x:.2f}' for x in la)}")
    return "\n".join(lines)


def _collect_meta(meta: dict[str, Any], result: dict[str, Any]) -> None:
    """Add a child's package versions and BLAS readings to the report's header."""
    for name, version in result.get("versions", {}).items():
        meta["versions"][name] = version
    for lib in result.get("blas", []):
        if lib.get("api") == "openmp":  # the OpenMP runtime: threads only, no kernel
            continue
        owner = "torch" if lib.get("api") == "torch" else "numpy"
        text = f"{lib.get('api')} {lib.get('version') or ''} {lib.get('kernel') or ''}".strip()
        entry = f"{owner}: {text} ({lib.get('threads')} threads)"
        if entry not in meta["blas"]:
            meta["blas"].append(entry)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lstm",
                                description="Recipe LSTM vs PyTorch and Chainer: time and memory "
                                            "of a training step (see the module docstring).")
    p.add_argument("--workload", choices=["mnist", "char", "all", "none"], default="all",
                   help="workloads of the main table ('none': only --scaling / --profile)")
    p.add_argument("--peers", default=",".join(PEERS),
                   help=f"comma-separated peers (default all: {','.join(PEERS)})")
    p.add_argument("--repeat", type=int, default=20, help="timed steps per child (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--rounds", type=int, default=1,
                   help="fresh children per peer and workload, interleaved; samples pooled")
    p.add_argument("--threads", type=int, default=1, help="threads of every BLAS/OpenMP pool")
    p.add_argument("--json", metavar="PATH", help="write every sample and reading as JSON")
    p.add_argument("--scaling", action="store_true",
                   help="also: step time against hidden size and sequence length")
    p.add_argument("--hiddens", default="64,128,256,512,1024", help="scaling: hidden sizes at T=28")
    p.add_argument("--lengths", default="10,50,100,200", help="scaling: lengths at hidden 128")
    p.add_argument("--scaling-batch", type=int, default=32, help="scaling: batch size")
    p.add_argument("--scaling-peers", default=",".join(SCALING_PEERS))
    p.add_argument("--scaling-repeat", type=int, default=5,
                   help="scaling: timed steps per point (each point in a fresh process)")
    p.add_argument("--profile", action="store_true",
                   help="also: phases, FusedLSTM's array ops and cProfile of our step")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the children")
    p.add_argument("--malloc-reuse", action="store_true",
                   help="glibc malloc keeps freed memory in the children (no per-step page "
                        "faults; see childenv.MALLOC_REUSE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child-timeout", type=float, default=600.0, help="seconds per child")
    p.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    args.peer_list = [k.strip() for k in args.peers.split(",") if k.strip()]
    for k in args.peer_list + args.scaling_peers.split(","):
        if k not in PEERS:
            p.error(f"unknown peer {k!r}; known: {', '.join(PEERS)}")
    if args.repeat < 1 or args.rounds < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--repeat, --rounds and --threads must be >= 1, --warmup >= 0")
    return args


def run_main_tables(args: argparse.Namespace, workloads: list[Workload], meta: dict[str, Any],
                    out: list[str]) -> dict[str, Any]:
    """Every peer on every workload, ``--rounds`` times interleaved; appends the tables."""
    runs: dict[tuple[str, str], list] = {(w.name, k): [] for w in workloads for k in args.peer_list}
    for rnd in range(args.rounds):
        for w in workloads:
            for key in args.peer_list:
                r = run_child({"mode": "bench", "peer": key, "workload": w.to_dict(),
                               "repeat": args.repeat, "warmup": args.warmup}, args)
                runs[(w.name, key)].append(r)
                state = (f"{r['median_step_ms']:.1f} ms/step" if "median_step_ms" in r
                         else r.get("unavailable") or "error")
                _say(args, f"[round {rnd + 1}/{args.rounds}] {w.name:6s} {LABELS[key]}: {state}")
    report = {}
    for w in workloads:
        results = {key: _merge_rounds(runs[(w.name, key)]) for key in args.peer_list}
        for r in results.values():
            _collect_meta(meta, r)
        report[w.name] = {"workload": w.to_dict(), "peers": results}
        out.append(main_table(w, results))
    return report


def run_scaling(args: argparse.Namespace, meta: dict[str, Any], out: list[str]) -> dict[str, Any]:
    """Step time against hidden size and length, one fresh process per point; appends the table."""
    if args.quick:
        points = scaling_points([8, 16], [3, 6], batch=4, base_steps=5, base_hidden=8)
        points = [replace(p, input_size=6, classes=3) for p in points]
    else:
        points = scaling_points([int(h) for h in args.hiddens.split(",")],
                                [int(t) for t in args.lengths.split(",")], args.scaling_batch)
    scaled = {}
    for key in args.scaling_peers.split(","):
        # One fresh process per point: a point never inherits the allocator state (glibc's mmap
        # threshold grows as large blocks are freed) or the buffers of the one before.
        runs = []
        for p in points:
            r = run_child({"mode": "scaling", "peer": key, "workloads": [p.to_dict()],
                           **meta["scaling"]}, args)
            runs.append(r)
            state = (f"{r['points'][0]['median_step_ms']:.1f} ms/step" if "points" in r
                     else r.get("unavailable") or "error")
            _say(args, f"scaling {p.name:10s} {LABELS[key]}: {state}")
            if "points" not in r:
                break
        if all("points" in r for r in runs):
            scaled[key] = dict(runs[0], points=[r["points"][0] for r in runs])
        else:
            scaled[key] = next(r for r in runs if "points" not in r)
        _collect_meta(meta, scaled[key])
    out.append(scaling_table(points, scaled))
    return {"points": [p.to_dict() for p in points], "peers": scaled}


def run_profiles(args: argparse.Namespace, workloads: list[Workload],
                 out: list[str]) -> dict[str, Any]:
    """Phases, FusedLSTM's array ops and cProfile on each workload; appends the reports."""
    report = {}
    for w in workloads:
        _say(args, f"profile: {w.name} ...")
        prof = run_child({"mode": "profile", "peers": list(PROFILE_PEERS), "workload": w.to_dict(),
                          "repeat": args.repeat, "warmup": args.warmup}, args)
        report[w.name] = prof
        out.append(profile_report(prof) if "peers" in prof else f"profile failed: {prof}")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = QUICK if args.quick else WORKLOADS
    names = list(table) if args.workload in ("all", "none") else [args.workload]
    workloads = [table[n] for n in names]
    meta: dict[str, Any] = {
        "machine": _machine(), "threads": args.threads, "repeat": args.repeat,
        "warmup": args.warmup, "rounds": args.rounds, "seed": args.seed, "quick": args.quick,
        "keep_openblas_env": args.keep_openblas_env, "malloc_reuse": args.malloc_reuse,
        "main_table": args.workload != "none", "profile": args.profile,
        "scaling": ({"repeat": args.scaling_repeat, "warmup": min(2, args.warmup)}
                    if args.scaling else None),
        "openblas_pins": {k: os.environ[k] for k in childenv.OPENBLAS_PINS if k in os.environ},
        "versions": {}, "blas": [], "command": "python -m benchmarks.lstm " + " ".join(argv or sys.argv[1:]),
    }
    report: dict[str, Any] = {"meta": meta}
    out: list[str] = []

    # 1. The guard: our fast path must compute the recipe's model.
    _say(args, "guard: checking that the optimized path computes the recipe's model ...")
    torch_keys = [k for k in args.peer_list if k.startswith("torch")]
    guard = run_child({"mode": "guard", "workloads": [w.to_dict() for w in workloads],
                       "torch_peers": torch_keys}, args)
    report["guard"] = guard
    if "error" in guard:
        print(guard["error"], file=sys.stderr)
        return 2
    out.append(guard_report(guard))
    if not guard["ok"]:
        print("\n".join(out))
        print("\nthe optimized path does not compute the recipe's model: no timing", file=sys.stderr)
        _write_json(args, report)
        return 2

    # 2. The main tables, 3. scaling, 4. profile.
    if args.workload != "none":
        report["results"] = run_main_tables(args, workloads, meta, out)
    if args.scaling:
        report["scaling"] = run_scaling(args, meta, out)
    if args.profile:
        report["profile"] = run_profiles(args, workloads, out)

    meta["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print(_meta_lines(meta))
    print()
    print("\n\n".join(out))
    _write_json(args, report)
    return 0


def _write_json(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        _say(args, f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
