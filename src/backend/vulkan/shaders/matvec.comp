// The fast matrix products: out[i][j] = sum_k w[j][k] x[i][k] (+ bias[j])
// with one subgroup per weight row and ROWS rows per work group, for devices
// with subgroup arithmetic (vk_compute.c picks this kernel or matmul.comp's
// shared-memory one when it creates the pipelines; specialization constants:
// 0 the work-group size, ROWS times the device's subgroup size, 1 ROWS).
//
// The weights are read as 32-bit words (blocks that start 2 bytes past a
// word, as Q8_0's 34 bytes do, as two 16-bit halves), once per group of up
// to MAXM activation rows: a lane loads its part of a block into registers
// and dots it with each row. A block is split over P lanes (K-quants: 4
// lanes of 64 values; 32-value blocks and float weights: one lane); the
// parts' integer sums meet by subgroupShuffleXor, so each block's integer
// sums are exactly the scalar oracle's (backend/cpu/dot_scalar.c) and its
// float value is the oracle's expression, evaluated in the same order
// (precise: no contraction into fma). The loops over the activation rows
// have a constant bound (the driver unrolls them, so the per-row sums stay
// in registers; not spirv-opt, whose unrolled copies lose `precise`, which
// let a row's value depend on its place among the m). Lane c of a row sums blocks c, c + S/P,
// ... in order, then subgroupAdd adds the lanes: the float order depends on
// the device's subgroup size and never on m or on the position of a row
// among the m, so a row's result is the same whatever the batch (batch
// invariance).
// Build defines: one TYPE_* (F32 F16 BF16 Q4_0 Q4_1 Q8_0 Q4_K Q6_K).
// Bindings as matmul.comp: 0 w, 1 x (float) or q (int8, read as words),
// 2 activation scales (quant.comp's layout), 3 bias, 4 out (rows of ldo).
// With -DMOE, as matmul.comp's: output row s (of `slots`) is expert slice
// idx[2s] of w against activation row idx[2s + 1] (gathered) or s (binding
// 5), each row alone in its pass (summed as a dense row of a batch of one),
// a work group per ROWS weight rows and chunk of CHUNK output rows.
#version 450
#extension GL_EXT_shader_16bit_storage : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#if defined(TYPE_F32) || defined(TYPE_F16) || defined(TYPE_BF16)
#define FLOAT_W 1
#endif
#if defined(TYPE_Q4_K) || defined(TYPE_Q6_K)
#define PARTS 4u // lanes per block
#define CLUSTERED 1
#extension GL_KHR_shader_subgroup_shuffle : require
#else
#define PARTS 1u
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 4u;
const uint MAXM = 8u; // activation rows per pass over the weights

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

#if defined(TYPE_Q4_0)
const uint UNIT = 32u, WBYTES = 18u;
#elif defined(TYPE_Q4_1)
const uint UNIT = 32u, WBYTES = 20u;
#elif defined(TYPE_Q8_0)
const uint UNIT = 32u, WBYTES = 34u;
#elif defined(TYPE_Q4_K)
const uint UNIT = 256u, WBYTES = 144u;
#elif defined(TYPE_Q6_K)
const uint UNIT = 256u, WBYTES = 210u;
#elif defined(TYPE_F32)
const uint VEC = 4u; // elements of one 16-byte load
#else
const uint VEC = 8u;
#endif

#if !defined(FLOAT_W)
// the word at byte `at` (even): one load when aligned, else two halves
uint ld32(uint at) {
    if ((at & 3u) == 0u) return w32[at >> 2];
    return uint(w16[at >> 1]) | (uint(w16[(at >> 1) + 1u]) << 16);
}
uint wbyte(uint at) { return (uint(w16[at >> 1]) >> (8u * (at & 1u))) & 255u; }
float w_half(uint at) { return unpackHalf2x16(uint(w16[at >> 1])).x; }
// signed byte c of an activation word
int xs8(uint v, uint c) { return bitfieldExtract(int(v), int(8u * c), 8); }
// unsigned byte c of a weight word
uint ub(uint v, uint c) { return (v >> (8u * c)) & 255u; }

// block u of activation row i: its scale, and (Q8_1) its s or (Q8_K) its 16-sums
float xscale(uint i, uint u) { return xd[i * (p.k / UNIT) + u]; }
float xextra(uint i, uint u) { return xd[p.m * (p.k / UNIT) + i * (p.k / UNIT) + u]; }
int xbsum(uint i, uint u, uint g) { return int(xd[p.m * (p.k / UNIT) + (i * (p.k / UNIT) + u) * 16u + g]); }
// first word of block u of activation row i
uint xword(uint i, uint u) { return (i * p.k + u * UNIT) >> 2; }
#endif

