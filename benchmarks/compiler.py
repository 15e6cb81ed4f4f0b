"""Where the graph compiler starts (issue 16): nngraph_py against PyTorch in one process.

Usage::

    python -m benchmarks.compiler                 # every case, 1 thread, 15 interleaved repeats
    python -m benchmarks.compiler --repeat 30 --only gru-train,ff-train
    python -m benchmarks.compiler --quick         # tiny sizes, 1 repeat (the smoke test)

Unlike :mod:`benchmarks.lstm` (one child process per peer), every peer here runs in this one
process, on one BLAS/OpenMP thread (``threadpoolctl`` and ``torch.set_num_threads``), and the
repeats are interleaved: repeat ``k`` times every peer of a case once before repeat ``k + 1``
starts, so background load falls on all peers alike. Each figure is the median wall time of one
step in milliseconds; the ratio divides by the PyTorch peer of the same case. Peak memory is the
process's (``ru_maxrss``) at the end, for all peers together: per-peer peaks need one process per
peer (``benchmarks.lstm`` does that for the LSTM).

Cases (sizes of :data:`benchmarks.workloads.WORKLOADS` ``["mnist"]``: batch 100, T 28, input 28,
hidden 128; one recurrent layer here, ``Linear(128, 10)`` + cross-entropy on the last step):

``gru-train``   a training step (forward, loss, backward with parameter gradients; no optimizer
                update) of ``lstm.GRU``, of the GRU cell built from ``nn`` primitives
                (``lstm.make_gru_cell``) run by ``lstm.Recurrence``, and of ``torch.nn.GRU``.
``rnn-infer``   forward only, evaluate mode, for ``lstm.LSTM`` and ``lstm.GRU`` against
                ``nn.LSTM`` / ``nn.GRU`` under ``torch.inference_mode()``.
``ff-train``    4 x (``Linear(512)`` + ``Tanh``), batch 256, a gModule, MSE loss: a training
                step; ``ff-infer``: forward only in evaluate mode.
``compiled``    the same feed-forward graph through ``nngraph_py.compile.compile`` and a GRU
                cell step compiled (NumPy passes, and numba kernels when numba is installed) and
                run in a hand loop over the 28 steps, in the ``ff-*`` and ``gru-train`` cases.
"""
from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import time
from dataclasses import replace
from typing import Any, Callable

import numpy

from .lstm import markdown_table
from .workloads import WORKLOADS, make_batches

__all__ = ["main", "build_cases", "run_cases"]

#: A case: its name and a list of (peer label, step function); the last peer is the reference.
Case = tuple[str, list[tuple[str, Callable[[], Any]]]]


# ------------------------------------------------------------------------------------------------
# Peers
# ------------------------------------------------------------------------------------------------
def _rnn_peer(model: Any, head: Any, x: Any, y: Any, train: bool) -> Callable[[], Any]:
    """One step of a recurrent model of ours (time-major) + a Linear head at the last step."""
    from nngraph_py import nn

    crit = nn.CrossEntropyCriterion()
    if not train:
        model.evaluate()
        head.evaluate()

    def step() -> Any:
        outputs, _ = model.forward(x)
        logits = head.forward(outputs[-1])
        loss = crit.forward(logits, y)
        if train:
            model.zero_grad_parameters()
            head.zero_grad_parameters()
            g_logits = crit.backward(logits, y)
            g_last = head.backward(outputs[-1], g_logits)
            g_out = numpy.zeros_like(outputs)
            g_out[-1] = g_last
            model.backward(x, g_out)
        return loss

    return step


def _torch_rnn_peer(kind: str, w: Any, x: Any, y: Any, train: bool) -> Callable[[], Any]:
    import torch

    torch.manual_seed(0)
    rnn = getattr(torch.nn, kind)(w.input_size, w.hidden, 1)
    head = torch.nn.Linear(w.hidden, w.classes)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()
    params = list(rnn.parameters()) + list(head.parameters())
    if not train:
        rnn.eval()

    def step() -> Any:
        if not train:
            with torch.inference_mode():
                out, _ = rnn(tx)
                return loss_fn(head(out[-1]), ty)
        for p in params:
            p.grad = None
        out, _ = rnn(tx)
        loss = loss_fn(head(out[-1]), ty)
        loss.backward()
        return loss

    return step


