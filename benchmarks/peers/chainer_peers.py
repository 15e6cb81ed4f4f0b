"""Chainer (v7, the last release) on NumPy: ``L.NStepLSTM`` and a loop over ``L.LSTM``.

Chainer 7.8.1 predates NumPy 2 and setuptools without ``pkg_resources``. :func:`import_chainer`
makes it import on NumPy 2 with two shims, applied in the measuring child only: it restores
``numpy.sctypes`` (removed in NumPy 2.0; Chainer reads it once to build an index-dtype table) and
skips ``chainer._environment_check`` (which imports ``pkg_resources`` and ``numpy.distutils``
only to warn about optional packages). Neither touches the arithmetic. The tables say when the
shims were needed (:data:`SHIMS`).

Install (the package needs an old setuptools to build, and ``six``)::

    echo 'setuptools<70' > /tmp/bc.txt
    pip install --no-deps --build-constraint /tmp/bc.txt chainer==7.8.1 && pip install six
"""
from __future__ import annotations

import contextlib
import sys
import types
from typing import Any

import numpy

from .base import LEARNING_RATE, Peer

__all__ = ["ChainerNStepLSTM", "ChainerLSTMLoop", "import_chainer", "SHIMS"]

#: The compatibility shims :func:`import_chainer` applied (empty when none was needed).
SHIMS: list[str] = []


def import_chainer() -> Any:
    """Import Chainer, with the NumPy-2 shims described in the module docstring if needed."""
    if "chainer" in sys.modules:
        return sys.modules["chainer"]
    try:
        numpy.sctypes  # noqa: B018 - NumPy 2 raises AttributeError here
    except AttributeError:
        numpy.sctypes = {  # type: ignore[attr-defined]
            "int": [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
            "uint": [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
            "float": [numpy.float16, numpy.float32, numpy.float64],
            "complex": [numpy.complex64, numpy.complex128],
            "others": [bool, object, bytes, str, numpy.void],
        }
        SHIMS.append("numpy.sctypes restored")
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        stub = types.ModuleType("chainer._environment_check")
        stub.check = lambda: None  # type: ignore[attr-defined]
        sys.modules["chainer._environment_check"] = stub
        SHIMS.append("chainer._environment_check skipped (no pkg_resources)")
    import chainer

    return chainer


chainer = import_chainer()
F = chainer.functions
L = chainer.links


class ChainerNStepLSTM(Peer):
    """``L.NStepLSTM`` (Chainer's whole-sequence LSTM; a Python loop over time on the CPU)."""

    label = "Chainer L.NStepLSTM"
    framework = "chainer"

    def __init__(self, workload: Any, seed: int = 0):
        super().__init__(workload, seed)
        w = workload
        numpy.random.seed(seed)  # Chainer's initializers draw from NumPy's global generator
        self.model = chainer.Chain()
        with self.model.init_scope():
            self._build()
            self.model.head = L.Linear(w.hidden, w.classes)
        self.optimizer = chainer.optimizers.Adam(alpha=LEARNING_RATE)
        self.optimizer.setup(self.model)

    def _build(self) -> None:
        w = self.w
        self.model.lstm = L.NStepLSTM(w.layers, w.input_size, w.hidden, 0.0)

    def prepare(self, x: Any, y: Any) -> tuple[Any, Any]:
        # NStepLSTM takes one (T, input) array per sequence; its outputs come batch-major too.
        xs = [numpy.ascontiguousarray(x[:, b]) for b in range(x.shape[1])]
        y = numpy.ascontiguousarray(y.T).reshape(-1) if self.w.every_step else y
        return xs, y.astype(numpy.int32)

    def _features(self, xs: Any) -> Any:
        hy, _, ys = self.model.lstm(None, None, xs)
        return F.concat(ys, axis=0) if self.w.every_step else hy[-1]

    def zero_grad(self) -> None:
        self.model.cleargrads()

    def forward(self, x: Any, train: bool = True) -> None:
        self._logits = self.model.head(self._features(x))

    def loss(self, y: Any) -> float:
        self._loss = F.softmax_cross_entropy(self._logits, y)
        return float(self._loss.array)

    def backward(self) -> None:
        self._loss.backward()

    def update(self) -> None:
        self.optimizer.update()

    def no_grad(self) -> Any:
        stack = contextlib.ExitStack()
        stack.enter_context(chainer.no_backprop_mode())
        stack.enter_context(chainer.using_config("train", False))
        return stack

    def versions(self) -> dict[str, str]:
        out = {"chainer": chainer.__version__}
        if SHIMS:
            out["chainer_shims"] = "; ".join(SHIMS)
        return out


class ChainerLSTMLoop(ChainerNStepLSTM):
    """Stacked ``L.LSTM`` links called once per step (Chainer's classic stateful LSTM)."""

    label = "Chainer L.LSTM loop"

    def _build(self) -> None:
        w = self.w
        self.model.cells = chainer.ChainList(
            *[L.LSTM(w.input_size if k == 0 else w.hidden, w.hidden) for k in range(w.layers)])

    def prepare(self, x: Any, y: Any) -> tuple[Any, Any]:
        y = y.reshape(-1) if self.w.every_step else y
        return list(x), y.astype(numpy.int32)

    def _features(self, xs: Any) -> Any:
        for cell in self.model.cells:
            cell.reset_state()
        outs = []
        for x_t in xs:
            h = x_t
            for cell in self.model.cells:
                h = cell(h)
            outs.append(h)
        return F.concat(outs, axis=0) if self.w.every_step else outs[-1]
