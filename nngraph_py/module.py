"""The base class of every layer: Lua Torch's ``nn.Module``.

``forward`` and ``backward`` live here once and are not overridden; a module fills in
``update_output``, ``update_grad_input`` and, when it has parameters, ``acc_grad_parameters``.
Parameters are registered by name (``weight``) and their gradients live beside them
(``grad_weight``), as Lua's ``weight`` / ``gradWeight``.
"""
from __future__ import annotations

import copy
import numbers
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator

import numpy

from . import backend, nest
from .convertible import Convertible
from .errors import (ArgumentError, GraphBuildError, InputError, NNGraphError, ShapeError,
                     shape_str)
from .graph.node import make_node

Array = Any  # numpy.ndarray, cupy.ndarray or backend.StrictArray

__all__ = ["Module", "Array", "grad_output_mismatch", "clone_tree", "ConcurrentUseError",
           "reuse_error"]


class ConcurrentUseError(NNGraphError, RuntimeError):
    """A module was entered by a second thread while another was running it.

    Modules keep per-call state (outputs, gradients, caches), so one module object serves one
    thread at a time; give each thread its own ``module.clone()`` sharing the weights (see the
    README's section on threads).
    """


def reuse_error(module: Any, where: str) -> GraphBuildError:
    """The error for a module (or criterion) placed a second time in a graph or container tree."""
    first = repr(module).splitlines()[0].removesuffix(" {")
    return GraphBuildError(
        f"{first} is already used {where}; a module appears once in a graph or container tree "
        f"(its cached output and gradients belong to one place): use module.clone() for a copy, "
        f"or module.clone('weight', 'bias', 'grad_weight', 'grad_bias') to share its parameters"
    )


def integer_input_error(module: Any, value: Any, what: str = "input") -> InputError:
    """The error for an integer or boolean array given to a module that computes with floats."""
    return InputError(
        f"{module.describe()}: {what} has the integer dtype {value.dtype} {shape_str(value)}, but "
        f"this module computes in {numpy.dtype(module._dtype)}: convert the input first, e.g. "
        f"x.astype('{numpy.dtype(module._dtype)}') (integer inputs are for index modules such "
        f"as LookupTable and for criteria's targets)"
    )


def refuse_integers(module: Any, value: Any, what: str = "input") -> None:
    """Raise :func:`integer_input_error` when ``value`` (an array or a list of them) holds an
    integer array and ``module`` does not take integers; the graph calls it for every node."""
    if module.integer_inputs:
        return
    if isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            refuse_integers(module, v, f"{what}[{k}]")
    elif value is not None and getattr(value, "dtype", None) is not None \
            and value.dtype.kind in "iub":
        raise integer_input_error(module, value, what)


def _holds_arrays(value: list | tuple) -> bool:
    """Whether a (nested) list or tuple contains an array somewhere."""
    return any(backend.is_array(v) or (isinstance(v, (list, tuple)) and _holds_arrays(v))
               for v in value)


def grad_output_mismatch(output: Any, grad: Any, what: str, like: str) -> tuple[type, str] | None:
    """What is wrong with gradient ``grad`` for ``output``, or None when it fits.

    Arrays must have exactly the output's shape (a 0-d output takes a 0-d gradient, not a
    ``(1,)`` one); a list output is compared element by element with a list of its length, None
    entries meaning zeros.

    Args:
        output: the output the gradient is for.
        grad: the gradient given.
        what: how the message calls the gradient (``"grad_output"``, ``"grad_output[1]"``).
        like: how the message calls the output (``"its output in the last forward"``).
    Returns:
        None, or ``(error class, message)``.
    """
    if grad is None or output is None:
        return None
    if isinstance(output, (list, tuple)):
        if isinstance(grad, (list, tuple)) and len(grad) == len(output):
            for k, (o, g) in enumerate(zip(output, grad)):
                problem = grad_output_mismatch(o, g, f"{what}[{k}]", f"element {k} of {like}")
                if problem is not None:
                    return problem
        return None  # another form (an array for a list): the module accepts it or refuses it
    if isinstance(grad, (list, tuple)):
        return InputError, (f"expected {what} as one array of shape {shape_str(output)}, the "
                            f"shape of {like}, got a list of {len(grad)} {shape_str(grad)}")
    expected, shape = getattr(output, "shape", None), getattr(grad, "shape", None)
    if expected is None or shape is None:
        return None
    if tuple(shape) != tuple(expected):
        hint = " (a 0-d array, e.g. numpy.array(1.0), or a Python number)" if not expected else ""
        return ShapeError, (f"expected {what} of shape {shape_str(output)}{hint}, the shape of "
                            f"{like}, got {shape_str(grad)}")
    return None


