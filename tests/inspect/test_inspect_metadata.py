"""describe_meta / brief: a checkpoint's own metadata, long values summarised."""
from __future__ import annotations

import doctest
import json

import numpy

from nngraph_py.inspect import metadata
from nngraph_py.inspect.metadata import brief, describe_meta, rng_label


def test_plain_values_stay_whole():
    assert brief(3) == "3" and brief(0.0) == "0.0" and brief(0.01) == "0.01"
    assert brief(2.3075499534606934) == "2.308" and brief(float("nan")) == "nan"
    assert brief(True) == "True" and brief(None) == "None" and brief("cpu") == "'cpu'"
    assert brief([1, 2, 3]) == "[1, 2, 3]" and brief({"a": 1}) == "{a: 1}"
    assert brief([]) == "[]" and brief({}) == "{}"


def test_long_values_are_summarised():
    assert brief(list(range(5000))) == "list of 5000 ints: first 0, last 4999, min 0, max 4999"
    losses = [1.0, float("nan")] + [0.5] * 100
    assert brief(losses) == ("list of 102 floats: first 1.0, last 0.5, min 0.5, max 1.0, "
                             "1 not finite")
    text = brief("x" * 500)
    assert text.endswith("...' (500 chars)") and len(text) < 70
    assert brief(["a", 1, None] * 30) == "list of 90 items, last None"
    wide = {f"key{k}": k for k in range(40)}
    text = brief(wide)
    assert text.startswith("{key0: 0, ... ") and text.endswith("key39: 39}") and len(text) <= 60


def test_random_generator_states():
    legacy = numpy.random.RandomState(0).get_state()
    assert rng_label([legacy[0], legacy[1].tolist(), 624, 0, 0.0]) == "<rng state: MT19937, pos 624>"
    as_dict = {"name": legacy[0], "keys": legacy[1].tolist(), "pos": 624}
    assert brief(as_dict) == "<rng state: MT19937, pos 624>"
    state = numpy.random.default_rng(0).bit_generator.state
    assert brief(state) == "<rng state: PCG64>"
    assert rng_label({"pos": 1}) is None and rng_label([1, 2, 3]) is None


def test_describe_meta_groups_plain_values_and_wraps_dicts():
    meta = {"epoch": 3, "note": "ok", "config": {f"option{k}": k for k in range(30)},
            "rng": {"name": "MT19937", "keys": list(range(624)), "pos": 624}}
    lines = describe_meta(meta, width=80)
    assert lines[0] == "epoch=3, note='ok'"
    assert lines[1].startswith("config: option0=0, option1=1")
    assert all(line.startswith("  option") for line in lines[2:-1])
    assert all(len(line) <= 80 for line in lines)
    assert lines[-1] == "rng=<rng state: MT19937, pos 624>"
    full = describe_meta(meta, full=True)
    assert [json.loads(line.split(": ", 1)[1]) for line in full] == list(meta.values())


def test_docstring_example():
    result = doctest.testmod(metadata)
    assert result.failed == 0 and result.attempted > 0
