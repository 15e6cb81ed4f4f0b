"""Modules, criteria and gModules written by the real Lua Torch: loaded, then run here and
compared with the outputs, input gradients and parameter gradients Lua computed (stored in the
same files; see tests/fixtures/lua/torch7/make_fixtures.lua)."""
from __future__ import annotations

import json
import os

import numpy
import pytest

from nngraph_py import nn, torch7
from nngraph_py.gradcheck import gradcheck

from t7_helpers import ARTIFACTS, fixture, grads_by_param, max_diff

TOL = 1e-12
INDEX_CASES = {"LookupTable", "OneHot_charrnn", "OneHot_charrnn_Linear"}  # 1-based Lua indices


def _load_cases(name: str) -> list[dict]:
    return torch7.load(fixture(name))["cases"]


MODULE_CASES = _load_cases("modules.t7")


def _to_index(x: numpy.ndarray) -> numpy.ndarray:
    return x.astype(numpy.int64) - 1


def _check_case(case: dict) -> None:
    m = case["module"]
    x = case["input"]
    if case["name"] in INDEX_CASES:
        x = _to_index(x)
    m.zero_grad_parameters()
    y = m.forward(x)
    assert max_diff(y, case["output"]) < TOL, case["name"]
    gi = m.backward(x, case["gradOutput"])
    if case["name"] not in INDEX_CASES:
        assert max_diff(gi, case["gradInput"]) < TOL, case["name"]
    grads = grads_by_param(m)
    assert len(case["params"]) == len(case["gradParams"])
    for p, g_lua in zip(case["params"], case["gradParams"]):
        assert id(p) in grads, f"{case['name']}: a Lua parameter is not a parameter here"
        assert max_diff(grads[id(p)], g_lua) < TOL, case["name"]


def test_every_module_family_is_in_the_fixture():
    names = {c["name"] for c in MODULE_CASES}
    for family in ("Linear", "Tanh", "Sigmoid", "ReLU", "SoftMax", "LogSoftMax", "Identity",
                   "MulConstant", "AddConstant", "Dropout_eval", "Reshape", "View", "Narrow",
                   "Select", "JoinTable", "SplitTable", "SelectTable", "NarrowTable", "CAddTable",
                   "CSubTable", "CMulTable", "CDivTable", "Sequential", "ConcatTable",
                   "ParallelTable", "LookupTable", "OneHot_charrnn"):
        assert family in names


@pytest.mark.parametrize("case", MODULE_CASES, ids=[c["name"] for c in MODULE_CASES])
def test_module_matches_lua(case):
    _check_case(case)


def test_converted_types_and_zero_based_arguments():
    by_name = {c["name"]: c["module"] for c in MODULE_CASES}
    assert isinstance(by_name["SplitTable"], nn.SplitTable) and by_name["SplitTable"].dim == 1
    assert by_name["SplitTable_nInputDims"].dim == -2  # Lua (1, nInputDims=2): an example's axis 0
    assert by_name["SelectTable"].index == 1 and by_name["SelectTable_negative"].index == -1
    assert (by_name["Narrow"].dim, by_name["Narrow"].offset, by_name["Narrow"].length) == (1, 1, 2)
    assert (by_name["Select"].dim, by_name["Select"].index) == (1, 2)
    assert by_name["NarrowTable"].offset == 1
    assert by_name["JoinTable_nInputDims"].dim == -1
    assert isinstance(by_name["OneHot_charrnn"], nn.OneHot)
    assert not by_name["Dropout_eval"].train
    lin = by_name["Linear"]
    assert lin.weight.dtype == numpy.float64 and lin.dtype == numpy.float64
    assert not by_name["Linear_nobias"].has_bias


CRITERIA = torch7.load(fixture("modules.t7"))["criteria"]


@pytest.mark.parametrize("case", CRITERIA, ids=[c["name"] for c in CRITERIA])
def test_criterion_matches_lua(case):
    crit = case["criterion"]
    target = case["target"]
    if "NLL" in case["name"] or "CrossEntropy" in case["name"]:
        target = _to_index(target)
    loss = crit.forward(case["input"], target)
    assert abs(loss - case["loss"]) < TOL
    assert max_diff(crit.backward(case["input"], target), case["gradInput"]) < TOL


