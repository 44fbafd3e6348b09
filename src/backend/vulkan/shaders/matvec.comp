// The fast matrix products: out[i][j] = sum_k w[j][k] x[i][k] (+ bias[j])
// with one subgroup per weight row and ROWS rows per work group, for devices
// with subgroup arithmetic (vk_compute.c picks this kernel or matmul.comp's
// shared-memory one when it creates the pipelines; specialization constants:
// 0 the work-group size, ROWS times the device's subgroup size, 1 ROWS,
// 2 XS_WORDS the shared activation tile in 32-bit words, 3 TILED).
//
// The weights are read as 32-bit words (blocks that start 2 bytes past a
// word, as Q8_0's 34 bytes do, as two 16-bit halves; MXFP4's 17-byte blocks
// from two words), a lane's part of a block into registers, and repacked
// there as signed bytes lined up with the activation words (nibbles, high
// bits and tables resolved: a Q4_0 byte is its value minus 8, an IQ4_NL byte
// its table entry), so that every type's integer sum is a sum of 4-byte dot
// products: OpSDot (SPV_KHR_integer_dot_product) with -DINT_DOT, else four
// multiplies. A block is split over P lanes (256-value blocks: 4 lanes of 64
// values; 32-value blocks and float weights: one lane); the parts' integer
// sums meet by subgroupShuffleXor, so each block's integer sums are exactly
// the scalar oracle's (backend/cpu/dot_scalar.c; integer sums are exact in
// any order and either way of forming them) and its float value is the
// oracle's expression, evaluated in the same order (precise: no contraction
// into fma).
//
// Two ways through the activation rows, one pipeline each (TILED):
//   direct (TILED = 0; decode, m <= MAXM): each weight block held in
//     registers is dotted with up to MAXM = 8 activation rows read from the
//     buffer, the weights read once per MAXM rows;
//   tiled (TILED = 1; prefill, batched decode, m > MAXM; quantized weights;
//     vk_compute.c makes it where a tile holds more than MAXM rows): the
//     ROWS subgroups of a work group stage a tile of up to NACC = 32
//     activation rows (fewer where a pass over S / P blocks is wide) in
//     shared memory (XS_WORDS, at most 32 KiB), as many passes of it at a
//     time as fit, and each subgroup dots the weight block it holds in
//     registers with every row of the tile: the weights are read once per
//     tile of rows, the activations once per work group.
// The loops over the activation rows have a constant bound (the driver
// unrolls them, so the per-row sums stay in registers; not spirv-opt, whose
// unrolled copies lose `precise`, which let a row's value depend on its
// place among the m). In both ways lane c of a row sums blocks c, c + S/P,
// ... in order, then subgroupAdd adds the lanes: the float order depends on
// the device's subgroup size and never on m, on the pipeline or on the
// position of a row among the m, so a row's result is the same whatever the
// batch (batch invariance).
// Build defines: one TYPE_* (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K
// Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS MXFP4), INT_DOT (quantized types, for
// devices with shaderIntegerDotProduct).
// Bindings as matmul.comp: 0 w, 1 x (float) or q (int8, read as words),
// 2 activation scales (quant.comp's layout), 3 bias, 4 out (rows of ldo).
// With -DMOE, as matmul.comp's: output row s (of `slots`) is expert slice
// idx[2s] of w against activation row idx[2s + 1] (gathered) or s (binding
// 5), each row alone in its pass (summed as a dense row of a batch of one),
// a work group per ROWS weight rows and chunk of CHUNK output rows (direct
// only).
#version 450
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#if defined(INT_DOT)
#extension GL_EXT_spirv_intrinsics : require
// OpSDot of two words of 4 signed bytes (format 0: PackedVectorFormat4x8Bit);
// capabilities DotProduct and DotProductInput4x8BitPacked
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4x8(uint a, uint b, spirv_literal int fmt);
#endif

