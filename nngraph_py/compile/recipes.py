"""The graph optimizer for recipe LSTMs and GRUs: the user's cell graphs, run as fused sequence
kernels.

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
   and backward, is one compiled loop (``nngraph_py.compile.accel``) instead of about ten array
   passes; chosen for float32 NumPy arrays (float64 too with ``kernels="numba"``), the NumPy
   passes otherwise (CuPy, the strict backend).
8. **Inference** - ``forward(..., keep=False)`` (evaluate mode) keeps nothing for backward: no
   per-step gates or cell states, one step's scratch reused over time, and with the kernels the
   biases added inside the step loop (``step_infer``, ``gru_step_infer``, which evaluate the
   rational tanh in float32). The LSTM runs one product per step of ``[x_t, h]`` by the stacked
   transposed weights instead of hoisting the input projection (no ``(T, B, 4H)`` buffer to write
   and read back); the GRU keeps the hoisted projection, activated in place. ``backward``
   afterwards raises :class:`~nngraph_py.errors.GraphError`.

Each executor runs one cell (one layer, one direction) over a time-major sequence:
:class:`FusedLSTMLayer` for ``lstm.cell.lstm_cell``, :class:`FusedGRULayer` for
``lstm.cell.gru_cell`` (all of the above but the feature-major products).
Stacking, the reverse direction (the cell run over the reversed sequence) and dropout between
layers are :class:`lstm.model.Recurrent`'s. Lengths arrive as a ``(T, B, 1)`` mask of the valid
steps: at a padded step the state is kept (``h[t] = h[t-1]``) and the output is zero; in
backward the gradient of the state passes such a step unchanged and the step's gate gradients
are zero, so padded steps add nothing to the weight gradients.

The parameters stay those of the user's Linears (inspection, names, checkpoints unchanged) and
results equal the plain graph's within float tolerance (``tests/lstm/test_lstm_fast.py``). A cell
that does not match the recipe raises :class:`RecipeMismatch`; callers fall back to the graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .. import backend
from ..errors import GraphError
from ..graph.gmodule import gModule
from ..nn import CAddTable, CMulTable, CSubTable, Linear, Sigmoid, Tanh
from . import accel as _accel

__all__ = ["RecipeMismatch", "RecipeCell", "match_lstm_cell", "match_gru_cell", "FusedLSTMLayer",
           "FusedGRULayer", "FusedLSTM"]


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


def _contiguous(xp: Any, x: Any) -> Any:
    return xp.ascontiguousarray(x)


def _check_kernels(kernels: str) -> None:
    if kernels not in ("auto", "numpy", "numba"):
        raise ValueError(f"kernels must be 'auto', 'numpy' or 'numba', got {kernels!r}")
    if kernels == "numba" and not _accel.available():
        raise RuntimeError("kernels='numba' needs numba: pip install 'nngraph_py[accel]' "
                           "(and NNGRAPH_PY_NUMBA not set to 0)")


def _uses_kernels(kernels: str, x: Any) -> bool:
    """The numba step kernels run on CPU NumPy arrays: float32 (``"auto"``, ``"numba"``) and
    float64 (``"numba"`` only: exact ``math.tanh``, which LLVM does not vectorize)."""
    if kernels == "numpy" or not _accel.available() or backend.device_of(x) != "cpu":
        return False
    dtype = str(x.dtype)
    return dtype == "float32" or (kernels == "numba" and dtype == "float64")


class _KeptState:
    """What the last forward of an executor kept: the ``keep`` flag and the checks of backward."""

    _kept: bool | None = None  # None: no forward since the executor was built or invalidated
    _backward_done = False

    def _require_kept(self, what: str) -> None:
        name = type(self).__name__
        if self._kept is None:
            raise GraphError(f"{name}: {what} before forward (or after invalidate()): "
                             f"call forward(x, state0, keep=True) first")
        if not self._kept:
            raise GraphError(f"{name}: {what} after a forward with keep=False (evaluate mode): "
                             f"the last forward kept nothing for backward; forward again with "
                             f"keep=True (training mode)")

    def _require_backward(self) -> None:
        self._require_kept("acc_grad_parameters")
        if not self._backward_done:
            raise GraphError(f"{type(self).__name__}: acc_grad_parameters called before backward")


class FusedLSTMLayer(_KeptState):
    """One recipe LSTM cell run over a whole sequence with fused kernels (see the module doc).

    A stacked or bidirectional :class:`lstm.LSTM` holds one per layer and direction; the reverse
    direction hands it the time-reversed sequence. Implements
    :class:`nngraph_py.compile.sequence.SequenceExecutor`.

    Args:
        cell: a recipe cell gModule (the prototype whose Linears hold the weights).
        kernels: ``"auto"`` runs the numba step kernels (``nngraph_py.compile.accel``) on
            float32 NumPy arrays when numba is installed; ``"numpy"`` always runs the array
            passes; ``"numba"`` requires numba and runs the kernels on float32 and float64 NumPy
            arrays (array passes elsewhere: CuPy, the strict backend).

    The arrays are time-major: ``x`` is ``(T, batch, input)``, states ``(batch, hidden)``, the
    mask of valid steps ``(T, batch, 1)`` booleans (None: all valid). A forward with
    ``keep=False`` (inference) keeps nothing for backward: one product of ``[x_t, h]`` per step
    into a one-step gate buffer, the cell state in two one-step buffers, and with the kernels
    the biases added inside the step loop (item 8 of the module docstring).
    """

    kind = "recipe-lstm"

    def __init__(self, cell: gModule, kernels: str = "auto"):
        _check_kernels(kernels)
        self.cell = match_lstm_cell(cell)
        self.kernels = kernels
        self.buffers: dict[tuple, dict[str, Any]] = {}
        self.w_ih = self.w_ih_t = self.w_hh = self.w_hh_t = self.w_cat_t = self.bias = None
        self.d_w_ih = self.d_w_hh = None  # weight-gradient products, reused across calls
        self._x = self._h0 = self._c0 = self._mask = None
        self._fused_steps = False

    @property
    def hidden_size(self) -> int:
        """The cell's hidden size."""
        return self.cell.hidden_size

    def uses_kernels(self, x: Any) -> bool:
        """Whether a call on ``x`` runs the compiled step kernels (see ``kernels``)."""
        return _uses_kernels(self.kernels, x)

    def invalidate(self) -> None:
        """Drop the gathered weights, the buffers and what the last forward kept (the cell's
        arrays, device, dtype or mode changed); the next forward gathers and plans again."""
        self.w_ih = self.w_ih_t = self.w_hh = self.w_hh_t = self.w_cat_t = self.bias = None
        self.d_w_ih = self.d_w_hh = None
        self.buffers.clear()
        self._x = self._h0 = self._c0 = self._mask = None
        self._kept, self._backward_done = None, False

    def gather(self, xp: Any, dtype: Any, keep: bool = True) -> None:
        """Copy the eight Linears' weights into the fused arrays (once per call; without
        ``keep`` only what a forward reads, not the untransposed copies backward reads)."""
        H, cell = self.cell.hidden_size, self.cell
        if self.w_ih is None or backend.get_array_module(self.w_ih) is not xp or self.w_ih.dtype != dtype:
            I = cell.input_size
            self.w_ih = xp.empty((4 * H, I), dtype=dtype)
            self.w_hh = xp.empty((4 * H, H), dtype=dtype)
            # Contiguous transposed copies for the forward products (BLAS is 10-20 % faster on
            # them than on transposed views; 1.5-2x for the hoisted input projection), stacked:
            # inference runs one product of ``[x_t, h]`` by ``[W_ih; W_hh].T`` per step.
            # Backward reads ``w_ih`` and ``w_hh`` themselves.
            self.w_cat_t = xp.empty((I + H, 4 * H), dtype=dtype)
            self.w_ih_t, self.w_hh_t = self.w_cat_t[:I], self.w_cat_t[I:]
            self.bias = xp.empty((4 * H,), dtype=dtype)
            self.d_w_ih = self.d_w_hh = None
            self.buffers.clear()
        for k in range(4):
            rows = slice(k * H, (k + 1) * H)
            if keep:
                self.w_ih[rows] = cell.i2h[k].weight
                self.w_hh[rows] = cell.h2h[k].weight
            self.w_ih_t[:, rows] = cell.i2h[k].weight.T
            self.w_hh_t[:, rows] = cell.h2h[k].weight.T
            b = self.bias[rows]
            b[...] = 0
            for lin in (cell.i2h[k], cell.h2h[k]):
                if lin.has_bias:
                    b += lin.bias

    def buf(self, xp: Any, T: int, B: int, in_size: int, dtype: Any,
            keep: bool = True) -> dict[str, Any]:
        """The buffers of a ``(T, B)`` call, planned once per ``(T, B, dtype, keep)`` and reused:
        with ``keep`` what backward reads (every step's gates and states) and the gradients;
        without, the outputs and one step's scratch."""
        key = (T, B, str(dtype), keep)
        got = self.buffers.get(key)
        if got is None:
            H = self.cell.hidden_size
            got = {
                "tmp4": xp.empty((B, 4 * H), dtype=dtype),
                "tmp": xp.empty((B, H), dtype=dtype),
                "zeros": xp.zeros((B, 4 * H), dtype=dtype),    # a missing state, for kernels
                "zh": xp.zeros((B, H), dtype=dtype),
                "h": xp.empty((T, B, H), dtype=dtype),          # the carried h of each step
            }
            if keep:
                got.update({
                    "gates": xp.empty((T, B, 4 * H), dtype=dtype),  # activated i, f, o, g
                    "c": xp.empty((T, B, H), dtype=dtype),
                    "tc": xp.empty((T, B, H), dtype=dtype),     # tanh(c)
                    "tmp4t": xp.empty((4 * H, B), dtype=dtype),  # feature-major products
                    "tmp3": xp.empty((B, 3 * H), dtype=dtype),
                    "tmp2": xp.empty((B, H), dtype=dtype),
                    "dgates": xp.empty((T, B, 4 * H), dtype=dtype),
                    "dx": xp.empty((T, B, in_size), dtype=dtype),
                    "dh": xp.empty((B, H), dtype=dtype),
                    "dc": xp.empty((B, H), dtype=dtype),
                    "dht": xp.empty((H, B), dtype=dtype),
                })
            else:
                got.update({
                    "xh": xp.empty((B, in_size + H), dtype=dtype),  # [x_t, h_{t-1}]
                    "c2": xp.empty((2, B, H), dtype=dtype),     # the cell state, two steps
                    "tc": xp.empty((B, H), dtype=dtype),
                })
            if len(self.buffers) > 8:  # many different lengths: keep memory bounded
                self.buffers.clear()
            self.buffers[key] = got
        return got

    def forward(self, x: Any, state0: Sequence[Any], mask: Any = None,
                keep: bool = True) -> tuple[Any, list[Any]]:
        """``(outputs (T, B, H), [h_n, c_n])`` from ``x`` and ``state0 = [h0, c0]`` (None for
        zeros). Where ``mask`` is False the state is kept and the output is zero. With
        ``keep=False`` nothing is kept for :meth:`backward` (inference).

        The returned outputs may be an internal buffer reused by the next call: copy it to keep it.
        """
        xp = backend.get_array_module(x)
        x = _contiguous(xp, x)
        h0, c0 = state0
        T, B = int(x.shape[0]), int(x.shape[1])
        dtype = x.dtype
        self._backward_done = False
        self._kept = keep
        fused = self._fused_steps = self.uses_kernels(x)
        kern = _accel.kernels() if fused else None
        self.gather(xp, dtype, keep)
        bufs = self.buf(xp, T, B, int(x.shape[2]), dtype, keep)
        if keep:
            self._x, self._h0, self._c0, self._mask = x, h0, c0, mask
            return self._forward_kept(xp, kern, bufs, x, h0, c0, mask)
        self._x = self._h0 = self._c0 = self._mask = None
        return self._forward_inference(xp, kern, bufs, x, h0, c0, mask)

    def _forward_kept(self, xp: Any, kern: Any, bufs: dict[str, Any], x: Any, h0: Any, c0: Any,
                      mask: Any) -> tuple[Any, list[Any]]:
        T, B, H = int(x.shape[0]), int(x.shape[1]), self.hidden_size
        feature_major = B < FEATURE_MAJOR_BELOW
        gates, c, tc, h, tmp4 = bufs["gates"], bufs["c"], bufs["tc"], bufs["h"], bufs["tmp4"]
        # All steps' input projections in one product, both biases folded in.
        xp.matmul(x.reshape(T * B, -1), self.w_ih_t, out=gates.reshape(T * B, 4 * H))
        gates += self.bias
        w_hh_t = self.w_hh_t
        h_prev, c_prev = h0, c0
        zeros, tmp4t = bufs["zeros"], bufs["tmp4t"]
        for t in range(T):
            r = None
            if h_prev is not None and feature_major:
                xp.matmul(self.w_hh, h_prev.T, out=tmp4t)
                gates[t] += tmp4t.T
            elif h_prev is not None:
                r = xp.matmul(h_prev, w_hh_t, out=tmp4)
            if kern is not None:
                kern.step_forward(gates[t], zeros if r is None else r,
                                  bufs["zh"] if c_prev is None else c_prev, c[t], tc[t], h[t])
            else:
                _step_forward(xp, gates[t], r, c_prev, c[t], tc[t], h[t], bufs["tmp"])
            if mask is not None:  # a padded step keeps the state
                m = mask[t]
                h[t] = xp.where(m, h[t], bufs["zh"] if h_prev is None else h_prev)
                c[t] = xp.where(m, c[t], bufs["zh"] if c_prev is None else c_prev)
            h_prev, c_prev = h[t], c[t]
        out = h if mask is None else xp.where(mask, h, 0)
        return out, [h[T - 1].copy(), c[T - 1].copy()]

    def _forward_inference(self, xp: Any, kern: Any, bufs: dict[str, Any], x: Any, h0: Any,
                           c0: Any, mask: Any) -> tuple[Any, list[Any]]:
        # One product per step of [x_t, h_{t-1}] (B, I + H) by the stacked weights: no hoisted
        # (T, B, 4H) projection to write and read back (10-20 % faster at the MNIST shape).
        T, I = int(x.shape[0]), int(x.shape[2])
        xh, g, h, c2, zeros = bufs["xh"], bufs["tmp4"], bufs["h"], bufs["c2"], bufs["zeros"]
        w, bias = self.w_cat_t, self.bias
        xh[:, I:] = 0 if h0 is None else h0
        h_prev, c_prev = h0, c0
        for t in range(T):
            c = c2[t % 2]
            xh[:, :I] = x[t]
            xp.matmul(xh, w, out=g)
            if kern is not None:  # the kernel adds the biases
                kern.step_infer(g, zeros, bias, bufs["zh"] if c_prev is None else c_prev, c, h[t])
            else:
                g += bias
                _step_forward(xp, g, None, c_prev, c, bufs["tc"], h[t], bufs["tmp"])
            if mask is not None:  # a padded step keeps the state
                m = mask[t]
                h[t] = xp.where(m, h[t], bufs["zh"] if h_prev is None else h_prev)
                c[...] = xp.where(m, c, bufs["zh"] if c_prev is None else c_prev)
            if t + 1 < T:
                xh[:, I:] = h[t]
            h_prev, c_prev = h[t], c
        out = h if mask is None else xp.where(mask, h, 0)
        return out, [h[T - 1].copy(), c_prev.copy()]

    def backward(self, grad_out: Any, grad_final: Sequence[Any]) -> tuple[Any, list[Any]]:
        """BPTT through the last :meth:`forward` (Lua's ``updateGradInput``).

        Keeps the gate gradients for :meth:`acc_grad_parameters`.

        Args:
            grad_out: gradient w.r.t. the outputs ``(T, B, H)`` (None for zeros).
            grad_final: ``[grad_h_n, grad_c_n]``, each ``(B, H)`` or None for zeros.
        Returns:
            ``(grad_x, [grad_h0, grad_c0])``; ``grad_x`` is an internal buffer reused next call.
        Raises:
            GraphError: no forward with ``keep=True`` came before (evaluate mode keeps nothing).
        """
        self._require_kept("backward")
        x, mask = self._x, self._mask
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        grad_h_n, grad_c_n = grad_final
        bufs = self.buffers[(T, B, str(x.dtype), True)]
        gates, c, tc = bufs["gates"], bufs["c"], bufs["tc"]
        dgates, dh, dc = bufs["dgates"], bufs["dh"], bufs["dc"]
        dh[...] = 0 if grad_h_n is None else grad_h_n
        dc[...] = 0 if grad_c_n is None else grad_c_n
        c0 = self._c0
        fused = self._fused_steps
        kern = _accel.kernels() if fused else None
        feature_major, dht = B < FEATURE_MAJOR_BELOW, bufs["dht"]
        zeros = bufs["zh"]
        d_above = None if grad_out is None else _contiguous(xp, grad_out)
        for t in range(T - 1, -1, -1):
            c_prev = c[t - 1] if t > 0 else c0
            above = None if d_above is None else d_above[t]
            keep_h = keep_c = None
            if mask is not None:  # a padded step passes the state's gradient through
                m = mask[t]
                keep_h, keep_c = xp.where(m, 0, dh), xp.where(m, 0, dc)
                if above is not None:
                    dh += above
                    above = None
                dh[...] = xp.where(m, dh, 0)
                dc[...] = xp.where(m, dc, 0)
            if fused:
                kern.step_backward(gates[t], tc[t], zeros if c_prev is None else c_prev,
                                   zeros if above is None else above, dh, dc, dgates[t])
            else:
                if above is not None:
                    dh += above
                _step_backward(xp, gates[t], tc[t], c_prev, dh, dc, dgates[t], bufs)
            if feature_major:  # the carry to step t-1
                xp.matmul(self.w_hh_t, dgates[t].T, out=dht)
                dh[...] = dht.T
            else:
                xp.matmul(dgates[t], self.w_hh, out=dh)
            if keep_h is not None:
                dh += keep_h
                dc += keep_c
        dx = bufs["dx"]
        xp.matmul(dgates.reshape(T * B, 4 * H), self.w_ih, out=dx.reshape(T * B, -1))
        self._backward_done = True
        return dx, [dh.copy(), dc.copy()]

    def acc_grad_parameters(self, scale: float = 1.0) -> None:
        """Add ``scale`` times the weight gradients of the last :meth:`backward` to the user's
        Linears (Lua's ``accGradParameters``); one product per weight over all time steps."""
        self._require_backward()
        x = self._x
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        bufs = self.buffers[(T, B, str(x.dtype), True)]
        dgates, h = bufs["dgates"], bufs["h"]
        dg_all = dgates.reshape(T * B, 4 * H)
        if self.d_w_ih is None:
            self.d_w_ih, self.d_w_hh = xp.empty_like(self.w_ih_t), xp.empty_like(self.w_hh)
        d_b = dg_all.sum(axis=0)
        _add_weight_grads(xp, self.cell, x, dgates, dgates, h, self._h0, self.d_w_ih,
                          self.d_w_hh, d_b, d_b, scale)


