"""Before any timing: the fast path must be the same model.

For each workload :func:`run_guard` builds our two entries from the same seed and checks, in
float32, that

1. they start from identical weights (bit for bit: same initialisation);
2. one forward + backward gives the same loss and the same gradient of every parameter (the
   flat gradient buffer Adam reads), within float tolerance;
3. forward-only (inference) gives the same loss;
4. a few full training steps (Adam included) give the same loss trajectory;

(1, 2 and 4 also for the entry with the optional numba kernels, when numba is installed)

and, when PyTorch is installed, that the PyTorch peers being benchmarked (``nn.LSTM``, the
``LSTMCell`` loop), loaded with our initial weights (``lstm.torch_compat``), give the same loss
and gradients as our recipe: the peers train the same model, not just one of the same shape.
(Chainer's peers keep their own initialisation: their first losses are in the JSON report.)

Tolerances are relative to the largest value compared: :data:`LOSS_RTOL`, :data:`GRAD_RTOL`.
"""
from __future__ import annotations

from typing import Any

import numpy

from .workloads import Workload, make_batches

__all__ = ["run_guard", "LOSS_RTOL", "GRAD_RTOL", "TRAIN_STEPS"]

#: Relative tolerance of a loss (float32 sums of up to a few thousand terms).
LOSS_RTOL = 1e-5
#: Tolerance of a gradient difference, relative to the largest gradient entry.
GRAD_RTOL = 1e-4
#: Full training steps compared (loss of each).
TRAIN_STEPS = 3


def _rel(a: Any, b: Any) -> float:
    """``max|a - b| / max(max|a|, tiny)``."""
    a = numpy.asarray(a, dtype=numpy.float64)
    b = numpy.asarray(b, dtype=numpy.float64)
    scale = max(float(numpy.abs(a).max(initial=0.0)), 1e-30)
    return float(numpy.abs(a - b).max(initial=0.0)) / scale


def _check(checks: list, what: str, err: float, tol: float) -> None:
    checks.append({"what": what, "error": err, "tol": tol, "ok": bool(err <= tol)})


def _loss_and_grads(peer: Any, x: Any, y: Any) -> float:
    peer.zero_grad()
    peer.forward(x, train=True)
    loss = peer.loss(y)
    peer.backward()
    return loss


def _torch_state(ours: Any) -> dict[str, numpy.ndarray]:
    """Our recipe's weights (or after backward, gradients) keyed by PyTorch's names."""
    from lstm.torch_compat import to_torch_state_dict

    weights = to_torch_state_dict(ours.lstm)
    grads = to_torch_state_dict(ours.lstm, gradients=True)
    weights.update({"head.weight": ours.head.weight.copy(), "head.bias": ours.head.bias.copy()})
    grads.update({"head.weight": ours.head.grad_weight.copy(),
                  "head.bias": ours.head.grad_bias.copy()})
    return {"weights": weights, "grads": grads}


def _torch_params(peer: Any) -> dict[str, Any]:
    """A PyTorch peer's parameters keyed as ``nn.LSTM``'s state dict (+ ``head.*``)."""
    out = {}
    if hasattr(peer, "cells"):  # LSTMCell loop: cell k holds layer k's four arrays
        for k, cell in enumerate(peer.cells):
            for name, p in cell.named_parameters():
                out[f"{name}_l{k}"] = p
    else:
        out.update(dict(peer.lstm.named_parameters()))
    out.update({f"head.{n}": p for n, p in peer.head.named_parameters()})
    return out