class _InUse:
    """Marks a module busy for the calling thread during ``forward`` / ``backward``.

    A second thread entering the same module raises :class:`ConcurrentUseError`, and so does a
    ``backward`` from a thread other than the one that ran the last ``forward`` (it would read
    that thread's caches). One dict operation per call: ``setdefault`` is atomic under the GIL.
    """

    __slots__ = ("module", "first", "backward")

    def __init__(self, module: "Module", backward: bool = False):
        self.module, self.first, self.backward = module, False, backward

    def __enter__(self) -> None:
        state, me = self.module.__dict__, threading.get_ident()
        if state.get("_busy_thread") == me:
            return  # re-entered by the same thread (a module calling itself through a graph)
        other = state.setdefault("_busy_thread", me)
        if other != me:
            raise ConcurrentUseError(
                f"{self.module.describe()}: forward/backward was called from two threads at once; "
                f"a module keeps the state of one call at a time: give each thread its own "
                f"module.clone('weight', 'bias') (see the README, 'Threads')")
        self.first = True
        last = state.get("_forward_thread")
        if self.backward and last is not None and last != me:
            del state["_busy_thread"]
            self.first = False
            raise ConcurrentUseError(
                f"{self.module.describe()}: backward was called from another thread than the "
                f"last forward; its caches belong to that thread's input: run forward and "
                f"backward in one thread, or give each thread its own module.clone('weight', "
                f"'bias') (see the README, 'Threads')")
        if not self.backward:
            state["_forward_thread"] = me

    def __exit__(self, *exc: Any) -> None:
        if self.first:
            self.module.__dict__.pop("_busy_thread", None)


