"""Models the inspection tests share: the seed's mlp, the LSTM recipe cell, a nested graph."""
from __future__ import annotations

from nngraph_py import nn

try:
    from lstm.cell import lstm_cell as _lstm_cell
except ImportError:  # the lstm package is written concurrently: fall back to the recipe itself
    _lstm_cell = None

GATES = ("input", "forget", "output", "cell")


def seed_mlp() -> nn.gModule:
    """The tutorial's mlp: z = x1 + x2 * Linear(20, 10)(x3)."""
    x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(20, 10)(x3)])])
    return nn.gModule([x1, x2, x3], [z])


def _recipe(x, prev_c, prev_h, input_size, rnn_size):
    """The Lua tutorial's LSTM, annotated as lstm.cell.lstm_cell does."""
    def new_input_sum(gate):
        i2h = nn.Linear(input_size, rnn_size)(x).annotate(name=f"i2h_{gate}")
        h2h = nn.Linear(rnn_size, rnn_size)(prev_h).annotate(name=f"h2h_{gate}")
        return nn.CAddTable()([i2h, h2h]).annotate(name=f"{gate}_sum")

    input_gate = nn.Sigmoid()(new_input_sum("input")).annotate(name="input_gate")
    forget_gate = nn.Sigmoid()(new_input_sum("forget")).annotate(name="forget_gate")
    output_gate = nn.Sigmoid()(new_input_sum("output")).annotate(name="output_gate")
    cell_candidate = nn.Tanh()(new_input_sum("cell")).annotate(name="cell_candidate")
    forget_c = nn.CMulTable()([forget_gate, prev_c]).annotate(name="forget_c")
    input_g = nn.CMulTable()([input_gate, cell_candidate]).annotate(name="input_g")
    next_c = nn.CAddTable()([forget_c, input_g]).annotate(name="next_c")
    tanh_c = nn.Tanh()(next_c).annotate(name="tanh_c")
    next_h = nn.CMulTable()([output_gate, tanh_c]).annotate(name="next_h")
    return next_c, next_h


def lstm_cell_model(input_size: int = 5, rnn_size: int = 4) -> nn.gModule:
    """``[x, prev_c, prev_h] -> [next_c, next_h]`` from the recipe (8 Linear)."""
    x = nn.Identity()().annotate(name="x")
    prev_c = nn.Identity()().annotate(name="prev_c")
    prev_h = nn.Identity()().annotate(name="prev_h")
    build = _lstm_cell or _recipe
    next_c, next_h = build(x, prev_c, prev_h, input_size, rnn_size)
    return nn.gModule([x, prev_c, prev_h], [next_c, next_h])


def nested_model() -> nn.gModule:
    """An outer graph holding an inner gModule node ``block`` (its Linear is ``block.proj``)."""
    x, y = nn.Identity()(), nn.Identity()()
    inner = nn.gModule([x, y], [nn.Linear(3, 3)(x).annotate(name="proj"), nn.Tanh()(y)])
    u, v = nn.Identity()(), nn.Identity()()
    first, second = inner([u, v]).annotate(name="block").split(2)
    return nn.gModule([u, v], [nn.CMulTable()([first, second])])


def shared_model() -> nn.gModule:
    """Two Linear nodes sharing one weight and bias (a clone, as char-rnn's time steps)."""
    a, b = nn.Identity()(), nn.Identity()()
    lin = nn.Linear(3, 2)
    twin = lin.clone("weight", "bias", "grad_weight", "grad_bias")
    out = nn.CAddTable()([lin(a).annotate(name="left"), twin(b).annotate(name="right")])
    return nn.gModule([a, b], [out])
