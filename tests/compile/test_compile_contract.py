"""The compiler's public behaviour, one property per test: hoisting over time happens (counted),
the strict backend runs compiled, compiling changes no parameter, name, summary or checkpoint,
parameters replaced after compiling are read, and the regressions found by the property suite
(``tests/property/test_property_compile*.py``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lstm
from nngraph_py import backend, inspect, nn
from nngraph_py.checkpoint import load_checkpoint, save_checkpoint
from nngraph_py.compile import CellSignature, compile, compile_sequence
from nngraph_py.errors import GraphError

TOL = {"rtol": 1e-10, "atol": 1e-12}


class CountingLinear(nn.Linear):
    """A Linear that records the rows of each forward, its own and its clones' (the per-step
    clones the compiler runs recurrent nodes through share its weight array)."""

    def update_output(self, input: Any) -> Any:
        self.rows.append(int(input.shape[0]))
        return super().update_output(input)

    @property
    def rows(self) -> list[int]:
        return ROWS.setdefault(id(self.weight), [])


ROWS: dict[int, list[int]] = {}


def _host(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return [_host(u) for u in v]
    return np.array(backend.to_numpy(v), dtype=np.float64)


def _close(a: Any, b: Any, what: str = "") -> None:
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), what
        for k, (u, v) in enumerate(zip(a, b)):
            _close(u, v, f"{what}[{k}]")
        return
    np.testing.assert_allclose(a, b, err_msg=what, **TOL)


def rnn_cell(n_in: int = 3, hidden: int = 4, counting: bool = False) -> tuple:
    """``h' = tanh(W x + U h)`` with the x product hoistable; returns (cell, x_linear, h_linear)."""
    make = CountingLinear if counting else nn.Linear
    x, h = nn.Identity()(), nn.Identity()()
    lx, lh = make(n_in, hidden), make(hidden, hidden)
    h2 = nn.Tanh()(nn.CAddTable()([lx(x), lh(h)]))
    return nn.gModule([x, h], [h2]), lx, lh


def peephole_cell(n_in: int = 3, hidden: int = 4) -> nn.gModule:
    """Two states (h, c), an x-only chain (Linear -> LayerNorm -> CMul), a peephole CMul on c."""
    x, h, c = nn.Identity()(), nn.Identity()(), nn.Identity()()
    xs = nn.CMul(2 * hidden)(nn.LayerNormalization(2 * hidden)(nn.Linear(n_in, 2 * hidden)(x)))
    pre = nn.CAddTable()([xs, nn.Linear(hidden, 2 * hidden)(h)])
    gate = nn.Sigmoid()(nn.Narrow(1, 0, hidden)(pre))
    cand = nn.Tanh()(nn.Narrow(1, hidden, hidden)(pre))
    c2 = nn.CAddTable()([nn.CMulTable()([gate, c]), nn.CMulTable()([cand, nn.CMul(hidden)(c)])])
    h2 = nn.CMulTable()([gate, nn.Tanh()(c2)])
    return nn.gModule([x, h, c], [h2, c2])


def _pair(cell: nn.gModule, sizes: list, dtype: Any = np.float64, device: str = "cpu",
          kernels: str = "numpy") -> tuple:
    cell = cell.to(device, dtype)
    fast = lstm.Recurrence(cell, sizes, optimize=True).optimize(True, kernels=kernels)
    slow = lstm.Recurrence(cell.clone(), sizes).optimize(False)
    return fast, slow


def _step(rec: Any, x: Any, s0: list, g: list, scale: float = 1.0) -> list:
    rec.zero_grad_parameters()
    inp = [x] + s0
    out, fin = rec.forward(inp)
    res = [_host(out), _host(fin)]
    res.append(_host(rec.backward(inp, g, scale)))
    res.append([_host(p) for p in rec.parameters()[1]])
    return res


def _data(rng: np.random.Generator, B: int, T: int, n_in: int, sizes: list, device: str = "cpu",
          dtype: Any = np.float64) -> tuple:
    def arr(*shape: int) -> Any:
        return backend.to_device(rng.standard_normal(shape).astype(dtype), device)
    x = arr(B, T, n_in)
    s0 = [arr(B, s) for s in sizes]
    g = [arr(B, T, sizes[-1])] + [arr(B, s) for s in sizes]
    return x, s0, g