EXTRA = _load_cases("modules_extra.t7") if hasattr(nn, "CMul") else []


@pytest.mark.skipif(not hasattr(nn, "CMul"), reason="CMul/CAdd/Parallel/Concat not in nn yet")
@pytest.mark.parametrize("case", EXTRA, ids=[c["name"] for c in EXTRA])
def test_extra_module_matches_lua(case):
    _check_case(case)


GRAPHS = _load_cases("graphs.t7")


@pytest.mark.parametrize("case", GRAPHS, ids=[c["name"] for c in GRAPHS])
def test_gmodule_matches_lua(case):
    assert isinstance(case["module"], nn.gModule)
    _check_case(case)


def test_ascii_gmodule_matches_lua():
    (case,) = _load_cases("graphs_ascii.t7")
    _check_case(case)


def _by_name(g: nn.gModule) -> dict:
    return {g.node_name(n): n for n in g.nodes}


def test_nested_gmodule_structure_names_and_input_order():
    g = next(c for c in GRAPHS if c["name"] == "nested")["module"]
    assert g.n_inputs == 2 and g.n_outputs == 2
    # Lua's inputs were {y, x}: y (2, 3) first, x (2, 4) second, whatever the creation order
    assert max_diff(g.forward([numpy.zeros((2, 3)), numpy.zeros((2, 4))])[1],
                    numpy.zeros((2, 3))) < 10  # runs with Lua's order
    with pytest.raises(Exception):
        g.forward([numpy.zeros((2, 4)), numpy.zeros((2, 3))])
    assert "logp" in _by_name(g)
    inner = [m for m in g.modules() if isinstance(m, nn.gModule) and m is not g]
    assert len(inner) == 2  # one as a node, one inside a Sequential
    for sub in inner:
        names = _by_name(sub)
        assert {"inner_sum", "inner_tanh"} <= set(names)
        assert names["inner_sum"].description == "u + q"
        assert names["inner_tanh"].graph_attributes.get("color") == "red"
        assert names["inner_sum"].created_at.startswith("make_fixtures.lua:")
    seqs = [m for m in g.modules() if isinstance(m, nn.Sequential)]
    assert seqs and isinstance(seqs[0][0], nn.gModule)


def test_shared_weights_stay_shared():
    case = next(c for c in GRAPHS if c["name"] == "shared")
    g = case["module"]
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2
    assert linears[0].weight is linears[1].weight and linears[0].bias is linears[1].bias
    assert linears[0].grad_weight is linears[1].grad_weight
    assert g.num_parameters() == 4 * 4 + 4
    flat, _ = g.get_parameters()  # sharing survives flattening
    assert flat.shape == (20,) and linears[0].weight is linears[1].weight


def test_gradcheck_of_a_loaded_gmodule():
    case = next(c for c in GRAPHS if c["name"] == "nested")
    gradcheck(case["module"], case["input"])


def test_shared_artifacts_match_lua_json():
    """The reference files in ../shared/luatorch/artifacts (JSON written by Lua)."""
    if not os.path.isdir(ARTIFACTS):
        pytest.skip("shared artifacts not present")

    def arrays(v):
        if isinstance(v, dict) and "__type" in v:
            data = v["data"] if isinstance(v["data"], list) else []
            return numpy.array(data, dtype=numpy.float64).reshape(v["size"] if data else (0,))
        if isinstance(v, list):
            return [arrays(x) for x in v]
        if isinstance(v, dict):
            return {k: arrays(x) for k, x in v.items()}
        return v

    g = torch7.load(os.path.join(ARTIFACTS, "char_rnn_lstm.t7"))
    ref = arrays(json.load(open(os.path.join(ARTIFACTS, "char_rnn_lstm.json"))))
    inputs = list(ref["inputs"])
    inputs[0] = _to_index(inputs[0])
    assert max_diff(g.forward(inputs), ref["outputs"]) < TOL
    gi = g.backward(inputs, ref["gradOutputs"])
    assert max_diff(gi[1:], ref["gradInputs"][1:]) < TOL
    assert g.n_inputs == 5 and g.n_outputs == 5
    names = _by_name(g)
    assert {"i2h_1", "h2h_1", "i2h_2", "h2h_2", "decoder"} <= set(names)
    tut = torch7.load(os.path.join(ARTIFACTS, "nngraph_tutorial.t7"))
    ref = arrays(json.load(open(os.path.join(ARTIFACTS, "nngraph_tutorial.json"))))
    assert max_diff(tut.forward(ref["inputs"]), ref["output"]) < TOL
    assert max_diff(tut.backward(ref["inputs"], ref["gradOutput"]), ref["gradInput"]) < TOL


