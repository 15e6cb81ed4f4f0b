"""Property tests of the time-loop compiler: random cells run over time, compiled vs node by node.

Each example is a random cell (``prop_cells.cells``: 1-3 carried states, Linears alone and in
groups, element-wise modules and tables, ``CMul``, ``LayerNormalization``, ``JoinTable``,
``Narrow``, ``SelectTable``, nodes reading ``x_t`` only, the state only or both, fan-out, states
passing through unchanged) with a random sequence length ``T`` (1..6), batch (1..5), layout and
lengths (PyTorch's packed-sequence semantics). The compiled run (``Recurrence`` compiled, the
default; or the executor of ``compile_sequence`` itself) must give the node-by-node run's
(``Recurrence(...).optimize(False)``, per-step clones) outputs, final states, gradients of ``x``
and of the initial states and parameter gradients, in float64, on repeated calls with the same
shapes (planned buffers reused) and after a change of shapes. ``LSTM``, ``GRU`` and ``RNN`` are
checked the same way with ``optimize(True)`` against ``optimize(False)``.

Profiles: ``ci`` (default, bounded, derandomized) and ``long`` (``NNGRAPH_HYPOTHESIS=long``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lstm
import prop_counter
from nngraph_py import backend
from nngraph_py.compile import CellSignature, compile_sequence
from nngraph_py.compile.elementwise import numba_available
from nngraph_py.errors import GraphError
from prop_cells import EXTRA, RowDesc, build_rows, cells
from prop_reference import assert_tree_close

F64 = {"rtol": 1e-9, "atol": 1e-10}
F32 = {"rtol": 2e-4, "atol": 2e-5}
SEEDS = st.integers(0, 2**31 - 2)
SCALES = st.sampled_from((1.0, 0.5, -2.0, 3.0))
N = settings.default.max_examples


@st.composite
def runs(draw: Any) -> dict:
    """The sequence a cell runs over: T, batch, layout, lengths (None: all steps valid)."""
    T, B = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    lengths = None
    if draw(st.booleans()):
        lengths = np.array([draw(st.integers(1, T)) for _ in range(B)], dtype=np.int64)
    return {"T": T, "B": B, "batch_first": draw(st.booleans()), "lengths": lengths,
            "output": draw(st.integers(0, 2)), "none_grads": draw(st.integers(0, 3))}


def host(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return [host(u) for u in v]
    return np.array(backend.to_numpy(v), dtype=np.float64)


def _data(desc: RowDesc, run: dict, seed: int, second: bool = False,
          dtype: Any = np.float64) -> tuple:
    """``x``, initial states and the gradients of outputs and final states (host float64)."""
    rng = np.random.default_rng(seed + (7 if second else 0))
    T, B, sizes = run["T"], run["B"], desc.inputs[1:]
    o = run["output"] % len(sizes)
    x = rng.standard_normal((B, T, desc.inputs[0]) if run["batch_first"]
                            else (T, B, desc.inputs[0]))
    s0 = [rng.standard_normal((B, s)) for s in sizes]
    g_out = rng.standard_normal(x.shape[:2] + (sizes[o],))
    g_fin: list[Any] = [rng.standard_normal((B, s)) for s in sizes]
    if run["none_grads"] == 0:
        g_fin = [None] * len(sizes)  # the outputs' gradient alone
    elif run["none_grads"] == 1:
        g_out = None

    def cast(v: Any) -> Any:
        return None if v is None else v.astype(dtype)
    return cast(x), [cast(s) for s in s0], cast(g_out), [cast(g) for g in g_fin]


def _recurrence(cell: Any, desc: RowDesc, run: dict, optimize: bool) -> Any:
    k = len(desc.inputs) - 1
    rec = lstm.Recurrence(cell, list(desc.inputs[1:]), output=run["output"] % k,
                          batch_first=run["batch_first"], optimize=optimize)
    if not optimize:
        rec.optimize(False)
    return rec


def _run(rec: Any, x: Any, s0: list, g_out: Any, g_fin: list, lengths: Any,
         scale: float) -> tuple:
    """One forward and backward(scale) from zeroed parameter gradients: every result as host
    copies, plus the arrays returned (to check later calls do not overwrite them)."""
    rec.zero_grad_parameters()
    inp = [x] + list(s0)
    out, fin = rec.forward(inp, lengths=lengths)
    got = [host(out), host(fin)]
    rec.set_lengths(lengths)
    try:
        grads = rec.backward(inp, [g_out] + list(g_fin), scale)
    finally:
        rec.set_lengths(None)
    got.append(host(grads))
    got.append([host(g) for g in rec.parameters()[1]])
    return got, (out, fin, grads)


def _tame(results: Any, bound: float = 1e8) -> bool:
    """Whether every value is finite and below ``bound``: a random multiplicative recurrence
    can grow without bound over time (to inf and nan), where comparing means nothing."""
    if results is None:
        return True
    if isinstance(results, (list, tuple)):
        return all(_tame(r, bound) for r in results)
    return bool(np.all(np.isfinite(results)) and np.all(np.abs(results) < bound))


def _compare(got: list, ref: list, what: str, tol: dict = F64) -> None:
    names = ("outputs", "final states", "[grad x, grad initial states]", "parameter gradients")
    for name, a, b in zip(names, got, ref):
        assert_tree_close(a, b, f"{what}: {name}", **tol)


def check_recurrence(desc: RowDesc, run: dict, seed: int, scale: float,
                     kernels: str = "numpy", dtype: Any = np.float64) -> None:
    """``Recurrence`` compiled vs ``.optimize(False)``: three calls (the first builds the plan,
    the second reuses it, the third reuses it on new values) and a call at another batch size."""
    prop_counter.count()
    backend.manual_seed(seed)
    cell = build_rows(desc).to(dtype=dtype)
    ref_cell = cell.clone()
    tol = F64 if np.dtype(dtype) == np.float64 else F32
    rec = _recurrence(cell, desc, run, optimize=True)
    if kernels != "auto":
        rec.optimize(True, kernels=kernels)
    ref = _recurrence(ref_cell, desc, run, optimize=False)
    kept = []
    for call, second in enumerate((False, False, True)):
        x, s0, g_out, g_fin = _data(desc, run, seed, second, dtype)
        want, _ = _run(ref, x, s0, g_out, g_fin, run["lengths"], 1.0 if call else scale)
        assume(_tame(want))
        got, arrays = _run(rec, x, s0, g_out, g_fin, run["lengths"], 1.0 if call else scale)
        kinds = [e.kind for e in rec.executors]
        assert kinds == ["compiled"], f"call {call}: the executor is {kinds}, not the compiler"
        assert [e.kind for e in ref.executors] == ["unrolled"]
        assert arrays[0].dtype == dtype, f"outputs in {arrays[0].dtype}"
        _compare(got, want, f"call {call}", tol)
        kept.append((arrays, got))
    for call, (arrays, got) in enumerate(kept):  # buffers reused: results stay the caller's
        assert_tree_close(host(arrays[0]), got[0], f"outputs of call {call} after call 2",
                          rtol=0, atol=0)
        assert_tree_close(host(arrays[1]), got[1], f"final states of call {call} after call 2",
                          rtol=0, atol=0)
        assert_tree_close(host(arrays[2]), got[2], f"gradients of call {call} after call 2",
                          rtol=0, atol=0)
    # Another batch size and T: a new plan.
    other = dict(run, B=run["B"] % 5 + 1, T=run["T"] % 6 + 1, lengths=None)
    x, s0, g_out, g_fin = _data(desc, other, seed, True, dtype)
    want, _ = _run(ref, x, s0, g_out, g_fin, None, scale)
    assume(_tame(want))
    got, _ = _run(rec, x, s0, g_out, g_fin, None, scale)
    _compare(got, want, f"batch {other['B']}, T {other['T']} after batch {run['B']}, "
                        f"T {run['T']}", tol)
    # Evaluation mode: the same forward (inference plan), backward refused.
    rec.evaluate()
    ref.evaluate()
    x, s0, g_out, g_fin = _data(desc, run, seed, False, dtype)
    inp = [x] + list(s0)
    out, fin = rec.forward(inp, lengths=run["lengths"])
    r_out, r_fin = ref.forward(inp, lengths=run["lengths"])
    assert_tree_close(host([out] + list(fin)), host([r_out] + list(r_fin)),
                      "evaluate mode: outputs and final states", **tol)
    assert rec.executors[0].kind == "compiled"
    with pytest.raises(GraphError):
        rec.backward(inp, [g_out] + list(g_fin))


@given(desc=cells(), run=runs(), seed=SEEDS, scale=SCALES)
def test_random_cells_compiled_recurrence_matches_node_by_node(desc: RowDesc, run: dict,
                                                               seed: int, scale: float) -> None:
    """Outputs, final states, gradients of x and of the initial states and parameter gradients
    of a random cell: ``Recurrence`` compiled (``kind == "compiled"``) vs ``optimize(False)``."""
    check_recurrence(desc, run, seed, scale)


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
@given(desc=cells(max_ops=6), run=runs(), seed=SEEDS,
       dtype=st.sampled_from((np.float64, np.float32)))
@settings(max_examples=max(1, N // 40))
def test_random_cells_numba_kernels_match_node_by_node(desc: RowDesc, run: dict, seed: int,
                                                       dtype: Any) -> None:
    """The same with the generated numba kernels, float64 and float32 (few examples: each cell
    compiles its own kernels)."""
    check_recurrence(desc, run, seed, 1.0, kernels="numba", dtype=dtype)


@given(desc=cells(), run=runs(), seed=SEEDS)
@settings(max_examples=max(1, N // 4))
def test_random_cells_compiled_recurrence_matches_node_by_node_float32(
        desc: RowDesc, run: dict, seed: int) -> None:
    """The same in float32 (outputs stay float32), NumPy passes."""
    check_recurrence(desc, run, seed, -2.0, dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# The executor itself (compile_sequence, recipes off): the SequenceExecutor interface
# ------------------------------------------------------------------------------------------------
def _mask(lengths: Any, T: int, B: int) -> Any:
    if lengths is None:
        return None
    return (np.arange(T)[:, None] < lengths[None, :])[:, :, None]


@given(desc=cells(), run=runs(), seed=SEEDS, scale=SCALES)
def test_random_cells_compile_sequence_matches_node_by_node(desc: RowDesc, run: dict,
                                                            seed: int, scale: float) -> None:
    """``compile_sequence(cell, signature, recipes=False)`` (time-major ``forward``,
    ``backward``, ``acc_grad_parameters``) against the node-by-node ``Recurrence``: twice with
    the same shapes; a ``keep=False`` forward gives the same values and refuses backward."""
    prop_counter.count()
    run = dict(run, batch_first=False)
    backend.manual_seed(seed)
    cell = build_rows(desc).to(dtype=np.float64)
    ref_cell = cell.clone()
    k = len(desc.inputs) - 1
    o = run["output"] % k
    sig = CellSignature(x=0, state_inputs=tuple(range(1, k + 1)), state_outputs=tuple(range(k)),
                        state_sizes=tuple(desc.inputs[1:]), output_state=o)
    ex = compile_sequence(cell, sig, kernels="numpy", recipes=False)
    assert ex.kind == "compiled"
    ref = _recurrence(ref_cell, desc, run, optimize=False)
    T, B = run["T"], run["B"]
    mask = _mask(run["lengths"], T, B)
    kept = []
    for call, second in enumerate((False, True)):
        x, s0, g_out, g_fin = _data(desc, run, seed, second)
        want, _ = _run(ref, x, s0, g_out, g_fin, run["lengths"], scale)
        assume(_tame(want))
        cell.zero_grad_parameters()
        out, fin = ex.forward(x, s0, mask, keep=True)
        got = [host(out), host(fin)]
        gx, gs0 = ex.backward(g_out, g_fin)
        got.append(host([gx] + list(gs0)))
        ex.acc_grad_parameters(scale)
        got.append([host(g) for g in cell.parameters()[1]])
        _compare(got, want, f"call {call}")
        kept.append(((out, fin, gx), got))
    for call, (arrays, got) in enumerate(kept):
        assert_tree_close(host(arrays[0]), got[0], f"outputs of call {call}", rtol=0, atol=0)
        assert_tree_close(host(arrays[1]), got[1], f"final states of call {call}", rtol=0, atol=0)
        assert_tree_close(host(arrays[2]), got[2][0], f"grad x of call {call}", rtol=0, atol=0)
    # Inference: the same values, nothing kept for backward.
    x, s0, g_out, g_fin = _data(desc, run, seed)
    out, fin = ex.forward(x, s0, mask, keep=False)
    _compare([host(out), host(fin)], kept[0][1][:2], "keep=False")
    with pytest.raises(GraphError):
        ex.backward(g_out, g_fin)


# ------------------------------------------------------------------------------------------------
# The recipe layers
# ------------------------------------------------------------------------------------------------
LAYERS = {"LSTM": lstm.LSTM, "GRU": lstm.GRU, "RNN": lstm.RNN}


@given(name=st.sampled_from(sorted(LAYERS)), sizes=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       layers=st.integers(1, 2), bidirectional=st.booleans(), run=runs(), seed=SEEDS,
       scale=SCALES)
@settings(max_examples=max(1, N // 2))
def test_recipe_layers_optimized_match_node_by_node(name: str, sizes: tuple, layers: int,
                                                    bidirectional: bool, run: dict, seed: int,
                                                    scale: float) -> None:
    """``LSTM``/``GRU``/``RNN`` with ``optimize(True)`` vs ``optimize(False)``: outputs, final
    states, gradients of x and of the initial states, parameter gradients; twice."""
    prop_counter.count()
    assume(not (bidirectional and run["lengths"] is not None and layers == 2 and run["T"] > 5))
    backend.manual_seed(seed)
    n_in, hidden = sizes
    fast = LAYERS[name](n_in, hidden, num_layers=layers, batch_first=run["batch_first"],
                        bidirectional=bidirectional).to(dtype=np.float64)
    slow = fast.clone()
    fast.optimize(True, kernels="numpy")
    slow.optimize(False)
    rng = np.random.default_rng(seed)
    T, B = run["T"], run["B"]
    D = 2 if bidirectional else 1
    n_states = 2 if name == "LSTM" else 1
    for call in range(2):
        x = rng.standard_normal((B, T, n_in) if run["batch_first"] else (T, B, n_in))
        s0 = [rng.standard_normal((layers * D, B, hidden)) for _ in range(n_states)]
        g_out = rng.standard_normal(x.shape[:2] + (D * hidden,))
        g_fin = [rng.standard_normal((layers * D, B, hidden)) for _ in range(n_states)]
        results = []
        for model in (slow, fast):
            model.zero_grad_parameters()
            inp = [x] + s0
            model.set_lengths(run["lengths"])
            try:
                out = model.forward(inp)
                res = [host(out[0]), host(out[1])]
                res.append(host(model.backward(inp, [g_out] + g_fin, scale)))
            finally:
                model.set_lengths(None)
            res.append([host(g) for g in model.parameters()[1]])
            results.append(res)
        assume(_tame(results[0]))
        _compare(results[1], results[0], f"{name} call {call}")
        kinds = {e.kind for e in fast.executors}
        assert "unrolled" not in kinds, f"{name} optimize(True) ran node by node: {kinds}"
        assert {e.kind for e in slow.executors} == {"unrolled"}


# ------------------------------------------------------------------------------------------------
# The strategy itself: the generated cells reach every pass of the compiler
# ------------------------------------------------------------------------------------------------
def test_cell_strategy_reaches_every_pass_and_feature() -> None:
    """In 150 generated cells the compiler hoists nodes, forms Linear groups and element-wise
    regions and runs per-step modules, and the cells have 1, 2 and 3 states, pass-through states
    and every primitive (else the properties above would pass without testing them)."""
    from hypothesis import HealthCheck, Phase

    seen: dict[str, int] = {}

    def saw(what: str) -> None:
        seen[what] = seen.get(what, 0) + 1

    @settings(max_examples=150, phases=[Phase.generate], derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(desc=cells())
    def sample(desc: RowDesc) -> None:
        k = len(desc.inputs) - 1
        cell = build_rows(desc).to(dtype=np.float64)
        sig = CellSignature(x=0, state_inputs=tuple(range(1, k + 1)),
                            state_outputs=tuple(range(k)), state_sizes=tuple(desc.inputs[1:]))
        ex = compile_sequence(cell, sig, kernels="numpy", recipes=False)
        ex.forward(np.zeros((2, 2, desc.inputs[0])), [None] * k, keep=True)
        info = ex.plan_info()[0]
        for key in ("hoisted", "linear_groups", "regions", "per_step_modules"):
            if info[key]:
                saw(key)
        saw(f"{k} states")
        if desc.passthrough:
            saw("pass-through state")
        for op in desc.ops:
            saw(op.kind)
            if op.kind in EXTRA:
                saw("one of the rarer modules")

    sample()
    wanted = {"hoisted", "linear_groups", "regions", "per_step_modules", "1 states", "2 states",
              "3 states", "pass-through state", "Linear", "CAddTable", "CSubTable", "CMulTable",
              "Sigmoid", "Tanh", "ReLU", "MulConstant", "AddConstant", "Identity", "CMul",
              "JoinTable", "Narrow", "SelectTable", "CDivTable", "CMaxTable",
              "Sequential", "SubGraph", "one of the rarer modules"}
    if hasattr(__import__("nngraph_py").nn, "LayerNormalization"):
        wanted.add("LayerNormalization")
    missing = sorted(wanted - set(seen))
    assert not missing, f"never generated: {missing}; counts: {seen}"
