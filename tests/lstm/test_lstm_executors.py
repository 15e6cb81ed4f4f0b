"""The executors of the recurrent layers (``Recurrent.executors``): one interface for every kind,
chosen once and rebuilt only when it must be, nothing kept in evaluate mode, node-by-node and
compiled runs equal (values and gradients) for LSTM, GRU, RNN and Recurrence, and dropout
between layers the same for both."""
from __future__ import annotations

import warnings

import numpy
import pytest

import lstm.model
from nngraph_py import backend, nn
from nngraph_py.compile.sequence import CellSignature, CompileError
from nngraph_py.compile.unrolled import UnrolledSequence
from nngraph_py.errors import GraphError

from lstm import GRU, LSTM, RNN, Recurrence, make_gru_cell


def peephole_lstm_cell(n_in: int, n_h: int) -> nn.gModule:
    """A user-modified LSTM: ``[x, h, c] -> [h', c']`` with peepholes (``CMul`` on ``c``) into
    the input and forget gates and on ``c'`` into the output gate; not a recipe."""
    x, h, c = nn.Identity()(), nn.Identity()(), nn.Identity()()

    def pre(peep=None):
        parts = [nn.Linear(n_in, n_h)(x), nn.Linear(n_h, n_h)(h)]
        if peep is not None:
            parts.append(nn.CMul(n_h)(peep))
        return nn.CAddTable()(parts)

    i, f = nn.Sigmoid()(pre(c)), nn.Sigmoid()(pre(c))
    cand = nn.Tanh()(pre())
    next_c = nn.CAddTable()([nn.CMulTable()([f, c]), nn.CMulTable()([i, cand])])
    o = nn.Sigmoid()(pre(next_c))
    next_h = nn.CMulTable()([o, nn.Tanh()(next_c)])
    return nn.gModule([x, h, c], [next_h, next_c])


def _models():
    """``(name, factory(optimize), takes_lengths)`` for every layer kind."""
    return [
        ("lstm", lambda o: LSTM(3, 4, 2, bidirectional=True, optimize=o), True),
        ("gru", lambda o: GRU(3, 4, 2, bidirectional=True, optimize=o), True),
        ("rnn", lambda o: RNN(3, 4, 2, bidirectional=True, nonlinearity="relu", optimize=o), True),
        ("recurrence-peephole", lambda o: Recurrence(peephole_lstm_cell(3, 4), [4, 4], output=0,
                                                     optimize=o), True),
        ("recurrence-gru-recipe", lambda o: Recurrence(make_gru_cell(3, 4), [4], optimize=o),
         True),
    ]


#: The compiled kind of each model's executors (the GRU recipe may run through its fused pass or
#: the general compiler, whichever compile_sequence prefers).
EXPECTED_KIND = {"lstm": {"recipe-lstm"}, "gru": {"recipe-gru", "compiled"}, "rnn": {"compiled"},
                 "recurrence-peephole": {"compiled"},
                 "recurrence-gru-recipe": {"recipe-gru", "compiled"}}


def _run(model, x, lengths, seed=0):
    """Forward and backward with random output gradients: every array that should agree."""
    backend.manual_seed(seed)
    outputs = model.forward(x, lengths=lengths)
    flat = [outputs[0]] + list(outputs[1]) if isinstance(outputs[1], (list, tuple)) \
        else [outputs[0], outputs[1]]
    rng = numpy.random.default_rng(1)
    grads = [rng.standard_normal(a.shape) for a in flat]
    model.zero_grad_parameters()
    gx = model.backward(x, grads)  # through the masks of the forward's lengths
    return [numpy.array(a) for a in flat] + [numpy.array(gx)] + \
        [g.copy() for g in model.parameters()[1]]


# ------------------------------------------------------------------------------------------------
# The interface and the choice
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, make, _", _models(), ids=[m[0] for m in _models()])
def test_every_kind_has_the_interface(name, make, _):
    for optimize in (True, False):
        model = make(optimize).double()
        executors = model.executors
        assert len(executors) == len(model.cells)
        kinds = EXPECTED_KIND[name] if optimize else {"unrolled"}
        assert len({e.kind for e in executors}) == 1 and executors[0].kind in kinds
        for e in executors:
            for method in ("forward", "backward", "acc_grad_parameters", "invalidate"):
                assert callable(getattr(e, method)), (e.kind, method)


