"""The recurrent cells as nngraph recipes: one time step, built from nodes.

``lstm_cell`` is the nngraph LSTM of the Lua tutorial (and char-rnn's ``model/LSTM.lua`` before it
fused the four projections): every gate has its own input-to-hidden and hidden-to-hidden
``Linear``, summed by a ``CAddTable``::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)        input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)        forget gate
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)        output gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)           cell candidate
    c' = f * c + i * g
    h' = o * tanh(c')

``gru_cell`` is the gated recurrent unit with PyTorch ``nn.GRU``'s equations (the reset gate
multiplies the *projected* state, as cuDNN does, not the state before its projection)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)        reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)        update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))     new state candidate
    h' = (1 - z) * n + z * h                          written n + z * (h - n)

``rnn_cell`` is the plain recurrent cell ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ReLU, as
Keras' ``SimpleRNN(activation='relu')``). Both return nodes; ``make_lstm_cell`` and
``make_rnn_cell`` wrap them in a ``gModule`` with annotated input nodes.

Every node is annotated, so error messages, ``named_parameters`` (``i2h_forget.weight``) and
graph pictures read like the recipe.
"""
from __future__ import annotations

from typing import Any

from nngraph_py import nn
from nngraph_py.errors import InputError
from nngraph_py.graph.node import Node

__all__ = ["lstm_cell", "rnn_cell", "gru_cell", "make_lstm_cell", "make_rnn_cell",
           "make_gru_cell", "LSTM_GATES", "GRU_GATES", "RNN_ACTIVATIONS"]

#: The LSTM's gates in the order the recipe builds them; each owns ``i2h_<gate>`` and
#: ``h2h_<gate>``. (PyTorch stacks them as i, f, g, o: see :mod:`lstm.torch_compat`.)
LSTM_GATES = ("input", "forget", "output", "cell")

#: The GRU's gates in PyTorch's order (r, z, n); each owns ``i2h_<gate>`` and ``h2h_<gate>``.
GRU_GATES = ("reset", "update", "new")

#: The activations :func:`rnn_cell` accepts and the module each one builds.
RNN_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _require_node(value: Any, what: str, fn: str) -> None:
    if not isinstance(value, Node):
        hint = (" (did you forget its second call? nn.Identity()() makes an input node)"
                if isinstance(value, nn.Module) else "")
        raise InputError(f"{fn}: {what} must be a graph node, got {type(value).__name__}{hint}")


