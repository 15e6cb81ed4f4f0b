"""The runnable examples in the data modules' docstrings stay correct."""

import doctest

import pytest

from nngraph_py.data import air_passengers, idx, mnist, safe_pickle, shakespeare


@pytest.mark.parametrize("module", [air_passengers, idx, mnist, safe_pickle, shakespeare],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
