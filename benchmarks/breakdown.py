"""Where the time of a training step goes (``--profile``), measured in a child process.

Three views, each on warm models:

* **phases** - median milliseconds of ``zero_grad``, ``forward`` (LSTM + head), ``loss``,
  ``backward`` and ``update`` (Adam), for our two entries and PyTorch's ``nn.LSTM``;
* **array operations inside FusedLSTM** - the time spent in each NumPy call that
  ``lstm.fast`` makes through its array module (``matmul``, ``tanh``, ``multiply``...), counted
  by handing ``FusedLSTM`` a timing wrapper of NumPy. Operators (``+=``, ``*=``), slicing and the
  Python around them are not calls to the array module: they make up the "other" row. The
  wrapper itself costs about a microsecond per call, so its total runs a little above the plain
  step's;
* **cProfile** of our entries' steps, top functions by own time. cProfile does not see NumPy's
  ufuncs (``matmul``, ``tanh``: they are not Python-level calls), so their time shows up in the
  Python function that calls them; the second view splits it.
"""
from __future__ import annotations

import cProfile
import gc
import os
import pstats
import statistics
import time
import types
from collections import defaultdict
from typing import Any

from .workloads import Workload, make_batches

__all__ = ["run_profile", "PHASES"]

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = ("zero_grad", "forward", "loss", "backward", "update")


def _phase_times(peer: Any, batches: list, repeat: int) -> dict[str, float]:
    """Median milliseconds of each phase of a training step, and of the whole step."""
    times: dict[str, list[float]] = {p: [] for p in PHASES + ("total",)}
    for i in range(repeat):
        x, y = batches[i % len(batches)]
        calls = (peer.zero_grad, lambda: peer.forward(x, True), lambda: peer.loss(y),
                 peer.backward, peer.update)
        t_start = time.perf_counter()
        for name, call in zip(PHASES, calls):
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1e3)
        times["total"].append((time.perf_counter() - t_start) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


class _TimedArrayModule:
    """NumPy seen through a stopwatch: every call through it adds to ``seconds[name]``."""

    def __init__(self, xp: Any):
        self._xp = xp
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._xp, name)
        if not callable(attr) or isinstance(attr, type):
            return attr
        seconds, calls, clock = self.seconds, self.calls, time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            out = attr(*args, **kwargs)
            seconds[name] += clock() - t0
            calls[name] += 1
            return out

        return timed


def _fused_ops(peer: Any, batches: list, repeat: int) -> dict[str, Any]:
    """Per-step time of each array-module call inside ``FusedLSTM`` (see the module docstring)."""
    import numpy

    import lstm.fast as fast

    timed_xp = _TimedArrayModule(numpy)
    methods = ("forward", "backward", "acc_grad_parameters")
    inside = {name: 0.0 for name in methods}
    plain = {name: getattr(fast.FusedLSTM, name) for name in methods}

    def stopwatch(name: str) -> Any:
        method = plain[name]

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = method(*args, **kwargs)
            inside[name] += time.perf_counter() - t0
            return out

        return timed

    saved_backend = fast.backend
    fast.backend = types.SimpleNamespace(get_array_module=lambda _x: timed_xp)
    for name in methods:
        setattr(fast.FusedLSTM, name, stopwatch(name))
    try:
        peer.train_step(*batches[0])  # warm the wrapper's paths
        timed_xp.seconds.clear()
        timed_xp.calls.clear()
        for name in methods:
            inside[name] = 0.0
        t0 = time.perf_counter()
        for i in range(repeat):
            peer.train_step(*batches[i % len(batches)])
        step = (time.perf_counter() - t0) / repeat
    finally:
        fast.backend = saved_backend
        for name in methods:
            setattr(fast.FusedLSTM, name, plain[name])
    per_step = 1e3 / repeat
    ops = sorted(((name, s * per_step, timed_xp.calls[name] / repeat)
                  for name, s in timed_xp.seconds.items()), key=lambda r: -r[1])
    fused_ms = sum(inside.values()) * per_step
    return {
        "step_ms": step * 1e3,
        "fused_ms": {name: inside[name] * per_step for name in methods},
        "ops": [{"op": name, "ms": ms, "calls": calls} for name, ms, calls in ops],
        "other_ms": fused_ms - sum(ms for _, ms, _ in ops),
    }


def _where(key: tuple) -> str:
    """``path:line(function)``, the path relative to the repository or to site-packages."""
    filename, line, func = key
    if filename == "~":  # a built-in
        return func
    if filename.startswith(_ROOT + os.sep):
        path = os.path.relpath(filename, _ROOT)
    elif "site-packages" + os.sep in filename:
        path = filename.split("site-packages" + os.sep, 1)[1]
    else:
        path = os.path.basename(filename)
    return f"{path}:{line}({func})"


def _cprofile(peer: Any, batches: list, repeat: int, top: int = 14) -> list[dict[str, Any]]:
    """cProfile's top functions by own time over ``repeat`` steps, per step."""
    prof = cProfile.Profile()
    prof.enable()
    for i in range(repeat):
        peer.train_step(*batches[i % len(batches)])
    prof.disable()
    stats = pstats.Stats(prof).stats  # {(file, line, func): (prim calls, calls, own, cum, ...)}
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    return [{"function": _where(key), "calls": nc / repeat, "own_ms": tt * 1e3 / repeat,
             "cum_ms": ct * 1e3 / repeat} for key, (_, nc, tt, ct, _) in rows]


def run_profile(spec: dict[str, Any]) -> dict[str, Any]:
    """Profile ``spec["peers"]`` on ``spec["workload"]`` (called by the worker)."""
    import numpy  # noqa: F401

    from .worker import load_peer

    w = Workload.from_dict(spec["workload"])
    repeat, warmup = spec["repeat"], spec["warmup"]
    out: dict[str, Any] = {"workload": w.name, "peers": {}}
    for key in spec["peers"]:
        cls, why = load_peer(key, spec["threads"])
        if cls is None:
            out["peers"][key] = {"unavailable": why}
            continue
        peer = cls(w, spec["seed"])
        batches = [peer.prepare(x, y) for x, y in make_batches(w, 4, spec["seed"] + 1)]
        for i in range(max(1, warmup)):
            peer.train_step(*batches[i % len(batches)])
        gc.collect()
        entry: dict[str, Any] = {"label": cls.label,
                                 "phases_ms": _phase_times(peer, batches, repeat)}
        if key.startswith("nngraph"):
            entry["cprofile"] = _cprofile(peer, batches, repeat)
        if key == "nngraph-optimized":
            entry["fused_ops"] = _fused_ops(peer, batches, repeat)
        out["peers"][key] = entry
        del peer, batches
        gc.collect()
    return out
