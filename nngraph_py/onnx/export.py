"""Write a model as an ONNX graph (no Lua original: Lua Torch predates ONNX).

The exporter runs the model once on the example input, module by module, and emits for each
module the ONNX operators that compute the same thing. Graphs, ``Sequential``/``ConcatTable``/
``ParallelTable`` and nested gModules are inlined; a list-valued output (``SplitTable``,
``ConcatTable``...) is carried as a list of ONNX tensors and picked apart by ``SelectTable`` /
``NarrowTable`` without any operator. The recipe recurrent models (``lstm.LSTM``, ``lstm.GRU``,
``lstm.RNN``) become ONNX's ``LSTM``/``GRU``/``RNN`` operators, one per layer; other recurrent
modules (``lstm.Recurrence``, or ``recurrent="unrolled"``) are unrolled over the example's time
steps. The engine never imports ``lstm``: recurrent models are recognised by their attributes.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy

from .. import backend
from ..errors import NNGraphError
from ..module import Module

__all__ = ["export", "OnnxExportError", "OPSET"]

#: The ONNX opset the exported graphs use.
OPSET = 17


class OnnxExportError(NNGraphError, ValueError):
    """A model cannot be exported: a module without an ONNX counterpart (named), bad options."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the extra is installed in dev
        raise OnnxExportError("ONNX export needs the onnx package: pip install "
                              "'nngraph_py[onnx]'") from exc
    return onnx


class _Graph:
    """The ONNX nodes and initializers being built, with unique tensor names."""

    def __init__(self, dtype: numpy.dtype):
        self.onnx = _onnx()
        self.dtype = numpy.dtype(dtype)
        self.elem = self.onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    def fresh(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c in "_." else "_" for c in base) or "t"
        name, k = base, 1
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def const(self, value: Any, base: str, dtype: Any = None) -> str:
        arr = numpy.asarray(backend.to_numpy(value) if backend.is_array(value) else value)
        arr = numpy.array(arr, dtype=dtype if dtype is not None else arr.dtype, order="C")
        name = self.fresh(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def ints(self, values: list[int], base: str) -> str:
        return self.const(numpy.array(values, dtype=numpy.int64), base)

    def op(self, op_type: str, inputs: list[str], base: str, outputs: int = 1,
           **attrs: Any) -> Any:
        names = [self.fresh(f"{base}_{op_type}" + (f"_{k}" if outputs > 1 else ""))
                 for k in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names,
                                                     name=self.fresh(f"{base}/{op_type}"),
                                                     **attrs))
        return names if outputs > 1 else names[0]


Sym = Any  # an ONNX tensor name, or a (nested) list of them


def _host(x: Any) -> numpy.ndarray:
    return backend.to_numpy(x)


def _label(m: Module) -> str:
    node = getattr(m, "_node", None)
    if node is not None and (node.name or node.graph_name):
        return str(node.name or node.graph_name)
    return type(m).__name__


def _refuse(m: Module, why: str = "") -> OnnxExportError:
    return OnnxExportError(f"cannot export {m.describe()}: {type(m).__name__} has no ONNX "
                           f"counterpart here{': ' + why if why else ''}")


