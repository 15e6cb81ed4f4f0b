"""Property-based tests: random graphs from every module, checked against PyTorch autograd.

Each example is a random graph description (``prop_graphs.graphs``): fan-out to three and more
consumers (0-d values included), nested gModules, ``split``, table modules, containers,
criteria as nodes with 0-d losses, list outputs whose ``grad_output`` holds None, clones and
clones sharing parameters, integer label inputs. It is built with nngraph_py and evaluated by
the PyTorch reference (``prop_reference``) with the same weights; forward values, gradients
w.r.t. every input and every parameter gradient must agree.

Profiles (``tests/conftest.py``): ``ci`` (the default, bounded) and ``long``
(``--hypothesis-profile=long`` or ``NNGRAPH_HYPOTHESIS=long``; ``NNGRAPH_HYPOTHESIS_EXAMPLES``
sets the number of examples per test). The number of graphs run is printed at the end of the
session.
"""
from __future__ import annotations

import inspect as pyinspect
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import prop_counter
from nngraph_py import backend, nn
from prop_graphs import (Clone, Composite, GraphDesc, Leaf, Step, build, graphs,
                         make_grad_outputs, make_inputs, to_device)
from prop_reference import assert_tree_close, reference
from prop_registry import NOT_GRAPHABLE, PENDING, REGISTRY
from prop_types import Arr, Labels, Lst, arrays_of

F64 = {"rtol": 1e-9, "atol": 1e-10}
F32 = {"rtol": 2e-3, "atol": 2e-3}


def _cast(value: Any, dtype: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_cast(v, dtype) for v in value]
    return value.astype(dtype) if value.dtype.kind == "f" else value


def _param_grads_close(model: Any, ref: Any, factor: float, tol: dict, what: str) -> None:
    params, grads = model.parameters()
    ours = {id(p): g for p, g in zip(params, grads)}
    missing = [k for k in ref.param_grads if k not in ours]
    assert not missing, f"{what}: {len(missing)} parameter arrays used by the graph are not " \
                        f"listed by parameters()"
    for k, (p, g) in enumerate(zip(params, grads)):
        expected = factor * ref.param_grads.get(id(p), np.zeros(tuple(p.shape)))
        assert_tree_close(g, expected, f"{what}: parameter {k} {tuple(p.shape)}", **tol)


def run_graph(desc: GraphDesc, seed: int, device: str = "cpu", dtype: Any = np.float64,
              scale: float = 1.0, second_scale: float | None = None,
              clear_state: bool = False) -> None:
    """Build ``desc``, run it on ``device`` in ``dtype`` and compare everything with torch."""
    prop_counter.count()
    tol = F64 if np.dtype(dtype) == np.float64 else F32
    backend.manual_seed(seed)
    model = build(desc).to(device, dtype)
    rng = np.random.default_rng(seed)
    host_x = _cast(make_inputs(desc, rng), dtype)
    host_g = _cast(make_grad_outputs(desc, rng), dtype)
    x, g = to_device(host_x, device), to_device(host_g, device)

    backend.manual_seed(seed + 1)  # the Dropout masks
    out = model.forward(x)
    ref = reference(model, host_x, host_g)
    assert_tree_close(out, ref.outputs, "output", device=device, dtype=dtype, **tol)
    grad_in = model.backward(x, g, scale=scale)
    assert_tree_close(grad_in, ref.grad_inputs, "grad_input", device=device, **tol)
    _param_grads_close(model, ref, scale, tol, f"after backward(scale={scale})")

    if second_scale is not None:  # accumulation: a second backward of the same forward
        grad_in = model.backward(x, g, scale=second_scale)
        assert_tree_close(grad_in, ref.grad_inputs, "grad_input of the second backward",
                          device=device, **tol)
        _param_grads_close(model, ref, scale + second_scale, tol,
                           f"after backward(scale={scale}) + backward(scale={second_scale})")
    if clear_state:  # the same results after clear_state, from clean caches
        model.clear_state()
        kept = [type(m).__name__ for m in model.modules() if m.output is not None]
        assert not kept, f"clear_state kept the outputs of {kept}"
        model.zero_grad_parameters()
        backend.manual_seed(seed + 1)
        assert_tree_close(model.forward(x), ref.outputs, "output after clear_state",
                          device=device, **tol)
        assert_tree_close(model.backward(x, g), ref.grad_inputs,
                          "grad_input after clear_state", device=device, **tol)
        _param_grads_close(model, ref, 1.0, tol, "after clear_state")


