"""The graph compiler (issue 16) against PyTorch: training and inference steps in one process.

Usage::

    python -m benchmarks.compiler                  # every case, 1 thread, 15 interleaved repeats
    python -m benchmarks.compiler --only gru-train,ff-train --shapes mnist --repeat 30
    python -m benchmarks.compiler --malloc-reuse   # re-run in a child with glibc keeping freed memory
    python -m benchmarks.compiler --scaling        # GRU training step, hidden 64-1024 x T 10-200
    python -m benchmarks.compiler --memory         # peak resident memory, one child per peer
    python -m benchmarks.compiler --profile gru-train-mnist:user-gru-numpy   # cProfile, top 15
    python -m benchmarks.compiler --quick          # tiny sizes, 1 repeat (the smoke test)

**Protocol.** Every peer runs in this one process on one BLAS/OpenMP thread (``threadpoolctl``
and ``torch.set_num_threads``). The repeats are interleaved: repeat ``k`` runs every peer of every
case once before repeat ``k + 1`` starts, so background load falls on all peers alike. A figure is
the median (and the min) wall time of one step in ms, and the median process CPU time; the ratio
divides by the PyTorch peer of the same case (the last row of each case), measured in the same
run. Before timing, a guard checks that the peers of one family (the same model on the same
weights, e.g. the user GRU compiled with NumPy passes, with numba kernels and node by node) give
the same loss and gradients. With ``--malloc-reuse`` the whole benchmark re-runs in a child
process whose environment holds :data:`benchmarks.childenv.MALLOC_REUSE` (glibc keeps freed
memory, which removes the page faults PyTorch pays on every step with glibc's defaults); the
header says which protocol ran.

**Cases** (shapes of :data:`benchmarks.workloads.WORKLOADS`, one recurrent layer, time-major;
``mnist``: batch 100, T 28, input 28, hidden 128, ``Linear(128, 10)`` + cross-entropy on the last
step; ``char``: batch 32, T 50, one-hot input 65, hidden 256, ``Linear(256, 65)`` + cross-entropy
at every step). A training step is forward, loss and backward with parameter gradients (no
optimizer update); inference is forward and loss in evaluate mode (PyTorch: ``eval()`` under
``torch.inference_mode()``).

``gru-train-<shape>``       ``lstm.GRU`` (NumPy passes, numba kernels); the GRU cell a user writes
                            from ``nn`` primitives (:mod:`benchmarks.cells`, PyTorch's equations)
                            run by ``lstm.Recurrence`` compiled (``kernels="numpy"``, ``"numba"``)
                            and node by node (``optimize(False)``); ``torch.nn.GRU``.
``peephole-train-<shape>``  the recipe ``lstm.LSTM`` (NumPy, numba); a peephole LSTM cell from
                            primitives run by ``Recurrence`` (NumPy, numba); ``torch.nn.LSTM``.
                            The ``x recipe`` column divides a peephole row by the recipe row of the
                            same kernels.
``lstm-infer-<shape>``      ``lstm.LSTM`` against ``nn.LSTM``.
``gru-infer-<shape>``       ``lstm.GRU`` and the user GRU via ``Recurrence`` against ``nn.GRU``.
``ff-train``, ``ff-infer``  4 x (``Linear(512)`` + ``Tanh``), batch 256, MSE: the gModule node by
                            node, ``nngraph_py.compile.compile`` of it, and ``nn.Sequential``.

The ``executor`` column says what actually ran each peer after its warm-up (``compiled``,
``recipe-lstm``, ``recipe-gru``, ``unrolled``, with the kernels asked for), read from the
layer's ``executors``; ``torch`` for PyTorch.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable

import numpy

from . import childenv
from .lstm import markdown_table
from .workloads import QUICK, WORKLOADS, Workload, make_batches

__all__ = ["TARGETS", "Case", "PeerSpec", "build_cases", "main", "run_cases"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Set in the environment of the ``--malloc-reuse`` child (so that it does not re-execute again).
CHILD_MARK = "NNGRAPH_BENCH_COMPILER_CHILD"
#: Prefix of the one JSON line a ``--memory`` child prints.
MEMORY_MARK = "@@compiler-memory@@"
REFERENCE_PREFIX = "torch"


# ------------------------------------------------------------------------------------------------
# Peers and cases
# ------------------------------------------------------------------------------------------------
@dataclass
class Built:
    """A peer ready to run: ``step()`` returns the loss; ``grads()`` the gradient arrays after a
    training step (for the guard); ``kind()`` what executes it."""

    step: Callable[[], float]
    kind: Callable[[], str]
    grads: Callable[[], list[Any]] = list


@dataclass
class PeerSpec:
    """One peer of a case, built on demand (``--memory`` builds one peer per child process).

    Attributes:
        key: short name, unique in its case (``--profile`` / ``--memory`` use it).
        label: the row's name.
        build: makes the peer (parameters seeded identically for every peer).
        family: peers of one family run the same model on the same weights: the guard compares
            them with the family's ``guard_ref`` peer.
        guard_ref: this peer is its family's reference in the guard.
        timed: False for a guard-only reference (not in the table).
        compare: key of another peer of the case: an extra ratio column (``x recipe``).
    """

    key: str
    label: str
    build: Callable[[], Built]
    family: str | None = None
    guard_ref: bool = False
    timed: bool = True
    compare: str | None = None


@dataclass
class Case:
    """A row group of the table: its peers (the last one, PyTorch's, is the reference)."""

    name: str
    train: bool
    peers: list[PeerSpec]
    shape: str = ""
    built: dict[str, Built] = field(default_factory=dict)

    def timed(self) -> list[PeerSpec]:
        return [p for p in self.peers if p.timed]


def _seed() -> None:
    import nngraph_py

    nngraph_py.manual_seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def executor_kind(model: Any) -> str:
    """What runs a recurrent layer: its executors' ``kind`` (and kernels), else a best guess."""
    executors = [e for e in (getattr(model, "executors", None) or []) if e is not None]
    if executors:
        kinds = []
        for e in executors:
            kind = str(getattr(e, "kind", type(e).__name__))
            kernels = getattr(e, "kernels", None)
            kinds.append(f"{kind}/{kernels}" if kernels else kind)
        return ",".join(dict.fromkeys(kinds))
    fused = getattr(model, "_fused", None)  # before the executors attribute (lstm.fast)
    if getattr(model, "_fused_ran", False) and fused:
        return ",".join(dict.fromkeys(
            type(f).__name__ + (f"/{f.kernels}" if getattr(f, "kernels", None) else "")
            for f in fused))
    return "unrolled"


def _set_optimize(model: Any, enabled: bool, kernels: str) -> Any:
    if enabled:
        model.optimize(True, kernels=kernels)
    else:
        model.optimize(False)
    return model


def _rnn_peer(make: Callable[[], Any], w: Workload, x: Any, y: Any, train: bool) -> Built:
    """A recurrent layer of ours (time-major) + a ``Linear`` head + cross-entropy."""
    from nngraph_py import nn

    _seed()
    model = make()
    head = nn.Linear(w.hidden, w.classes)
    crit = nn.CrossEntropyCriterion()
    if not train:
        model.evaluate()
        head.evaluate()
    steps, batch = x.shape[0], x.shape[1]
    target = y.reshape(-1) if w.every_step else y

    def step() -> float:
        outputs, _ = model.forward(x)
        feats = outputs.reshape(steps * batch, -1) if w.every_step else outputs[-1]
        logits = head.forward(feats)
        loss = crit.forward(logits, target)
        if train:
            model.zero_grad_parameters()
            head.zero_grad_parameters()
            g_feats = head.backward(feats, crit.backward(logits, target))
            if w.every_step:
                g_out = g_feats.reshape(outputs.shape)
            else:
                g_out = numpy.zeros_like(outputs)
                g_out[-1] = g_feats
            model.backward(x, g_out)
        return float(loss)

    return Built(step, lambda: executor_kind(model),
                 lambda: list(model.parameters()[1]) + list(head.parameters()[1]))


def _torch_rnn_peer(kind: str, w: Workload, x: Any, y: Any, train: bool) -> Built:
    import torch

    _seed()
    rnn = getattr(torch.nn, kind)(w.input_size, w.hidden, 1)
    head = torch.nn.Linear(w.hidden, w.classes)
    tx = torch.from_numpy(x)
    ty = torch.from_numpy(y.reshape(-1) if w.every_step else y)
    loss_fn = torch.nn.CrossEntropyLoss()
    params = list(rnn.parameters()) + list(head.parameters())
    if not train:
        rnn.eval()
        head.eval()

    def forward() -> Any:
        out, _ = rnn(tx)
        feats = out.reshape(-1, w.hidden) if w.every_step else out[-1]
        return loss_fn(head(feats), ty)

    def step() -> float:
        if not train:
            with torch.inference_mode():
                return float(forward())
        for p in params:
            p.grad = None
        loss = forward()
        loss.backward()
        return float(loss.detach())

    return Built(step, lambda: "torch")


def feed_forward(width: int, depth: int) -> Any:
    """The gModule ``depth x (Linear(width, width) + Tanh)`` (the ``ff`` cases' graph)."""
    from nngraph_py import nn

    x = nn.Identity()()
    h = x
    for _ in range(depth):
        h = nn.Tanh()(nn.Linear(width, width)(h))
    return nn.gModule([x], [h])


def _ff_peer(width: int, depth: int, x: Any, t: Any, train: bool, compiled: bool) -> Built:
    from nngraph_py import nn

    _seed()
    model = feed_forward(width, depth)
    if compiled:
        from nngraph_py.compile import compile as compile_graph

        model = compile_graph(model, no_grad=not train)
    crit = nn.MSECriterion()
    if not train:
        model.evaluate()

    def step() -> float:
        out = model.forward(x)
        loss = crit.forward(out, t)
        if train:
            model.zero_grad_parameters()
            model.backward(x, crit.backward(out, t))
        return float(loss)

    kind = "compiled" if compiled else "node by node"
    return Built(step, lambda: kind, lambda: list(model.parameters()[1]))


def _torch_ff_peer(width: int, depth: int, x: Any, t: Any, train: bool) -> Built:
    import torch

    _seed()
    layers: list[Any] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)
    loss_fn = torch.nn.MSELoss()
    if not train:
        model.eval()

    def step() -> float:
        if not train:
            with torch.inference_mode():
                return float(loss_fn(model(tx), tt))
        for p in model.parameters():
            p.grad = None
        loss = loss_fn(model(tx), tt)
        loss.backward()
        return float(loss.detach())

    return Built(step, lambda: "torch")