# ---------------------------------------------------------------------------------------------
# The walk: (module, symbolic input, concrete input) -> (symbolic output, concrete output)
# ---------------------------------------------------------------------------------------------
class _Exporter:
    def __init__(self, g: _Graph, recurrent: str):
        self.g = g
        self.recurrent = recurrent

    def module(self, m: Module, sym: Sym, val: Any) -> tuple[Sym, Any]:
        from .. import nn

        if isinstance(m, nn.gModule):
            return self.gmodule(m, sym, val)
        if isinstance(m, nn.Sequential):
            for child in m.children():
                sym, val = self.module(child, sym, val)
            return sym, val
        if isinstance(m, nn.ConcatTable):
            outs = [self.module(child, sym, val) for child in m.children()]
            return [s for s, _ in outs], [v for _, v in outs]
        if type(m).__name__ == "Concat" and isinstance(m, nn.Container):
            outs = [self.module(child, sym, val) for child in m.children()]
            out_val = m.forward(val)
            axis = int(m.dim) % _host(out_val).ndim
            return self.g.op("Concat", [s for s, _ in outs], _label(m), axis=axis), out_val
        if isinstance(m, nn.ParallelTable):
            outs = [self.module(child, s, v) for child, s, v in zip(m.children(), sym, val)]
            return [s for s, _ in outs], [v for _, v in outs]
        if _is_recurrent(m):
            return self.recurrent_module(m, sym, val)
        fn = _LEAVES.get(type(m))
        if fn is None:
            for cls, f in _LEAVES.items():  # a subclass of a supported module
                if isinstance(m, cls) and type(m).update_output is cls.update_output:
                    fn = f
                    break
        if fn is None:
            raise _refuse(m)
        out_val = m.forward(val)
        return fn(self.g, m, sym, val, out_val, _label(m)), out_val

    def gmodule(self, m: Any, sym: Sym, val: Any) -> tuple[Sym, Any]:
        n_in = len(m.input_nodes)
        syms = [sym] if n_in == 1 else list(sym)
        vals = [val] if n_in == 1 else list(val)
        slots = {id(n): k for k, n in enumerate(m.input_nodes)}
        s_of: dict[int, Sym] = {}
        v_of: dict[int, Any] = {}
        for node in m.nodes:
            if id(node) in slots:
                s_in, v_in = syms[slots[id(node)]], vals[slots[id(node)]]
            elif node.table:
                s_in = [s_of[id(p)] for p in node.inputs]
                v_in = [v_of[id(p)] for p in node.inputs]
            else:
                s_in, v_in = s_of[id(node.inputs[0])], v_of[id(node.inputs[0])]
            s_of[id(node)], v_of[id(node)] = self.module(node.module, s_in, v_in)
        outs = [(s_of[id(n)], v_of[id(n)]) for n in m.output_nodes]
        if len(outs) == 1:
            return outs[0]
        return [s for s, _ in outs], [v for _, v in outs]

    # --- recurrent models -------------------------------------------------------------------
    def recurrent_module(self, m: Any, sym: Sym, val: Any) -> tuple[Sym, Any]:
        if getattr(m, "lengths", None) is not None:
            raise _refuse(m, "lengths are set; export runs whole sequences (set_lengths(None))")
        out_val = Module.forward(m, val)  # the list [outputs, h_n, (c_n)]
        kind = type(m).__name__
        use_op = self.recurrent != "unrolled" and kind in ("LSTM", "GRU", "RNN") \
            and type(m).__module__.startswith("lstm")
        if use_op:
            out_sym = _recurrent_op(self.g, m, sym, val, _label(m))
        else:
            out_sym = self.unrolled(m, sym, val, out_val)
        return out_sym, out_val

    def unrolled(self, m: Any, sym: Sym, val: Any, out_val: list[Any]) -> list[Sym]:
        g, base = self.g, _label(m)
        x_sym, x_val = (sym[0], val[0]) if isinstance(sym, list) else (sym, val)
        given = list(sym[1:]) if isinstance(sym, list) else []
        x = _host(x_val)
        t_axis = 1 if m.batch_first else 0
        steps, batch = int(x.shape[t_axis]), int(x.shape[1 - t_axis])
        n_cells, n_dir = len(m.cells), m.num_directions
        n_states = len(m.state_sizes)
        dt = m._dtype
        # initial state of cell j, per carried array: Gather(h0, j) or zeros
        init: list[list[tuple[Sym, Any]]] = []
        for j in range(n_cells):
            per = []
            for k, size in enumerate(m.state_sizes):
                zeros = numpy.zeros((batch, size), dtype=dt)
                if given:
                    idx = g.const(numpy.array(j, dtype=numpy.int64), f"{base}_cell{j}")
                    s0 = g.op("Gather", [given[k], idx], f"{base}_state{k}_{j}", axis=0)
                    v0 = _host(val[1 + k])[j]
                else:
                    s0, v0 = g.const(zeros, f"{base}_zero{k}_{j}"), zeros
                per.append((s0, v0))
            init.append(per)
        layer_in = [(g.op("Gather", [x_sym, g.const(numpy.array(t, dtype=numpy.int64),
                                                    f"{base}_t{t}")],
                          f"{base}_x{t}", axis=t_axis), numpy.take(x, t, axis=t_axis))
                    for t in range(steps)]
        finals: list[list[tuple[Sym, Any]]] = [[] for _ in range(n_states)]
        for layer in range(m.num_layers):
            per_dir = []
            for d in range(n_dir):
                j = layer * n_dir + d
                cell = m.cells[j]
                state = init[j]
                outs: list[tuple[Sym, Any]] = [None] * steps  # type: ignore[list-item]
                order = range(steps) if d == 0 else range(steps - 1, -1, -1)
                for t in order:
                    x_t = layer_in[t]
                    s_in = m._cell_input(x_t[0], [s for s, _ in state])
                    v_in = m._cell_input(x_t[1], [v for _, v in state])
                    s_out, v_out = self.gmodule(cell, s_in, v_in)
                    state = list(zip(m._cell_state(s_out), m._cell_state(v_out)))
                    outs[t] = state[m.output_state]
                for k in range(n_states):
                    finals[k].append(state[k])
                per_dir.append(outs)
            if n_dir == 1:
                layer_in = per_dir[0]
            else:
                layer_in = [(g.op("Concat", [per_dir[0][t][0], per_dir[1][t][0]],
                                  f"{base}_l{layer}_t{t}", axis=-1),
                             numpy.concatenate([per_dir[0][t][1], per_dir[1][t][1]], -1))
                            for t in range(steps)]
        axes = g.ints([t_axis], f"{base}_time_axis")
        stacked = g.op("Concat", [g.op("Unsqueeze", [s, axes], f"{base}_y") for s, _ in layer_in],
                       f"{base}_outputs", axis=t_axis)
        zero = g.ints([0], f"{base}_axis0")
        result = [stacked]
        for k in range(n_states):
            if _host(out_val[1 + k]).ndim == 2 and len(finals[k]) == 1:  # (batch, size)
                result.append(finals[k][0][0])
                continue
            result.append(g.op("Concat", [g.op("Unsqueeze", [s, zero], f"{base}_s{k}")
                                          for s, _ in finals[k]], f"{base}_final{k}", axis=0))
        return result


