"""Parameter and gradient statistics, update ratios and the training Watch."""
from __future__ import annotations

import json
import math
import sys

import numpy
import pytest

from inspect_models import lstm_cell_model, seed_mlp, shared_model
from nngraph_py import backend
from nngraph_py.inspect import (MatplotlibMissing, Watch, array_stats, format_stats, grad_stats,
                                snapshot, stats, update_ratio)


def _check_against_numpy(st, a):
    a = numpy.asarray(a, dtype=numpy.float64)
    assert st.shape == a.shape and st.count == a.size
    assert st.norm == pytest.approx(numpy.linalg.norm(a.ravel()), rel=1e-6)
    assert st.mean == pytest.approx(a.mean(), rel=1e-6, abs=1e-12)
    assert st.std == pytest.approx(a.std(), rel=1e-6)
    assert st.min == pytest.approx(a.min()) and st.max == pytest.approx(a.max())
    assert st.nan == 0 and st.inf == 0 and st.finite


def test_stats_match_numpy_on_every_backend(device):
    mlp = seed_mlp().to(device)
    rows = stats(mlp)
    assert [r.name for r in rows] == ["Linear1.weight", "Linear1.bias"]
    assert all(r.kind == "param" and r.dtype == "float32" for r in rows)
    for r, (_, p) in zip(rows, mlp.named_parameters()):
        _check_against_numpy(r, backend.to_numpy(p))


def test_grad_stats_after_backward(device, rng):
    mlp = seed_mlp().double().to(device)
    x = [backend.to_device(rng.standard_normal(s), device) for s in ((4, 10), (4, 10), (4, 20))]
    mlp.forward(x)
    mlp.backward(x, backend.to_device(rng.standard_normal((4, 10)), device))
    rows = grad_stats(mlp)
    assert [r.kind for r in rows] == ["grad", "grad"]
    for r, (_, g) in zip(rows, mlp.named_grad_parameters()):
        _check_against_numpy(r, backend.to_numpy(g))
        assert r.norm > 0


def test_nan_and_inf_are_counted_and_left_out_of_the_rest(device):
    host = numpy.array([1.0, numpy.nan, -2.0, numpy.inf, numpy.nan, -numpy.inf, 3.0], "float32")
    st = array_stats("w", backend.to_device(host, device))
    assert (st.nan, st.inf, st.count) == (2, 2, 7) and not st.finite
    _finite = numpy.array([1.0, -2.0, 3.0])
    assert st.norm == pytest.approx(numpy.linalg.norm(_finite))
    assert st.mean == pytest.approx(_finite.mean()) and st.std == pytest.approx(_finite.std())
    assert (st.min, st.max) == (-2.0, 3.0)
    all_bad = array_stats("w", backend.to_device(numpy.full(3, numpy.nan, "float32"), device))
    assert all_bad.nan == 3 and math.isnan(all_bad.norm)
    text = format_stats([st])
    assert "NOT FINITE: w" in text


def test_shared_array_appears_once_under_its_first_name():
    names = [r.name for r in stats(shared_model())]
    assert names == ["left.weight", "left.bias"]


def test_stats_of_named_arrays_and_mappings():
    arrays = {"a": numpy.arange(6.0).reshape(2, 3), "b": numpy.zeros(2)}
    rows = stats(arrays)
    assert [r.name for r in rows] == ["a", "b"] and rows[0].max == 5.0
    assert [r.name for r in stats(list(arrays.items()))] == ["a", "b"]
    with pytest.raises(ValueError):
        stats(arrays, kind="weights")


def test_update_ratio_matches_numpy(device):
    mlp = seed_mlp().to(device)
    before = snapshot(mlp)
    host_before = {k: backend.to_numpy(v).astype(numpy.float64).copy() for k, v in before.items()}
    mlp.nodes[3].module.weight += 0.01
    ratios = update_ratio(before, mlp)
    w = host_before["Linear1.weight"]
    assert ratios["Linear1.weight"] == pytest.approx(
        numpy.linalg.norm(numpy.full_like(w, 0.01)) / numpy.linalg.norm(w), rel=1e-4)
    assert ratios["Linear1.bias"] == 0.0
    zero = {"b": numpy.zeros(3)}
    assert update_ratio(zero, {"b": numpy.ones(3)}) == {"b": math.inf}
    assert update_ratio(zero, zero) == {"b": 0.0}


