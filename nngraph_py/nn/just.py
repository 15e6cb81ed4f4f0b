"""One array as a one-element list and back (Lua: nngraph's ``nngraph.JustTable`` and
``nngraph.JustElement``)."""
from __future__ import annotations

from typing import Any

from ..errors import InputError, shape_str
from ..module import Module

__all__ = ["JustTable", "JustElement"]


class JustTable(Module):
    """``x -> [x]`` (Lua: ``nngraph.JustTable``): wrap one value in a list of one element.

    The gradient is the list's only element. Integers pass through (it moves values only).

    Example:
        >>> JustTable().forward(numpy.ones(2, "float32"))
        [array([1., 1.], dtype=float32)]
    """

    integer_inputs = True

    def update_output(self, input: Any) -> list[Any]:
        self.output = [input]
        return self.output

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != 1:
            raise InputError(f"{self.describe()}: expected grad_output as a list of one element "
                             f"(like the output), got {shape_str(grad_output)}")
        self.grad_input = grad_output[0]
        return self.grad_input


class JustElement(Module):
    """``[x] -> x`` (Lua: ``nngraph.JustElement``): the only element of a one-element list.

    ``node.split(1)`` in Lua returns this; here ``split(1)`` gives ``SelectTable(0)`` with the
    same check. Integers pass through.

    Example:
        >>> JustElement().forward([numpy.ones(2, "float32")])
        array([1., 1.], dtype=float32)
    """

    input_kind = "table"
    integer_inputs = True

    def update_output(self, input: list[Any]) -> Any:
        if not isinstance(input, (list, tuple)) or len(input) != 1:
            raise InputError(f"{self.describe()}: expecting one element, got "
                             f"{shape_str(input)}")
        self.output = input[0]
        return self.output

    def update_grad_input(self, input: list[Any], grad_output: Any) -> list[Any]:
        self.grad_input = [grad_output]
        return self.grad_input