def _layer(kind: str, w: Workload, optimize: bool = True, kernels: str = "auto") -> Callable:
    def make() -> Any:
        import lstm

        return _set_optimize(getattr(lstm, kind)(w.input_size, w.hidden, batch_first=False),
                             optimize, kernels)

    return make


def _recurrence(cell: Callable[[int, int], Any], states: int, w: Workload, optimize: bool = True,
                kernels: str = "auto") -> Callable:
    def make() -> Any:
        import lstm

        rec = lstm.Recurrence(cell(w.input_size, w.hidden), [w.hidden] * states, output=0,
                              batch_first=False)
        return _set_optimize(rec, optimize, kernels)

    return make


def workloads(quick: bool, shapes: list[str]) -> dict[str, Workload]:
    """The recurrent shapes of the cases (one layer)."""
    table = QUICK if quick else WORKLOADS
    return {name: replace(table[name], layers=1) for name in shapes}


def build_cases(quick: bool = False, only: list[str] | None = None,
                shapes: tuple[str, ...] = ("mnist", "char"), numba: bool | None = None,
                gru_cell: str = "gates") -> list[Case]:
    """Every selected case with its peer specs (nothing is built yet: see :func:`build`).

    Args:
        quick: tiny sizes.
        only: case names or prefixes (``gru-train`` selects ``gru-train-mnist`` and ``-char``).
        shapes: the recurrent shapes (``mnist``, ``char``).
        numba: include the numba peers (default: when numba is installed and not ``quick``:
            numba compiles each generated kernel on first use, seconds each).
        gru_cell: the user GRU of :data:`benchmarks.cells.GRU_CELLS`.
    """
    from .cells import GRU_CELLS, peephole_lstm_cell

    numba = (_has_numba() and not quick) if numba is None else numba and _has_numba()
    user_gru = GRU_CELLS[gru_cell]
    kernel_sets = ["numpy"] + (["numba"] if numba else [])
    cases: list[Case] = []
    for shape, w in workloads(quick, list(shapes)).items():
        (x, y), = make_batches(w, n=1)

        def rnn(make: Callable, train: bool, w: Workload = w, x: Any = x,
                y: Any = y) -> Callable[[], Built]:
            return lambda: _rnn_peer(make, w, x, y, train)

        def torch_rnn(kind: str, train: bool, w: Workload = w, x: Any = x,
                      y: Any = y) -> Callable[[], Built]:
            return lambda: _torch_rnn_peer(kind, w, x, y, train)

        peers = [PeerSpec(f"gru-{k}", f"lstm.GRU ({k})", rnn(_layer("GRU", w, True, k), True),
                          family="gru") for k in kernel_sets]
        peers.append(PeerSpec("gru-unrolled", "lstm.GRU node by node",
                              rnn(_layer("GRU", w, False), True), family="gru", guard_ref=True,
                              timed=False))
        peers += [PeerSpec(f"user-gru-{k}", f"Recurrence(user GRU) compiled ({k})",
                           rnn(_recurrence(user_gru, 1, w, True, k), True), family="user-gru")
                  for k in kernel_sets]
        peers.append(PeerSpec("user-gru-unrolled", "Recurrence(user GRU) optimize(False)",
                              rnn(_recurrence(user_gru, 1, w, False), True), family="user-gru",
                              guard_ref=True))
        peers.append(PeerSpec("torch-gru", "torch nn.GRU", torch_rnn("GRU", True)))
        cases.append(Case(f"gru-train-{shape}", True, peers, shape))

        peers = [PeerSpec(f"lstm-{k}", f"lstm.LSTM recipe ({k})",
                          rnn(_layer("LSTM", w, True, k), True), family="lstm")
                 for k in kernel_sets]
        peers.append(PeerSpec("lstm-unrolled", "lstm.LSTM node by node",
                              rnn(_layer("LSTM", w, False), True), family="lstm",
                              guard_ref=True, timed=False))
        peers += [PeerSpec(f"peephole-{k}", f"Recurrence(peephole LSTM) ({k})",
                           rnn(_recurrence(peephole_lstm_cell, 2, w, True, k), True),
                           family="peephole", compare=f"lstm-{k}") for k in kernel_sets]
        peers.append(PeerSpec("peephole-unrolled", "Recurrence(peephole LSTM) optimize(False)",
                              rnn(_recurrence(peephole_lstm_cell, 2, w, False), True),
                              family="peephole", guard_ref=True, timed=False))
        peers.append(PeerSpec("torch-lstm", "torch nn.LSTM", torch_rnn("LSTM", True)))
        cases.append(Case(f"peephole-train-{shape}", True, peers, shape))

        cases.append(Case(f"lstm-infer-{shape}", False, [
            PeerSpec("lstm", "lstm.LSTM (evaluate)", rnn(_layer("LSTM", w), False),
                     family="lstm"),
            PeerSpec("lstm-unrolled", "lstm.LSTM node by node", rnn(_layer("LSTM", w, False),
                     False), family="lstm", guard_ref=True, timed=False),
            PeerSpec("torch-lstm", "torch nn.LSTM (inference_mode)",
                     torch_rnn("LSTM", False))], shape))
        cases.append(Case(f"gru-infer-{shape}", False, [
            PeerSpec("gru", "lstm.GRU (evaluate)", rnn(_layer("GRU", w), False), family="gru"),
            PeerSpec("gru-unrolled", "lstm.GRU node by node", rnn(_layer("GRU", w, False),
                     False), family="gru", guard_ref=True, timed=False),
            PeerSpec("user-gru", "Recurrence(user GRU) (evaluate)",
                     rnn(_recurrence(user_gru, 1, w), False), family="user-gru"),
            PeerSpec("user-gru-unrolled", "Recurrence(user GRU) optimize(False)",
                     rnn(_recurrence(user_gru, 1, w, False), False), family="user-gru",
                     guard_ref=True, timed=False),
            PeerSpec("torch-gru", "torch nn.GRU (inference_mode)", torch_rnn("GRU", False))],
            shape))

    width, depth, batch = (8, 4, 5) if quick else (512, 4, 256)
    rng = numpy.random.default_rng(1)
    fx = rng.standard_normal((batch, width)).astype(numpy.float32)
    ft = rng.standard_normal((batch, width)).astype(numpy.float32)
    def ff(compiled: bool | None, train: bool) -> Callable[[], Built]:
        if compiled is None:
            return lambda: _torch_ff_peer(width, depth, fx, ft, train)
        return lambda: _ff_peer(width, depth, fx, ft, train, compiled)

    for mode, train in (("train", True), ("infer", False)):
        cases.append(Case(f"ff-{mode}", train, [
            PeerSpec("ff-graph", "gModule (node by node)", ff(False, train), family="ff",
                     guard_ref=True),
            PeerSpec("ff-compiled", "compile(gModule)", ff(True, train), family="ff"),
            PeerSpec("torch-ff", "torch nn.Sequential", ff(None, train))]))
    if only:
        cases = [c for c in cases
                 if any(c.name == o or c.name.startswith(o + "-") for o in only)]
    return cases


