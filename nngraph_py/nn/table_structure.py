"""Modules that rearrange lists of arrays or apply a module to each element (Lua:
``nn.MapTable``, ``nn.FlattenTable``, ``nn.CriterionTable``)."""
from __future__ import annotations

from typing import Any

from .. import backend
from ..errors import InputError, shape_str
from ..module import Array, Module
from .criterion import Criterion, ModuleFromCriterion

__all__ = ["MapTable", "FlattenTable", "CriterionTable", "ZipTable", "ZipTableOneToMany",
           "flatten_nested", "unflatten_like"]


def flatten_nested(value: Any) -> list[Array]:
    """The arrays of a nested list, depth first."""
    if isinstance(value, (list, tuple)):
        out: list[Array] = []
        for v in value:
            out.extend(flatten_nested(v))
        return out
    return [value]


def unflatten_like(flat: list[Any], like: Any) -> Any:
    """``flat`` (as made by :func:`flatten_nested`) rebuilt with the nesting of ``like``."""
    it = iter(flat)

    def build(template: Any) -> Any:
        if isinstance(template, (list, tuple)):
            return [build(t) for t in template]
        return next(it)

    return build(like)


class MapTable(Module):
    """Apply one module to every element of a list (Lua: ``nn.MapTable(module)``).

    Each element gets its own clone of ``module`` sharing its parameters and gradients, so the
    gradients of all elements accumulate into ``module``'s. Clones are made as needed and rebuilt
    after a device/dtype conversion or ``get_parameters``.

    Shape: input a list of ``n`` inputs of ``module``; output the list of its ``n`` outputs.
    """

    input_kind = "table"
    _state_names = ()

    def __init__(self, module: Module):
        super().__init__()
        if not isinstance(module, Module):
            raise InputError(f"MapTable expects a module, got {type(module).__name__}")
        self.module = module
        self._clones: list[Module] = []

    def children(self) -> list[Module]:
        return [self.module]

    def _shared_names(self) -> list[str]:
        names: list[str] = []
        for m in self.module.modules():
            for n in m._param_names:
                if n not in names:
                    names.extend([n, "grad_" + n])
        return names

    def _clone(self, i: int) -> Module:
        if i == 0:
            return self.module
        while len(self._clones) < i:
            self._clones.append(self.module.clone(*self._shared_names()))
        clone = self._clones[i - 1]
        clone.train = self.module.train
        for mine, theirs in zip(clone.modules(), self.module.modules()):
            mine.train = theirs.train
        return clone

    def _after_parameters_replaced(self) -> None:
        self._clones = []  # rebuilt from the converted module on the next forward

    def _clear_extra_state(self) -> None:
        self._clones = []

    def update_output(self, input: list[Any]) -> list[Any]:
        self.output = [self._clone(i).forward(x) for i, x in enumerate(input)]
        return self.output

    def _grads(self, grad_output: Any, n: int) -> list[Any]:
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != n:
            raise InputError(f"{self.describe()}: expected grad_output as a list of {n}, got "
                             f"{shape_str(grad_output)}")
        return list(grad_output)

    def update_grad_input(self, input: list[Any], grad_output: Any) -> list[Any]:
        grads = self._grads(grad_output, len(input))
        self.grad_input = [self._clone(i).update_grad_input(x, g)
                           for i, (x, g) in enumerate(zip(input, grads))]
        return self.grad_input

    def acc_grad_parameters(self, input: list[Any], grad_output: Any, scale: float = 1.0) -> None:
        grads = self._grads(grad_output, len(input))
        for i, (x, g) in enumerate(zip(input, grads)):
            self._clone(i).acc_grad_parameters(x, g, scale)

    def __repr__(self) -> str:
        inner = repr(self.module).replace("\n", "\n  ")
        return f"nn.MapTable {{\n  {inner}\n}}"


class FlattenTable(Module):
    """A nested list of arrays made flat, depth first (Lua: ``nn.FlattenTable``)."""

    input_kind = "table"

    def update_output(self, input: list[Any]) -> list[Array]:
        self.output = flatten_nested(input)
        return self.output

    def update_grad_input(self, input: list[Any], grad_output: list[Any]) -> list[Any]:
        n = len(flatten_nested(input))
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != n:
            raise InputError(f"{self.describe()}: expected grad_output as a list of {n} arrays, "
                             f"got {shape_str(grad_output)}")
        grads = [g if g is not None else backend.get_array_module(x).zeros_like(x)
                 for g, x in zip(grad_output, flatten_nested(input))]
        self.grad_input = unflatten_like(grads, input)
        return self.grad_input


