"""Graph pictures: labels, forward/backward edges, the LSTM recipe, clusters, Graphviz handling."""
from __future__ import annotations

import re

import pytest

from inspect_models import GATES, lstm_cell_model, nested_model, seed_mlp, shared_model
from nngraph_py import nn
from nngraph_py.inspect import GraphvizMissing, graphviz_available, save, summary, to_dot
from nngraph_py.inspect import picture

MLP_SHAPES = [(10,), (10,), (20,)]


def parse(dot: str) -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """``({node id: label lines}, {(source name, target name)})`` of DOT text."""
    labels = {m.group(1): m.group(2).split("\\n")
              for m in re.finditer(r'^\s*(n\d+) \[label="([^"]*)"', dot, re.M)}
    edges = {(labels[a][0], labels[b][0])
             for a, b in re.findall(r"^\s*(n\d+) -> (n\d+)", dot, re.M)}
    return labels, edges


def test_forward_boxes_show_name_module_shape_and_count():
    dot = to_dot(seed_mlp(), MLP_SHAPES)
    labels, edges = parse(dot)
    by_name = {lines[0]: lines for lines in labels.values()}
    assert by_name["Linear1"] == ["Linear1", "nn.Linear(20 -> 10)", "out (10,)", "210 params"]
    assert by_name["Identity3"][-1] == "out (20,)"
    assert edges == {("Identity3", "Linear1"), ("Identity2", "CMulTable1"),
                     ("Linear1", "CMulTable1"), ("Identity1", "CAddTable1"),
                     ("CMulTable1", "CAddTable1")}
    assert dot.count('shape="oval"') == 3 and dot.count('peripheries="2"') == 1


def test_backward_graph_reverses_the_edges_and_shows_gradients():
    fwd = parse(to_dot(seed_mlp(), MLP_SHAPES))[1]
    labels, bwd = parse(to_dot(seed_mlp(), MLP_SHAPES, which="backward"))
    assert bwd == {(b, a) for a, b in fwd}
    assert any("grad (10,)" in lines for lines in labels.values())
    with pytest.raises(ValueError):
        to_dot(seed_mlp(), which="sideways")


def test_lstm_cell_picture_shows_the_recipe():
    labels, edges = parse(to_dot(lstm_cell_model(5, 4), [(2, 5), (2, 4), (2, 4)]))
    names = {lines[0] for lines in labels.values()}
    for gate in GATES:
        assert {f"i2h_{gate}", f"h2h_{gate}"} <= names
        assert ("x", f"i2h_{gate}") in edges and ("prev_h", f"h2h_{gate}") in edges
    assert sum("nn.Linear" in " ".join(lines) for lines in labels.values()) == 8
    for gate in ("input_gate", "forget_gate", "output_gate", "cell_candidate", "next_c", "next_h"):
        assert gate in names
    # c' = f * c + i * g ; h' = o * tanh(c')
    assert {("forget_gate", "forget_c"), ("prev_c", "forget_c"), ("input_gate", "input_g"),
            ("cell_candidate", "input_g"), ("forget_c", "next_c"), ("input_g", "next_c"),
            ("next_c", "tanh_c"), ("output_gate", "next_h"), ("tanh_c", "next_h")} <= edges
    by_name = {lines[0]: lines for lines in labels.values()}
    assert by_name["i2h_forget"][1:] == ["nn.Linear(5 -> 4)", "out (2, 4)", "24 params"]


def test_nested_gmodule_is_a_cluster_wired_to_its_inner_nodes():
    dot = to_dot(nested_model(), [(2, 3), (2, 3)])
    assert "subgraph cluster_" in dot and "compound=true" in dot
    assert re.search(r'label="block\\nnn.gModule\(2 -> 2, 4 nodes\)', dot)
    labels, edges = parse(dot)
    assert ("proj", "SelectTable1") in edges and ("Tanh1", "SelectTable2") in edges
    folded = to_dot(nested_model(), depth=0)
    assert "subgraph" not in folded
    flabels, fedges = parse(folded)
    block = next(lines for lines in flabels.values() if lines[0] == "block")
    assert "12 params" in block
    assert ("block", "SelectTable1") in fedges


def test_sequential_members_are_chained():
    if not hasattr(nn, "Sequential"):
        pytest.skip("nn.Sequential is not available yet")
    seq = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    labels, edges = parse(to_dot(seq, (2, 4)))
    assert edges == {("1", "2"), ("2", "3")}


def test_shared_parameters_and_annotations_are_shown():
    labels, _ = parse(to_dot(shared_model()))
    right = next(lines for lines in labels.values() if lines[0] == "right")
    assert "shares left" in right and not any("params" in line for line in right)
    x = nn.Identity()()
    y = nn.Tanh()(x).annotate(name="act", graph_attributes={"color": "blue"},
                              description="squash")
    dot = to_dot(nn.gModule([x], [y]))
    assert 'color="blue"' in dot and 'tooltip="squash"' in dot


def test_to_dot_of_a_summary_equals_to_dot_of_the_model():
    model = nested_model()
    s = summary(model, [(2, 3), (2, 3)], print_table=False)
    assert to_dot(s) == to_dot(model, [(2, 3), (2, 3)])
    assert to_dot(s, depth=0) == to_dot(model, [(2, 3), (2, 3)], depth=0)


def test_save_dot_always_works(tmp_path, monkeypatch):
    monkeypatch.setattr(picture, "graphviz_available", lambda: False)
    path = save(seed_mlp(), str(tmp_path / "sub" / "g.dot"), MLP_SHAPES)
    assert open(path).read().startswith('digraph "forward"')


def test_save_svg_without_graphviz_is_a_clear_error_and_leaves_the_dot(tmp_path, monkeypatch):
    monkeypatch.setattr(picture, "graphviz_available", lambda: False)
    with pytest.raises(GraphvizMissing) as info:
        save(seed_mlp(), str(tmp_path / "g.svg"))
    text = str(info.value)
    assert "apt-get install graphviz" in text and str(tmp_path / "g.dot") in text
    assert (tmp_path / "g.dot").exists() and not (tmp_path / "g.svg").exists()


@pytest.mark.skipif(not graphviz_available(), reason="Graphviz 'dot' is not installed")
def test_save_svg_and_png_with_graphviz(tmp_path):
    svg = save(lstm_cell_model(), str(tmp_path / "cell.svg"), [(1, 5), (1, 4), (1, 4)])
    text = open(svg).read()
    assert "<svg" in text and "i2h_forget" in text
    png = save(nested_model(), str(tmp_path / "nested.png"), which="backward")
    assert open(png, "rb").read(4) == b"\x89PNG"