def build(cases: list[Case], timed_only: bool = False) -> None:
    """Build every peer of the cases (guard-only references too unless ``timed_only``)."""
    for case in cases:
        for p in case.peers:
            if (p.timed or not timed_only) and p.key not in case.built:
                case.built[p.key] = p.build()


# ------------------------------------------------------------------------------------------------
# Guard, timing
# ------------------------------------------------------------------------------------------------
def _rel_err(a: Any, b: Any) -> float:
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    scale = max(float(numpy.abs(b).max()), 1e-12) if b.size else 1.0
    return float(numpy.abs(a - b).max()) / scale if a.size else 0.0


def guard(cases: list[Case], loss_tol: float = 1e-4, grad_tol: float = 1e-3) -> list[list[str]]:
    """One step of every peer; each family member against its reference: loss and gradients.

    Returns the rows of the guard table; the guard-only peers are dropped afterwards.
    """
    rows = []
    for case in cases:
        runs: dict[str, tuple[float, list[Any]]] = {}
        for p in case.peers:
            built = case.built[p.key]
            loss = built.step()
            runs[p.key] = (loss, [numpy.array(g, dtype=numpy.float64).ravel()
                                  for g in built.grads()] if case.train else [])
        for p in case.peers:
            if p.family is None or p.guard_ref:
                continue
            ref = next((q for q in case.peers if q.family == p.family and q.guard_ref), None)
            if ref is None:
                continue
            loss_err = _rel_err(runs[p.key][0], runs[ref.key][0])
            ga, gb = runs[p.key][1], runs[ref.key][1]
            grad_err = (max(_rel_err(a, b) for a, b in zip(ga, gb)) if ga and len(ga) == len(gb)
                        else (float("nan") if case.train else 0.0))
            ok = loss_err <= loss_tol and (not case.train or grad_err <= grad_tol)
            rows.append([case.name, p.label, f"vs {ref.label}", f"{loss_err:.1e}",
                         f"{grad_err:.1e}" if case.train else "-", "ok" if ok else "FAILED"])
        for p in case.peers:
            if not p.timed:
                del case.built[p.key]
    return rows


