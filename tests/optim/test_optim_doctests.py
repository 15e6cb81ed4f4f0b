"""The runnable examples in the optim modules' docstrings stay correct."""

import doctest
import importlib

import pytest

# By module path: ``nngraph_py.optim.sgd`` is the function (Lua's ``optim.sgd``), not the module.
MODULES = ["adam", "clip", "optimizer", "rmsprop", "schedule", "sgd"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"nngraph_py.optim.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert name == "optimizer" or result.attempted > 0
