"""Compares our GGUF reader and writer with the `gguf` Python package
(gguf-py's GGUFReader / GGUFWriter), an independent implementation.

Reader: for every shared GGUF file (and the downloaded models), the JSON dump
of our reader (the tool build/<mode>/tools/dump_gguf with HL_GGUF_DUMP) must
list the same keys in the same order, with the same value types, array element
types, counts and every value, and the same tensor table (names, types,
shapes, absolute data offsets, byte sizes) as GGUFReader.

Writer: a file written by GGUFWriter with every value type (nested arrays
included) reads back identically through our reader; and our writer's copy
of each file (HL_GGUF_REWRITE) reads back through GGUFReader with the same kvs
and byte-identical tensor data."""
import json
import math
import mmap
import os
import pathlib
import struct
import subprocess

import numpy as np
import pytest

import gguf
from gguf import GGUFValueType as VT

from hltest import BUILD, MODELS, ROOT, SHARED, model_path

TYPE_NAMES = {VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
              VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool", VT.STRING: "string", VT.ARRAY: "array",
              VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT64: "f64"}

SHARED_FILES = sorted(str(p.relative_to(SHARED)) for p in (SHARED / "models").glob("*.gguf")) + \
    sorted(str(p.relative_to(SHARED)) for p in (SHARED / "models" / "tokenizer").glob("*.gguf"))
BIG_MODELS = ["smollm2-135m-instruct-q4_1.gguf", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "gemma-3-270m-q4_k_m.gguf"]


def tool(mode="release"):
    p = BUILD / mode / "tools" / "dump_gguf"
    if not p.exists():
        pytest.fail(f"{p} not built: run make tests")
    return p