def feed_forward(width: int, depth: int) -> Any:
    """The gModule ``depth x (Linear(width, width) + Tanh)`` (the ``ff`` cases' graph)."""
    from nngraph_py import nn

    x = nn.Identity()()
    h = x
    for _ in range(depth):
        h = nn.Tanh()(nn.Linear(width, width)(h))
    return nn.gModule([x], [h])


def _ff_peer(model: Any, x: Any, t: Any, train: bool) -> Callable[[], Any]:
    from nngraph_py import nn

    crit = nn.MSECriterion()
    if not train:
        model.evaluate()

    def step() -> Any:
        out = model.forward(x)
        loss = crit.forward(out, t)
        if train:
            model.zero_grad_parameters()
            model.backward(x, crit.backward(out, t))
        return loss

    return step


def _torch_ff_peer(width: int, depth: int, x: Any, t: Any, train: bool) -> Callable[[], Any]:
    import torch

    torch.manual_seed(0)
    layers: list[Any] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)
    loss_fn = torch.nn.MSELoss()

    def step() -> Any:
        if not train:
            with torch.inference_mode():
                return loss_fn(model(tx), tt)
        for p in model.parameters():
            p.grad = None
        loss = loss_fn(model(tx), tt)
        loss.backward()
        return loss

    return step


def _compiled_gru_peer(w: Any, x: Any, y: Any, kernels: str = "auto") -> Callable[[], Any] | None:
    """A GRU cell step compiled once and run by a hand loop over time (forward and BPTT)."""
    try:
        from nngraph_py.compile import compile as compile_graph
    except ImportError:
        return None
    import lstm
    from nngraph_py import nn

    # One compiled step per time step, sharing the cell's parameters (as Recurrence's clones do).
    steps = [compile_graph(c, kernels=kernels) for c in
             lstm.clone_many_times(lstm.make_gru_cell(w.input_size, w.hidden), w.steps)]
    cell = steps[0]
    head, crit = nn.Linear(w.hidden, w.classes), nn.CrossEntropyCriterion()
    h0 = numpy.zeros((w.batch, w.hidden), dtype=x.dtype)

    def step() -> Any:
        hs = [h0]
        for t in range(w.steps):
            hs.append(steps[t].forward([x[t], hs[-1]]))
        logits = head.forward(hs[-1])
        loss = crit.forward(logits, y)
        cell.zero_grad_parameters()
        head.zero_grad_parameters()
        g = head.backward(hs[-1], crit.backward(logits, y))
        for t in range(w.steps - 1, -1, -1):
            g = steps[t].backward([x[t], hs[t]], g)[1]
        return loss

    return step


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------
def build_cases(quick: bool = False, only: set[str] | None = None) -> list[Case]:
    """Every case's peers, built on the same seeded data (see the module docstring)."""
    import lstm

    w = replace(WORKLOADS["mnist"], layers=1)
    width, depth, ff_batch = 512, 4, 256
    if quick:
        w = replace(w, batch=4, steps=3, input_size=5, hidden=6, classes=3)
        width, ff_batch = 8, 5
    (x, y), = make_batches(w, n=1)
    rng = numpy.random.default_rng(1)
    fx = rng.standard_normal((ff_batch, width)).astype(numpy.float32)
    ft = rng.standard_normal((ff_batch, width)).astype(numpy.float32)

    def head() -> Any:
        from nngraph_py import nn

        return nn.Linear(w.hidden, w.classes)

    def ours(kind: str) -> Any:
        return getattr(lstm, kind)(w.input_size, w.hidden, batch_first=False)

    def user_gru() -> Any:
        return lstm.Recurrence(lstm.make_gru_cell(w.input_size, w.hidden), [w.hidden],
                               batch_first=False)

    cases: list[Case] = []
    want = lambda name: only is None or name in only  # noqa: E731
    if want("gru-train"):
        cases.append(("gru-train", [
            ("lstm.GRU", _rnn_peer(ours("GRU"), head(), x, y, True)),
            ("Recurrence(make_gru_cell)", _rnn_peer(user_gru(), head(), x, y, True)),
            ("torch nn.GRU", _torch_rnn_peer("GRU", w, x, y, True))]))
    if want("lstm-infer"):
        cases.append(("lstm-infer", [
            ("lstm.LSTM", _rnn_peer(ours("LSTM"), head(), x, y, False)),
            ("torch nn.LSTM", _torch_rnn_peer("LSTM", w, x, y, False))]))
    if want("gru-infer"):
        cases.append(("gru-infer", [
            ("lstm.GRU", _rnn_peer(ours("GRU"), head(), x, y, False)),
            ("torch nn.GRU", _torch_rnn_peer("GRU", w, x, y, False))]))
    for mode, train in (("train", True), ("infer", False)):
        if not want(f"ff-{mode}"):
            continue
        peers = [("gModule (node by node)", _ff_peer(feed_forward(width, depth), fx, ft, train))]
        try:
            from nngraph_py.compile import compile as compile_graph

            peers.append(("compile(gModule)",
                          _ff_peer(compile_graph(feed_forward(width, depth)), fx, ft, train)))
        except ImportError:
            pass
        peers.append(("torch Sequential", _torch_ff_peer(width, depth, fx, ft, train)))
        cases.append((f"ff-{mode}", peers))
    if want("gru-train"):
        compiled = _compiled_gru_peer(w, x, y)
        if compiled is not None:
            name, peers = cases[0]
            peers.insert(2, ("compiled gru cell, hand loop", compiled))
            try:
                import numba  # noqa: F401

                peers.insert(3, ("compiled gru cell (numba), hand loop",
                                 _compiled_gru_peer(w, x, y, kernels="numba")))
            except ImportError:
                pass
    return cases