def _is_recurrent(m: Any) -> bool:
    return all(hasattr(m, a) for a in ("cells", "num_directions", "state_sizes", "batch_first",
                                       "_cell_input", "_cell_state"))


# ---------------------------------------------------------------------------------------------
# ONNX's LSTM / GRU / RNN operators
# ---------------------------------------------------------------------------------------------
#: Our (PyTorch's) gate blocks, reordered to ONNX's: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
_ONNX_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}


def _reorder(w: numpy.ndarray, kind: str, hidden: int) -> numpy.ndarray:
    blocks = [w[k * hidden:(k + 1) * hidden] for k in range(len(_ONNX_ORDER[kind]))]
    return numpy.concatenate([blocks[k] for k in _ONNX_ORDER[kind]], axis=0)


def _recurrent_op(g: _Graph, m: Any, sym: Sym, val: Any, base: str) -> list[Sym]:
    from lstm.torch_compat import to_torch_state_dict  # only for lstm's models

    kind = type(m).__name__
    sd = to_torch_state_dict(m)
    hidden, n_dir, layers = m.hidden_size, m.num_directions, m.num_layers
    dt = m._dtype
    x_sym = sym[0] if isinstance(sym, list) else sym
    given = list(sym[1:]) if isinstance(sym, list) else []
    if m.batch_first:
        x_sym = g.op("Transpose", [x_sym], f"{base}_time_major", perm=[1, 0, 2])
    finals: list[list[str]] = [[] for _ in m.state_sizes]
    for layer in range(layers):
        suffixes = ["", "_reverse"][:n_dir]
        W = numpy.stack([_reorder(sd[f"weight_ih_l{layer}{s}"], kind, hidden) for s in suffixes])
        R = numpy.stack([_reorder(sd[f"weight_hh_l{layer}{s}"], kind, hidden) for s in suffixes])
        B = numpy.stack([numpy.concatenate([_reorder(sd[f"bias_ih_l{layer}{s}"], kind, hidden),
                                            _reorder(sd[f"bias_hh_l{layer}{s}"], kind, hidden)])
                         for s in suffixes])
        lb = f"{base}_layer{layer + 1}"
        inputs = [x_sym, g.const(W.astype(dt), f"{lb}_W"), g.const(R.astype(dt), f"{lb}_R"),
                  g.const(B.astype(dt), f"{lb}_B"), ""]
        if given:
            lo, hi = g.ints([layer * n_dir], f"{lb}_lo"), g.ints([(layer + 1) * n_dir], f"{lb}_hi")
            axis = g.ints([0], f"{lb}_axis")
            # PyTorch's order is (h, c); ONNX takes initial_h then initial_c
            for k in range(len(given)):
                inputs.append(g.op("Slice", [given[k], lo, hi, axis], f"{lb}_init{k}"))
        attrs: dict[str, Any] = {"hidden_size": hidden,
                                 "direction": "bidirectional" if n_dir == 2 else "forward"}
        if kind == "GRU":
            attrs["linear_before_reset"] = 1  # PyTorch's GRU: r gates (W_hn h + b_hn)
        if kind == "RNN":
            act = {"tanh": "Tanh", "relu": "Relu"}[getattr(m, "nonlinearity", "tanh")]
            attrs["activations"] = [act] * n_dir
        n_out = 3 if kind == "LSTM" else 2
        outs = g.op(kind, inputs, lb, outputs=n_out, **attrs)
        y = g.op("Transpose", [outs[0]], f"{lb}_y", perm=[0, 2, 1, 3])  # (T, B, D, H)
        x_sym = g.op("Reshape", [y, g.ints([0, 0, n_dir * hidden], f"{lb}_shape")], f"{lb}_out")
        finals[0].append(outs[1])
        if kind == "LSTM":
            finals[1].append(outs[2])
    out = x_sym
    if m.batch_first:
        out = g.op("Transpose", [out], f"{base}_batch_major", perm=[1, 0, 2])
    result = [out]
    for per_layer in finals:
        result.append(per_layer[0] if len(per_layer) == 1
                      else g.op("Concat", per_layer, f"{base}_final", axis=0))
    return result