def _add_weight_grads(xp: Any, cell: RecipeCell, x: Any, dg_in: Any, dg_rec: Any, h: Any,
                      h0: Any, d_w_ih_t: Any, d_w_hh: Any, d_b_ih: Any, d_b_hh: Any,
                      scale: float) -> None:
    """Add ``scale`` times the weight and bias gradients of a recipe layer to its Linears:
    one product per stacked weight over all ``T`` steps.

    ``dg_in`` / ``dg_rec`` are the ``(T, B, G*H)`` gradients of the input / recurrent products
    (the same array for an LSTM, whose gates sum the two), ``h`` the ``(T, B, H)`` outputs (step
    ``t`` reads ``h[t - 1]``, or ``h0``), ``d_w_ih_t`` / ``d_w_hh`` scratch of the stacked
    weights' shapes (the input weight transposed), ``d_b_*`` the summed bias gradients.
    """
    T, B = int(x.shape[0]), int(x.shape[1])
    G = int(dg_in.shape[2])
    H = int(h.shape[2])
    # dW_ih transposed (x.T @ dg): faster in BLAS than dg.T @ x for a narrow input
    xp.matmul(x.reshape(T * B, -1).T, dg_in.reshape(T * B, G), out=d_w_ih_t)
    if T > 1:
        xp.matmul(dg_rec[1:].reshape((T - 1) * B, G).T, h[:T - 1].reshape((T - 1) * B, H),
                  out=d_w_hh)
    else:
        d_w_hh[...] = 0
    if h0 is not None:
        d_w_hh += xp.matmul(dg_rec[0].T, h0)
    if scale != 1.0:
        for arr in (d_w_ih_t, d_w_hh, d_b_ih) + (() if d_b_hh is d_b_ih else (d_b_hh,)):
            arr *= scale
    d_w_ih = d_w_ih_t.T
    for k in range(len(cell.i2h)):
        rows = slice(k * H, (k + 1) * H)
        cell.i2h[k].grad_weight += d_w_ih[rows]
        cell.h2h[k].grad_weight += d_w_hh[rows]
        if cell.i2h[k].has_bias:
            cell.i2h[k].grad_bias += d_b_ih[rows]
        if cell.h2h[k].has_bias:
            cell.h2h[k].grad_bias += d_b_hh[rows]