def run_cases(cases: list[Case], repeat: int, warmup: int) -> dict[str, dict[str, dict]]:
    """Wall and CPU ms of every timed peer's step, repeats interleaved across all peers."""
    out: dict[str, dict[str, dict]] = {c.name: {p.key: {"wall": [], "cpu": []} for p in c.timed()}
                                       for c in cases}
    for case in cases:
        for p in case.timed():
            for _ in range(warmup):
                case.built[p.key].step()
    for _ in range(repeat):
        for case in cases:
            for p in case.timed():
                step = case.built[p.key].step
                w0, c0 = time.perf_counter(), time.process_time()
                step()
                c1, w1 = time.process_time(), time.perf_counter()
                out[case.name][p.key]["wall"].append((w1 - w0) * 1e3)
                out[case.name][p.key]["cpu"].append((c1 - c0) * 1e3)
    for case in cases:
        for p in case.timed():
            out[case.name][p.key]["kind"] = case.built[p.key].kind()
    return out


def _med(samples: list[float]) -> float:
    return statistics.median(samples)


def report(cases: list[Case], times: dict[str, dict[str, dict]]) -> str:
    """The table: case, peer, executor, median/min/CPU ms, ratios to PyTorch (and the recipe)."""
    rows = []
    for case in cases:
        peers = case.timed()
        t = times[case.name]
        ref = t[peers[-1].key]
        for p in peers:
            s = t[p.key]
            med, low, cpu = _med(s["wall"]), min(s["wall"]), _med(s["cpu"])
            vs = "-"
            if p.compare and p.compare in t:
                c = t[p.compare]
                vs = f"{med / _med(c['wall']):.2f}x ({min(s['wall']) / min(c['wall']):.2f}x)"
            rows.append([case.name, p.label, s["kind"], f"{med:.2f}", f"{low:.2f}", f"{cpu:.2f}",
                         f"{med / _med(ref['wall']):.2f}x", f"{low / min(ref['wall']):.2f}x",
                         f"{cpu / _med(ref['cpu']):.2f}x", vs])
    return markdown_table(["case", "peer", "executor", "median ms", "min ms", "CPU ms",
                           "x torch (median)", "x torch (min)", "x torch (CPU)",
                           "x recipe (median, min)"], rows)


