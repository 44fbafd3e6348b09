#!/usr/bin/env python3
"""Generates the reference fixtures for the quant module's C tests from gguf-py
(the `gguf` package), an implementation independent of ours.

For every type we dequantize, writes into OUT (default tests/data/quant):
  <TYPE>.bin   random blocks: random payload bytes, but finite f16 scales drawn
               from a sensible range (normal and subnormal magnitudes, both signs)
  <TYPE>.f32   what gguf.quants.dequantize makes of them (little-endian f32)
The same for the i-quants and MXFP4 (DEQUANT_IQ). For every type gguf-py can
quantize:
  <TYPE>.qin.f32  random float input (gaussian blocks of varied scale, zeros,
                  constants, tiny and large values, rounding ties)
  <TYPE>.qout.bin gguf.quants.quantize of that input
gguf-py has no Q8_1 / Q8_K dequantizer (activation formats); for those the
expected floats are computed here with numpy from GGML's definition
x = float32(q) * d.

Usage: gen_quant_fixtures.py [--seed N] [--blocks N] [--out DIR]
The committed fixtures use the default seed; tests/quant/test_quant_reference.py
reruns this with a fresh seed every time.
"""
import argparse
import pathlib

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (type, block elements, block bytes, offsets of f16 scale fields)
DEQUANT = [
    (T.F16, 1, 2, None),
    (T.BF16, 1, 2, None),
    (T.Q4_0, 32, 18, [0]),
    (T.Q4_1, 32, 20, [0, 2]),
    (T.Q5_0, 32, 22, [0]),
    (T.Q5_1, 32, 24, [0, 2]),
    (T.Q8_0, 32, 34, [0]),
    (T.Q8_1, 32, 36, [0, 2]),
    (T.Q2_K, 256, 84, [80, 82]),
    (T.Q3_K, 256, 110, [108]),
    (T.Q4_K, 256, 144, [0, 2]),
    (T.Q5_K, 256, 176, [0, 2]),
    (T.Q6_K, 256, 210, [208]),
    (T.Q8_K, 256, 292, None),
]

QUANT = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]

# The i-quants and MXFP4, drawn after the types above so that adding them left
# the older fixtures' bytes unchanged. IQ1_M has no f16 field of its own (its
# scale is spread over four nibbles, see make_blocks); MXFP4's scale byte is an
# exponent and every value of it is valid, so it stays random.
DEQUANT_IQ = [
    (T.IQ4_NL, 32, 18, [0]),
    (T.IQ4_XS, 256, 136, [0]),
    (T.MXFP4, 32, 17, []),
    (T.IQ2_XXS, 256, 66, [0]),
    (T.IQ2_XS, 256, 74, [0]),
    (T.IQ2_S, 256, 82, [0]),
    (T.IQ3_XXS, 256, 98, [0]),
    (T.IQ3_S, 256, 110, [0]),
    (T.IQ1_S, 256, 50, [0]),
    (T.IQ1_M, 256, 56, None),
]


def random_f16(rng, n):
    """Finite f16 values: mostly normal magnitudes 2^-14..2^2, some subnormal,
    some zero, both signs."""
    mag = np.exp2(rng.uniform(-14, 2, n)).astype(np.float32)
    kind = rng.random(n)
    mag = np.where(kind < 0.05, np.float32(0), mag)
    sub = rng.integers(1, 1024, n).astype(np.float32) * np.float32(2.0 ** -24)
    mag = np.where((kind >= 0.05) & (kind < 0.12), sub, mag)
    sign = np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32)
    return (mag * sign).astype(np.float16)


