"""Modules made of modules (Lua: ``nn.Container``, ``nn.Sequential``, ``nn.ConcatTable``,
``nn.ParallelTable``, ``nn.Parallel``, ``nn.Concat``).

A container lists its members through :meth:`Module.children`, so parameters, ``named_parameters``
(``1.weight``: members numbered from 1, as printed), ``clone``, ``to``, ``training`` /
``evaluate`` and ``clear_state`` work through the base class. Indexing is Python's:
``seq[0]`` is the member printed ``(1)``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .. import backend, nest
from ..errors import GraphBuildError, InputError, NNGraphError, ShapeError, shape_str
from ..graph.node import Node
from ..module import Module, refuse_integers, reuse_error

__all__ = ["Container", "Sequential", "ConcatTable", "ParallelTable", "Parallel", "Concat"]


def run_member(m: Module, x: Any) -> Any:
    """``m.update_output(x)`` with the checks ``Module.forward`` does (kind, integer inputs),
    0-d results kept as 0-d arrays."""
    m._check_kind(x)
    if not m.integer_inputs:
        refuse_integers(m, x)
    out = m.update_output(x)
    if type(out) is not list and not backend.is_array(out) and out is not None:
        out = m.output = nest.as_array(out)
    return out


def member_grad(m: Module, x: Any, g: Any) -> Any:
    """``m.update_grad_input(x, g)``, ``None`` in ``g`` read as zeros like ``m.output``."""
    g = nest.fill_none(g, m.output)
    gi = m.update_grad_input(x, g)
    if type(gi) is not list and not backend.is_array(gi) and gi is not None:
        gi = m.grad_input = nest.as_array(gi)
    return gi


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
            raise GraphBuildError(f"{repr(module).splitlines()[0]} is already in this "
                                  f"{type(self).__name__}; add module.clone() for a second copy")
        if module._owner is not None:
            raise reuse_error(module, f"as a member of {module._owner.describe()}")
        if module._node is not None:
            raise reuse_error(module, f"by {module._node.describe()}")
        if any(m is self for m in module.modules()):
            raise GraphBuildError(f"{type(self).__name__}.add: the module contains this "
                                  f"container; a container cannot hold itself")
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
        module._owner = self
        return self

    integer_inputs = True  # members check what they receive

    def children(self) -> list[Module]:
        return list(self._members)

    def _replace_child(self, index: int, old: Module, new: Module) -> None:
        if new._node is not None or (new._owner is not None and new._owner is not self):
            raise reuse_error(new, "elsewhere; replace() needs a new module")
        self._members[index] = new
        new._owner = self
        old._owner = None

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
                out = run_member(m, out)
        self.output = out
        return out

    def _member_input(self, i: int, input: Any) -> Any:
        return self._members[i - 1].output if i > 0 else input

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        grad = grad_output
        for i in range(len(self._members) - 1, -1, -1):
            with self._member(i):
                grad = member_grad(self._members[i], self._member_input(i, input), grad)
        self.grad_input = grad
        return grad

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        # Each member's grad_output is the grad_input its successor kept in update_grad_input.
        grad = grad_output
        for i in range(len(self._members) - 1, -1, -1):
            m = self._members[i]
            with self._member(i):
                m.acc_grad_parameters(self._member_input(i, input), nest.fill_none(grad, m.output),
                                      scale)
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
    if len(grads) == 1:
        return grads[0]
    total = nest.add(grads[0], grads[1])
    for g in grads[2:]:
        total = nest.add_into(total, g)
    return total


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
                outputs.append(run_member(m, input))
        self.output = outputs
        return outputs

    def update_grad_input(self, input: Any, grad_output: list[Any]) -> Any:
        self._check_member_grads(grad_output)
        grads = []
        for i, (m, g) in enumerate(zip(self._members, grad_output)):
            with self._member(i):
                grads.append(member_grad(m, input, g))
        self.grad_input = _sum_grads(grads)
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: list[Any], scale: float = 1.0) -> None:
        for i, (m, g) in enumerate(zip(self._members, grad_output)):
            with self._member(i):
                m.acc_grad_parameters(input, nest.fill_none(g, m.output), scale)

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
                outputs.append(run_member(m, x))
        self.output = outputs
        return outputs

    def update_grad_input(self, input: list[Any], grad_output: list[Any]) -> list[Any]:
        self._check_member_grads(grad_output)
        grads = []
        for i, (m, x, g) in enumerate(zip(self._members, input, grad_output)):
            with self._member(i):
                grads.append(member_grad(m, x, g))
        self.grad_input = grads
        return grads

    def acc_grad_parameters(self, input: list[Any], grad_output: list[Any],
                            scale: float = 1.0) -> None:
        for i, (m, x, g) in enumerate(zip(self._members, input, grad_output)):
            with self._member(i):
                m.acc_grad_parameters(x, nest.fill_none(g, m.output), scale)

    def __repr__(self) -> str:
        return self._tree_repr()


def _axis_of(container: Container, dim: int, x: Any, what: str) -> int:
    ndim = int(x.ndim)
    if not -ndim <= dim < ndim:
        raise ShapeError(f"{container.describe()}: {what} dimension {dim} is out of range for "
                         f"{shape_str(x)}")
    return dim % ndim


def _narrow(x: Any, axis: int, start: int, length: int) -> Any:
    return x[(slice(None),) * axis + (slice(start, start + length),)]


class Parallel(Container):
    """Member ``i`` applied to slice ``i`` of the input along ``input_dim``; the outputs joined
    along ``output_dim`` (Lua: ``nn.Parallel(inputDimension, outputDimension)``).

    Args:
        input_dim: the axis of the input to slice (0-based NumPy axis; Lua's are 1-based), one
            slice per member; the axis is removed from each slice (Lua's ``select``).
        output_dim: the axis of the members' outputs to concatenate along (0-based).

    Example:
        >>> par = Parallel(0, 0).add(Linear(3, 2)).add(Linear(3, 4))
        >>> par.forward(numpy.ones((2, 3), "float32")).shape   # row i to member i
        (6,)
    """

    input_kind = "array"

    def __init__(self, input_dim: int, output_dim: int, *modules: Module):
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        super().__init__(*modules)

    def _slices(self, input: Any) -> tuple[int, list[Any]]:
        axis = _axis_of(self, self.input_dim, input, "input")
        n = int(input.shape[axis])
        if n != len(self._members):
            raise ShapeError(f"{self.describe()}: expected {len(self._members)} slices (one per "
                             f"member) along axis {self.input_dim}, got {shape_str(input)}")
        head = (slice(None),) * axis
        return axis, [input[head + (i,)] for i in range(n)]

    def update_output(self, input: Any) -> Any:
        _, slices = self._slices(input)
        outputs = []
        for i, (m, x) in enumerate(zip(self._members, slices)):
            with self._member(i):
                outputs.append(run_member(m, x))
        axis = _axis_of(self, self.output_dim, outputs[0], "output")
        self._sizes = [int(o.shape[axis]) for o in outputs]
        self.output = backend.get_array_module(input).concatenate(outputs, axis=axis)
        return self.output

    def _grad_slices(self, grad_output: Any) -> list[Any]:
        axis = self.output_dim % int(grad_output.ndim)
        out, start = [], 0
        for size in self._sizes:
            out.append(_narrow(grad_output, axis, start, size))
            start += size
        return out

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        axis, slices = self._slices(input)
        grad = backend.get_array_module(input).zeros_like(input)
        head = (slice(None),) * axis
        for i, (m, x, g) in enumerate(zip(self._members, slices, self._grad_slices(grad_output))):
            with self._member(i):
                grad[head + (i,)] = member_grad(m, x, g)
        self.grad_input = grad
        return grad

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        _, slices = self._slices(input)
        for i, (m, x, g) in enumerate(zip(self._members, slices, self._grad_slices(grad_output))):
            with self._member(i):
                m.acc_grad_parameters(x, g, scale)

    def extra_repr(self) -> str:
        return f"{self.input_dim}, {self.output_dim}"

    def __repr__(self) -> str:
        return self._tree_repr()


class Concat(Container):
    """Every member applied to the same input; the outputs joined along ``dim`` (Lua:
    ``nn.Concat(dim)``).

    Args:
        dim: the axis to concatenate along (0-based NumPy axis, counting the batch axis; Lua's
            is 1-based).

    The gradient w.r.t. the input is the sum of the members' gradients for their slices.

    Example:
        >>> cat = Concat(1).add(Linear(3, 2)).add(Linear(3, 4))
        >>> cat.forward(numpy.ones((5, 3), "float32")).shape
        (5, 6)
    """

    def __init__(self, dim: int, *modules: Module):
        self.dim = int(dim)
        super().__init__(*modules)

    def update_output(self, input: Any) -> Any:
        outputs = []
        for i, m in enumerate(self._members):
            with self._member(i):
                outputs.append(run_member(m, input))
        axis = _axis_of(self, self.dim, outputs[0], "output")
        self._sizes = [int(o.shape[axis]) for o in outputs]
        self.output = backend.get_array_module(outputs[0]).concatenate(outputs, axis=axis)
        return self.output

    def _grad_slices(self, grad_output: Any) -> list[Any]:
        axis = self.dim % int(grad_output.ndim)
        out, start = [], 0
        for size in self._sizes:
            out.append(_narrow(grad_output, axis, start, size))
            start += size
        return out

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        grads = []
        for i, (m, g) in enumerate(zip(self._members, self._grad_slices(grad_output))):
            with self._member(i):
                grads.append(member_grad(m, input, g))
        self.grad_input = _sum_grads(grads)
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        for i, (m, g) in enumerate(zip(self._members, self._grad_slices(grad_output))):
            with self._member(i):
                m.acc_grad_parameters(input, g, scale)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def __repr__(self) -> str:
        return self._tree_repr()