#: Issue 16's targets: (what, case prefix, peer key, reference key or None for PyTorch, limit).
TARGETS = [
    ("user GRU via Recurrence, NumPy: <= 1.0x nn.GRU", "gru-train", "user-gru-numpy", None, 1.0),
    ("user GRU via Recurrence, numba: <= 0.85x nn.GRU", "gru-train", "user-gru-numba", None,
     0.85),
    ("lstm.GRU, NumPy: <= 1.0x nn.GRU", "gru-train", "gru-numpy", None, 1.0),
    ("lstm.GRU, numba: <= 0.85x nn.GRU", "gru-train", "gru-numba", None, 0.85),
    ("peephole LSTM, NumPy: <= 1.15x recipe LSTM (NumPy)", "peephole-train", "peephole-numpy",
     "lstm-numpy", 1.15),
    ("peephole LSTM, numba: <= 1.15x recipe LSTM (numba)", "peephole-train", "peephole-numba",
     "lstm-numba", 1.15),
    ("LSTM inference: <= 1.0x nn.LSTM", "lstm-infer", "lstm", None, 1.0),
    ("GRU inference (lstm.GRU): <= 1.0x nn.GRU", "gru-infer", "gru", None, 1.0),
    ("GRU inference (user GRU): <= 1.0x nn.GRU", "gru-infer", "user-gru", None, 1.0),
    ("feed-forward training, compiled: <= 1.0x torch", "ff-train", "ff-compiled", None, 1.0),
    ("feed-forward inference, compiled: <= 1.0x torch", "ff-infer", "ff-compiled", None, 1.0),
]


def targets_table(cases: list[Case], times: dict[str, dict[str, dict]]) -> str:
    """Issue 16's targets, met or not, on the median ratio (the min ratio alongside)."""
    rows = []
    for what, prefix, key, ref_key, limit in TARGETS:
        for case in cases:
            if not (case.name == prefix or case.name.startswith(prefix + "-")):
                continue
            t = times[case.name]
            ref = ref_key or case.timed()[-1].key
            if key not in t or ref not in t:
                continue
            med = _med(t[key]["wall"]) / _med(t[ref]["wall"])
            low = min(t[key]["wall"]) / min(t[ref]["wall"])
            rows.append([what, case.name, t[key]["kind"], f"{med:.2f}x", f"{low:.2f}x",
                         "met" if med <= limit else "NOT met"])
    return markdown_table(["target (issue 16)", "case", "executor", "median ratio", "min ratio",
                           ""], rows)