#if defined(TYPE_Q4_K)
// the 6-bit scale and min of sub-block jj, from the 12 scale bytes s
void k4_scale(const uint s[3], uint jj, out int sc, out int mn) {
    if (jj < 4u) {
        sc = int(ub(s[jj >> 2], jj & 3u) & 63u);
        mn = int(ub(s[(jj + 4u) >> 2], (jj + 4u) & 3u) & 63u);
    } else {
        uint a = ub(s[(jj + 4u) >> 2], (jj + 4u) & 3u), lo = ub(s[(jj - 4u) >> 2], (jj - 4u) & 3u), hi = ub(s[jj >> 2], jj & 3u);
        sc = int((a & 15u) | ((lo >> 6) << 4));
        mn = int((a >> 4) | ((hi >> 6) << 4));
    }
}
#endif

#if !defined(FLOAT_W)
// the integer sums of this lane's part of block u of row j against
// activation rows i0 .. i0 + mc - 1: si the scaled value sums, sm the
// min sums (Q4_K; else 0)
void block_ints(uint j, uint u, uint part, uint i0, uint mc, inout int si[MAXM], inout int sm[MAXM]) {
    const uint wo = (j * (p.k / UNIT) + u) * WBYTES;
#if defined(TYPE_Q8_0)
    uint q[8];
    for (uint t = 0u; t < 8u; t++) q[t] = ld32(wo + 2u + 4u * t);
    for (uint i = 0u; i < MAXM; i++) if (i < mc) {
        const uint xw = xword(i0 + i, u);
        int s = 0;
        for (uint t = 0u; t < 8u; t++) {
            uint a = xq[xw + t];
            for (uint c = 0u; c < 4u; c++) s += xs8(q[t], c) * xs8(a, c);
        }
        si[i] = s;
    }
#elif defined(TYPE_Q4_0) || defined(TYPE_Q4_1)
#if defined(TYPE_Q4_0)
    const uint qo = wo + 2u;
    const int off = 8;
#else
    const uint qo = wo + 4u;
    const int off = 0;
#endif
    uint q[4];
    for (uint t = 0u; t < 4u; t++) q[t] = ld32(qo + 4u * t);
    for (uint i = 0u; i < MAXM; i++) if (i < mc) {
        const uint xw = xword(i0 + i, u);
        int s = 0;
        for (uint t = 0u; t < 4u; t++) {
            uint lo = xq[xw + t], hi = xq[xw + 4u + t];
            for (uint c = 0u; c < 4u; c++) {
                uint b = ub(q[t], c);
                s += (int(b & 15u) - off) * xs8(lo, c) + (int(b >> 4) - off) * xs8(hi, c);
            }
        }
        si[i] = s;
    }
#elif defined(TYPE_Q4_K)
    // part c: the 32 bytes of chunk c, sub-blocks 2c (low nibbles) and 2c + 1 (high)
    const uint c4 = part;
    uint q[8], s[3];
    for (uint t = 0u; t < 8u; t++) q[t] = w32[(wo + 16u + 32u * c4) / 4u + t];
    for (uint t = 0u; t < 3u; t++) s[t] = w32[(wo + 4u) / 4u + t];
    int sc0, mn0, sc1, mn1;
    k4_scale(s, 2u * c4, sc0, mn0);
    k4_scale(s, 2u * c4 + 1u, sc1, mn1);
    for (uint i = 0u; i < MAXM; i++) if (i < mc) {
        const uint row = i0 + i, xw = xword(row, u) + 16u * c4;
        int a0 = 0, a1 = 0;
        for (uint t = 0u; t < 8u; t++) {
            uint xl = xq[xw + t], xh = xq[xw + 8u + t];
            for (uint c = 0u; c < 4u; c++) {
                uint b = ub(q[t], c);
                a0 += int(b & 15u) * xs8(xl, c);
                a1 += int(b >> 4) * xs8(xh, c);
            }
        }
        si[i] = a0 * sc0 + a1 * sc1;
        sm[i] = mn0 * (xbsum(row, u, 4u * c4) + xbsum(row, u, 4u * c4 + 1u)) +
                mn1 * (xbsum(row, u, 4u * c4 + 2u) + xbsum(row, u, 4u * c4 + 3u));
    }
#elif defined(TYPE_Q6_K)
    // part 2h + s: the elements 128h + 32s + l (low nibbles of ql[64h + 32s + l],
    // qh bits 2s) and 128h + 32(s + 2) + l (high nibbles, qh bits 2s + 4), l < 32:
    // the 16-element groups g0, g0 + 1, g0 + 4, g0 + 5 with g0 = 8h + 2s
    const uint h = part >> 1, sh = part & 1u, g0 = 8u * h + 2u * sh;
    uint ql[8], qh[8];
    for (uint t = 0u; t < 8u; t++) {
        ql[t] = ld32(wo + 64u * h + 32u * sh + 4u * t);
        qh[t] = ld32(wo + 128u + 32u * h + 4u * t);
    }
    int sc[4];
    for (uint g = 0u; g < 4u; g++) sc[g] = int(wbyte(wo + 192u + g0 + (g & 1u) + 4u * (g >> 1)) ^ 0x80u) - 128;
    for (uint i = 0u; i < MAXM; i++) if (i < mc) {
        const uint row = i0 + i, xw = xword(row, u) + 32u * h + 8u * sh;
        int gs[4] = int[4](0, 0, 0, 0);
        for (uint t = 0u; t < 8u; t++) {
            uint x1 = xq[xw + t], x2 = xq[xw + 16u + t];
            for (uint c = 0u; c < 4u; c++) {
                uint b = ub(ql[t], c), hb = ub(qh[t], c);
                int q1 = int((b & 15u) | (((hb >> (2u * sh)) & 3u) << 4));
                int q2 = int((b >> 4) | (((hb >> (2u * sh + 4u)) & 3u) << 4));
                gs[t >> 2] += q1 * xs8(x1, c);
                gs[2u + (t >> 2)] += q2 * xs8(x2, c);
            }
        }
        int v = 0;
        for (uint g = 0u; g < 4u; g++) v += sc[g] * (gs[g] - 32 * xbsum(row, u, g0 + (g & 1u) + 4u * (g >> 1)));
        si[i] = v;
    }
#endif
}

