"""Property tests of ``compile(gModule)``: random graphs run by the compiled plan vs node by node.

Two sources of graphs: the suite's random graphs (``prop_graphs.graphs``: every registered
module, nested gModules, splits, tables, containers, shared clones, criteria, list outputs with
None gradients, integer label inputs) and random row-wise graphs (``prop_cells.row_graphs``:
``(batch, width)`` values, so the same graph runs at several batch sizes; Linear groups, element-
wise regions, tables, ``JoinTable``, ``Narrow``, ``SelectTable``, ``CMul``,
``LayerNormalization``, fan-out). A deep copy of the graph (same weights) run node by node is the
reference. Checked: outputs, ``grad_input`` and parameter gradients (``backward`` with a random
scale) on three calls with the same shapes (the plan and its buffers are reused: the later calls
must be right, and what earlier calls returned must not change), a change of batch size (a new
plan), evaluation mode and ``no_grad=True`` (same forward; backward raises ``GraphError``),
float32, the strict device, and ``kernels="numba"`` when numba is installed.

Profiles: ``ci`` (default, bounded, derandomized) and ``long`` (``NNGRAPH_HYPOTHESIS=long``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import prop_counter
from nngraph_py import backend
from nngraph_py.compile import compile
from nngraph_py.compile.elementwise import numba_available
from nngraph_py.errors import GraphError
from prop_cells import RowDesc, build_rows, row_graphs
from prop_graphs import (Clone, GraphDesc, Leaf, build, graphs, make_grad_outputs,
                         make_inputs, to_device)
from prop_reference import assert_tree_close

F64 = {"rtol": 1e-9, "atol": 1e-10}
F32 = {"rtol": 1e-4, "atol": 1e-5}
SEEDS = st.integers(0, 2**31 - 2)
SCALES = st.sampled_from((1.0, 0.5, -2.0, 3.0))
N = settings.default.max_examples


def host(v: Any) -> Any:
    """A host float64 (or integer) copy of a nest; None stays None."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return [host(u) for u in v]
    a = np.array(backend.to_numpy(v))
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def _stochastic(desc: GraphDesc) -> bool:
    """Whether the graph draws random numbers in training mode (a Dropout with p > 0)."""
    def walk(e: Any) -> bool:
        if isinstance(e, Leaf):
            return e.name == "Dropout" and e.args[0] > 0
        if isinstance(e, Clone):
            return walk(e.expr)
        if e.name == "gModule":
            return _stochastic(e.graph)
        return any(walk(m) for m in e.members)
    return any(walk(s.expr) for s in desc.steps if s.kind == "apply")


def _cast(value: Any, dtype: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_cast(v, dtype) for v in value]
    return value.astype(dtype) if value.dtype.kind == "f" else value


def _step(model: Any, params_of: Any, x: Any, g: Any, scale: float) -> tuple[list, tuple]:
    """forward + backward(scale) from zeroed parameter gradients: host copies of output,
    grad_input and parameter gradients, and the arrays returned."""
    params_of.zero_grad_parameters()
    y = model.forward(x)
    got = [host(y)]
    gx = model.backward(x, g, scale)
    got.append(host(gx))
    got.append([host(p) for p in params_of.parameters()[1]])
    return got, (y, gx)


def _compare(got: list, want: list, what: str, tol: dict, device: str | None = None,
             dtype: Any = None) -> None:
    assert_tree_close(got[0], want[0], f"{what}: output", **tol)
    if len(got) > 1:
        assert_tree_close(got[1], want[1], f"{what}: grad_input", **tol)
        assert len(got[2]) == len(want[2])
        for k, (a, b) in enumerate(zip(got[2], want[2])):
            assert_tree_close(a, b, f"{what}: parameter gradient {k}", **tol)


def _same_arrays(arrays: Any, copies: Any, what: str) -> None:
    """What a call returned still holds the values it had (later calls reuse the buffers)."""
    assert_tree_close(host(arrays), copies, what, rtol=0, atol=0)


def check_calls(model: Any, ref: Any, calls: list, tol: dict, kernels: str = "numpy",
                device: str = "cpu", dtype: Any = np.float64) -> Any:
    """Run ``calls`` (``(x, grad_output, scale)``) through ``compile(model)`` and ``ref``
    (model's deep copy, node by node); compare each and, at the end, what every call returned."""
    c = compile(model, kernels=kernels)
    kept = []
    for k, (x, g, scale) in enumerate(calls):
        want, ref_arrays = _step(ref, ref, x, g, scale)
        got, arrays = _step(c, model, x, g, scale)
        _compare(got, want, f"call {k}", tol)
        if dtype is not None:
            out = arrays[0] if not isinstance(arrays[0], list) else arrays[0][0]
            if backend.is_array(out) and out.dtype.kind == "f":
                assert out.dtype == dtype, f"call {k}: output dtype {out.dtype}"
        kept.append((arrays, got, ref_arrays, want))
    for k, (arrays, got, ref_arrays, want) in enumerate(kept):
        try:  # the node-by-node graph's own guarantee, which the compiled one must keep too
            _same_arrays(ref_arrays[0], want[0], "")
            _same_arrays(ref_arrays[1], want[1], "")
        except AssertionError:
            continue
        _same_arrays(arrays[0], got[0], f"the output call {k} returned, after {len(calls)} calls")
        _same_arrays(arrays[1], got[1], f"the grad_input call {k} returned, after {len(calls)} "
                                        f"calls")
    return c