# ------------------------------------------------------------------------------------------------
# --scaling, --memory, --profile
# ------------------------------------------------------------------------------------------------
def scaling_repeats(hidden: int, steps: int, repeat: int) -> int:
    """Fewer repeats for the big cells (about the cost of a step relative to H 128, T 28)."""
    cost = (hidden / 128) ** 2 * steps / 28
    if cost <= 8:
        return repeat
    return max(2, repeat // 2) if cost <= 40 else 2


def run_scaling(args: argparse.Namespace) -> str:
    """The GRU training step over hidden x T: user GRU compiled, lstm.GRU, nn.GRU."""
    from .cells import GRU_CELLS

    if args.quick:
        hiddens, lengths, batch, inp = [8, 16], [3, 5], 4, 6
    else:
        hiddens = [int(h) for h in args.hiddens.split(",")]
        lengths = [int(t) for t in args.lengths.split(",")]
        batch, inp = 100, 28
    cell = GRU_CELLS[args.gru_cell]
    rows = []
    for h in hiddens:
        for steps in lengths:
            w = Workload(f"H{h}_T{steps}", batch=batch, steps=steps, input_size=inp, hidden=h,
                         layers=1, classes=10)
            (x, y), = make_batches(w, n=1)
            user = _recurrence(cell, 1, w, True, args.kernels)
            recipe = _layer("GRU", w, True, args.kernels)
            case = Case(w.name, True, [
                PeerSpec("user-gru", "user GRU", partial(_rnn_peer, user, w, x, y, True)),
                PeerSpec("gru", "lstm.GRU", partial(_rnn_peer, recipe, w, x, y, True)),
                PeerSpec("torch-gru", "nn.GRU", partial(_torch_rnn_peer, "GRU", w, x, y, True))])
            build([case], timed_only=True)
            rep = 1 if args.quick else scaling_repeats(h, steps, args.scaling_repeat)
            t = run_cases([case], rep, 0 if args.quick else 1)[case.name]
            ref = _med(t["torch-gru"]["wall"])
            rows.append([str(h), str(steps), str(rep)]
                        + [f"{_med(t[k]['wall']):.1f}" for k in ("user-gru", "gru", "torch-gru")]
                        + [f"{_med(t[k]['wall']) / ref:.2f}x" for k in ("user-gru", "gru")]
                        + [f"{t['user-gru']['kind']}; {t['gru']['kind']}"])
            _say(args, f"scaling H{h} T{steps}: " + ", ".join(rows[-1][3:8]))
            del case
    return (f"### Scaling: GRU training step, batch {batch}, input {inp}, one layer, loss at the "
            f"last step; median ms (kernels={args.kernels!r}; 1 warm-up step, 'n' interleaved "
            f"repeats)\n\n"
            + markdown_table(["hidden", "T", "n", "user GRU ms", "lstm.GRU ms", "nn.GRU ms",
                              "user GRU x nn.GRU", "lstm.GRU x nn.GRU",
                              "executors (user GRU; lstm.GRU)"], rows))


def _find_peer(cases: list[Case], spec: str) -> tuple[Case, PeerSpec]:
    """``CASE:KEY`` or ``KEY`` (the first selected case that has it)."""
    case_name, _, key = spec.rpartition(":")
    for case in cases:
        if case_name and case.name != case_name:
            continue
        for p in case.peers:
            if p.key == key:
                return case, p
    known = sorted({f"{c.name}:{p.key}" for c in cases for p in c.peers})
    raise SystemExit(f"unknown peer {spec!r}; known: {', '.join(known)}")


def _memory_child(args: argparse.Namespace, cases: list[Case]) -> int:
    case, peer = _find_peer(cases, args.memory_child)
    before = childenv.memory()
    built = peer.build()
    after_build = childenv.memory()
    for _ in range(args.memory_steps):
        built.step()
    result = {"case": case.name, "key": peer.key, "label": peer.label, "kind": built.kind(),
              "import_mb": before["rss_mb"], "built_mb": after_build["rss_mb"],
              **childenv.memory()}
    print(MEMORY_MARK + json.dumps(result))
    return 0


def run_memory(args: argparse.Namespace, cases: list[Case]) -> str:
    """Each timed peer of each case in a fresh child process: its peak resident set."""
    rows = []
    for case in cases:
        peers = case.timed()
        results = []
        for p in peers:
            cmd = [sys.executable, "-m", "benchmarks.compiler", "--memory-child",
                   f"{case.name}:{p.key}", "--memory-steps", str(args.memory_steps),
                   "--threads", str(args.threads), "--shapes", args.shapes,
                   "--gru-cell", args.gru_cell] + (["--quick"] if args.quick else []) \
                + (["--numba"] if args.numba else []) + (["--no-numba"] if args.no_numba else [])
            env = childenv.child_env(args.threads, root=ROOT)
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=args.child_timeout, check=False)
            line = next((ln for ln in reversed(proc.stdout.splitlines())
                         if ln.startswith(MEMORY_MARK)), None)
            if line is None:
                tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
                results.append((p, None, f"error (exit {proc.returncode}): {tail}"))
            else:
                results.append((p, json.loads(line[len(MEMORY_MARK):]), ""))
            _say(args, f"memory {case.name}:{p.key}: "
                 + (f"{results[-1][1]['peak_mb']:.0f} MB" if results[-1][1] else "error"))
        ref = results[-1][1]
        for p, r, err in results:
            if r is None:
                rows.append([case.name, p.label, err, "", "", "", "", ""])
                continue
            delta = r["peak_mb"] - r["import_mb"]
            ratio = "-"
            if ref:
                ref_delta = ref["peak_mb"] - ref["import_mb"]
                ratio = f"{r['peak_mb'] / ref['peak_mb']:.2f}x, " + (
                    f"{delta / ref_delta:.2f}x" if ref_delta > 0 else "-")
            rows.append([case.name, p.label, r["kind"], f"{r['import_mb']:.0f}",
                         f"{r['built_mb']:.0f}", f"{r['peak_mb']:.0f}", f"{delta:.0f}", ratio])
    return (f"### Peak memory: each peer alone in a fresh process, {args.memory_steps} steps "
            f"(VmHWM; 'before' is the resident set after the imports, before the peer is "
            f"built)\n\n"
            + markdown_table(["case", "peer", "executor", "before MB", "built MB", "peak MB",
                              "peak - before MB", "x torch (peak, peak - before)"], rows))