#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
#define FLOAT_W 1
#endif
#if defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_Q4_K) || defined(TYPE_Q5_K) || defined(TYPE_Q6_K) || defined(TYPE_IQ4_XS)
#define PARTS 4u // lanes per block
#define NXV 16u  // activation words of a part (64 values)
#define CLUSTERED 1
#extension GL_KHR_shader_subgroup_shuffle : require
#else
#define PARTS 1u
#define NXV 8u // activation words of a block (32 values)
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 4u;
layout(constant_id = 2) const uint XS_WORDS = 1u;
layout(constant_id = 3) const uint TILED = 0u;
const uint MAXM = 8u;  // activation rows per pass over the weights (direct)
const uint NACC = 32u; // at most this many per tile (tiled)

// the weights, as words and as halves (one binding, two views)
layout(std430, binding = 0) readonly buffer W32 { uint w32[]; };
layout(std430, binding = 0) readonly buffer W16 { uint16_t w16[]; };
layout(std430, binding = 0) readonly buffer W128 { uvec4 w128[]; };
#if defined(FLOAT_W)
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
#else
layout(std430, binding = 1) readonly buffer X { uint xq[]; }; // int8 activations, 4 to a word
layout(std430, binding = 2) readonly buffer D { float xd[]; };
shared uint xs[XS_WORDS]; // the tiled path's activation words: [row of the tile][block of the pass][UNIT / 4]
#endif
layout(std430, binding = 3) readonly buffer B { float bias[]; };
layout(std430, binding = 4) writeonly buffer O { float o[]; };
#if defined(MOE)
layout(std430, binding = 5) readonly buffer I { uint idx[]; };
layout(push_constant) uniform P { uint k, n, m, ldx, ldo, has_bias, slots, gathered; } p;
const uint CHUNK = 8u;
#else
layout(push_constant) uniform P { uint k, n, m, ldx, ldo, has_bias; } p;
#endif

#if defined(TYPE_Q4_0) || defined(TYPE_IQ4_NL)
const uint UNIT = 32u, WBYTES = 18u;
#elif defined(TYPE_Q4_1)
const uint UNIT = 32u, WBYTES = 20u;
#elif defined(TYPE_Q5_0)
const uint UNIT = 32u, WBYTES = 22u;
#elif defined(TYPE_Q5_1)
const uint UNIT = 32u, WBYTES = 24u;
#elif defined(TYPE_Q8_0)
const uint UNIT = 32u, WBYTES = 34u;
#elif defined(TYPE_MXFP4)
const uint UNIT = 32u, WBYTES = 17u;
#elif defined(TYPE_Q2_K)
const uint UNIT = 256u, WBYTES = 84u;
#elif defined(TYPE_Q3_K)
const uint UNIT = 256u, WBYTES = 110u;
#elif defined(TYPE_Q4_K)
const uint UNIT = 256u, WBYTES = 144u;
#elif defined(TYPE_Q5_K)
const uint UNIT = 256u, WBYTES = 176u;
#elif defined(TYPE_Q6_K)
const uint UNIT = 256u, WBYTES = 210u;
#elif defined(TYPE_IQ4_XS)
const uint UNIT = 256u, WBYTES = 136u;
#elif defined(TYPE_F32)
const uint VEC = 4u; // elements of one 16-byte load
#else
const uint VEC = 8u;
#endif