@pytest.fixture
def compile_calls(monkeypatch):
    """Counts the layers' calls of compile_sequence."""
    calls = []
    real = lstm.model.compile_sequence

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(lstm.model, "compile_sequence", counting)
    return calls


def test_the_choice_is_made_once_and_rebuilt_only_when_it_must(rng, compile_calls):
    model = GRU(3, 4, 2, bidirectional=True).double()
    x = rng.standard_normal((2, 5, 3))
    for _ in range(3):
        out, _h = model.forward(x)
        model.backward(x, numpy.ones_like(out))
    assert len(compile_calls) == 4 and compile_calls == model.cells  # one per cell, once
    first = list(model.executors)
    model.get_parameters()                          # arrays replaced: rebound, not rebuilt
    model.evaluate()
    model.forward(x)
    model.training()
    model.clear_state()
    model.forward(x)
    assert len(compile_calls) == 4 and all(a is b for a, b in zip(model.executors, first))
    model.to("strict")                              # another device: rebuilt
    out_strict, _h = model.forward(backend.to_device(x, "strict"))
    assert len(compile_calls) == 8 and model.executors[0] is not first[0]
    assert model.executors[0].kind in EXPECTED_KIND["gru"]
    model.to("cpu")
    model.optimize(False)                            # node by node: no compiler call
    numpy.testing.assert_allclose(model.forward(x)[0], backend.to_numpy(out_strict), atol=1e-12)
    assert len(compile_calls) == 8 and model.executors[0].kind == "unrolled"
    model.optimize(True, kernels="numpy")
    model.forward(x)
    assert len(compile_calls) == 12


def test_a_refused_cell_warns_once_and_runs_node_by_node(rng, monkeypatch):
    def refuse(cell, signature, kernels="auto"):
        raise CompileError("no plan for this cell (test)")

    monkeypatch.setattr(lstm.model, "compile_sequence", refuse)
    model = LSTM(3, 4, bidirectional=True).double()
    x = rng.standard_normal((2, 3, 3))
    with pytest.warns(UserWarning, match=r"LSTM.*refused 2 of 2 cell\(s\) \(no plan for this "
                                         r"cell \(test\)\); running them node by node"):
        want = model.forward(x)[0].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # chosen once: no second warning
        got = model.forward(x)[0]
    assert model.optimized and [e.kind for e in model.executors] == ["unrolled"] * 2
    numpy.testing.assert_array_equal(got, want)


def test_unrolled_clones_follow_get_parameters_and_modes(rng):
    cell = peephole_lstm_cell(3, 4)
    x_in, h_in, c_in = nn.Identity()(), nn.Identity()(), nn.Identity()()
    h2, c2 = cell([x_in, h_in, c_in]).split(2)
    noisy = nn.gModule([x_in, h_in, c_in], [nn.Dropout(0.5)(h2), c2])
    rec = Recurrence(noisy, [4, 4], output=0, optimize=False).double()
    x = rng.standard_normal((2, 4, 3))
    rec.forward(x)
    executor = rec.executors[0]
    assert isinstance(executor, UnrolledSequence) and len(executor.clones) == 4
    flat_p, _ = rec.get_parameters()
    rec.forward(x)
    for clone in executor.clones:
        for p in clone.parameters()[0]:
            assert numpy.shares_memory(p, flat_p)
    rec.evaluate()
    a = rec.forward(x)[0].copy()
    assert all(not m.train for clone in executor.clones for m in clone.modules())
    numpy.testing.assert_array_equal(rec.forward(x)[0], a)   # no dropout in evaluate mode
    rec.training()
    assert not numpy.allclose(rec.forward(x)[0], a)
    assert rec.executors[0] is executor


def test_a_copy_builds_executors_of_its_own(rng):
    model = LSTM(3, 4, optimize=False).double()
    x = rng.standard_normal((2, 3, 3))
    out = model.forward(x)[0]
    copy = model.clone()
    assert copy.num_clones() == 0
    numpy.testing.assert_array_equal(copy.forward(x)[0], out)
    assert copy.executors[0] is not model.executors[0]
    assert copy.executors[0].cell is copy.cells[0]