def run_profile(args: argparse.Namespace, cases: list[Case]) -> str:
    """cProfile of one peer's steps after its warm-up: top 15 by cumulative and by own time."""
    case, peer = _find_peer(cases, args.profile)
    built = peer.build()
    for _ in range(max(1, args.warmup)):
        built.step()
    steps = args.profile_steps
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(steps):
        built.step()
    prof.disable()
    ms = (time.perf_counter() - t0) * 1e3 / steps
    title = (f"### Profile of {case.name}:{peer.key} ({peer.label}, executor {built.kind()}): "
             f"{steps} steps, {ms:.2f} ms per step under cProfile (cProfile's own cost included; "
             f"NumPy's ufuncs and BLAS calls show as built-in methods, or in their caller's own "
             f"time)")
    parts = [title]
    raw = pstats.Stats(prof).stats  # {(file, line, func): (prim calls, calls, own, cum, callers)}

    def where(key: tuple) -> str:
        path, line, func = key
        if path == "~":
            return func
        rel = os.path.relpath(path, ROOT) if path.startswith(ROOT) else os.path.basename(path)
        return f"{rel}:{line}({func})"

    for order, col in (("cumulative", 3), ("own", 2)):
        top = sorted(raw.items(), key=lambda kv: kv[1][col], reverse=True)[:15]
        rows = [[where(k), f"{v[1] / steps:.0f}", f"{v[2] * 1e3 / steps:.2f}",
                 f"{v[3] * 1e3 / steps:.2f}"] for k, v in top]
        parts += [f"\ntop 15 by {order} time (per step):\n",
                  markdown_table(["function", "calls", "own ms", "cumulative ms"], rows)]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