def our_dump(path, tmp_path):
    out = tmp_path / "dump.json"
    env = dict(os.environ, HL_GGUF_DUMP=str(path), HL_GGUF_DUMP_OUT=str(out))
    r = subprocess.run([str(tool())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.read_text())


def our_rewrite(src, dst):
    env = dict(os.environ, HL_GGUF_REWRITE=str(src), HL_GGUF_REWRITE_OUT=str(dst))
    r = subprocess.run([str(tool())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def text(b):
    # our JSON writer replaces invalid UTF-8 with U+FFFD, as Python's 'replace' does
    return bytes(b).decode("utf-8", errors="replace")


def parse_value(parts, k, vtype):
    """Rebuilds one value from GGUFReader's flat parts list starting at k;
    returns (value, next k). Arrays become (elem_type, [values])."""
    if vtype == VT.STRING:
        return text(parts[k + 1]), k + 2
    if vtype == VT.ARRAY:
        et, n = VT(int(parts[k][0])), int(parts[k + 1][0])
        k += 2
        vals = []
        for _ in range(n):
            v, k = parse_value(parts, k, et)
            vals.append(v)
        return (et, vals), k
    return parts[k][0].item(), k + 1


def ref_gguf_py(path):
    """The reference view of a file through gguf-py's GGUFReader."""
    r = gguf.GGUFReader(path)
    kvs = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        v, k = parse_value(f.parts, 3, f.types[0])
        assert k == len(f.parts), key
        kvs.append((key, f.types[0], v))
    tensors = [(t.name, int(t.tensor_type), [int(x) for x in t.shape], t.data_offset, int(t.n_bytes))
               for t in r.tensors]
    return {"version": int(r.fields["GGUF.version"].parts[0][0]), "alignment": r.alignment,
            "data_offset": r.data_offset if r.tensors else None, "kv": kvs, "tensors": tensors}


STRUCT_FMT = {VT.UINT8: "<B", VT.INT8: "<b", VT.UINT16: "<H", VT.INT16: "<h", VT.UINT32: "<I", VT.INT32: "<i",
              VT.FLOAT32: "<f", VT.BOOL: "<?", VT.UINT64: "<Q", VT.INT64: "<q", VT.FLOAT64: "<d"}
BLOCKS = {int(k): v for k, v in gguf.GGML_QUANT_SIZES.items()}


def ref_struct(path):
    """A second, fast reference: a plain struct-based reading of the format
    (gguf-py's GGUFReader takes tens of seconds on 100k-token vocabularies).
    It is checked against GGUFReader in test_struct_reference_agrees."""
    with open(path, "rb") as fh:
        b = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # only the header is touched
    pos = 0

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, b, pos)[0]
        pos += struct.calcsize(fmt)
        return v

    def rd_str():
        nonlocal pos
        n = rd("<Q")
        s = b[pos:pos + n]
        pos += n
        return s

    def value(t):
        if t == VT.STRING:
            return text(rd_str())
        if t == VT.ARRAY:
            et, n = VT(rd("<I")), rd("<Q")
            if et in STRUCT_FMT and et != VT.BOOL:
                fmt = STRUCT_FMT[et]
                sz = struct.calcsize(fmt)
                vals = [x[0] for x in struct.iter_unpack(fmt, b[pos:pos + n * sz])]
                nonlocal_skip(n * sz)
                return (et, vals)
            return (et, [value(et) for _ in range(n)])
        return rd(STRUCT_FMT[t])

    def nonlocal_skip(n):
        nonlocal pos
        pos += n

    assert b[:4] == b"GGUF"
    pos = 4
    version, nt, nkv = rd("<I"), rd("<Q"), rd("<Q")
    kvs = []
    for _ in range(nkv):
        key = rd_str().decode()
        t = VT(rd("<I"))
        kvs.append((key, t, value(t)))
    alignment = next((v for k, t, v in kvs if k == "general.alignment"), 32)
    infos = []
    for _ in range(nt):
        name = rd_str().decode()
        nd = rd("<I")
        ne = [rd("<Q") for _ in range(nd)]
        ty, off = rd("<I"), rd("<Q")
        infos.append((name, ty, ne, off))
    data_offset = (pos + alignment - 1) // alignment * alignment
    tensors = []
    for name, ty, ne, off in infos:
        blck, size = BLOCKS[ty]
        tensors.append((name, ty, ne, data_offset + off, math.prod(ne) // blck * size))
    return {"version": version, "alignment": alignment, "data_offset": data_offset if nt else None,
            "kv": kvs, "tensors": tensors}


def check_value(ours, ref, vtype, where):
    if vtype == VT.ARRAY:
        et, vals = ref
        assert ours["type"] == TYPE_NAMES[et], where
        assert ours["count"] == len(vals), where
        assert len(ours["values"]) == len(vals), where
        if et not in (VT.ARRAY, VT.FLOAT32, VT.FLOAT64, VT.BOOL):
            assert ours["values"] == vals, where  # fast path: ints and strings compare directly
            return
        for i, (o, r) in enumerate(zip(ours["values"], vals)):
            check_value(o, r, et, f"{where}[{i}]")
    elif vtype in (VT.FLOAT32, VT.FLOAT64):
        if ours is None:
            assert not math.isfinite(float(ref)), where
        elif vtype == VT.FLOAT32:
            assert np.float32(ours) == np.float32(ref), f"{where}: {ours} vs {ref}"
        else:
            assert float(ours) == float(ref), f"{where}: {ours} vs {ref}"
    elif vtype == VT.BOOL:
        assert ours is bool(ref), where
    elif vtype == VT.STRING:
        assert ours == ref, where
    else:
        assert ours == int(ref), f"{where}: {ours} vs {int(ref)}"


def compare(dump, ref):
    assert "error" not in dump, dump.get("error")
    assert dump["version"] == ref["version"]
    assert dump["alignment"] == ref["alignment"]
    assert [kv["key"] for kv in dump["kv"]] == [k for k, _, _ in ref["kv"]]
    for kv, (key, vtype, v) in zip(dump["kv"], ref["kv"]):
        assert kv["type"] == TYPE_NAMES[vtype], key
        check_value(kv["value"], v, vtype, key)
    assert len(dump["tensors"]) == len(ref["tensors"])
    if ref["tensors"]:
        assert dump["data_offset"] == ref["data_offset"]
    for t, (name, ty, ne, abs_off, nbytes) in zip(dump["tensors"], ref["tensors"]):
        assert t["name"] == name
        assert t["type_id"] == ty, name
        assert t["type"] == gguf.GGMLQuantizationType(ty).name, name
        assert t["ne"] == ne, name
        assert dump["data_offset"] + t["offset"] == abs_off, name
        assert t["size"] == nbytes, name


def compare_with_reader(dump, path):
    compare(dump, ref_gguf_py(path))


# gguf-py is slow on large vocabularies: it checks the model files and a few
# vocabularies of each tokenizer family; the struct reference covers the rest.
GGUF_PY_FILES = [f for f in SHARED_FILES if "tokenizer" not in f] + [
    "models/tokenizer/ggml-vocab-llama-spm.gguf", "models/tokenizer/ggml-vocab-bert-bge.gguf",
    "models/tokenizer/ggml-vocab-phi-3.gguf"]


@pytest.mark.parametrize("rel", GGUF_PY_FILES)
def test_shared_file_matches_gguf_py(rel, tmp_path):
    path = SHARED / rel
    compare_with_reader(our_dump(path, tmp_path), path)


@pytest.mark.parametrize("rel", SHARED_FILES)
def test_shared_file_matches_struct_reference(rel, tmp_path):
    path = SHARED / rel
    compare(our_dump(path, tmp_path), ref_struct(path))


@pytest.mark.parametrize("rel", ["models/stories260K-Q4_0.gguf", "models/tokenizer/ggml-vocab-bert-bge.gguf"])
def test_struct_reference_agrees(rel, tmp_path):
    a, b = ref_gguf_py(SHARED / rel), ref_struct(SHARED / rel)
    assert repr(a) == repr(b)


@pytest.mark.parametrize("name", BIG_MODELS)
def test_downloaded_model_matches_struct_reference(name, tmp_path):
    path = model_path(name)
    compare(our_dump(path, tmp_path), ref_struct(path))


def test_invalid_files_refused(tmp_path):
    d = our_dump(SHARED / "models/invalid/stories260k-gguf-v1.gguf", tmp_path)
    assert d["error"].endswith("unsupported GGUF version 1 (this reader supports versions 2 and 3)")
    # gguf-py refuses the same file
    with pytest.raises(Exception):
        gguf.GGUFReader(SHARED / "models/invalid/stories260k-gguf-v1.gguf")
    p = SHARED / "models/invalid/stories260k-v2-q8_0-misaligned-rows.gguf"
    d = our_dump(p, tmp_path)
    assert d["error"].endswith("tensor blk.0.ffn_down.weight: row length 172 is not a multiple of the Q8_0 block size 32")
    with pytest.raises(ValueError, match="172"):
        gguf.GGUFReader(p)


def write_every_type(path):
    w = gguf.GGUFWriter(str(path), arch="testarch")
    w.add_uint8("v.u8", 250)
    w.add_int8("v.i8", -128)
    w.add_uint16("v.u16", 65535)
    w.add_int16("v.i16", -32768)
    w.add_uint32("v.u32", 0xFFFFFFFF)
    w.add_int32("v.i32", -2147483648)
    w.add_float32("v.f32", 1.0e-5)
    w.add_uint64("v.u64", 2**64 - 1)
    w.add_int64("v.i64", -(2**63))
    w.add_float64("v.f64", math.pi)
    w.add_bool("v.true", True)
    w.add_bool("v.false", False)
    w.add_string("v.str", "héllo \"wörld\"\n\t✓")
    w.add_array("a.str", ["a", "", "ccc", "日本語"])
    w.add_array("a.i32", [1, -2, 3])
    w.add_array("a.f32", [1.5, -2.25, 3.0e-8])
    w.add_array("a.bool", [True, False, True])
    w.add_key_value("a.u8", [1, 2, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("a.i64", [-(2**40), 2**40], VT.ARRAY, sub_type=VT.INT64)
    w.add_key_value("a.f64", [0.1, -1e300], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_array("a.nested", [[1, 2], [3], ["x", "yz"]])
    rng = np.random.default_rng(0)
    w.add_tensor("t.f32", rng.standard_normal((3, 64)).astype(np.float32))
    w.add_tensor("t.f16", rng.standard_normal((2, 2, 5)).astype(np.float16))
    q = gguf.quants.quantize(rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("t.q8_0", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("t.i32", np.arange(7, dtype=np.int32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_py_written_file_reads_back(tmp_path):
    path = tmp_path / "every_type.gguf"
    write_every_type(path)
    dump = our_dump(path, tmp_path)
    compare_with_reader(dump, path)
    kv = {d["key"]: d for d in dump["kv"]}
    # values as written (independent of any reader)
    assert kv["v.u64"]["value"] == 2**64 - 1 and kv["v.u64"]["type"] == "u64"
    assert kv["v.i64"]["value"] == -(2**63)
    assert kv["v.f64"]["value"] == math.pi
    assert kv["v.str"]["value"] == "héllo \"wörld\"\n\t✓"
    assert kv["a.str"]["value"]["values"] == ["a", "", "ccc", "日本語"]
    nested = kv["a.nested"]["value"]
    assert nested["type"] == "array" and nested["count"] == 3
    assert [v["values"] for v in nested["values"]] == [[1, 2], [3], ["x", "yz"]]
    names = [t["name"] for t in dump["tensors"]]
    assert names == ["t.f32", "t.f16", "t.q8_0", "t.i32"]


def rewrite_and_compare(src, tmp_path):
    dst = tmp_path / "copy.gguf"
    our_rewrite(src, dst)
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    ra, rb = ref_gguf_py(src), ref_gguf_py(dst)
    assert repr(ra["kv"]) == repr(rb["kv"])
    assert rb["version"] == 3
    assert len(a.tensors) == len(b.tensors)
    for ta, tb in zip(a.tensors, b.tensors):
        assert (ta.name, ta.tensor_type, list(ta.shape)) == (tb.name, tb.tensor_type, list(tb.shape))
        assert tb.data_offset % b.alignment == 0
        assert bytes(np.ascontiguousarray(ta.data).view(np.uint8)) == bytes(np.ascontiguousarray(tb.data).view(np.uint8)), ta.name


def test_our_writer_read_by_gguf_py(tmp_path):
    src = tmp_path / "every_type.gguf"
    write_every_type(src)
    rewrite_and_compare(src, tmp_path)


@pytest.mark.parametrize("rel", ["models/stories260K-Q4_0.gguf", "models/stories260K-Q8_0.gguf"])
def test_our_writer_copies_shared_files(rel, tmp_path):
    rewrite_and_compare(SHARED / rel, tmp_path)
