"""Two real processes under ``mpiexec -n 2`` (loopback): equivalence, broadcast, refusals, failures.

Each test launches ``tests/distributed/mpi_worker.py`` itself, with a timeout, and skips with the
reason when mpi4py or ``mpiexec`` is missing (``pip install 'nngraph_py[distributed]'``). The
checks that need two live processes run in one launch (``suite``), whose numbers the tests below
read; each failure mode needs its own launch.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("mpi_worker.py")
LAUNCHER_VARIABLES = ("PMI_", "OMPI_", "PMIX_", "MV2_", "HYDRA_", "MPI_LOCAL", "NNGRAPH_DIST")


def _mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _skip_reason() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'nngraph_py[distributed]')"
    if _mpiexec() is None:
        return "no mpiexec beside the Python or on PATH (pip install mpich)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def launch(scenario: str, out: Path, timeout: float,
           extra: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, float]:
    """Run the worker's ``scenario`` on 2 processes; returns the result and the seconds taken."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARIABLES)}
    env["OMP_NUM_THREADS"] = "1"
    start = time.monotonic()
    try:
        done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(WORKER), scenario,
                               str(out), *extra], capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"mpiexec -n 2 {WORKER.name} {scenario} still ran after {timeout} s (a "
                    f"hang): stdout {exc.stdout!r}, stderr {exc.stderr!r}")
    return done, time.monotonic() - start


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("distributed")
    done, _ = launch("suite", out, timeout=180)
    assert done.returncode == 0, f"the suite failed:\n{done.stdout}\n{done.stderr}"
    return json.loads((out / "suite.json").read_text())


def test_world_of_two_processes(report: dict) -> None:
    rank, size, is_root, text = report["world"]
    assert (rank, size, is_root) == (0, 2, True)
    assert report["ranks"] == [0, 1]
    assert text == "World(rank=0, size=2, MPI)"


def test_two_halves_equal_one_whole_batch(report: dict) -> None:
    """After 4 steps, two processes each taking half of every batch hold the parameters (and
    optimizer state) of one process taking the whole batch, to 1e-10 in float64; with batches of
    7 and 9 the shards are uneven (4 + 3, 5 + 4), weighted by the share shard() recorded or by
    step(batch_size=...); with clipping the global batch's gradient is clipped."""
    runs = report["equivalence"]
    assert len(runs) == 12
    for key, run in runs.items():
        assert run["moved"] > 1e-3, f"{key}: training did not move the parameters"
        assert run["max_diff_vs_single"] < 1e-10, key
        assert run["state_diff_vs_single"] < 1e-10, key
        assert run["params_identical_across_ranks"], key
        assert run["state_identical_across_ranks"], key
    assert {"cpu/adam/B=7/shard", "cpu/sgd/B=7/explicit", "cpu/adam/B=8/plain",
            "cpu/adam/B=9/explicit/clip", "strict/adam/B=7/shard"} <= set(runs)


def test_broadcast_writes_into_existing_arrays_with_buffers(report: dict) -> None:
    b = report["broadcast"]
    assert b["identical"] and b["is_root_1"]  # root=1: rank 1's weights everywhere
    assert b["same_arrays"] and b["optimizer_sees_it"]
    assert b["buffer_names"] == ["RunningMean1.count", "RunningMean1.running_mean"]
    assert b["running_mean"] == [2.5, 2.5]  # rank 1 set rank + 1.5
    assert b["count"] == [20, 20]


def test_broadcast_carries_batch_normalization_statistics(report: dict) -> None:
    b = report["batch_norm"]
    assert b["names"] == ["2.running_mean", "2.running_var"]
    assert b["differed_before"] and b["identical"] and b["root_kept"] and b["same_arrays"]


def test_verify_finds_a_drifted_process(report: dict) -> None:
    """Parameters identical after every equivalence run (verify() passed there); one value off
    by 1e-12 on rank 1 is reported on both ranks."""
    assert report["verify"] == ["DistributedOptimizer.verify: the parameters or optimizer state "
                                "of rank(s) [1] differ from rank 0's"] * 2


def test_optimizer_state_broadcast(report: dict) -> None:
    s = report["optimizer_state"]
    assert s["identical"] and s["t"] == [2, 2] and s["lr"] == [0.005, 0.005]


def test_mismatched_models_refused_on_every_process(report: dict) -> None:
    r = report["refusals"]
    for case in ("shape", "count", "optimizer", "root"):
        assert len(r[case]) == 2 and "no error" not in r[case], case
    for message in r["shape"]:
        assert "'LSTM1.layer1.i2h_input.weight' (5, 3) float64 on cpu on rank 0" in message
        assert "(6, 3) float64 on cpu on rank 1" in message
    for message in r["count"]:
        assert "18 parameter arrays of 224 elements" in message
        assert "34 parameter arrays of 464 elements" in message
    for message in r["optimizer"]:
        assert "SGD over 224 float64 parameters on cpu" in message
        assert "SGD over 464 float64 parameters on cpu" in message
    for message in r["root"]:
        assert "different roots" in message


