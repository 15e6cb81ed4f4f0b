"""The identity (Lua: ``nn.Identity``), used for graph inputs."""
from __future__ import annotations

from typing import Any

from ..module import Module

__all__ = ["Identity"]


class Identity(Module):
    """Pass the input (an array or a list) through unchanged (Lua: ``nn.Identity``).

    ``nn.Identity()()`` is the usual input node of a gModule. Integer arrays pass through
    (class labels given to a graph go through an Identity input node).
    """

    integer_inputs = True

    def update_output(self, input: Any) -> Any:
        self.output = input
        return self.output

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        self.grad_input = grad_output
        return self.grad_input