# ------------------------------------------------------------------------------------------------
# The GRU recipe
# ------------------------------------------------------------------------------------------------
def match_gru_cell(cell: gModule) -> RecipeCell:
    """Recognise the GRU recipe (``lstm.cell.gru_cell``) in ``cell`` = ``gModule([x, prev_h],
    [next_h])``, by structure; the Linears come back in PyTorch's gate order (reset, update, new).

    Raises:
        RecipeMismatch: naming the first part of the graph that differs from the recipe.
    """
    _expect(isinstance(cell, gModule), "not a gModule")
    _expect(cell.n_inputs == 2 and cell.n_outputs == 1, "expected inputs [x, prev_h] and output next_h")
    x, prev_h = cell.input_nodes
    (next_h,) = cell.output_nodes
    _expect(len(cell.nodes) == 18, f"expected the GRU recipe's 18 nodes, found {len(cell.nodes)}")

    def linear_of(node: Any, source: Any, what: str) -> Linear:
        _expect(isinstance(node.module, Linear) and node.inputs == [source], f"{node.label()}: expected {what}")
        return node.module

    def sigmoid_gate(node: Any) -> tuple[Linear, Linear]:
        _expect(isinstance(node.module, Sigmoid), f"{node.label()}: expected Sigmoid")
        total = node.inputs[0]
        _expect(isinstance(total.module, CAddTable) and len(total.inputs) == 2,
                f"{total.label()}: expected CAddTable of the i2h and h2h Linears")
        a, b = total.inputs
        return linear_of(a, x, "Linear(x)"), linear_of(b, prev_h, "Linear(prev_h)")

    _expect(isinstance(next_h.module, CAddTable) and len(next_h.inputs) == 2,
            "next_h: expected CAddTable([new_gate, update_keep])")
    new, keep = next_h.inputs
    _expect(isinstance(new.module, Tanh), f"{new.label()}: expected Tanh (the new gate)")
    _expect(isinstance(keep.module, CMulTable) and len(keep.inputs) == 2,
            f"{keep.label()}: expected CMulTable([update_gate, h - n])")
    update_node, diff = keep.inputs
    _expect(isinstance(diff.module, CSubTable) and diff.inputs == [prev_h, new],
            f"{diff.label()}: expected CSubTable([prev_h, new_gate])")
    update = sigmoid_gate(update_node)
    new_sum = new.inputs[0]
    _expect(isinstance(new_sum.module, CAddTable) and len(new_sum.inputs) == 2,
            f"{new_sum.label()}: expected CAddTable([i2h_new, reset * h2h_new])")
    i2h_new_node, gated = new_sum.inputs
    i2h_new = linear_of(i2h_new_node, x, "Linear(x)")
    _expect(isinstance(gated.module, CMulTable) and len(gated.inputs) == 2,
            f"{gated.label()}: expected CMulTable([reset_gate, h2h_new])")
    reset = sigmoid_gate(gated.inputs[0])
    h2h_new = linear_of(gated.inputs[1], prev_h, "Linear(prev_h)")
    i2h = [reset[0], update[0], i2h_new]
    h2h = [reset[1], update[1], h2h_new]
    hidden, insize = i2h[0].out_features, i2h[0].in_features
    for lin in i2h:
        _expect(lin.in_features == insize and lin.out_features == hidden, "i2h Linears of different sizes")
    for lin in h2h:
        _expect(lin.in_features == hidden and lin.out_features == hidden, "h2h Linears must be (hidden -> hidden)")
    return RecipeCell(i2h=i2h, h2h=h2h, input_size=insize, hidden_size=hidden)