def test_training_loop_helpers_give_the_global_batch(report: dict) -> None:
    """shard_batch + sync_step (the hooks of a data-parallel loop): the same parameters as one
    process after 3 clipped steps on batches of 7; the global batch's loss and samples, and a
    stop request of rank 1 seen by both ranks."""
    h = report["loop_helpers"]
    assert h["max_diff_vs_single"] < 1e-10
    assert h["first_loss_diff"] < 1e-12
    assert h["samples_and_stop"] == [[[7, True]] * 3] * 2
    assert h["losses_identical"]


def test_fit_runs_data_parallel_and_resumes(report: dict) -> None:
    """nngraph_py.train.fit with a DistributedOptimizer: 2 epochs on uneven shards with clipping
    and validation equal fit() in one process to 1e-10 (also after a resume at epoch 1); val
    metrics agree on both ranks; only the root writes logs (root_only) and checkpoints."""
    f = report["fit"]
    assert f["max_diff_vs_single"] < 1e-10 and f["resumed_diff_vs_single"] < 1e-10
    assert f["val_loss_diff"] < 1e-12 and f["train_loss_diff"] < 1e-12
    assert f["val_losses_identical_across_ranks"]
    assert f["log_written"] == [True, False] and f["checkpoint_exists"]
    assert f["epochs"] == [1, 2]
    # Ctrl-C on rank 1 after step 2: seen by both at the next step's agreement (step 3)
    steps = [row[0] for row in f["interrupted"]]
    assert steps == [3, 3] and f["interrupt_checkpoint_exists"]


def test_cuda_support_of_the_mpi_is_read_from_its_library(report: dict) -> None:
    """MPIX_Query_cuda_support found in the loaded libmpi (MPICH's wheel is built without CUDA:
    False, not None, which would mean the function was not found)."""
    assert report["mpi_cuda_support"] is False


def test_sampler_shards_cover_the_global_batches(report: dict) -> None:
    s = report["sampler"]
    assert s["union_is_global"] and s["global_is_permutation"] and s["iter_equals_batches"]
    assert s["steps"] == [5, 5]
    assert report["average"] == pytest.approx(2 / 3)
    assert report["sum"] == [2, 1]


@pytest.mark.parametrize("scenario, message", [
    ("raise", "rank 1 of 2 stopped on an uncaught ValueError: a deliberate failure on rank 1; "
              "aborting all 2 processes"),
    ("exit", "rank 0 of 2 waited 3 s in allreduce of 1,000 float64 values for the other "
             "processes"),
    ("kill", "Killed (signal 9)"),
])
def test_a_failing_process_stops_the_job(scenario: str, message: str, tmp_path: Path) -> None:
    """Rank 1 raises, exits early, or is killed while rank 0 waits in an allreduce: the job
    ends with an error status and a message instead of hanging (worker timeout 3 s)."""
    done, seconds = launch(scenario, tmp_path, timeout=90)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert message in output, output
    assert "allreduce returned" not in output
    assert seconds < 60, f"{scenario}: took {seconds:.0f} s"


def _tiny_mnist(root: Path) -> Path:
    """A small MNIST-shaped data set as IDX files: each digit a stripe on the row of its label."""
    import numpy as np

    from nngraph_py.data import write_idx
    from nngraph_py.data.mnist import MNIST_FILES

    rng = np.random.default_rng(0)
    root.mkdir()
    for split, n in (("train", 120), ("test", 50)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 * labels + 4] = 255
        write_idx(root / MNIST_FILES[f"{split}_images"], images)
        write_idx(root / MNIST_FILES[f"{split}_labels"], labels)
    return root


def test_mnist_example_distributed_matches_one_process_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/mnist_lstm.py --distributed on 2 processes (tiny data, 3 steps of 40 images an
    epoch, test images 25 + 25): the test loss and accuracy of the same run in one process;
    rank 0 alone prints and writes the outputs; --resume continues to a second epoch."""
    flags = ["--data-dir", str(_tiny_mnist(tmp_path / "idx")), "--batch-size", "40",
             "--hidden", "16", "--no-progress"]
    done, _ = launch("example", tmp_path, timeout=240, extra=tuple(flags))
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    runs = json.loads((tmp_path / "example.json").read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    import mnist_lstm

    for name in ("plot_curves", "plot_confusion"):  # the numbers are compared, not the plots
        monkeypatch.setattr(mnist_lstm, name, lambda *args: None)
    alone = mnist_lstm.main(flags + ["--out", str(tmp_path / "alone"), "--epochs", "1"])
    first, resumed = runs["first"], runs["resumed"]
    assert first["test_images"] == alone["test_images"] == 50
    assert first["test_accuracy"] == alone["test_accuracy"]
    assert abs(first["test_loss"] - alone["test_loss"]) < 1e-4  # float32, other summation order
    assert [h["epoch"] for h in resumed["history"]] == [1, 2] and resumed["epochs"] == 2
    for name in ("checkpoint.npz", "metrics.json", "log.jsonl", "curves.png", "confusion.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert done.stdout.count("RESULT mnist_lstm") == 2  # one line per run: rank 0's alone