def _require_size(value: Any, what: str, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{fn}: {what} must be a positive integer, got {value!r}")
    return value


def lstm_cell(x: Node, prev_c: Node, prev_h: Node, input_size: int, rnn_size: int,
              prefix: str = "") -> tuple[Node, Node]:
    """One LSTM step as graph nodes (the Lua nngraph tutorial's ``LSTM(xt, prev_c, prev_h)``).

    Args:
        x: node carrying the input ``x_t``.
        prev_c: node carrying the previous cell state ``c_{t-1}``.
        prev_h: node carrying the previous hidden state ``h_{t-1}``.
        input_size: features of ``x_t``.
        rnn_size: features of the hidden and cell states.
        prefix: prepended to every node name, so that several cells can live in one gModule
            (e.g. ``"l2_"`` gives ``l2_i2h_forget``); names may not contain ``.``.

    Returns:
        ``(next_c, next_h)``: the nodes of ``c_t`` and ``h_t``.

    Shape:
        ``x``: ``(batch, input_size)``; ``prev_c``, ``prev_h``, ``next_c``, ``next_h``:
        ``(batch, rnn_size)``. Unbatched ``(features,)`` arrays work as well.

    Example:
        >>> from nngraph_py import nn
        >>> x, prev_c, prev_h = nn.Identity()(), nn.Identity()(), nn.Identity()()
        >>> next_c, next_h = lstm_cell(x, prev_c, prev_h, input_size=400, rnn_size=400)
        >>> cell = nn.gModule([x, prev_c, prev_h], [next_c, next_h])
        >>> sorted(name for name, _ in cell.named_parameters())[:2]
        ['h2h_cell.bias', 'h2h_cell.weight']
    """
    for value, what in ((x, "x"), (prev_c, "prev_c"), (prev_h, "prev_h")):
        _require_node(value, what, "lstm_cell")
    _require_size(input_size, "input_size", "lstm_cell")
    _require_size(rnn_size, "rnn_size", "lstm_cell")

    def name(text: str) -> str:
        return prefix + text

    def new_input_sum(gate: str) -> Node:
        # Lua's new_input_sum(): a fresh pair of projections per gate, summed.
        i2h = nn.Linear(input_size, rnn_size)(x).annotate(name=name(f"i2h_{gate}"))
        h2h = nn.Linear(rnn_size, rnn_size)(prev_h).annotate(name=name(f"h2h_{gate}"))
        return nn.CAddTable()([i2h, h2h]).annotate(name=name(f"{gate}_sum"))

    # The gates, in the tutorial's order.
    input_gate = nn.Sigmoid()(new_input_sum("input")).annotate(name=name("input_gate"))
    forget_gate = nn.Sigmoid()(new_input_sum("forget")).annotate(name=name("forget_gate"))
    output_gate = nn.Sigmoid()(new_input_sum("output")).annotate(name=name("output_gate"))
    cell_candidate = nn.Tanh()(new_input_sum("cell")).annotate(name=name("cell_candidate"))
    # c_t = f * c_{t-1} + i * g
    forget_c = nn.CMulTable()([forget_gate, prev_c]).annotate(name=name("forget_c"))
    input_g = nn.CMulTable()([input_gate, cell_candidate]).annotate(name=name("input_g"))
    next_c = nn.CAddTable()([forget_c, input_g]).annotate(name=name("next_c"))
    # h_t = o * tanh(c_t)
    tanh_c = nn.Tanh()(next_c).annotate(name=name("tanh_c"))
    next_h = nn.CMulTable()([output_gate, tanh_c]).annotate(name=name("next_h"))
    return next_c, next_h


def rnn_cell(x: Node, prev_h: Node, input_size: int, rnn_size: int, activation: str = "tanh",
             prefix: str = "") -> Node:
    """One plain (Elman) recurrent step as graph nodes: ``h_t = act(i2h(x_t) + h2h(h_{t-1}))``.

    Built like :func:`lstm_cell` with a single "gate": Keras' ``SimpleRNN``, PyTorch's ``RNNCell``.

    Args:
        x: node carrying the input ``x_t``.
        prev_h: node carrying the previous hidden state ``h_{t-1}``.
        input_size: features of ``x_t``.
        rnn_size: features of the hidden state.
        activation: ``"tanh"`` (default) or ``"relu"``.
        prefix: prepended to every node name (see :func:`lstm_cell`).

    Returns:
        The node of ``next_h``.

    Shape:
        ``x``: ``(batch, input_size)``; ``prev_h``, ``next_h``: ``(batch, rnn_size)``.

    Example:
        >>> from nngraph_py import nn
        >>> x, prev_h = nn.Identity()(), nn.Identity()()
        >>> cell = nn.gModule([x, prev_h], [rnn_cell(x, prev_h, 3, 5)])
    """
    _require_node(x, "x", "rnn_cell")
    _require_node(prev_h, "prev_h", "rnn_cell")
    _require_size(input_size, "input_size", "rnn_cell")
    _require_size(rnn_size, "rnn_size", "rnn_cell")
    if activation not in RNN_ACTIVATIONS:
        raise ValueError(f"rnn_cell: activation must be one of {sorted(RNN_ACTIVATIONS)}, "
                         f"got {activation!r}")
    i2h = nn.Linear(input_size, rnn_size)(x).annotate(name=prefix + "i2h")
    h2h = nn.Linear(rnn_size, rnn_size)(prev_h).annotate(name=prefix + "h2h")
    h_sum = nn.CAddTable()([i2h, h2h]).annotate(name=prefix + "h_sum")
    return RNN_ACTIVATIONS[activation]()(h_sum).annotate(name=prefix + "next_h")


def gru_cell(x: Node, prev_h: Node, input_size: int, rnn_size: int, prefix: str = "") -> Node:
    """One GRU step as graph nodes, with PyTorch ``nn.GRU``'s equations (see the module doc).

    No Lua Torch original in nn/nngraph (Element-Research/rnn's ``nn.GRU`` gates the state before
    its projection); the Linears are annotated ``i2h_reset``, ``h2h_reset``, ``i2h_update``,
    ``h2h_update``, ``i2h_new``, ``h2h_new`` so that names and :mod:`lstm.torch_compat` read
    like PyTorch's stacked ``(r, z, n)`` matrices.

    Args:
        x: node carrying the input ``x_t``.
        prev_h: node carrying the previous hidden state ``h_{t-1}``.
        input_size: features of ``x_t``.
        rnn_size: features of the hidden state.
        prefix: prepended to every node name (see :func:`lstm_cell`).

    Returns:
        The node of ``next_h``.

    Shape:
        ``x``: ``(batch, input_size)``; ``prev_h``, ``next_h``: ``(batch, rnn_size)``.

    Example:
        >>> from nngraph_py import nn
        >>> x, prev_h = nn.Identity()(), nn.Identity()()
        >>> cell = nn.gModule([x, prev_h], [gru_cell(x, prev_h, 3, 5)])
        >>> sorted(name for name, _ in cell.named_parameters())[:2]
        ['h2h_new.bias', 'h2h_new.weight']
    """
    _require_node(x, "x", "gru_cell")
    _require_node(prev_h, "prev_h", "gru_cell")
    _require_size(input_size, "input_size", "gru_cell")
    _require_size(rnn_size, "rnn_size", "gru_cell")

    def name(text: str) -> str:
        return prefix + text

    def projections(gate: str) -> tuple[Node, Node]:
        i2h = nn.Linear(input_size, rnn_size)(x).annotate(name=name(f"i2h_{gate}"))
        h2h = nn.Linear(rnn_size, rnn_size)(prev_h).annotate(name=name(f"h2h_{gate}"))
        return i2h, h2h

    def gate(which: str) -> Node:
        total = nn.CAddTable()(list(projections(which))).annotate(name=name(f"{which}_sum"))
        return nn.Sigmoid()(total).annotate(name=name(f"{which}_gate"))

    reset = gate("reset")
    update = gate("update")
    i2h_new, h2h_new = projections("new")
    # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    gated = nn.CMulTable()([reset, h2h_new]).annotate(name=name("reset_h2h_new"))
    new_sum = nn.CAddTable()([i2h_new, gated]).annotate(name=name("new_sum"))
    new = nn.Tanh()(new_sum).annotate(name=name("new_gate"))
    # h' = (1 - z) * n + z * h = n + z * (h - n)
    diff = nn.CSubTable()([prev_h, new]).annotate(name=name("h_minus_new"))
    keep = nn.CMulTable()([update, diff]).annotate(name=name("update_keep"))
    return nn.CAddTable()([new, keep]).annotate(name=name("next_h"))


def make_gru_cell(input_size: int, rnn_size: int) -> nn.gModule:
    """The GRU step as a module: ``[x, prev_h] -> next_h`` (see :func:`gru_cell`).

    Args:
        input_size: features of ``x``.
        rnn_size: features of the hidden state.

    Returns:
        A ``gModule`` whose input nodes are annotated ``x``, ``prev_h``.
    """
    x = nn.Identity()().annotate(name="x")
    prev_h = nn.Identity()().annotate(name="prev_h")
    return nn.gModule([x, prev_h], [gru_cell(x, prev_h, input_size, rnn_size)])


def make_lstm_cell(input_size: int, rnn_size: int) -> nn.gModule:
    """The LSTM step as a module: ``[x, prev_c, prev_h] -> [next_c, next_h]``.

    Args:
        input_size: features of ``x``.
        rnn_size: features of the states.

    Returns:
        A ``gModule`` whose input nodes are annotated ``x``, ``prev_c``, ``prev_h``.
    """
    x = nn.Identity()().annotate(name="x")
    prev_c = nn.Identity()().annotate(name="prev_c")
    prev_h = nn.Identity()().annotate(name="prev_h")
    next_c, next_h = lstm_cell(x, prev_c, prev_h, input_size, rnn_size)
    return nn.gModule([x, prev_c, prev_h], [next_c, next_h])


def make_rnn_cell(input_size: int, rnn_size: int, activation: str = "tanh") -> nn.gModule:
    """The plain recurrent step as a module: ``[x, prev_h] -> next_h``.

    Args:
        input_size: features of ``x``.
        rnn_size: features of the hidden state.
        activation: ``"tanh"`` or ``"relu"``.

    Returns:
        A ``gModule`` whose input nodes are annotated ``x``, ``prev_h``.
    """
    x = nn.Identity()().annotate(name="x")
    prev_h = nn.Identity()().annotate(name="prev_h")
    next_h = rnn_cell(x, prev_h, input_size, rnn_size, activation)
    return nn.gModule([x, prev_h], [next_h])
