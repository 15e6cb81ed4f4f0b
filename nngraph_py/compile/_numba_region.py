"""numba helpers of the generated region kernels, and their compilation with an on-disk cache.

Imported on first use of a numba region only (importing the package never imports numba).
Each generated source is written once to a file named by its SHA-256 under the kernel cache
directory (``NNGRAPH_PY_KERNEL_CACHE``, else ``~/.cache/nngraph_py/kernels``) and imported from
there, so that numba's own cache (``cache=True``) keeps the machine code between processes: the
first process pays the compilation (about a second per region), later ones load it. A file whose
content is not exactly the source is never imported (it is rewritten); where no directory is
writable the kernels compile in memory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numba

from ._numba_kernels import _tanh_rational

__all__ = ["TANH32", "EXP", "POS", "MAX0", "JIT", "compile_source"]

JIT: dict[str, Any] = dict(nogil=True, error_model="numpy", fastmath={"contract"})


@numba.njit(inline="always")
def TANH32(x: Any) -> Any:  # noqa: N802
    """float32 tanh: the recipe kernels' vectorisable rational function, evaluated in float64
    (a plain function: numba's cache cannot reload the typed ``_tanh`` overload)."""
    return numba.float32(_tanh_rational(numba.float64(x)))


@numba.njit(inline="always")
def EXP(x: Any) -> Any:  # noqa: N802 - the generated code's spelling
    return math.exp(x)


@numba.njit(inline="always")
def POS(x: Any, g: Any) -> Any:  # noqa: N802
    """``g`` where ``x > 0``, else zero (ReLU's gradient)."""
    return g if x > 0 else g * 0


@numba.njit(inline="always")
def MAX0(x: Any) -> Any:  # noqa: N802
    return x if x > 0 else x * 0


_HEADER = ("import math\n\nimport numba\n"
           "from nngraph_py.compile._numba_region import EXP, JIT, MAX0, POS, TANH32\n\n")


def _cache_dir() -> Path | None:
    root = os.environ.get("NNGRAPH_PY_KERNEL_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "nngraph_py", "kernels")
    try:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, delete=True)
        probe.close()
        return path
    except OSError:
        return None


def compile_source(src: str, names: tuple[str, ...]) -> tuple[Any, ...]:
    """The jitted functions ``names`` of a generated kernel source (plain Python functions,
    without decorators)."""
    decorated = _HEADER + src.replace("\ndef ", "\n@numba.njit(cache=CACHE, **JIT)\ndef ")
    if decorated.startswith(_HEADER + "def "):
        decorated = decorated.replace(_HEADER + "def ",
                                      _HEADER + "@numba.njit(cache=CACHE, **JIT)\ndef ", 1)
    folder = _cache_dir()
    if folder is not None:
        text = decorated.replace("cache=CACHE", "cache=True")
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        path = folder / f"region_{digest}.py"
        try:
            if not path.exists() or path.read_text() != text:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(text)
                os.replace(tmp, path)
            if path.read_text() == text:
                spec = importlib.util.spec_from_file_location(f"nngraph_py_region_{digest}", path)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                # numba's cache finds the functions' globals through the module's name.
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
                return tuple(getattr(module, name) for name in names)
        except OSError:
            pass
    env: dict[str, Any] = {}
    exec(compile(decorated.replace("cache=CACHE", "cache=False"),  # noqa: S102
                 "<nngraph_py.compile region kernel>", "exec"), env)
    return tuple(env[name] for name in names)