def _check_torch(w: Workload, seed: int, keys: list[str], checks: list) -> None:
    try:
        import torch

        from .peers import load
    except ImportError as exc:
        checks.append({"what": f"PyTorch peers skipped ({exc})", "error": 0.0, "tol": 0.0,
                       "ok": True})
        return
    from .peers.ours import NNGraphRecipe

    ours = NNGraphRecipe(w, seed)
    x, y = make_batches(w, 1, seed + 7)[0]
    loss_ours = _loss_and_grads(ours, *ours.prepare(x, y))
    ref = _torch_state(ours)
    for cls in [load(k) for k in keys]:
        peer = cls(w, seed)
        params = _torch_params(peer)
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.from_numpy(ref["weights"][name]))
        loss = _loss_and_grads(peer, *peer.prepare(x, y))
        _check(checks, f"{cls.label} vs recipe: loss", _rel([loss_ours], [loss]), LOSS_RTOL)
        err = max(_rel(ref["grads"][name], p.grad.numpy()) for name, p in params.items())
        _check(checks, f"{cls.label} vs recipe: gradients", err, GRAD_RTOL)


def _check_numba(w: Workload, seed: int, batches: list, loss_r: float, grads_r: Any,
                 traj_r: list, checks: list) -> None:
    """The entry with the compiled kernels against the recipe (skipped without numba)."""
    try:
        from .peers.ours_numba import NNGraphNumba
    except ImportError:
        return
    fast = NNGraphNumba(w, seed)
    x, y = batches[0]
    loss_f = _loss_and_grads(fast, x, y)
    _check(checks, "numba kernels vs recipe: loss", _rel([loss_r], [loss_f]), LOSS_RTOL)
    _check(checks, "numba kernels vs recipe: gradients (all parameters)",
           _rel(grads_r, fast.optimizer.grads), GRAD_RTOL)
    fast = NNGraphNumba(w, seed)
    traj_f = [fast.train_step(*b) for b in batches]
    _check(checks, f"numba kernels vs recipe: losses of {TRAIN_STEPS} Adam steps",
           _rel(traj_r, traj_f), LOSS_RTOL * 10)


def run_guard(workloads: list[Workload], seed: int = 0,
              torch_peers: tuple[str, ...] = ("torch-lstm", "torch-cell")) -> dict[str, Any]:
    """Check that our optimized entry computes the recipe's model (see the module docstring).

    Args:
        workloads: the tasks to check.
        seed: the initialisation seed of the peers.
        torch_peers: the PyTorch peers checked against our recipe (when torch is installed).

    Returns:
        ``{"ok": bool, "workloads": {name: [{"what", "error", "tol", "ok"}...]}}``.
    """
    from .peers.ours import NNGraphOptimized, NNGraphRecipe

    report: dict[str, Any] = {"ok": True, "workloads": {}}
    for w in workloads:
        checks: list[dict[str, Any]] = []
        recipe, fast = NNGraphRecipe(w, seed), NNGraphOptimized(w, seed)
        same = numpy.array_equal(recipe.optimizer.params, fast.optimizer.params)
        checks.append({"what": "identical initial weights", "error": 0.0 if same else 1.0,
                       "tol": 0.0, "ok": bool(same)})
        batches = [recipe.prepare(x, y) for x, y in make_batches(w, TRAIN_STEPS, seed + 1)]
        x, y = batches[0]
        loss_r = _loss_and_grads(recipe, x, y)
        grads_r = recipe.optimizer.grads.copy()
        loss_f = _loss_and_grads(fast, x, y)
        _check(checks, "optimized vs recipe: loss", _rel([loss_r], [loss_f]), LOSS_RTOL)
        _check(checks, "optimized vs recipe: gradients (all parameters)",
               _rel(grads_r, fast.optimizer.grads), GRAD_RTOL)
        _check(checks, "optimized vs recipe: forward-only loss",
               _rel([recipe.eval_step(x, y)], [fast.eval_step(x, y)]), LOSS_RTOL)
        traj_r = [recipe.train_step(*b) for b in batches]
        traj_f = [fast.train_step(*b) for b in batches]
        _check(checks, f"optimized vs recipe: losses of {TRAIN_STEPS} Adam steps",
               _rel(traj_r, traj_f), LOSS_RTOL * 10)
        _check_numba(w, seed, batches, loss_r, grads_r, traj_r, checks)
        if torch_peers:
            _check_torch(w, seed, list(torch_peers), checks)
        report["workloads"][w.name] = checks
        report["ok"] = report["ok"] and all(c["ok"] for c in checks)
    return report
