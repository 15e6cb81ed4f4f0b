"""Modules made of modules (Lua: ``nn.Container``, ``nn.Sequential``, ``nn.ConcatTable``,
``nn.ParallelTable``).

A container lists its members through :meth:`Module.children`, so parameters, ``named_parameters``
(``1.weight``: members numbered from 1, as printed), ``clone``, ``to``, ``training`` /
``evaluate`` and ``clear_state`` work through the base class. Indexing is Python's:
``seq[0]`` is the member printed ``(1)``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .. import backend
from ..errors import InputError, NNGraphError, ShapeError, shape_str
from ..graph.node import Node
from ..module import Module

__all__ = ["Container", "Sequential", "ConcatTable", "ParallelTable"]


class Container(Module):
    """Base of the modules that hold an ordered list of members (Lua: ``nn.Container``).

    Args:
        *modules: initial members, as if given to :meth:`add` in order.

    The first member sets the container's device and dtype; later members must match (convert
    after building: ``seq.double()``, ``seq.to("cuda")``).
    """

    def __init__(self, *modules: Module):
        super().__init__()
        self._members: list[Module] = []
        for m in modules:
            self.add(m)

    def add(self, module: Module) -> "Container":
        """Append a member (Lua: ``add``); returns self, so calls chain."""
        if not isinstance(module, Module):
            hint = ""
            if isinstance(module, Node):
                hint = ": a graph node was given; add the module itself, e.g. nn.Linear(3, 4)"
            raise InputError(f"{type(self).__name__}.add expects a module, got "
                             f"{type(module).__name__}{hint}")
        if module is self or any(m is module for m in self._members):
            raise ValueError(f"{repr(module).splitlines()[0]} is already in this "
                             f"{type(self).__name__}; add module.clone() for a second copy")
        if not self._members:
            self._device, self._dtype = module._device, module._dtype
        elif (module._device, module._dtype) != (self._device, self._dtype):
            raise backend.DeviceError(
                f"{repr(module).splitlines()[0]} is on '{module._device}' ({module._dtype}) but "
                f"this {type(self).__name__} is on '{self._device}' ({self._dtype}); build the "
                f"container first and convert it as a whole, e.g. container.to('{self._device}', "
                f"'{self._dtype}')"
            )
        self._members.append(module)
        return self

    def children(self) -> list[Module]:
        return list(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __getitem__(self, index: int) -> Module:
        """The member at a 0-based ``index`` (negative from the end); ``[0]`` is printed ``(1)``."""
        return self._members[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._members)

    def describe(self) -> str:
        # The first line of a container's repr is "nn.Sequential {": name it without the brace.
        if self._node is not None:
            return self._node.describe()
        return f"nn.{type(self).__name__}"

    @contextlib.contextmanager
    def _member(self, i: int) -> Iterator[None]:
        """Prefix the library's errors raised in member ``i`` with its position (Lua's
        ``rethrowErrors``); the exception keeps its type."""
        try:
            yield
        except NNGraphError as exc:
            if exc.args and isinstance(exc.args[0], str):
                exc.args = (f"in member ({i + 1}) of nn.{type(self).__name__}: {exc.args[0]}",) \
                    + exc.args[1:]
            raise

    def _check_list(self, value: Any, what: str) -> None:
        n = len(self._members)
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{self.describe()}: expected {what} as a list of {n} arrays (one per "
                             f"member), got {shape_str(value)}")
        if len(value) != n:
            raise ShapeError(f"{self.describe()}: expected {what} as a list of {n} arrays (one per "
                             f"member), got {len(value)}: {shape_str(value)}")

    def _check_member_grads(self, grad_output: Any) -> None:
        """One gradient per member, each of the shape of that member's output."""
        self._check_list(grad_output, "grad_output")
        for i, (m, g) in enumerate(zip(self._members, grad_output)):
            if g is not None:
                with self._member(i):
                    m._check_grad_output(g)

    def _tree_repr(self) -> str:
        """Lua's tree print of ConcatTable / ParallelTable: one branch per member."""
        tab, n = "  ", len(self._members)
        lines = [f"nn.{type(self).__name__} {{", f"{tab}input"]
        for i, m in enumerate(self._members, start=1):
            last = i == n
            head, ext = ("   `-> ", "       ") if last else ("  |`-> ", "  |    ")
            body = repr(m).replace("\n", "\n" + tab + ext)
            lines.append(f"{tab}{head}({i}): {body}")
        lines.append(f"{tab}   ... -> output")
        lines.append("}")
        return "\n".join(lines)


