"""The graph optimizer for recipe LSTMs: the user's cell graphs, run as fused sequence kernels.

The recipe cell (``lstm.cell.lstm_cell``) is eight small Linears and a dozen element-wise nodes
per step. Run node by node it pays Python and memory traffic for every one of them. This module
*recognises* the recipe in a cell gModule (by structure, not by names) and runs the whole
sequence with the same parameters and the same arithmetic, reorganised:

1. **Linear fusion** - the four i2h Linears read the same input and the four h2h Linears read the
   same state: each group becomes one matrix product over a stacked ``(4H, in)`` copy of their
   weights (gathered once per call; gradients scattered back once per call).
2. **Input projection hoisting** - the i2h products of all time steps are one ``(T*B, in)`` product
   before the recurrence, with both biases folded in.
3. **Element-wise fusion** - the gate pre-activations live side by side in one ``(B, 4H)`` row,
   ordered ``[input, forget, output | candidate]``: one sigmoid pass over the three sigmoid gates
   and one tanh pass over the candidate, everything else in place with ``out=``.
4. **BLAS-friendly shapes** - the recurrent weight is kept twice, as stacked and as a contiguous
   transpose, and for small batches the per-step products run feature-major
   (:data:`FEATURE_MAJOR_BELOW`), the orientation BLAS computes fastest.
5. **Static buffers** - activations, cell states and gradients live in buffers allocated once per
   ``(T, batch)`` shape and reused across steps and calls; backward keeps only what it needs
   (activated gates, cell states, ``tanh(c)``, outputs).
6. **Batched weight gradients** - ``dW`` of each layer is one product over all steps, into
   buffers kept across calls.
7. **Fused step kernels (optional)** - with numba installed, each step's element-wise work, forward
   and backward, is one compiled loop (``lstm.accel``) instead of about ten array passes; chosen
   for float32 NumPy arrays, the NumPy passes otherwise (float64, CuPy, the strict backend).

The parameters stay those of the user's Linears (inspection, names, checkpoints unchanged) and
results equal the plain graph's within float tolerance (``tests/lstm/test_lstm_fast.py``). A cell
that does not match the recipe raises :class:`RecipeMismatch`; callers fall back to the graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from nngraph_py import backend

from . import accel as _accel
from nngraph_py.graph.gmodule import gModule
from nngraph_py.nn import CAddTable, CMulTable, Linear, Sigmoid, Tanh

__all__ = ["RecipeMismatch", "RecipeCell", "match_lstm_cell", "FusedLSTM"]


class RecipeMismatch(ValueError):
    """A cell graph is not the LSTM recipe; the message says which part differs."""


@dataclass
class RecipeCell:
    """The eight Linears of one recipe cell, in fused gate order (input, forget, output, cell).

    Attributes:
        i2h: the Linears reading ``x``.
        h2h: the Linears reading ``prev_h``.
        input_size, hidden_size: the cell's sizes.
    """

    i2h: list[Linear]
    h2h: list[Linear]
    input_size: int
    hidden_size: int


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise RecipeMismatch(what)


def match_lstm_cell(cell: gModule) -> RecipeCell:
    """Recognise the nngraph LSTM recipe in ``cell`` = ``gModule([x, prev_c, prev_h], [next_c, next_h])``.

    Gates are found by their role in the graph (the sigmoid multiplying ``prev_c`` is the forget
    gate, ...), so annotations do not matter.

    Raises:
        RecipeMismatch: naming the first part of the graph that differs from the recipe.
    """
    _expect(isinstance(cell, gModule), "not a gModule")
    _expect(cell.n_inputs == 3 and cell.n_outputs == 2, "expected inputs [x, prev_c, prev_h] and outputs [next_c, next_h]")
    x, prev_c, prev_h = cell.input_nodes
    next_c, next_h = cell.output_nodes
    _expect(len(cell.nodes) == 24, f"expected the recipe's 24 nodes, found {len(cell.nodes)}")

    def gate(node: Any, kind: type) -> tuple[Linear, Linear]:
        _expect(isinstance(node.module, kind) and not node.table, f"{node.label()}: expected {kind.__name__}")
        total = node.inputs[0]
        _expect(isinstance(total.module, CAddTable) and len(total.inputs) == 2,
                f"{total.label()}: expected CAddTable of the i2h and h2h Linears")
        a, b = total.inputs
        _expect(isinstance(a.module, Linear) and isinstance(b.module, Linear), f"{total.label()}: expected two Linears")
        _expect(a.inputs == [x] and b.inputs == [prev_h], f"{total.label()}: expected [Linear(x), Linear(prev_h)]")
        return a.module, b.module

    _expect(isinstance(next_c.module, CAddTable) and len(next_c.inputs) == 2, "next_c: expected CAddTable of two products")
    keep, write = next_c.inputs
    _expect(isinstance(keep.module, CMulTable) and len(keep.inputs) == 2 and keep.inputs[1] is prev_c,
            "next_c: expected CMulTable([forget_gate, prev_c]) first")
    _expect(isinstance(write.module, CMulTable) and len(write.inputs) == 2, "next_c: expected CMulTable([input_gate, candidate]) second")
    forget = gate(keep.inputs[0], Sigmoid)
    inp = gate(write.inputs[0], Sigmoid)
    cand = gate(write.inputs[1], Tanh)
    _expect(isinstance(next_h.module, CMulTable) and len(next_h.inputs) == 2, "next_h: expected CMulTable([output_gate, Tanh(next_c)])")
    tanh_c = next_h.inputs[1]
    _expect(isinstance(tanh_c.module, Tanh) and tanh_c.inputs == [next_c], "next_h: expected Tanh(next_c) second")
    out = gate(next_h.inputs[0], Sigmoid)
    i2h = [inp[0], forget[0], out[0], cand[0]]
    h2h = [inp[1], forget[1], out[1], cand[1]]
    hidden = i2h[0].out_features
    insize = i2h[0].in_features
    for lin in i2h:
        _expect(lin.in_features == insize and lin.out_features == hidden, "i2h Linears of different sizes")
    for lin in h2h:
        _expect(lin.in_features == hidden and lin.out_features == hidden, "h2h Linears must be (hidden -> hidden)")
    return RecipeCell(i2h=i2h, h2h=h2h, input_size=insize, hidden_size=hidden)


class _Layer:
    """Stacked weights and the per-shape buffers of one layer."""

    def __init__(self, cell: RecipeCell):
        self.cell = cell
        self.buffers: dict[tuple, dict[str, Any]] = {}
        self.w_ih = self.w_hh = self.w_hh_t = self.bias = None
        self.d_w_ih = self.d_w_hh = None  # weight-gradient products, reused across calls

    def gather(self, xp: Any, dtype: Any) -> None:
        """Copy the eight Linears' weights into the fused arrays (once per call)."""
        H, cell = self.cell.hidden_size, self.cell
        if self.w_ih is None or backend.get_array_module(self.w_ih) is not xp or self.w_ih.dtype != dtype:
            self.w_ih = xp.empty((4 * H, cell.input_size), dtype=dtype)
            self.w_hh = xp.empty((4 * H, H), dtype=dtype)
            # A contiguous transposed copy for the per-step forward product (BLAS is 10-20 %
            # faster on it than on the transposed view); backward reads ``w_hh`` itself.
            self.w_hh_t = xp.empty((H, 4 * H), dtype=dtype)
            self.bias = xp.empty((4 * H,), dtype=dtype)
            self.d_w_ih = xp.empty_like(self.w_ih)
            self.d_w_hh = xp.empty_like(self.w_hh)
            self.buffers.clear()
        for k in range(4):
            rows = slice(k * H, (k + 1) * H)
            self.w_ih[rows] = cell.i2h[k].weight
            self.w_hh[rows] = cell.h2h[k].weight
            self.w_hh_t[:, rows] = cell.h2h[k].weight.T
            b = self.bias[rows]
            b[...] = 0
            for lin in (cell.i2h[k], cell.h2h[k]):
                if lin.has_bias:
                    b += lin.bias

    def buf(self, xp: Any, T: int, B: int, in_size: int, dtype: Any) -> dict[str, Any]:
        key = (T, B)
        got = self.buffers.get(key)
        if got is None:
            H = self.cell.hidden_size
            got = {
                "gates": xp.empty((T, B, 4 * H), dtype=dtype),   # activated i, f, o, g
                "c": xp.empty((T, B, H), dtype=dtype),
                "tc": xp.empty((T, B, H), dtype=dtype),          # tanh(c)
                "h": xp.empty((T, B, H), dtype=dtype),           # the layer's outputs
                "tmp4": xp.empty((B, 4 * H), dtype=dtype),
                "tmp3": xp.empty((B, 3 * H), dtype=dtype),
                "tmp": xp.empty((B, H), dtype=dtype),
                "tmp2": xp.empty((B, H), dtype=dtype),
                "dgates": xp.empty((T, B, 4 * H), dtype=dtype),
                "dx": xp.empty((T, B, in_size), dtype=dtype),
                "dh": xp.empty((B, H), dtype=dtype),
                "dc": xp.empty((B, H), dtype=dtype),
                "zeros": xp.zeros((B, 4 * H), dtype=dtype),    # a missing state, for kernels
                "tmp4t": xp.empty((4 * H, B), dtype=dtype),     # feature-major products
                "dht": xp.empty((H, B), dtype=dtype),
            }
            if len(self.buffers) > 8:  # many different lengths: keep memory bounded
                self.buffers.clear()
            self.buffers[key] = got
        return got


