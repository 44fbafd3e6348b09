"""Model files in the i-quant and MXFP4 formats for the reference tests,
written with gguf-py alone (independent of our quantizers, which
tests/unit/quant tests separately):

  * requantized(): stories260K with its matrices requantized to IQ4_NL (a
    plain max-scale / nearest-value quantizer written here) or MXFP4 (gguf-py's
    own quantizer), so the result still tells a story;
  * widened(): a random-weight llama with stories260K's tokenizer but 256-wide
    rows (dim 256, FFN 512, 2 layers), for the 256-element formats: IQ4_XS
    (quantized here) and the lattice i-quants IQ1_S ... IQ3_S, whose blocks
    are random bytes under a sane f16 scale (every grid entry and sign pattern
    is a valid weight; we need an input, not a good quantization).

Norm vectors, the embedding table and rows that do not divide into blocks stay
F32. Only the engine-vs-numpy comparison uses these files, so their quality
does not matter, only that every value is what gguf-py dequantizes.
"""
from __future__ import annotations

import pathlib

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants

IQ4NL_VALUES = np.array(quants.IQ4_NL.kvalues, dtype=np.float32)


def _nearest(v: np.ndarray) -> np.ndarray:
    return np.abs(v[..., None] - IQ4NL_VALUES).argmin(-1).astype(np.uint8)


def _pack(q: np.ndarray) -> np.ndarray:
    """[..., 32] indices -> [..., 16] bytes: element j low nibble, j + 16 high."""
    return (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)


def quant_iq4_nl(x: np.ndarray) -> np.ndarray:
    b = x.reshape(-1, 32).astype(np.float32)
    mx = np.take_along_axis(b, np.abs(b).argmax(-1)[:, None], -1)[:, 0]
    d = (mx / -127.0).astype(np.float16)
    df = d.astype(np.float32)
    q = _nearest(np.where(df[:, None] != 0, b / np.where(df == 0, 1, df)[:, None], 0))
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), _pack(q)], axis=1)


def quant_iq4_xs(x: np.ndarray) -> np.ndarray:
    sb = x.reshape(-1, 8, 32).astype(np.float32)
    mx = np.take_along_axis(sb, np.abs(sb).argmax(-1)[..., None], -1)[..., 0]  # [n, 8]
    s = mx / -127.0
    smax = np.take_along_axis(s, np.abs(s).argmax(-1)[:, None], -1)[:, 0]
    d = (smax / -32.0).astype(np.float16)
    df = d.astype(np.float32)
    ls = np.clip(np.rint(s / np.where(df == 0, 1, df)[:, None]) + 32, 0, 63).astype(np.uint8)
    ls = np.where(df[:, None] == 0, 32, ls).astype(np.uint8)
    dl = df[:, None] * (ls.astype(np.float32) - 32)
    q = _nearest(np.where(dl[..., None] != 0, sb / np.where(dl == 0, 1, dl)[..., None], 0))
    scales_h = np.zeros(len(sb), dtype=np.uint16)
    for ib in range(8):
        scales_h |= ((ls[:, ib] >> 4) & 3).astype(np.uint16) << (2 * ib)
    scales_l = (ls[:, 0::2] & 0xF) | ((ls[:, 1::2] & 0xF) << 4)
    return np.concatenate([d.view(np.uint8).reshape(-1, 2), scales_h.view(np.uint8).reshape(-1, 2),
                           scales_l.astype(np.uint8), _pack(q).reshape(len(sb), 128)], axis=1)


