"""Checkpoints: round trips, atomic writes, and every way a file can be wrong."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy
import pytest

from inspect_models import lstm_cell_model, nested_model, seed_mlp, shared_model
from nngraph_py import backend, checkpoint, nn
from nngraph_py.checkpoint import (FORMAT, META_KEY, Checkpoint, CheckpointError,
                                   CheckpointNotFound, load_checkpoint, save_checkpoint)


def host_params(model):
    return {n: backend.to_numpy(p).copy() for n, p in model.named_parameters()}


def assert_params_equal(model, expected):
    got = host_params(model)
    assert list(got) == list(expected)
    for name in got:
        numpy.testing.assert_array_equal(got[name], expected[name])


def scramble(model):
    for _, p in model.named_parameters():
        p[...] = 7.0


def test_round_trip_on_every_backend(tmp_path, device):
    model = lstm_cell_model().to(device)
    saved = host_params(model)
    path = save_checkpoint(str(tmp_path / "cell.npz"), model, meta={"epoch": 3, "loss": 1.5})
    scramble(model)
    ck = load_checkpoint(path, model=model)
    assert_params_equal(model, saved)
    assert backend.device_of(model.parameters()[0][0]) == device
    assert ck.user == {"epoch": 3, "loss": 1.5}
    assert list(ck.params) == list(saved)
    meta, arrays = ck  # unpacks as (meta, arrays)
    assert meta["format"] == FORMAT and "param/i2h_forget.weight" in arrays
    assert meta["model"]["type"] == "gModule" and "i2h_forget" in meta["model"]["repr"]
    assert ck.summary().total_params == model.num_parameters()


def test_loading_copies_in_place_so_flat_views_stay_valid(tmp_path):
    model = seed_mlp()
    flat, _ = model.get_parameters()
    saved = flat.copy()
    path = save_checkpoint(str(tmp_path / "m.npz"), model)
    flat[...] = 0
    weight_before = model.parameters()[0][0]
    load_checkpoint(path, model=model)
    numpy.testing.assert_array_equal(flat, saved)
    assert model.parameters()[0][0] is weight_before


def test_file_layout_is_plain_arrays_and_json(tmp_path):
    model = shared_model()
    path = save_checkpoint(str(tmp_path / "m.npz"), model, grads=True)
    with numpy.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        assert z[META_KEY].dtype == numpy.uint8
    # the shared array is stored once, under its first name
    assert keys == {META_KEY, "param/left.weight", "param/left.bias", "grad/left.weight",
                    "grad/left.bias"}
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())


def test_shared_parameters_restore_every_sharer(tmp_path):
    model = shared_model()
    saved = host_params(model)
    path = save_checkpoint(str(tmp_path / "m.npz"), model)
    fresh = shared_model()
    load_checkpoint(path, model=fresh)
    assert_params_equal(fresh, saved)
    modules = {fresh.node_name(n): n.module for n in fresh.nodes}
    assert modules["right"].weight is modules["left"].weight  # still shared after the load
    numpy.testing.assert_array_equal(modules["right"].weight, saved["left.weight"])


def test_gradients_are_saved_and_restored(tmp_path, rng):
    model = seed_mlp().double()
    x = [rng.standard_normal(s) for s in ((2, 10), (2, 10), (2, 20))]
    model.forward(x)
    model.backward(x, rng.standard_normal((2, 10)))
    grads = {n: g.copy() for n, g in model.named_grad_parameters()}
    path = save_checkpoint(str(tmp_path / "m.npz"), model, grads=True)
    fresh = seed_mlp().double()
    ck = load_checkpoint(path, model=fresh)
    assert list(ck.grads) == list(grads)
    for (name, g) in fresh.named_grad_parameters():
        numpy.testing.assert_array_equal(g, grads[name])
    assert load_checkpoint(save_checkpoint(str(tmp_path / "n.npz"), model)).grads == {}


def test_optimizer_state_round_trip_resumes_identically(tmp_path, rng):
    optim = pytest.importorskip("nngraph_py.optim", reason="nngraph_py.optim is not available yet")
    x = [rng.standard_normal(s).astype("float32") for s in ((2, 10), (2, 10), (2, 20))]

    def step(model, opt):
        opt.zero_grad()
        out = model.forward(x)
        model.backward(x, out)
        opt.step()

    model = seed_mlp()
    opt = optim.Adam(model, lr=0.01)
    for _ in range(3):
        step(model, opt)
    path = save_checkpoint(str(tmp_path / "m.npz"), model, opt, {"step": 3})
    ck = load_checkpoint(path)
    assert ck.meta["optimizer"]["type"] == "Adam"
    assert ck.optimizer_state["t"] == 3 and ck.optimizer_state["m"].shape == (210,)
    model2 = seed_mlp()
    opt2 = optim.Adam(model2, lr=0.5)
    load_checkpoint(path, model=model2, optimizer=opt2)
    assert opt2.lr == 0.01
    step(model, opt)
    step(model2, opt2)
    assert_params_equal(model2, host_params(model))


def test_optimizer_state_as_a_dict_with_tuples(tmp_path):
    state = {"lr": 0.1, "betas": (0.9, 0.99), "t": numpy.int64(4), "buf": numpy.ones(210, "f4")}
    path = save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), state)
    got = load_checkpoint(path).optimizer_state
    assert got["betas"] == (0.9, 0.99) and got["t"] == 4 and got["lr"] == 0.1
    numpy.testing.assert_array_equal(got["buf"], numpy.ones(210, "f4"))


def test_numpy_scalars_in_meta_become_numbers(tmp_path):
    meta = {"loss": numpy.float32(0.25), "epoch": numpy.int64(3), "tags": ("a", "b")}
    path = save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), meta=meta)
    assert load_checkpoint(path).user == {"loss": 0.25, "epoch": 3, "tags": ["a", "b"]}


def test_data_only_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), meta={"f": lambda: 0})
    with pytest.raises(CheckpointError, match="'hook'"):
        save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), {"hook": object()})
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------------
def test_a_failure_mid_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model = seed_mlp()
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, model, meta={"version": 1})
    before = open(path, "rb").read()
    real_savez = numpy.savez

    def crash(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(100)  # half the archive is on disk...
        raise OSError("disk full")  # ...when the write fails

    monkeypatch.setattr(checkpoint.numpy, "savez", crash)
    scramble(model)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, meta={"version": 2})
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert load_checkpoint(path).user == {"version": 1}
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def test_overwrite_keeps_the_file_mode(tmp_path):
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, seed_mlp())
    os.chmod(path, 0o640)
    save_checkpoint(path, seed_mlp())
    assert os.stat(path).st_mode & 0o777 == 0o640


# ------------------------------------------------------------------------------------------------
# Files that cannot be read
# ------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.npz")
    with pytest.raises(CheckpointNotFound, match="nope.npz does not exist") as info:
        load_checkpoint(path)
    assert isinstance(info.value, FileNotFoundError)


def test_truncated_file_names_the_file_and_leaves_the_model(tmp_path):
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, lstm_cell_model())
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    model = lstm_cell_model()
    before = host_params(model)
    with pytest.raises(CheckpointError, match=r"m\.npz.*truncated"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.npz"):
        load_checkpoint(str(empty))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(CheckpointError, match="garbage.npz"):
        load_checkpoint(str(garbage))


class _Boom:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_bearing_npz_is_refused_and_never_runs(tmp_path):
    marker = str(tmp_path / "pwned")
    path = str(tmp_path / "evil.npz")
    save_checkpoint(path, seed_mlp())
    obj = numpy.empty(1, dtype=object)
    obj[0] = _Boom(marker)
    _rewrite(path, replace={"param/Linear1.bias": obj})
    with pytest.raises(CheckpointError, match="'param/Linear1.bias' is pickled"):
        load_checkpoint(path)
    assert not os.path.exists(marker)
    # An unlisted member is never even opened (before issue 12 every member was read).
    save_checkpoint(path, seed_mlp())
    _rewrite(path, replace={"extra/w": obj})
    assert list(load_checkpoint(path).params) == ["Linear1.weight", "Linear1.bias"]
    assert not os.path.exists(marker)


def test_plain_pickle_file_is_refused_and_never_runs(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(str(path))
    assert not os.path.exists(marker)


def test_npz_that_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / "other.npz")
    numpy.savez(path, w=numpy.ones(3))
    with pytest.raises(CheckpointError, match="not an nngraph_py checkpoint"):
        load_checkpoint(path)
    single = str(tmp_path / "single.npy")
    numpy.save(single, numpy.ones(3))
    with pytest.raises(CheckpointError, match="single .npy"):
        load_checkpoint(single)


def _rewrite(path, edit_meta=None, drop=None, replace=None):
    """Rewrite a checkpoint with edited metadata, an array left out or arrays replaced."""
    import json

    with numpy.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(replace or {})
    meta = json.loads(bytes(arrays[META_KEY]).decode())
    if edit_meta:
        edit_meta(meta)
    arrays[META_KEY] = numpy.frombuffer(json.dumps(meta).encode(), numpy.uint8)
    if drop:
        del arrays[drop]
    numpy.savez(path, **arrays)


def test_other_format_version_and_inconsistent_file(tmp_path):
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, seed_mlp())
    _rewrite(path, edit_meta=lambda m: m.update(format="nngraph_py.checkpoint/2"))
    with pytest.raises(CheckpointError, match="checkpoint/2"):
        load_checkpoint(path)
    save_checkpoint(path, seed_mlp())
    _rewrite(path, drop="param/Linear1.bias")
    with pytest.raises(CheckpointError, match="corrupt.*param/Linear1.bias"):
        load_checkpoint(path)


# ------------------------------------------------------------------------------------------------
# Files that do not match the model: the first mismatch is named, nothing is copied
# ------------------------------------------------------------------------------------------------
def _saved(tmp_path, model):
    return save_checkpoint(str(tmp_path / "saved.npz"), model)


def test_wrong_name(tmp_path):
    path = _saved(tmp_path, lstm_cell_model())
    x = nn.Identity()().annotate(name="x")
    prev_c, prev_h = nn.Identity()(), nn.Identity()()
    # Same sizes, every node named differently: the recipe with a prefix on every name.
    try:
        from lstm.cell import lstm_cell
    except ImportError:
        pytest.skip("lstm.cell is not available yet")
    c, h = lstm_cell(x, prev_c, prev_h, 5, 4, prefix="l1_")
    renamed = nn.gModule([x, prev_c, prev_h], [c, h])
    before = host_params(renamed)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model=renamed)
    text = str(info.value)
    assert "saved.npz" in text and "'l1_i2h_input.weight' is not in the checkpoint" in text
    assert "'i2h_input.weight'" in text and "nothing was loaded" in text
    assert_params_equal(renamed, before)


def test_wrong_name_without_lstm(tmp_path):
    path = _saved(tmp_path, seed_mlp())
    x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    proj = nn.Linear(20, 10)(x3).annotate(name="proj")
    model = nn.gModule([x1, x2, x3], [nn.CAddTable()([x1, nn.CMulTable()([x2, proj])])])
    before = host_params(model)
    with pytest.raises(CheckpointError,
                       match=r"parameter 'proj.weight' is not in the checkpoint.*Linear1"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_wrong_shape(tmp_path):
    path = _saved(tmp_path, lstm_cell_model(5, 4))
    model = lstm_cell_model(5, 3)
    before = host_params(model)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model=model)
    text = str(info.value)
    first = next(iter(before))
    assert f"parameter '{first}' has shape (4, 5) in the checkpoint but (3, 5) in the model" in text
    assert "15 more mismatch(es)" in text
    assert_params_equal(model, before)


def test_wrong_dtype(tmp_path):
    path = _saved(tmp_path, seed_mlp())
    model = seed_mlp().double()
    before = host_params(model)
    with pytest.raises(CheckpointError,
                       match=r"'Linear1.weight' is float32 in the checkpoint but float64 .*"
                             r"model.to\(dtype='float32'\)"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_extra_parameter_in_the_checkpoint(tmp_path):
    path = _saved(tmp_path, nested_model())
    x, y = nn.Identity()(), nn.Identity()()
    model = nn.gModule([x, y], [nn.CMulTable()([x, y])])
    with pytest.raises(CheckpointError, match="checkpoint's parameter 'block.proj.weight' is not"):
        load_checkpoint(path, model=model)


def test_optimizer_mismatch_leaves_model_and_optimizer_untouched(tmp_path):
    optim = pytest.importorskip("nngraph_py.optim", reason="nngraph_py.optim is not available yet")
    path = _saved(tmp_path, seed_mlp())  # saved without optimizer state
    model = seed_mlp()
    opt = optim.Adam(model)
    before = host_params(model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path, model=model, optimizer=opt)
    assert_params_equal(model, before)
    other = lstm_cell_model()
    path = save_checkpoint(str(tmp_path / "cell.npz"), seed_mlp(), optim.Adam(other))
    with pytest.raises(CheckpointError, match=r"optimizer array 'm' has shape \(176,\)"):
        load_checkpoint(path, model=model, optimizer=opt)
    assert_params_equal(model, before)


def test_checkpoint_type():
    ck = Checkpoint({"parameters": [], "optimizer": None}, {})
    assert ck.params == {} and ck.optimizer_state is None and ck.user == {}


def test_lstm_model_round_trip_gives_the_same_outputs(tmp_path, rng):
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    model = lstm.LSTM(4, 6, 2)
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    expected, _ = model.forward(x)
    path = save_checkpoint(str(tmp_path / "lstm.npz"), model)
    fresh = lstm.LSTM(4, 6, 2)
    fresh.forward(x)  # caches built from the old weights must not survive the load
    load_checkpoint(path, model=fresh)
    got, _ = fresh.forward(x)
    numpy.testing.assert_allclose(got, expected, rtol=1e-6)
    assert "layer2.h2h_cell.bias" in load_checkpoint(path).params


# ------------------------------------------------------------------------------------------------
# Hostile files (issue 12, items 2 and 3): each gave a raw exception, inflated memory or loaded
# altered weights before
# ------------------------------------------------------------------------------------------------
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

from nngraph_py.checkpoint import (NonFiniteError, OptionMismatchError, check_options,  # noqa: E402
                                   find_nonfinite)


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def _write_members(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(array):
    import io as _io

    buf = _io.BytesIO()
    numpy.save(buf, array)
    return buf.getvalue()


def _data_offset(npy_bytes):
    return npy_bytes.index(b"\n") + 1  # the .npy header ends with a newline


def _saved_mlp(tmp_path, **kwargs):
    model = seed_mlp()
    return model, save_checkpoint(str(tmp_path / "m.npz"), model, **kwargs)


def test_an_unlisted_member_is_never_inflated(tmp_path):
    model, path = _saved_mlp(tmp_path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("bomb.npy", "w") as f:  # 64 MB of zeros in ~64 KB
            for _ in range(64):
                f.write(bytes(1 << 20))
    assert os.path.getsize(path) < 1 << 20
    tracemalloc.start()
    ck = load_checkpoint(path, model=model)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20 and list(ck.params) == ["Linear1.weight", "Linear1.bias"]


def test_a_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    model, path = _saved_mlp(tmp_path)
    members = _members(path)
    key = "param/Linear1.weight.npy"
    header = members[key][:_data_offset(members[key])]
    huge = numpy.lib.format.header_data_from_array_1_0(numpy.zeros(1, numpy.float32))
    huge["shape"] = (10 ** 12,)
    import io as _io

    buf = _io.BytesIO()
    numpy.lib.format.write_array_header_1_0(buf, huge)
    members[key] = buf.getvalue() + members[key][len(header):]
    _write_members(path, members)
    before = host_params(model)
    with pytest.raises(CheckpointError,
                       match=r"m\.npz.*header of .param/Linear1\.weight. says.*bytes"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_data_altered_under_a_valid_crc_is_caught_by_the_digest(tmp_path):
    model, path = _saved_mlp(tmp_path)
    members = _members(path)
    key = "param/Linear1.bias.npy"
    data = bytearray(members[key])
    data[_data_offset(data) + 5] ^= 0x10  # zipfile writes a fresh, valid CRC for it
    members[key] = bytes(data)
    _write_members(path, members)
    before = host_params(model)
    with pytest.raises(CheckpointError, match=r"'param/Linear1.bias' does not match its sha256"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


@pytest.mark.parametrize("old,new", [(b"'<f4'", b"'>f4'"), (b"False", b"True ")])
def test_header_edits_that_reinterpret_the_same_bytes_are_caught(tmp_path, old, new):
    model, path = _saved_mlp(tmp_path)
    members = _members(path)
    key = "param/Linear1.weight.npy"
    assert old in members[key]
    members[key] = members[key].replace(old, new, 1)
    _write_members(path, members)
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path, model=model)


@pytest.mark.parametrize("method", [9, 99])  # deflate64 (zipfile cannot read it), unknown
def test_unknown_zip_compression_is_a_checkpoint_error(tmp_path, method):
    model, path = _saved_mlp(tmp_path)
    raw = bytearray(open(path, "rb").read())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # both headers
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            raw[start + offset:start + offset + 2] = method.to_bytes(2, "little")
            start += 4
    open(path, "wb").write(bytes(raw))
    with pytest.raises(CheckpointError, match=rf"m\.npz.*compression method {method}"):
        load_checkpoint(path, model=model)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_recompressed_checkpoints_load(tmp_path, method):
    model, path = _saved_mlp(tmp_path, meta={"epoch": 1})
    _write_members(path, _members(path), compression=method)
    assert load_checkpoint(path, model=model).user == {"epoch": 1}


def test_deep_and_huge_json_metadata(tmp_path):
    model, path = _saved_mlp(tmp_path)
    members = _members(path)
    for text, match in [(b"[" * 100_000 + b"]" * 100_000, "nested too deeply|deeper"),
                        (b"[" * 150 + b"]" * 150, "deeper than 100"),
                        (b'{"format": "nngraph_py.checkpoint/1", "x": "' + b"a" * (8 << 20) + b'"',
                         "not valid JSON"),
                        (b"1" * 10_000, "not valid JSON|not an nngraph_py"),
                        (b"\xff\xfe", "not valid JSON")]:
        members[META_KEY + ".npy"] = _npy(numpy.frombuffer(text, numpy.uint8))
        _write_members(path, members)
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(path, model=model)
    with pytest.raises(CheckpointError, match="deeper than 100"):
        deep: list = []
        for _ in range(120):
            deep = [deep]
        save_checkpoint(path, model, meta={"deep": deep})


@pytest.mark.parametrize("edit", [
    lambda m: m.update(parameters=5),
    lambda m: m.update(parameters=[{"name": "Linear1.weight"}]),
    lambda m: m["parameters"][0].update(shape="10x20"),
    lambda m: m["parameters"][0].update(shape=[-10, 20]),
    lambda m: m.update(optimizer="adam"),
    lambda m: m.update(optimizer={"arrays": [{"key": 3}]}),
    lambda m: m.update(model=None),
    lambda m: m.update(user=[1, 2]),
    lambda m: m.update(grads="yes"),
    lambda m: m.update(digest="md5"),
    lambda m: m["parameters"].append(dict(m["parameters"][0])),
    lambda m: m["parameters"][0].update(sha256=12),
])
def test_malformed_metadata_is_a_checkpoint_error_not_a_raw_exception(tmp_path, edit):
    model, path = _saved_mlp(tmp_path)
    _rewrite(path, edit_meta=edit)
    before = host_params(model)
    with pytest.raises(CheckpointError, match=r"m\.npz"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_metadata_that_is_not_an_object_is_refused(tmp_path):
    model, path = _saved_mlp(tmp_path)
    members = _members(path)
    for text in (b"[]", b"null", b'"format"', b"3"):
        members[META_KEY + ".npy"] = _npy(numpy.frombuffer(text, numpy.uint8))
        _write_members(path, members)
        with pytest.raises(CheckpointError, match="not an nngraph_py checkpoint"):
            load_checkpoint(path)


def test_two_members_of_one_name_are_refused(tmp_path):
    model, path = _saved_mlp(tmp_path)
    with pytest.warns(UserWarning):  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "a") as z:
            z.writestr("param/Linear1.bias.npy", _npy(numpy.zeros(10, numpy.float32)))
    with pytest.raises(CheckpointError, match="two entries named 'param/Linear1.bias.npy'"):
        load_checkpoint(path, model=model)


def test_checkpoints_without_digests_still_load(tmp_path):
    # Files written before digests were stored: read as before (nothing to verify against).
    model, path = _saved_mlp(tmp_path, meta={"epoch": 2})
    saved = host_params(model)

    def strip(meta):
        del meta["digest"]
        for p in meta["parameters"]:
            del p["sha256"]

    _rewrite(path, edit_meta=strip)
    scramble(model)
    assert load_checkpoint(path, model=model).user == {"epoch": 2}
    assert_params_equal(model, saved)
    # A file that says it has digests must have one per array.
    save_checkpoint(path, model)
    _rewrite(path, edit_meta=lambda m: m["parameters"][1].pop("sha256"))
    with pytest.raises(CheckpointError, match="'param/Linear1.bias' has no sha256"):
        load_checkpoint(path)


def test_gradients_and_optimizer_arrays_are_digested_too(tmp_path):
    optim = pytest.importorskip("nngraph_py.optim")
    model = seed_mlp()
    opt = optim.Adam(model)
    path = save_checkpoint(str(tmp_path / "m.npz"), model, opt, grads=True)
    meta = load_checkpoint(path).meta
    assert all(len(p["sha256"]) == 64 and len(p["grad_sha256"]) == 64 for p in meta["parameters"])
    assert all(len(e["sha256"]) == 64 for e in meta["optimizer"]["arrays"])
    members = _members(path)
    data = bytearray(members["optim/m.npy"])
    data[-1] ^= 1
    members["optim/m.npy"] = bytes(data)
    _write_members(path, members)
    with pytest.raises(CheckpointError, match="'optim/m' does not match its sha256"):
        load_checkpoint(path, model=model, optimizer=opt)


# ------------------------------------------------------------------------------------------------
# Never save non-finite values over a good checkpoint (issue 12, item 5: the library's half)
# ------------------------------------------------------------------------------------------------
def test_nan_parameters_are_not_saved_and_the_old_file_is_kept(tmp_path):
    model, path = _saved_mlp(tmp_path, meta={"epoch": 1})
    before = open(path, "rb").read()
    weight = model.parameters()[0][0]
    weight[0, :3] = numpy.nan
    weight[1, 0] = numpy.inf
    with pytest.raises(NonFiniteError, match=r"param/Linear1\.weight \(4 of 200\)") as info:
        save_checkpoint(path, model, meta={"epoch": 2})
    assert info.value.arrays == ["param/Linear1.weight"]
    assert "allow_nonfinite=True" in str(info.value)
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["m.npz"]
    assert find_nonfinite(model) == ["param/Linear1.weight"]
    save_checkpoint(path, model, meta={"epoch": 2}, allow_nonfinite=True)  # the explicit opt-out
    assert numpy.isnan(load_checkpoint(path).params["Linear1.weight"][0, 0])


def test_nan_optimizer_state_is_not_saved(tmp_path):
    optim = pytest.importorskip("nngraph_py.optim")
    model = seed_mlp()
    opt = optim.Adam(model)
    opt.state["v"][3] = numpy.nan
    path = str(tmp_path / "m.npz")
    with pytest.raises(NonFiniteError, match="optim/v") as info:
        save_checkpoint(path, model, opt)
    assert info.value.arrays == ["optim/v"] and not os.path.exists(path)
    assert find_nonfinite(model, opt) == ["optim/v"]
    assert find_nonfinite(seed_mlp(), optim.Adam(seed_mlp())) == []


# ------------------------------------------------------------------------------------------------
# Interrupted saves leave no temporary files behind (issue 12, item 6)
# ------------------------------------------------------------------------------------------------
def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_save_or_load_removes_leftovers_of_interrupted_saves(tmp_path):
    model, path = _saved_mlp(tmp_path)
    dead = _dead_pid()
    leftovers = [tmp_path / f".m.npz.{dead}.abcd1234.tmp", tmp_path / ".m.npz.k2j4h5g6.tmp"]
    others = [tmp_path / f".other.npz.{dead}.abcd1234.tmp", tmp_path / ".m.npz.notes",
              tmp_path / f".m.npz.{os.getppid()}.abcd1234.tmp", tmp_path / "m.npz.tmp"]
    for f in leftovers + others:
        f.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(leftovers[1], (old, old))  # the pre-pid naming: removed once ten minutes old
    save_checkpoint(path, model)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.npz"] + [f.name for f in others])
    leftovers[0].write_bytes(b"x")
    load_checkpoint(path)
    assert not leftovers[0].exists()


_SAVER = """
import sys
sys.path.insert(0, {root!r})
from nngraph_py import nn
from nngraph_py.checkpoint import save_checkpoint
model = nn.Linear(1000, 1000)
print("ready", flush=True)
while True:
    save_checkpoint({path!r}, model)
