"""The distributed API in one process: no mpiexec, and nothing extra needed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nngraph_py import distributed, nn, optim
from nngraph_py.distributed import (DistributedError, DistributedOptimizer, EpochSampler, World,
                                    shard, shard_bounds)
from nngraph_py.distributed import world as world_module
from nngraph_py.errors import InputError, NNGraphError

REPO = Path(__file__).resolve().parents[2]
LAUNCHER_VARIABLES = ("PMI_", "OMPI_", "PMIX_", "MV2_", "HYDRA_", "MPI_LOCAL", "NNGRAPH_DIST")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARIABLES)}


def test_init_without_mpiexec_is_one_process_and_imports_no_mpi() -> None:
    code = ("import sys; from nngraph_py import distributed as d; w = d.init(); "
            "print(w.rank, w.size, w.is_root, w is d.init(), 'mpi4py' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean_env(), cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1", "True", "True", "False"]


def test_mpiexec_of_several_without_mpi4py_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `import mpi4py` raise ImportError
    with pytest.raises(DistributedError, match=r"one of 2 processes, but mpi4py cannot be "
                                               r"imported.*nngraph_py\[distributed\]"):
        world_module._make_world(1.0)


def test_mpiexec_of_one_without_mpi4py_is_a_world_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMI_SIZE", "1")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    world = world_module._make_world(1.0)
    assert (world.rank, world.size, world.is_root, world.comm) == (0, 1, True, None)


def test_distributed_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMI_SIZE", "4")
    monkeypatch.setenv("NNGRAPH_DISTRIBUTED", "0")
    assert world_module._make_world(1.0).size == 1


def test_launched_size_reads_the_launchers_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMI_RANK",
                 "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launched_size() is None
    monkeypatch.setenv("PMIX_RANK", "0")
    assert distributed.launched_size() == 0
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "8")
    assert distributed.launched_size() == 8


def test_world_checks_its_arguments() -> None:
    assert World(2, 3).is_root is False and World().is_root is True
    assert issubclass(DistributedError, NNGraphError)
    for rank, size in ((3, 3), (-1, 2), (0, 0), (0.5, 2)):
        with pytest.raises(DistributedError, match="World: "):
            World(rank, size)
    with pytest.raises(DistributedError, match="has no communicator"):
        World(0, 2).allreduce_(np.ones(2))


def test_collectives_of_a_world_of_one_change_nothing() -> None:
    world = World()
    a = np.arange(3.0)
    assert world.allreduce_(a) is a and a.tolist() == [0, 1, 2]
    assert world.broadcast_(a) is a
    assert world.allgather("x") == ["x"] and world.broadcast_object(5) == 5
    assert world.sum([1, 2]) == [1, 2] and world.average(3.0, weight=2) == 3.0
    world.barrier()
    with pytest.raises(DistributedError, match="root must be a rank in"):
        world.broadcast_(a, root=1)
    with pytest.raises(DistributedError, match="nngraph_py.distributed: stop"):
        world.abort("stop")


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 64, 101])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shard_is_contiguous_ordered_balanced_and_covering(n: int, size: int) -> None:
    slices = [shard(n, World(rank, size)) for rank in range(size)]
    assert all(isinstance(s, slice) and s.step is None for s in slices)
    assert slices[0].start == 0 and slices[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    lengths = [s.stop - s.start for s in slices]
    assert max(lengths) - min(lengths) <= 1 and sorted(lengths, reverse=True) == lengths
    assert [shard_bounds(n, r, size) for r in range(size)] == [(s.start, s.stop) for s in slices]


def test_shard_accepts_any_world_like_object_and_refuses_bad_input() -> None:
    class Fake:
        rank, size = 1, 2

    assert shard(5, Fake()) == slice(3, 5)
    with pytest.raises(DistributedError, match="non-negative int"):
        shard(-1, World())
    with pytest.raises(DistributedError, match="non-negative int"):
        shard(2.0, World())
    with pytest.raises(DistributedError, match="rank < size"):
        shard(4, object())


def test_shard_records_the_share_for_one_step() -> None:
    world = World(1, 2)
    shard(7, world)
    assert world._take_share() == (3, 7)
    assert world._take_share() is None


def test_epoch_sampler_is_deterministic_and_covers_each_epoch() -> None:
    world = World(0, 1)
    a = EpochSampler(10, batch_size=4, world=world, seed=5)
    b = EpochSampler(10, batch_size=4, world=world, seed=5)
    assert [x.tolist() for x in a.batches(3)] == [x.tolist() for x in b.batches(3)]
    assert [x.tolist() for x in a.batches(3)] != [x.tolist() for x in a.batches(4)]
    assert sorted(np.concatenate(a.batches(3)).tolist()) == list(range(10))
    # the example scripts' permutation: the same batches as before distributed training
    order = np.random.default_rng([5, 3]).permutation(10)
    assert [x.tolist() for x in a.batches(3)] == [order[:4].tolist(), order[4:8].tolist(),
                                                  order[8:].tolist()]
    assert len(a) == 3 and len(EpochSampler(10, 4, world, drop_last=True)) == 2
    assert [len(x) for x in EpochSampler(10, 4, world, drop_last=True).batches(0)] == [4, 4]
    parts = [EpochSampler(10, 4, World(r, 3), seed=5).batches(3) for r in range(3)]
    assert [sorted(np.concatenate(p).tolist()) for p in zip(*parts)] == \
        [sorted(x.tolist()) for x in a.batches(3)]
    with pytest.raises(DistributedError, match="batch_size >= 1"):
        EpochSampler(10, 0, world)


def _trained(wrap: bool, steps: int = 3) -> np.ndarray:
    from nngraph_py.backend import manual_seed

    manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    opt = optim.Adam(model, lr=0.1)
    if wrap:
        opt = DistributedOptimizer(opt, World())
        distributed.broadcast_parameters(model, world=World())
    criterion = nn.MSECriterion().double()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
        opt.zero_grad()
        out = model.forward(x)
        criterion.forward(out, y)
        model.backward(x, criterion.backward(out, y))
        opt.step(**({"batch_size": 5} if wrap else {}))
    return opt.params.copy()


def test_distributed_optimizer_alone_is_the_wrapped_optimizer() -> None:
    assert np.array_equal(_trained(wrap=False), _trained(wrap=True))


def test_distributed_optimizer_surface() -> None:
    model = nn.Linear(3, 2).double()
    inner = optim.SGD(model, lr=0.5)
    opt = DistributedOptimizer(inner, World())
    assert opt.params is inner.params and opt.grads is inner.grads and opt.state is inner.state
    opt.lr = 0.25
    assert inner.lr == 0.25 and opt.config is inner.config
    assert opt.state_dict().keys() == inner.state_dict().keys()
    opt.load_state_dict(inner.state_dict())
    assert opt.broadcast_state() is opt
    assert "DistributedOptimizer(SGD(" in repr(opt)
    opt.grads[...] = 1.0
    assert opt.synchronize() is opt.grads and opt.synchronize() is opt.grads
    loss = opt.step(closure=lambda: 1.5)
    assert loss == 1.5
    with pytest.raises(InputError, match="already distributed"):
        DistributedOptimizer(opt)
    with pytest.raises(InputError, match="without 'params'"):
        DistributedOptimizer(object())
    with pytest.raises(DistributedError, match="sum to 0"):
        opt.step(batch_size=0)


def test_broadcast_parameters_alone_checks_its_arguments() -> None:
    model = nn.Linear(2, 2)
    assert distributed.broadcast_parameters(model) is model
    with pytest.raises(DistributedError, match="root must be a rank"):
        distributed.broadcast_parameters(model, root=1)
    assert list(distributed.named_buffers(model)) == []


@pytest.mark.parametrize("name", ["world", "parameters", "optimizer", "sampler"])
def test_docstring_examples(name: str) -> None:
    """The runnable examples in the docstrings (they run in a world of one process)."""
    import doctest
    import importlib

    module = importlib.import_module(f"nngraph_py.distributed.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_shard_batch_cuts_every_array_of_a_nested_batch() -> None:
    x, y, z = np.arange(10).reshape(5, 2), np.arange(5), np.float64(3.0)
    a, (b, c), d = distributed.shard_batch((x, (y, z), "label"), World(1, 2))
    assert a.tolist() == [[6, 7], [8, 9]] and b.tolist() == [3, 4] and c == 3.0
    assert d == "label"
    alone = (x, y)
    assert distributed.shard_batch(alone, World()) is alone
    with pytest.raises(InputError, match="differ in length along axis 0: 5 and 4"):
        distributed.shard_batch((x, y[:4]), World(0, 2))
    assert distributed.batch_length([None, [y]]) == 5 and distributed.batch_length([1]) is None


def test_sync_step_alone_returns_the_local_values() -> None:
    model = nn.Linear(2, 2).double()
    opt = DistributedOptimizer(optim.SGD(model, lr=0.1), World())
    opt.grads[...] = 2.0
    assert distributed.sync_step(opt, 0.5, 4, stop=True) == (0.5, 4, True)
    assert opt.grads.tolist() == [2.0] * 6  # a world of one: the gradient as it was
    with pytest.raises(InputError, match="expected a DistributedOptimizer"):
        distributed.sync_step(optim.SGD(model, lr=0.1), 0.5, 4)


class _OneProcessComm:
    """Stands in for an mpi4py communicator of one process: bcast returns its value."""

    def bcast(self, value, root=0):
        return value


def test_gpu_transport_is_chosen_once_and_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    from nngraph_py.distributed import transport

    world = World(0, 1, comm=_OneProcessComm())
    monkeypatch.setenv("NNGRAPH_DIST_GPU", "host")
    assert transport.gpu_transport(world) == "host"
    monkeypatch.setenv("NNGRAPH_DIST_GPU", "mpi")
    assert transport.gpu_transport(world) == "host"  # chosen once per world
    monkeypatch.setenv("NNGRAPH_DIST_GPU", "carrier-pigeon")
    with pytest.raises(ValueError, match="NNGRAPH_DIST_GPU must be one of"):
        transport.gpu_transport(World(0, 1, comm=_OneProcessComm()))
    monkeypatch.setenv("NNGRAPH_DIST_GPU", "nccl")
    monkeypatch.setattr(transport, "_nccl_module", lambda: None)
    with pytest.raises(RuntimeError, match="cupy.cuda.nccl is not usable here"):
        transport.gpu_transport(World(0, 1, comm=_OneProcessComm()))


def test_verify_alone_passes() -> None:
    opt = DistributedOptimizer(optim.Adam(nn.Linear(2, 2), lr=0.1), World())
    opt.verify()