# ------------------------------------------------------------------------------------------------
# Hoisting
# ------------------------------------------------------------------------------------------------
def test_x_only_linear_runs_once_per_sequence_and_the_recurrent_one_per_step():
    cell, lx, lh = rnn_cell(counting=True)
    rec = lstm.Recurrence(cell.to(dtype=np.float64), [4], optimize=True)
    rng = np.random.default_rng(0)
    T, B = 6, 2
    x, s0, g = _data(rng, B, T, 3, [4])
    rec.forward([x] + s0)  # the first call builds the plan (a probe step through the cell)
    assert rec.executors[0].kind == "compiled"
    lx.rows.clear()
    lh.rows.clear()
    rec.forward([x] + s0)
    assert lx.rows == [T * B], f"x-only Linear: calls (rows) {lx.rows}, expected one of {T * B}"
    assert len(lh.rows) == T, f"recurrent Linear: {len(lh.rows)} calls for T={T}"
    # The plan says so too: the x Linear is hoisted, the h Linear is not.
    info = rec.executors[0].plan_info()[0]
    plan = cell._plan
    hoisted = {id(plan[i].module) for i in info["hoisted"]}
    assert id(lx) in hoisted and id(lh) not in hoisted


def test_x_only_chain_is_hoisted_and_state_dependent_nodes_are_not():
    cell = peephole_cell()
    fast, slow = _pair(cell, [4, 4])
    rng = np.random.default_rng(1)
    x, s0, g = _data(rng, 3, 5, 3, [4, 4])
    for _ in range(2):
        _close(_step(fast, x, s0, g, 0.5), _step(slow, x, s0, g, 0.5), "peephole")
    ex = fast.executors[0]
    assert ex.kind == "compiled"
    plan = fast.cell._plan
    hoisted = {type(plan[i].module).__name__ for i in ex.plan_info()[0]["hoisted"]}
    assert {"Linear", "LayerNormalization", "CMul"} <= hoisted, hoisted
    dep = {type(plan[i].module).__name__ for i in range(len(plan))
           if i not in ex.plan_info()[0]["hoisted"] and plan[i].slot < 0}
    assert {"Sigmoid", "Narrow", "CMulTable"} <= dep  # read the state: per step


def test_a_node_reading_x_and_the_state_is_not_hoisted():
    x, h = nn.Identity()(), nn.Identity()()
    both = nn.CAddTable()([nn.Linear(3, 4)(x), h])
    late = CountingLinear(4, 4)  # reads x and h: per step
    cell = nn.gModule([x, h], [nn.Tanh()(late(both))])
    rec = lstm.Recurrence(cell.to(dtype=np.float64), [4], optimize=True)
    x_ = np.random.default_rng(2).standard_normal((2, 5, 3))
    rec.forward(x_)
    late.rows.clear()
    rec.forward(x_)
    assert late.rows == [2] * 5


# ------------------------------------------------------------------------------------------------
# The strict backend, parameters, inspection, checkpoints
# ------------------------------------------------------------------------------------------------
def test_strict_device_runs_the_compiled_sequence():
    """On the strict array module (a stray NumPy call raises) the cell runs compiled, with the
    node-by-node values."""
    cell = peephole_cell()
    fast, slow = _pair(cell, [4, 4], device="strict", kernels="auto")
    rng = np.random.default_rng(3)
    x, s0, g = _data(rng, 2, 4, 3, [4, 4], device="strict")
    for _ in range(2):
        _close(_step(fast, x, s0, g, 2.0), _step(slow, x, s0, g, 2.0), "strict")
    assert fast.executors[0].kind == "compiled"
    assert backend.device_of(fast.output[0]) == "strict"


def test_strict_device_runs_compile_of_a_gmodule():
    g, _, _ = rnn_cell()
    g = g.to("strict", np.float64)
    ref = g.clone()
    c = compile(g)
    rng = np.random.default_rng(4)
    x = [backend.to_device(rng.standard_normal(s), "strict") for s in ((3, 3), (3, 4))]
    gy = backend.to_device(rng.standard_normal((3, 4)), "strict")
    for _ in range(3):
        g.zero_grad_parameters()
        ref.zero_grad_parameters()
        got = _host([c.forward(x), c.backward(x, gy)])
        _close(got, _host([ref.forward(x), ref.backward(x, gy)]))
        _close(_host(g.parameters()[1]), _host(ref.parameters()[1]))
    assert c.plan_info(), "no plan was built"