# ---------------------------------------------------------------------------------------------
# Leaf modules
# ---------------------------------------------------------------------------------------------
Leaf = Callable[[_Graph, Any, Sym, Any, Any, str], Sym]


def _linear(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    w = g.const(_host(m.weight).T, f"{base}_weightT")
    y = g.op("MatMul", [s, w], base)
    if getattr(m, "has_bias", True) and getattr(m, "bias", None) is not None:
        y = g.op("Add", [y, g.const(_host(m.bias), f"{base}_bias")], base)
    return y


def _unary(op_type: str, **attrs: Any) -> Leaf:
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        return g.op(op_type, [s], base, **attrs)
    return emit


def _chain(op_type: str) -> Leaf:
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        acc = s[0]
        for other in s[1:]:
            acc = g.op(op_type, [acc, other], base)
        return acc
    return emit


def _constant(op_type: str) -> Leaf:
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        c = g.const(numpy.array(m.constant, dtype=g.dtype), f"{base}_constant")
        return g.op(op_type, [s, c], base)
    return emit


def _join(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return g.op("Concat", list(s), base, axis=int(m.dim) % _host(v[0]).ndim)


def _split(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    x = _host(v)
    axis = int(m.dim) % x.ndim
    n = int(x.shape[axis])
    parts = g.op("Split", [s, g.ints([1] * n, f"{base}_sizes")], base, outputs=n, axis=axis) \
        if n > 1 else [s]
    axes = g.ints([axis], f"{base}_axes")
    return [g.op("Squeeze", [p, axes], base) for p in parts]


def _select_table(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return s[int(m.index) % len(s)]


def _narrow_table(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    start = m.offset % len(s) if m.offset < 0 else m.offset
    return list(s[start:start + m.length])


def _narrow(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    index = m._index(_host(v))  # (slice(None),)*axis + (slice(start, stop),)
    axis = len(index) - 1
    sl = index[-1]
    return g.op("Slice", [s, g.ints([sl.start], f"{base}_start"), g.ints([sl.stop], f"{base}_stop"),
                          g.ints([axis], f"{base}_axis")], base)


def _select(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    x = _host(v)
    axis = int(m.dim) % x.ndim
    index = int(m.index) % int(x.shape[axis])
    return g.op("Gather", [s, g.const(numpy.array(index, dtype=numpy.int64), f"{base}_index")],
                base, axis=axis)


def _reshape(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    x, y = _host(v), _host(out)
    shape = list(y.shape)
    if x.ndim >= 1 and y.ndim >= 2 and x.shape[0] == y.shape[0] and x.ndim > 1:
        shape[0] = 0  # keep the batch axis as it comes (ONNX's 0 copies the input's size)
    return g.op("Reshape", [s, g.ints(shape, f"{base}_shape")], base)


def _lookup(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return g.op("Gather", [g.const(_host(m.weight), f"{base}_weight"), s], base, axis=0)


def _one_hot(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    n = int(_host(out).shape[-1])
    idx = g.op("Unsqueeze", [s, g.ints([-1], f"{base}_axes")], base)
    idx = g.op("Cast", [idx], base, to=g.onnx.TensorProto.INT64)
    hot = g.op("Equal", [idx, g.ints(list(range(n)), f"{base}_range")], base)
    return g.op("Cast", [hot], base, to=g.elem)


def _identity(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    if isinstance(s, list):
        return s
    return g.op("Identity", [s], base)


def _dropout(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    if getattr(m, "stochastic_inference", False):
        raise _refuse(m, "stochastic inference draws at evaluation")
    if getattr(m, "v1", False) and m.p > 0:  # Lua's old dropout scales at evaluation
        return g.op("Mul", [s, _scalar(g, 1.0 - float(m.p), f"{base}_keep")], base)
    return _identity(g, m, s, v, out, base)


def _softmax(log: bool) -> Leaf:
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        return g.op("LogSoftmax" if log else "Softmax", [s], base, axis=-1)
    return emit


def _clip(lo_attr: str | float, hi_attr: str | float) -> Leaf:
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        lo = getattr(m, lo_attr) if isinstance(lo_attr, str) else lo_attr
        hi = getattr(m, hi_attr) if isinstance(hi_attr, str) else hi_attr
        return g.op("Clip", [s, g.const(numpy.array(lo, dtype=g.dtype), f"{base}_min"),
                             g.const(numpy.array(hi, dtype=g.dtype), f"{base}_max")], base)
    return emit


def _broadcast_param(name: str, op_type: str) -> Leaf:
    """CMul/CAdd/Mul/Add: a learned array combined with the input, in the shape forward used."""
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        w, x = _host(getattr(m, name)), _host(v)
        if w.size == 1:
            w = w.reshape(())
        elif x.ndim > 1 and w.size == int(numpy.prod(x.shape[1:])):
            w = w.reshape(x.shape[1:])  # one example's shape, broadcast over the batch
        elif w.size == x.size:
            w = w.reshape(x.shape)
        else:
            raise _refuse(m, f"its {name} {w.shape} does not fit input {x.shape}")
        return g.op(op_type, [s, g.const(w, f"{base}_{name}")], base)
    return emit


def _transpose(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    perm = list(range(_host(v).ndim))
    for a, b in m.pairs:
        a, b = a % len(perm), b % len(perm)
        perm[a], perm[b] = perm[b], perm[a]
    return g.op("Transpose", [s], base, perm=perm)


def _conv(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    if _host(v).ndim != 4:
        raise _refuse(m, "only batched (N, C, H, W) input is exported")
    inputs = [s, g.const(_host(m.weight), f"{base}_weight")]
    if getattr(m, "has_bias", True) and getattr(m, "bias", None) is not None:
        inputs.append(g.const(_host(m.bias), f"{base}_bias"))
    return g.op("Conv", inputs, base, kernel_shape=[m.kh, m.kw], strides=[m.dh, m.dw],
                pads=[m.pad_h, m.pad_w, m.pad_h, m.pad_w],
                dilations=[getattr(m, "dil_h", 1), getattr(m, "dil_w", 1)])


def _pool(op_type: str) -> Leaf:
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        if _host(v).ndim != 4 or getattr(m, "ceil_mode", False):
            raise _refuse(m, "only batched (N, C, H, W) input without ceil_mode is exported")
        attrs: dict[str, Any] = {"kernel_shape": [m.kh, m.kw], "strides": [m.dh, m.dw],
                                 "pads": [m.pad_h, m.pad_w, m.pad_h, m.pad_w]}
        if op_type == "MaxPool":
            attrs["dilations"] = [getattr(m, "dil_h", 1), getattr(m, "dil_w", 1)]
        if op_type == "AveragePool":
            attrs["count_include_pad"] = int(bool(getattr(m, "count_include_pad", True)))
        return g.op(op_type, [s], base, **attrs)
    return emit


def _batch_norm(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    n = int(m.running_mean.shape[0])
    ones, zeros = numpy.ones(n, dtype=g.dtype), numpy.zeros(n, dtype=g.dtype)
    scale = _host(m.weight) if getattr(m, "affine", False) else ones
    shift = _host(m.bias) if getattr(m, "affine", False) else zeros
    return g.op("BatchNormalization",
                [s, g.const(scale, f"{base}_scale"), g.const(shift, f"{base}_shift"),
                 g.const(_host(m.running_mean), f"{base}_mean"),
                 g.const(_host(m.running_var), f"{base}_var")], base, epsilon=float(m.eps))


def _zero_pad(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    pads = [m.pad_top, m.pad_left, m.pad_bottom, m.pad_right]
    if min(pads) < 0 or _host(v).ndim != 4:
        raise _refuse(m, "only non-negative padding of (N, C, H, W) input is exported")
    return g.op("Pad", [s, g.ints([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]],
                                  f"{base}_pads")], base)


def _upsample(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    scales = numpy.array([1, 1, m.scale, m.scale], dtype=numpy.float32)
    return g.op("Resize", [s, "", g.const(scales, f"{base}_scales")], base, mode="nearest",
                nearest_mode="floor", coordinate_transformation_mode="asymmetric")


def _mm(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    a, b = s
    nd = _host(v[0]).ndim

    def t(x: str) -> str:
        perm = list(range(nd))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        return g.op("Transpose", [x], base, perm=perm)
    return g.op("MatMul", [t(a) if m.trans_a else a, t(b) if m.trans_b else b], base)


# Written with primitive operators: onnxruntime has Elu, LeakyRelu, Softplus and Softsign for
# float32 only, and the Lua models are float64.
def _scalar(g: _Graph, value: float, base: str) -> str:
    return g.const(numpy.array(value, dtype=g.dtype), base)


def _neg_part(g: _Graph, s: str, base: str) -> str:
    return g.op("Min", [s, _scalar(g, 0.0, f"{base}_zero")], base)


def _elu(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    # relu(x) + alpha * (exp(min(x, 0)) - 1)
    expm1 = g.op("Sub", [g.op("Exp", [_neg_part(g, s, base)], base), _scalar(g, 1.0, f"{base}_one")],
                 base)
    return g.op("Add", [g.op("Relu", [s], base),
                        g.op("Mul", [expm1, _scalar(g, float(m.alpha), f"{base}_alpha")], base)],
                base)


def _leaky(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    neg = g.op("Mul", [_neg_part(g, s, base), _scalar(g, float(m.negval), f"{base}_negval")], base)
    return g.op("Add", [g.op("Relu", [s], base), neg], base)


def _softplus(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    # log(1 + exp(beta x)) / beta, as relu(bx) + log(1 + exp(-|bx|)) (no overflow)
    beta = float(m.beta)
    bx = s if beta == 1.0 else g.op("Mul", [s, _scalar(g, beta, f"{base}_beta")], base)
    tail = g.op("Log", [g.op("Add", [_scalar(g, 1.0, f"{base}_one"), g.op(
        "Exp", [g.op("Neg", [g.op("Abs", [bx], base)], base)], base)], base)], base)
    y = g.op("Add", [g.op("Relu", [bx], base), tail], base)
    return y if beta == 1.0 else g.op("Div", [y, _scalar(g, beta, f"{base}_beta")], base)


def _softsign(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return g.op("Div", [s, g.op("Add", [_scalar(g, 1.0, f"{base}_one"),
                                        g.op("Abs", [s], base)], base)], base)


def _log_sigmoid(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return g.op("Log", [g.op("Sigmoid", [s], base)], base)


def _soft_min(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return g.op("Softmax", [g.op("Neg", [s], base)], base, axis=-1)


def _square(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return g.op("Mul", [s, s], base)


def _power(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return g.op("Pow", [s, g.const(numpy.array(m.p, dtype=g.dtype), f"{base}_p")], base)


def _just_table(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return [s]


def _just_element(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    return s[0]


def _flatten_table(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    flat: list[str] = []
    stack = [s]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def _variadic(op_type: str) -> Leaf:
    def emit(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
        return g.op(op_type, list(s), base)
    return emit


def _leaves() -> dict[type, Leaf]:
    from .. import nn

    table: dict[type, Leaf] = {
        nn.Linear: _linear, nn.Identity: _identity, nn.Dropout: _dropout,
        nn.Tanh: _unary("Tanh"), nn.Sigmoid: _unary("Sigmoid"), nn.ReLU: _unary("Relu"),
        nn.SoftMax: _softmax(False), nn.LogSoftMax: _softmax(True),
        nn.CAddTable: _chain("Add"), nn.CSubTable: _chain("Sub"), nn.CMulTable: _chain("Mul"),
        nn.CDivTable: _chain("Div"), nn.JoinTable: _join, nn.SplitTable: _split,
        nn.SelectTable: _select_table, nn.NarrowTable: _narrow_table, nn.Narrow: _narrow,
        nn.Select: _select, nn.Reshape: _reshape, nn.View: _reshape,
        nn.MulConstant: _constant("Mul"), nn.AddConstant: _constant("Add"),
        nn.LookupTable: _lookup, nn.OneHot: _one_hot,
    }
    optional: dict[str, Leaf] = {
        "Abs": _unary("Abs"), "Exp": _unary("Exp"), "Log": _unary("Log"),
        "Square": _square, "Power": _power, "SoftSign": _softsign,
        "SoftPlus": _softplus, "LogSigmoid": _log_sigmoid, "SoftMin": _soft_min, "ELU": _elu,
        "LeakyReLU": _leaky, "HardTanh": _clip("min_value", "max_value"),
        "Clamp": _clip("min_value", "max_value"), "ReLU6": _clip(0.0, 6.0),
        "CMul": _broadcast_param("weight", "Mul"), "CAdd": _broadcast_param("bias", "Add"),
        "Mul": _broadcast_param("weight", "Mul"), "Add": _broadcast_param("bias", "Add"),
        "Transpose": _transpose, "SpatialConvolution": _conv,
        "SpatialMaxPooling": _pool("MaxPool"), "SpatialAveragePooling": _pool("AveragePool"),
        "BatchNormalization": _batch_norm, "SpatialBatchNormalization": _batch_norm,
        "SpatialZeroPadding": _zero_pad, "SpatialUpSamplingNearest": _upsample, "MM": _mm,
        "JustTable": _just_table, "JustElement": _just_element,
        "CMaxTable": _variadic("Max"), "CMinTable": _variadic("Min"),
        "Contiguous": _identity, "Copy": _identity, "GradientReversal": _identity,
        "SpatialDropout": _identity, "L1Penalty": _identity, "FlattenTable": _flatten_table,
        "Squeeze": _reshape, "Unsqueeze": _reshape,  # only the shape changes
    }
    for name, fn in optional.items():
        cls = getattr(nn, name, None)
        if cls is not None:
            table[cls] = fn
    if getattr(nn, "Sqrt", None) is not None:
        table[nn.Sqrt] = _sqrt
    return table


def _sqrt(g: _Graph, m: Any, s: Sym, v: Any, out: Any, base: str) -> Sym:
    eps = float(getattr(m, "eps", 0.0))
    if eps:
        s = g.op("Add", [s, g.const(numpy.array(eps, dtype=g.dtype), f"{base}_eps")], base)
    return g.op("Sqrt", [s], base)


_LEAVES: dict[type, Leaf] = {}


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def _flatten(sym: Sym, val: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(sym, list):
        for s, v in zip(sym, val):
            _flatten(s, v, out)
    else:
        out.append((sym, val))


def _example(model: Module, value: Any) -> Any:
    """One example array: floating ones in the model's dtype, integer ones (indices) kept."""
    if not backend.is_array(value):
        value = numpy.asarray(value)
    if backend.is_floating(value):
        return backend.to_device(value, None, model._dtype)
    return value


def export(model: Module, example_input: Any, path: str | os.PathLike,
           recurrent: str = "auto", input_names: list[str] | None = None) -> Any:
    """Write ``model`` to ``path`` as an ONNX model (opset 17), with every output it returns.

    Supported: gModules (nested ones inlined) and containers (Sequential, ConcatTable,
    ParallelTable, Concat) of the library's modules: Linear, Identity, the activations
    (Tanh, Sigmoid, ReLU, ReLU6, ELU, LeakyReLU, SoftPlus, SoftSign, LogSigmoid, HardTanh,
    Clamp, SoftMax, LogSoftMax, SoftMin), Abs/Exp/Log/Sqrt/Square/Power, the table modules
    (CAdd/CSub/CMul/CDiv/CMax/CMinTable, Join/Split/Select/NarrowTable, JustTable/JustElement),
    Narrow, Select, Reshape, View, Squeeze, Unsqueeze, Transpose, MM, the constants, CMul, CAdd,
    Mul, Add, BatchNormalization and SpatialBatchNormalization (their running statistics),
    SpatialConvolution, max and average pooling, zero padding, nearest upsampling, LookupTable,
    OneHot, Dropout/SpatialDropout/Copy/Contiguous/GradientReversal as the identity; the recipe
    recurrent
    models ``lstm.LSTM``/``lstm.GRU``/``lstm.RNN`` (as ONNX's ``LSTM``/``GRU``/``RNN`` operators,
    one per layer, in PyTorch's state layout), other recurrent modules unrolled over the
    example's time steps, and models loaded from Lua ``.t7`` files. A model returning several
    arrays (a gModule with several outputs; an LSTM's ``[outputs, h_n, c_n]``) gets one ONNX
    output per array, in order, named ``output0``, ``output1``...

    The example input fixes what cannot vary: time steps of unrolled recurrences, axis sizes of
    ``Narrow``/``SplitTable``. The batch axis stays free where ONNX allows (``Reshape`` keeps it
    with ONNX's ``0``); the inputs are declared with the example's shapes. The model is run in
    evaluation mode (Dropout off) and put back in its mode afterwards.

    Args:
        model: the module to export.
        example_input: an array, or the list of arrays the model takes (integer arrays for
            ``LookupTable``/``OneHot`` indices, 0-based).
        path: the ``.onnx`` file to write.
        recurrent: ``"auto"`` (ONNX recurrent operators where they apply) or ``"unrolled"``.
        input_names: names of the ONNX inputs (default ``input0``, ``input1``...).
    Returns:
        The ``onnx.ModelProto`` written (checked with ``onnx.checker``).
    Raises:
        OnnxExportError: a module has no ONNX counterpart (named, with its node), bad options.

    Example:
        >>> from nngraph_py import nn, onnx
        >>> x = nn.Identity()()
        >>> model = nn.gModule([x], [nn.LogSoftMax()(nn.Linear(4, 3)(x))])
        >>> onnx.export(model, numpy.zeros((2, 4), "float32"), "model.onnx")  # doctest: +SKIP
    """
    onnx = _onnx()
    if recurrent not in ("auto", "unrolled"):
        raise OnnxExportError(f"recurrent must be 'auto' or 'unrolled', got {recurrent!r}")
    if not isinstance(model, Module):
        raise OnnxExportError(f"export expects a module, got {type(model).__name__}")
    if not _LEAVES:
        _LEAVES.update(_leaves())
    g = _Graph(model._dtype)
    modes = [(m, m.train) for m in model.modules()]
    model.evaluate()
    try:
        leaves: list[Any] = []

        def structure(value: Any) -> Any:  # nested lists of arrays -> nested lists of indices
            if isinstance(value, (list, tuple)):
                return [structure(v) for v in value]
            leaves.append(_example(model, value))
            return len(leaves) - 1

        shape = structure(example_input)
        names = list(input_names) if input_names else [f"input{k}" for k in range(len(leaves))]
        if len(names) != len(leaves):
            raise OnnxExportError(f"{len(names)} input names for {len(leaves)} input arrays")
        graph_inputs = []
        for name, v in zip(names, leaves):
            g._used.add(name)
            host = _host(v)
            elem = onnx.helper.np_dtype_to_tensor_dtype(host.dtype)
            graph_inputs.append(onnx.helper.make_tensor_value_info(name, elem, list(host.shape)))

        def rebuild(node: Any, table: list[Any]) -> Any:
            return [rebuild(n, table) for n in node] if isinstance(node, list) else table[node]

        sym_in: Sym = rebuild(shape, names)
        val_in = rebuild(shape, leaves)
        sym_out, val_out = _Exporter(g, recurrent).module(model, sym_in, val_in)
    finally:
        for m, mode in modes:
            m.train = mode
    flat: list[tuple[str, Any]] = []
    _flatten(sym_out, val_out, flat)
    graph_outputs = []
    for k, (s, v) in enumerate(flat):
        host = _host(v)
        name = f"output{k}"
        g.nodes.append(onnx.helper.make_node("Identity", [s], [name], name=f"output{k}/Identity"))
        graph_outputs.append(onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(host.dtype), list(host.shape)))
    graph = onnx.helper.make_graph(g.nodes, f"nngraph_py_{type(model).__name__}", graph_inputs,
                                   graph_outputs, initializer=g.initializers)
    proto = onnx.helper.make_model(graph, producer_name="nngraph_py",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 8)
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(path))
    return proto