def _say(args: argparse.Namespace, text: str) -> None:
    if args.verbose:
        print(text, file=sys.stderr, flush=True)


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def header(args: argparse.Namespace, argv: list[str]) -> list[str]:
    import torch

    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    versions = [f"python {platform.python_version()}", f"numpy {numpy.__version__}",
                f"torch {torch.__version__}"]
    if _has_numba():
        import numba

        versions.append(f"numba {numba.__version__}")
    else:
        versions.append("numba not installed (no numba peers)")
    reuse = all(os.environ.get(k) == v for k, v in childenv.MALLOC_REUSE.items())
    malloc = ("MALLOC REUSE (--malloc-reuse: re-executed in a child process with "
              + ", ".join(f"{k}={v}" for k, v in childenv.MALLOC_REUSE.items()) + ")"
              if reuse else "glibc defaults (large blocks mmap-ed, returned to the system on "
                            "free)")
    main_mode = not (args.scaling or args.memory or args.profile)
    return [
        "# command: python -m benchmarks.compiler " + " ".join(argv),
        f"# machine: {cpu} ({os.cpu_count()} CPUs), {platform.platform()}",
        "# " + ", ".join(versions),
        f"# threads: {args.threads} (threadpoolctl + torch.set_num_threads), one process",
        f"# malloc: {malloc}",
        (f"# timing: {args.repeat} interleaved repeats after {args.warmup} warm-up step(s) "
         + ("" if args.no_guard else "(+1 guard step) ")
         + "per peer; wall-clock median and min, process CPU time median" if main_mode
         else "# timing: see the table's title"),
        f"# user GRU cell: benchmarks.cells.{'gru_cell' if args.gru_cell == 'gates' else 'stacked_gru_cell'}",
        f"# load average (1/5/15 min) at start: {_load()}",
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compiler", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=15, help="interleaved timed repeats (15)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per peer first (3)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat (smoke test)")
    p.add_argument("--only", default=None,
                   help="comma-separated case names or prefixes: gru-train, peephole-train, "
                        "lstm-infer, gru-infer (each -mnist / -char), ff-train, ff-infer")
    p.add_argument("--shapes", default="mnist,char", help="recurrent shapes (mnist,char)")
    p.add_argument("--no-numba", action="store_true", help="leave out the numba peers")
    p.add_argument("--numba", action="store_true",
                   help="with --quick: include the numba peers (left out by default: numba "
                        "compiles every generated kernel on first use)")
    p.add_argument("--gru-cell", choices=["gates", "stacked"], default="gates",
                   help="the user GRU: six Linears (gates) or two stacked Linears + Narrow")
    p.add_argument("--no-guard", action="store_true", help="skip the equality check")
    p.add_argument("--json", metavar="PATH", help="write every sample as JSON")
    p.add_argument("--malloc-reuse", action="store_true",
                   help="re-run in a child process with benchmarks.childenv.MALLOC_REUSE")
    p.add_argument("--scaling", action="store_true",
                   help="only the GRU scaling table (hidden x T, batch 100, input 28)")
    p.add_argument("--hiddens", default="64,128,256,512,1024")
    p.add_argument("--lengths", default="10,50,200")
    p.add_argument("--scaling-repeat", type=int, default=5,
                   help="repeats per scaling point (halved, then 2, for the big cells)")
    p.add_argument("--kernels", default="auto", choices=["auto", "numpy", "numba"],
                   help="kernels of the scaling peers")
    p.add_argument("--memory", action="store_true",
                   help="only peak memory: each peer in its own child process")
    p.add_argument("--memory-steps", type=int, default=5)
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-timeout", type=float, default=600.0)
    p.add_argument("--profile", metavar="[CASE:]PEER", default=None,
                   help="only: cProfile of one peer's steps (e.g. gru-train-mnist:user-gru-numpy)")
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = p.parse_args(argv)
    if args.quick:
        args.repeat, args.warmup, args.scaling_repeat = 1, 0, 1
        args.memory_steps, args.profile_steps = min(args.memory_steps, 2), 1
    if args.repeat < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--repeat and --threads must be >= 1, --warmup >= 0")
    return args


def _reexec_malloc_reuse(argv: list[str]) -> int:
    """Run this benchmark again in a child whose environment keeps glibc's freed memory."""
    threads = parse_args(argv).threads
    env = childenv.child_env(threads, root=ROOT, malloc_reuse=True)
    env[CHILD_MARK] = "1"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.compiler"] + argv, cwd=ROOT,
                          env=env, capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.malloc_reuse and not os.environ.get(CHILD_MARK):
        return _reexec_malloc_reuse(argv)
    import threadpoolctl
    import torch

    torch.set_num_threads(args.threads)
    with threadpoolctl.threadpool_limits(args.threads), warnings.catch_warnings():
        # A cell no executor compiles runs node by node: the executor column says so.
        warnings.filterwarnings("ignore", message=".*running them unoptimized")
        only = [o.strip() for o in args.only.split(",") if o.strip()] if args.only else None
        shapes = tuple(s.strip() for s in args.shapes.split(",") if s.strip())
        numba = False if args.no_numba else (True if args.numba else None)
        cases = build_cases(args.quick, only, shapes, numba=numba,
                            gru_cell=args.gru_cell)
        if args.memory_child:
            return _memory_child(args, cases)
        lines = header(args, argv)
        if args.profile:
            lines += ["", run_profile(args, cases)]
        elif args.memory:
            lines += ["", run_memory(args, cases)]
        elif args.scaling:
            lines += ["", run_scaling(args)]
        else:
            _say(args, "building the peers ...")
            build(cases, timed_only=args.no_guard)
            guard_rows = [] if args.no_guard else guard(cases)
            _say(args, "timing ...")
            times = run_cases(cases, args.repeat, args.warmup)
            if guard_rows:
                lines += ["", ("### Guard: one step of each peer against its family's "
                               "node-by-node run (float32; errors relative to the largest "
                               "value)"),
                          "", markdown_table(["case", "peer", "against", "loss error",
                                              "gradient error", ""], guard_rows)]
            lines += ["", "### Steps (ms per step; ratios to the case's PyTorch row)", "",
                      report(cases, times), "",
                      "### Issue 16's targets (met: median ratio within the limit)", "",
                      targets_table(cases, times)]
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"header": lines[:8], "times": times}, f, indent=1)
    lines.append(f"\n# load average (1/5/15 min) at the end: {_load()}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