SEEDS = st.integers(0, 2**31 - 2)
SCALES = st.sampled_from((1.0, 0.5, -2.0, 3.0))


@given(desc=graphs(), seed=SEEDS, scale=SCALES, second=SCALES)
def test_random_graphs_match_torch_float64(desc: GraphDesc, seed: int, scale: float,
                                           second: float) -> None:
    """Values, input and parameter gradients; a second backward accumulates ``scale``d
    parameter gradients; ``clear_state`` then forward/backward gives the same again."""
    run_graph(desc, seed, scale=scale, second_scale=second, clear_state=True)


@given(desc=graphs(), seed=SEEDS, scale=SCALES)
@settings(max_examples=max(1, settings.default.max_examples // 2))
def test_random_graphs_on_the_strict_device(desc: GraphDesc, seed: int, scale: float) -> None:
    """The same on the strict device (any stray NumPy call or host conversion raises)."""
    run_graph(desc, seed, device="strict", scale=scale)


@given(desc=graphs(), seed=SEEDS)
@settings(max_examples=max(1, settings.default.max_examples // 2))
def test_random_graphs_in_float32(desc: GraphDesc, seed: int) -> None:
    """The same in float32 (outputs stay float32), against the float64 reference loosely."""
    run_graph(desc, seed, dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# The suite itself: every module takes part, and the strategy reaches every feature
# ------------------------------------------------------------------------------------------------
def test_every_exported_module_has_an_entry() -> None:
    """Every module ``nngraph_py.nn`` exports is registered in ``prop_registry`` (its rule,
    builder and torch reference), or listed in ``NOT_GRAPHABLE`` with the reason. Issue 13's
    catalogue is still growing: its modules without an entry yet are reported as a warning
    (``PENDING`` names them); any other module without an entry fails."""
    import warnings

    from nngraph_py.module import Module
    from nngraph_py.nn.criterion import Criterion

    unregistered = []
    for name in nn.__all__:
        obj = getattr(nn, name)
        if pyinspect.isclass(obj) and issubclass(obj, (Module, Criterion)):
            if name not in REGISTRY and name not in NOT_GRAPHABLE:
                unregistered.append(name)
    core = [n for n in unregistered if n in CORE_MODULES]
    assert not core, f"modules without a property-suite entry (tests/property/" \
                     f"prop_registry.py): {core}"
    registered_pending = sorted(PENDING & set(REGISTRY))
    assert not registered_pending, f"registered: remove from PENDING {registered_pending}"
    if unregistered:
        warnings.warn(f"{len(unregistered)} nn modules are not in the property suite yet: "
                      f"{unregistered}", stacklevel=1)


#: The modules of the seeds and of issue 11: each must have an entry.
CORE_MODULES = {
    "Linear", "Identity", "Sigmoid", "Tanh", "ReLU", "SoftMax", "LogSoftMax", "CAddTable",
    "CSubTable", "CMulTable", "CDivTable", "JoinTable", "SplitTable", "SelectTable", "NarrowTable",
    "Narrow", "Reshape", "View", "Select", "MulConstant", "AddConstant", "Dropout", "Sequential",
    "ConcatTable", "ParallelTable", "MSECriterion", "ClassNLLCriterion", "CrossEntropyCriterion",
    "gModule", "CMul", "CAdd", "JustTable", "JustElement", "Parallel", "Concat",
}


def _exprs(desc: GraphDesc) -> list:
    found = []

    def walk(e: Any) -> None:
        found.append(e)
        if isinstance(e, Clone):
            walk(e.expr)
        elif isinstance(e, Composite):
            for m in e.members:
                walk(m)
            if e.graph is not None:
                found.extend(_exprs(e.graph))

    for s in desc.steps:
        if s.kind == "apply":
            walk(s.expr)
    return found


def _zero_d_fanout(desc: GraphDesc, k: int) -> bool:
    uses: dict[int, int] = {}
    for s in desc.steps:
        for v in s.srcs:
            uses[v] = uses.get(v, 0) + 1
    return any(n >= k and isinstance(desc.types[v], Arr) and desc.types[v].ndim == 0
               for v, n in uses.items())


FEATURES = {
    "fan-out of a 0-d value to 3 consumers": lambda d: _zero_d_fanout(d, 3),
    "a gModule nested in a gModule nested in a gModule": lambda d: any(
        isinstance(e, Composite) and e.name == "gModule"
        and any(isinstance(f, Composite) and f.name == "gModule" for f in _exprs(e.graph))
        for e in _exprs(d)),
    "split": lambda d: any(s.kind == "split" for s in d.steps),
    "a shared clone": lambda d: any(s.kind == "share" for s in d.steps),
    "a clone of a gModule": lambda d: any(
        isinstance(e, Clone) and isinstance(e.expr, Composite) and e.expr.name == "gModule"
        for e in _exprs(d)),
    "a label criterion": lambda d: any(isinstance(t, Labels) for t in d.types),
    "a list output": lambda d: any(isinstance(d.types[i], Lst) for i in d.outputs),
    "a 0-d output that also feeds a node": lambda d: any(
        isinstance(d.types[i], Arr) and d.types[i].ndim == 0
        and any(i in s.srcs for s in d.steps) for i in d.outputs),
    "nn.Parallel": lambda d: any(isinstance(e, Composite) and e.name == "Parallel"
                                 for e in _exprs(d)),
    "nn.Concat": lambda d: any(isinstance(e, Composite) and e.name == "Concat"
                               for e in _exprs(d)),
    "ParallelTable inside Sequential": lambda d: any(
        isinstance(e, Composite) and e.name == "Sequential"
        and any(isinstance(m, Composite) and m.name == "ParallelTable" for m in e.members)
        for e in _exprs(d)),
}


def test_strategy_reaches_every_feature() -> None:
    """In 250 generated graphs, each feature the suite claims to test appears (else the suite
    would pass without testing it)."""
    seen: dict[str, int] = {}

    @settings(max_examples=250, phases=[Phase.generate], derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(desc=graphs())
    def sample(desc: GraphDesc) -> None:
        for feature, holds in FEATURES.items():
            if holds(desc):
                seen[feature] = seen.get(feature, 0) + 1

    sample()
    missing = sorted(set(FEATURES) - set(seen))
    assert not missing, f"never generated: {missing}; counts: {seen}"


#: Input types to try each entry on (the generator reaches them all).
SAMPLE_TYPES = [Arr(()), Arr((3,)), Arr((2, 3)), Arr((2, 3, 4)), Arr((3,), True), Arr((2, 3), True),
                Lst((Arr((2, 3)), Arr((2, 3)))), Lst((Arr((2, 3)), Arr((2, 3), True))),
                Lst((Arr((3,)),)), Lst((Arr((2, 3)), Arr((2, 1)), Arr((2, 3)))),
                Lst((Arr((2, 3)), Labels((2,), 3))), Lst((Arr((3,)), Labels((), 3)))]
LEAVES = sorted(n for n, e in REGISTRY.items() if "composite" not in e.tags)


@pytest.mark.parametrize("name", LEAVES)
def test_every_entry_alone_matches_torch(name: str) -> None:
    """Each registry entry, on every sample type it accepts, with drawn arguments, in a graph of
    its own: values and gradients against torch (the random graphs then combine them)."""
    entry = REGISTRY[name]
    labelled = [t for t in SAMPLE_TYPES if isinstance(t, Lst) and Labels in map(type, t.items)]
    types = [t for t in SAMPLE_TYPES if entry.accepts(t)
             and (t in labelled) == ("labels" in entry.tags)]  # as the generator does
    assert types, f"{name} accepts none of the sample types"

    @settings(max_examples=4, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data(), seed=SEEDS)
    def check(data: Any, seed: int) -> None:
        t = data.draw(st.sampled_from(types))
        args = entry.draw_args(data.draw, t)
        items = list(t.items) if isinstance(t, Lst) and any(isinstance(i, Labels)
                                                             for i in t.items) else [t]
        steps = [Step("input", type=i) for i in items]
        steps.append(Step("apply", expr=Leaf(name, args), srcs=tuple(range(len(items))),
                          table=len(items) > 1))
        desc = GraphDesc(steps=steps, types=items + [entry.out_type(args, t)],
                         outputs=[len(items)])
        run_graph(desc, seed, scale=0.5, second_scale=1.5, clear_state=True)

    check()


if __name__ == "__main__":  # print the strategy's feature and entry counts
    counts: dict[str, int] = {}

    @settings(max_examples=250, phases=[Phase.generate], derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(desc=graphs())
    def _count(desc: GraphDesc) -> None:
        for feature, holds in FEATURES.items():
            counts[feature] = counts.get(feature, 0) + bool(holds(desc))
        for e in _exprs(desc):
            if isinstance(e, Leaf):
                counts[e.name] = counts.get(e.name, 0) + 1

    _count()
    for k, v in sorted(counts.items(), key=lambda kv: kv[1]):
        print(f"{v:6d}  {k}")