def test_compiling_changes_no_parameter_name_summary_or_checkpoint(tmp_path):
    cell = peephole_cell()
    fast, slow = _pair(cell, [4, 4])
    names = [n for n, _ in slow.named_parameters()]
    before = [id(p) for p in fast.parameters()[0]]
    x, s0, g = _data(np.random.default_rng(5), 2, 3, 3, [4, 4])
    _step(fast, x, s0, g)
    _step(slow, x, s0, g)
    assert [n for n, _ in fast.named_parameters()] == names
    assert [id(p) for p in fast.parameters()[0]] == before, "compiling replaced parameter arrays"
    assert fast.num_parameters() == slow.num_parameters()
    s_fast = inspect.summary(fast, (2, 3, 3), print_table=False)
    s_slow = inspect.summary(slow, (2, 3, 3), print_table=False)
    assert [r.name for r in s_fast.rows] == [r.name for r in s_slow.rows]
    assert s_fast.total_params == s_slow.total_params
    # The pictures (titled alike: the default title, the repr, says optimize=False)
    assert inspect.summary_to_dot(s_fast, title="t") == inspect.summary_to_dot(s_slow, title="t")
    # A checkpoint of the compiled layer loads into a node-by-node one (and back): same results.
    other = lstm.Recurrence(peephole_cell().to(dtype=np.float64), [4, 4]).optimize(False)
    load_checkpoint(save_checkpoint(str(tmp_path / "fast.npz"), fast), other)
    _close(_step(other, x, s0, g), _step(fast, x, s0, g), "checkpoint of the compiled layer")
    back = lstm.Recurrence(peephole_cell().to(dtype=np.float64), [4, 4], optimize=True)
    back.forward([x] + s0)  # compiled with its own weights first
    load_checkpoint(save_checkpoint(str(tmp_path / "slow.npz"), other), back)
    _close(_step(back, x, s0, g), _step(other, x, s0, g), "checkpoint loaded after compiling")
    assert back.executors[0].kind == "compiled"


def test_parameters_replaced_after_compiling_are_read():
    """get_parameters() (flat storage) and an in-place update after a compiled forward: the next
    compiled call uses the new values and accumulates into the new gradient storage."""
    cell = peephole_cell()
    fast, slow = _pair(cell, [4, 4])
    x, s0, g = _data(np.random.default_rng(6), 3, 4, 3, [4, 4])
    _step(fast, x, s0, g)
    for rec in (fast, slow):
        flat, grad = rec.get_parameters()
        flat *= 0.5
        flat += 0.01
    _close(_step(fast, x, s0, g), _step(slow, x, s0, g), "after get_parameters and an update")
    flat_f, grad_f = fast.get_parameters()
    flat_s, grad_s = slow.get_parameters()
    _close(_host(grad_f), _host(grad_s), "flat gradients")


def test_float32_compiled_sequence_stays_float32_and_close():
    cell = peephole_cell()
    fast, slow = _pair(cell, [4, 4], dtype=np.float32)
    x, s0, g = _data(np.random.default_rng(7), 2, 5, 3, [4, 4], dtype=np.float32)
    a, b = _step(fast, x, s0, g), _step(slow, x, s0, g)
    assert fast.output[0].dtype == np.float32
    for u, v in zip(a[:2], b[:2]):
        np.testing.assert_allclose(np.asarray(u, dtype=float), np.asarray(v, dtype=float),
                                   rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Regressions found by the property suite
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("view", ["Narrow", "JustTable", "SelectTable", "Identity"])
def test_regression_an_output_viewing_a_fused_buffer_survives_the_next_call(view):
    """Found by test_property_compile (random graphs): an output reached from a fused region's
    buffer through a module that passes it on (a view, a one-element list) was overwritten by
    the next call; only the region's own outputs were copied."""
    x = nn.Identity()()
    h = nn.Tanh()(nn.Sigmoid()(x))  # a fused region
    if view == "Narrow":
        out = nn.Narrow(1, 0, 2)(h)
    elif view == "JustTable":
        out = nn.JustTable()(h)
    elif view == "SelectTable":
        out = nn.SelectTable(0)([h, x])
    else:
        out = nn.Identity()(h)
    g = nn.gModule([x], [out])
    c = compile(g, kernels="numpy")
    a = np.linspace(-1, 1, 6).reshape(2, 3)
    c.forward(a)                 # builds the plan
    first = c.forward(a)         # runs it
    saved = _host(first)
    c.forward(a * 5)
    _close(_host(first), saved, f"output through {view} after the next call")


def test_regression_an_output_viewing_a_linear_group_survives_the_next_call():
    """The same for a Linear group's product buffer read through Narrow."""
    x = nn.Identity()()
    a, b = nn.Linear(3, 4)(x), nn.Linear(3, 2)(x)  # one group
    g = nn.gModule([x], [nn.Narrow(1, 1, 2)(a), nn.Tanh()(b)])
    c = compile(g, kernels="numpy")
    v = np.linspace(-1, 1, 6).reshape(2, 3)
    c.forward(v)
    first = c.forward(v)
    saved = _host(first)
    c.forward(v * 3)
    _close(_host(first), saved, "outputs after the next call")


@pytest.mark.parametrize("mode", ["no_grad", "evaluate"])
def test_regression_backward_is_refused_after_the_first_inference_forward(mode):
    """Found by test_property_compile: the first forward for new shapes (which runs the gModule
    to read the shapes) accepted a backward under no_grad=True / evaluate(); later calls
    refused it, as documented."""
    g, _, _ = rnn_cell()
    c = compile(g, no_grad=True) if mode == "no_grad" else compile(g).evaluate()
    x = [np.ones((2, 3), "float32"), np.ones((2, 4), "float32")]
    c.forward(x)
    with pytest.raises(GraphError):
        c.backward(x, np.ones((2, 4), "float32"))


def test_compile_sequence_inference_forward_equals_training_forward():
    cell = peephole_cell().to(dtype=np.float64)
    sig = CellSignature(x=0, state_inputs=(1, 2), state_outputs=(0, 1), state_sizes=(4, 4),
                        output_state=0)
    ex = compile_sequence(cell, sig, kernels="numpy", recipes=False)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 2, 3))
    s0 = [rng.standard_normal((2, 4)), None]
    out, fin = ex.forward(x, s0, keep=True)
    out, fin = out.copy(), [f.copy() for f in fin]
    for _ in range(2):
        out2, fin2 = ex.forward(x, s0, keep=False)
        _close(_host(out2), _host(out))
        _close(_host(fin2), _host(fin))
    with pytest.raises(GraphError):
        ex.backward(None, [None, None])