class FusedGRULayer(_KeptState):
    """One recipe GRU cell (``lstm.cell.gru_cell``) run over a whole sequence, fused.

    The same reorganisation as :class:`FusedLSTMLayer`: the three i2h products of all steps
    hoisted into one ``(T*B, in) x (in, 3H)`` product, the three h2h products of a step into one
    ``(B, H) x (H, 3H)`` product, static buffers, batched weight gradients; each step's
    element-wise work in one numba kernel (``gru_step_forward`` / ``gru_step_backward`` /
    ``gru_step_infer`` of ``nngraph_py.compile.accel``, chosen as in :class:`FusedLSTMLayer`)
    or in NumPy/CuPy array passes. PyTorch's equations::

        r, z = sigmoid(gi_rz + gh_rz)      gi = W_ih x + b_ih, gh = W_hh h + b_hh, rows (r, z, n)
        n = tanh(gi_n + r * gh_n)
        h' = n + z * (h - n)

    Arrays are time-major as in :class:`FusedLSTMLayer`; the state is ``[h]``. Implements
    :class:`nngraph_py.compile.sequence.SequenceExecutor`; ``keep=False`` keeps nothing for
    backward (no per-step gates or ``gh_n``).

    Args:
        cell: a GRU recipe cell gModule.
        kernels: ``"auto"``, ``"numpy"`` or ``"numba"``, as for :class:`FusedLSTMLayer`.
    """

    kind = "recipe-gru"

    def __init__(self, cell: gModule, kernels: str = "auto"):
        _check_kernels(kernels)
        self.cell = match_gru_cell(cell)
        self.kernels = kernels
        self.buffers: dict[tuple, dict[str, Any]] = {}
        self.w_ih = self.w_ih_t = self.w_hh = self.w_hh_t = self.b_ih = self.b_hh = None
        self.d_w_ih = self.d_w_hh = None
        self._x = self._h0 = self._mask = None
        self._fused_steps = False

    @property
    def hidden_size(self) -> int:
        """The cell's hidden size."""
        return self.cell.hidden_size

    def uses_kernels(self, x: Any) -> bool:
        """Whether a call on ``x`` runs the compiled step kernels (see ``kernels``)."""
        return _uses_kernels(self.kernels, x)

    def invalidate(self) -> None:
        """Drop the gathered weights, the buffers and what the last forward kept; the next
        forward gathers and plans again."""
        self.w_ih = self.w_ih_t = self.w_hh = self.w_hh_t = self.b_ih = self.b_hh = None
        self.d_w_ih = self.d_w_hh = None
        self.buffers.clear()
        self._x = self._h0 = self._mask = None
        self._kept, self._backward_done = None, False

    def gather(self, xp: Any, dtype: Any, keep: bool = True) -> None:
        """Copy the six Linears' weights into the stacked arrays (once per call; without
        ``keep`` only what a forward reads)."""
        H, cell = self.cell.hidden_size, self.cell
        if self.w_ih is None or backend.get_array_module(self.w_ih) is not xp or self.w_ih.dtype != dtype:
            self.w_ih = xp.empty((3 * H, cell.input_size), dtype=dtype)
            self.w_ih_t = xp.empty((cell.input_size, 3 * H), dtype=dtype)
            self.w_hh = xp.empty((3 * H, H), dtype=dtype)
            self.w_hh_t = xp.empty((H, 3 * H), dtype=dtype)
            self.b_ih = xp.empty((3 * H,), dtype=dtype)
            self.b_hh = xp.empty((3 * H,), dtype=dtype)
            self.d_w_ih = self.d_w_hh = None
            self.buffers.clear()
        for k in range(3):
            rows = slice(k * H, (k + 1) * H)
            i2h, h2h = cell.i2h[k], cell.h2h[k]
            if keep:
                self.w_ih[rows] = i2h.weight
                self.w_hh[rows] = h2h.weight
            self.w_ih_t[:, rows] = i2h.weight.T
            self.w_hh_t[:, rows] = h2h.weight.T
            self.b_ih[rows] = i2h.bias if i2h.has_bias else 0
            self.b_hh[rows] = h2h.bias if h2h.has_bias else 0

    def buf(self, xp: Any, T: int, B: int, in_size: int, dtype: Any,
            keep: bool = True) -> dict[str, Any]:
        """The buffers of a ``(T, B)`` call, planned once per ``(T, B, dtype, keep)``."""
        key = (T, B, str(dtype), keep)
        got = self.buffers.get(key)
        if got is None:
            H = self.cell.hidden_size
            got = {
                "gates": xp.empty((T, B, 3 * H), dtype=dtype),  # activated r, z, n
                "h": xp.empty((T, B, H), dtype=dtype),          # the carried h of each step
                "gh": xp.empty((B, 3 * H), dtype=dtype),
                "tmp": xp.empty((B, H), dtype=dtype),
                "zeros": xp.zeros((B, 3 * H), dtype=dtype),
                "zh": xp.zeros((B, H), dtype=dtype),
            }
            if keep:
                got.update({
                    "ghn": xp.empty((T, B, H), dtype=dtype),    # W_hn h + b_hn
                    "tmp2": xp.empty((B, H), dtype=dtype),
                    "dgi": xp.empty((T, B, 3 * H), dtype=dtype),
                    "dgh": xp.empty((T, B, 3 * H), dtype=dtype),
                    "dx": xp.empty((T, B, in_size), dtype=dtype),
                    "dh": xp.empty((B, H), dtype=dtype),
                })
            if len(self.buffers) > 8:
                self.buffers.clear()
            self.buffers[key] = got
        return got

    def forward(self, x: Any, state0: Sequence[Any], mask: Any = None,
                keep: bool = True) -> tuple[Any, list[Any]]:
        """``(outputs (T, B, H), [h_n])`` from ``x`` and ``state0 = [h0]`` (None for zeros);
        where ``mask`` is False the state is kept and the output is zero. With ``keep=False``
        nothing is kept for :meth:`backward` (inference). The outputs may be an internal buffer
        reused by the next call."""
        xp = backend.get_array_module(x)
        x = _contiguous(xp, x)
        (h0,) = state0
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        self._backward_done = False
        self._kept = keep
        fused = self._fused_steps = self.uses_kernels(x)
        kern = _accel.kernels() if fused else None
        if keep:
            self._x, self._h0, self._mask = x, h0, mask
        else:
            self._x = self._h0 = self._mask = None
        self.gather(xp, x.dtype, keep)
        bufs = self.buf(xp, T, B, int(x.shape[2]), x.dtype, keep)
        gates, h, gh, tmp = bufs["gates"], bufs["h"], bufs["gh"], bufs["tmp"]
        ghn = bufs["ghn"] if keep else None
        zeros = bufs["zeros"]
        xp.matmul(x.reshape(T * B, -1), self.w_ih_t, out=gates.reshape(T * B, 3 * H))
        gates += self.b_ih
        b_hh, w_hh_t = self.b_hh, self.w_hh_t
        h_prev = bufs["zh"] if h0 is None else h0
        for t in range(T):
            a = gates[t]
            if kern is not None:
                r_prod = zeros if t == 0 and h0 is None else xp.matmul(h_prev, w_hh_t, out=gh)
                if keep:
                    kern.gru_step_forward(a, r_prod, b_hh, h_prev, ghn[t], h[t])
                else:
                    kern.gru_step_infer(a, r_prod, b_hh, h_prev, h[t])
            else:
                xp.matmul(h_prev, w_hh_t, out=gh)
                gh += b_hh
                a[:, :2 * H] += gh[:, :2 * H]
                _sigmoid_(xp, a[:, :2 * H])
                r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
                q = gh[:, 2 * H:]
                if keep:
                    ghn[t] = q
                xp.multiply(r, q, out=tmp)
                n += tmp
                xp.tanh(n, out=n)
                xp.subtract(h_prev, n, out=tmp)  # h' = n + z * (h - n)
                tmp *= z
                xp.add(n, tmp, out=h[t])
            if mask is not None:
                h[t] = xp.where(mask[t], h[t], h_prev)
            h_prev = h[t]
        out = h if mask is None else xp.where(mask, h, 0)
        return out, [h[T - 1].copy()]

    def backward(self, grad_out: Any, grad_final: Sequence[Any]) -> tuple[Any, list[Any]]:
        """BPTT through the last :meth:`forward`: ``(grad_x, [grad_h0])`` (``grad_x`` an internal
        buffer); ``grad_out`` ``(T, B, H)`` and ``grad_final = [grad_h_n]`` may hold None.

        Raises:
            GraphError: no forward with ``keep=True`` came before (evaluate mode keeps nothing).
        """
        self._require_kept("backward")
        x, mask = self._x, self._mask
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        (grad_h_n,) = grad_final
        bufs = self.buffers[(T, B, str(x.dtype), True)]
        gates, ghn, h = bufs["gates"], bufs["ghn"], bufs["h"]
        dgi, dgh, dh, tmp, tmp2 = bufs["dgi"], bufs["dgh"], bufs["dh"], bufs["tmp"], bufs["tmp2"]
        zeros = bufs["zh"]
        h0 = zeros if self._h0 is None else self._h0
        kern = _accel.kernels() if self._fused_steps else None
        d_above = None if grad_out is None else _contiguous(xp, grad_out)
        dh[...] = 0 if grad_h_n is None else grad_h_n
        for t in range(T - 1, -1, -1):
            h_prev = h[t - 1] if t > 0 else h0
            above = None if d_above is None else d_above[t]
            keep = None
            if mask is not None:
                m = mask[t]
                keep = xp.where(m, 0, dh)
                if above is not None:
                    dh += above
                    above = None
                dh[...] = xp.where(m, dh, 0)
            a, di, dg = gates[t], dgi[t], dgh[t]
            if kern is not None:
                kern.gru_step_backward(a, ghn[t], h_prev, zeros if above is None else above,
                                       dh, di, dg)
            else:
                if above is not None:
                    dh += above
                r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
                dr, dz, dn = di[:, :H], di[:, H:2 * H], di[:, 2 * H:]
                # n's pre-activation: dh * (1 - z) * (1 - n^2)
                xp.subtract(1.0, z, out=dn)
                dn *= dh
                xp.multiply(n, n, out=tmp)
                xp.subtract(1.0, tmp, out=tmp)
                dn *= tmp
                # z's pre-activation: dh * (h - n) * z * (1 - z)
                xp.subtract(h_prev, n, out=dz)
                dz *= dh
                xp.subtract(1.0, z, out=tmp)
                tmp *= z
                dz *= tmp
                # through r * gh_n: d gh_n = dn * r, r's pre-activation: dn * gh_n * r * (1 - r)
                xp.multiply(dn, r, out=dg[:, 2 * H:])
                xp.multiply(dn, ghn[t], out=dr)
                xp.subtract(1.0, r, out=tmp)
                tmp *= r
                dr *= tmp
                dg[:, :2 * H] = di[:, :2 * H]
                dh *= z
            # the carry to step t-1: dh * z + d gh @ W_hh
            xp.matmul(dg, self.w_hh, out=tmp2)
            dh += tmp2
            if keep is not None:
                dh += keep
        dx = bufs["dx"]
        xp.matmul(dgi.reshape(T * B, 3 * H), self.w_ih, out=dx.reshape(T * B, -1))
        self._backward_done = True
        return dx, [dh.copy()]

    def acc_grad_parameters(self, scale: float = 1.0) -> None:
        """Add ``scale`` times the weight gradients of the last :meth:`backward` to the user's
        Linears; one product per stacked weight over all steps."""
        self._require_backward()
        x = self._x
        xp = backend.get_array_module(x)
        T, B = int(x.shape[0]), int(x.shape[1])
        H = self.hidden_size
        bufs = self.buffers[(T, B, str(x.dtype), True)]
        dgi, dgh, h = bufs["dgi"], bufs["dgh"], bufs["h"]
        dgi_all, dgh_all = dgi.reshape(T * B, 3 * H), dgh.reshape(T * B, 3 * H)
        if self.d_w_ih is None:
            self.d_w_ih, self.d_w_hh = xp.empty_like(self.w_ih_t), xp.empty_like(self.w_hh)
        _add_weight_grads(xp, self.cell, x, dgi, dgh, h, self._h0, self.d_w_ih, self.d_w_hh,
                          dgi_all.sum(axis=0), dgh_all.sum(axis=0), scale)


