"""The .t7 reader on values written by Lua (binary and ASCII), and on what it must refuse."""
from __future__ import annotations

import json
import math
import struct

import numpy
import pytest

from nngraph_py import nn, torch7
from nngraph_py.errors import NNGraphError
from nngraph_py.torch7 import reader

from t7_helpers import fixture, max_diff


def _ref(v):
    if isinstance(v, dict) and "type" in v and "data" in v:
        return numpy.array(v["data"], dtype=numpy.float64).reshape(v["size"])
    if isinstance(v, dict):
        return {k: _ref(x) for k, x in v.items()}
    return v


REF = _ref(json.load(open(fixture("values.json"))))


@pytest.fixture(params=["values.t7", "values_ascii.t7"])
def values(request):
    return torch7.load(fixture(request.param))


def test_tensors_of_every_type(values):
    dtypes = {"Double": numpy.float64, "Float": numpy.float32, "Long": numpy.int64,
              "Int": numpy.int32, "Short": numpy.int16, "Char": numpy.int8, "Byte": numpy.uint8,
              "Half": numpy.float16}
    assert set(REF["tensors"]) <= set(values["tensors"])
    for kind, ref in REF["tensors"].items():
        t = values["tensors"][kind]
        assert t.dtype == dtypes[kind], kind
        assert t.shape == (2, 3)
        assert max_diff(t, ref) == 0.0, kind