class ZipTable(Module):
    """``[[a1, a2], [b1, b2]] -> [[a1, b1], [a2, b2]]`` (Lua: ``nn.ZipTable``); the inner lists
    have one length."""

    input_kind = "table"

    def update_output(self, input: list[Any]) -> list[list[Any]]:
        lengths = {len(t) if isinstance(t, (list, tuple)) else -1 for t in input}
        if not input or len(lengths) != 1 or -1 in lengths:
            raise InputError(f"{self.describe()}: expected a list of lists of one length, got "
                             f"{shape_str(input)}")
        self.output = [list(z) for z in zip(*input)]
        return self.output

    def update_grad_input(self, input: list[Any], grad_output: list[Any]) -> list[Any]:
        self.grad_input = [list(z) for z in zip(*grad_output)]
        return self.grad_input


class ZipTableOneToMany(Module):
    """``[v, [a1, a2]] -> [[v, a1], [v, a2]]`` (Lua: ``nn.ZipTableOneToMany``); ``v``'s gradient
    is the sum of its copies'."""

    input_kind = "table"

    def update_output(self, input: list[Any]) -> list[list[Any]]:
        if len(input) != 2 or not isinstance(input[1], (list, tuple)):
            raise InputError(f"{self.describe()}: expected [element, [a1, a2, ...]], got "
                             f"{shape_str(input)}")
        self.output = [[input[0], a] for a in input[1]]
        return self.output

    def update_grad_input(self, input: list[Any], grad_output: list[Any]) -> list[Any]:
        gv = grad_output[0][0]
        for g in grad_output[1:]:
            gv = gv + g[0]
        self.grad_input = [gv, [g[1] for g in grad_output]]
        return self.grad_input


class CriterionTable(ModuleFromCriterion):
    """A criterion as a module over ``[input, target]`` (Lua: ``nn.CriterionTable(criterion)``);
    the output is the 0-d loss. (nngraph's :class:`ModuleFromCriterion` does the same; this is
    the name nn uses.)

    Args:
        criterion: the loss.
        n_predictions: for criteria whose input is a list (``CosineEmbeddingCriterion``'s
            ``[x1, x2]``, ``ParallelCriterion``'s inputs): the module then takes one flat list,
            its first ``n_predictions`` entries forming the criterion's input and the rest its
            target (one array, or a list when several remain), as graph nodes take flat lists.
            The gradient is flat in the same way.
    """

    def __init__(self, criterion: Criterion, n_predictions: int | None = None):
        super().__init__(criterion)
        self.n_predictions = None if n_predictions is None else int(n_predictions)

    def _split(self, input: Any) -> tuple[Any, Any]:
        k = self.n_predictions
        if k is None:
            return super()._split(input)
        if not isinstance(input, (list, tuple)) or len(input) <= k:
            raise InputError(f"{self.describe()}: expected a list of {k} predictions followed by "
                             f"the target(s), got {shape_str(input)}")
        rest = list(input[k:])
        return list(input[:k]), rest[0] if len(rest) == 1 else rest

    def update_grad_input(self, input: list[Any], grad_output: Array) -> list[Any]:
        prediction, target = self._split(input)
        if int(grad_output.size) != 1:
            raise InputError(f"{self.describe()}: expected grad_output of one element (the loss "
                             f"is a scalar), got {shape_str(grad_output)}")
        scale = grad_output.reshape(())

        def scaled(g: Any) -> Any:
            return [scaled(v) for v in g] if isinstance(g, (list, tuple)) else g * scale

        def zeros(t: Any) -> Any:
            if isinstance(t, (list, tuple)):
                return [zeros(v) for v in t]
            return backend.get_array_module(t).zeros_like(t)

        grad = scaled(self.criterion.update_grad_input(prediction, target))
        if self.n_predictions is None:
            self.grad_input = [grad, zeros(target)]
        else:
            tz = zeros(target)
            self.grad_input = list(grad) + (tz if isinstance(tz, list) else [tz])
        return self.grad_input

    def extra_repr(self) -> str:
        return repr(self.criterion).replace("\n", "\n  ")