// the block's float value for activation row i from its whole integer sums:
// the oracle's expression, in its order
float block_value(uint j, uint u, uint i, int si, int sm) {
    const uint wo = (j * (p.k / UNIT) + u) * WBYTES;
#if defined(TYPE_Q8_0) || defined(TYPE_Q4_0)
    precise float v = w_half(wo) * xscale(i, u) * float(si);
#elif defined(TYPE_Q4_1)
    precise float v = w_half(wo) * xscale(i, u) * float(si) + w_half(wo + 2u) * xextra(i, u);
#elif defined(TYPE_Q4_K)
    precise float v = xscale(i, u) * (w_half(wo) * float(si) - w_half(wo + 2u) * float(sm));
#elif defined(TYPE_Q6_K)
    precise float v = xscale(i, u) * w_half(wo + 208u) * float(si);
#endif
    return v;
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

void main() {
    const uint S = gl_SubgroupSize, lane = gl_SubgroupInvocationID;
    const uint ncl = S / PARTS, cl = lane / PARTS, part = lane % PARTS;
#if defined(MOE)
    const uint wg = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x, ngroups = (p.n + ROWS - 1u) / ROWS;
    const uint row0 = (wg % ngroups) * ROWS, s0 = (wg / ngroups) * CHUNK, s1 = min(s0 + CHUNK, p.slots);
    if (s0 >= p.slots) return; // uniform across the group
#else
    const uint row0 = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * ROWS;
#endif
    // every branch and loop bound below is uniform across the subgroup, as
    // the subgroup operations need
    for (uint r = gl_SubgroupID; r < ROWS; r += gl_NumSubgroups) {
        const uint j = row0 + r;
        if (j >= p.n) break;
#if defined(MOE)
        for (uint sl = s0; sl < s1; sl++) {
            const uint i0 = p.gathered != 0u ? idx[2u * sl + 1u] : sl, mc = 1u, wj = idx[2u * sl] * p.n + j, ob = sl;
#else
        for (uint i0 = 0u; i0 < p.m; i0 += MAXM) {
            const uint mc = min(MAXM, p.m - i0), wj = j, ob = i0;
#endif
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
            const uint nb = p.k / UNIT;
            for (uint b0 = 0u; b0 < nb; b0 += ncl) {
                const uint u = b0 + cl;
                const bool live = u < nb;
                int si[MAXM], sm[MAXM];
                for (uint i = 0u; i < MAXM; i++) si[i] = 0, sm[i] = 0;
                if (live) block_ints(wj, u, part, i0, mc, si, sm);
#if defined(CLUSTERED)
                // the block's parts meet: a butterfly over the PARTS lanes (exact in integers)
                for (uint i = 0u; i < MAXM; i++) if (i < mc) {
                    for (uint d = 1u; d < PARTS; d <<= 1) {
                        si[i] += subgroupShuffleXor(si[i], d);
                        sm[i] += subgroupShuffleXor(sm[i], d);
                    }
                }
#endif
                if (live && part == 0u)
                    for (uint i = 0u; i < MAXM; i++) if (i < mc) acc[i] += block_value(wj, u, i0 + i, si[i], sm[i]);
            }
#endif
            for (uint i = 0u; i < MAXM; i++) if (i < mc) {
                float t = subgroupAdd(acc[i]);
                if (lane == 0u) o[(ob + i) * p.ldo + j] = t + (p.has_bias != 0u ? bias[j] : 0.0);
            }
        }
    }
}