#if !defined(FLOAT_W)
// the word at byte `at`: one load when aligned, two halves when even, else two words
uint ld32(uint at) {
    if ((at & 3u) == 0u) return w32[at >> 2];
    if ((at & 1u) == 0u) return uint(w16[at >> 1]) | (uint(w16[(at >> 1) + 1u]) << 16);
    const uint s = 8u * (at & 3u);
    return (w32[at >> 2] >> s) | (w32[(at >> 2) + 1u] << (32u - s));
}
uint wbyte(uint at) { return (uint(w16[at >> 1]) >> (8u * (at & 1u))) & 255u; }
float w_half(uint at) { return unpackHalf2x16(uint(w16[at >> 1])).x; }
// signed byte c of a word
int xs8(uint v, uint c) { return bitfieldExtract(int(v), int(8u * c), 8); }
// the 4-byte dot product of two words of signed bytes (exact either way)
int dot4(uint a, uint b) {
#if defined(INT_DOT)
    return sdot4x8(a, b, 0);
#else
    return xs8(a, 0u) * xs8(b, 0u) + xs8(a, 1u) * xs8(b, 1u) + xs8(a, 2u) * xs8(b, 2u) + xs8(a, 3u) * xs8(b, 3u);
#endif
}
// the low and high nibbles of a word's 4 bytes, each in its byte
uint lo4(uint v) { return v & 0x0f0f0f0fu; }
uint hi4(uint v) { return (v >> 4) & 0x0f0f0f0fu; }
// bytes of v (each < 128) minus c (each), as signed bytes, without borrows
uint sub_bytes(uint v, uint c) { return ((v | 0x80808080u) - c) ^ 0x80808080u; }
// 4 bits to bit 0 of each byte
uint spread4(uint b) { return (b & 1u) | ((b & 2u) << 7) | ((b & 4u) << 14) | ((b & 8u) << 21); }

// block u of activation row i: its scale, and (Q8_1) its s or (Q8_K) its 16-sums
float xscale(uint i, uint u) { return xd[i * (p.k / UNIT) + u]; }
float xextra(uint i, uint u) { return xd[p.m * (p.k / UNIT) + i * (p.k / UNIT) + u]; }
int xbsum(uint i, uint u, uint g) { return int(xd[p.m * (p.k / UNIT) + (i * (p.k / UNIT) + u) * 16u + g]); }
// first word of block u of activation row i
uint xword(uint i, uint u) { return (i * p.k + u * UNIT) >> 2; }
// activation word `at`: from the buffer, or (tiled) from the staged tile
uint xget(bool staged, uint at) { return staged ? xs[at] : xq[at]; }
#endif