def random_lattice(x: np.ndarray, qtype: QT, rng: np.random.Generator) -> np.ndarray:
    """Random blocks of a lattice i-quant, their f16 scales set so the
    dequantized tensor has about x's RMS."""
    blck, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = x.size // blck
    raw = rng.integers(0, 256, (nb, size), dtype=np.uint8)

    def set_d(raw, d):
        if qtype == QT.IQ1_M:  # the f16 d is the top nibbles of the u16 words at 48..55
            h = d.astype(np.float16).view(np.uint16)
            for w in range(4):
                word = raw[:, 48 + 2 * w:50 + 2 * w].copy().view("<u2")[:, 0]
                word = (word & 0x0FFF) | (((h >> (4 * w)) & 0xF) << 12)
                raw[:, 48 + 2 * w:50 + 2 * w] = word.astype("<u2").view(np.uint8).reshape(nb, 2)
        else:
            raw[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(nb, 2)

    set_d(raw, np.full(nb, 2.0 ** -10, dtype=np.float32))
    rms = float(np.sqrt(np.mean(quants.dequantize(raw.reshape(-1), qtype).astype(np.float64) ** 2)))
    want = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    set_d(raw, np.full(nb, 2.0 ** -10 * want / rms, dtype=np.float32))
    return raw


def _quantize(x: np.ndarray, qtype: QT, rng) -> np.ndarray:
    if qtype == QT.IQ4_NL:
        return quant_iq4_nl(x)
    if qtype == QT.IQ4_XS:
        return quant_iq4_xs(x)
    if qtype == QT.MXFP4:
        return quants.quantize(x.reshape(-1, 32), QT.MXFP4)
    return random_lattice(x, qtype, rng)


def _write(dst: pathlib.Path, kv, tensors):
    """kv: list of (key, value, GGUFValueType[, sub type]); tensors: (name, f32 array [rows, cols] or
    vector, qtype or None)."""
    w = gguf.GGUFWriter(str(dst), arch="llama")
    for key, val, vtype, sub in kv:
        if key in ("general.architecture",):
            continue
        w.add_key_value(key, val, vtype, sub_type=sub)
    for name, arr, data, qtype in tensors:
        if qtype is None:
            w.add_tensor(name, arr.astype(np.float32))
        else:
            rows = arr.shape[0] if arr.ndim == 2 else 1
            w.add_tensor(name, data.reshape(rows, -1), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _fields(reader: gguf.GGUFReader, override=None):
    override = override or {}
    out = []
    for f in reader.fields.values():
        if f.name.startswith("GGUF."):
            continue
        vt = f.types[0]
        sub = f.types[1] if vt == gguf.GGUFValueType.ARRAY else None
        val = override.get(f.name, f.contents())
        out.append((f.name, val, vt, sub))
    return out


def _qtype_for(name: str, row: int, qtype: QT):
    if name.endswith("norm.weight") or name == "token_embd.weight":
        return None
    return qtype if row % gguf.GGML_QUANT_SIZES[qtype][0] == 0 else None


def requantized(src: pathlib.Path, dst: pathlib.Path, qtype: QT, seed: int = 0) -> pathlib.Path:
    """src (an F32 llama GGUF) with every matrix whose rows fit qtype's blocks in qtype."""
    rng = np.random.default_rng(seed)
    r = gguf.GGUFReader(str(src))
    tensors = []
    for t in r.tensors:
        arr = np.asarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        row = arr.shape[-1]
        q = _qtype_for(t.name, row, qtype) if arr.ndim == 2 else None
        tensors.append((t.name, arr, _quantize(arr, q, rng) if q is not None else None, q))
    _write(dst, _fields(r), tensors)
    return dst


def widened(src: pathlib.Path, dst: pathlib.Path, qtype: QT, seed: int = 0, dim=256, ffn=512, layers=2,
            heads=4) -> pathlib.Path:
    """A random llama with src's tokenizer and 256-wide rows, matrices in qtype."""
    rng = np.random.default_rng(seed)
    r = gguf.GGUFReader(str(src))
    vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    override = {"llama.embedding_length": dim, "llama.feed_forward_length": ffn, "llama.block_count": layers,
                "llama.attention.head_count": heads, "llama.attention.head_count_kv": heads,
                "llama.rope.dimension_count": dim // heads}
    g = np.random.default_rng(seed + 1)

    def mat(rows, cols, scale):
        return (g.standard_normal((rows, cols)) * scale).astype(np.float32)

    shapes = [("token_embd.weight", mat(vocab, dim, 1.0)), ("output_norm.weight", np.ones(dim, np.float32)),
              ("output.weight", mat(vocab, dim, dim ** -0.5))]
    for i in range(layers):
        p = f"blk.{i}."
        shapes += [(p + "attn_norm.weight", (1 + 0.1 * g.standard_normal(dim)).astype(np.float32)),
                   (p + "attn_q.weight", mat(dim, dim, dim ** -0.5)), (p + "attn_k.weight", mat(dim, dim, dim ** -0.5)),
                   (p + "attn_v.weight", mat(dim, dim, dim ** -0.5)),
                   (p + "attn_output.weight", mat(dim, dim, dim ** -0.5)),
                   (p + "ffn_norm.weight", (1 + 0.1 * g.standard_normal(dim)).astype(np.float32)),
                   (p + "ffn_gate.weight", mat(ffn, dim, dim ** -0.5)), (p + "ffn_up.weight", mat(ffn, dim, dim ** -0.5)),
                   (p + "ffn_down.weight", mat(dim, ffn, ffn ** -0.5))]
    tensors = []
    for name, arr in shapes:
        q = _qtype_for(name, arr.shape[-1], qtype) if arr.ndim == 2 else None
        tensors.append((name, arr, _quantize(arr, q, rng) if q is not None else None, q))
    _write(dst, _fields(r, override), tensors)
    return dst
