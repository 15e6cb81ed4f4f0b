"""Cells a user writes from ``nn`` primitives, for the compiler benchmark (issue 16).

None of these is a recipe of :mod:`lstm.cell`: they are what a user of nngraph writes by hand
(as nngraph's users wrote GRUs and peephole LSTMs before there were recipes), and
:class:`lstm.Recurrence` runs them over time. Whatever speed they get comes from the general
compiler, not from a pattern matcher.

``gru_cell``           PyTorch ``nn.GRU``'s equations with one ``Linear`` per gate and input,
                       ``h' = (1 - z) * n + z * h`` written with ``MulConstant``/``AddConstant``
                       (the recipe :func:`lstm.make_gru_cell` writes ``n + z * (h - n)``).
``stacked_gru_cell``   the same equations as PyTorch stores them: one ``Linear(input, 3H)`` and
                       one ``Linear(H, 3H)``, the gates cut out with ``Narrow``.
``peephole_lstm_cell`` the nngraph LSTM recipe's gates plus peepholes (Gers & Schmidhuber): the
                       input and forget gates see ``w_i * c_{t-1}``, ``w_f * c_{t-1}``, the
                       output gate ``w_o * c_t``, each ``w`` a learned vector (``nn.CMul(H)``).

Every cell takes ``[x_t, prev_h]`` (GRU) or ``[x_t, prev_h, prev_c]`` (LSTM) and returns the new
states in the same order, as :class:`lstm.Recurrence` carries them.
"""
from __future__ import annotations

from typing import Any

__all__ = ["GRU_CELLS", "gru_cell", "peephole_lstm_cell", "stacked_gru_cell"]


def gru_cell(input_size: int, hidden: int) -> Any:
    """``[x, prev_h] -> next_h`` with PyTorch's GRU equations, six ``Linear`` s.

    ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z`` likewise,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
    """
    from nngraph_py import nn

    x = nn.Identity()().annotate(name="x")
    h = nn.Identity()().annotate(name="h")

    def both(gate: str) -> tuple[Any, Any]:
        return (nn.Linear(input_size, hidden)(x).annotate(name=f"x_{gate}"),
                nn.Linear(hidden, hidden)(h).annotate(name=f"h_{gate}"))

    r = nn.Sigmoid()(nn.CAddTable()(list(both("r")))).annotate(name="r")
    z = nn.Sigmoid()(nn.CAddTable()(list(both("z")))).annotate(name="z")
    x_n, h_n = both("n")
    n = nn.Tanh()(nn.CAddTable()([x_n, nn.CMulTable()([r, h_n])])).annotate(name="n")
    one_minus_z = nn.AddConstant(1.0)(nn.MulConstant(-1.0)(z)).annotate(name="one_minus_z")
    new_h = nn.CAddTable()([nn.CMulTable()([one_minus_z, n]),
                            nn.CMulTable()([z, h])]).annotate(name="new_h")
    return nn.gModule([x, h], [new_h])


def stacked_gru_cell(input_size: int, hidden: int) -> Any:
    """The GRU of :func:`gru_cell` with PyTorch's stacked ``(r, z, n)`` projections."""
    from nngraph_py import nn

    x = nn.Identity()().annotate(name="x")
    h = nn.Identity()().annotate(name="h")
    xs = nn.Linear(input_size, 3 * hidden)(x).annotate(name="x_rzn")
    hs = nn.Linear(hidden, 3 * hidden)(h).annotate(name="h_rzn")

    def part(node: Any, k: int) -> Any:
        return nn.Narrow(1, k * hidden, hidden)(node)

    r = nn.Sigmoid()(nn.CAddTable()([part(xs, 0), part(hs, 0)])).annotate(name="r")
    z = nn.Sigmoid()(nn.CAddTable()([part(xs, 1), part(hs, 1)])).annotate(name="z")
    n = nn.Tanh()(nn.CAddTable()([part(xs, 2), nn.CMulTable()([r, part(hs, 2)])])).annotate(
        name="n")
    one_minus_z = nn.AddConstant(1.0)(nn.MulConstant(-1.0)(z))
    new_h = nn.CAddTable()([nn.CMulTable()([one_minus_z, n]),
                            nn.CMulTable()([z, h])]).annotate(name="new_h")
    return nn.gModule([x, h], [new_h])


def peephole_lstm_cell(input_size: int, hidden: int) -> Any:
    """``[x, prev_h, prev_c] -> [next_h, next_c]``: the recipe's LSTM with peepholes.

    ``i = sigmoid(W_xi x + W_hi h + w_ci * c)``, ``f`` likewise with ``w_cf``,
    ``g = tanh(W_xg x + W_hg h)``, ``c' = f * c + i * g``,
    ``o = sigmoid(W_xo x + W_ho h + w_co * c')``, ``h' = o * tanh(c')`` (biases in the Linears).
    """
    from nngraph_py import nn

    x = nn.Identity()().annotate(name="x")
    prev_h = nn.Identity()().annotate(name="prev_h")
    prev_c = nn.Identity()().annotate(name="prev_c")

    def total(gate: str, *extra: Any) -> Any:
        return nn.CAddTable()([nn.Linear(input_size, hidden)(x).annotate(name=f"i2h_{gate}"),
                               nn.Linear(hidden, hidden)(prev_h).annotate(name=f"h2h_{gate}"),
                               *extra]).annotate(name=f"{gate}_sum")

    def peep(c: Any, gate: str) -> Any:
        return nn.CMul(hidden)(c).annotate(name=f"peep_{gate}")

    i = nn.Sigmoid()(total("input", peep(prev_c, "input"))).annotate(name="input_gate")
    f = nn.Sigmoid()(total("forget", peep(prev_c, "forget"))).annotate(name="forget_gate")
    g = nn.Tanh()(total("cell")).annotate(name="cell_candidate")
    next_c = nn.CAddTable()([nn.CMulTable()([f, prev_c]),
                             nn.CMulTable()([i, g])]).annotate(name="next_c")
    o = nn.Sigmoid()(total("output", peep(next_c, "output"))).annotate(name="output_gate")
    next_h = nn.CMulTable()([o, nn.Tanh()(next_c)]).annotate(name="next_h")
    return nn.gModule([x, prev_h, prev_c], [next_h, next_c])


#: The user GRU cells by the name ``--gru-cell`` takes.
GRU_CELLS = {"gates": gru_cell, "stacked": stacked_gru_cell}