# ------------------------------------------------------------------------------------------------
# Wirings the random cells rarely draw
# ------------------------------------------------------------------------------------------------
def _one_node_two_states() -> tuple:
    x, a, b = nn.Identity()(), nn.Identity()(), nn.Identity()()
    h2 = nn.Tanh()(nn.CAddTable()([nn.Linear(3, 4)(x), nn.Linear(4, 4)(a), b]))
    return nn.gModule([x, a, b], [h2, h2]), [4, 4], 3


def _x_is_a_new_state() -> tuple:
    x, a, b = nn.Identity()(), nn.Identity()(), nn.Identity()()
    h2 = nn.Tanh()(nn.CAddTable()([nn.Linear(4, 4)(x), a, nn.Linear(4, 4)(b)]))
    return nn.gModule([x, a, b], [h2, x]), [4, 4], 4


def _state_from_x_only() -> tuple:
    x, a, h = nn.Identity()(), nn.Identity()(), nn.Identity()()
    return nn.gModule([x, a, h], [nn.Tanh()(nn.Linear(3, 4)(x)),
                                  nn.Sigmoid()(nn.CAddTable()([a, h]))]), [4, 4], 3


def _state_input_as_output() -> tuple:
    x, s, h = nn.Identity()(), nn.Identity()(), nn.Identity()()
    h2 = nn.Tanh()(nn.CAddTable()([nn.Linear(3, 4)(x), nn.Linear(4, 4)(h), nn.Linear(2, 4)(s)]))
    return nn.gModule([x, s, h], [s, h2]), [2, 4], 3


def _linear_only() -> tuple:
    x, h = nn.Identity()(), nn.Identity()()
    return nn.gModule([x, h], [nn.CAddTable()([nn.Linear(3, 4)(x), h])]), [4], 3


WIRINGS = {"one node as two states": _one_node_two_states, "x as a new state": _x_is_a_new_state,
           "a state from x alone": _state_from_x_only,
           "a state input node as its output": _state_input_as_output,
           "no element-wise region (h' = Wx + h)": _linear_only}


@pytest.mark.parametrize("lengths", [None, [4, 1, 2]])
@pytest.mark.parametrize("wiring", sorted(WIRINGS))
def test_unusual_wirings_compile_and_match_node_by_node(wiring, lengths):
    cell, sizes, n_in = WIRINGS[wiring]()
    fast, slow = _pair(cell, sizes)
    lengths = None if lengths is None else np.array(lengths)
    x, s0, g = _data(np.random.default_rng(9), 3, 4, n_in, sizes)
    for rec in (fast, slow):
        rec.set_lengths(lengths)
    for _ in range(2):
        _close(_step(fast, x, s0, g, -1.5), _step(slow, x, s0, g, -1.5), wiring)
    assert fast.executors[0].kind == "compiled"