CATALOGUE = torch7.load(fixture("modules_catalogue.t7"))


def _catalogue_input(case: dict):
    x = case["input"]
    if case.get("index_input"):  # a list holding 1-based Lua indices at this (1-based) position
        x = list(x)
        k = case["index_input"] - 1
        x[k] = _to_index(x[k])
    return x


@pytest.mark.parametrize("case", CATALOGUE["cases"], ids=[c["name"] for c in CATALOGUE["cases"]])
def test_catalogue_module_matches_lua(case):
    m = case["module"]
    assert isinstance(m, nn.Module), case["name"]
    x = _catalogue_input(case)
    m.zero_grad_parameters()
    assert max_diff(m.forward(x), case["output"]) < 1e-10, case["name"]
    gi = m.backward(x, case["gradOutput"])
    if case.get("index_input"):
        k = case["index_input"] - 1
        gi, want = [g for i, g in enumerate(gi) if i != k], \
            [g for i, g in enumerate(case["gradInput"]) if i != k]
    else:
        want = case["gradInput"]
    assert max_diff(gi, want) < 1e-10, case["name"]
    grads = grads_by_param(m)
    params = [p for _, p in m.named_parameters()]
    for p, g_lua in zip(case["params"], case["gradParams"]):
        if id(p) not in grads:  # a reshaped view of the Lua array (SpatialConvolutionMM)
            same = [q for q in params if numpy.shares_memory(q, p) and q.size == p.size]
            assert same, f"{case['name']}: a Lua parameter is not a parameter here"
            assert max_diff(grads[id(same[0])].reshape(p.shape), g_lua) < 1e-10, case["name"]
            continue
        assert max_diff(grads[id(p)], g_lua) < 1e-10, case["name"]


@pytest.mark.parametrize("case", CATALOGUE["criteria"],
                         ids=[c["name"] for c in CATALOGUE["criteria"]])
def test_catalogue_criterion_matches_lua(case):
    crit = case["criterion"]
    assert isinstance(crit, nn.Criterion), case["name"]
    target = _to_index(case["target"]) if case.get("index_target") else case["target"]
    assert abs(crit.forward(case["input"], target) - case["loss"]) < 1e-10
    assert max_diff(crit.backward(case["input"], target), case["gradInput"]) < 1e-10


def test_catalogue_random_modules_convert():
    plain = CATALOGUE["plain"]
    assert isinstance(plain["white_noise"], nn.WhiteNoise)
    assert isinstance(plain["spatial_dropout"], nn.SpatialDropout)


def test_every_library_module_has_a_converter():
    from nngraph_py.torch7.convert import CONVERTERS

    have = {name.split(".")[-1] for name in CONVERTERS}
    missing = [n for n in nn.__all__ if n not in have
               and n not in ("Module", "Node", "Container", "Criterion")]
    assert not missing, f"no .t7 converter for {missing}"


RESIZE = _load_cases("modules_resize.t7")


@pytest.mark.parametrize("case", RESIZE, ids=[c["name"] for c in RESIZE])
def test_resize_modules_match_lua(case):
    """SpatialAdaptiveAveragePooling and SpatialUpSamplingBilinear (both Lua constructor forms)
    load and match Lua's output and gradInput (fixture: make_resize.lua)."""
    _check_case(case)