# ------------------------------------------------------------------------------------------------
# Evaluate mode keeps nothing
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, make, _", _models(), ids=[m[0] for m in _models()])
@pytest.mark.parametrize("optimize", [True, False], ids=["compiled", "unrolled"])
def test_evaluate_mode_keeps_nothing_for_backward(rng, name, make, _, optimize):
    model = make(optimize).double().evaluate()
    x = rng.standard_normal((2, 6, 3))
    out = model.forward(x)[0]
    with pytest.raises(GraphError, match="evaluate mode, which keeps nothing for backward: "
                                         "call training"):
        model.backward(x, numpy.ones_like(out))
    if not optimize:  # one clone runs every step
        assert all(len(e.clones) == 1 for e in model.executors)
    model.training()
    out = model.forward(x)[0]
    model.backward(x, numpy.ones_like(out))


def test_the_unrolled_executor_refuses_backward_after_keep_false(rng):
    cell = make_gru_cell(3, 4).double()
    run = UnrolledSequence(cell, CellSignature(0, (1,), (0,), (4,)))
    x = rng.standard_normal((5, 2, 3))
    with pytest.raises(GraphError, match="needs a forward that kept its steps"):
        run.backward(None, [None])
    inference, _ = run.forward(x, [None], keep=False)
    assert len(run.clones) == 1
    with pytest.raises(GraphError, match=r"keep=False: evaluate mode or inference"):
        run.backward(numpy.ones((5, 2, 4)), [None])
    kept, _ = run.forward(x, [None])
    numpy.testing.assert_array_equal(kept, inference)
    run.backward(numpy.ones((5, 2, 4)), [None])
    with pytest.raises(GraphError, match="needs a forward that kept its steps"):
        run.invalidate()
        run.acc_grad_parameters()


# ------------------------------------------------------------------------------------------------
# Node by node and compiled agree
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, make, takes_lengths", _models(), ids=[m[0] for m in _models()])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_unrolled_and_compiled_agree(rng, name, make, takes_lengths, with_lengths):
    compiled = make(True).double()
    unrolled = compiled.clone().optimize(False)
    x = rng.standard_normal((3, 5, 3))
    lengths = numpy.array([5, 2, 4]) if with_lengths else None
    got = _run(compiled, x, lengths)
    want = _run(unrolled, x, lengths)
    assert compiled.executors[0].kind in EXPECTED_KIND[name]
    assert unrolled.executors[0].kind == "unrolled"
    for a, b in zip(got, want):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    if with_lengths:
        assert not got[0][1, 2:].any()


def test_a_user_modified_cell_is_compiled_without_a_warning(rng):
    rec = Recurrence(peephole_lstm_cell(3, 4), [4, 4], output=0).double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = rec.forward(rng.standard_normal((2, 5, 3)))
    assert rec.executors[0].kind == "compiled" and out.shape == (2, 5, 4)


# ------------------------------------------------------------------------------------------------
# Dropout between layers: nn.Dropout's noise, drawn by the layer, the same for every executor
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
def test_dropout_masks_are_the_same_for_both_executors(rng, cls):
    compiled = cls(3, 5, 2, dropout=0.5, bidirectional=True).double()
    unrolled = compiled.clone().optimize(False)
    x = rng.standard_normal((4, 6, 3))
    got = _run(compiled, x, None, seed=11)
    want = _run(unrolled, x, None, seed=11)
    masks = [m.copy() for m in compiled._masks if m is not None]
    _run(unrolled, x, None, seed=11)
    assert len(masks) == 1 and (masks[0] == 0).any()
    numpy.testing.assert_array_equal(masks[0], unrolled._masks[0])
    for a, b in zip(got, want):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # Another seed draws other masks: the test can fail.
    other = _run(unrolled, x, None, seed=12)
    assert not numpy.allclose(other[0], want[0])


def test_cuda_kernels_on_host_arrays_run_the_numpy_passes(rng):
    """``optimize(kernels="cuda")`` takes the general compiler (the recipes have no CUDA
    kernels); on NumPy arrays its regions run as NumPy passes, with the same numbers."""
    model = LSTM(3, 4, 2, bidirectional=True).double()
    x = rng.standard_normal((2, 5, 3))
    want = _run(model.optimize(kernels="numpy"), x, numpy.array([5, 3]))
    got = _run(model.optimize(kernels="cuda"), x, numpy.array([5, 3]))
    assert model.kernels == "cuda" and [e.kind for e in model.executors] == ["compiled"] * 4
    for a, b in zip(got, want):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="kernels must be"):
        model.optimize(kernels="opencl")
