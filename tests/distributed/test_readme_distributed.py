"""The README's "Training on several machines" figures are the recorded benchmark's."""
from __future__ import annotations

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    return re.search(r"## Training on several machines\n(.*?)\n## ", text, flags=re.S).group(1)


def test_readme_quotes_the_recorded_run() -> None:
    section = " ".join(_section().split())
    recorded = json.loads((ROOT / "benchmarks" / "results" / "distributed.json").read_text())
    one, two = recorded["runs"][0], recorded["runs"][1]
    assert f"({one['samples_per_s']:.0f} and {two['samples_per_s']:.0f} at a global batch of " \
           f"{one['global_batch']})" in section
    comm = recorded["allreduce"]
    best = sorted([comm["bare mpi4py Allreduce, one call (min)"],
                   comm["library (World.allreduce_, one call) (min)"]])
    assert f"{1e3 * best[0]:.2f}-{1e3 * best[1]:.2f} ms at best" in section
    assert f"({comm['parameters']:,} float32, {comm['bytes'] / 1e6:.2f} MB)" in section


def test_readme_efficiencies_are_the_benchmark_tables() -> None:
    section = " ".join(_section().split())
    table = (ROOT / "benchmarks" / "results" / "distributed.md").read_text()
    rows = {line.split("|")[1].strip(): [int(p) for p in re.findall(r"(\d+)%", line)]
            for line in table.split("22.9 ms", 1)[1].split("Compute", 1)[0].splitlines()
            if "%" in line}
    ten, one = rows["10 GbE"][:4], rows["1 GbE"][:4]  # N = 2, 4, 8, 16
    assert f"10 GbE keeps {min(ten)}-{max(ten)} % of the compute for N = 2 to 16" in section
    assert f"1 GbE {min(one)}-{max(one)} %" in section