def _train(model, watch, steps, lr=0.1, rng=None):
    rng = rng or numpy.random.default_rng(0)
    x = [rng.standard_normal(shape).astype("float32") for shape in ((2, 10), (2, 10), (2, 20))]
    olds = []
    for i in range(steps):
        model.zero_grad_parameters()
        out = model.forward(x)
        model.backward(x, out)  # loss 0.5 * ||out||^2
        olds.append({n: p.copy() for n, p in model.named_parameters()})
        model.update_parameters(lr)
        watch.step(i)
    return olds


def test_watch_records_every_n_steps_with_one_step_update_ratios():
    mlp = seed_mlp()
    watch = Watch(mlp, every=3)
    olds = _train(mlp, watch, 7)
    assert [e["step"] for e in watch.history] == [0, 3, 6]
    assert "update_ratio" not in watch.history[0]  # nothing before step 0
    entry = watch.history[1]
    assert set(entry) == {"step", "params", "grads", "update_ratio"}
    # the ratio of step 3 alone: parameters before step 3's update vs after it
    w_before = olds[3]["Linear1.weight"].astype(numpy.float64)
    expected = numpy.linalg.norm(olds[4]["Linear1.weight"] - w_before) / numpy.linalg.norm(w_before)
    assert entry["update_ratio"]["Linear1.weight"] == pytest.approx(expected, rel=1e-5)
    assert entry["params"]["Linear1.weight"]["norm"] == pytest.approx(
        numpy.linalg.norm(olds[4]["Linear1.weight"].astype(numpy.float64)), rel=1e-6)
    steps, norms = watch.series("Linear1.bias", "norm", kind="grad")
    assert steps == [0, 3, 6] and all(n > 0 for n in norms)
    assert watch.series("Linear1.weight", "update_ratio")[0] == [3, 6]
    assert [s.name for s in watch.latest()] == ["Linear1.weight", "Linear1.bias"]
    assert json.loads(watch.to_json())["every"] == 3


def test_watch_json_file_and_problems(tmp_path):
    mlp = seed_mlp()
    watch = Watch(mlp, every=1)
    _train(mlp, watch, 2)
    mlp.nodes[3].module.bias[0] = numpy.nan
    watch.step(2)
    problems = watch.problems()
    assert any("Linear1.bias has 1 NaN" in p for p in problems)
    path = tmp_path / "stats.json"
    watch.to_json(str(path))
    assert len(json.loads(path.read_text())["history"]) == 3


def test_watch_flags_a_learning_rate_that_is_far_too_high():
    mlp = seed_mlp()
    watch = Watch(mlp, every=1, grads=False)
    _train(mlp, watch, 2, lr=50.0)
    assert "grads" not in watch.history[0]
    assert any("too high" in p for p in watch.problems())


def test_watch_rejects_bad_arguments():
    with pytest.raises(TypeError):
        Watch(object())
    with pytest.raises(ValueError):
        Watch(seed_mlp(), every=0)


def test_watch_plot_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (optional 'examples' extra) is missing")
    cell = lstm_cell_model()
    watch = Watch(cell, every=1)
    rng = numpy.random.default_rng(0)
    x = [rng.standard_normal((2, 5)).astype("float32"), numpy.zeros((2, 4), "float32"),
         numpy.zeros((2, 4), "float32")]
    for i in range(3):
        cell.zero_grad_parameters()
        out = cell.forward(x)
        cell.backward(x, [numpy.ones_like(o) for o in out])
        cell.update_parameters(0.01)
        watch.step(i)
    path = watch.plot(str(tmp_path / "stats.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_watch_plot_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    watch = Watch(seed_mlp())
    watch.step(0)
    with pytest.raises(MatplotlibMissing, match="pip install matplotlib"):
        watch.plot(str(tmp_path / "x.png"))


def test_watch_plot_needs_a_record(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (optional 'examples' extra) is missing")
    with pytest.raises(ValueError, match="nothing recorded"):
        Watch(seed_mlp()).plot(str(tmp_path / "x.png"))