def make_blocks(rng, qtype, blck, size, scales, nblocks):
    if qtype == T.F16:
        bits = rng.integers(0, 1 << 16, nblocks * 32, dtype=np.uint16)
        bits = np.where((bits & 0x7C00) == 0x7C00, bits & 0xBFFF, bits)  # no inf/nan
        return bits.astype(np.uint16).view(np.uint8).reshape(-1, size), None
    if qtype == T.BF16:
        bits = rng.integers(0, 1 << 16, nblocks * 32, dtype=np.uint16)
        bits = np.where((bits & 0x7F80) == 0x7F80, bits & 0xBFFF, bits)  # finite
        return bits.astype(np.uint16).view(np.uint8).reshape(-1, size), None
    raw = rng.integers(0, 256, (nblocks, size), dtype=np.uint8)
    if qtype == T.Q8_K:
        d = (rng.standard_normal(nblocks) * 0.01).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(nblocks, 4)
        # bsums are not used by dequantization; keep them consistent anyway
        qs = raw[:, 4:260].view(np.int8).astype(np.int16)
        raw[:, 260:292] = qs.reshape(nblocks, 16, 16).sum(-1).astype("<i2").view(np.uint8)
        return raw, d
    if qtype == T.IQ1_M:
        # the f16 scale's nibbles are the top 4 bits of the u16 words at 48..55
        h = random_f16(rng, nblocks).view(np.uint16).astype(np.uint16)
        for w in range(4):
            word = raw[:, 48 + 2 * w:50 + 2 * w].copy().view("<u2").reshape(-1)
            word = (word & 0x0FFF) | (((h >> (4 * w)) & 0xF) << 12)
            raw[:, 48 + 2 * w:50 + 2 * w] = word.astype("<u2").view(np.uint8).reshape(nblocks, 2)
        return raw, None
    for off in scales:
        raw[:, off:off + 2] = random_f16(rng, nblocks).view(np.uint8).reshape(nblocks, 2)
    return raw, None


def expected_dequant(qtype, raw, extra):
    if qtype == T.Q8_1:
        d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
        q = raw[:, 4:36].view(np.int8).astype(np.float32)
        return (q * d).reshape(-1)
    if qtype == T.Q8_K:
        d = raw[:, 0:4].copy().view(np.float32)
        q = raw[:, 4:260].view(np.int8).astype(np.float32)
        return (q * d).reshape(-1)
    return quants.dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)


def make_quant_input(rng, nblocks, blck=32):
    """Blocks of 32 with varied content; the block kind cycles so every file
    has each kind."""
    out = []
    for i in range(nblocks):
        kind = i % 8
        if kind == 0:
            b = np.zeros(blck)
        elif kind == 1:
            b = np.full(blck, rng.normal())
        elif kind == 2:
            b = rng.normal(size=blck) * 1e-6
        elif kind == 3:
            b = rng.normal(size=blck) * 1e4
        elif kind == 4:
            # small integers times a power of two: many exact rounding ties
            b = rng.integers(-16, 17, blck) * 2.0 ** rng.integers(-6, 3)
        elif kind == 6:
            # exact grids whose scales come out as powers of two, so x / d
            # lands exactly on .5 ties: 8-bit (amax = 127 * 2^e), 4-bit
            # (max = -8 * 2^e) and 5-bit (max = -16 * 2^e) alternately
            e = 2.0 ** rng.integers(-8, 4)
            top = (127, -8, -16)[(i // 8) % 3]
            b = (rng.integers(-abs(top) + 1, abs(top), blck) + rng.choice([0.0, 0.5], blck)) * e
            b[rng.integers(0, blck)] = top * e
        elif kind == 5:
            b = np.abs(rng.normal(size=blck)) + 3.0  # all positive (min > 0)
        else:
            b = rng.normal(size=blck) * np.exp(rng.uniform(-5, 3))
        b = np.asarray(b, dtype=np.float64)
        out.append(b)
    return np.concatenate(out).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "tests/data/quant"))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    for qtype, blck, size, scales in DEQUANT:
        raw, extra = make_blocks(rng, qtype, blck, size, scales, args.blocks)
        raw = np.ascontiguousarray(raw)
        exp = expected_dequant(qtype, raw, extra)
        assert exp.size == raw.shape[0] * raw.shape[1] // size * blck or qtype in (T.F16, T.BF16)
        (out / f"{qtype.name}.bin").write_bytes(raw.tobytes())
        (out / f"{qtype.name}.f32").write_bytes(exp.astype("<f4").tobytes())

    for qtype in QUANT:
        x = make_quant_input(rng, args.blocks)
        with np.errstate(all="ignore"):
            q = quants.quantize(x, qtype)
        (out / f"{qtype.name}.qin.f32").write_bytes(x.astype("<f4").tobytes())
        (out / f"{qtype.name}.qout.bin").write_bytes(np.ascontiguousarray(q).view(np.uint8).tobytes())

    for qtype, blck, size, scales in DEQUANT_IQ:
        raw, extra = make_blocks(rng, qtype, blck, size, scales, args.blocks)
        raw = np.ascontiguousarray(raw)
        with np.errstate(over="ignore"):  # MXFP4 with the largest exponents is inf, in C too
            exp = expected_dequant(qtype, raw, extra)
        assert exp.size == args.blocks * blck
        (out / f"{qtype.name}.bin").write_bytes(raw.tobytes())
        (out / f"{qtype.name}.f32").write_bytes(exp.astype("<f4").tobytes())


if __name__ == "__main__":
    main()