def test_a_recurrence_node_inside_a_compiled_gmodule():
    """compile(g) of a graph holding a compiled Recurrence (an opaque node of the plan)."""
    x, h = nn.Identity()(), nn.Identity()()
    cell = nn.gModule([x, h], [nn.Tanh()(nn.CAddTable()([nn.Linear(3, 4)(x),
                                                          nn.Linear(4, 4)(h)]))])
    inp = nn.Identity()()
    out, h_n = lstm.Recurrence(cell, [4], optimize=True)(inp).split(2)
    g = nn.gModule([inp], [nn.Tanh()(nn.Sigmoid()(out)), nn.Linear(4, 2)(h_n)])
    g = g.to(dtype=np.float64)
    ref = g.clone()
    c = compile(g, kernels="numpy")
    rng = np.random.default_rng(10)
    for batch in (2, 2, 3):
        xx = rng.standard_normal((batch, 5, 3))
        gg = [rng.standard_normal((batch, 5, 4)), rng.standard_normal((batch, 2))]
        g.zero_grad_parameters()
        ref.zero_grad_parameters()
        got = _host([c.forward(xx), c.backward(xx, gg, 0.5)]) + [_host(g.parameters()[1])]
        want = _host([ref.forward(xx), ref.backward(xx, gg, 0.5)]) + [_host(ref.parameters()[1])]
        _close(got, want, f"batch {batch}")


def test_dtype_change_and_clear_state_after_compiling_rebuild_the_plan():
    """``to(float32)`` and ``clear_state()`` after compiled calls: the next calls are right."""
    fast, slow = _pair(peephole_cell(), [4, 4])
    rng = np.random.default_rng(11)
    x, s0, g = _data(rng, 2, 3, 3, [4, 4])
    _close(_step(fast, x, s0, g), _step(slow, x, s0, g), "float64")
    fast.clear_state()
    slow.clear_state()
    _close(_step(fast, x, s0, g), _step(slow, x, s0, g), "after clear_state")
    fast.to(dtype=np.float32)
    slow.to(dtype=np.float32)
    x, s0, g = _data(rng, 2, 3, 3, [4, 4], dtype=np.float32)
    a, b = _step(fast, x, s0, g), _step(slow, x, s0, g)
    assert fast.output[0].dtype == np.float32 and fast.executors[0].kind == "compiled"
    for u, v in zip(a, b):
        for p, q in zip(u if isinstance(u, list) else [u], v if isinstance(v, list) else [v]):
            np.testing.assert_allclose(np.asarray(p, dtype=float), np.asarray(q, dtype=float),
                                       rtol=1e-4, atol=1e-5)


def _regions_reading_each_other() -> tuple:
    """Two element-wise regions of different widths, each reading the other through a Linear:
    each is convex alone, together they form a cycle (A -> Linear -> B -> Linear -> A)."""
    x, a_in, b_in = nn.Identity()(), nn.Identity()(), nn.Identity()()  # (B, 1), (B, 2), (B, 1)
    a = nn.Sigmoid()(a_in)
    b = nn.Sigmoid()(b_in)
    a2 = nn.CAddTable()([nn.Linear(1, 2)(b), a])
    b2 = nn.CAddTable()([nn.Linear(2, 1)(a), b, x])
    return nn.gModule([x, a_in, b_in], [a2, b2]).to(dtype=np.float64)


def test_regression_regions_reading_each_other_through_linears():
    """Found by the long profile of test_property_compile_sequence: compile(g) and
    compile_sequence raised GraphError 'no order of the fused entries' (two regions, each
    convex, that depend on each other through Linears)."""
    g = _regions_reading_each_other()
    ref = g.clone()
    c = compile(g, kernels="numpy")
    rng = np.random.default_rng(12)
    x = [rng.standard_normal((3, 1)), rng.standard_normal((3, 2)), rng.standard_normal((3, 1))]
    gy = [rng.standard_normal((3, 2)), rng.standard_normal((3, 1))]
    for _ in range(2):
        g.zero_grad_parameters()
        ref.zero_grad_parameters()
        got = _host([c.forward(x), c.backward(x, gy)]) + [_host(g.parameters()[1])]
        want = _host([ref.forward(x), ref.backward(x, gy)]) + [_host(ref.parameters()[1])]
        _close(got, want, "compile(g)")
    # The same graph as a cell carrying (a, b) over time.
    fast = lstm.Recurrence(_regions_reading_each_other(), [2, 1], optimize=True)
    fast.optimize(True, kernels="numpy")
    slow = lstm.Recurrence(fast.cell.clone(), [2, 1]).optimize(False)
    xs, s0, gs = _data(rng, 3, 4, 1, [2, 1])
    for _ in range(2):
        _close(_step(fast, xs, s0, gs), _step(slow, xs, s0, gs), "compile_sequence")
    assert fast.executors[0].kind == "compiled"
