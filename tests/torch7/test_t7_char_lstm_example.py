"""examples/char_lstm.py --sample-only --resume FILE.t7 samples from a Lua char-rnn checkpoint."""
from __future__ import annotations

import importlib.util
import pathlib

from t7_helpers import fixture

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "char_lstm.py"


def _example():
    spec = importlib.util.spec_from_file_location("char_lstm_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_only_resume_t7_greedy_is_th_sample_lua(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))  # the example imports its common.py
    example = _example()
    result = example.main(["--sample-only", "--resume", fixture("char_rnn_gru.t7"), "--greedy",
                           "--primetext", "The ", "--length", "200"])
    expected = open(fixture("char_rnn_gru_sample_The.txt"), encoding="latin-1").read()
    assert capsys.readouterr().out == expected
    assert result["sample"] == expected.rstrip("\n") and result["lua_opt"]["model"] == "gru"