def run_cases(cases: list[Case], repeat: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    """Wall-clock milliseconds of every peer's step, repeats interleaved across the peers."""
    times = {name: {label: [] for label, _ in peers} for name, peers in cases}
    for name, peers in cases:
        for _, step in peers:
            for _ in range(warmup):
                step()
    for _ in range(repeat):
        for name, peers in cases:
            for label, step in peers:
                t0 = time.perf_counter()
                step()
                times[name][label].append((time.perf_counter() - t0) * 1e3)
    return times


def report(times: dict[str, dict[str, list[float]]]) -> str:
    """One Markdown table: case, peer, median and min ms, ratio to the case's last peer."""
    rows = []
    for name, peers in times.items():
        ref = statistics.median(list(peers.values())[-1])
        for label, samples in peers.items():
            med = statistics.median(samples)
            rows.append([name, label, f"{med:.2f}", f"{min(samples):.2f}", f"{med / ref:.2f}x"])
    return markdown_table(["case", "peer", "median ms", "min ms", "x torch"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compiler", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument("--only", default=None,
                        help="comma-separated cases: gru-train,lstm-infer,gru-infer,ff-train,"
                             "ff-infer")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.warmup = 1, 0
    import threadpoolctl
    import torch

    torch.set_num_threads(args.threads)
    with threadpoolctl.threadpool_limits(args.threads):
        only = set(args.only.split(",")) if args.only else None
        cases = build_cases(args.quick, only)
        times = run_cases(cases, args.repeat, args.warmup)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# benchmarks.compiler: {args.repeat} interleaved repeats after {args.warmup} warm-up, "
          f"{args.threads} thread(s), one process")
    print(f"# python {platform.python_version()}, numpy {numpy.__version__}, "
          f"torch {torch.__version__}, {platform.machine()}")
    print(report(times))
    print(f"\npeak resident memory of the whole process: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
