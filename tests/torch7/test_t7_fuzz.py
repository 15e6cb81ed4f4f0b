"""Fuzzing the .t7 reader with mutated real files: every outcome is a value or a Torch7Error,
never another exception, a hang or a runaway allocation.

Bounded here (a few hundred mutations, seconds); a long run:
``NNGRAPH_FUZZ_T7=20000 .venv/bin/python -m pytest -q tests/torch7/test_t7_fuzz.py``.
"""
from __future__ import annotations

import importlib.util
import os
import resource
import time

import pytest

from nngraph_py import torch7

from t7_helpers import fixture

_SHARED = os.path.join(os.path.dirname(__file__), "..", "fuzz", "mutate.py")
if os.path.exists(_SHARED):  # the project's shared mutator (helper R's tests/fuzz/mutate.py)
    _spec = importlib.util.spec_from_file_location("shared_fuzz_mutate", _SHARED)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    mutations = _module.mutations
    MUTATOR = "tests/fuzz/mutate.py"
else:  # pragma: no cover - the minimal one beside this file
    from t7_mutate import mutations
    MUTATOR = "tests/torch7/t7_mutate.py"

FILES = ["values.t7", "values_ascii.t7", "graphs_ascii.t7", "modules.t7", "char_rnn_rnn.t7",
         "function.t7"]
COUNT = int(os.environ.get("NNGRAPH_FUZZ_T7", "15"))


@pytest.mark.parametrize("name", FILES)
def test_mutated_files_give_values_or_torch7error(name):
    data = open(fixture(name), "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worst = 0.0
    for desc, mutated in mutations(data, seed=len(name), count=COUNT):
        for strict in (True, False):
            start = time.perf_counter()
            try:
                torch7.loads(mutated, strict=strict)
            except torch7.Torch7Error:
                pass
            except Exception as exc:  # noqa: BLE001 - the failure to report
                pytest.fail(f"{name}, {desc}, strict={strict}: {type(exc).__name__}: {exc}")
            worst = max(worst, time.perf_counter() - start)
    assert worst < 5.0, f"one mutated {name} took {worst:.1f} s"
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 500, f"peak memory grew by {grown_mb:.0f} MB"