def test_views_share_one_storage(values):
    base = values["base"]
    assert max_diff(base, REF["base"]) == 0.0
    for name in ("transposed", "narrowed", "selected"):
        view = values[name]
        assert max_diff(view, REF[name]) == 0.0, name
        assert numpy.shares_memory(view, base), name
    t = values["transposed"]
    assert [s // t.itemsize for s in t.strides] == [int(s) for s in REF["transposed_stride"]]
    assert values["same_again"] is base  # one Lua object, one Python object
    base[0, 0, 0] = -100.0  # writes through to every view
    assert values["transposed"][0, 0, 0] == -100.0
    assert values["expanded"].strides[1] == 0
    assert max_diff(values["expanded"], REF["expanded"]) == 0.0


def test_storages_and_empty(values):
    s = values["storage"]
    assert s.dtype == numpy.float32 and s.tolist() == [1.5, -2.0, 3.25]
    assert values["long_storage"].dtype == numpy.int64
    assert values["empty"].shape == (0,)
    assert values["scalar_like"].tolist() == [42.0]


def test_plain_values(values):
    assert values["str"] == "h\u00e9llo\x00world"
    assert values["str"].encode() == bytes(REF["str_bytes"])
    assert values["flag"] is True and values["off"] is False
    assert values["int"] == 7 and isinstance(values["int"], int)
    assert values["frac"] == 0.1 and values["neg"] == -3
    assert values["big"] == 2 ** 60
    assert values["inf"] == math.inf and values["ninf"] == -math.inf
    assert values["list"] == [10, 20, 30]
    assert values["holes"] == {1: "a", 3: "c"}
    assert values["mixed"] == {1: 1, 2: 2, "x": "y"}
    assert values["numkeys"] == {2.5: "two and a half", -1: "minus one"}
    assert values["nested"] == {"a": {"b": {"c": ["deep"]}}}


def test_references_and_cycles(values):
    cyc = values["cycle"]
    assert cyc["self"] is cyc and cyc["name"] == "cycle"
    assert values["shared_table"] is values["list"]
    (key,) = values["table_key"]
    assert isinstance(key, torch7.TableKey) and key.value == {"k": 1}
    assert values["table_key"][key] == "value for a table key"


def test_ascii_and_binary_agree():
    a, b = torch7.load(fixture("values.t7")), torch7.load(fixture("values_ascii.t7"))
    for k in ("base", "transposed", "narrowed", "expanded"):
        assert max_diff(a[k], b[k]) == 0.0
    assert a["str"] == b["str"] and a["numkeys"] == b["numkeys"]


def test_lua_functions_are_refused_never_run():
    with pytest.raises(torch7.Torch7Error, match="function"):
        torch7.load(fixture("function.t7"))
    loaded = torch7.load(fixture("function.t7"), strict=False)
    assert isinstance(loaded["f"], torch7.LuaFunction) and loaded["x"] == 1
    assert loaded["f"].bytecode.startswith(b"\x1bLJ")  # LuaJIT bytecode, kept inert


def test_torch7error_is_an_nngraph_error():
    assert issubclass(torch7.Torch7Error, NNGraphError)


def _rename_class(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and old in data
    return data.replace(old, new)


def test_unknown_class_named_with_offset_and_plain_with_strict_false(tmp_path):
    data = open(fixture("modules.t7"), "rb").read()
    bad = _rename_class(data, b"nn.Tanh", b"nn.Tanx")
    path = tmp_path / "bad.t7"
    path.write_bytes(bad)
    with pytest.raises(torch7.Torch7Error) as info:
        torch7.load(path)
    err = info.value
    assert err.class_name == "nn.Tanx" and "nn.Tanx" in str(err)
    assert f"byte offset {err.offset}" in str(err)
    assert bad[err.offset:err.offset + 4] == struct.pack("<i", reader.TYPE_TORCH)
    loose = torch7.load(path, strict=False)
    tanh = next(c for c in loose["cases"] if c["name"] == "Tanh")["module"]
    assert isinstance(tanh, torch7.TorchObject) and tanh.torch_typename == "nn.Tanx"
    assert "gradInput" in tanh.fields and tanh.offset == err.offset
    seq = next(c for c in loose["cases"] if c["name"] == "Linear")["module"]
    assert isinstance(seq, nn.Linear)  # the rest still converts


def _binary(*parts: bytes) -> bytes:
    return b"".join(parts)


def _i(v: int) -> bytes:
    return struct.pack("<i", v)


def _q(v: int) -> bytes:
    return struct.pack("<q", v)


def _string(s: bytes) -> bytes:
    return _i(reader.TYPE_STRING) + _i(len(s)) + s


def test_declared_sizes_larger_than_the_file_are_refused():
    huge_string = _i(reader.TYPE_STRING) + _i(2 ** 31 - 1) + b"abc"
    with pytest.raises(torch7.Torch7Error, match="declares more data"):
        torch7.loads(huge_string)
    huge_table = _i(reader.TYPE_TABLE) + _i(1) + _i(2 ** 30)
    with pytest.raises(torch7.Torch7Error, match="table size"):
        torch7.loads(huge_table)
    storage = (_i(reader.TYPE_TORCH) + _i(1) + _i(3) + b"V 1" + _i(19) + b"torch.DoubleStorage"
               + _q(2 ** 40))
    with pytest.raises(torch7.Torch7Error, match="storage size"):
        torch7.loads(storage)


def _tensor(sizes, strides, offset, storage_size, cls=b"torch.DoubleTensor"):
    st = b"torch.DoubleStorage"
    return (_i(reader.TYPE_TORCH) + _i(1) + _i(3) + b"V 1" + _i(len(cls)) + cls
            + _i(len(sizes)) + b"".join(_q(s) for s in sizes) + b"".join(_q(s) for s in strides)
            + _q(offset) + _i(reader.TYPE_TORCH) + _i(2) + _i(3) + b"V 1" + _i(len(st)) + st
            + _q(storage_size) + b"\0" * 8 * storage_size)


def test_tensors_reaching_outside_their_storage_are_refused():
    assert torch7.loads(_tensor([2, 3], [3, 1], 1, 6)).shape == (2, 3)
    with pytest.raises(torch7.Torch7Error, match="reach element"):
        torch7.loads(_tensor([2, 3], [3, 1], 2, 6))
    with pytest.raises(torch7.Torch7Error, match="negative"):
        torch7.loads(_tensor([2, -3], [3, 1], 1, 6))
    with pytest.raises(torch7.Torch7Error, match="implausible"):
        torch7.loads(_tensor([2 ** 40, 2 ** 20], [0, 0], 1, 1))
    with pytest.raises(torch7.Torch7Error, match="dimensions"):
        torch7.loads(_i(reader.TYPE_TORCH) + _i(1) + _i(3) + b"V 1" + _i(18)
                     + b"torch.DoubleTensor" + _i(10 ** 6))


def test_deep_nesting_is_bounded_without_recursion(monkeypatch):
    monkeypatch.setattr(reader, "MAX_DEPTH", 8000)  # the default is 100,000: slower to build
    depth = reader.MAX_DEPTH + 10
    one = _i(reader.TYPE_NUMBER) + struct.pack("<d", 1.0)
    nested = b"".join(_i(reader.TYPE_TABLE) + _i(k + 1) + _i(1) + one for k in range(depth))
    with pytest.raises(torch7.Torch7Error, match="nested deeper"):
        torch7.loads(nested)
    ok_depth = 5000  # deeper than Python's recursion limit: the parser does not recurse
    index = iter(range(1, 10 ** 7))
    body = b"".join(_i(reader.TYPE_TABLE) + _i(next(index)) + _i(1) + _i(reader.TYPE_NUMBER)
                    + struct.pack("<d", 1.0) for _ in range(ok_depth)) + _i(reader.TYPE_NIL)
    value = torch7.loads(body)
    for _ in range(ok_depth - 1):
        value = value[0]  # {[1] = ...} is a list of one
    assert value == [None]


def test_truncated_files_give_torch7error():
    data = open(fixture("values.t7"), "rb").read()
    for n in list(range(0, 64)) + list(range(64, len(data), 11)):
        with pytest.raises(torch7.Torch7Error):
            torch7.loads(data[:n])


def test_garbage_and_bad_type_codes():
    for data in (b"\xff\xff\xff\x7f", _i(99), b"9\n", _string(b"x")[:-1], b"1\nnot-a-number\n"):
        with pytest.raises(torch7.Torch7Error):
            torch7.loads(data)
    assert torch7.loads(_string(b"ok")) == "ok"
    assert torch7.loads(b"2\n2\nok\n") == "ok"  # the ASCII format


def test_b32_files_with_four_byte_longs():
    st = b"torch.FloatStorage"
    data = (_i(reader.TYPE_TORCH) + _i(1) + _i(3) + b"V 1" + _i(len(st)) + st + _i(2)
            + struct.pack("<2f", 1.5, 2.5))
    assert torch7.loads(data).tolist() == [1.5, 2.5]


def test_gmodule_with_an_unknown_module_stays_a_plain_object_when_not_strict(tmp_path):
    bad = _rename_class(open(fixture("graphs.t7"), "rb").read(), b"nn.Tanh", b"nn.Tanx")
    path = tmp_path / "graphs_bad.t7"
    path.write_bytes(bad)
    with pytest.raises(torch7.Torch7Error, match="nn.Tanx"):
        torch7.load(path)
    cases = {c["name"]: c["module"] for c in torch7.load(path, strict=False)["cases"]}
    nested = cases["nested"]
    assert isinstance(nested, torch7.TorchObject) and nested.torch_typename == "nn.gModule"
    assert "forwardnodes" in nested.fields
    assert isinstance(cases["single"], nn.gModule)  # without a Tanh: converted
