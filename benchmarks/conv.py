"""One convolutional training step: nngraph_py against PyTorch on the CPU, one thread each.

The model (the issue's): batch 64 of 1x28x28 images ->
SpatialConvolution(1 -> 32, 3x3, pad 1) -> ReLU -> SpatialMaxPooling(2x2) ->
SpatialConvolution(32 -> 64, 3x3, pad 1) -> ReLU -> SpatialMaxPooling(2x2) ->
Reshape -> Linear(3136 -> 10) -> CrossEntropyCriterion; a step is zeroing the gradients, forward,
loss, backward and a plain SGD update.

Each peer runs in its own child process (so that its peak memory is its own), with one BLAS/OpenMP
thread; the children alternate for ``--rounds`` rounds and every step time of a peer goes into
its median. ``--profile`` adds where nngraph_py's step time goes, per module (forward and
backward).

Run ``python -m benchmarks.conv --help``; ``--quick`` is a small smoke run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from .childenv import child_env, limit_threads, memory
from .lstm import markdown_table  # imports neither NumPy nor PyTorch

__all__ = ["main", "run_peer"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ("nngraph", "torch")


def _nngraph_step(batch: int, size: int, c1: int, c2: int, seed: int) -> tuple[Any, Any]:
    import numpy as np

    from nngraph_py import backend, nn

    backend.manual_seed(seed)
    flat = c2 * (size // 4) ** 2
    model = nn.Sequential(
        nn.SpatialConvolution(1, c1, 3, 3, 1, 1, 1, 1), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
        nn.SpatialConvolution(c1, c2, 3, 3, 1, 1, 1, 1), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
        nn.Reshape(flat), nn.Linear(flat, 10))
    crit = nn.CrossEntropyCriterion()
    params, grads = model.get_parameters()
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 1, size, size), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step() -> float:
        grads[...] = 0
        out = model.forward(x)
        loss = crit.forward(out, y)
        model.backward(x, crit.backward(out, y))
        params[...] -= 0.01 * grads
        return loss

    return step, model


def _torch_step(batch: int, size: int, c1: int, c2: int, seed: int) -> tuple[Any, Any]:
    import torch

    torch.manual_seed(seed)
    flat = c2 * (size // 4) ** 2
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, c1, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c1, c2, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(flat, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 10, (batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss)

    return step, model


def _profile(model: Any, batch: int, size: int, repeat: int) -> list[dict[str, Any]]:
    """Seconds per step in each module's forward and backward (nngraph_py's Sequential)."""
    import numpy as np

    x = np.random.default_rng(0).random((batch, 1, size, size), dtype=np.float32)
    totals: dict[str, list[float]] = {}
    for _ in range(repeat):
        inputs = [x]
        for i, m in enumerate(model.children()):
            t = time.perf_counter()
            inputs.append(m.forward(inputs[-1]))
            totals.setdefault(f"({i + 1}) {m!r} forward", []).append(time.perf_counter() - t)
        g = np.ones_like(inputs[-1])
        for i in reversed(range(len(model.children()))):
            m = model.children()[i]
            t = time.perf_counter()
            g = m.backward(inputs[i], g)
            totals.setdefault(f"({i + 1}) {m!r} backward", []).append(time.perf_counter() - t)
    return [{"what": k, "ms": 1000 * statistics.median(v)} for k, v in totals.items()]


def run_peer(peer: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.repeat`` steps of ``peer`` after ``args.warmup`` (in this process)."""
    before = memory()
    make = _nngraph_step if peer == "nngraph" else _torch_step
    if peer == "torch":
        import torch  # noqa: F401  (imported before the thread limit is applied)
    else:
        import numpy  # noqa: F401
    limit_threads(1)
    after_import = memory()
    step, model = make(args.batch, args.size, args.c1, args.c2, args.seed)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    out = {"peer": peer, "times_ms": [1000 * t for t in times], "rss_start_mb": before["rss_mb"],
           "after_import_mb": after_import["rss_mb"], "peak_mb": memory()["peak_mb"]}
    if args.profile and peer == "nngraph":
        out["profile"] = _profile(model, args.batch, args.size, max(1, args.repeat // 2))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28, help="image height and width")
    p.add_argument("--c1", type=int, default=32, help="channels of the first convolution")
    p.add_argument("--c2", type=int, default=64, help="channels of the second convolution")
    p.add_argument("--repeat", type=int, default=10, help="timed steps per round and peer")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of the two peers")
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="nngraph_py's time per module")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.c1, args.c2 = 4, 8, 2, 4
        args.repeat, args.warmup, args.rounds = 2, 1, 1
    return args


def _child_argv(peer: str, args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "benchmarks.conv", "--child", peer, "--batch", str(args.batch),
            "--size", str(args.size), "--c1", str(args.c1), "--c2", str(args.c2),
            "--repeat", str(args.repeat), "--warmup", str(args.warmup), "--seed", str(args.seed)]
    return argv + (["--profile"] if args.profile else [])


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    rows, medians = [], {}
    for peer, runs in results.items():
        times = [t for r in runs for t in r["times_ms"]]
        medians[peer] = statistics.median(times)
        rows.append([peer, f"{medians[peer]:.1f}", f"{min(times):.1f}", str(len(times)),
                     f"{max(r['peak_mb'] for r in runs):.0f}",
                     f"{max(r['after_import_mb'] for r in runs):.0f}"])
    if "torch" in medians:
        for row in rows:
            row.insert(2, f"{medians[row[0]] / medians['torch']:.2f}x")
    header = ["peer", "step ms median"] + (["vs torch"] if "torch" in medians else []) + \
        ["step ms min", "steps", "peak RSS MB", "after import MB"]
    text = (f"### conv step: batch {args.batch}, 1x{args.size}x{args.size}, 3x3 convs "
            f"{args.c1} and {args.c2} channels with 2x2 max pooling, Linear -> 10; one thread\n\n"
            + markdown_table(header, rows))
    profile = [r.get("profile") for r in results.get("nngraph", []) if r.get("profile")]
    if profile:
        prof = profile[-1]
        total = sum(p["ms"] for p in prof)
        text += "\n\n### where nngraph_py's step goes (median ms per module call)\n\n" + \
            markdown_table(["module call", "ms", "share"],
                           [[p["what"], f"{p['ms']:.1f}", f"{100 * p['ms'] / total:.0f} %"]
                            for p in sorted(prof, key=lambda p: -p["ms"])])
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_peer(args.child, args)))
        return 0
    peers = [p for p in args.peers.split(",") if p]
    env = child_env(1, root=ROOT)
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    for _ in range(args.rounds):
        for peer in peers:
            proc = subprocess.run(_child_argv(peer, args), cwd=ROOT, env=env, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            results[peer].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(report(results, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
