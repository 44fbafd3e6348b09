"""Writes the small handcrafted seed files in fuzz/gguf/corpus_gguf/ (run once;
the output is committed): minimal headers, every value type, nested arrays,
a custom alignment, and a few tensors of different types."""
import pathlib
import struct

OUT = pathlib.Path(__file__).resolve().parent / "corpus_gguf"


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def kv(key, t, payload):
    return s(key) + struct.pack("<I", t) + payload


def header(version, nt, kvs):
    return b"GGUF" + struct.pack("<IQQ", version, nt, len(kvs)) + b"".join(kvs)


def tensor(name, dims, ty, off):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ty, off)


def pad(b, a):
    return b + b"\0" * ((-len(b)) % a)


def main():
    OUT.mkdir(exist_ok=True)
    (OUT / "empty_v3.gguf").write_bytes(header(3, 0, []))
    every = [
        kv("u8", 0, b"\x07"), kv("i8", 1, b"\xf9"), kv("u16", 2, struct.pack("<H", 65535)),
        kv("i16", 3, struct.pack("<h", -2)), kv("u32", 4, struct.pack("<I", 0xFFFFFFFF)),
        kv("i32", 5, struct.pack("<i", -3)), kv("f32", 6, struct.pack("<f", 0.5)), kv("bool", 7, b"\x01"),
        kv("str", 8, s("hello")), kv("u64", 10, struct.pack("<Q", 2**64 - 1)), kv("i64", 11, struct.pack("<q", -5)),
        kv("f64", 12, struct.pack("<d", 2.5)),
        kv("astr", 9, struct.pack("<IQ", 8, 3) + s("a") + s("") + s("ccc")),
        kv("ai32", 9, struct.pack("<IQ", 5, 2) + struct.pack("<ii", 1, -1)),
        kv("nested", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 2, 1) + struct.pack("<H", 9) +
           struct.pack("<IQ", 8, 1) + s("x")),
    ]
    (OUT / "every_type_v3.gguf").write_bytes(header(3, 0, every))
    (OUT / "every_type_v2.gguf").write_bytes(header(2, 0, every))
    # two tensors, alignment 64: F32 [4 x 2] and Q8_0 [32]
    kvs = [kv("general.alignment", 4, struct.pack("<I", 64))]
    infos = tensor("a", [4, 2], 0, 0) + tensor("b", [32], 8, 64)
    b = pad(header(3, 2, kvs) + infos, 64)
    b += pad(struct.pack("<8f", *range(8)), 64) + b"\x00\x3c" + bytes(range(32))
    (OUT / "tensors_align64.gguf").write_bytes(b)
    # default alignment, F16 3-d tensor
    b = pad(header(3, 1, []) + tensor("h", [2, 1, 2], 1, 0), 32) + b"\x00\x3c" * 4
    (OUT / "tensor_f16.gguf").write_bytes(b)


if __name__ == "__main__":
    main()