"""


def test_kill_9_during_saves_then_one_save_leaves_only_the_checkpoint(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = str(tmp_path / "big.npz")
    seen_temporaries = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER.format(root=root, path=path)],
                                stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        seen_temporaries += sum(name.endswith(".tmp") for name in os.listdir(tmp_path))
    model = nn.Linear(1000, 1000)
    if os.path.exists(path):
        load_checkpoint(path, model=model)  # the last completed save is intact
    save_checkpoint(path, model)
    assert os.listdir(tmp_path) == ["big.npz"], (seen_temporaries, os.listdir(tmp_path))


# ------------------------------------------------------------------------------------------------
# Resuming with other options (issue 12, item 8: the library's half, for the examples' --resume)
# ------------------------------------------------------------------------------------------------
def test_check_options_names_the_option_that_differs(tmp_path):
    model, path = _saved_mlp(tmp_path, meta={"config": {"hidden": 128, "layers": 2, "lr": 0.1,
                                                         "data_dir": "/d"}})
    check_options(path, {"hidden": 128, "layers": 2, "lr": 0.5}, ["hidden", "layers", "model"])
    with pytest.raises(OptionMismatchError, match=r"saved with --hidden 128 but this run asks "
                                                  r"for --hidden 256") as info:
        check_options(path, {"hidden": 256, "layers": 2}, ["hidden", "layers"])
    assert (info.value.option, info.value.saved, info.value.current) == ("hidden", 128, 256)
    assert isinstance(info.value, CheckpointError)
    with pytest.raises(OptionMismatchError, match="--data-dir"):
        check_options(load_checkpoint(path), {"data_dir": "/e"}, ["data_dir"])


def test_find_nonfinite_on_every_backend(device):
    optim = pytest.importorskip("nngraph_py.optim")
    model = seed_mlp().to(device)
    opt = optim.Adam(model)
    assert find_nonfinite(model, opt) == []
    model.parameters()[0][1][2] = numpy.inf
    assert find_nonfinite(model, opt) == ["param/Linear1.bias"]


def test_regression_batchnorm_running_statistics_survive_a_checkpoint(tmp_path):
    """Buffers (BatchNormalization's running mean/var) were not saved: a resumed model evaluated
    with the freshly initialised statistics. They are stored as ``buffer/<name>`` now."""
    from nngraph_py import nn as _nn
    from nngraph_py.checkpoint import load_checkpoint as _load, save_checkpoint as _save

    def make():
        return _nn.Sequential(_nn.Linear(4, 3), _nn.BatchNormalization(3), _nn.Tanh()).double()

    np = numpy
    rng = np.random.default_rng(0)
    model = make()
    for _ in range(3):
        model.forward(rng.normal(2.0, 3.0, (8, 4)))
    model.evaluate()
    x = rng.normal(size=(5, 4))
    want = np.array(model.forward(x))
    path = _save(str(tmp_path / "bn.npz"), model)
    fresh = make()
    ck = _load(path, model=fresh)
    assert set(ck.buffers) == {name for name, _ in model.named_buffers()}
    fresh.evaluate()
    np.testing.assert_array_equal(np.array(fresh.forward(x)), want)


def test_regression_checkpoint_buffer_shape_mismatch_is_named(tmp_path):
    """A buffer of another size is refused by name, nothing loaded."""
    from nngraph_py import nn as _nn
    from nngraph_py.checkpoint import CheckpointError as _Err
    from nngraph_py.checkpoint import load_checkpoint as _load, save_checkpoint as _save

    model = _nn.Sequential(_nn.Linear(4, 3), _nn.BatchNormalization(3)).double()
    path = _save(str(tmp_path / "bn.npz"), model)
    other = _nn.Sequential(_nn.Linear(4, 3), _nn.BatchNormalization(3)).double()
    bn = [m for m in other.modules() if isinstance(m, _nn.BatchNormalization)][0]
    bn.running_mean = numpy.zeros(5)
    with pytest.raises(_Err, match="running_mean"):
        _load(path, model=other)


def test_regression_checkpoint_skips_buffers_that_are_not_arrays(tmp_path):
    """A module listing a plain number among its buffers (a step counter) broke save/load with
    AttributeError ('int' has no 'shape'); only array buffers are stored."""
    from nngraph_py.checkpoint import load_checkpoint as _load, save_checkpoint as _save

    class Counting(nn.Linear):
        _buffer_names = ("running", "count")

        def __init__(self):
            super().__init__(3, 2)
            self.running = numpy.arange(2.0)
            self.count = 4

    model = Counting().double()
    path = _save(str(tmp_path / "c.npz"), model)
    fresh = Counting().double()
    fresh.running[...] = 0
    ck = _load(path, model=fresh)
    assert list(ck.buffers) == ["running"]
    numpy.testing.assert_array_equal(fresh.running, [0.0, 1.0])