# ------------------------------------------------------------------------------------------------
# The suite's random graphs
# ------------------------------------------------------------------------------------------------
def _graph_calls(desc: GraphDesc, seed: int, scales: tuple, device: str, dtype: Any) -> list:
    rng = np.random.default_rng(seed)
    x1 = to_device(_cast(make_inputs(desc, rng), dtype), device)
    g1 = to_device(_cast(make_grad_outputs(desc, rng), dtype), device)
    x2 = to_device(_cast(make_inputs(desc, rng), dtype), device)
    g2 = to_device(_cast(make_grad_outputs(desc, rng), dtype), device)
    return [(x1, g1, scales[0]), (x1, g1, scales[1]), (x2, g2, scales[0])]


def run_graph(desc: GraphDesc, seed: int, scales: tuple, device: str = "cpu",
              dtype: Any = np.float64, kernels: str = "numpy") -> None:
    prop_counter.count()
    assume(not _stochastic(desc))
    backend.manual_seed(seed)
    model = build(desc).to(device, dtype)
    ref = model.clone()
    tol = F64 if np.dtype(dtype) == np.float64 else F32
    check_calls(model, ref, _graph_calls(desc, seed, scales, device, dtype), tol, kernels,
                device, dtype)


@given(desc=graphs(), seed=SEEDS, scale=SCALES, second=SCALES)
def test_random_graphs_compiled_match_node_by_node(desc: GraphDesc, seed: int, scale: float,
                                                   second: float) -> None:
    """Outputs, grad_input and scaled parameter gradients of three calls (same shapes: the plan
    is built, reused, reused on new values), float64."""
    run_graph(desc, seed, (scale, second))