#if defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS)
const int NL_TAB[16] = int[16](-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
#elif defined(TYPE_MXFP4)
const int NL_TAB[16] = int[16](0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12); // e2m1 values times 2
// the E8M0 scale halved (the table holds twice the e2m1 values): 2^(e - 128)
float e8m0_half(uint e) { return uintBitsToFloat(e < 2u ? 0x00200000u << e : (e - 1u) << 23); }
#endif
#if defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS) || defined(TYPE_MXFP4)
// the table entries of the 4 nibbles in the bytes of v (each < 16), as signed bytes
uint tab4(uint v) {
    uint r = 0u;
    for (uint c = 0u; c < 4u; c++) r |= (uint(NL_TAB[(v >> (8u * c)) & 15u]) & 255u) << (8u * c);
    return r;
}
#endif

#if defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// the 6-bit scale and min of sub-block jj at byte `at` (the 12 scale bytes)
void k4_scale(uint at, uint jj, out int sc, out int mn) {
    if (jj < 4u) {
        sc = int(wbyte(at + jj) & 63u);
        mn = int(wbyte(at + jj + 4u) & 63u);
    } else {
        uint a = wbyte(at + jj + 4u), lo = wbyte(at + jj - 4u), hi = wbyte(at + jj);
        sc = int((a & 15u) | ((lo >> 6) << 4));
        mn = int((a >> 4) | ((hi >> 6) << 4));
    }
}
#endif

#if !defined(FLOAT_W)
// A lane's part of a weight block in registers: v the values as signed
// bytes, v[t] pairing with activation word t of the part (xload), in groups
// of NXV / 4 words; g the group factors, c the min factors (K-quants with
// mins), both integers.
struct WPart {
    uint v[NXV];
    int g[4], c[4];
};

// part `part` of block u of weight row j
void wload(uint j, uint u, uint part, out WPart b) {
    const uint wo = (j * (p.k / UNIT) + u) * WBYTES;
    for (uint g = 0u; g < 4u; g++) b.g[g] = 1, b.c[g] = 0;
#if defined(TYPE_Q8_0)
    for (uint t = 0u; t < 8u; t++) b.v[t] = ld32(wo + 2u + 4u * t);
#elif defined(TYPE_Q4_0) || defined(TYPE_Q4_1) || defined(TYPE_IQ4_NL) || defined(TYPE_MXFP4)
    // element t < 16: the low nibble of byte t, else the high one of byte t - 16
#if defined(TYPE_Q4_1)
    const uint qo = wo + 4u;
#elif defined(TYPE_MXFP4)
    const uint qo = wo + 1u;
#else
    const uint qo = wo + 2u;
#endif
    for (uint t = 0u; t < 4u; t++) {
        const uint q = ld32(qo + 4u * t);
#if defined(TYPE_Q4_0)
        b.v[t] = sub_bytes(lo4(q), 0x08080808u), b.v[4u + t] = sub_bytes(hi4(q), 0x08080808u);
#elif defined(TYPE_Q4_1)
        b.v[t] = lo4(q), b.v[4u + t] = hi4(q);
#else
        b.v[t] = tab4(lo4(q)), b.v[4u + t] = tab4(hi4(q));
#endif
    }
#elif defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
    // as Q4, with bit t of the 32 high bits over element t
#if defined(TYPE_Q5_0)
    const uint qh = ld32(wo + 2u), qo = wo + 6u;
#else
    const uint qh = ld32(wo + 4u), qo = wo + 8u;
#endif
    for (uint t = 0u; t < 4u; t++) {
        const uint q = ld32(qo + 4u * t);
        b.v[t] = lo4(q) | (spread4((qh >> (4u * t)) & 15u) << 4);
        b.v[4u + t] = hi4(q) | (spread4((qh >> (16u + 4u * t)) & 15u) << 4);
#if defined(TYPE_Q5_0)
        b.v[t] = sub_bytes(b.v[t], 0x10101010u), b.v[4u + t] = sub_bytes(b.v[4u + t], 0x10101010u);
#endif
    }
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
    // part c: the 32 bytes of chunk c, sub-blocks 2c (low nibbles) and 2c + 1
    // (high; Q5_K: bits 2c and 2c + 1 of qh[l] over them); groups of 16 values
    // 4c .. 4c + 3, the first two with sub-block 2c's scale and min
    const uint c4 = part;
#if defined(TYPE_Q4_K)
    const uint qs = wo + 16u;
#else
    const uint qs = wo + 48u, qhs = wo + 16u;
#endif
    for (uint t = 0u; t < 8u; t++) {
        const uint q = w32[(qs + 32u * c4) / 4u + t];
        b.v[t] = lo4(q), b.v[8u + t] = hi4(q);
#if defined(TYPE_Q5_K)
        const uint h = w32[qhs / 4u + t];
        b.v[t] |= ((h >> (2u * c4)) & 0x01010101u) << 4;
        b.v[8u + t] |= ((h >> (2u * c4 + 1u)) & 0x01010101u) << 4;
#endif
    }
    int sc0, mn0, sc1, mn1;
    k4_scale(wo + 4u, 2u * c4, sc0, mn0);
    k4_scale(wo + 4u, 2u * c4 + 1u, sc1, mn1);
    b.g[0] = sc0, b.g[1] = sc0, b.g[2] = sc1, b.g[3] = sc1;
    b.c[0] = mn0, b.c[1] = mn0, b.c[2] = mn1, b.c[3] = mn1;
#elif defined(TYPE_Q6_K)
    // part 2h + s: the elements 128h + 32s + l (low nibbles of ql[64h + 32s + l],
    // qh bits 2s) and 128h + 32(s + 2) + l (high nibbles, qh bits 2s + 4), l < 32:
    // the 16-element groups g0, g0 + 1, g0 + 4, g0 + 5 with g0 = 8h + 2s
    const uint h = part >> 1, sh = part & 1u, g0 = 8u * h + 2u * sh;
    for (uint t = 0u; t < 8u; t++) {
        const uint ql = ld32(wo + 64u * h + 32u * sh + 4u * t), qh = ld32(wo + 128u + 32u * h + 4u * t);
        b.v[t] = lo4(ql) | (((qh >> (2u * sh)) & 0x03030303u) << 4);
        b.v[8u + t] = hi4(ql) | (((qh >> (2u * sh + 4u)) & 0x03030303u) << 4);
    }
    for (uint g = 0u; g < 4u; g++) b.g[g] = int(wbyte(wo + 192u + g0 + (g & 1u) + 4u * (g >> 1)) ^ 0x80u) - 128;
#elif defined(TYPE_Q2_K) || defined(TYPE_Q3_K)
    // part p: the elements 64p + l, l < 64, = 128h + 32j + l' with h = p / 2
    // and j = 2(p & 1) + l / 32: 2 bits each in qs[32h + l'] (bits 2j; Q3_K:
    // the third bit in hmask[l'], bit 4h + j); groups 4p .. 4p + 3
    const uint h = part >> 1, j0 = 2u * (part & 1u);
#if defined(TYPE_Q2_K)
    const uint qs = wo + 16u;
#else
    const uint qs = wo + 32u;
#endif
    for (uint t = 0u; t < 8u; t++) {
        const uint q = ld32(qs + 32u * h + 4u * t);
        b.v[t] = (q >> (2u * j0)) & 0x03030303u;
        b.v[8u + t] = (q >> (2u * j0 + 2u)) & 0x03030303u;
#if defined(TYPE_Q3_K)
        const uint hm = ld32(wo + 4u * t);
        b.v[t] |= ((hm >> (4u * h + j0)) & 0x01010101u) << 2;
        b.v[8u + t] |= ((hm >> (4u * h + j0 + 1u)) & 0x01010101u) << 2;
#endif
    }
    for (uint gg = 0u; gg < 4u; gg++) {
        const uint g = 4u * part + gg;
#if defined(TYPE_Q2_K)
        const uint sc = wbyte(wo + g);
        b.g[gg] = int(sc & 15u), b.c[gg] = int(sc >> 4);
#else
        const uint lo = g < 8u ? wbyte(wo + 96u + g) & 15u : wbyte(wo + 96u + g - 8u) >> 4;
        const uint hi = (wbyte(wo + 96u + 8u + (g & 3u)) >> (2u * (g / 4u))) & 3u;
        b.g[gg] = int(lo | (hi << 4)) - 32;
#endif
    }
#elif defined(TYPE_IQ4_XS)
    // part p: sub-blocks 2p and 2p + 1 (16 bytes each, nibbles as IQ4_NL's),
    // each with its 6-bit scale minus 32
    const uint sh = wbyte(wo + 2u) | (wbyte(wo + 3u) << 8);
    for (uint t = 0u; t < 4u; t++) {
        const uint q0 = w32[(wo + 8u + 32u * part) / 4u + t], q1 = w32[(wo + 8u + 32u * part) / 4u + 4u + t];
        b.v[t] = tab4(lo4(q0)), b.v[4u + t] = tab4(hi4(q0));
        b.v[8u + t] = tab4(lo4(q1)), b.v[12u + t] = tab4(hi4(q1));
    }
    for (uint s = 0u; s < 2u; s++) {
        const uint ib = 2u * part + s;
        const int ls = int(((wbyte(wo + 4u + ib / 2u) >> (4u * (ib & 1u))) & 15u) | (((sh >> (2u * ib)) & 3u) << 4));
        b.g[2u * s] = ls - 32, b.g[2u * s + 1u] = ls - 32;
    }
#endif
}

// the activation words of part `part` of a block whose first word is `base`
// (in the buffer or in the staged tile)
void xload(bool staged, uint base, uint part, out uint xv[NXV]) {
#if defined(TYPE_Q6_K)
    const uint h = part >> 1, sh = part & 1u;
    for (uint t = 0u; t < 8u; t++) {
        xv[t] = xget(staged, base + 32u * h + 8u * sh + t);
        xv[8u + t] = xget(staged, base + 32u * h + 8u * sh + 16u + t);
    }
#else
    for (uint t = 0u; t < NXV; t++) xv[t] = xget(staged, base + (NXV * part) + t);
#endif
}

// this part's integer sums against activation row i: si the scaled value
// sums, sm the min sums (else 0); K-quants subtract their offsets
// (Q6_K 32, Q3_K 4) through the row's 16-sums here
void wints(const WPart b, const uint xv[NXV], uint i, uint u, uint part, out int si, out int sm) {
    si = 0, sm = 0;
#if defined(CLUSTERED)
    for (uint g = 0u; g < 4u; g++) {
        int gs = 0;
        for (uint q = 0u; q < 4u; q++) gs += dot4(b.v[4u * g + q], xv[4u * g + q]);
#if defined(TYPE_Q6_K)
        const uint h = part >> 1, sh = part & 1u, gi = 8u * h + 2u * sh + (g & 1u) + 4u * (g >> 1);
        si += b.g[g] * (gs - 32 * xbsum(i, u, gi));
#elif defined(TYPE_Q3_K)
        si += b.g[g] * (gs - 4 * xbsum(i, u, 4u * part + g));
#else
        si += b.g[g] * gs;
#endif
#if defined(TYPE_Q2_K) || defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
        sm += b.c[g] * xbsum(i, u, 4u * part + g);
#endif
    }
#else
    for (uint t = 0u; t < NXV; t++) si += dot4(b.v[t], xv[t]);
#endif
}

// the block's float value for activation row i from its whole integer sums:
// the oracle's expression, in its order
float block_value(uint j, uint u, uint i, int si, int sm) {
    const uint wo = (j * (p.k / UNIT) + u) * WBYTES;
#if defined(TYPE_Q8_0) || defined(TYPE_Q4_0) || defined(TYPE_Q5_0) || defined(TYPE_IQ4_NL)
    precise float v = w_half(wo) * xscale(i, u) * float(si);
#elif defined(TYPE_MXFP4)
    precise float v = e8m0_half(wbyte(wo)) * xscale(i, u) * float(si);
#elif defined(TYPE_Q4_1) || defined(TYPE_Q5_1)
    precise float v = w_half(wo) * xscale(i, u) * float(si) + w_half(wo + 2u) * xextra(i, u);
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
    precise float v = xscale(i, u) * (w_half(wo) * float(si) - w_half(wo + 2u) * float(sm));
#elif defined(TYPE_Q2_K)
    precise float v = xscale(i, u) * (w_half(wo + 80u) * float(si) - w_half(wo + 82u) * float(sm));
#elif defined(TYPE_Q6_K)
    precise float v = xscale(i, u) * w_half(wo + 208u) * float(si);
#elif defined(TYPE_Q3_K)
    precise float v = xscale(i, u) * w_half(wo + 108u) * float(si);
#elif defined(TYPE_IQ4_XS)
    precise float v = xscale(i, u) * w_half(wo) * float(si);
#endif
    return v;
}

// the integer sums of the whole block: the parts meet in a butterfly over
// the PARTS lanes (exact in integers); called by the whole subgroup
void block_sums(bool live, const WPart b, const uint xv[NXV], uint i, uint u, uint part, out int si, out int sm) {
    si = 0, sm = 0;
    if (live) wints(b, xv, i, u, part, si, sm);
#if defined(CLUSTERED)
    for (uint d = 1u; d < PARTS; d <<= 1) {
        si += subgroupShuffleXor(si, d);
        sm += subgroupShuffleXor(sm, d);
    }
#endif
}
#endif

#if defined(FLOAT_W)
// element e of weight row j as a float
float w_elem(uint e) {
#if defined(TYPE_F32)
    return uintBitsToFloat(w32[e]);
#elif defined(TYPE_F16)
    return unpackHalf2x16(uint(w16[e])).x;
#else
    return uintBitsToFloat(uint(w16[e]) << 16);
#endif
}
// the VEC weights of one 16-byte word group as floats
void w_vec(uvec4 v, out float f[VEC]) {
#if defined(TYPE_F32)
    for (uint c = 0u; c < 4u; c++) f[c] = uintBitsToFloat(v[c]);
#elif defined(TYPE_F16)
    for (uint c = 0u; c < 4u; c++) {
        vec2 h = unpackHalf2x16(v[c]);
        f[2u * c] = h.x, f[2u * c + 1u] = h.y;
    }
#else
    for (uint c = 0u; c < 4u; c++) {
        f[2u * c] = uintBitsToFloat(v[c] << 16), f[2u * c + 1u] = uintBitsToFloat(v[c] & 0xffff0000u);
    }
#endif
}
#endif

// output rows ob .. ob + mc - 1 (activation rows i0 .. i0 + mc - 1, mc <=
// MAXM) of weight row j (wj within w), the activations read from the buffer
void direct_rows(uint j, uint wj, uint i0, uint mc, uint ob) {
    const uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID;
    precise float acc[MAXM];
    for (uint i = 0u; i < MAXM; i++) acc[i] = 0.0;
#if defined(FLOAT_W)
    if (p.k % VEC == 0u) { // 16-byte loads of the weights and of the activations
        const uint units = p.k / VEC;
        for (uint u = lane; u < units; u += S) {
            float f[VEC];
            w_vec(w128[wj * units + u], f);
            for (uint i = 0u; i < MAXM; i++) if (i < mc) {
                const uint xo = ((i0 + i) * p.ldx + u * VEC) >> 2;
                for (uint v = 0u; v < VEC / 4u; v++) {
                    vec4 a = x4[xo + v];
                    for (uint c = 0u; c < 4u; c++) acc[i] += f[4u * v + c] * a[c];
                }
            }
        }
    } else { // one element at a time
        for (uint e = lane; e < p.k; e += S) {
            float f = w_elem(wj * p.k + e);
            for (uint i = 0u; i < MAXM; i++) if (i < mc) acc[i] += f * x[(i0 + i) * p.ldx + e];
        }
    }
#else
    const uint ncl = S / PARTS, cl = lane / PARTS, part = lane % PARTS, nb = p.k / UNIT;
    for (uint b0 = 0u; b0 < nb; b0 += ncl) {
        const uint u = b0 + cl;
        const bool live = u < nb;
        WPart b;
        if (live) wload(wj, u, part, b);
        for (uint i = 0u; i < MAXM; i++) if (i < mc) {
            uint xv[NXV];
            if (live) xload(false, xword(i0 + i, u), part, xv);
            int si, sm;
            block_sums(live, b, xv, i0 + i, u, part, si, sm);
            if (live && part == 0u) acc[i] += block_value(wj, u, i0 + i, si, sm);
        }
    }
#endif
    for (uint i = 0u; i < MAXM; i++) if (i < mc) {
        float t = subgroupAdd(acc[i]);
        if (lane == 0u) o[(ob + i) * p.ldo + j] = t + (p.has_bias != 0u ? bias[j] : 0.0);
    }
}

#if !defined(FLOAT_W) && !defined(MOE)
// every output row of the work group's weight rows, the activations staged
// a tile of rows and a pass of blocks at a time (the whole work group runs
// every barrier; a subgroup past the last weight row only helps stage)
void tiled_rows(uint row0) {
    const uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID;
    const uint ncl = S / PARTS, cl = lane / PARTS, part = lane % PARTS, nb = p.k / UNIT;
    // a pass is wpr words of each row; a tile tm rows; a stage np passes of
    // the tile (as many as the shared words hold: fewer barriers)
    const uint wpr = ncl * (UNIT / 4u), tm = max(1u, min(NACC, XS_WORDS / wpr));
    const uint np = max(1u, XS_WORDS / (tm * wpr)), wst = np * wpr, kw = p.k / 4u;
    const uint lid = gl_LocalInvocationIndex, wgs = gl_WorkGroupSize.x;
    for (uint rr = 0u; rr < ROWS; rr += gl_NumSubgroups) {
        const uint r = rr + gl_SubgroupID, j = row0 + r;
        const bool has_row = r < ROWS && j < p.n; // uniform across the subgroup
        for (uint i0 = 0u; i0 < p.m; i0 += tm) {
            const uint mc = min(tm, p.m - i0);
            precise float acc[NACC];
            for (uint i = 0u; i < NACC; i++) acc[i] = 0.0;
            for (uint b0 = 0u, pi = 0u; b0 < nb; b0 += ncl, pi = pi + 1u == np ? 0u : pi + 1u) {
                if (pi == 0u) { // the next stage: words b0 * UNIT / 4 .. + wst of each row
                    barrier();
                    const uint w0 = b0 * (UNIT / 4u), wlive = min(wst, kw - w0);
                    for (uint il = 0u; il < mc; il++)
                        for (uint w = lid; w < wlive; w += wgs) xs[il * wst + w] = xq[(i0 + il) * kw + w0 + w];
                    barrier();
                }
                if (has_row) {
                    const uint u = b0 + cl;
                    const bool live = u < nb;
                    WPart b;
                    if (live) wload(j, u, part, b);
                    for (uint i = 0u; i < NACC; i++) if (i < mc) {
                        uint xv[NXV];
                        if (live) xload(true, i * wst + (pi * ncl + cl) * (UNIT / 4u), part, xv);
                        int si, sm;
                        block_sums(live, b, xv, i0 + i, u, part, si, sm);
                        if (live && part == 0u) acc[i] += block_value(j, u, i0 + i, si, sm);
                    }
                }
            }
            if (has_row)
                for (uint i = 0u; i < NACC; i++) if (i < mc) {
                    float t = subgroupAdd(acc[i]);
                    if (lane == 0u) o[(i0 + i) * p.ldo + j] = t + (p.has_bias != 0u ? bias[j] : 0.0);
                }
        }
    }
}
#endif

void main() {
#if defined(MOE)
    const uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x, ngroups = (p.n + ROWS - 1u) / ROWS;
    const uint row0 = (wg % ngroups) * ROWS, s0 = (wg / ngroups) * CHUNK, s1 = min(s0 + CHUNK, p.slots);
    if (s0 >= p.slots) return; // uniform across the group
#else
    const uint row0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * ROWS;
#if !defined(FLOAT_W)
    if (TILED != 0u) {
        tiled_rows(row0);
        return;
    }
#endif
#endif
    // every branch and loop bound below is uniform across the subgroup, as
    // the subgroup operations need
    for (uint r = gl_SubgroupID; r < ROWS; r += gl_NumSubgroups) {
        const uint j = row0 + r;
        if (j >= p.n) break;
#if defined(MOE)
        for (uint sl = s0; sl < s1; sl++)
            direct_rows(j, idx[2u * sl] * p.n + j, p.gathered != 0u ? idx[2u * sl + 1u] : sl, 1u, sl);
#else
        for (uint i0 = 0u; i0 < p.m; i0 += MAXM) direct_rows(j, j, i0, min(MAXM, p.m - i0), i0);
#endif
    }
}
