"""Watch.plot stays readable with many parameters: grouped by layer, top-k in colour, legend
beside the panels (an LSTM classifier has 34 parameters)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lstm import LSTM
from nngraph_py import inspect, manual_seed, nn, optim

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def watch() -> inspect.Watch:
    manual_seed(0)
    x = nn.Identity()()
    seq = nn.SelectTable(0)(LSTM(6, 8, num_layers=2)(x).annotate(name="lstm"))
    logits = nn.Linear(8, 3)(nn.Select(1, -1)(seq)).annotate(name="classifier")
    model = nn.gModule([x], [logits])
    criterion, adam = nn.CrossEntropyCriterion(), optim.Adam(model, lr=0.01)
    rng = np.random.default_rng(0)
    inputs, labels = rng.standard_normal((4, 5, 6)).astype("f4"), rng.integers(0, 3, 4)
    w = inspect.Watch(model, every=2)
    for i in range(10):
        adam.zero_grad()
        out = model.forward(inputs)
        criterion.forward(out, labels)
        model.backward(inputs, criterion.backward(out, labels))
        adam.step()
        w.step(i)
    return w


def test_many_parameters_are_grouped_by_layer(watch: inspect.Watch) -> None:
    assert len(watch.names()) == 34
    groups = watch.groups(watch.names())
    assert list(groups) == ["lstm.layer1", "lstm.layer2", "classifier"]
    assert len(groups["lstm.layer1"]) == 16 and groups["classifier"] == [
        "classifier.weight", "classifier.bias"]
    assert watch.groups(watch.names()[:5]) == {n: [n] for n in watch.names()[:5]}  # few: as is


def test_a_group_norm_is_the_norm_of_its_parameters_end_to_end(watch: inspect.Watch) -> None:
    names = ["classifier.weight", "classifier.bias"]
    steps, values = watch.grouped_series(names, "norm", "grad")
    w = watch.series(names[0], "norm", "grad")[1]
    b = watch.series(names[1], "norm", "grad")[1]
    assert steps == [0, 2, 4, 6, 8]
    assert values == pytest.approx([math.hypot(p, q) for p, q in zip(w, b)])


def _legend_labels(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


@pytest.mark.parametrize("group, top_k, expected", [
    ("auto", 8, ["lstm.layer1", "lstm.layer2", "classifier"]),
    ("none", 5, None),
])
def test_plot_has_a_legend_beside_the_panels(watch: inspect.Watch, tmp_path: Path, monkeypatch,
                                             group: str, top_k: int, expected) -> None:
    from matplotlib.figure import Figure

    figures = []
    original = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    path = watch.plot(str(tmp_path / "w.png"), group=group, top_k=top_k)
    assert Path(path).stat().st_size > 10_000
    (fig,) = figures
    labels = _legend_labels(fig)
    assert not any(ax.get_legend() for ax in fig.axes)  # no legend over the data
    if expected is not None:
        assert sorted(labels) == sorted(expected)
    else:
        assert len(labels) == top_k + 1 and labels[-1] == "29 more (grey)"
        coloured = [line for line in fig.axes[0].get_lines() if line.get_label() in labels]
        assert len({line.get_color() for line in coloured}) == top_k  # distinct colours


def test_bad_plot_options_are_refused(watch: inspect.Watch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="group must be"):
        watch.plot(str(tmp_path / "w.png"), group="module")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        watch.plot(str(tmp_path / "w.png"), top_k=0)