class Module(Convertible):
    """Abstract module (Lua: ``nn.Module``).

    Attributes:
        output: the result of the last ``forward`` (Lua ``output``).
        grad_input: the gradient w.r.t. the input of the last ``backward`` (Lua ``gradInput``).
        train: True in training mode (Dropout is active), set by :meth:`training` / :meth:`evaluate`.
        input_kind: what ``forward`` takes: ``"array"`` (one array), ``"table"`` (a list of
            arrays) or ``"any"``; a wrong kind is refused with a message naming the module.
        integer_inputs: whether integer (and boolean) arrays are accepted. The dtype policy:
            floating inputs are cast to the module's dtype; integer inputs are refused by the
            modules that compute with floats (Linear, Tanh, CAddTable...), with a message naming
            the node, and passed through unchanged by the modules that only move values
            (Identity, SelectTable, Narrow, View...) or take indices (LookupTable, OneHot,
            criteria's targets).
    """

    input_kind: str = "any"
    integer_inputs: bool = False

    def __init__(self) -> None:
        self.output: Any = None
        self.grad_input: Any = None
        self.train: bool = True
        self._param_names: list[str] = []
        self._device: str = "cpu"
        self._dtype = backend.get_default_dtype()
        self._node: Any = None  # the graph node this module belongs to, if any
        self._owner: Any = None  # the container this module is a member of, if any

    # ----------------------------------------------------------------------------------------
    # The protocol: fixed forward/backward, overridable update_* methods
    # ----------------------------------------------------------------------------------------
    def forward(self, input: Any) -> Any:
        """Compute the output for ``input`` (Lua: ``Module:forward``).

        Floating inputs of another dtype are cast to the module's dtype; arrays on another device
        are refused with a message saying how to move them. Integer arrays are left alone.

        Args:
            input: an array, or a list of arrays for table modules.
        Returns:
            The output (also kept in ``self.output``).
        """
        with _InUse(self):
            out = self.update_output(self._check_kind(self._accept_input(input)))
            if isinstance(out, numpy.generic) or type(out) is list:
                out = self.output = nest.as_array(out)
            return out

    def backward(self, input: Any, grad_output: Any, scale: float = 1.0) -> Any:
        """Gradient w.r.t. the input; accumulate parameter gradients (Lua: ``Module:backward``).

        Args:
            input: the input given to the preceding ``forward``.
            grad_output: gradient of the loss w.r.t. this module's output, of the output's shape
                (a list like the output for a list output); None means zeros.
            scale: factor applied to the parameter gradients before accumulation.
        Returns:
            ``grad_input`` (an array, or a list matching a list input).
        Raises:
            ShapeError: ``grad_output`` does not have the shape of the last ``forward``'s output.
            InputError: a list was given for an array output, or an array of the wrong kind.
        """
        with _InUse(self, backward=True):
            input = self._check_kind(self._accept_input(input))
            grad_output = self._check_grad_output(self._accept_input(grad_output,
                                                                     what="grad_output"))
            gi = self.update_grad_input(input, grad_output)
            if isinstance(gi, numpy.generic) or type(gi) is list:
                self.grad_input = nest.as_array(gi)
            self.acc_grad_parameters(input, grad_output, scale)
            return self.grad_input

    def update_output(self, input: Any) -> Any:
        """Compute ``self.output`` from ``input`` (Lua: ``updateOutput``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_output")

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        """Compute ``self.grad_input`` (Lua: ``updateGradInput``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_grad_input")

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        """Accumulate ``scale`` times the parameter gradients (Lua: ``accGradParameters``)."""

    def __call__(self, *args: Any) -> Any:
        """Build a graph node from this module (nngraph's ``module(node)`` call syntax).

        ``module()`` makes an input node; ``module(node)`` a node fed by one node (it receives that
        array); ``module([a, b])`` a node fed by a list (it receives a list of arrays).
        """
        return make_node(self, args)

    # ----------------------------------------------------------------------------------------
    # Parameters
    # ----------------------------------------------------------------------------------------
    def register_parameter(self, name: str, value: Array, grad: Array | None = None) -> None:
        """Declare ``self.<name>`` a parameter with gradient ``self.grad_<name>`` (zeros if None)."""
        if name not in self._param_names:
            self._param_names.append(name)
        setattr(self, name, value)
        if grad is None:
            grad = backend.get_array_module(value).zeros_like(value)
        setattr(self, "grad_" + name, grad)

    def children(self) -> list["Module"]:
        """The direct sub-modules (containers override this)."""
        return []

    def modules(self) -> Iterator["Module"]:
        """This module and all sub-modules, depth first, each once."""
        seen: set[int] = set()
        stack = [self]
        order = []
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            order.append(m)
            stack.extend(reversed(m.children()))
        return iter(order)

    def _own_named_parameters(self) -> Iterator[tuple[str, Array, Array]]:
        for name in self._param_names:
            yield name, getattr(self, name), getattr(self, "grad_" + name)

    def _named_parameter_triples(self, prefix: str = "") -> Iterator[tuple[str, Array, Array]]:
        """(name, param, grad) for this module and its children, shared arrays included."""
        for name, p, g in self._own_named_parameters():
            yield prefix + name, p, g
        for child_name, child in self.named_children():
            yield from child._named_parameter_triples(prefix + child_name + ".")

    def named_children(self) -> list[tuple[str, "Module"]]:
        """``(name, module)`` of the direct sub-modules; names are used in parameter names."""
        return [(str(i + 1), m) for i, m in enumerate(self.children())]

    def _unique_parameters(self) -> Iterator[tuple[str, Array, Array]]:
        """The one walk behind ``parameters``, ``named_parameters`` and ``get_parameters``:
        ``(name, param, grad)``, each array shared by clones listed once, at its first name."""
        seen: set[int] = set()
        for name, p, g in self._named_parameter_triples():
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p, g

    def named_parameters(self) -> Iterator[tuple[str, Array]]:
        """Yield ``(name, array)`` for every parameter, an array shared by clones once.

        Names are dotted paths: ``weight`` for a leaf, ``<child>.weight`` in containers
        (Sequential children are numbered from 1 as printed, gModule nodes use their annotation or
        ``<ModuleType><index>``). (PyTorch: ``named_parameters``; Lua has no equivalent.)
        """
        for name, p, _ in self._unique_parameters():
            yield name, p

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        """Yield ``(dotted name, value)`` of every buffer: non-trainable state listed by a module
        in ``_buffer_names`` (a batch normalization's running statistics), named as
        :meth:`named_parameters` names parameters; each module and each array once. (PyTorch:
        ``named_buffers``; Lua keeps such state as plain fields.)"""
        seen_modules: set[int] = set()
        seen_arrays: set[int] = set()
        stack: list[tuple[str, Module]] = [("", self)]
        while stack:
            prefix, m = stack.pop()
            if id(m) in seen_modules:
                continue
            seen_modules.add(id(m))
            for attr in getattr(m, "_buffer_names", ()):
                value = getattr(m, attr, None)
                if backend.is_array(value):
                    if id(value) in seen_arrays:
                        continue
                    seen_arrays.add(id(value))
                yield prefix + attr, value
            stack.extend((f"{prefix}{name}.", child)
                         for name, child in reversed(m.named_children()))

    def named_grad_parameters(self) -> Iterator[tuple[str, Array]]:
        """Yield ``(name, gradient array)`` in the order of :meth:`named_parameters`."""
        for name, _, g in self._unique_parameters():
            yield name, g

    def parameters(self) -> tuple[list[Array], list[Array]]:
        """The live parameter arrays and their gradients (Lua: ``Module:parameters``).

        Returns:
            ``(params, grad_params)``: two lists of the module's own arrays (never copies), each
            array shared between clones listed once.
        """
        triples = list(self._unique_parameters())
        return [p for _, p, _ in triples], [g for _, _, g in triples]

    def get_parameters(self) -> tuple[Array, Array]:
        """Flatten all parameters and gradients into two contiguous 1-D buffers.

        After the call every module's parameter (and gradient) array is a view into the returned
        buffers, so an optimizer updating the flat buffer updates the model (Lua:
        ``Module:getParameters``). Sharing between clones is preserved. Call it again after a
        device or dtype conversion. Clones made with ``clone('weight', ...)`` (or
        ``lstm.clone_many_times``) outside this module's tree keep sharing: their arrays are
        re-homed into the buffers too, so building an optimizer after unrolling a cell is safe.

        Returns:
            ``(flat_params, flat_grad_params)``.
        """
        params, grads = self.parameters()
        self._check_shared_gradients()
        xp = backend.array_module(self._device)
        total = sum(int(p.size) for p in params)
        flat_p = xp.zeros((total,), dtype=self._dtype)
        flat_g = xp.zeros((total,), dtype=self._dtype)
        remap: dict[int, Array] = {}
        offset = 0
        for p, g in zip(params, grads):
            n = int(p.size)
            view_p = flat_p[offset:offset + n].reshape(p.shape)
            view_g = flat_g[offset:offset + n].reshape(g.shape)
            view_p[...] = p
            view_g[...] = g
            remap[id(p)] = view_p
            remap[id(g)] = view_g
            offset += n
        touched = list(self.modules())
        touched += [m for m in _sharers_outside(touched)]
        for m in touched:
            for name in m._param_names:
                for attr in (name, "grad_" + name):
                    old = getattr(m, attr, None)
                    if old is not None and id(old) in remap:
                        setattr(m, attr, remap[id(old)])
        for m in touched:
            m._after_parameters_replaced()
        return flat_p, flat_g

    def _check_shared_gradients(self) -> None:
        """Refuse to train arrays shared without their gradients: one gradient would be lost."""
        seen: dict[int, tuple[str, Array]] = {}
        for name, p, g in self._named_parameter_triples():
            first = seen.setdefault(id(p), (name, g))
            if first[1] is not g:
                raise ArgumentError(
                    f"{name} shares its array with {first[0]} but not its gradient, so one of the "
                    f"two gradients would be lost in training: share the gradients too, e.g. "
                    f"clone('weight', 'bias', 'grad_weight', 'grad_bias')"
                )

    def _after_parameters_replaced(self) -> None:
        """Hook for modules that cache derived views of their parameters (e.g. fused weights)."""

    def _prepare_clone(self, memo: dict[int, Any]) -> None:
        """Hook of :func:`clone_tree`: map objects the copy must rebuild itself into ``memo``
        (a gModule maps its nodes to fresh, empty nodes)."""

    def _finish_clone(self, original: "Module", memo: dict[int, Any]) -> None:
        """Hook of :func:`clone_tree`, on the copy: complete what ``_prepare_clone`` mapped."""

    def zero_grad_parameters(self) -> None:
        """Set every parameter gradient to zero (Lua: ``zeroGradParameters``)."""
        for g in self.parameters()[1]:
            g[...] = 0

    def update_parameters(self, learning_rate: float) -> None:
        """Plain SGD step ``p -= learning_rate * grad`` (Lua: ``updateParameters``)."""
        params, grads = self.parameters()
        for p, g in zip(params, grads):
            p -= learning_rate * g

    def num_parameters(self) -> int:
        """Total number of parameter elements, shared arrays counted once."""
        return sum(int(p.size) for p in self.parameters()[0])

    # ----------------------------------------------------------------------------------------
    # Modes, cloning, state
    # ----------------------------------------------------------------------------------------
    def training(self) -> "Module":
        """Switch this module and its children to training mode (Lua: ``training``)."""
        for m in self.modules():
            m.train = True
        return self

    def evaluate(self) -> "Module":
        """Switch this module and its children to evaluation mode (Lua: ``evaluate``)."""
        for m in self.modules():
            m.train = False
        return self

    def clone(self, *shared_names: str) -> "Module":
        """A deep copy; the arrays named in ``shared_names`` are shared, not copied.

        ``lin.clone("weight", "bias", "grad_weight", "grad_bias")`` makes a module that uses the
        same parameters and accumulates into the same gradients (Lua: ``clone(...)``, as
        char-rnn's ``clone_many_times``). Cached outputs are not copied. The copy needs no
        recursion over the graph (a chain of thousands of nodes clones fine), and a copied
        gModule gets its own nodes, wired to the copied modules.

        Returns:
            The new module, not attached to any graph node.
        """
        names = tuple(shared_names)
        return clone_tree(self, lambda m: [n for n in names if hasattr(m, n)])

    def share(self, other: "Module", *names: str) -> "Module":
        """Make this module use ``other``'s arrays named in ``names`` (Lua: ``share``)."""
        pairs = list(zip(self.modules(), other.modules()))
        for mine, theirs in pairs:
            shared = False
            for name in names:
                if hasattr(theirs, name):
                    setattr(mine, name, getattr(theirs, name))
                    shared = True
            if shared:
                _join_sharing(theirs, mine)
        for mine, _ in pairs:
            mine._after_parameters_replaced()
        return self

    def _state_items(self) -> Iterator[tuple[str, Any]]:
        """Cached, recomputable state: outputs, gradients w.r.t. inputs and buffers.

        Subclasses that keep more caches list them in ``_state_names``.
        """
        for key in ("output", "grad_input") + tuple(getattr(self, "_state_names", ())):
            value = getattr(self, key, None)
            if value is not None:
                yield key, value

    def clear_state(self) -> "Module":
        """Drop cached outputs and buffers to save memory (Lua: ``clearState``)."""
        for m in self.modules():
            for key, _ in list(m._state_items()):
                setattr(m, key, None)
            m._clear_extra_state()
        return self

    def _clear_extra_state(self) -> None:
        """Hook for modules with caches that are not plain attributes."""

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn(module)`` on this module and every sub-module, parents first (Lua:
        ``Module:apply``); returns self."""
        for m in list(self.modules()):
            fn(m)
        return self

    def replace(self, fn: Callable[["Module"], "Module"]) -> "Module":
        """Replace sub-modules by ``fn(module)``, recursively, also inside gModules (Lua:
        ``Module:replace``).

        ``fn`` receives each module (this one first) and returns it or its replacement; the
        replacements' own members are then visited. ``seq.replace(lambda m: nn.Identity() if
        isinstance(m, nn.Dropout) else m)`` removes the dropouts.

        Returns:
            The replacement of this module (``fn(self)``, possibly self).
        """
        top = fn(self)
        if not isinstance(top, Module):
            raise InputError(f"replace: the function must return a module, got "
                             f"{type(top).__name__} for {self.describe()}")
        stack = [top]
        seen: set[int] = set()
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            for k, child in enumerate(m.children()):
                new = fn(child)
                if not isinstance(new, Module):
                    raise InputError(f"replace: the function must return a module, got "
                                     f"{type(new).__name__} for {child.describe()}")
                if new is not child:
                    m._replace_child(k, child, new)
                stack.append(new)
        return top

    def _replace_child(self, index: int, old: "Module", new: "Module") -> None:
        """Put ``new`` where the child ``old`` (at position ``index`` of ``children()``) is."""
        raise InputError(f"{self.describe()} cannot replace its sub-module {old.describe()}")

    def reset(self, stdv: Any = None) -> "Module":
        """Re-initialise the parameters (Lua: ``reset``); containers and gModules reset every
        member. Modules without parameters do nothing. Returns self."""
        for child in self.children():
            if stdv is None:
                child.reset()  # each module's own default (some take no stdv at all)
            else:
                child.reset(stdv)
        return self

    def summary_steps(self) -> list[tuple["Module", Any]]:
        """``[(cell, step_input), ...]`` for modules that run a cell over time (inspection's hook).

        ``inspect.summary`` shows what each step's cell computes; a recurrent layer returns its
        cell and the input one step gives it. Plain modules return ``[]``.
        """
        return []

    # ----------------------------------------------------------------------------------------
    # Device and dtype: one recursive mechanism behind to/cuda/cpu/float/double
    # ----------------------------------------------------------------------------------------
    def _apply(self, fn: Callable[[Array], Array]) -> "Module":
        """Apply ``fn`` to every array this module and its children hold (PyTorch: ``_apply``).

        Parameters, gradients and cached state are converted; an array shared by several modules
        is converted once and stays shared.
        """
        memo: dict[int, Any] = {}

        def convert(value: Any) -> Any:
            if backend.is_array(value):
                key = id(value)
                if key not in memo:
                    memo[key] = (value, _convert_keeping_views(value, fn, memo))
                return memo[key][1]
            if isinstance(value, (list, tuple)) and _holds_arrays(value):
                return type(value)(convert(v) for v in value)
            return value

        modules = list(self.modules())
        for m in modules:
            for key, value in list(vars(m).items()):
                new = convert(value)
                if new is not value:
                    setattr(m, key, new)
            m._apply_extra(convert)
        for m in modules:
            m._after_parameters_replaced()
        return self

    def _apply_extra(self, convert: Callable[[Any], Any]) -> None:  # noqa: D401
        """Hook: convert arrays kept outside plain attributes (e.g. a graph's node caches)."""

    def to(self, device: str | None = None, dtype: Any = None) -> "Module":
        """Move to ``device`` (``"cpu"``, ``"cuda"``, ``"strict"``) and/or cast to ``dtype``.

        Floating arrays are cast; integer buffers keep their dtype. (Lua: ``type``; PyTorch: ``to``.)

        Returns:
            self.
        """
        if device is not None:
            backend.array_module(device)  # raises a clear DeviceError when unavailable
        import numpy

        new_dtype = numpy.dtype(dtype) if dtype is not None else None
        if new_dtype is not None and new_dtype.kind != "f":
            raise ArgumentError(f"a model's dtype must be floating, got {new_dtype}")
        self._apply(lambda a: backend.to_device(a, device, new_dtype))
        for m in self.modules():
            if device is not None:
                m._device = device
            if new_dtype is not None:
                m._dtype = new_dtype
        return self

    # ----------------------------------------------------------------------------------------
    # Input checks and printing
    # ----------------------------------------------------------------------------------------
    def _accept_input(self, value: Any, what: str = "input") -> Any:
        """Check the device of incoming arrays and cast floating ones to the module's dtype."""
        if isinstance(value, (list, tuple)):
            return [self._accept_input(v, f"{what}[{i}]") for i, v in enumerate(value)]
        if value is None and what.startswith("grad_output"):
            return None  # a missing gradient means zeros (the graph treats it so)
        if not backend.is_array(value):
            if isinstance(value, numbers.Real):  # Python or NumPy scalars: a 0-d array
                return backend.array_module(self._device).asarray(value, dtype=self._dtype)
            raise InputError(
                f"{self.describe()}: {what} must be an array (or a list of arrays), "
                f"got {type(value).__name__}"
            )
        dev = backend.device_of(value)
        if dev != self._device:
            raise backend.DeviceError(
                f"{self.describe()}: {what} is on device '{dev}' but the module is on "
                f"'{self._device}'; move the array with nngraph_py.to_device(x, '{self._device}') "
                f"or the module with module.to('{dev}')"
            )
        if backend.is_floating(value):
            if value.dtype != self._dtype:
                value = value.astype(self._dtype)
        elif not self.integer_inputs and what.startswith("input"):
            raise integer_input_error(self, value, what)
        return value

    def _check_kind(self, value: Any) -> Any:
        """Refuse a list for a one-array module and an array for a table module."""
        kind = self.input_kind
        if kind != "any" and isinstance(value, (list, tuple)) != (kind == "table"):
            raise self._kind_error(value)
        return value

    def _kind_error(self, value: Any) -> InputError:
        """The error for an input of the wrong kind (see ``input_kind``); graphs use it too."""
        if self.input_kind == "array":
            return InputError(
                f"{self.describe()}: expected one array, got a list of {len(value)} "
                f"{shape_str(value)}; pick one with SelectTable (node.split(n)) or combine them "
                f"with JoinTable/CAddTable first"
            )
        return InputError(f"{self.describe()}: expected a list of arrays, got one array "
                          f"{shape_str(value)}; call the module on a list of nodes, "
                          f"module([a, b]), or on a node whose output is a list")

    def _check_grad_output(self, grad_output: Any) -> Any:
        """Refuse a ``grad_output`` unlike the array output of the last ``forward``.

        None stands for zeros. A module whose output is a list checks its ``grad_output`` itself
        (ConcatTable, SplitTable, a gModule...): some accept several forms of it (an LSTM takes the
        gradient of its outputs alone, or with those of its final state).
        """
        output = self.output
        if not backend.is_array(output):  # no forward yet, or a list output
            if isinstance(output, (list, tuple)) and isinstance(grad_output, (list, tuple)):
                return nest.fill_none(grad_output, output)
            return grad_output
        if grad_output is None:
            return backend.get_array_module(output).zeros_like(output)
        problem = grad_output_mismatch(output, grad_output, "grad_output",
                                       "its output in the last forward")
        if problem is not None:
            raise problem[0](f"{self.describe()}: {problem[1]}")
        return grad_output

    def describe(self) -> str:
        """A short identification for error messages: the module and its graph node, if any."""
        if self._node is not None:
            return self._node.describe()
        return repr(self).splitlines()[0]

    def extra_repr(self) -> str:
        """The text inside the parentheses of the module's one-line repr (PyTorch habit)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        return f"nn.{type(self).__name__}" + (f"({extra})" if extra else "")


# --------------------------------------------------------------------------------------------
# Cloning and sharing (one implementation for Module.clone and lstm.clones)
# --------------------------------------------------------------------------------------------
class _SharingGroup:
    """The modules that share arrays through ``clone(names)`` / ``share``: ``get_parameters``
    on one of them re-homes the shared arrays of all (weakly held: dropping a clone frees it)."""

    __slots__ = ("members", "__weakref__")

    def __init__(self) -> None:
        self.members: weakref.WeakSet = weakref.WeakSet()

    def __deepcopy__(self, memo: dict) -> "_SharingGroup":
        return self  # a clone of a sharing module shares with the same group

    def __reduce__(self) -> Any:
        return (_SharingGroup, ())  # pickled copies start a group of their own


def _join_sharing(original: Module, copy_: Module) -> None:
    group = original.__dict__.get("_sharing")
    if group is None:
        group = original.__dict__["_sharing"] = _SharingGroup()
        group.members.add(original)
    group.members.add(copy_)
    copy_.__dict__["_sharing"] = group


def _sharers_outside(modules: list[Module]) -> list[Module]:
    """Modules sharing arrays with ``modules`` (same sharing group) but not among them."""
    inside = {id(m) for m in modules}
    out: list[Module] = []
    for m in modules:
        group = m.__dict__.get("_sharing")
        if group is None:
            continue
        for other in list(group.members):
            if id(other) not in inside:
                inside.add(id(other))
                out.append(other)
    return out


def clone_tree(root: Module, shared: Callable[[Module], Iterable[str]]) -> Module:
    """A copy of ``root`` and all its sub-modules; the attributes ``shared(m)`` names are shared.

    The implementation of :meth:`Module.clone` and ``lstm.clones``. Every module of the tree is
    copied attribute by attribute with one ``deepcopy`` memo in which the tree's modules (and the
    nodes of its gModules) are already mapped to their copies, so no recursion follows the
    graph: chains of any length clone. Cached state (``_state_items``) is not copied; the copy
    is attached to no outer graph node or container. Modules sharing arrays join a sharing group
    so that ``get_parameters`` keeps them sharing.

    Args:
        root: the module to copy.
        shared: for each module, the names of its attributes to share (not copy).
    Returns:
        The copy of ``root``.
    """
    old = list(root.modules())
    memo: dict[int, Any] = {}
    for key in ("_node", "_owner"):
        outer = root.__dict__.get(key)
        if outer is not None:
            memo[id(outer)] = None
    sharing: list[tuple[int, list[str]]] = []
    for k, m in enumerate(old):
        for _, value in m._state_items():
            if backend.is_array(value) or isinstance(value, (list, dict)):
                memo[id(value)] = None  # caches are not copied: the copy starts clean
        names = [n for n in shared(m) if getattr(m, n, None) is not None]
        for n in names:
            memo[id(getattr(m, n))] = getattr(m, n)  # deepcopy hands back the very object
        if names:
            sharing.append((k, names))
    new = [type(m).__new__(type(m)) for m in old]
    for m, n in zip(old, new):
        memo[id(m)] = n
    for m in old:
        m._prepare_clone(memo)
    for m, n in zip(old, new):
        state = {key for key, _ in m._state_items()}
        n.__dict__.update({key: (None if key in state else copy.deepcopy(value, memo))
                           for key, value in vars(m).items()
                           if key not in ("_busy_thread", "_forward_thread", "_sharing")})
    for k, _ in sharing:
        _join_sharing(old[k], new[k])
    for m, n in zip(old, new):
        n._finish_clone(m, memo)
    for n in new:
        n._after_parameters_replaced()
    return new[0]


def _convert_keeping_views(value: Array, fn: Callable[[Array], Array], memo: dict) -> Array:
    """``fn(value)``; a host array that is a view of a buffer becomes the same view of the
    buffer converted once, so arrays sharing a buffer (overlapping views, ``get_parameters``'
    flat buffers) still share it after ``float()`` / ``double()`` (Lua's Typecast tests)."""
    host = value._a if type(value) is backend.StrictArray else value
    if ("base", id(host)) in memo:  # a buffer whose views were converted first
        return memo[("base", id(host))][1]
    new = fn(value)
    if new is value:
        return new
    base = getattr(host, "base", None)
    if base is None and isinstance(host, numpy.ndarray):
        memo[("base", id(host))] = (host, new)
        return new
    if not isinstance(host, numpy.ndarray) or not isinstance(base, numpy.ndarray) \
            or not base.flags.c_contiguous or base.dtype != host.dtype:
        return new
    new_host = new._a if type(new) is backend.StrictArray else new
    if not isinstance(new_host, numpy.ndarray):
        return new  # another device (CuPy): converted on its own
    key = ("base", id(base))
    if key not in memo:
        memo[key] = (base, fn(base if type(value) is not backend.StrictArray
                               else backend.StrictArray(base)))
    new_base = memo[key][1]
    nb = new_base._a if type(new_base) is backend.StrictArray else new_base
    old_size, new_size = host.dtype.itemsize, nb.dtype.itemsize
    offset = host.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    if offset % old_size or any(st % old_size for st in host.strides):
        return new
    view = numpy.ndarray(host.shape, dtype=nb.dtype, buffer=nb, offset=offset // old_size * new_size,
                         strides=tuple(st // old_size * new_size for st in host.strides))
    return backend.StrictArray(view) if type(new) is backend.StrictArray else view