@given(desc=graphs(), seed=SEEDS)
@settings(max_examples=max(1, N // 2))
def test_random_graphs_compiled_match_node_by_node_float32(desc: GraphDesc, seed: int) -> None:
    """The same in float32 (outputs stay float32)."""
    run_graph(desc, seed, (1.0, 0.5), dtype=np.float32)


@given(desc=graphs(), seed=SEEDS, train_first=st.booleans())
@settings(max_examples=max(1, N // 2))
def test_random_graphs_evaluate_mode(desc: GraphDesc, seed: int, train_first: bool) -> None:
    """In evaluation mode the compiled forward equals the graph's (Dropout included) on every
    call, and backward raises GraphError; back in training mode, backward works again."""
    prop_counter.count()
    backend.manual_seed(seed)
    model = build(desc).to(dtype=np.float64)
    ref = model.clone().evaluate()
    c = compile(model, kernels="numpy")
    calls = _graph_calls(desc, seed, (1.0, 1.0), "cpu", np.float64)
    if train_first:  # the plan is built in training mode, then evaluation mode reuses it
        c.forward(calls[0][0])
    c.evaluate()
    for k, (x, g, _) in enumerate(calls):
        want = host(ref.forward(x))
        assert_tree_close(host(c.forward(x)), want, f"evaluate call {k}: output", **F64)
        with pytest.raises(GraphError):
            c.backward(x, g)
    assume(not _stochastic(desc))
    c.training()
    ref.training()
    x, g, _ = calls[2]
    want, _ = _step(ref, ref, x, g, 1.0)
    got, _ = _step(c, model, x, g, 1.0)
    _compare(got, want, "training() after evaluate()", F64)


@given(desc=graphs(), seed=SEEDS)
@settings(max_examples=max(1, N // 2))
def test_random_graphs_no_grad(desc: GraphDesc, seed: int) -> None:
    """``compile(g, no_grad=True)``: the forward equals the graph's on every call, from the
    first; backward raises GraphError after any of them."""
    prop_counter.count()
    assume(not _stochastic(desc))
    backend.manual_seed(seed)
    model = build(desc).to(dtype=np.float64)
    ref = model.clone()
    c = compile(model, no_grad=True, kernels="numpy")
    for k, (x, g, _) in enumerate(_graph_calls(desc, seed, (1.0, 1.0), "cpu", np.float64)):
        want = host(ref.forward(x))
        assert_tree_close(host(c.forward(x)), want, f"no_grad call {k}: output", **F64)
        with pytest.raises(GraphError):
            c.backward(x, g)


# ------------------------------------------------------------------------------------------------
# Row-wise graphs: Linear groups, regions, several batch sizes
# ------------------------------------------------------------------------------------------------
def _row_data(desc: RowDesc, batch: int, rng: np.random.Generator, device: str,
              dtype: Any) -> tuple:
    xs = [backend.to_device(rng.standard_normal((batch, w)).astype(dtype), device)
          for w in desc.inputs]
    gs = [backend.to_device(rng.standard_normal((batch, desc.widths[o])).astype(dtype), device)
          for o in desc.outputs]
    if len(gs) > 1 and rng.random() < 0.3:
        gs[int(rng.integers(0, len(gs)))] = None  # zeros
    return (xs[0] if len(xs) == 1 else xs), (gs[0] if len(gs) == 1 else gs)


def run_rows(desc: RowDesc, seed: int, batches: tuple, scale: float, device: str = "cpu",
             dtype: Any = np.float64, kernels: str = "numpy") -> Any:
    prop_counter.count()
    backend.manual_seed(seed)
    model = build_rows(desc).to(device, dtype)
    ref = model.clone()
    rng = np.random.default_rng(seed)
    calls = []
    for k, b in enumerate(batches):
        x, g = _row_data(desc, b, rng, device, dtype)
        calls.append((x, g, scale if k % 2 else 1.0))
    tol = F64 if np.dtype(dtype) == np.float64 else F32
    c = check_calls(model, ref, calls, tol, kernels, device, dtype)
    n_plans = len({b for b in batches})
    assert len(c.plan_info()) == n_plans, \
        f"{n_plans} batch sizes {batches} made {len(c.plan_info())} plans"
    return c


BATCHES = st.tuples(st.integers(1, 5), st.integers(1, 5))


@given(desc=row_graphs(), seed=SEEDS, batches=BATCHES, scale=SCALES)
def test_row_graphs_compiled_match_node_by_node_across_batch_sizes(
        desc: RowDesc, seed: int, batches: tuple, scale: float) -> None:
    """Batch sizes a, a, b, a, b: a plan per batch size, each reused; every call right."""
    a, b = batches
    run_rows(desc, seed, (a, a, b, a, b), scale)


@given(desc=row_graphs(), seed=SEEDS, batches=BATCHES)
@settings(max_examples=max(1, N // 2))
def test_row_graphs_compiled_match_node_by_node_float32(desc: RowDesc, seed: int,
                                                        batches: tuple) -> None:
    run_rows(desc, seed, (batches[0], batches[0], batches[1]), 2.0, dtype=np.float32)


@given(desc=row_graphs(), seed=SEEDS, batches=BATCHES)
@settings(max_examples=max(1, N // 4))
def test_row_graphs_on_the_strict_device(desc: RowDesc, seed: int, batches: tuple) -> None:
    """On the strict device (a stray NumPy call or host conversion raises)."""
    run_rows(desc, seed, (batches[0], batches[0], batches[1]), 0.5, device="strict",
             kernels="auto")


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
@given(desc=row_graphs(max_ops=5), seed=SEEDS, dtype=st.sampled_from((np.float64, np.float32)))
@settings(max_examples=max(1, N // 20))
def test_row_graphs_numba_kernels(desc: RowDesc, seed: int, dtype: Any) -> None:
    """``kernels="numba"`` (few examples: numba compiles each new region)."""
    c = run_rows(desc, seed, (3, 3, 2), -2.0, dtype=dtype, kernels="numba")
    kinds = {k for p in c.plan_info() for k in p["region_kernels"]}
    assert kinds <= {"numba"}, f"kernels='numba' ran regions as {kinds}"


@given(desc=row_graphs(), seed=SEEDS)
@settings(max_examples=max(1, N // 4))
def test_row_graphs_evaluate_and_no_grad(desc: RowDesc, seed: int) -> None:
    """Evaluation mode and no_grad=True on row graphs: same forward, backward refused."""
    prop_counter.count()
    backend.manual_seed(seed)
    model = build_rows(desc).to(dtype=np.float64)
    ref = model.clone()
    rng = np.random.default_rng(seed)
    for c in (compile(model, no_grad=True, kernels="numpy"),
              compile(model, kernels="numpy").evaluate()):
        for b in (2, 2, 3):
            x, g = _row_data(desc, b, rng, "cpu", np.float64)
            assert_tree_close(host(c.forward(x)), host(ref.forward(x)), "output", **F64)
            with pytest.raises(GraphError):
                c.backward(x, g)
        model.training()


def test_row_graph_strategy_reaches_every_pass() -> None:
    """In 150 generated row graphs compile() forms Linear groups and element-wise regions and
    runs other nodes alone (else the properties above would pass without testing them)."""
    from hypothesis import HealthCheck, Phase

    seen: dict[str, int] = {}

    @settings(max_examples=150, phases=[Phase.generate], derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(desc=row_graphs())
    def sample(desc: RowDesc) -> None:
        c = compile(build_rows(desc).to(dtype=np.float64), kernels="numpy")
        x, _ = _row_data(desc, 2, np.random.default_rng(0), "cpu", np.float64)
        c.forward(x)
        info = c.plan_info()[0]
        for key in ("linear_groups", "regions"):
            if info[key]:
                seen[key] = seen.get(key, 0) + 1
        if len(desc.outputs) > 1:
            seen["several outputs"] = seen.get("several outputs", 0) + 1

    sample()
    missing = sorted({"linear_groups", "regions", "several outputs"} - set(seen))
    assert not missing, f"never generated: {missing}; counts: {seen}"
