"""The Lua-made fixtures are what the committed Lua scripts make (runs Lua Torch itself; skips
where ``th`` is not installed)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from lua_reference import FIXTURES, TH


@pytest.mark.skipif(TH is None, reason="Lua Torch (th) is not installed: see "
                                       "../shared/luatorch/README.md")
@pytest.mark.parametrize("script, prefix", [("make_nngraph_fixtures.lua", "nngraph_"),
                                            ("make_nn_fixtures.lua", "nn_")])
def test_fixtures_are_reproduced_by_their_lua_script(tmp_path, script: str, prefix: str) -> None:
    for name in (script, "jsonout.lua"):
        shutil.copy(os.path.join(FIXTURES, name), tmp_path / name)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    subprocess.run([TH, script, "."], cwd=tmp_path, env=env, check=True, capture_output=True,
                   timeout=120)
    made = sorted(p.name for p in tmp_path.glob(prefix + "*.json"))
    committed = sorted(n for n in os.listdir(FIXTURES) if n.startswith(prefix)
                       and n.endswith(".json"))
    assert made == committed
    for name in made:
        with open(tmp_path / name) as a, open(os.path.join(FIXTURES, name)) as b:
            assert json.load(a) == json.load(b), name