#: Below this batch size the per-step recurrent products are computed feature-major
#: (``W_hh @ h.T``, ``W_hh.T @ dg.T``): BLAS runs a (4H x H) by (H x B) product with a small B
#: 1.3-1.8x faster than the (B x H) by (H x 4H) one (OpenBLAS, B=32, H=256); at B=100 the two
#: are even. A fixed rule, so that results do not depend on timings.
FEATURE_MAJOR_BELOW = 64


def _sigmoid_(xp: Any, a: Any) -> None:
    """In-place logistic function, overflow-free (``0.5 * tanh(0.5 a) + 0.5``)."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _step_forward(xp: Any, g: Any, r: Any, c_prev: Any, c: Any, tc: Any, h: Any, tmp: Any) -> None:
    """One step's element-wise work in array passes (same contract as ``accel.step_forward``;
    ``r`` and ``c_prev`` may be None for zeros)."""
    H = c.shape[1]
    if r is not None:
        g += r
    _sigmoid_(xp, g[:, :3 * H])
    xp.tanh(g[:, 3 * H:], out=g[:, 3 * H:])
    i, f, o, cand = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
    xp.multiply(i, cand, out=c)
    if c_prev is not None:
        xp.multiply(f, c_prev, out=tmp)
        c += tmp
    xp.tanh(c, out=tc)
    xp.multiply(o, tc, out=h)


def _step_backward(xp: Any, g: Any, tc: Any, c_prev: Any, dh: Any, dc: Any, dg: Any,
                   bufs: dict[str, Any]) -> None:
    """One step's element-wise gradients in array passes (as ``accel.step_backward`` with the
    gradient from above already added to ``dh``; ``c_prev`` may be None for zeros)."""
    H = tc.shape[1]
    tmp, tmp2, tmp3 = bufs["tmp"], bufs["tmp2"], bufs["tmp3"]
    i, f, o, cand = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
    di, df, do, dcand = dg[:, :H], dg[:, H:2 * H], dg[:, 2 * H:3 * H], dg[:, 3 * H:]
    # do = dh * tanh(c); dc += dh * o * (1 - tanh(c)^2)
    xp.multiply(dh, tc, out=do)
    xp.multiply(tc, tc, out=tmp)
    xp.subtract(1.0, tmp, out=tmp)
    tmp *= o
    tmp *= dh
    dc += tmp
    xp.multiply(dc, cand, out=di)
    xp.multiply(dc, i, out=dcand)
    if c_prev is not None:
        xp.multiply(dc, c_prev, out=df)
    else:
        df[...] = 0
    dc *= f  # the carry to step t-1
    # Through the activations: sigmoid' = y (1 - y), tanh' = 1 - y^2.
    ds = dg[:, :3 * H]
    ds *= g[:, :3 * H]
    xp.subtract(1.0, g[:, :3 * H], out=tmp3)
    ds *= tmp3
    xp.multiply(cand, cand, out=tmp2)
    xp.subtract(1.0, tmp2, out=tmp2)
    dcand *= tmp2


class FusedLSTM:
    """Runs stacked recipe cells over a whole sequence with fused kernels (see the module doc).

    Args:
        cells: one recipe cell gModule per layer (the prototypes whose Linears hold the weights).
        dropout: dropout probability between layers (not after the last), as PyTorch.
        kernels: ``"auto"`` runs the numba step kernels (``lstm.accel``) on float32 NumPy arrays
            when numba is installed; ``"numpy"`` always runs the array passes; ``"numba"``
            requires numba (and still uses array passes where the kernels do not apply).

    The arrays are time-major: ``x`` is ``(T, batch, input)``, states ``(layers, batch, hidden)``.
    """

    def __init__(self, cells: Sequence[gModule], dropout: float = 0.0, kernels: str = "auto"):
        if kernels not in ("auto", "numpy", "numba"):
            raise ValueError(f"kernels must be 'auto', 'numpy' or 'numba', got {kernels!r}")
        if kernels == "numba" and not _accel.available():
            raise RuntimeError("kernels='numba' needs numba: pip install 'nngraph_py[accel]' "
                               "(and NNGRAPH_PY_NUMBA not set to 0)")
        self.layers = [_Layer(match_lstm_cell(c)) for c in cells]
        self.kernels = kernels
        self.dropout = float(dropout)
        self._masks: list[Any] = []
        self._x = None
        self._h0 = self._c0 = None
        self._backward_done = False
        self._fused_steps = False

    @property
    def hidden_size(self) -> int:
        """Hidden size of every layer."""
        return self.layers[0].cell.hidden_size

    def uses_kernels(self, x: Any) -> bool:
        """Whether a call on ``x`` runs the compiled step kernels (see ``kernels``)."""
        return (self.kernels != "numpy" and _accel.available() and backend.device_of(x) == "cpu"
                and x.dtype == "float32")

    def forward(self, x: Any, h0: Any, c0: Any, train: bool = True) -> tuple[Any, Any, Any]:
        """Outputs of the last layer ``(T, B, H)`` and the final ``h_n``, ``c_n`` ``(L, B, H)``.

        ``h0``/``c0`` may be None for zeros. The returned outputs are an internal buffer reused
        by the next call: copy it to keep it.
        """
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        dtype = x.dtype
        self._x, self._h0, self._c0 = x, h0, c0
        self._masks = []
        self._backward_done = False
        fused = self._fused_steps = self.uses_kernels(x)
        kern = _accel.kernels() if fused else None
        feature_major = B < FEATURE_MAJOR_BELOW
        h_n = xp.empty((len(self.layers), B, H), dtype=dtype)
        c_n = xp.empty((len(self.layers), B, H), dtype=dtype)
        inp = x
        for l, layer in enumerate(self.layers):
            layer.gather(xp, dtype)
            bufs = layer.buf(xp, T, B, int(inp.shape[2]), dtype)
            gates, c, tc, h, tmp4 = bufs["gates"], bufs["c"], bufs["tc"], bufs["h"], bufs["tmp4"]
            # All steps' input projections in one product, both biases folded in.
            xp.matmul(inp.reshape(T * B, -1), layer.w_ih.T, out=gates.reshape(T * B, 4 * H))
            gates += layer.bias
            w_hh_t = layer.w_hh_t
            h_prev = None if h0 is None else h0[l]
            c_prev = None if c0 is None else c0[l]
            zeros, tmp4t = bufs["zeros"], bufs["tmp4t"]
            for t in range(T):
                r = None
                if h_prev is not None and feature_major:
                    xp.matmul(layer.w_hh, h_prev.T, out=tmp4t)
                    gates[t] += tmp4t.T
                elif h_prev is not None:
                    r = xp.matmul(h_prev, w_hh_t, out=tmp4)
                if fused:
                    kern.step_forward(gates[t], zeros if r is None else r,
                                      zeros[:, :H] if c_prev is None else c_prev, c[t], tc[t], h[t])
                else:
                    _step_forward(xp, gates[t], r, c_prev, c[t], tc[t], h[t], bufs["tmp"])
                h_prev, c_prev = h[t], c[t]
            h_n[l] = h[T - 1]
            c_n[l] = c[T - 1]
            inp = h
            if train and self.dropout > 0 and l < len(self.layers) - 1:
                keep = 1.0 - self.dropout
                mask = (xp.random.random_sample(h.shape) < keep).astype(dtype)
                mask *= 1.0 / keep
                self._masks.append(mask)
                inp = h * mask
            else:
                self._masks.append(None)
            layer.input = inp
        return inp, h_n, c_n

    def backward(self, grad_out: Any, grad_h_n: Any = None,
                 grad_c_n: Any = None) -> tuple[Any, Any, Any]:
        """BPTT through the last :meth:`forward` (Lua's ``updateGradInput``).

        Keeps each layer's gate gradients for :meth:`acc_grad_parameters`.

        Args:
            grad_out: gradient w.r.t. the outputs ``(T, B, H)`` (None for zeros).
            grad_h_n, grad_c_n: gradients w.r.t. the final states ``(L, B, H)`` (None for zeros).
        Returns:
            ``(grad_x, grad_h0, grad_c0)``; ``grad_x`` is an internal buffer reused next call.
        """
        x = self._x
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        L = len(self.layers)
        grad_h0 = xp.empty((L, B, H), dtype=x.dtype)
        grad_c0 = xp.empty((L, B, H), dtype=x.dtype)
        d_above = grad_out
        for l in range(L - 1, -1, -1):
            layer = self.layers[l]
            bufs = layer.buffers[(T, B)]
            gates, c, tc = bufs["gates"], bufs["c"], bufs["tc"]
            dgates, dh, dc = bufs["dgates"], bufs["dh"], bufs["dc"]
            dh[...] = 0 if grad_h_n is None else grad_h_n[l]
            dc[...] = 0 if grad_c_n is None else grad_c_n[l]
            c0 = None if self._c0 is None else self._c0[l]
            fused = self._fused_steps
            kern = _accel.kernels() if fused else None
            feature_major, dht = B < FEATURE_MAJOR_BELOW, bufs["dht"]
            zeros = bufs["zeros"][:, :H]
            if fused and d_above is not None and not d_above.flags.c_contiguous:
                d_above = xp.ascontiguousarray(d_above)
            for t in range(T - 1, -1, -1):
                c_prev = c[t - 1] if t > 0 else c0
                if fused:
                    kern.step_backward(gates[t], tc[t], zeros if c_prev is None else c_prev,
                                       zeros if d_above is None else d_above[t], dh, dc, dgates[t])
                else:
                    if d_above is not None:
                        dh += d_above[t]
                    _step_backward(xp, gates[t], tc[t], c_prev, dh, dc, dgates[t], bufs)
                if feature_major:  # the carry to step t-1
                    xp.matmul(layer.w_hh_t, dgates[t].T, out=dht)
                    dh[...] = dht.T
                else:
                    xp.matmul(dgates[t], layer.w_hh, out=dh)
            grad_h0[l] = dh
            grad_c0[l] = dc
            dx = bufs["dx"]
            xp.matmul(dgates.reshape(T * B, 4 * H), layer.w_ih, out=dx.reshape(T * B, -1))
            if l > 0 and self._masks[l - 1] is not None:
                dx *= self._masks[l - 1]
            d_above = dx
        self._backward_done = True
        return d_above, grad_h0, grad_c0

    def acc_grad_parameters(self, scale: float = 1.0) -> None:
        """Add ``scale`` times the weight gradients of the last :meth:`backward` to the user's
        Linears (Lua's ``accGradParameters``); one product per weight over all time steps."""
        if not self._backward_done:
            raise RuntimeError("acc_grad_parameters called before backward")
        x = self._x
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        for l, layer in enumerate(self.layers):
            inp = x if l == 0 else self.layers[l - 1].input
            bufs = layer.buffers[(T, B)]
            dgates, h = bufs["dgates"], bufs["h"]
            dg_all = dgates.reshape(T * B, 4 * H)
            d_w_ih, d_w_hh = layer.d_w_ih, layer.d_w_hh
            xp.matmul(dg_all.T, inp.reshape(T * B, -1), out=d_w_ih)
            if T > 1:
                xp.matmul(dgates[1:].reshape((T - 1) * B, 4 * H).T,
                          h[:T - 1].reshape((T - 1) * B, H), out=d_w_hh)
            else:
                d_w_hh[...] = 0
            if self._h0 is not None:
                d_w_hh += xp.matmul(dgates[0].T, self._h0[l])
            d_b = dg_all.sum(axis=0)
            if scale != 1.0:
                d_w_ih *= scale
                d_w_hh *= scale
                d_b *= scale
            cell = layer.cell
            for k in range(4):
                rows = slice(k * H, (k + 1) * H)
                cell.i2h[k].grad_weight += d_w_ih[rows]
                cell.h2h[k].grad_weight += d_w_hh[rows]
                for lin in (cell.i2h[k], cell.h2h[k]):
                    if lin.has_bias:
                        lin.grad_bias += d_b[rows]
