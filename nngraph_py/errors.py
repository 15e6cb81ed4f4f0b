"""The library's exceptions. Every one says what was expected and what was found."""
from __future__ import annotations

from typing import Any

__all__ = ["NNGraphError", "InputError", "ShapeError", "GraphError", "GraphBuildError",
           "ArgumentError"]


class NNGraphError(Exception):
    """Base class of the library's errors."""


class ArgumentError(NNGraphError, ValueError, TypeError):
    """A bad argument to a constructor or a call (a negative size, a non-floating dtype...).

    It is both a ``ValueError`` and a ``TypeError``, as the built-in errors such checks used to
    raise, so existing ``except ValueError`` code keeps working.
    """


class InputError(NNGraphError, TypeError):
    """A value of the wrong kind was given (a module instead of a node, a list instead of an array)."""


class ShapeError(NNGraphError, ValueError):
    """An array has the wrong shape; the message gives the expected and the actual shape."""


class GraphBuildError(NNGraphError, ValueError):
    """A graph cannot be built: cycle, unreachable input or output, reused module..."""


class GraphError(NNGraphError, RuntimeError):
    """An error inside a graph's forward or backward, naming the node where it happened.

    Attributes:
        node: the failing node.
        phase: ``"forward"`` or ``"backward"``.
        cause: the original exception.
    """

    def __init__(self, message: str, node: Any = None, phase: str = "", cause: Any = None):
        super().__init__(message)
        self.node = node
        self.phase = phase
        self.cause = cause


def shape_str(x: Any) -> str:
    """A readable shape of an array or a (nested) list of arrays, e.g. ``[(2, 3), (2, 3)]``."""
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(shape_str(v) for v in x) + "]"
    shape = getattr(x, "shape", None)
    if shape is None:
        return type(x).__name__
    return str(tuple(int(s) for s in shape))


def check(condition: bool, module: Any, expected: str, actual: Any) -> None:
    """Raise :class:`ShapeError` when ``condition`` is false.

    Args:
        condition: the check.
        module: the module doing the check (named in the message).
        expected: a description of the expected shape, e.g. ``"(batch, 20) or (20,)"``.
        actual: the offending input (its shape is reported).
    """
    if not condition:
        raise ShapeError(f"{module.describe()}: expected input {expected}, got {shape_str(actual)}")
