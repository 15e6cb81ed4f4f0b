"""Value types of the property suite's random graphs, tracked while a graph is generated.

A graph is generated before anything is built: each value (a node's output) has a type, so a
module is only applied where its input rule accepts the type, and the torch reference and the
inputs can be made from the same description.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

__all__ = ["Arr", "Lst", "Labels", "Type", "same_structure", "arrays_of", "zero_d_count"]


@dataclass(frozen=True)
class Arr:
    """A floating array of ``shape``; ``positive``: its values are in (0, 1] or so, a safe
    denominator for ``CDivTable`` (Sigmoid and SoftMax outputs and their slices)."""

    shape: tuple
    positive: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def like(self, shape: tuple) -> "Arr":
        """An array type of another shape keeping the ``positive`` flag (a view of this one)."""
        return Arr(tuple(shape), self.positive)


@dataclass(frozen=True)
class Lst:
    """A list of values (Lua: a table), possibly nested."""

    items: tuple

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Labels:
    """Integer class indices in ``[0, classes)`` of ``shape`` (a criterion's target input)."""

    shape: tuple
    classes: int


Type = Union[Arr, Lst, Labels]


def same_structure(a: Type, b: Type) -> bool:
    """Whether two types hold arrays of the same shapes in the same nesting (flags ignored)."""
    if isinstance(a, Arr) and isinstance(b, Arr):
        return a.shape == b.shape
    if isinstance(a, Lst) and isinstance(b, Lst):
        return len(a) == len(b) and all(same_structure(x, y) for x, y in zip(a.items, b.items))
    return a == b


def arrays_of(t: Type) -> list:
    """The array types of a (nested) type, in order."""
    if isinstance(t, Lst):
        return [a for item in t.items for a in arrays_of(item)]
    return [t]


def zero_d_count(t: Type) -> int:
    """How many 0-d arrays a type holds."""
    return sum(1 for a in arrays_of(t) if isinstance(a, Arr) and a.ndim == 0)
