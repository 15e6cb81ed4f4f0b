"""The user-written cells of the compiler benchmark compute what they say (benchmarks.cells).

The GRUs against PyTorch's ``nn.GRUCell`` on the same weights; the peephole LSTM against its
equations written out in NumPy; every cell's gradients against finite differences in float64.
"""
from __future__ import annotations

import numpy
import pytest

from benchmarks.cells import GRU_CELLS, peephole_lstm_cell
from nngraph_py import gradcheck


def _params(cell):
    return dict(cell.named_parameters())


def _sigmoid(v):
    return 1.0 / (1.0 + numpy.exp(-v))


@pytest.mark.parametrize("name", sorted(GRU_CELLS))
def test_user_gru_cell_matches_torch_gru_cell(name):
    torch = pytest.importorskip("torch")
    inp, hid, batch = 3, 4, 5
    cell = GRU_CELLS[name](inp, hid).double()
    p = _params(cell)
    ref = torch.nn.GRUCell(inp, hid).double()
    with torch.no_grad():
        if name == "stacked":
            ref.weight_ih.copy_(torch.from_numpy(p["x_rzn.weight"]))
            ref.bias_ih.copy_(torch.from_numpy(p["x_rzn.bias"]))
            ref.weight_hh.copy_(torch.from_numpy(p["h_rzn.weight"]))
            ref.bias_hh.copy_(torch.from_numpy(p["h_rzn.bias"]))
        else:
            for src, dst in (("x", "ih"), ("h", "hh")):
                getattr(ref, f"weight_{dst}").copy_(torch.from_numpy(numpy.concatenate(
                    [p[f"{src}_{g}.weight"] for g in "rzn"])))
                getattr(ref, f"bias_{dst}").copy_(torch.from_numpy(numpy.concatenate(
                    [p[f"{src}_{g}.bias"] for g in "rzn"])))
    rng = numpy.random.default_rng(0)
    x, h = rng.standard_normal((batch, inp)), rng.standard_normal((batch, hid))
    ours = cell.forward([x, h])
    theirs = ref(torch.from_numpy(x), torch.from_numpy(h)).detach().numpy()
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_peephole_lstm_cell_matches_its_equations():
    inp, hid, batch = 3, 4, 5
    cell = peephole_lstm_cell(inp, hid).double()
    p = _params(cell)
    rng = numpy.random.default_rng(1)
    x, h, c = (rng.standard_normal((batch, n)) for n in (inp, hid, hid))

    def pre(gate):
        return (x @ p[f"i2h_{gate}.weight"].T + p[f"i2h_{gate}.bias"]
                + h @ p[f"h2h_{gate}.weight"].T + p[f"h2h_{gate}.bias"])

    i = _sigmoid(pre("input") + p["peep_input.weight"] * c)
    f = _sigmoid(pre("forget") + p["peep_forget.weight"] * c)
    g = numpy.tanh(pre("cell"))
    c2 = f * c + i * g
    o = _sigmoid(pre("output") + p["peep_output.weight"] * c2)
    h2 = o * numpy.tanh(c2)
    next_h, next_c = cell.forward([x, h, c])
    numpy.testing.assert_allclose(next_c, c2, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(next_h, h2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(GRU_CELLS) + ["peephole"])
def test_user_cells_gradcheck(name):
    make = peephole_lstm_cell if name == "peephole" else GRU_CELLS[name]
    cell = make(3, 4).double()
    rng = numpy.random.default_rng(2)
    states = 2 if name == "peephole" else 1
    inputs = [rng.standard_normal((2, 3))] + [rng.standard_normal((2, 4)) for _ in range(states)]
    assert gradcheck(cell, inputs).ok