class FusedLSTM:
    """Stacked recipe LSTM cells over a whole sequence, one :class:`FusedLSTMLayer` per layer
    (unidirectional, no lengths, no dropout: what :class:`lstm.LSTM` adds around the layers).

    Args:
        cells: one recipe cell gModule per layer.
        kernels: as :class:`FusedLSTMLayer`.

    The arrays are time-major: ``x`` is ``(T, batch, input)``, states ``(layers, batch, hidden)``.
    """

    def __init__(self, cells: Sequence[gModule], kernels: str = "auto"):
        self.layers = [FusedLSTMLayer(c, kernels=kernels) for c in cells]

    def uses_kernels(self, x: Any) -> bool:
        """Whether a call on ``x`` runs the compiled step kernels."""
        return self.layers[0].uses_kernels(x)

    def forward(self, x: Any, h0: Any, c0: Any) -> tuple[Any, Any, Any]:
        """``(outputs (T, B, H), h_n, c_n (L, B, H))``; ``h0``/``c0`` may be None for zeros."""
        xp = backend.get_array_module(x)
        finals = []
        for l, layer in enumerate(self.layers):
            x, fin = layer.forward(x, [None if h0 is None else h0[l],
                                       None if c0 is None else c0[l]])
            finals.append(fin)
        return x, xp.stack([f[0] for f in finals]), xp.stack([f[1] for f in finals])

    def backward(self, grad_out: Any, grad_h_n: Any = None,
                 grad_c_n: Any = None) -> tuple[Any, Any, Any]:
        """``(grad_x, grad_h0, grad_c0)`` through the last :meth:`forward`."""
        xp = backend.get_array_module(self.layers[0]._x)
        g0: list[Any] = [None] * len(self.layers)
        for l in range(len(self.layers) - 1, -1, -1):
            grad_out, g0[l] = self.layers[l].backward(grad_out, [
                None if grad_h_n is None else grad_h_n[l],
                None if grad_c_n is None else grad_c_n[l]])
        return grad_out, xp.stack([g[0] for g in g0]), xp.stack([g[1] for g in g0])

    def acc_grad_parameters(self, scale: float = 1.0) -> None:
        """Accumulate every layer's weight gradients (see :class:`FusedLSTMLayer`)."""
        for layer in self.layers:
            layer.acc_grad_parameters(scale)


# ------------------------------------------------------------------------------------------------
# The recipe passes of the compiler (nngraph_py.compile.sequence.compile_sequence tries them first)
# ------------------------------------------------------------------------------------------------
def _lstm_pass(cell: gModule, signature: Any, kernels: str) -> FusedLSTMLayer | None:
    """The fused LSTM executor when ``cell`` is the recipe carried as ``(h, c)``, else None."""
    if signature.state_inputs != (2, 1) or signature.state_outputs != (1, 0) \
            or signature.x != 0 or signature.output_state != 0:
        return None
    try:
        match_lstm_cell(cell)
    except RecipeMismatch:
        return None
    return FusedLSTMLayer(cell, kernels=kernels)


def _gru_pass(cell: gModule, signature: Any, kernels: str) -> FusedGRULayer | None:
    """The fused GRU executor when ``cell`` is the GRU recipe carried as ``(h,)``, else None."""
    if signature.state_inputs != (1,) or signature.state_outputs != (0,) or signature.x != 0:
        return None
    try:
        match_gru_cell(cell)
    except RecipeMismatch:
        return None
    return FusedGRULayer(cell, kernels=kernels)


#: The recipe passes, in order: each returns an executor or None.
MATCHERS = (_lstm_pass, _gru_pass)
