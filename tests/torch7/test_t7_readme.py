"""The README's "From Lua Torch" example runs as written (on a committed char-rnn fixture)."""
from __future__ import annotations

import pathlib
import re

from t7_helpers import fixture

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_from_lua_torch_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("## From Lua Torch"):]
    section = section[:section.index("\n## ", 5)]
    (block,) = re.findall(r"```py\n(.*?)```", section, flags=re.S)
    assert "cv/lm_lstm_epoch1.00_3.3352.t7" in block
    block = block.replace("cv/lm_lstm_epoch1.00_3.3352.t7", fixture("char_rnn_lstm.t7"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    expected = open(fixture("char_rnn_lstm_sample_The.txt"), encoding="latin-1").read()
    assert namespace["sample"].text == expected.rstrip("\n")
    assert (tmp_path / "lm.onnx").exists()
    assert expected.rstrip("\n") in capsys.readouterr().out
