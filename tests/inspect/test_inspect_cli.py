"""The command line: python -m nngraph_py.inspect CHECKPOINT [--dot OUT] [--compare OTHER]."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy
import pytest

from inspect_models import lstm_cell_model, seed_mlp
from nngraph_py.checkpoint import save_checkpoint
from nngraph_py.inspect import cli, graphviz_available, picture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def saved(tmp_path):
    model = lstm_cell_model(5, 4)
    path = save_checkpoint(str(tmp_path / "cell.npz"), model, meta={"epoch": 2}, grads=True,
                           input_shapes=[(2, 5), (2, 4), (2, 4)])
    return model, path


def test_prints_summary_and_statistics_from_the_file_alone(saved):
    _, path = saved
    code, out, err = run([path])
    assert code == 0 and err == ""
    for piece in ("Checkpoint", "nngraph_py.checkpoint/1", "epoch=2", "i2h_forget.weight",
                  "Parameters: 176", "Parameter statistics", "Gradient statistics", "norm"):
        assert piece in out, piece
    code, out, _ = run([path, "--no-stats", "--depth", "0"])
    assert code == 0 and "Parameter statistics" not in out


def test_compare_lists_what_differs_and_by_how_much(saved, tmp_path):
    model, path = saved
    assert run([path, "--compare", path])[0] == 0
    forget = next(n.module for n in model.nodes if model.node_name(n) == "i2h_forget")
    forget.weight[0, 0] += 0.5
    other = save_checkpoint(str(tmp_path / "other.npz"), model)
    code, out, _ = run([path, "--compare", other, "--no-stats"])
    out = out[out.index("Comparing"):]
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("i2h_forget.weight"))
    assert "differs" in line and "0.5" in line
    assert "1 of 16 parameters differ" in out and "h2h_cell.bias" not in out
    assert run([path, "--compare", other, "--tol", "0.6"])[0] == 0
    code, out, _ = run([path, "--compare", other, "--all", "--no-stats"])
    assert "h2h_cell.bias" in out[out.index("Comparing"):]


def test_compare_different_models(tmp_path):
    a = save_checkpoint(str(tmp_path / "a.npz"), lstm_cell_model(5, 4))
    b = save_checkpoint(str(tmp_path / "b.npz"), seed_mlp())
    code, out, _ = run([a, "--compare", b, "--no-stats"])
    assert code == 1 and "only in A" in out and "only in B" in out


def test_dot_writes_the_picture(saved, tmp_path):
    _, path = saved
    target = str(tmp_path / "cell.dot")
    code, out, _ = run([path, "--dot", target, "--which", "backward", "--no-stats"])
    assert code == 0 and "written to" in out
    text = open(target).read()
    assert text.startswith('digraph "backward"') and "i2h_forget" in text and "grad (2, 4)" in text


@pytest.mark.skipif(not graphviz_available(), reason="Graphviz 'dot' is not installed")
def test_dot_svg(saved, tmp_path):
    _, path = saved
    target = str(tmp_path / "cell.svg")
    assert run([path, "--dot", target, "--no-stats"])[0] == 0
    assert "<svg" in open(target).read()


def test_dot_svg_without_graphviz(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(picture, "graphviz_available", lambda: False)
    _, path = saved
    code, _, err = run([path, "--dot", str(tmp_path / "cell.svg"), "--no-stats"])
    assert code == 2 and "Graphviz" in err and os.path.exists(tmp_path / "cell.dot")


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    code, out, err = run([str(tmp_path / "missing.npz")])
    assert code == 2 and out == "" and "missing.npz does not exist" in err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    code, _, err = run([str(bad)])
    assert code == 2 and "bad.npz" in err


def test_module_entry_point_help():
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "nngraph_py.inspect", "--help"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--compare" in proc.stdout and "CHECKPOINT" in proc.stdout


def training_run_meta(steps: int = 1692, evals: int = 12) -> dict:
    """Metadata as a training script saves it: every step's loss, a history, settings, the RNG."""
    name, keys, pos, has_gauss, cached = numpy.random.RandomState(0).get_state()
    return {
        "run": {"epoch": evals, "step": 0, "global_step": steps, "elapsed_s": 812.3456,
                "losses": [2.3 / (1 + k / 100) for k in range(steps)],
                "history": [{"epoch": float(e), "global_step": 141 * e, "lr": 0.01,
                             "train_loss": 0.25 / e, "test_loss": 0.3 / e, "test_acc": 90.0 + e}
                            for e in range(1, evals + 1)]},
        "config": {"seed": 1, "hidden": 128, "lr": 0.01, "dropout": 0.0, "dataset": "mnist"},
        "rng": {"name": name, "keys": keys.tolist(), "pos": int(pos),
                "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
    }


def _meta_lines(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("  meta"))
    end = lines.index("", start)
    return lines[start:end]


def test_long_metadata_is_summarised_on_a_few_lines(tmp_path):
    meta = training_run_meta()
    path = save_checkpoint(str(tmp_path / "run.npz"), seed_mlp(), meta=meta)
    code, out, _ = run([path, "--no-stats"])
    assert code == 0
    lines = _meta_lines(out)
    text = "\n".join(lines)
    assert len(lines) <= 8 and all(len(line) <= 110 for line in lines), text
    assert len(text) < 800 < len(json.dumps(meta))
    for piece in ("--full-meta", "run: epoch=12, step=0, global_step=1692, elapsed_s=812.3",
                  "losses=list of 1692 floats: first 2.3, last 0.1284",
                  "history=list of 12 dicts, last {epoch: 12.0, ",
                  "test_acc: 102.0}",  # the latest evaluation's metrics are kept
                  "config: seed=1, hidden=128, lr=0.01, dropout=0.0, dataset='mnist'",
                  "rng=<rng state: MT19937, pos 624>"):
        assert piece in text, piece
    assert "1812433254" not in out  # none of the generator's 624 keys


def test_full_meta_prints_every_value(tmp_path):
    meta = training_run_meta(steps=50, evals=2)
    path = save_checkpoint(str(tmp_path / "run.npz"), seed_mlp(), meta=meta)
    code, out, _ = run([path, "--no-stats", "--full-meta"])
    assert code == 0
    lines = _meta_lines(out)
    assert lines[0] == "  meta:"
    values = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert {k: json.loads(v) for k, v in values.items()} == meta
    assert run([path, "--no-stats", "--meta"])[1] == out


def test_lstm_checkpoint_shows_per_step_shapes(tmp_path):
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    path = save_checkpoint(str(tmp_path / "lstm.npz"), lstm.LSTM(4, 6, 2),
                           meta=training_run_meta(steps=100, evals=1), input_shapes=(2, 3, 4))
    code, out, _ = run([path, "--no-stats"])
    assert code == 0 and "per time step" in out
    line = next(t for t in out.splitlines() if "layer2.i2h_cell" in t)
    assert "(2, 6) *" in line


# ------------------------------------------------------------------------------------------------
# Bad files and closed pipes (issue 12, item 3)
# ------------------------------------------------------------------------------------------------
def _env():
    return {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _entry_point(args):
    return subprocess.run([sys.executable, "-m", "nngraph_py.inspect", *args], capture_output=True,
                          text=True, cwd=ROOT, env=_env(), timeout=120)


def test_a_malformed_file_prints_one_line_and_exits_2(tmp_path):
    import json as _json

    from nngraph_py.checkpoint import META_KEY, save_checkpoint

    path = str(tmp_path / "deep.npz")
    save_checkpoint(path, seed_mlp())
    with numpy.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[META_KEY] = numpy.frombuffer(b"[" * 100_000 + b"]" * 100_000, numpy.uint8)
    numpy.savez(path, **arrays)
    result = _entry_point([path])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "deep.npz" in result.stderr
    assert "Traceback" not in result.stderr
    # Metadata that the reader accepts but the summary cannot rebuild: still one line.
    save_checkpoint(path, seed_mlp())
    with numpy.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = _json.loads(bytes(arrays[META_KEY]).decode())
    meta["model"]["summary"]["rows"] = [{"bogus": 1}]
    arrays[META_KEY] = numpy.frombuffer(_json.dumps(meta).encode(), numpy.uint8)
    numpy.savez(path, **arrays)
    code, out, err = run([path])
    assert code == 2 and out == "" and err.count("\n") == 1 and "malformed" in err


def test_survives_a_closed_pipe(tmp_path):
    # `python -m nngraph_py.inspect ck.npz --full-meta | head -c 10`: the reader leaves early,
    # with far more than a pipe's buffer still to come.
    path = save_checkpoint(str(tmp_path / "long.npz"), seed_mlp(),
                           meta={"losses": [k / 7 for k in range(40_000)]})
    proc = subprocess.Popen([sys.executable, "-m", "nngraph_py.inspect", path, "--full-meta"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=_env())
    proc.stdout.read(10)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
