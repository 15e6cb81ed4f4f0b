"""The program that tests/distributed/test_distributed.py runs under ``mpiexec -n 2``.

``python mpi_worker.py SCENARIO OUT_DIR``: ``suite`` runs every check that needs two live
processes and has rank 0 write ``OUT_DIR/suite.json`` (numbers the test asserts on); the other
scenarios make one process fail in one way (``raise``, ``exit``, ``kill``) while the other waits
in a collective, to show the job stops with a message instead of hanging.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from nngraph_py import distributed, nn, optim  # noqa: E402
from nngraph_py.backend import manual_seed, to_device, to_numpy  # noqa: E402
from nngraph_py.distributed import DistributedError, DistributedOptimizer  # noqa: E402
from nngraph_py.module import Module  # noqa: E402
from nngraph_py.nn.select import Select  # noqa: E402


class RunningMean(Module):
    """Identity that keeps a running mean of its inputs: a module with buffers."""

    _buffer_names = ("running_mean", "count")

    def __init__(self, features: int):
        super().__init__()
        self.running_mean = np.zeros(features)
        self.count = 0

    def update_output(self, input):
        if self.train:
            self.running_mean[...] = 0.9 * self.running_mean + 0.1 * input.mean(axis=0)
            self.count += 1
        self.output = input
        return input

    def update_grad_input(self, input, grad_output):
        self.grad_input = grad_output
        return grad_output


def build_model(seed: int, hidden: int = 5, layers: int = 1, device: str = "cpu") -> nn.gModule:
    """rows -> LSTM -> last step -> RunningMean -> Linear(10 classes), in float64."""
    from lstm import LSTM

    manual_seed(seed)
    rows = nn.Identity()()
    outputs = nn.SelectTable(0)(LSTM(3, hidden, layers)(rows))
    last = Select(1, -1)(outputs)
    logits = nn.Linear(hidden, 4)(RunningMean(hidden)(last))
    return nn.gModule([rows], [logits]).to(device, "float64")


def make_data(batch: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.standard_normal((steps, batch, 6, 3)), rng.integers(0, 4, size=(steps, batch))


def make_optimizer(kind: str, model: nn.gModule) -> optim.Optimizer:
    if kind == "adam":
        return optim.Adam(model, lr=0.01)
    return optim.SGD(model, lr=0.1, momentum=0.9, nesterov=True)


def train(model, opt, xs, ys, part, clip: float = 0.0, weighting: str = "shard",
          device: str = "cpu") -> None:
    """``len(xs)`` steps, each on ``part(batch_size)`` of the batch (a slice)."""
    criterion = nn.CrossEntropyCriterion().to(device, "float64")
    for x, y in zip(xs, ys):
        sl = part(len(x))
        x, y = to_device(x[sl], device), to_device(y[sl], device)
        opt.zero_grad()
        logits = model.forward(x)
        criterion.forward(logits, y)
        model.backward(x, criterion.backward(logits, y))
        kwargs = {"batch_size": int(x.shape[0])} if weighting == "explicit" else {}
        if clip:
            if isinstance(opt, DistributedOptimizer):
                opt.synchronize(**kwargs)  # clip the global batch's gradient, not a shard's
            optim.clip_grad_norm(opt.grads, clip)
            opt.step()
        else:
            opt.step(**kwargs)


def flat(model) -> np.ndarray:
    return np.concatenate([to_numpy(p).ravel() for p in model.parameters()[0]])


def state_vector(opt) -> np.ndarray:
    sd = opt.state_dict()
    parts = [np.atleast_1d(np.asarray(to_numpy(v) if hasattr(v, "shape") else v, dtype=float))
             for k, v in sorted(sd.items()) if not isinstance(v, bool)]
    return np.concatenate([p.ravel() for p in parts])


def suite(out: Path) -> None:
    world = distributed.init()
    assert world is distributed.init()
    if world.size != 2:
        sys.exit(f"mpi_worker: expected 2 processes, this one sees a world of {world.size}: does "
                 f"the mpiexec used belong to the MPI that mpi4py was built for?")
    report: dict = {"world": [world.rank, world.size, world.is_root, repr(world)]}
    ranks = world.allgather(world.rank)
    report["ranks"] = ranks

    # ---- equivalence: two halves of every batch == one process with the whole batch --------
    steps = 4
    equivalence = {}
    for device in ("cpu", "strict"):
        for kind in ("adam", "sgd"):
            for batch, weighting, clip in ((8, "even", 0.0), (8, "plain", 0.0), (7, "shard", 0.0),
                                           (7, "explicit", 0.0), (9, "explicit", 0.05)):
                if device == "strict" and (kind, batch) != ("adam", 7):
                    continue
                xs, ys = make_data(batch, steps)
                reference = build_model(100, device=device)  # rank 0's model, alone
                ref_opt = make_optimizer(kind, reference)
                model_start = flat(reference)
                train(reference, ref_opt, xs, ys, lambda n: slice(0, n), clip, device=device)

                model = build_model(100 + world.rank, device=device)  # differs on each rank
                opt = DistributedOptimizer(make_optimizer(kind, model))
                distributed.broadcast_parameters(model, root=0)
                if weighting == "plain":  # sliced by hand: no share recorded, the plain mean
                    def part(n):
                        return slice(*distributed.shard_bounds(n, world.rank, world.size))
                else:
                    def part(n):
                        return distributed.shard(n, world)
                train(model, opt, xs, ys, part, clip, weighting=weighting, device=device)
                opt.verify()  # raises unless identical on both ranks
                params = flat(model)
                states = world.allgather(state_vector(opt))
                all_params = world.allgather(params)
                key = f"{device}/{kind}/B={batch}/{weighting}" + ("/clip" if clip else "")
                equivalence[key] = {
                    "max_diff_vs_single": float(np.max(np.abs(params - flat(reference)))),
                    "moved": float(np.max(np.abs(params - model_start))),
                    "params_identical_across_ranks": bool(np.array_equal(*all_params)),
                    "state_identical_across_ranks": bool(np.array_equal(*states)),
                    "state_diff_vs_single": float(np.max(np.abs(states[world.rank]
                                                                - state_vector(ref_opt)))),
                }
    report["equivalence"] = equivalence

    # ---- broadcast: into the existing arrays, buffers included -----------------------------
    model = build_model(200 + world.rank)
    opt = optim.Adam(model, lr=0.01)
    flat_before = opt.params
    weight_before = model.parameters()[0][0]
    buffers = dict(distributed.named_buffers(model))
    running = next(v for k, v in buffers.items() if k.endswith("running_mean"))
    running[...] = world.rank + 1.5
    holder = next(m for m in model.modules() if isinstance(m, RunningMean))
    holder.count = 10 * (world.rank + 1)
    distributed.broadcast_parameters(model, root=1)
    gathered = world.allgather(flat(model))
    report["broadcast"] = {
        "identical": bool(np.array_equal(*gathered)),
        "is_root_1": bool(np.array_equal(gathered[0], flat(build_model(201)))),
        "same_arrays": bool(opt.params is flat_before
                            and model.parameters()[0][0] is weight_before
                            and np.shares_memory(model.parameters()[0][0], opt.params)),
        "optimizer_sees_it": bool(np.array_equal(opt.params, flat(model))),
        "buffer_names": sorted(buffers),
        "running_mean": world.allgather(float(running[0])),
        "count": world.allgather(holder.count),
    }

    # the library's own buffers: BatchNormalization's running statistics, trained apart
    manual_seed(0)
    bn_model = nn.Sequential(nn.Linear(3, 4), nn.BatchNormalization(4)).double()
    bn = bn_model.children()[1]
    rng = np.random.default_rng(world.rank)
    bn_model.forward(rng.standard_normal((8, 3)) + 5 * world.rank)  # differs on each rank
    stats = {k: v.copy() for k, v in distributed.named_buffers(bn_model)}
    arrays = (bn.running_mean, bn.running_var)
    distributed.broadcast_parameters(bn_model)
    after = {k: v.tolist() for k, v in distributed.named_buffers(bn_model)}
    report["batch_norm"] = {
        "names": sorted(after),
        "identical": world.allgather(after)[0] == world.allgather(after)[1],
        "differed_before": bool(not np.array_equal(*world.allgather(stats["2.running_mean"]))),
        "root_kept": world.allgather(bool(np.array_equal(after["2.running_mean"],
                                                         stats["2.running_mean"])))[0],
        "same_arrays": arrays[0] is bn.running_mean and arrays[1] is bn.running_var,
    }

    # ---- optimizer state broadcast ------------------------------------------------------------
    model = build_model(5)
    opt = optim.Adam(model, lr=0.01)
    if world.rank == 0:
        xs, ys = make_data(4, 2)
        train(model, opt, xs, ys, lambda n: slice(0, n))
        opt.lr = 0.005
    distributed.broadcast_parameters(model)
    DistributedOptimizer(opt).broadcast_state(root=0)
    gathered = world.allgather(state_vector(opt))
    report["optimizer_state"] = {"identical": bool(np.array_equal(*gathered)),
                                 "t": world.allgather(opt.state["t"]),
                                 "lr": world.allgather(opt.lr)}

    # ---- verify() finds a process that drifted ----------------------------------------------
    model = build_model(5)
    opt = DistributedOptimizer(make_optimizer("adam", model))
    opt.verify()
    if world.rank == 1:
        opt.params[0] += 1e-12
    try:
        opt.verify()
        report["verify"] = world.allgather("no error")
    except DistributedError as exc:
        report["verify"] = world.allgather(str(exc))

    # ---- mismatched models are refused on every process ------------------------------------
    refusals = {}
    cases = {
        "shape": lambda: build_model(1, hidden=5 if world.rank == 0 else 6),
        "count": lambda: build_model(1, layers=1 if world.rank == 0 else 2),
    }
    for name, make in cases.items():
        model = make()
        try:
            distributed.broadcast_parameters(model)
            refusals[name] = world.allgather("no error")
        except DistributedError as exc:
            refusals[name] = world.allgather(str(exc))
    try:
        DistributedOptimizer(optim.SGD(build_model(1, layers=1 + world.rank)))
        refusals["optimizer"] = world.allgather("no error")
    except DistributedError as exc:
        refusals["optimizer"] = world.allgather(str(exc))
    try:
        distributed.broadcast_parameters(build_model(1), root=world.rank)
        refusals["root"] = world.allgather("no error")
    except DistributedError as exc:
        refusals["root"] = world.allgather(str(exc))
    report["refusals"] = refusals

    # ---- the training-loop helpers: shard_batch + sync_step ----------------------------------
    xs, ys = make_data(7, 3)
    reference = build_model(100)
    ref_opt = make_optimizer("adam", reference)
    train(reference, ref_opt, xs, ys, lambda n: slice(0, n), clip=0.05)
    model = build_model(100 + world.rank)
    opt = DistributedOptimizer(make_optimizer("adam", model))
    distributed.broadcast_parameters(model)
    criterion = nn.CrossEntropyCriterion().to("cpu", "float64")
    losses = []
    for x, y in zip(xs, ys):
        x, y = distributed.shard_batch((x, y), world)
        opt.zero_grad()
        logits = model.forward(x)
        loss = criterion.forward(logits, y)
        model.backward(x, criterion.backward(logits, y))
        loss, samples, stop = distributed.sync_step(opt, float(loss), len(y),
                                                    stop=world.rank == 1)
        losses.append([loss, samples, stop])
        optim.clip_grad_norm(opt.grads, 0.05)
        opt.step()
    full_loss = float(nn.CrossEntropyCriterion().to("cpu", "float64").forward(
        build_model(100).forward(xs[0]), ys[0]))
    report["loop_helpers"] = {
        "max_diff_vs_single": float(np.max(np.abs(flat(model) - flat(reference)))),
        "first_loss_diff": abs(losses[0][0] - full_loss),
        "samples_and_stop": world.allgather([row[1:] for row in losses]),
        "losses_identical": world.allgather([row[0] for row in losses])[0]
        == world.allgather([row[0] for row in losses])[1],
    }

    # ---- nngraph_py.train.fit, data-parallel: same run as one process, root writes -----------
    report["fit"] = fit_check(world, out)

    # ---- sampler and scalars ------------------------------------------------------------------
    sampler = distributed.EpochSampler(23, batch_size=5, seed=3)
    mine = sampler.batches(2)
    theirs = world.allgather([b.tolist() for b in mine])
    union = [sorted(a + b) for a, b in zip(*theirs)]
    report["sampler"] = {
        "union_is_global": union == [sorted(b.tolist()) for b in sampler.global_batches(2)],
        "global_is_permutation": sorted(np.concatenate(sampler.global_batches(2)).tolist())
        == list(range(23)),
        "steps": world.allgather(len(sampler)),
        "iter_equals_batches": [b.tolist() for b in sampler.batches(0)]
        == [b.tolist() for b in sampler],
    }
    from nngraph_py.distributed import transport

    report["mpi_cuda_support"] = transport.mpi_cuda_support()  # the mpich wheel: no CUDA
    report["average"] = world.average(float(world.rank), weight=world.rank + 1)  # (0*1+1*2)/3
    report["sum"] = world.sum([1, world.rank])
    world.barrier()
    if world.is_root:
        (out / "suite.json").write_text(json.dumps(report, indent=1))


def fit_check(world, out: Path) -> dict:
    """fit() on 2 processes (global batches of 9: shards of 5 and 4, val batches of 5) against
    fit() alone, both with gradient clipping; then a resume to a second epoch."""
    from nngraph_py import train as training

    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((27, 6, 3)), rng.integers(0, 4, size=27)
    batches = [(x[i:i + 9], y[i:i + 9]) for i in range(0, 27, 9)]
    val = [(x[i:i + 5], y[i:i + 5]) for i in range(0, 10, 5)]

    def run(distributed_run: bool, epochs: int, resume=None, tag: str = ""):
        model = build_model(300 + (world.rank if distributed_run else 0))
        opt = make_optimizer("adam", model)
        if distributed_run:
            opt = DistributedOptimizer(opt)
            distributed.broadcast_parameters(model)
        here = out / f"fit-{tag}-rank{world.rank}" if distributed_run else out / f"alone-{tag}"
        ck = out / f"fit-{tag}.npz" if distributed_run else here / "ck.npz"
        callbacks = [training.GradientClipping(0.05), training.JSONLinesLogger(here / "log.jsonl"),
                     training.ModelCheckpoint(ck)]
        history = training.fit(model, nn.CrossEntropyCriterion().to("cpu", "float64"), opt,
                               batches, epochs=epochs, val=val, callbacks=callbacks,
                               progress=False, resume=resume)
        return flat(model), history, here, ck

    alone, alone_history, _, _ = run(False, 2, tag="2")
    _, _, _, ck = run(True, 1, tag="1")
    world.barrier()
    resumed, history, here, _ = run(True, 2, resume=ck, tag="1")
    straight, straight_history, _, _ = run(True, 2, tag="straight")
    losses = [h["val_loss"] for h in history.state.history]

    # Ctrl-C on rank 1 alone, after step 2 of 6: both processes stop at the same step, the root
    # saves the checkpoint, and both raise TrainingInterrupted.
    class CtrlC(training.Callback):
        def on_step_end(self, loop) -> None:
            if world.rank == 1 and loop.state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    model = build_model(300)
    opt = DistributedOptimizer(make_optimizer("adam", model))
    stopped = None
    try:
        training.fit(model, nn.CrossEntropyCriterion().to("cpu", "float64"), opt, batches,
                     epochs=2, callbacks=[CtrlC(), training.ModelCheckpoint(out / "ctrlc.npz")],
                     progress=False)
    except training.TrainingInterrupted as exc:
        stopped = [exc.history.state.global_step, exc.checkpoint]
    return {
        "interrupted": world.allgather(stopped),
        "interrupt_checkpoint_exists": (out / "ctrlc.npz").exists(),
        "max_diff_vs_single": float(np.max(np.abs(straight - alone))),
        "resumed_diff_vs_single": float(np.max(np.abs(resumed - alone))),
        "val_loss_diff": max(abs(a["val_loss"] - b["val_loss"]) for a, b in
                             zip(straight_history.state.history, alone_history.state.history)),
        "train_loss_diff": max(abs(a - b) for a, b in zip(straight_history.state.losses,
                                                          alone_history.state.losses)),
        "val_losses_identical_across_ranks": world.allgather(losses)[0]
        == world.allgather(losses)[1],
        "log_written": world.allgather((here / "log.jsonl").exists()),
        "checkpoint_exists": ck.exists(),
        "epochs": [h["epoch"] for h in history.state.history],
    }


def fail(mode: str) -> None:
    world = distributed.init(timeout=3.0)
    grads = np.ones(1000)
    if world.rank == 1:
        if mode == "raise":
            raise ValueError("a deliberate failure on rank 1")
        if mode == "exit":
            sys.exit(0)  # leaves without a word: the other process must not wait forever
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
    start = time.monotonic()
    world.allreduce_(grads)
    print(f"rank {world.rank}: allreduce returned after {time.monotonic() - start:.1f} s",
          flush=True)


def example(out: Path, flags: list[str]) -> None:
    """examples/mnist_lstm.py --distributed for one epoch, then resumed to a second one."""
    sys.path.insert(0, str(REPO / "examples"))
    import mnist_lstm

    first = mnist_lstm.main(flags + ["--distributed", "--out", str(out / "run"), "--epochs", "1"])
    # The plots were checked on the first run; matplotlib is slow on a busy machine.
    mnist_lstm.plot_curves = mnist_lstm.plot_confusion = lambda *args: None
    resumed = mnist_lstm.main(["--resume", str(out / "run" / "checkpoint.npz"), "--epochs", "2",
                               "--no-progress", "--distributed"])
    world = distributed.init()
    if world.is_root:
        (out / "example.json").write_text(json.dumps({"first": first, "resumed": resumed}))
    else:
        assert set(first) == {"rank", "test_loss"}, first  # the root alone writes


if __name__ == "__main__":
    scenario, out_dir = sys.argv[1], Path(sys.argv[2])
    if scenario == "suite":
        suite(out_dir)
    elif scenario == "example":
        example(out_dir, sys.argv[3:])
    else:
        fail(scenario)