class Sequential(Container):
    """Members applied one after the other (Lua: ``nn.Sequential``).

    An empty Sequential is the identity.

    Example:
        >>> mlp = Sequential().add(Linear(20, 10)).add(Tanh())
        >>> print(mlp)
        nn.Sequential {
          [input -> (1) -> (2) -> output]
          (1): nn.Linear(20 -> 10)
          (2): nn.Tanh
        }
    """

    def update_output(self, input: Any) -> Any:
        out = input
        for i, m in enumerate(self._members):
            with self._member(i):
                out = m.update_output(m._check_kind(out))
        self.output = out
        return out

    def _member_input(self, i: int, input: Any) -> Any:
        return self._members[i - 1].output if i > 0 else input

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        grad = grad_output
        for i in range(len(self._members) - 1, -1, -1):
            with self._member(i):
                grad = self._members[i].update_grad_input(self._member_input(i, input), grad)
        self.grad_input = grad
        return grad

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        # Each member's grad_output is the grad_input its successor kept in update_grad_input.
        grad = grad_output
        for i in range(len(self._members) - 1, -1, -1):
            m = self._members[i]
            with self._member(i):
                m.acc_grad_parameters(self._member_input(i, input), grad, scale)
            grad = m.grad_input

    def __repr__(self) -> str:
        tab = "  "
        steps = "".join(f" -> ({i})" for i in range(1, len(self._members) + 1))
        lines = ["nn.Sequential {", f"{tab}[input{steps} -> output]"]
        for i, m in enumerate(self._members, start=1):
            lines.append(f"{tab}({i}): " + repr(m).replace("\n", "\n" + tab))
        lines.append("}")
        return "\n".join(lines)


def _sum_grads(grads: list[Any]) -> Any:
    """Sum gradients (arrays, or nested lists of arrays for a list input) into new arrays."""
    total = grads[0]
    for g in grads[1:]:
        total = _plus(total, g)
    return total


def _plus(a: Any, b: Any) -> Any:
    if isinstance(a, (list, tuple)):
        return [_plus(x, y) for x, y in zip(a, b)]
    return a + b


class ConcatTable(Container):
    """Apply every member to the same input; output the list of their outputs (Lua:
    ``nn.ConcatTable``).

    The gradient w.r.t. the input is the sum of the members' gradients (element by element when
    the input is a list).

    Shape:
        input: anything the members accept; output: a list with one entry per member.

    Example:
        >>> branches = ConcatTable(Linear(4, 3), Tanh())
        >>> [y.shape for y in branches.forward(numpy.ones((2, 4), "float32"))]
        [(2, 3), (2, 4)]
    """

    def update_output(self, input: Any) -> list[Any]:
        outputs = []
        for i, m in enumerate(self._members):
            with self._member(i):
                outputs.append(m.update_output(m._check_kind(input)))
        self.output = outputs
        return outputs

    def update_grad_input(self, input: Any, grad_output: list[Any]) -> Any:
        self._check_member_grads(grad_output)
        grads = []
        for i, (m, g) in enumerate(zip(self._members, grad_output)):
            with self._member(i):
                grads.append(m.update_grad_input(input, g))
        self.grad_input = _sum_grads(grads)
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: list[Any], scale: float = 1.0) -> None:
        for i, (m, g) in enumerate(zip(self._members, grad_output)):
            with self._member(i):
                m.acc_grad_parameters(input, g, scale)

    def __repr__(self) -> str:
        return self._tree_repr()


class ParallelTable(Container):
    """Apply member ``i`` to ``input[i]``; output the list of results (Lua: ``nn.ParallelTable``).

    Shape:
        input: a list with one entry per member; output: a list of the same length.

    Example:
        >>> par = ParallelTable(Linear(4, 3), Sigmoid())
        >>> x = [numpy.ones((2, 4), "float32"), numpy.ones(5, "float32")]
        >>> [y.shape for y in par.forward(x)]
        [(2, 3), (5,)]
    """

    def update_output(self, input: list[Any]) -> list[Any]:
        self._check_list(input, "input")
        outputs = []
        for i, (m, x) in enumerate(zip(self._members, input)):
            with self._member(i):
                outputs.append(m.update_output(m._check_kind(x)))
        self.output = outputs
        return outputs

    def update_grad_input(self, input: list[Any], grad_output: list[Any]) -> list[Any]:
        self._check_member_grads(grad_output)
        grads = []
        for i, (m, x, g) in enumerate(zip(self._members, input, grad_output)):
            with self._member(i):
                grads.append(m.update_grad_input(x, g))
        self.grad_input = grads
        return grads

    def acc_grad_parameters(self, input: list[Any], grad_output: list[Any],
                            scale: float = 1.0) -> None:
        for i, (m, x, g) in enumerate(zip(self._members, input, grad_output)):
            with self._member(i):
                m.acc_grad_parameters(x, g, scale)

    def __repr__(self) -> str:
        return self._tree_repr()
